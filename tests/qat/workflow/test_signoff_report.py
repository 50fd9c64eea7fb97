"""dlasim.signoff: every layer of a compiled program on emu and cycle against the export's
integer replay, the table, and the report page (an HTML structure test that fails when the
page does not show what the report says)."""

from html.parser import HTMLParser

import json

import torch

import dlasim
import wf_models as M
from test_compile_export import run, trained_export


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.status, self.rows, self.svgs, self.bars, self._in = None, [], 0, 0, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id") == "status":
            self._in = "status"
        if tag == "tr" and a.get("class") in ("ok", "bad"):
            self.rows.append(a["class"])
        self.svgs += tag == "svg"
        self.bars += tag == "rect" and a.get("class") == "bar"

    def handle_data(self, data):
        if self._in == "status":
            self.status, self._in = data.strip(), None


def compiled(tmp_path, seed):
    torch.manual_seed(seed)
    x = torch.randn(1, 3, 16, 16)
    _, path = trained_export(M.ResidualCNN(), x, tmp_path / ("net%d.dla.pt" % seed), plan="int8")
    r = run("compile", path, "-o", tmp_path / ("net%d.dlab" % seed))
    assert r.returncode == 0, r.stderr
    return path, tmp_path / ("net%d.dlab" % seed), x


def page_text(directory):
    return (directory / "index.html").read_text()


def test_every_layer_signs_off_on_both_engines(tmp_path):
    path, program, x = compiled(tmp_path, 0)
    report = dlasim.signoff(path, program, x, engines=("emu", "cycle"))
    layers = [n["name"] for n in dlasim.load_export(path).nodes if n["op"] not in ("input",)]
    assert [r.layer for r in report.layers if r.engine == "emu"] == layers
    assert report.ok and report.first_difference() is None
    cyc = [r for r in report.layers if r.engine == "cycle" and r.layer != "flatten"]  # flatten moves no data
    assert all(r.cycles > 0 for r in cyc) and any(r.mac_utilization > 0 for r in cyc)
    assert "PASS: every layer equal on emu, cycle" in report.table()
    page = Page()
    page.feed(report.write(tmp_path / "report").read_text())
    assert page.status == "PASS" and page.rows == ["ok"] * len(report.layers)
    # three bar charts (cycles, MAC utilization, saturations) and the cycle run's unit timeline
    assert page.svgs == 4 and page.bars == 2 * len(cyc) + len(layers)
    assert (tmp_path / "report" / "report.json").is_file()
    # the page links the cycle run's Chrome trace, whose instruction slices are the run's
    trace = json.loads((tmp_path / "report" / "trace.json").read_text())
    slices = [e for e in trace["traceEvents"] if e.get("ph") == "X" and e.get("cat") != "layer"]
    assert 'href="trace.json"' in page_text(tmp_path / "report") and len(slices) > len(layers)
    assert trace["otherData"]["cycles"] == json.loads((tmp_path / "report" / "report.json").read_text())["timeline"]["cycles"]


def test_a_program_of_another_model_fails_at_its_first_layer(tmp_path):
    path_a, _, x = compiled(tmp_path, 0)
    _, program_b, _ = compiled(tmp_path, 1)
    report = dlasim.signoff(path_a, program_b, x, engines=("emu",))
    first = report.first_difference()
    assert not report.ok and first.layer == "stem_0" and first.first_diff is not None
    assert first.first_diff["expected"] != first.first_diff["actual"]
    assert "FAIL: first difference in layer 'stem_0' on emu" in report.table()
    page = Page()
    page.feed(report.write(tmp_path / "bad").read_text())
    assert page.status == "FAIL" and "bad" in page.rows


