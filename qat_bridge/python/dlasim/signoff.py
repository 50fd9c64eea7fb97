"""signoff: every layer of a compiled program, on every engine, against the export's integer replay.

    report = dlasim.signoff("net.dla.pt", "net.dlab", (x,), engines=("emu", "cycle"), model=prepared)
    print(report.table())          # per layer: elements equal, first difference, saturations,
                                   # overflows, cycles and MAC utilization (cycle engine), and
                                   # with model= the SQNR of the layer against the float model
    report.write("signoff/")       # report.json, a self-contained index.html and, when the
    assert report.ok               # cycle engine ran, trace.json (Chrome/Perfetto) and the unit timeline

The replay (`integer_forward`) runs the export with the same integer ops as the prepared
model's eval forward, so a program that signs off computes what the trained model computes,
bit for bit. Layers are compared in the order of the program's debug records (graph
order), element for element; a layer the program stores in another shape than the export
(a flatten) is compared in the export's shape. The first differing layer is named.

A segmented program (a model with float parts) is signed off the same way: every layer of
every device segment, and every value its host steps make (floats bit for bit), in the
order of the host plan.
"""

import json
import math
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .device import Device
from .diagnostics import sqnr_db
from ._library import dla_tool
from .export import Exported, integer_forward, load_export
from .export import export as export_model
from .integers import to_reals
from .runtime import evaluating


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
    sqnr_db: float = None          # against the float model (signoff(..., model=)); inf: equal

    @property
    def ok(self):
        return self.equal == self.elements


