"""Models with float parts (issue 12): leaf modules, one error for every unsupported node,
the first/last rule at float islands, integer inputs, shared modules called twice,
non-finite values, and the clear errors of the hardening issue.

End to end (prepare_qat, a few training steps, export, integer replay on unseen inputs
equal to the eval forward, element for element): a siamese tracker with a float
correlation head, an int4 network with a float layer in the middle, and a YOLOv5-style
detector whose Detect head stays float as a leaf module.
"""

import numpy as np
import pytest
import torch
from torch import nn

import dlasim
import int_reference
import wf_models as M
from dlasim import PlanError, PrecisionPlan, PrepareError

U8_INPUT = {"dtype": "u8", "frac": 8}


def _flat(y):
    out = []
    torch.fx.node.map_aggregate(y, lambda a: out.append(a) if isinstance(a, torch.Tensor) else None)
    return out


def train_steps(model, make_inputs, steps, g, lr=0.02):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    for _ in range(steps):
        loss = sum(o.float().square().mean() for o in _flat(model(*make_inputs(g))))
        opt.zero_grad()
        loss.backward()
        opt.step()


def assert_replay_equals_eval(prepared, path, inputs):
    """integer_forward(path) == the eval forward on `inputs`, every output, every element;
    and the device nodes agree with the independent numpy interpreter."""
    ex = dlasim.load_export(path)
    with torch.no_grad():
        ys = _flat(prepared.eval()(*inputs))
    replay = dlasim.integer_forward(ex, *inputs)
    replay = list(replay) if isinstance(replay, tuple) else [replay]
    assert len(ys) == len(replay) == len(ex.graph["outputs"])
    for name, y, r in zip(ex.graph["outputs"], ys, replay):
        node = ex.node(name)
        if node["value"] == "int":
            assert torch.equal(dlasim.to_integers(y, node["frac"]), r), name
        else:
            assert torch.equal(y, r), name
    all_replay = dlasim.integer_forward(ex, *inputs, return_all=True)
    ints_in = [all_replay[n].numpy() if ex.node(n)["op"] == "input" else None for n in ex.graph["inputs"]]
    segments = {n["name"]: all_replay[n["name"]].numpy() for n in ex.nodes if n["op"] == "quantize"}
    ref = int_reference.run(ex, ints_in, segments)
    for n in ex.nodes:
        if n["value"] == "int" and n["op"] != "quantize":
            np.testing.assert_array_equal(ref[n["name"]], all_replay[n["name"]].numpy(), err_msg=n["name"])
    return ex


# ---------------------------------------------------------------------------------------
# (a) the siamese tracker: one backbone on template and search, a float xcorr head
# ---------------------------------------------------------------------------------------


def tracker_inputs(g, n=2):
    # bright templates, dim search images: the two calls see different statistics
    return (torch.randint(128, 256, (n, 1, 16, 16), generator=g, dtype=torch.uint8),
            torch.randint(0, 16, (n, 1, 32, 32), generator=g, dtype=torch.uint8))


