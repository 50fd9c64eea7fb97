"""Models prepared without edits; their eval forward equals their export's integer replay.

Each model (a residual CNN with `+` / `+=` skips, a YOLOv5-style neck with SPPF max pools,
nearest upsampling and concats, a depthwise-separable network, a two-branch siamese
backbone) is prepared with several precision plans, trained for a few steps, exported,
and replayed on inputs it has never seen; the replay must equal the eval forward in
every element, and an independent numpy int64 interpreter of the exported integers
(int_reference.py) must agree with both.
"""

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

import dlasim
import int_reference
import wf_models as M

MODELS = {
    "residual": (lambda: M.ResidualCNN(), lambda g: (torch.randn(3, 3, 16, 16, generator=g),)),
    "yolo_neck": (lambda: M.YoloNeck(), lambda g: (torch.rand(2, 3, 32, 32, generator=g),)),
    "depthwise": (lambda: M.DepthwiseSeparable(), lambda g: (torch.randn(3, 3, 16, 16, generator=g),)),
    "siamese": (lambda: M.Siamese(), lambda g: (torch.randn(3, 1, 12, 12, generator=g),
                                                torch.randn(3, 1, 12, 12, generator=g))),
}


def _outputs(y):
    return list(y) if isinstance(y, (tuple, list)) else [y]


def train_steps(model, make_inputs, steps, g, lr=0.05):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    for _ in range(steps):
        xs = make_inputs(g)
        loss = sum(o.float().square().mean() for o in _outputs(model(*xs)))
        opt.zero_grad()
        loss.backward()
        for name, p in model.named_parameters():
            assert p.grad is None or torch.isfinite(p.grad).all(), "non-finite gradient in %s" % name
        opt.step()


@pytest.mark.parametrize("plan", ["int8", "int4", "int16"])
@pytest.mark.parametrize("name", list(MODELS))
def test_eval_forward_equals_integer_replay(name, plan, tmp_path):
    build, make_inputs = MODELS[name]
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    model = build()
    example = make_inputs(g)
    prepared = dlasim.prepare_qat(model, example, plan=plan, hw="default")
    train_steps(prepared, make_inputs, 3, g)
    prepared.eval()
    path = dlasim.export(prepared, example, tmp_path / "net.dla.pt", verify=False)
    ex = dlasim.load_export(path)
    for trial in range(2):
        xs = make_inputs(g)  # inputs the export never saw
        with torch.no_grad():
            ys = _outputs(prepared(*xs))
        replay = _outputs(dlasim.integer_forward(path, *xs))
        assert len(ys) == len(replay) == len(ex.graph["outputs"])
        for out_name, y, r in zip(ex.graph["outputs"], ys, replay):
            node = ex.node(out_name)
            assert r.dtype == torch.int64
            assert torch.equal(dlasim.to_integers(y, node["frac"]), r), (name, plan, out_name)
        # The independent reference, from the integers of the file alone.
        all_replay = dlasim.integer_forward(ex, *xs, return_all=True)
        ints_in = [all_replay[n] for n in ex.graph["inputs"]]
        ref = int_reference.run(ex, [t.numpy() for t in ints_in])
        for node in ex.nodes:
            np.testing.assert_array_equal(ref[node["name"]], all_replay[node["name"]].numpy(),
                                          err_msg="%s %s node %s" % (name, plan, node["name"]))


def test_every_op_kind_is_one_registry_entry_that_every_stage_uses():
    """dlasim.ops: a pattern belongs to one entry; every op the models export is an entry
    that builds, exports and replays; an unsupported op's error lists the entries."""
    from dlasim import ops

    owner = {}
    for op in ops.OPS:
        for pattern in [*op.modules, *op.functions, *op.methods]:
            assert owner.setdefault(pattern, op) is op, "%s is matched by %s and %s" % (pattern, owner[pattern].name,
                                                                                         op.name)
        if op.export_op:
            assert None not in (op.build, op.export, op.replay), op.name
    exported = set()
    for make, inputs in MODELS.values():
        xs = inputs(torch.Generator().manual_seed(0))
        graph, _, _, _ = dlasim.export_graph(dlasim.prepare_qat(make(), xs), xs)
        exported |= {n["op"] for n in graph["nodes"]}
    # lut: exported by the activation models of test_lut_models.
    assert exported == {op.export_op for op in ops.OPS if op.export_op} - {"quantize", "lut"}
    with pytest.raises(dlasim.PrepareError) as e:
        dlasim.prepare_qat(nn.Sequential(nn.Conv2d(1, 2, 1), nn.GELU()), (torch.randn(1, 1, 4, 4),))
    assert "module GELU" in str(e.value) and ops.SUPPORTED in str(e.value)


