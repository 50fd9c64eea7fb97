"""`dla compile net.dla.pt`: the compiler reads the QAT export itself (TorchScript, through
libtorch), with the hardware config the model was trained for. The program it makes runs
on the emulator bit for bit like the export's integer replay; it is byte-identical to the
program compiled from the same export written as a graph file; a model trained for a
non-default config compiles for that config without --config, and a disagreeing
--preset/--config is refused naming the field."""

import subprocess

import numpy as np
import pytest
import torch
from torch import nn

import dlasim
import wf_models as M
from test_signoff import DLA, NP


def run(*args):
    return subprocess.run([DLA, *map(str, args)], capture_output=True, text=True, timeout=180)


def trained_export(model, x, path, **prepare_args):
    torch.manual_seed(0)
    prepared = dlasim.prepare_qat(model, (x,), **prepare_args)
    opt = torch.optim.SGD(prepared.parameters(), lr=0.05)
    for _ in range(2):
        out = prepared(torch.rand_like(x))
        loss = sum(o.square().mean() for o in (out if isinstance(out, tuple) else (out,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    prepared.eval()
    return prepared, dlasim.export(prepared, (x,), path)


def run_on_emulator(program, ex, x, tmp_path):
    replay = dlasim.integer_forward(ex, x, return_all=True)
    np.save(tmp_path / "x.npy", replay["x"].numpy().astype(NP[ex.node("x")["dtype"]]))
    r = run("run", program, "--engine", "emu", "--input", "x=%s" % (tmp_path / "x.npy"), "--output-dir", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    for o in ex.graph["outputs"]:
        got = np.load(tmp_path / "out" / ("%s.npy" % o)).astype(np.int64)
        np.testing.assert_array_equal(got, replay[o].numpy(), err_msg=o)


@pytest.mark.parametrize("name,plan", [("fashion", "int8"), ("residual", "int4"), ("yolo_neck", "int8")])
def test_compiles_the_export_directly(name, plan, tmp_path):
    model, x = {"fashion": (M.FashionNet(4), torch.rand(2, 1, 28, 28)),
                "residual": (M.ResidualCNN(), torch.randn(1, 3, 16, 16)),
                "yolo_neck": (M.YoloNeck(), torch.rand(1, 3, 32, 32))}[name]
    _, path = trained_export(model, x, tmp_path / "net.dla.pt", plan=plan)
    r = run("compile", path, "-o", tmp_path / "net.dlab")
    assert r.returncode == 0, r.stderr
    ex = dlasim.load_export(path)
    run_on_emulator(tmp_path / "net.dlab", ex, x, tmp_path)
    # The same export through the graph file: the same program, byte for byte.
    graph = dlasim.write_graph_file(path, tmp_path / "net.json")
    r = run("compile", graph, "-o", tmp_path / "via_graph.dlab")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "net.dlab").read_bytes() == (tmp_path / "via_graph.dlab").read_bytes()


def test_the_hardware_config_travels_with_the_model(tmp_path):
    hw = dlasim.HwOptions.preset("default").replace(rounding_mode="HALF_EVEN", acc_bits=20)
    x = torch.randn(1, 3, 16, 16)
    _, path = trained_export(M.ResidualCNN(), x, tmp_path / "net.dla.pt", hw=hw, plan="int8")
    ex = dlasim.load_export(path)
    r = run("compile", path, "-o", tmp_path / "net.dlab")
    assert r.returncode == 0, r.stderr
    run_on_emulator(tmp_path / "net.dlab", ex, x, tmp_path)
    # The program was compiled for (and embeds) the trained-for config: its identity hash
    # is that of the default preset with those two fields changed.
    trained_cfg = tmp_path / "trained.json"
    trained_cfg.write_text('{"preset": "default", "acc_bits": 20, "rounding_mode": "HALF_EVEN"}')
    r = run("config", "--check", trained_cfg)
    assert r.returncode == 0, r.stderr
    want_hash = r.stdout.split()[-1]
    r = run("disasm", tmp_path / "net.dlab")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("dlab version 1  hw config %s " % want_hash), r.stdout[:200]
    # The export records that config by its identity hash, and dla compile checks it: an
    # export naming another hash (a config this dla would not derive) is refused.
    assert ex.graph["hw_identity"] == want_hash
    graph = dict(ex.graph, hw_identity="0123456789abcdef")
    tensors = {k: ex.tensor(k) for k in dict(ex.module.named_buffers())}
    torch.jit.save(dlasim.export_module(graph, tensors, {}), str(tmp_path / "other.dla.pt"))
    r = run("compile", tmp_path / "other.dla.pt", "-o", tmp_path / "other.dlab")
    assert r.returncode == 1 and "trained for hardware config 0123456789abcdef" in r.stderr, r.stderr
    # A config that disagrees in a field that changes the integers is refused, named.
    r = run("compile", path, "-o", tmp_path / "bad.dlab", "--preset", "default")
    assert r.returncode == 1
    assert "trained for acc_bits = 20" in r.stderr and "--preset default" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "bad.dlab").exists()
    # One that agrees is taken.
    cfg = tmp_path / "hw.json"
    cfg.write_text('{"preset": "default", "acc_bits": 20, "rounding_mode": "HALF_EVEN", "act_sram_kib": 128}')
    r = run("compile", path, "-o", tmp_path / "ok.dlab", "--config", cfg)
    assert r.returncode == 0, r.stderr


def test_models_with_float_parts_compile_to_segments_and_foreign_files_are_refused(tmp_path):
    x = torch.randn(2, 3, 8, 8)
    from test_models import IslandNet
    prepared, path = trained_export(IslandNet(), x, tmp_path / "island.dla.pt",
                                    plan=dict(float_layers=["sigmoid", "mul", "log_softmax"]))
    r = run("compile", path, "-o", tmp_path / "island.dlab")
    assert r.returncode == 0 and "segmented program" in r.stdout, r.stdout + r.stderr
    np.save(tmp_path / "x.npy", x.numpy())  # floats: the host quantizes them as the model does
    r = run("run", tmp_path / "island.dlab", "--input", "x=%s" % (tmp_path / "x.npy"), "--output-dir", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    ex = dlasim.load_export(path)
    (out,) = ex.graph["outputs"]
    with torch.no_grad():
        want = prepared(x)
    assert ex.node(out)["value"] == "float"
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "o" / ("%s.npy" % out))), want)
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(plain))
    r = run("compile", plain, "-o", tmp_path / "plain.dlab")
    assert r.returncode == 1 and "not a dlasim QAT export" in r.stderr, r.stderr
    broken = tmp_path / "broken.dla.pt"
    broken.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    r = run("compile", broken, "-o", tmp_path / "broken.dlab")
    assert r.returncode == 1 and "cannot read it as a TorchScript file" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
