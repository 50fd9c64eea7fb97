"""Sign-off (README.md main job): export -> compiler graph file -> `dla compile` ->
`dla run --engine emu` (and `--engine rtl` in builds with the RTL); the outputs equal the
export's integer replay, which equals the prepared model's eval forward, bit for bit. The dla tool comes from $DLA_TOOL
(set by ctest) or build/{ci,dev}/sim/dla; a missing tool fails the test."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import dlasim
import wf_models as M


def _tool():
    env = os.environ.get("DLA_TOOL")
    if env:
        return env if Path(env).is_file() else None
    root = Path(__file__).resolve().parents[3]
    for preset in ("ci", "dev"):
        p = root / "build" / preset / "sim" / "dla"
        if p.is_file():
            return str(p)
    return None


DLA = _tool()
if DLA is None:
    raise RuntimeError("the dla tool is not built: set DLA_TOOL or build the ci/dev preset")
# The rtl engine, in builds with the RTL (its name is in `dla run --help`'s engine list).
ENGINES = ["emu"] + (["rtl"] if "emu, cycle, rtl" in subprocess.run([DLA, "run", "--help"], capture_output=True,
                                                                       text=True).stdout else [])
NP = {"u8": np.uint8, "i8": np.int8, "i16": np.int16, "u4": np.uint8, "i4": np.int8}

CASES = {
    "fashion": (lambda: M.FashionNet(4), lambda: torch.rand(2, 1, 28, 28)),
    "yolo_neck": (lambda: M.YoloNeck(), lambda: torch.rand(1, 3, 32, 32)),
    "residual": (lambda: M.ResidualCNN(), lambda: torch.randn(1, 3, 16, 16)),
    "depthwise": (lambda: M.DepthwiseSeparable(), lambda: torch.randn(1, 3, 16, 16)),
}


@pytest.mark.parametrize("plan", ["int8", "int4", "int16"])
@pytest.mark.parametrize("name", list(CASES))
def test_emulator_runs_the_export_bit_exactly(name, plan, tmp_path):
    build, make_x = CASES[name]
    torch.manual_seed(0)
    x = make_x()
    prepared = dlasim.prepare_qat(build(), (x,), plan=plan)
    opt = torch.optim.SGD(prepared.parameters(), lr=0.05)
    for _ in range(2):
        out = prepared(make_x())
        loss = sum(o.square().mean() for o in (out if isinstance(out, tuple) else (out,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    prepared.eval()
    path = dlasim.export(prepared, (x,), tmp_path / "net.dla.pt")
    graph = dlasim.write_graph_file(path, tmp_path / "net.json")
    run = lambda *a: subprocess.run([DLA, *a], capture_output=True, text=True, timeout=120)  # noqa: E731
    r = run("compile", graph, "-o", str(tmp_path / "net.dlab"))
    assert r.returncode == 0, r.stderr
    ex = dlasim.load_export(path)
    replay = dlasim.integer_forward(ex, x, return_all=True)
    np.save(tmp_path / "x.npy", replay["x"].numpy().astype(NP[ex.node("x")["dtype"]]))
    with torch.no_grad():
        ys = prepared(x)
    ys = ys if isinstance(ys, tuple) else (ys,)
    for engine in ENGINES:
        out = tmp_path / ("out_" + engine)
        r = run("run", str(tmp_path / "net.dlab"), "--engine", engine, "--input", "x=%s" % (tmp_path / "x.npy"),
                "--output-dir", str(out))
        assert r.returncode == 0, engine + ": " + r.stderr
        for o, y in zip(ex.graph["outputs"], ys):
            got = np.load(out / ("%s.npy" % o)).astype(np.int64)
            np.testing.assert_array_equal(got, replay[o].numpy(), err_msg=engine + " " + o)
            np.testing.assert_array_equal(got, dlasim.to_integers(y, ex.node(o)["frac"]).numpy(),
                                          err_msg=engine + " " + o)