def test_residual_structure_bn_folded_relu_fused_adds_found():
    torch.manual_seed(0)
    model = M.ResidualCNN()
    x = torch.randn(2, 3, 16, 16)
    prepared = dlasim.prepare_qat(model, (x,))
    graph, tensors, _, _ = dlasim.export_graph(prepared, (x,))
    ops = [n["op"] for n in graph["nodes"]]
    # 7 convs (stem, 2 + 2 block convs, 1 downsample), 2 skip adds (`+=`), GAP, flatten, fc
    assert ops.count("conv2d") == 6 and ops.count("add") == 2 and ops.count("linear") == 1
    assert "batch_norm" not in json.dumps(graph) and not any(o in ops for o in ("relu", "bn", "clip"))
    convs = {n["source"]: n for n in graph["nodes"] if n["op"] == "conv2d"}
    assert convs["stem.0"]["out"]["clip"] == [0, None] and convs["stem.0"]["out"]["dtype"] == "u8"  # ReLU fused
    assert convs["layer1.conv2"]["out"]["clip"] == [None, None] and convs["layer1.conv2"]["out"]["dtype"] == "i8"
    adds = [n for n in graph["nodes"] if n["op"] == "add"]
    assert all(a["out"]["clip"] == [0, None] for a in adds)  # torch.relu after `+=` fused into the add
    # the same parameters as the float model: BN is folded at run time, not copied
    assert sum(p.numel() for p in prepared.parameters()) == sum(p.numel() for p in model.parameters())


def test_yolo_neck_concat_inputs_share_a_frac_and_type():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    prepared = dlasim.prepare_qat(M.YoloNeck(), (x,), plan="int8")
    train_steps(prepared, lambda g: (torch.rand(2, 3, 32, 32, generator=g),), 2, torch.Generator().manual_seed(3))
    graph = dlasim.export_graph(prepared.eval(), (x,))[0]
    nodes = {n["name"]: n for n in graph["nodes"]}
    cats = [n for n in graph["nodes"] if n["op"] == "concat"]
    assert len(cats) == 2
    for c in cats:
        formats = {(nodes[i]["dtype"], nodes[i]["frac"]) for i in c["inputs"]}
        assert formats == {(c["dtype"], c["frac"])}, c
    sppf_cat = next(c for c in cats if len(c["inputs"]) == 4)
    pools = [nodes[i] for i in sppf_cat["inputs"] if nodes[i]["op"] == "max_pool"]
    assert len(pools) == 3 and all(p["kernel"] == [5, 5] and p["padding"] == [2, 2, 2, 2] for p in pools)
    ups = [n for n in graph["nodes"] if n["op"] == "upsample2x"]
    assert len(ups) == 1
    heads = [n for n in graph["nodes"] if n["name"] in graph["outputs"]]
    assert [h["op"] for h in heads] == ["conv2d", "conv2d"] and all(h["out"]["dtype"] == "i8" for h in heads)


def test_siamese_branches_share_weights_and_the_two_calls_stay_two_layers():
    torch.manual_seed(0)
    a, b = torch.randn(2, 1, 12, 12), torch.randn(2, 1, 12, 12)
    model = M.Siamese()
    prepared = dlasim.prepare_qat(model, (a, b))
    graph, tensors, _, _ = dlasim.export_graph(prepared.eval(), (a, b))
    enc = [n for n in graph["nodes"] if n["source"] == "encoder.0.0"]
    assert len(enc) == 2  # one per call
    assert torch.equal(tensors[enc[0]["weights"]["tensor"]], tensors[enc[1]["weights"]["tensor"]])
    assert sum(p.numel() for p in prepared.parameters()) == sum(p.numel() for p in model.parameters())
    assert graph["inputs"] == ["a", "b"]


def test_depthwise_groups_relu6_and_count_include_pad_avg_pool():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    prepared = dlasim.prepare_qat(M.DepthwiseSeparable(), (x,))
    graph = dlasim.export_graph(prepared.eval(), (x,))[0]
    dw = [n for n in graph["nodes"] if n["op"] == "conv2d" and n["groups"] > 1]
    assert len(dw) == 3 and all(n["groups"] == n["out_channels"] for n in dw)
    for n in graph["nodes"]:
        if n["op"] == "conv2d":  # ReLU6: clip [0, 6 * 2^frac]
            assert n["out"]["clip"] == [0, 6 * 2 ** n["out"]["frac"]], n["name"]
    avg = [n for n in graph["nodes"] if n["op"] == "avg_pool"]
    assert len(avg) == 1 and avg[0]["kernel"] == [3, 3] and avg[0]["padding"] == [1, 1, 1, 1]
    assert [n["op"] for n in graph["nodes"]][-3:] == ["global_avg_pool", "flatten", "linear"]  # mean([2, 3]); dropout gone


