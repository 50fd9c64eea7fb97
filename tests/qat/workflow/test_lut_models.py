"""Stock activations on the DLA's table unit, end to end: a YOLOv5-style net (Conv + BN +
SiLU, C3 bottlenecks with residual adds, SPPF) and MobileNetV3-style inverted residuals
with hardswish (no squeeze-excite: it needs a multiply the DLA lacks) prepare with no
edits, export, compile with `dla compile` and sign off bit for bit on emu, cycle and rtl
against the export's integer replay (the bridge's dla::lut)."""

import json
import math
from fractions import Fraction
from pathlib import Path

import pytest
import torch

import dlasim
from lut_models import FashionNetSiLU, MobileNetV3Blocks, OtherActivations, YoloSiLU
from test_compile_export import run, trained_export

# Every engine the tool has (rtl in builds with the RTL engine: every VLUT on dla_vlut).
ENGINES = ("emu", "cycle") + (("rtl",) if "rtl" in run("run", "--help").stdout else ())


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
    report = dlasim.signoff(path, tmp_path / "net.dlab", x, engines=ENGINES)
    assert report.ok, report.table()
    checked = {r.layer for r in report.layers}
    assert all(n["name"] in checked for n in luts)


# ---------------------------------------------------------------------------------------
# A user's function as a table: dlasim.nn.TableActivation
# ---------------------------------------------------------------------------------------

def softsign(x):
    return x / (1 + x.abs())


class UserTableNet(torch.nn.Module):
    def __init__(self, fn=softsign):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.act = dlasim.nn.TableActivation(fn)
        self.head = torch.nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return self.head(self.act(self.conv(x)))


def softsign_table(x_dtype, x_frac, y_dtype, y_frac):
    """The reference: softsign at every input integer (8-bit) or knot (i16), exactly as a
    fraction, rounded half up (the default rounding) and saturated to the output type."""
    lo, hi = dlasim.RANGES[y_dtype]
    bits = int(x_dtype[1:])
    xs = range(-(1 << (bits - 1)), 1 << (bits - 1)) if bits <= 8 else range(-32768, 32769, 256)
    out = []
    for q in xs:
        r = Fraction(q) * Fraction(2) ** -x_frac
        v = r / (1 + abs(r)) * Fraction(2) ** y_frac
        out.append(min(hi, max(lo, math.floor(v + Fraction(1, 2)))))
    return out


@pytest.mark.parametrize("plan", ["int8", "int16"])
def test_a_user_function_runs_as_a_table_end_to_end(plan, tmp_path):
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16)
    prepared, path = trained_export(UserTableNet(), x, tmp_path / "net.dla.pt", plan=plan)
    ex = dlasim.load_export(path)
    (lut,) = [n for n in ex.nodes if n["op"] == "lut"]
    assert lut["function"] == "table"
    (src,) = [n for n in ex.nodes if n["name"] == lut["inputs"][0]]
    assert lut["table"] == softsign_table(src["dtype"], src["frac"], lut["dtype"], lut["frac"])
    r = run("compile", path, "-o", tmp_path / "net.dlab")
    assert r.returncode == 0, r.stderr
    report = dlasim.signoff(path, tmp_path / "net.dlab", x, engines=("emu", "cycle"))
    assert report.ok, report.table()
    assert lut["name"] in {r.layer for r in report.layers}
    # The compiler's graph file carries the table too.
    graph = dlasim.write_graph_file(path, tmp_path / "net.json")
    r = run("compile", graph, "-o", tmp_path / "via_graph.dlab")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "net.dlab").read_bytes() == (tmp_path / "via_graph.dlab").read_bytes()


def _elementwise_only(bad):
    """tanh on the model's tensors, `bad` on the table's 1-D input vector."""
    return lambda x: torch.tanh(x) if x.dim() > 1 else bad(x)


@pytest.mark.parametrize("bad,why", [
    (lambda x: torch.tanh(x)[:-1], r"same shape \(the table's 256 inputs\), got a torch.float64 tensor of shape \(255,\)"),
    (lambda x: (x > 0).to(torch.int64), r"got a torch.int64 tensor"),
    (lambda x: [0.0] * x.numel(), r"got a list"),
    (lambda x: x / 0.0, r"non-finite"),
])
def test_a_user_table_of_the_wrong_length_or_type_is_refused_naming_the_layer(bad, why, tmp_path):
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises((ValueError, RuntimeError), match=r"layer 'act'.*" + why):
        trained_export(UserTableNet(_elementwise_only(bad)), x, tmp_path / "net.dla.pt", plan="int8")


@pytest.mark.parametrize("edit,why", [(lambda t: t[:-1], "has 256 entries, this one has 255"),
                                      (lambda t: t[:5] + [1000] + t[6:], "table entry 5 = 1000 is outside")])
def test_the_compiler_refuses_a_user_table_of_the_wrong_length_or_type_naming_the_node(edit, why, tmp_path):
    x = torch.rand(1, 3, 16, 16)
    _, path = trained_export(UserTableNet(), x, tmp_path / "net.dla.pt", plan="int8")
    graph = Path(dlasim.write_graph_file(path, tmp_path / "net.json"))
    doc = json.loads(graph.read_text())
    (lut,) = [n for n in doc["nodes"] if n["op"] == "lut"]
    lut["table"] = edit(lut["table"])
    graph.write_text(json.dumps(doc))
    r = run("compile", graph, "-o", tmp_path / "bad.dlab")
    assert r.returncode == 1, r.stderr
    assert lut["name"] in r.stderr and why in r.stderr, r.stderr
    assert not (tmp_path / "bad.dlab").exists()


class TinySigmoid(torch.nn.Module):
    """A conv whose outputs are ~1e-9: the observers give them frac 32, beyond the fracs a
    table takes ([-16, 31])."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.gate = torch.nn.Sigmoid()
        with torch.no_grad():
            self.conv.weight.mul_(1e-9)
            self.conv.bias.mul_(1e-9)

    def forward(self, x):
        return self.gate(self.conv(x))


def test_a_table_error_in_training_names_the_prepared_layer():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(RuntimeError, match=r"^dlasim: layer 'gate' \(module 'gate'\), sigmoid i8\[frac 32\] -> "
                                           r"u8\[frac \d+\]: dla::lut: frac 32 is outside \[-16, 31\]"):
        prepared = dlasim.prepare_qat(TinySigmoid(), (x,), plan="int8")
        prepared(x)


class WideSigmoid(torch.nn.Module):
    """A conv whose outputs reach ~+-1e3: at int16 the observers give them frac 4 (knots
    16 apart), too coarse for sigmoid's table to follow (it needs frac 7)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.gate = torch.nn.Sigmoid()
        with torch.no_grad():
            self.conv.weight.mul_(3e3)
            self.conv.bias.mul_(3e3)

    def forward(self, x):
        return self.gate(self.conv(x))


def test_an_int16_input_beyond_the_tables_range_is_refused_naming_the_layer(tmp_path):
    torch.manual_seed(0)
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(RuntimeError, match=r"^dlasim: layer 'gate' \(module 'gate'\), sigmoid i16\[frac 4\] -> .*"
                                           r"an i16 input at frac 4 spans \[-2\^11, 2\^11\), beyond the range the "
                                           r"table's 257 knots \(2\^4 apart\) can follow sigmoid.*give the input a frac "
                                           r"of at least 7"):
        trained_export(WideSigmoid(), x, tmp_path / "net.dla.pt", plan="int16")