@pytest.mark.parametrize("tie", [True, False])
def test_siamese_tracker_with_a_float_correlation_head(tie, tmp_path):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    example = tracker_inputs(g)
    plan = dict(input=U8_INPUT, float_layers=["head"], tie_calls=["backbone"] if tie else ())
    # uint8 images straight into the prepared model, as into integer_forward
    prepared = dlasim.prepare_qat(M.SiameseTracker(), example, plan=plan, observer="minmax")
    kinds = {n["name"]: n["kind"] for n in prepared.nodes}
    assert kinds["head"] == "float"  # the head is a leaf (float_layers names it): F.conv2d with a tensor weight
    train_steps(prepared, tracker_inputs, 3, g)
    path = dlasim.export(prepared.eval(), example, tmp_path / "tracker.pt")
    ex = assert_replay_equals_eval(prepared, path, tracker_inputs(g))
    convs = [n for n in ex.nodes if n["op"] == "conv2d"]
    assert len(convs) == 6 and {n["source"] for n in convs} == {"backbone.body.%d.0" % i for i in range(3)}
    pairs = {}
    for n in convs:
        pairs.setdefault(n["source"], []).append(n)
    same = all((a["frac"], a["weight_frac"], a["shift"]) == (b["frac"], b["weight_frac"], b["shift"])
               and torch.equal(ex.tensor(a["bias"]["tensor"]), ex.tensor(b["bias"]["tensor"]))
               for a, b in pairs.values())
    notes = "\n".join(dlasim.report(prepared, tracker_inputs(g)).notes)
    if tie:  # one set of fracs (and of biases): one compiled backbone serves both calls
        assert same
        assert ex.node("template")["frac"] == ex.node("search")["frac"] == 8
        assert "calls of 'backbone' are tied" in notes and "different fracs" not in notes
        layers = prepared.layers
        assert layers["backbone_body_0_0"] is layers[next(k for k in layers if k.startswith("backbone_body_0_")
                                                         and k != "backbone_body_0_0")]
    else:
        assert not same
        assert "calls of 'backbone' got different fracs" in notes and "tie_calls=['backbone']" in notes


def test_tie_calls_names_a_module_called_more_than_once():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(PlanError, match="tie_calls entry 'head' names no module called more than once.*backbone"):
        dlasim.prepare_qat(M.SiameseTracker(), tracker_inputs(g), plan=dict(float_layers=["head"], input=U8_INPUT,
                                                                             tie_calls=["head"]))
    with pytest.raises(PlanError, match="'backbone_body_1_3' is set to u4.*'backbone_body_1_0' \\(u8\\).*"
                                        "plan.tie_calls ties them"):
        dlasim.prepare_qat(M.SiameseTracker(), tracker_inputs(g), plan=dict(
            float_layers=["head"], input=U8_INPUT, tie_calls=["backbone"], layers={"backbone_body_1_3": "u4"}))
    with pytest.raises(PlanError, match="tie_calls must be True or a list"):
        PrecisionPlan.coerce(dict(tie_calls="backbone"))


# ---------------------------------------------------------------------------------------
# (b) an int4 network with int8 first/last layers and one float layer in the middle
# ---------------------------------------------------------------------------------------


def images(g, n=2):
    return (torch.randint(0, 256, (n, 1, 16, 16), generator=g, dtype=torch.uint8),)


@pytest.mark.parametrize("at_islands", [False, True])
def test_int4_network_with_a_float_layer_in_the_middle(at_islands, tmp_path):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2)
    plan = PrecisionPlan.preset("int4", input=U8_INPUT, float_layers=["mid"], first_last_at_islands=at_islands)
    prepared = dlasim.prepare_qat(M.FloatMiddle(), images(g), plan=plan)
    kinds = {n["name"]: n["kind"] for n in prepared.nodes}
    # the BatchNorm and the SiLU after the float conv join it (no second try)
    assert kinds["mid"] == kinds["mid_bn"] == kinds["mid_act"] == "float"
    assert any("'mid_bn'" in n and "runs in float too" in n for n in prepared.notes)
    train_steps(prepared, images, 3, g)
    path = dlasim.export(prepared.eval(), images(g), tmp_path / "mid.pt")
    ex = assert_replay_equals_eval(prepared, path, images(g))
    w = {n["name"]: n["weight_dtype"] for n in ex.nodes if "weight_dtype" in n}
    assert w["conv1_0"] == w["fc"] == "i8" and w["conv4_0"] == "i4"  # the graph's first/last; an inner layer
    neighbours = "i8" if at_islands else "i4"  # conv2 feeds the island, conv3 reads it
    assert w["conv2_0"] == w["conv3_0"] == neighbours
    rep = dlasim.report(prepared, images(g))
    notes = "\n".join(rep.notes)
    assert rep.rules["first_last_at_islands"] is at_islands
    assert {r["name"]: r.get("first_last") for r in rep.layers}["conv1_0"] == "first"
    if at_islands:
        assert "first/last rule (int8): first conv1_0, conv3_0, last conv2_0, fc" in notes
    else:
        assert "first/last rule (int8): first conv1_0, last fc" in notes
        assert "neighbours conv2_0, conv3_0 keep the plan's types (plan.first_last_at_islands=False" in notes
    assert "first_last_at_islands" in open(dlasim.plan.__file__).read()  # documented with the plan


