"""Models with float parts on the simulator (issue 12): `dla compile net.dla.pt` splits the
export into device segments and host steps (one segmented program), `dla run` runs the
segments on an engine and the float parts with libtorch, and its outputs equal the
export's integer replay (and so the prepared model's eval forward) bit for bit, on emu,
cycle and rtl; `dla signoff` compares every layer of every segment with the compiler's reference
evaluator and every host value bit for bit.

The three cases of issue 12: a siamese tracker whose correlation head stays float, an int4
network with a float layer in the middle, a YOLOv5-style detector whose Detect head stays
float (three float outputs).
"""

import subprocess

import numpy as np
import pytest
import torch

import dlasim
import wf_models as M
from test_float_islands import U8_INPUT, _flat, det_inputs, images, tracker_inputs, train_steps
from test_signoff import DLA, NP


def dla(*args):
    return subprocess.run([DLA, *map(str, args)], capture_output=True, text=True, timeout=240)


def tracker(tmp_path):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    plan = dict(input=U8_INPUT, float_layers=["head"], tie_calls=["backbone"])
    prepared = dlasim.prepare_qat(M.SiameseTracker(), tracker_inputs(g), plan=plan, observer="minmax")
    train_steps(prepared, tracker_inputs, 2, g)
    return prepared, tracker_inputs(g), g, tracker_inputs


def float_middle(tmp_path):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2)
    plan = dlasim.PrecisionPlan.preset("int4", input=U8_INPUT, float_layers=["mid"])
    prepared = dlasim.prepare_qat(M.FloatMiddle(), images(g), plan=plan)
    train_steps(prepared, images, 2, g)
    return prepared, images(g), g, images


def detector(tmp_path):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    prepared = dlasim.prepare_qat(M.TinyYolo(act=False), det_inputs(g), plan=dict(float_layers=["detect"]))
    train_steps(prepared, det_inputs, 2, g)
    return prepared, det_inputs(g), g, det_inputs


# every engine the tool has (rtl in builds with the RTL engine)
ENGINES = tuple(e for e in ("emu", "cycle", "rtl")
                if e != "rtl" or "rtl" in subprocess.run([DLA, "run", "--help"], capture_output=True, text=True).stdout)
CASES = {"siamese_float_head": tracker, "int4_float_middle": float_middle, "yolo_float_detect": detector}


def save_inputs(ex, inputs, tmp_path, as_float):
    """--input specs: the replay's integers (or, with as_float, the floats themselves for
    the host to quantize)."""
    replay = dlasim.integer_forward(ex, *inputs, return_all=True)
    specs = []
    for name, x in zip(ex.graph["inputs"], inputs):
        f = tmp_path / ("in_%s.npy" % name)
        node = ex.node(name)
        if as_float or node["op"] == "float_input":
            np.save(f, x.float().numpy())
        else:
            np.save(f, replay[name].numpy().astype(NP[node["dtype"]]))
        specs += ["--input", "%s=%s" % (name, f)]
    return specs


def check_outputs(ex, prepared, inputs, out_dir):
    replay = dlasim.integer_forward(ex, *inputs)
    replay = list(replay) if isinstance(replay, tuple) else [replay]
    with torch.no_grad():
        ys = _flat(prepared.eval()(*inputs))
    for name, r, y in zip(ex.graph["outputs"], replay, ys):
        got = np.load(out_dir / ("%s.npy" % name))
        if ex.node(name)["value"] == "int":
            np.testing.assert_array_equal(got.astype(np.int64), r.numpy(), err_msg=name)
            np.testing.assert_array_equal(got.astype(np.int64), dlasim.to_integers(y, ex.node(name)["frac"]).numpy())
        else:
            assert got.dtype == np.float32
            assert torch.equal(torch.from_numpy(got), r), name  # bit for bit, as the replay's host
            assert torch.equal(torch.from_numpy(got), y), name  # and as the eval forward


@pytest.mark.parametrize("case", sorted(CASES))
def test_float_parts_run_on_the_engines_bit_for_bit(case, tmp_path):
    prepared, example, g, make_inputs = CASES[case](tmp_path)
    path = dlasim.export(prepared.eval(), example, tmp_path / "net.dla.pt")
    ex = dlasim.load_export(path)
    r = dla("compile", path, "-o", tmp_path / "net.dlab")
    assert r.returncode == 0, r.stderr
    assert "segmented program" in r.stdout and "host step" in r.stdout, r.stdout
    inputs = make_inputs(g)  # unseen inputs
    for engine in ENGINES:
        specs = save_inputs(ex, inputs, tmp_path, as_float=False)
        out = tmp_path / ("out_" + engine)
        r = dla("--log-level", "info", "run", tmp_path / "net.dlab", "--engine", engine, *specs, "--output-dir", out,
                "--dump-layers")
        assert r.returncode == 0, r.stderr
        # progress through spdlog: every device segment and host step, with its time
        assert "[info] device segment 0 on %s:" % engine in r.stderr and "[info] host step '" in r.stderr, r.stderr
        assert "host" in r.stdout and "device" in r.stdout, r.stdout
        check_outputs(ex, prepared, inputs, out)
        # every host value is dumped with the device layers
        hosts = [n["name"] for n in ex.nodes if n["op"] == "host"]
        assert all((out / "layers" / ("%s.npy" % h)).exists() for h in hosts)
    # the sign-off of every layer on both engines, from the export and from the program
    specs = save_inputs(ex, inputs, tmp_path, as_float=False)
    for extra in ([], ["--program", tmp_path / "net.dlab"]):
        r = dla("signoff", path, *specs, "--engines", ",".join(ENGINES), *extra)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "sign-off: PASS" in r.stdout, r.stdout
        rows = [l for l in r.stdout.splitlines()[1:] if l.startswith(ENGINES)]
        ints = [n for n in ex.nodes if n["value"] == "int" and n["op"] not in ("input", "quantize")]
        assert len(rows) >= len(ENGINES) * len(ints)  # every device layer of every segment, on every engine


