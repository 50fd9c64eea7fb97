"""Sign-off of models with float parts (issue 12), from Python and from the tool:
dlasim.signoff of a segmented program (every layer of every device segment and every host
value against the export's integer replay, the trace of the segments back to back), and
`dla signoff`'s SQNR per layer against the float model an export holds
(float_reference=True), equal to Python's."""

import json
import math
import zipfile
from pathlib import Path

import pytest
import torch

import dlasim
import wf_models as M
from test_float_islands import images, train_steps
from test_host_segments import CASES, ENGINES, dla, save_inputs


@pytest.mark.parametrize("case", sorted(CASES))
def test_python_signoff_of_a_model_with_float_parts(case, tmp_path):
    """dlasim.signoff of the prepared model: every layer of every device segment and every
    host value, on every engine, against the export's integer replay; SQNR against the
    float model; the page with the unit timeline and the trace of the segments."""
    prepared, example, g, make_inputs = CASES[case](tmp_path)
    inputs = make_inputs(g)
    report = dlasim.signoff(prepared, inputs=inputs, engines=ENGINES)
    assert report.ok, report.table()
    ex = dlasim.load_export(dlasim.export(prepared.eval(), example, tmp_path / "net.dla.pt"))
    device = {n["name"] for n in ex.nodes if n["value"] == "int" and n["op"] not in ("input", "quantize")}
    hosts = {n["name"] for n in ex.nodes if n["op"] == "host"}
    assert hosts
    for engine in ENGINES:
        rows = {r.layer: r for r in report.layers if r.engine == engine}
        assert device <= set(rows) and hosts <= set(rows), sorted(device | hosts - set(rows))
        assert all(rows[h].elements > 0 and rows[h].macs == 0 for h in hosts)
    assert any(r.sqnr_db is not None for r in report.layers if r.layer in device)
    page = report.write(tmp_path / "report")
    html = page.read_text()
    assert 'id="timeline"' in html and "trace.json" in html
    trace = json.loads((tmp_path / "report" / "trace.json").read_text())
    processes = [e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "process_name"]
    segments = sum(1 for s in json.loads(_plan(tmp_path, ex))["steps"] if s["kind"] == "device")
    assert processes == (["dla cycle model"] if segments == 1 else ["device segment %d" % k for k in range(segments)])


def _plan(tmp_path, ex):
    """plan.json of the program compiled from the export at tmp_path/net.dla.pt."""
    assert dla("compile", tmp_path / "net.dla.pt", "-o", tmp_path / "net.dlab").returncode == 0
    with zipfile.ZipFile(tmp_path / "net.dlab") as z:
        return z.read(next(n for n in z.namelist() if n.endswith("plan.json"))).decode()


def test_python_signoff_names_the_first_differing_layer_of_a_segmented_program(tmp_path):
    """A program compiled from another training of the model differs from the export: the
    sign-off fails and names the first differing layer in plan order."""
    prepared, example, g, make_inputs = CASES["int4_float_middle"](tmp_path)
    path = dlasim.export(prepared.eval(), example, tmp_path / "net.dla.pt")
    train_steps(prepared, images, 1, g)
    other = dlasim.export(prepared.eval(), example, tmp_path / "other.dla.pt")
    assert dla("compile", other, "-o", tmp_path / "other.dlab").returncode == 0
    report = dlasim.signoff(path, tmp_path / "other.dlab", make_inputs(g), engines=("emu",))
    assert not report.ok
    first = report.first_difference()
    assert first.first_diff is not None and "FAIL: first difference in layer '%s'" % first.layer in report.table()


def residual(tmp_path):
    """A model quantized end to end (one device program, no host steps)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(4)
    make = lambda g, n=1: (torch.randn(n, 3, 16, 16, generator=g),)  # noqa: E731
    prepared = dlasim.prepare_qat(M.ResidualCNN(), make(g), plan="int8")
    return prepared, make(g), g, make


@pytest.mark.parametrize("case", ["residual", "siamese_float_head", "int4_float_middle"])
def test_cli_signoff_gives_the_sqnr_of_every_layer_against_the_float_model(case, tmp_path):
    """`dla signoff` of an export written with float_reference=True: every layer's SQNR
    against the float model it holds equals Python's (the prepared model's float forward,
    dlasim.signoff(..., model=)) on the same input; without it the column is absent."""
    prepared, example, g, make_inputs = (residual if case == "residual" else CASES[case])(tmp_path)
    plain = dlasim.export(prepared.eval(), example, tmp_path / "plain.dla.pt")
    path = dlasim.export(prepared.eval(), example, tmp_path / "net.dla.pt", float_reference=True)
    ex = dlasim.load_export(path)
    inputs = make_inputs(g)
    specs = save_inputs(ex, inputs, tmp_path, as_float=False)
    # the float model sees what the CLI gives it: the reals of the integer inputs
    replay = dlasim.integer_forward(ex, *inputs, return_all=True)
    seen = tuple(dlasim.to_reals(replay[n], ex.node(n)["frac"]).float() if ex.node(n)["op"] == "input" else x
                 for n, x in zip(ex.graph["inputs"], inputs))
    want = {}
    for r in dlasim.signoff(path, _program(path, tmp_path), seen, engines=("emu",), model=prepared).layers:
        want[r.layer] = r.sqnr_db
    r = dla("signoff", path, *specs, "--engines", "emu,cycle", "--out", tmp_path / "so")
    assert r.returncode == 0 and "SQNR dB" in r.stdout, r.stdout + r.stderr
    rows = json.loads((tmp_path / "so" / "signoff.json").read_text())["layers"]
    compared = 0
    for row in rows:
        if want.get(row["layer"]) is None or math.isinf(want[row["layer"]]):
            continue
        assert row["sqnr_db"] == pytest.approx(want[row["layer"]], abs=1e-3), row["layer"]
        compared += 1
    assert compared >= 4, (rows, want)
    assert "SQNR" in (tmp_path / "so" / "index.html").read_text()
    r = dla("signoff", plain, *specs, "--engines", "emu")
    assert r.returncode == 0 and "SQNR" not in r.stdout, r.stdout


def _program(path, tmp_path):
    prog = tmp_path / (Path(path).stem + ".dlab")
    assert dla("compile", path, "-o", prog).returncode == 0
    return prog


def test_a_model_in_training_mode_exports_its_float_parts_in_eval_mode(tmp_path):
    """Exporting right after training (no .eval()): the host modules are traced in eval
    mode (a float BatchNorm with its running statistics), so the export's replay equals
    the eval forward on unseen inputs; the model stays in training mode."""
    prepared, example, g, make_inputs = CASES["int4_float_middle"](tmp_path)
    assert prepared.training
    path = dlasim.export(prepared, make_inputs(g), tmp_path / "net.dla.pt")  # verifies on these inputs
    assert prepared.training
    inputs = make_inputs(g)
    with torch.no_grad():
        want = prepared.eval()(*inputs)
    got = dlasim.integer_forward(path, *inputs)
    assert torch.equal(dlasim.to_integers(want, dlasim.load_export(path).node("fc")["frac"]), got)