@pytest.mark.parametrize("name", list(MODELS))
def test_float_mode_is_the_float_model(name):
    """The prepared graph run in floats (BN folded with running stats) is the model's eval forward."""
    build, make_inputs = MODELS[name]
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(5)
    model = build()
    model.train()
    with torch.no_grad():
        for _ in range(3):  # non-trivial running statistics
            model(*make_inputs(g))
    model.eval()
    xs = make_inputs(g)
    prepared = dlasim.prepare_qat(model, xs).eval()
    with torch.no_grad():
        ref = _outputs(model(*xs))
        got = _outputs(prepared.run(*xs, float_mode=True))
    for r, q in zip(ref, got):
        torch.testing.assert_close(q, r, rtol=1e-4, atol=1e-5)


class IslandNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gate = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        y = y * torch.sigmoid(self.gate(y))  # a float island in the middle (host)
        y = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(y, 1), 1)
        return torch.log_softmax(self.fc(y), dim=1)  # and one at the end


def test_float_islands_run_on_the_host_and_the_replay_still_matches(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    # every node the DLA cannot run, in one error
    with pytest.raises(dlasim.PrepareError,
                       match="2 nodes.*'mul'.*'log_softmax'.*float_layers=\\['mul', 'log_softmax'\\]"):
        dlasim.prepare_qat(IslandNet(), (x,), plan=dict(float_layers=["sigmoid"]))
    prepared = dlasim.prepare_qat(IslandNet(), (x,), plan=dict(float_layers=["sigmoid", "mul", "log_softmax"]))
    train_steps(prepared, lambda g: (torch.randn(2, 3, 8, 8, generator=g),), 2, torch.Generator().manual_seed(0))
    prepared.eval()
    path = dlasim.export(prepared, (x,), tmp_path / "island.pt")
    ex = dlasim.load_export(path)
    ops = {n["name"]: n["op"] for n in ex.nodes}
    assert ops["sigmoid"] == ops["mul"] == ops["log_softmax"] == "host"
    assert ops["mul_quant"] == "quantize" and ops["gate"] == "conv2d"
    x2 = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        y = prepared(x2)
    assert torch.equal(dlasim.integer_forward(path, x2), y)  # float output of the host island
    with pytest.raises(dlasim.ExportError, match="runs on the host"):
        dlasim.write_graph_file(path, tmp_path / "g.json")


def test_graph_file_for_the_compiler(tmp_path):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    prepared = dlasim.prepare_qat(M.YoloNeck(), (x,), plan="int4").eval()
    path = dlasim.export(prepared, (x,), tmp_path / "neck.pt")
    jpath = dlasim.write_graph_file(path, tmp_path / "neck.json")
    doc = json.loads(open(jpath).read())
    blob = (tmp_path / "neck.bin").read_bytes()
    assert doc["format"] == "dlasim-graph" and doc["version"] == 1 and doc["weights_file"] == "neck.bin"
    ex = dlasim.load_export(path)
    total = 0
    for n in doc["nodes"]:
        if n["op"] == "conv2d":
            w = ex.tensor(ex.node(n["name"])["weights"]["tensor"])
            got = np.frombuffer(blob, dtype=np.int8, count=n["weights"]["count"], offset=n["weights"]["offset"])
            np.testing.assert_array_equal(got, w.reshape(-1).numpy())
            assert w.min() >= -8 and w.max() <= 7 or n["weight_dtype"] == "i8"
            assert len(n["bias"]) == n["out_channels"] == len(n["weight_frac"])
            total += n["weights"]["count"]
    assert total == len(blob)
    assert doc["nodes"][0]["op"] == "input" and doc["outputs"] == ex.graph["outputs"]


def test_uint8_images_are_the_input_integers(tmp_path):
    torch.manual_seed(0)
    images = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    x = dlasim.datasets.u8_to_real(images)
    prepared = dlasim.prepare_qat(M.SmallCNN(4), (x,), plan=dict(input={"dtype": "u8", "frac": 8})).eval()
    path = dlasim.export(prepared, (x,), tmp_path / "f.pt")
    node = dlasim.load_export(path).node("x")
    assert (node["dtype"], node["frac"]) == ("u8", 8)
    assert torch.equal(dlasim.integer_forward(path, images), dlasim.integer_forward(path, x))
    with torch.no_grad():
        assert torch.equal(dlasim.to_integers(prepared(x), dlasim.output_fracs(path)[0][1]),
                           dlasim.integer_forward(path, images))


def test_replay_fails_when_the_file_is_tampered_with(tmp_path):
    """The replay really reads the file: one weight changed -> outputs differ."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    prepared = dlasim.prepare_qat(M.ResidualCNN(), (x,)).eval()
    graph, tensors, hosts, _ = dlasim.export_graph(prepared, (x,))
    key = graph["nodes"][1]["weights"]["tensor"]
    tensors = copy.deepcopy(tensors)
    tensors[key].mul_(-1)  # the stem conv's weights negated
    dlasim.export_module(graph, tensors, hosts).save(str(tmp_path / "bad.pt"))
    with pytest.raises(dlasim.ExportError, match="differs"):
        dlasim.check_export(prepared, tmp_path / "bad.pt", x)


def test_checkpoints_and_copies_keep_every_integer():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28)
    p = dlasim.prepare_qat(M.FashionNet(4), (x,), plan="int4")
    train_steps(p, lambda g: (torch.rand(4, 1, 28, 28, generator=g),), 3, torch.Generator().manual_seed(2))
    p.eval()
    with torch.no_grad():
        y = p(x)
    q = dlasim.prepare_qat(M.FashionNet(4), (x,), plan="int4")
    q.load_state_dict(p.state_dict())
    with torch.no_grad():
        assert torch.equal(q.eval()(x), y)
        assert torch.equal(copy.deepcopy(p)(x), y)


def test_export_shapes_are_those_of_the_export_batch(tmp_path):
    torch.manual_seed(0)
    prepared = dlasim.prepare_qat(M.FashionNet(4), (torch.rand(8, 1, 28, 28),)).eval()
    graph = dlasim.export_graph(prepared, (torch.rand(1, 1, 28, 28),))[0]
    shapes = {n["name"]: n["shape"] for n in graph["nodes"]}
    assert shapes["x"] == [1, 1, 28, 28] and shapes["pool2"] == [1, 16, 7, 7]
    assert shapes["flatten"] == [1, 784] and shapes["fc"] == [1, 10]


@pytest.mark.parametrize("mode,policy,acc_bits", [("HALF_EVEN", "WRAP", 32), ("FLOOR", "SATURATE_FINAL", 18),
                                                  ("HALF_AWAY", "WRAP", 16)])
def test_other_hardware_configs_replay_and_match_the_reference(mode, policy, acc_bits, tmp_path):
    torch.manual_seed(0)
    hw = dlasim.HwOptions.preset("default").replace(rounding_mode=mode, overflow_policy=policy, acc_bits=acc_bits)
    x = torch.randn(2, 3, 16, 16)
    prepared = dlasim.prepare_qat(M.ResidualCNN(), (x,), hw=hw, plan="int16")
    train_steps(prepared, lambda g: (torch.randn(2, 3, 16, 16, generator=g),), 2, torch.Generator().manual_seed(4))
    prepared.eval()
    path = dlasim.export(prepared, (x,), tmp_path / "hw.pt")
    ex = dlasim.load_export(path)
    assert ex.hw == hw
    x2 = torch.randn(2, 3, 16, 16)
    all_replay = dlasim.integer_forward(ex, x2, return_all=True)
    ref = int_reference.run(ex, [all_replay["x"].numpy()])
    for node in ex.nodes:
        np.testing.assert_array_equal(ref[node["name"]], all_replay[node["name"]].numpy(), err_msg=node["name"])
    overflows = sum(int(m.overflow_count) for m in prepared.layers.values())
    if acc_bits == 16:
        assert overflows > 0  # i16 x i8 sums overflow a 16-bit accumulator: counted, and replayed alike


def test_bias_integers_op_is_the_hardware_bias():
    """dla.bias_integers (what the exporter writes): round(b * 2^(x_frac + w_frac)) half up,
    saturated to acc_bits, counted; against a float64 reference."""
    hw = dlasim.HwOptions.preset("default").replace(acc_bits=20)
    b = torch.tensor([0.3, -1.26, 0.0078125, -0.0078125, 1e6, -1e6, 2.5 / 64])
    fw = [2, 4, 0, 0, 3, 3, 0]
    q, counts = torch.ops.dla.bias_integers(b, 6, fw, hw.to_list())
    v = b.double().numpy() * np.exp2(6 + np.asarray(fw))
    ref = np.clip(np.floor(v + 0.5), -(1 << 19), (1 << 19) - 1).astype(np.int64)
    np.testing.assert_array_equal(q.numpy(), ref)
    assert counts.tolist() == [0, 2]
    with pytest.raises(RuntimeError, match="w_fracs has 2 entries"):
        torch.ops.dla.bias_integers(b, 6, [1, 2], hw.to_list())