def test_float_inputs_are_quantized_by_the_host_as_by_the_model(tmp_path):
    prepared, example, g, make_inputs = detector(tmp_path)
    path = dlasim.export(prepared.eval(), example, tmp_path / "net.dla.pt")
    ex = dlasim.load_export(path)
    assert ex.node("x")["op"] == "input"  # an integer input of the device, given as floats
    r = dla("compile", path, "-o", tmp_path / "net.dlab")
    assert r.returncode == 0, r.stderr
    inputs = make_inputs(g)
    specs = save_inputs(ex, inputs, tmp_path, as_float=True)
    r = dla("run", tmp_path / "net.dlab", "--engine", "emu", *specs, "--output-dir", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    check_outputs(ex, prepared, inputs, tmp_path / "out")


def test_bad_inputs_and_damaged_files_are_clear_errors(tmp_path):
    prepared, example, g, make_inputs = tracker(tmp_path)
    path = dlasim.export(prepared.eval(), example, tmp_path / "net.dla.pt")
    ex = dlasim.load_export(path)
    prog = tmp_path / "net.dlab"
    assert dla("compile", path, "-o", prog).returncode == 0
    specs = save_inputs(ex, make_inputs(g), tmp_path, as_float=False)
    out = tmp_path / "out"
    # a missing input names it, its type and shape
    r = dla("run", prog, *specs[:2], "--output-dir", out)
    assert r.returncode == 1 and "missing input 'search' (u8 [2,1,32,32])" in r.stderr, r.stderr
    # a wrong shape names the input and both shapes
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((1, 1, 16, 16), np.uint8))
    r = dla("run", prog, "--input", "template=%s" % bad, *specs[2:], "--output-dir", out)
    assert r.returncode == 1 and "template" in r.stderr and "[2,1,16,16]" in r.stderr, r.stderr
    # NaN in floats the host quantizes
    nan = tmp_path / "nan.npy"
    x = np.zeros((2, 1, 16, 16), np.float32)
    x[0, 0, 0, 0] = np.nan
    np.save(nan, x)
    r = dla("run", prog, "--input", "template=%s" % nan, *specs[2:], "--output-dir", out)
    assert r.returncode == 1 and "input 'template': 1 non-finite value(s)" in r.stderr, r.stderr
    # a damaged file: truncated, or a byte flipped in a segment
    data = prog.read_bytes()
    (tmp_path / "cut.dlab").write_bytes(data[: len(data) // 2])
    r = dla("run", tmp_path / "cut.dlab", *specs, "--output-dir", out)
    assert r.returncode == 1 and "cut.dlab" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (out / "manifest.json").exists()  # nothing was published by the failed runs


@pytest.mark.parametrize("case", ["siamese_float_head", "yolo_float_detect"])
def test_python_device_runs_a_segmented_program_in_batches(case, tmp_path):
    prepared, example, g, make_inputs = CASES[case](tmp_path)
    path = dlasim.export(prepared.eval(), example, tmp_path / "net.dla.pt")
    ex = dlasim.load_export(path)
    assert dla("compile", path, "-o", tmp_path / "net.dlab").returncode == 0
    dev = dlasim.Device(tmp_path / "net.dlab", engine="emu")
    assert dev.segmented and dev.inputs == ex.graph["inputs"] and dev.outputs == ex.graph["outputs"]
    inputs = make_inputs(g, 5)  # the program's batch is 2: chunks of 2, 2 and a padded 1
    got = dev.run(*inputs)
    got = list(got) if isinstance(got, tuple) else [got]
    for k in range(5):
        one = tuple(x[k:k + 1].expand(2, *x.shape[1:]) for x in inputs)  # image k, at the export's batch
        want = dlasim.integer_forward(ex, *one)
        want = list(want) if isinstance(want, tuple) else [want]
        for name, y, w in zip(dev.outputs, got, want):
            assert torch.equal(y[k:k + 1], w[:1]), (name, k)


