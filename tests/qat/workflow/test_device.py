"""dlasim.Device: a compiled program on the emulator or the cycle model from Python, on
batches, through the op library. Its outputs equal the export's integer replay and the
prepared model's eval forward, image for image."""

import pytest
import torch

import dlasim
import wf_models as M
from test_compile_export import run, trained_export


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("device")
    x = torch.rand(2, 1, 28, 28)
    prepared, path = trained_export(M.FashionNet(4), x, tmp / "net.dla.pt", plan="int8")
    r = run("compile", path, "-o", tmp / "net.dlab")
    assert r.returncode == 0, r.stderr
    return prepared, path, tmp / "net.dlab"


@pytest.mark.parametrize("engine", ["emu", "cycle", "rtl"])
def test_a_batch_equals_the_replay_and_the_eval_forward(compiled, engine):
    prepared, path, program = compiled
    try:
        dev = dlasim.Device(program, engine=engine, export=path)
    except RuntimeError as e:
        if "unknown engine 'rtl'" in str(e):
            pytest.skip("a build without the RTL (DLA_BUILD_RTL=OFF)")
        raise
    assert dev.inputs == ["x"] and dev.engine == engine
    x = torch.rand(5, 1, 28, 28)
    y = dev.run(x)
    ex = dlasim.load_export(path)
    (out,) = ex.graph["outputs"]
    assert y.shape[0] == 5 and y.dtype == torch.int64
    assert torch.equal(y, dlasim.integer_forward(ex, x))
    with torch.no_grad():
        assert torch.equal(y, dlasim.to_integers(prepared(x), dev.frac(out)))
    assert torch.equal(dev(x=x[:2]), y[:2])  # by name, and again on the same device
    if engine != "emu":
        assert dev.last_cycles() > 0


def test_integer_inputs_are_taken_as_they_are(compiled):
    _, path, program = compiled
    dev = dlasim.Device(program, export=path)
    dtype, frac, shape = dev.info("x")
    assert shape == [2, 1, 28, 28]  # the export's batch; a batch of 3 runs it twice, padded
    q = dlasim.integer_forward(path, torch.rand(3, 1, 28, 28), return_all=True)["x"]
    assert torch.equal(dev.run(q), dlasim.integer_forward(path, q))


def test_bad_input_is_one_clear_error(compiled):
    _, path, program = compiled
    dev = dlasim.Device(program)
    with pytest.raises(RuntimeError, match=r"input 'x' has shape \[3, 1, 27, 28\]; the program takes \[N, \.\.\.\] "
                                           r"with \.\.\. = \[1, 28, 28\]"):
        dev.run(torch.zeros(3, 1, 27, 28, dtype=torch.int64))
    with pytest.raises(RuntimeError, match="unknown engine 'rtl2'"):
        dlasim.Device(program, engine="rtl2")
    with pytest.raises(RuntimeError, match="no-such.dlab"):
        dlasim.Device(program.parent / "no-such.dlab")
    with pytest.raises(TypeError, match="takes 1 input"):
        dev.run(torch.zeros(1, 1, 28, 28), torch.zeros(1))
    with pytest.raises(RuntimeError, match="input tensor .x.: element 0 = 1000 is outside the range of u8"):
        dev.run(torch.full((1, 1, 28, 28), 1000, dtype=torch.int64))