@dataclass
class SignoffReport:
    program: str
    export: str
    engines: list
    layers: list = field(default_factory=list)
    trace: str = None              # the cycle run's Chrome trace (JSON text), when it ran
    timeline: dict = None          # the cycle run's unit timeline (the page's strip chart)

    @property
    def ok(self):
        return all(r.ok for r in self.layers)

    def first_difference(self):
        """The first differing layer in graph order (on any engine), or None."""
        return next((r for r in self.layers if not r.ok), None)

    def table(self):
        head = "%-8s %-28s %10s %9s %11s %9s %10s %8s %8s  %s" % (
            "engine", "layer", "elements", "equal", "saturations", "overflows", "cycles", "MAC util", "SQNR dB",
            "first difference")
        lines = [head, "-" * len(head)]
        for r in self.layers:
            diff = "" if r.first_diff is None else "at %s: expected %s, got %s" % (
                r.first_diff["index"], r.first_diff["expected"], r.first_diff["actual"])
            lines.append("%-8s %-28s %10d %8.2f%% %11d %9d %10s %8s %8s  %s" % (
                r.engine, r.layer[:28], r.elements, 100.0 * r.equal / max(r.elements, 1), r.saturations, r.overflows,
                r.cycles if r.cycles else "-", "%.1f%%" % (100 * r.mac_utilization) if r.cycles and r.macs else "-",
                "-" if r.sqnr_db is None else "%.1f" % r.sqnr_db, diff))
        first = self.first_difference()
        lines.append("sign-off: %s" % ("PASS: every layer equal on %s" % ", ".join(self.engines) if first is None else
                                       "FAIL: first difference in layer '%s' on %s" % (first.layer, first.engine)))
        return "\n".join(lines)

    def to_json(self):
        j = {"program": self.program, "export": self.export, "engines": self.engines, "ok": self.ok,
             "reference": "the export's integer replay",
             "layers": [_layer_json(r) for r in self.layers]}
        if self.timeline is not None:
            j["timeline"] = self.timeline
        return j

    def write(self, directory):
        """Writes report.json, index.html and (when the cycle engine ran) trace.json into
        `directory`; returns the page's path."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        j = self.to_json()
        if self.trace:
            (d / "trace.json").write_text(self.trace)
            j["trace"] = "trace.json"
        (d / "report.json").write_text(json.dumps(j, indent=1) + "\n")
        page = d / "index.html"
        page.write_text(_html(j))
        return page


def _layer_json(r):
    j = dict(asdict(r), ok=r.ok)
    if r.sqnr_db is None:
        del j["sqnr_db"]
    elif math.isinf(r.sqnr_db):  # JSON has no infinity: null is "equal to the float model", and
        j["sqnr_db"] = None if r.sqnr_db > 0 else -1000.0  # -1000 a float layer of zeros
    return j


def _first_diff(expected, actual):
    bad = (expected != actual).nonzero()
    if bad.shape[0] == 0:
        return None
    idx = bad[0].tolist()
    return {"index": idx, "expected": expected[tuple(idx)].item(), "actual": actual[tuple(idx)].item()}


def signoff(export, program=None, inputs=None, engines=("emu", "cycle"), model=None):
    """Runs `program` (a .dlab compiled from `export`) on each engine with every layer dumped
    and compares each layer with the export's integer replay on `inputs` (a tensor or a
    tuple, in the model's call order; the program's batch). With `model` (the prepared
    model the export came from), each layer also gets its SQNR against the float model (the
    prepared graph run with floats: BN folded, no quantization; dlasim.report's sqnr_db).
    Returns a SignoffReport.

    `export` may be the prepared model itself: `signoff(prepared, inputs=(x,))` exports it
    and compiles it (`dla compile`, the tool beside the op library) into a temporary
    directory, and reports SQNR against its float model."""
    if isinstance(export, torch.nn.Module):
        return _signoff_prepared(export, inputs if inputs is not None else program, engines)
    if program is None or inputs is None:
        raise TypeError("signoff: give (export, program, inputs), or (prepared_model, inputs=...)")
    ex = export if isinstance(export, Exported) else load_export(export)
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    replay = integer_forward(ex, *inputs, return_all=True)
    floats = {}
    if model is not None:
        with evaluating(model) as m, torch.no_grad():
            m.run(*inputs, float_mode=True, record=floats)
    report = SignoffReport(str(program), str(export) if isinstance(export, (str, Path)) else "(a loaded export)",
                           list(engines))
    for engine in engines:
        dev = Device(program, engine=engine, export=ex)
        feed = {name: replay[name] for name in dev.inputs}
        dumps, stats = dev._dev.run_layers(feed)
        trace, timeline = dev._dev.trace()
        if trace:  # as `dla signoff`: the last cycle-timed engine's
            report.trace, report.timeline = trace, json.loads(timeline)
        for layer, got in dumps.items():
            if layer not in replay:
                continue  # a layer the export does not name (none today)
            want = replay[layer]
            want = want.to(torch.float32 if want.is_floating_point() else torch.int64)
            got = got.reshape(want.shape) if got.numel() == want.numel() else got
            if got.shape != want.shape:
                equal, diff = 0, {"index": [], "expected": int(want.numel()), "actual": int(got.numel())}
            else:
                equal, diff = int((got == want).sum()), _first_diff(want, got)
            macs, overflows, saturations, cycles, util = stats[layer] if layer in stats else (0, 0, 0, 0, 0)
            report.layers.append(LayerResult(engine, layer, int(want.numel()), equal, diff, macs, overflows,
                                             saturations, cycles, util / 1e6, _sqnr(ex, layer, floats, want)))
    return report


def _sqnr(ex, layer, floats, value):
    """SQNR of `value` (a layer's integers, or a host step's floats) against the float model's."""
    ref = floats.get(layer)
    if not isinstance(ref, torch.Tensor) or ref.numel() != value.numel():
        return None
    node = ex.node(layer)
    reals = to_reals(value, node["frac"]) if node.get("value") == "int" else value
    return sqnr_db(ref.reshape(value.shape).to(torch.float32), reals.to(torch.float32))


def _signoff_prepared(prepared, inputs, engines):
    """signoff of a prepared model: export and compile it into a temporary directory."""
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    with tempfile.TemporaryDirectory(prefix="dlasim-signoff-") as d:
        path = export_model(prepared, inputs, Path(d) / "model.dla.pt")
        program = Path(d) / "model.dlab"
        r = subprocess.run([dla_tool(), "compile", path, "-o", str(program)], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("signoff: dla compile failed: %s" % r.stderr.strip())
        report = signoff(path, program, inputs, engines, model=prepared)
    report.export, report.program = "(exported from the prepared model)", "(compiled from the prepared model)"
    return report


def _html(report_json):
    """The report page: the one renderer `dla signoff --out` uses too (in the op library)."""
    return torch.ops.dla.signoff_html(json.dumps(report_json))


__all__ = ["signoff", "SignoffReport", "LayerResult"]