# ---------------------------------------------------------------------------------------
# (c) a YOLOv5-style detector whose Detect head stays float, as a leaf module
# ---------------------------------------------------------------------------------------


def det_inputs(g, n=2):
    return (torch.rand(n, 3, 64, 64, generator=g),)


def test_untraceable_module_is_named_with_the_leaf_option():
    model = M.TinyYolo(act=False).eval()  # Detect's eval branch compares traced shapes
    with pytest.raises(PrepareError, match="cannot trace module Detect 'detect': symbolically traced variables.*"
                                           "leaf_modules=\\['detect'\\]"):
        dlasim.prepare_qat(model, det_inputs(torch.Generator().manual_seed(0)))
    with pytest.raises(PlanError, match="leaf_modules entry 'dtect' names no module"):
        dlasim.prepare_qat(model, det_inputs(torch.Generator().manual_seed(0)), leaf_modules=["dtect"])


@pytest.mark.parametrize("how", ["leaf_modules", "float_layers"])
def test_yolov5_detect_head_stays_float_as_a_leaf(how, tmp_path):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    kw = dict(leaf_modules=["detect"]) if how == "leaf_modules" else dict(plan=dict(float_layers=["detect"]))
    prepared = dlasim.prepare_qat(M.TinyYolo(act=False), det_inputs(g), **kw)
    kinds = {n["name"]: n["kind"] for n in prepared.nodes}
    assert kinds["detect"] == "float" and "detect_m_0" not in kinds  # one node: its convs stay float
    assert sum(k == "conv2d" for k in kinds.values()) == 6
    maps = prepared(*det_inputs(g))  # training: Detect returns its maps
    assert isinstance(maps, list) and maps[0].shape == (2, 3, 8, 8, 7)
    train_steps(prepared, det_inputs, 2, g)
    path = dlasim.export(prepared.eval(), det_inputs(g), tmp_path / "yolo.pt")
    ex = assert_replay_equals_eval(prepared, path, det_inputs(g))
    # eval: (boxes, [maps]) -> three host outputs, in order
    assert ex.graph["outputs"] == ["detect__out0", "detect__out1", "detect__out2"]
    assert ex.node("detect__out0")["shape"] == [2, 3 * (8 * 8 + 4 * 4), 7]


def test_tuple_unpacking_of_shapes_traces():
    """`b, c, h, w = x.shape` in a forward: torch 1.13's fx failed on Python 3.11 with
    "list index out of range"; now it traces (and the reshape is named if unsupported)."""

    class Unpack(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)

        def forward(self, x):
            b, c, h, w = x.shape
            return self.conv(x).reshape(b, 4 * h * w)

    x = torch.rand(2, 1, 8, 8)
    p = dlasim.prepare_qat(Unpack(), (x,))
    assert [n["kind"] for n in p.nodes if n["kind"] != "float"] == ["input", "conv2d", "flatten"]


# ---------------------------------------------------------------------------------------
# One error for every unsupported node, with globs; neighbours that join float islands
# ---------------------------------------------------------------------------------------


