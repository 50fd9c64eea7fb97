"""The gradient of a conv + BatchNorm layer trained with batch statistics
(layers._FoldedConvBnGrad: one convolution backward) against autograd through every step
of the fold (MacLayer.fused_bn_grad = False, the path DDP and learnable scales take).

The one-backward form replaces conv^T(g2, w) (the statistics' term of d x) by
conv^T(g2 / inv, Q(w')): where Q(w') == w' (weights on their grid, inv == 1) the two
gradients are the same numbers up to summation order; elsewhere they differ by the
weights' quantization error, and with bn_stats_grad "weight" or False, or after a
saturated weight or a zero gamma, the exact form runs and they agree again."""

import copy

import pytest
import torch
from torch import nn

import dlasim
from dlasim.layers import MacLayer


class ConvBnNet(nn.Module):
    def __init__(self, conv_bias=True):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1, bias=conv_bias)
        self.b1 = nn.BatchNorm2d(8)
        self.r1 = nn.ReLU()
        self.c2 = nn.Conv2d(8, 6, 3, stride=2, padding=1, bias=not conv_bias)
        self.b2 = nn.BatchNorm2d(6)
        self.c3 = nn.Conv2d(6, 6, 3, padding=1, groups=2)
        self.b3 = nn.BatchNorm2d(6)

    def forward(self, x):
        y = self.r1(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return self.b3(self.c3(y)) + y


def prepared_pair(net, x, **kw):
    """(fused, autograd-through-the-fold) copies of one prepared model, calibrated on x, with
    the batch statistics from the float conv (bn_stats_conv="float"), whose gradient
    _FoldedConvBnGrad fuses."""
    kw.setdefault("bn_stats_conv", "float")
    fused = dlasim.prepare_qat(net, (x,), plan="int8", **kw).double()
    fused.train()
    fused(x)
    general = copy.deepcopy(fused)
    for layer in general.layers.values():
        if isinstance(layer, MacLayer):
            layer.fused_bn_grad = False
    return fused, general


def step(model, x, g):
    """(output, d x, {parameter: gradient}) of one training forward and backward of <out, g>."""
    model.zero_grad()
    xi = x.clone().requires_grad_()
    y = model(xi)
    (y * g).sum().backward()
    return y.detach(), xi.grad, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def compare(fused, general, x, rtol):
    torch.manual_seed(11)
    g = torch.randn_like(fused(x))
    ya, xa, pa = step(fused, x, g)
    yb, xb, pb = step(general, x, g)
    assert torch.equal(ya, yb), "the fused path's forward must be the general path's, bit for bit"
    assert set(pa) == set(pb)
    worst = {}
    for name in ["x"] + sorted(pb):
        a, b = (xa, xb) if name == "x" else (pa[name], pb[name])
        worst[name] = float((a - b).norm() / b.norm().clamp_min(1e-300))
    bad = {n: e for n, e in worst.items() if e > rtol}
    assert not bad, "relative gradient differences above %g: %s" % (rtol, bad)
    return worst


def weights_on_their_grid(net):
    """Makes every weight an i8 integer times 2^-7 with a 127 in each output channel: the
    max observer picks frac 7 and Q(w) == w."""
    torch.manual_seed(5)
    with torch.no_grad():
        for conv in (net.c1, net.c2, net.c3):
            q = torch.randint(-127, 128, conv.weight.shape).double()
            q.reshape(q.shape[0], -1)[:, 0] = 127
            conv.weight.copy_(q * 2.0 ** -7)
    return net


def unit_folds(model):
    """Sets each folded BN's gamma to sqrt(var + eps) of the batch it sees, in the layer's
    own arithmetic (its batch statistics, then torch.sqrt), before the fold: inv == 1, w' == w."""
    for layer in model.layers.values():
        if isinstance(layer, MacLayer) and layer.bn is not None:
            def batch_stats(y, layer=layer, stats=layer._batch_stats):
                mean, var, n, rng = stats(y)
                with torch.no_grad():
                    layer.bn.weight.copy_(torch.sqrt(var + layer.bn.eps))
                return mean, var, n, rng

            layer._batch_stats = batch_stats


def test_with_exact_weights_and_unit_folds_the_fused_gradient_is_autograds():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 12, 12, dtype=torch.float64)
    fused, general = prepared_pair(weights_on_their_grid(ConvBnNet().double()), x)
    for model in (fused, general):
        unit_folds(model)
    compare(fused, general, x, rtol=1e-9)