def test_dla_signoff_compares_every_layer_with_the_reference_evaluator(tmp_path):
    import numpy as np
    from test_signoff import NP
    path_a, program_a, x = compiled(tmp_path, 0)
    _, program_b, _ = compiled(tmp_path, 1)
    ex = dlasim.load_export(path_a)
    q = dlasim.integer_forward(ex, x, return_all=True)["x"]
    np.save(tmp_path / "x.npy", q.numpy().astype(NP[ex.node("x")["dtype"]]))
    r = run("signoff", path_a, "-i", "x=%s" % (tmp_path / "x.npy"), "--out", tmp_path / "so")
    assert r.returncode == 0, r.stdout + r.stderr
    layers = [n["name"] for n in ex.nodes if n["op"] != "input"]
    assert "sign-off: PASS: %d layers equal on emu, cycle" % len(layers) in r.stdout, r.stdout
    import json
    doc = json.loads((tmp_path / "so" / "signoff.json").read_text())
    assert doc["ok"] and [l["layer"] for l in doc["layers"] if l["engine"] == "emu"] == layers
    # The same model against another model's program: the first layer differs, named.
    r = run("signoff", path_a, "-i", "x=%s" % (tmp_path / "x.npy"), "--program", program_b, "--engines", "emu")
    assert r.returncode == 1, r.stdout
    assert "sign-off: FAIL: first difference in layer 'stem_0' on emu at element" in r.stdout, r.stdout
    r = run("signoff", path_a, "-i", "x=%s" % (tmp_path / "x.npy"), "--engines", "emu,warp")
    assert r.returncode == 1 and "unknown engine 'warp'" in r.stderr, r.stderr


def test_sqnr_against_the_float_model_per_layer(tmp_path):
    """With model=, every layer gets its SQNR against the float model: the same figure
    dlasim.report computes from the eval forward (the replay's integers are the eval
    forward's), shown as a table column and a fourth chart on the page."""
    torch.manual_seed(3)
    x = torch.randn(1, 3, 16, 16)
    prepared, path = trained_export(M.ResidualCNN(), x, tmp_path / "net.dla.pt", plan="int8")
    assert run("compile", path, "-o", tmp_path / "net.dlab").returncode == 0
    report = dlasim.signoff(path, tmp_path / "net.dlab", x, engines=("emu", "cycle"), model=prepared)
    want = {r["name"]: r["sqnr_db"] for r in dlasim.report(prepared, (x,)).layers}
    rows = [r for r in report.layers if r.layer in want]
    assert len(rows) == len(report.layers) and all(r.sqnr_db is not None for r in rows)
    for r in rows:
        assert r.sqnr_db == want[r.layer], r.layer
    assert sum(r.sqnr_db > 10 for r in rows) >= len(rows) // 2  # int8 layers are close to float
    assert "SQNR dB" in report.table()
    html = report.write(tmp_path / "report").read_text()
    page = Page()
    page.feed(html)
    assert page.svgs == 5 and "<th>SQNR dB</th>" in html and "SQNR against the float model" in html
    # without model=, no SQNR: the column and the chart are absent
    plain = dlasim.signoff(path, tmp_path / "net.dlab", x, engines=("emu",))
    assert all(r.sqnr_db is None for r in plain.layers)
    assert "<th>SQNR dB</th>" not in plain.write(tmp_path / "plain").read_text()


def test_signoff_of_a_prepared_model_exports_and_compiles_it(tmp_path):
    """dlasim.signoff(prepared, inputs=...): exported and compiled (`dla compile`) in a
    temporary directory, every layer on both engines, with SQNR against its float model;
    the same rows as signing off its export and program by hand."""
    torch.manual_seed(4)
    x = torch.randn(1, 3, 16, 16)
    prepared, path = trained_export(M.ResidualCNN(), x, tmp_path / "net.dla.pt", plan="int8")
    report = dlasim.signoff(prepared, inputs=(x,), engines=("emu", "cycle"))
    assert report.ok and all(r.sqnr_db is not None for r in report.layers)
    assert run("compile", path, "-o", tmp_path / "net.dlab").returncode == 0
    by_hand = dlasim.signoff(path, tmp_path / "net.dlab", x, engines=("emu", "cycle"), model=prepared)
    assert [(r.engine, r.layer, r.equal, r.cycles, r.sqnr_db) for r in report.layers] == \
        [(r.engine, r.layer, r.equal, r.cycles, r.sqnr_db) for r in by_hand.layers]