def test_one_error_lists_every_unsupported_node_with_a_glob():
    x = det_inputs(torch.Generator().manual_seed(0))
    with pytest.raises(PrepareError) as e:
        dlasim.prepare_qat(M.TinyYolo(act=True, act_cls=nn.Mish), x, leaf_modules=["detect"])
    msg = str(e.value)
    assert "6 nodes are not supported" in msg and "\n" not in msg
    for m in ("b1.act", "b2.act", "b3.act", "b4.act", "lat.act", "c3.act"):
        assert "module Mish '%s'" % m in msg
    assert "float_layers=['*.act']" in msg
    # the suggestion works in one more try, and the Mish activations stay the only float parts
    p = dlasim.prepare_qat(M.TinyYolo(act=True, act_cls=nn.Mish), x, leaf_modules=["detect"],
                           plan=dict(float_layers=["*.act"]))
    assert sum(n["kind"] == "float" for n in p.nodes) == 7
    # inside a module: the nodes, or the module as a whole
    with pytest.raises(PrepareError, match="'permute'.*'permute_1'.*float_layers=\\['view\\*', 'permute\\*'\\]\\) "
                                           "\\(or the modules they are inside, as a whole: "
                                           "float_layers=\\['detect'\\]"):
        dlasim.prepare_qat(M.TinyYolo(act=False), x)


def test_a_glob_is_suggested_only_where_it_names_nothing_else():
    """'*.act' would also name a ReLU that runs quantized: the names are suggested instead."""
    model = nn.Sequential(M.YoloConv(1, 4, 3, act_cls=nn.Mish), M.YoloConv(4, 4, 3, act=False),
                          M.YoloConv(4, 4, 3, act_cls=nn.Mish))
    with pytest.raises(PrepareError, match="2 nodes.*float_layers=\\['0.act', '2.act'\\]"):
        dlasim.prepare_qat(model, (torch.rand(1, 1, 8, 8),))


class LstmNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.lstm = nn.LSTM(4, 8, batch_first=True)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        seq = self.conv(x).flatten(2).permute(0, 2, 1)
        out, _ = self.lstm(seq)
        return self.fc(out[:, -1])


def test_lstm_is_named_as_unsupported_and_can_stay_float(tmp_path):
    x = torch.rand(2, 1, 6, 6)
    with pytest.raises(PrepareError) as e:
        dlasim.prepare_qat(LstmNet(), (x,))
    msg = str(e.value)
    assert "node 'lstm' (module LSTM 'lstm'): the DLA has no LSTM" in msg
    assert "float_layers=['flatten', 'permute', 'lstm']" in msg and "getitem" not in msg
    assert "list index out of range" not in msg
    p = dlasim.prepare_qat(LstmNet(), (x,), plan=dict(float_layers=["flatten", "permute", "lstm"]))
    kinds = {n["name"]: n["kind"] for n in p.nodes}
    assert kinds["lstm"] == kinds["getitem"] == "float" and kinds["fc"] == "linear"  # the element joins it
    train_steps(p, lambda g: (torch.rand(2, 1, 6, 6, generator=g),), 2, torch.Generator().manual_seed(0))
    path = dlasim.export(p.eval(), (x,), tmp_path / "lstm.pt")
    assert_replay_equals_eval(p, path, (torch.rand(2, 1, 6, 6),))


# ---------------------------------------------------------------------------------------
# Inputs: integer images; non-finite values; hw
# ---------------------------------------------------------------------------------------


def test_prepared_model_takes_uint8_images_like_integer_forward(tmp_path):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(4)
    u8 = images(g)[0]
    reals = dlasim.datasets.u8_to_real(u8)
    p = dlasim.prepare_qat(M.SmallCNN(4), (u8,), plan=PrecisionPlan.preset("int4", input=U8_INPUT))
    train_steps(p, images, 2, g)  # training on uint8 batches
    p.eval()
    with torch.no_grad():
        assert torch.equal(p(u8), p(reals))
    path = dlasim.export(p, (u8,), tmp_path / "u8.pt")
    assert_replay_equals_eval(p, path, images(g))
    rep = dlasim.report(p, (u8,))
    assert rep.layer("x")["sqnr_db"] == float("inf")
    # integers need a fixed frac, and must fit the type
    free = dlasim.prepare_qat(M.SmallCNN(4), (reals,))
    with pytest.raises(TypeError, match="input 'x' is an integer tensor \\(torch.uint8\\).*fixed frac"):
        free(u8)
    with pytest.raises(ValueError, match="input 'x' holds integers outside u8 \\[0, 255\\]"):
        p(u8.to(torch.int32) + 1)
    with pytest.raises(dlasim.ExportError, match="input 'x' holds integers outside u8"):
        dlasim.integer_forward(path, u8.to(torch.int32) - 1)