@pytest.mark.parametrize("conv_bias", [True, False])
def test_with_quantized_weights_the_fused_gradient_is_within_the_weights_quantization_error(conv_bias):
    torch.manual_seed(1)
    x = torch.randn(4, 3, 12, 12, dtype=torch.float64)
    fused, general = prepared_pair(ConvBnNet(conv_bias).double(), x)
    worst = compare(fused, general, x, rtol=0.05)
    # the last layer's own gradients have no statistics term downstream: exact
    assert all(e < 1e-9 for n, e in worst.items() if n.startswith("layers.c3")), worst


@pytest.mark.parametrize("mode", ["weight", False])
def test_without_the_statistics_term_in_dx_the_fused_gradient_is_autograds(mode):
    torch.manual_seed(2)
    x = torch.randn(4, 3, 12, 12, dtype=torch.float64)
    fused, general = prepared_pair(ConvBnNet().double(), x, bn_stats_grad=mode)
    compare(fused, general, x, rtol=1e-9)


def test_saturated_weights_and_zero_gammas_take_the_exact_form():
    torch.manual_seed(3)
    x = torch.randn(4, 3, 12, 12, dtype=torch.float64)
    fused, general = prepared_pair(ConvBnNet().double(), x)
    for model in (fused, general):
        c1 = model.layers["c1"]
        with torch.no_grad():  # fracs 2 above the max observer's: the largest weights saturate
            c1.weight_frac.add_(2)
            c1.weight_frac_frozen.fill_(True)
            model.layers["c2"].bn.weight[1] = 0.0
            model.layers["c3"].bn.weight[4] = 0.0
    # the weight saturation is what this test is about: make sure it happens
    w = fused.layers["c1"].folded(x, True, False)[0]
    assert int(fused.layers["c1"]._quantized_weight(w)[0].counts[1]) > 0
    compare(fused, general, x, rtol=1e-9)


# ---------------------------------------------------------------------------
# bn_stats_conv="integer": statistics from the integer conv with running-stat-folded
# weights, against autograd through the same formula written with torch ops
# ---------------------------------------------------------------------------


class ConvBnRelu(nn.Module):
    def __init__(self, bias):
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=bias)
        self.bn = nn.BatchNorm2d(6)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


def integer_stats_reference(layer, ctx, xq, g, stats_grad):
    """(output, d x, {name: gradient}) of the integer-statistics step by autograd, float64:
    Q(w * inv_r) and the output quantizer as STEs, the statistics as BatchNorm's."""
    from dlasim.layers import clip_ints

    bn, conv = layer.bn, layer.module
    with torch.no_grad():
        inv_r = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        wq = layer._quantized_folded_weight(inv_r)[0].y
    params = {"conv.weight": conv.weight, "bn.weight": bn.weight, "bn.bias": bn.bias}
    if conv.bias is not None:
        params["conv.bias"] = conv.bias
    leaf = {n: p.detach().clone().requires_grad_() for n, p in params.items()}
    x = xq.detach().clone().requires_grad_()
    w_f = leaf["conv.weight"] * inv_r.reshape(-1, 1, 1, 1)
    w_ste = w_f + (wq - w_f).detach()
    a = layer.conv_args

    def stats_conv(inp):
        return torch.nn.functional.conv2d(inp, w_ste, None, a["stride"], a["padding"], a["dilation"],
                                          a["groups"]) / inv_r.reshape(1, -1, 1, 1)

    y = stats_conv(x)
    # bn_stats_grad: through the statistics to x and w (True), to w only ("weight"), none (False)
    stats_y = {True: y, "weight": stats_conv(x.detach()), False: y.detach()}[stats_grad]
    mean = stats_y.mean((0, 2, 3))
    var = stats_y.var((0, 2, 3), unbiased=False)
    inv = leaf["bn.weight"] / torch.sqrt(var + bn.eps)
    b = leaf.get("conv.bias")
    out = y * inv.reshape(1, -1, 1, 1) + (leaf["bn.bias"] + ((b - mean) if b is not None else -mean) * inv).reshape(
        1, -1, 1, 1)
    fout = ctx.acts[layer.out_id]
    yf = fout.frac()
    q = dlasim.functional.quantize(out.detach(), fout.dtype, yf, clip_ints(layer.clip, yf), layer.hw)
    kept = torch.where(q.mask, out, out.detach())
    final = kept + (q.y - kept).detach()
    (final * g).sum().backward()
    return q.y, x.grad, {n: t.grad for n, t in leaf.items()}


