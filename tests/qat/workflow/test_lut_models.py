"""Stock activations on the DLA's table unit, end to end: a YOLOv5-style net (Conv + BN +
SiLU, C3 bottlenecks with residual adds, SPPF) and MobileNetV3-style inverted residuals
with hardswish (no squeeze-excite: it needs a multiply the DLA lacks) prepare with no
edits, export, compile with `dla compile` and sign off bit for bit on emu and cycle
against the export's integer replay (the bridge's dla::lut)."""

import pytest
import torch

import dlasim
from lut_models import FashionNetSiLU, MobileNetV3Blocks, OtherActivations, YoloSiLU
from test_compile_export import run, trained_export


@pytest.mark.parametrize("name,plan", [("yolo", "int8"), ("yolo", "int16"), ("mobilenetv3", "int8"),
                                       ("others", "int8"), ("fashion_silu", "int8")])
def test_prepares_unedited_and_signs_off_on_every_engine(name, plan, tmp_path):
    model = {"yolo": YoloSiLU, "mobilenetv3": MobileNetV3Blocks, "others": OtherActivations,
             "fashion_silu": lambda: FashionNetSiLU(4)}[name]()
    torch.manual_seed(0)
    x = torch.rand(1, 1, 28, 28) if name == "fashion_silu" else torch.rand(1, 3, 16, 16)
    prepared, path = trained_export(model, x, tmp_path / "net.dla.pt", plan=plan)
    ex = dlasim.load_export(path)
    luts = [n for n in ex.nodes if n["op"] == "lut"]
    assert luts and all(n["op"] != "host" for n in ex.nodes)
    r = run("compile", path, "-o", tmp_path / "net.dlab")
    assert r.returncode == 0, r.stderr
    report = dlasim.signoff(path, tmp_path / "net.dlab", x, engines=("emu", "cycle"))
    assert report.ok, report.table()
    checked = {r.layer for r in report.layers}
    assert all(n["name"] in checked for n in luts)
