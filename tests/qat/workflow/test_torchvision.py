"""torchvision's ResNet-18 and MobileNetV2, unedited (Debian's python3-torchvision), through
the whole chain: prepare_qat -> a few training steps -> export -> `dla compile net.dla.pt`
-> `dla run` (outputs equal the prepared model's eval forward, element for element) ->
`dla signoff` on emu and cycle (every layer equal to the reference evaluator)."""

import numpy as np
import pytest
import torch
import torchvision

import dlasim
from test_host_segments import dla
from test_signoff import NP

MODELS = {"resnet18": torchvision.models.resnet18, "mobilenet_v2": torchvision.models.mobilenet_v2}


@pytest.mark.parametrize("plan", ["int8", "int4"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_torchvision_model_signs_off_on_every_engine(name, plan, tmp_path):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    images = lambda: torch.randn(2, 3, 64, 64, generator=g)  # noqa: E731
    prepared = dlasim.prepare_qat(MODELS[name](num_classes=10), (images(),), plan=plan)
    opt = torch.optim.SGD(prepared.parameters(), lr=0.01, momentum=0.9)
    for _ in range(2):
        loss = prepared(images()).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    prepared.eval()
    x = images()
    path = dlasim.export(prepared, (x,), tmp_path / "net.dla.pt")
    ex = dlasim.load_export(path)
    if plan == "int4":  # int8 first and last layers, int4 inside
        w = [n["weight_dtype"] for n in ex.nodes if "weight_dtype" in n]
        assert w[0] == w[-1] == "i8" and "i4" in w[1:-1]
    r = dla("compile", path, "-o", tmp_path / "net.dlab")
    assert r.returncode == 0, r.stderr
    replay = dlasim.integer_forward(ex, x, return_all=True)
    np.save(tmp_path / "x.npy", replay["x"].numpy().astype(NP[ex.node("x")["dtype"]]))
    r = dla("run", tmp_path / "net.dlab", "--input", "x=%s" % (tmp_path / "x.npy"), "--output-dir", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    (out,) = ex.graph["outputs"]
    with torch.no_grad():
        want = dlasim.to_integers(prepared(x), ex.node(out)["frac"]).numpy()
    np.testing.assert_array_equal(np.load(tmp_path / "out" / ("%s.npy" % out)).astype(np.int64), want)
    r = dla("signoff", path, "--input", "x=%s" % (tmp_path / "x.npy"), "--engines", "emu,cycle",
            "--program", tmp_path / "net.dlab")
    assert r.returncode == 0 and "sign-off: PASS" in r.stdout, r.stdout + r.stderr
    layers = sum(1 for n in ex.nodes if n["op"] not in ("input",))
    assert r.stdout.count("\ncycle ") >= layers - 1