@pytest.mark.parametrize("stats_grad", [True, "weight", False])
@pytest.mark.parametrize("bias", [True, False])
def test_integer_statistics_step_is_autograd_of_its_formula(stats_grad, bias):
    from dlasim.layers import RunContext

    torch.manual_seed(4)
    x = torch.randn(3, 4, 9, 9, dtype=torch.float64)
    net = ConvBnRelu(bias).double()
    prepared = dlasim.prepare_qat(net, (x,), plan="int8", bn_stats_conv="integer", bn_stats_grad=stats_grad).double()
    prepared.train()
    prepared(x)
    prepared(x)  # running statistics away from their initial values
    (layer,) = [m for m in prepared.layers.values() if isinstance(m, MacLayer)]
    ctx = RunContext(prepared.acts)
    fin = ctx.acts[layer.in_id]
    xq = dlasim.functional.quantize(x, fin.dtype, fin.frac()).y
    g = torch.randn_like(prepared(x))
    snapshot = copy.deepcopy(layer)  # the reference starts from the same running statistics
    want_y, want_dx, want = integer_stats_reference(snapshot, ctx, xq, g, stats_grad)
    xi = xq.clone().requires_grad_()
    layer.zero_grad()
    got_y = layer(xi, ctx)
    (got_y * g).sum().backward()
    assert torch.equal(got_y.detach(), want_y)
    assert int((got_y != 0).sum()) > 0 and int((got_y == 0).sum()) > 0, "the ReLU clip should cut some outputs"
    torch.testing.assert_close(xi.grad, want_dx, rtol=1e-9, atol=1e-12)
    names = {"conv.weight": layer.module.weight, "bn.weight": layer.bn.weight, "bn.bias": layer.bn.bias}
    if bias:
        names["conv.bias"] = layer.module.bias
    for n, p in names.items():
        torch.testing.assert_close(p.grad, want[n], rtol=1e-9, atol=1e-12, msg=lambda m, n=n: "%s: %s" % (n, m))
    # the running statistics moved as BatchNorm's would on the integer conv's output
    assert not torch.equal(layer.bn.running_var, snapshot.bn.running_var)


def test_integer_statistics_eval_and_frozen_bn_are_the_integer_layer():
    """The option changes training with batch statistics only: frozen, the training
    forward is the eval forward, bit for bit, as with the float statistics."""
    torch.manual_seed(5)
    x = torch.randn(4, 3, 12, 12)
    prepared = dlasim.prepare_qat(ConvBnNet(), (x,), plan="int8", bn_stats_conv="integer", freeze_bn_epoch=1)
    prepared.train()
    for _ in range(3):
        prepared(x)
    dlasim.set_epoch(prepared, 1)
    dlasim.disable_observers(prepared)
    with torch.no_grad():
        y_train = prepared(x)
        y_eval = prepared.eval()(x)
    assert torch.equal(y_train, y_eval)
    with pytest.raises(ValueError, match="bn_stats_conv"):
        dlasim.prepare_qat(ConvBnNet(), (x,), plan="int8", bn_stats_conv="half")
