"""Precision plans (names, globs, first/last rule, fixed fracs, float layers) and the errors
of prepare_qat: every one names what is wrong and where."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dlasim
import wf_models as M
from dlasim import PlanError, PrecisionPlan, PrepareError


def graph_of(model, x, **kw):
    prepared = dlasim.prepare_qat(model, (x,), **kw)
    return dlasim.export_graph(prepared.eval(), (x,))[0]


def by_source(graph, op=None):
    return {n["source"]: n for n in graph["nodes"] if op is None or n["op"] == op}


X28 = torch.rand(2, 1, 28, 28)


def test_int4_plan_keeps_first_and_last_layers_int8():
    torch.manual_seed(0)
    g = graph_of(M.SmallCNN(4), X28, plan="int4")
    convs = by_source(g)
    assert convs["conv1.0"]["weight_dtype"] == "i8" and convs["conv1.0"]["out"]["dtype"] == "u8"  # first
    assert convs["fc"]["weight_dtype"] == "i8" and convs["fc"]["out"]["dtype"] == "i8"            # last
    for inner in ("conv2.0", "conv3.0", "conv4.0"):
        assert convs[inner]["weight_dtype"] == "i4", inner
    assert convs["conv2.0"]["out"]["dtype"] == "u4" and convs["conv4.0"]["out"]["dtype"] == "i4"
    assert convs["conv2.0"]["mac_mode"] == "a8w4" and convs["conv3.0"]["mac_mode"] == "a4w4"


def test_int4_all_quantizes_the_first_and_last_layers_too():
    torch.manual_seed(0)
    g = graph_of(M.SmallCNN(4), X28, plan="int4_all")
    convs = by_source(g)
    assert {convs[s]["weight_dtype"] for s in ("conv1.0", "conv2.0", "fc")} == {"i4"}
    assert convs["fc"]["out"]["dtype"] == "i4"
    assert g["nodes"][0]["dtype"] == "u8"  # images still arrive as u8


def test_named_and_globbed_layers_override_the_rule_field_by_field():
    torch.manual_seed(0)
    plan = PrecisionPlan.preset("int4", layers={"conv[23].*": "w8a8", "fc": {"act": "i16"}, "conv1": {"weight": "i4"}})
    g = graph_of(M.SmallCNN(4), X28, plan=plan)
    c = by_source(g)
    assert c["conv2.0"]["weight_dtype"] == c["conv3.0"]["weight_dtype"] == "i8"
    assert c["conv2.0"]["out"]["dtype"] == "u8" and c["conv4.0"]["weight_dtype"] == "i4"
    assert c["fc"]["out"]["dtype"] == "i16" and c["fc"]["weight_dtype"] == "i8"  # weight from the rule
    assert c["conv1.0"]["weight_dtype"] == "i4" and c["conv1.0"]["out"]["dtype"] == "u8"  # act from the rule
    # BN and ReLU modules name the conv they are folded into
    g2 = graph_of(M.SmallCNN(4), X28, plan=dict(layers={"conv2.1": "w4a8"}))
    assert by_source(g2)["conv2.0"]["weight_dtype"] == "i4"


def test_int16_activations_and_fixed_fracs():
    torch.manual_seed(0)
    g = graph_of(M.SmallCNN(4), X28, plan=PrecisionPlan.preset("int16", fixed_fracs={"fc": 3},
                                                                input={"dtype": "u8", "frac": 8}))
    c = by_source(g)
    assert all(n["out"]["dtype"] == "i16" for n in g["nodes"] if "out" in n)
    assert all(n["mac_mode"] == "a16w8" for n in g["nodes"] if n["op"] == "conv2d" and n["source"] != "conv1.0")
    assert c["conv1.0"]["mac_mode"] == "a8w8"
    assert c["fc"]["out"]["frac"] == 3
    assert g["nodes"][0]["frac"] == 8


class LastConv(nn.Module):
    """A detector head: the last 1x1 conv has large negative outputs (objectness logits)."""

    def __init__(self):
        super().__init__()
        self.body = M.conv_bn_relu(3, 8)
        self.head = nn.Conv2d(8, 2, 1)
        with torch.no_grad():
            self.head.bias.fill_(-40.0)

    def forward(self, x):
        return self.head(self.body(x))


def test_a_fixed_frac_holds_through_training_for_the_last_conv():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    prepared = dlasim.prepare_qat(LastConv(), (x,), plan=dict(layers={"head": {"frac": 4}}), observer="minmax")
    opt = torch.optim.SGD(prepared.parameters(), lr=0.01)
    for _ in range(3):
        loss = prepared(torch.randn(2, 3, 8, 8)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    g = dlasim.export_graph(prepared.eval(), (x,))[0]
    head = by_source(g)["head"]
    assert head["out"]["frac"] == 4 and head["out"]["dtype"] == "i8"
    free = dlasim.prepare_qat(LastConv(), (x,), observer="minmax")
    free(x)
    assert free.fracs()["head"][1] == 1  # the observer: -40 needs i8 frac 1; the plan's 4 clips at -8


def test_plan_naming_no_layer_is_an_error():
    with pytest.raises(PlanError, match="'conv9' names no layer of the model.*conv1.0"):
        graph_of(M.SmallCNN(4), X28, plan=dict(layers={"conv9": "w4a4"}))
    with pytest.raises(PlanError, match="'head' names no layer"):
        graph_of(M.SmallCNN(4), X28, plan=dict(fixed_fracs={"head": 3}))
    with pytest.raises(PlanError, match="float_layers entry 'decoder.\\*' names no layer"):
        graph_of(M.SmallCNN(4), X28, plan=dict(float_layers=["decoder.*"]))
    with pytest.raises(PlanError, match="'pool1'.*keep their input's type and frac"):
        graph_of(M.SmallCNN(4), X28, plan=dict(layers={"pool1": "w8a8"}))
    with pytest.raises(PlanError, match="unknown activation type 'i2'"):
        graph_of(M.SmallCNN(4), X28, plan=dict(layers={"fc": {"act": "i2"}}))
    with pytest.raises(PlanError, match="unknown plan preset"):
        PrecisionPlan.coerce("int3")
    with pytest.raises(PlanError, match="plan.input names \\['y'\\]"):
        graph_of(M.SmallCNN(4), X28, plan=dict(input={"y": {"dtype": "u8"}}))


def test_unsupported_combination_for_the_hardware_names_the_layer():
    hw = dlasim.HwOptions.preset("default").replace(supports_a4w4=False)
    with pytest.raises(PlanError, match="layer 'conv3_0' \\(conv2d, module 'conv3.0'\\).*u4 activations with i4 "
                                        "weights: the a4w4 mode.*supports_a4w4 = false"):
        graph_of(M.SmallCNN(4), X28, plan="int4", hw=hw)
    hw16 = dlasim.HwOptions.preset("default").replace(supports_a16w8=False)
    with pytest.raises(PlanError, match="a16w8"):
        graph_of(M.SmallCNN(4), X28, plan="int16", hw=hw16)
    graph_of(M.SmallCNN(4), X28, plan="int8", hw=hw16)  # a8w8 always runs


def test_concat_of_explicitly_different_types_is_an_error():
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(PlanError, match="share one type and frac"):
        graph_of(M.YoloNeck(), x, plan=dict(layers={"lat": {"act": "u4"}, "b2": {"act": "u8"}}))
    # auto types are unified without complaint: the concat's inputs get the widest
    g = graph_of(M.YoloNeck(), x, plan=dict(layers={"lat": {"act": "int4"}}))
    cat = next(n for n in g["nodes"] if n["op"] == "concat" and len(n["inputs"]) == 2)
    assert cat["dtype"] == "u8"


class Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.act = nn.Softplus()

    def forward(self, x):
        return self.act(self.conv(x))


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(1, 4, 3))

    def forward(self, x):
        return self.block(x) * 0.5


def test_unsupported_op_names_the_node_and_suggests_float():
    with pytest.raises(PrepareError, match="node 'act' \\(module Softplus 'act'\\).*leave it in float.*"
                                           "float_layers=\\['act'\\]"):
        dlasim.prepare_qat(Unsupported(), (X28,))
    with pytest.raises(PrepareError, match="node 'mul' \\(function mul\\).*float_layers=\\['mul'\\]"):
        dlasim.prepare_qat(Scaled(), (X28,))
    p = dlasim.prepare_qat(Unsupported(), (X28,), plan=dict(float_layers=["act"]))
    assert [n["kind"] for n in p.nodes] == ["input", "conv2d", "float"]


class BnAfterPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(F.max_pool2d(self.conv(x), 2))


class ReluTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x):
        y = self.conv(x)
        return torch.relu(y) + y  # the pre-activation is used too


def test_patterns_the_hardware_cannot_fuse_are_errors():
    with pytest.raises(PrepareError, match="node 'bn'.*BatchNorm must directly follow a conv2d or linear"):
        dlasim.prepare_qat(BnAfterPool(), (X28,))
    with pytest.raises(PrepareError, match="node 'relu'.*cannot fuse.*'conv' is also used elsewhere"):
        dlasim.prepare_qat(ReluTwice(), (X28,))


class ReluAfterPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 4, 3, padding=1)
        self.b = nn.Conv2d(1, 4, 3, padding=1)

    def forward(self, x):
        y = torch.cat([self.a(x), self.b(x)], 1)
        return F.relu6(F.max_pool2d(y, 2)).flatten(1)


def test_clips_move_through_pools_and_concats_into_the_requantizers():
    g = graph_of(ReluAfterPool(), X28)
    convs = by_source(g, "conv2d")
    assert convs["a"]["out"]["clip"] == [0, 6 * 2 ** convs["a"]["out"]["frac"]]
    assert convs["b"]["out"]["clip"] == convs["a"]["out"]["clip"]
    assert [n["op"] for n in g["nodes"]] == ["input", "conv2d", "conv2d", "concat", "max_pool", "flatten"]


def test_prepare_does_not_touch_the_model_and_the_options_are_checked():
    model = M.SmallCNN(4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    p = dlasim.prepare_qat(model, (X28,))
    opt = torch.optim.SGD(p.parameters(), lr=0.1)
    p(X28).sum().backward()
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(TypeError, match="unknown option.*observr"):
        dlasim.prepare_qat(model, (X28,), observr="mse")
    with pytest.raises(ValueError, match="observer 'max' is not one of"):
        dlasim.prepare_qat(model, (X28,), observer="max")


def test_mac_precisions_are_those_of_the_mac_array():
    """i8 weights read 8-bit activations (auto 4-bit inputs widen, with a note); exact
    4-bit inputs there, and i16 x i4, are errors."""
    torch.manual_seed(0)
    p = dlasim.prepare_qat(M.SmallCNN(4), (X28,), plan="int4")
    g = dlasim.export_graph(p.eval(), (X28,))[0]
    nodes = {n["name"]: n for n in g["nodes"]}
    assert nodes["gap"]["dtype"] == "u8" and nodes["fc"]["mac_mode"] == "a8w8"  # fc's input widened
    assert any("'gap'" in n and "'fc' reads it with i8 weights" in n for n in p.notes)
    assert all(n.get("mac_mode") in (None, "a8w8", "a8w4", "a4w4") for n in g["nodes"])
    with pytest.raises(PlanError, match="'fc' \\(linear\\) has i8 weights.*sets 'gap' to u4"):
        dlasim.prepare_qat(M.SmallCNN(4), (X28,), plan=PrecisionPlan.preset("int4", layers={"gap": "u4"}))
    with pytest.raises(PlanError, match="'conv3_0'.*i16 activations with i4 weights, which is not a precision"):
        dlasim.prepare_qat(M.SmallCNN(4), (X28,), plan=PrecisionPlan.preset("int16", layers={"conv3": "w4a16"}))


class AfterIsland(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(1, 4, 3)
        self.d = nn.Conv2d(4, 4, 1)
        self.drop = nn.Dropout(0.1)

    def forward(self, x):
        y = self.drop(torch.sigmoid(self.c(x)))
        return self.d(torch.relu(y.view(y.shape) - 0.5))


def test_identities_and_clips_after_a_float_island_join_it(tmp_path):
    """Dropout, views and the ReLU after a float op read only float values: they run in
    float with it (a note says so), and the conv after them reads their quantized output."""
    torch.manual_seed(0)
    p = dlasim.prepare_qat(AfterIsland(), (X28,), plan=dict(float_layers=["sigmoid", "sub"]))
    kinds = {n["name"]: n["kind"] for n in p.nodes}
    assert kinds["drop"] == kinds["view"] == kinds["relu"] == "float" and kinds["relu_quant"] == "quant_in"
    assert "sub_quant" not in kinds
    assert any("'relu' (relu) reads only float values" in n for n in p.notes)
    assert p.fracs()["relu_quant"][0] == "u8"  # >= 0 in the example: unsigned
    p(X28)
    path = dlasim.export(p.eval(), (X28,), tmp_path / "i.pt")
    assert dlasim.check_export(p, path, torch.rand(3, 1, 28, 28)) == 3 * 4 * 26 * 26
