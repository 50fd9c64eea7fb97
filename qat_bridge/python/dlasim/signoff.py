"""signoff: every layer of a compiled program, on every engine, against the export's integer replay.

    report = dlasim.signoff("net.dla.pt", "net.dlab", (x,), engines=("emu", "cycle"))
    print(report.table())          # per layer: elements equal, first difference, saturations,
                                   # overflows, cycles and MAC utilization (cycle engine)
    report.write("signoff/")       # report.json and a self-contained index.html
    assert report.ok

The replay (`integer_forward`) runs the export with the same integer ops as the prepared
model's eval forward, so a program that signs off computes what the trained model computes,
bit for bit. Layers are compared in the order of the program's debug records (graph
order), element for element; a layer the program stores in another shape than the export
(a flatten) is compared in the export's shape. The first differing layer is named.
"""

import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .device import Device
from .export import Exported, integer_forward, load_export


@dataclass
class LayerResult:
    engine: str
    layer: str
    elements: int
    equal: int
    first_diff: dict = None        # {"index": [...], "expected": int, "actual": int}
    macs: int = 0
    overflows: int = 0
    saturations: int = 0
    cycles: int = 0
    mac_utilization: float = 0.0

    @property
    def ok(self):
        return self.equal == self.elements


@dataclass
class SignoffReport:
    program: str
    export: str
    engines: list
    layers: list = field(default_factory=list)

    @property
    def ok(self):
        return all(r.ok for r in self.layers)

    def first_difference(self):
        """The first differing layer in graph order (on any engine), or None."""
        return next((r for r in self.layers if not r.ok), None)

    def table(self):
        head = "%-8s %-28s %10s %9s %11s %9s %10s %8s  %s" % ("engine", "layer", "elements", "equal", "saturations",
                                                            "overflows", "cycles", "MAC util", "first difference")
        lines = [head, "-" * len(head)]
        for r in self.layers:
            diff = "" if r.first_diff is None else "at %s: expected %d, got %d" % (
                r.first_diff["index"], r.first_diff["expected"], r.first_diff["actual"])
            lines.append("%-8s %-28s %10d %8.2f%% %11d %9d %10s %8s  %s" % (
                r.engine, r.layer[:28], r.elements, 100.0 * r.equal / max(r.elements, 1), r.saturations, r.overflows,
                r.cycles if r.cycles else "-", "%.1f%%" % (100 * r.mac_utilization) if r.cycles and r.macs else "-",
                diff))
        first = self.first_difference()
        lines.append("sign-off: %s" % ("PASS: every layer equal on %s" % ", ".join(self.engines) if first is None else
                                       "FAIL: first difference in layer '%s' on %s" % (first.layer, first.engine)))
        return "\n".join(lines)

    def to_json(self):
        return {"program": self.program, "export": self.export, "engines": self.engines, "ok": self.ok,
                "layers": [dict(asdict(r), ok=r.ok) for r in self.layers]}

    def write(self, directory):
        """Writes report.json and index.html into `directory`; returns the page's path."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "report.json").write_text(json.dumps(self.to_json(), indent=1) + "\n")
        page = d / "index.html"
        page.write_text(_html(self))
        return page


def _first_diff(expected, actual):
    bad = (expected != actual).nonzero()
    if bad.shape[0] == 0:
        return None
    idx = bad[0].tolist()
    return {"index": idx, "expected": int(expected[tuple(idx)]), "actual": int(actual[tuple(idx)])}


def signoff(export, program, inputs, engines=("emu", "cycle")):
    """Runs `program` (a .dlab compiled from `export`) on each engine with every layer dumped
    and compares each layer with the export's integer replay on `inputs` (a tensor or a
    tuple, in the model's call order; the program's batch). Returns a SignoffReport."""
    ex = export if isinstance(export, Exported) else load_export(export)
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    replay = integer_forward(ex, *inputs, return_all=True)
    report = SignoffReport(str(program), str(export) if isinstance(export, (str, Path)) else "(a loaded export)",
                           list(engines))
    for engine in engines:
        dev = Device(program, engine=engine, export=ex)
        feed = {name: replay[name] for name in dev.inputs}
        dumps, stats = dev._dev.run_layers(feed)
        for layer, got in dumps.items():
            if layer not in replay:
                continue  # a layer the export does not name (none today)
            want = replay[layer].to(torch.int64)
            got = got.reshape(want.shape) if got.numel() == want.numel() else got
            if got.shape != want.shape:
                equal, diff = 0, {"index": [], "expected": int(want.numel()), "actual": int(got.numel())}
            else:
                equal, diff = int((got == want).sum()), _first_diff(want, got)
            macs, overflows, saturations, cycles, util = stats[layer]
            report.layers.append(LayerResult(engine, layer, int(want.numel()), equal, diff, macs, overflows,
                                             saturations, cycles, util / 1e6))
    return report


def _bars(title, rows, value, unit):
    """An inline SVG bar chart, one bar per layer."""
    vals = [value(r) for r in rows]
    top = max(vals + [1e-9])
    w, bh = 640, 16
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img" aria-label="%s">'
             % (w + 320, bh * len(rows) + 24, html.escape(title)),
             '<text x="0" y="14" font-size="13" font-weight="bold">%s</text>' % html.escape(title)]
    for i, (r, v) in enumerate(zip(rows, vals)):
        y = 22 + i * bh
        parts.append('<text x="0" y="%d" font-size="11">%s</text>' % (y + 11, html.escape(r.layer[:30])))
        parts.append('<rect class="bar" x="200" y="%d" width="%.1f" height="%d" fill="#4a7fb5"/>'
                     % (y + 2, w * v / top, bh - 4))
        label = ("%d" % v) if float(v).is_integer() else ("%.1f" % v)
        parts.append('<text x="%.1f" y="%d" font-size="10">%s %s</text>' % (205 + w * v / top, y + 11, label, unit))
    parts.append("</svg>")
    return "\n".join(parts)


def _html(report):
    status = "PASS" if report.ok else "FAIL"
    first = report.first_difference()
    rows = []
    for r in report.layers:
        diff = "" if r.first_diff is None else html.escape(json.dumps(r.first_diff))
        rows.append("<tr class=\"%s\"><td>%s</td><td>%s</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%s</td>"
                    "<td>%s</td><td>%s</td></tr>" % (
                        "ok" if r.ok else "bad", html.escape(r.engine), html.escape(r.layer), r.elements, r.equal,
                        r.saturations, r.overflows, r.cycles or "-",
                        "%.1f%%" % (100 * r.mac_utilization) if r.cycles and r.macs else "-", diff))
    cycle_rows = [r for r in report.layers if r.cycles]
    charts = []
    if cycle_rows:
        charts.append(_bars("Cycles per layer (cycle model)", cycle_rows, lambda r: r.cycles, "cycles"))
        charts.append(_bars("MAC utilization per layer (cycle model)", cycle_rows,
                            lambda r: 100 * r.mac_utilization, "%"))
    first_engine = [r for r in report.layers if r.engine == report.engines[0]]
    charts.append(_bars("Saturations per layer", first_engine, lambda r: r.saturations, ""))
    summary = ("every layer equal on %s" % ", ".join(report.engines) if first is None else
               "first difference in layer %s on %s" % (first.layer, first.engine))
    return """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>dlasim sign-off: %(status)s</title>
<style>
body { font-family: sans-serif; margin: 2em; }
h1 .PASS { color: #1a7f37; } h1 .FAIL { color: #cf222e; }
table { border-collapse: collapse; font-size: 13px; } td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
td:nth-child(2), td:nth-child(1), th:nth-child(2), th:nth-child(1) { text-align: left; } tr.bad { background: #ffebe9; }
</style></head><body>
<h1>dlasim sign-off: <span id="status" class="%(status)s">%(status)s</span></h1>
<p id="summary">%(summary)s</p>
<p>program <code>%(program)s</code>, export <code>%(export)s</code>; layers compared against the export's integer replay.</p>
<table id="layers"><thead><tr><th>engine</th><th>layer</th><th>elements</th><th>equal</th><th>saturations</th>
<th>overflows</th><th>cycles</th><th>MAC util</th><th>first difference</th></tr></thead>
<tbody>
%(rows)s
</tbody></table>
%(charts)s
</body></html>
""" % {"status": status, "summary": html.escape(summary), "program": html.escape(report.program),
       "export": html.escape(report.export), "rows": "\n".join(rows), "charts": "\n".join(charts)}


__all__ = ["signoff", "SignoffReport", "LayerResult"]