def test_non_finite_values_are_an_error_or_counted(tmp_path):
    torch.manual_seed(0)
    nan = torch.full((2, 1, 28, 28), float("nan"))
    with pytest.raises(PrepareError, match="example input 'x': 1568 non-finite value\\(s\\)"):
        dlasim.prepare_qat(M.SmallCNN(4), (nan,))
    x = torch.rand(2, 1, 28, 28)
    bad = x.clone()
    bad[0, 0, 0, :3] = float("nan")
    bad[1, 0, 5, 5] = float("inf")
    p = dlasim.prepare_qat(M.SmallCNN(4), (x,)).eval()
    path = dlasim.export(p, (x,), tmp_path / "n.pt")
    with pytest.raises(ValueError, match="input 'x': 4 non-finite value\\(s\\).*nonfinite='count'"):
        p(bad)
    with pytest.raises(dlasim.ExportError, match="input 'x': 4 non-finite value\\(s\\)"):
        dlasim.integer_forward(path, bad)
    with pytest.raises(ValueError, match="input 'x': 4 non-finite"):
        dlasim.export(p, (bad,), tmp_path / "n2.pt")
    with pytest.raises(ValueError, match="nonfinite 'ignore' is not one of error, count"):
        dlasim.prepare_qat(M.SmallCNN(4), (x,), nonfinite="ignore")
    # opted in: counted, reported, and the replay (opted in too) still equals the eval forward
    c = dlasim.prepare_qat(M.SmallCNN(4), (nan,), nonfinite="count")
    train_steps(c, lambda g: (torch.rand(2, 1, 28, 28, generator=g),), 1, torch.Generator().manual_seed(0))
    c.eval()
    rep = dlasim.report(c, (bad,))
    assert rep.layer("x")["nonfinite"] == 4 and rep.layer("conv1_0")["nonfinite"] == 0
    assert any("'x' saw 4 NaN / inf value(s)" in n for n in rep.notes)
    path = dlasim.export(c, (bad,), tmp_path / "c.pt")
    with torch.no_grad():
        y = c(bad)
    assert torch.isfinite(y).all()
    assert torch.equal(dlasim.to_integers(y, dlasim.output_fracs(path)[0][1]),
                       dlasim.integer_forward(path, bad, nonfinite="count"))
    # weights that training made non-finite
    w = dlasim.prepare_qat(M.SmallCNN(4), (x,))
    with torch.no_grad():
        w.layers["conv2_0"].module.weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="the weights of layer 'conv2_0' \\(module 'conv2.0'\\): \\d+ non-finite"):
        w(x)


@pytest.mark.parametrize("hw", [42, [1, 2, 3], "{\"acc_bits\": 32", object()])
def test_a_bad_hw_argument_is_a_clear_error(hw):
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises((TypeError, ValueError, RuntimeError)) as e:
        dlasim.prepare_qat(nn.Conv2d(1, 2, 3), (x,), hw=hw)
    msg = str(e.value)
    assert "'int' object is not iterable" not in msg
    if not isinstance(hw, str):
        assert "hw must be an HwOptions, a preset name" in msg and "7-integer list" in msg
    with pytest.raises(TypeError, match="hw must be an HwOptions"):
        dlasim.nn.QuantizeAct("i8", frac=4, hw=42)
