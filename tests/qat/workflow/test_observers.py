"""Observers, the observer/BN schedules, BN folding in training, learnable pow2 scales and
the diagnostics report. References are computed here, by hand or with numpy."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import dlasim
import wf_models as M
from dlasim import observers as obs
from int_arith import RANGES


def brute_frac(lo, hi, dtype):
    qmin, qmax = RANGES[dtype]
    ok = [f for f in range(-32, 33) if hi * 2.0 ** f <= qmax and (qmin == 0 or lo * 2.0 ** f >= qmin)]
    return max(ok) if ok else -32


@pytest.mark.parametrize("clip", [None, (0.0, None), (None, 0.1), (0.0, 6.0), (-0.3, 0.7)])
def test_observing_an_affine_map_by_its_range_is_observing_the_values(clip):
    """ActFormat.observe_affine (a range observer gets per-channel min/max of y, not the
    tensor y * scale + shift) leaves the observer exactly where observing the clamped
    values does, negative scales included; percentile and mse observers see the values."""
    from dlasim.layers import ActFormat, RunContext, clamp_real
    from dlasim.prepare import QatConfig

    torch.manual_seed(3)
    for kind in obs.OBSERVERS:
        cfg = QatConfig(observer=kind)
        ref, fast, fused = (ActFormat(n, "i8", cfg, None) for n in ("ref", "fast", "fused"))
        ctx = RunContext([ref, fast, fused], observe=True)
        for _ in range(3):
            c = 6
            y = torch.randn(2, c, 5, 7) * float(torch.rand(()) * 10)
            scale, shift = torch.randn(c) * 2, torch.randn(c)
            ref.observer.observe(clamp_real(y * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1), clip))
            fast.observe_affine(y, scale, shift, 1, clip, ctx)
            fused.observe_affine(y, scale, shift, 1, clip, ctx, torch.ops.dla.channel_moments(y, 1)[2:])
        for got in (fast, fused):
            assert got.observer.range() == ref.observer.range(), kind
            assert got.observer.frac() == ref.observer.frac(), kind


def test_frac_for_range_is_the_largest_frac_that_holds_the_range():
    rng = np.random.default_rng(0)
    for _ in range(300):
        dtype = rng.choice(list(RANGES))
        scale = 2.0 ** rng.integers(-20, 20)
        lo, hi = sorted((rng.standard_normal(2) * scale).tolist())
        if RANGES[dtype][0] == 0:
            lo = max(lo, 0.0)
        assert obs.frac_for_range(lo, max(hi, 0.0), dtype) == brute_frac(lo, max(hi, 0.0), dtype), (lo, hi, dtype)
    assert obs.frac_for_range(-1.0, 1.0, "i8") == 6      # 1.0 * 2^7 = 128 > 127
    assert obs.frac_for_range(-1.0, 0.99, "i8") == 7     # -128 holds -1.0 exactly
    assert obs.frac_for_range(0.0, 0.0, "u8") == 32


def test_minmax_and_moving_average_observers():
    a, b = torch.tensor([-1.0, 2.0, 0.5]), torch.tensor([-3.0, 1.0])
    mm = obs.MinMaxObserver("i8")
    mm.observe(a)
    mm.observe(b)
    assert mm.range() == (-3.0, 2.0) and mm.frac() == brute_frac(-3.0, 2.0, "i8")
    ma = obs.MovingAverageMinMaxObserver("i8", averaging_constant=0.25)
    ma.observe(a)
    ma.observe(b)
    assert ma.range() == pytest.approx((-1.0 + 0.25 * (-3.0 + 1.0), 2.0 + 0.25 * (1.0 - 2.0)))


def test_percentile_ignores_a_rare_outlier_and_mse_beats_max_on_heavy_tails():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100000, generator=g)
    x[7] = 1000.0
    pc = obs.PercentileObserver("i8", percentile=99.9)
    pc.observe(x)
    mm = obs.MinMaxObserver("i8")
    mm.observe(x)
    assert mm.frac() == brute_frac(float(x.min()), 1000.0, "i8") and pc.frac() >= mm.frac() + 6
    # Laplace-like data at 4 bits: MSE picks a finer frac with less error (numpy HALF_UP reference)
    lap = torch.distributions.Laplace(0.0, 1.0).sample((50000,))
    mse = obs.MSEObserver("i4")
    mse.observe(lap)
    mx = obs.MinMaxObserver("i4")
    mx.observe(lap)

    def err(f):
        v = lap.double().numpy()
        q = np.clip(np.floor(v * 2.0 ** f + 0.5), -8, 7) * 2.0 ** -f
        return float(np.mean((q - v) ** 2))

    assert mse.frac() > mx.frac()
    assert err(mse.frac()) < err(mx.frac())
    assert err(mse.frac()) == pytest.approx(min(err(f) for f in range(mx.frac(), mx.frac() + 4)))


def small(**kw):
    torch.manual_seed(0)
    x = torch.rand(8, 1, 28, 28)
    return dlasim.prepare_qat(M.SmallCNN(4), (x,), **kw), x


def train(prepared, xs, lr=0.05):
    opt = torch.optim.SGD(prepared.parameters(), lr=lr)
    prepared.train()
    for x in xs:
        loss = prepared(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_observer_disable_epoch_freezes_every_frac():
    prepared, x = small(observer_disable_epoch=1, observer="minmax")
    dlasim.set_epoch(prepared, 0)
    train(prepared, [x, x])
    before = prepared.fracs()
    wf_before = prepared.layers["conv2_0"].weight_frac.clone()
    dlasim.set_epoch(prepared, 1)
    train(prepared, [x * 16, x * 16], lr=2.0)  # far larger values and weights
    assert prepared.fracs() == before
    assert torch.equal(prepared.layers["conv2_0"].weight_frac, wf_before)
    # while observing, the same data moves them
    p2, _ = small(observer="minmax")
    train(p2, [x, x, x * 16, x * 16])
    assert p2.fracs()["x"][1] < before["x"][1]


@pytest.mark.parametrize("stats_conv", ["integer", "float"])
def test_bn_folding_updates_running_stats_like_batchnorm_until_frozen(stats_conv):
    """The statistics contract: BatchNorm's running statistics, updated as nn.BatchNorm2d
    would on the conv of the quantized input, with the weights folded by the running
    statistics, quantized and unfolded again ("integer", the default: the conv that runs)
    or with the float weights ("float")."""
    prepared, x = small(freeze_bn_epoch=1, bn_stats_conv=stats_conv)
    dlasim.set_epoch(prepared, 0)
    prepared.train()
    prepared(x)  # calibrates and runs one step
    layer = prepared.layers["conv1_0"]
    bn_ref = nn.BatchNorm2d(4)
    bn_ref.load_state_dict(layer.bn.state_dict())
    w = layer.module.weight.detach()
    if stats_conv == "integer":
        with torch.no_grad():
            inv_r = bn_ref.weight / torch.sqrt(bn_ref.running_var + bn_ref.eps)
            wq = layer._quantized_folded_weight(inv_r)[0].y
        def stats_conv_of(xq):
            return torch.nn.functional.conv2d(xq, wq, None, padding=1) / inv_r.reshape(1, -1, 1, 1)
    else:
        def stats_conv_of(xq):
            return torch.nn.functional.conv2d(xq, w, None, padding=1)
    x2 = torch.rand(8, 1, 28, 28)
    prepared(x2)
    dtype, frac = prepared.fracs()["x"]
    xq = dlasim.functional.quantize(x2, dtype, frac).y  # what the conv read
    bn_ref.train()
    with torch.no_grad():
        bn_ref(stats_conv_of(xq))
    torch.testing.assert_close(layer.bn.running_mean, bn_ref.running_mean)
    torch.testing.assert_close(layer.bn.running_var, bn_ref.running_var)
    dlasim.set_epoch(prepared, 1)
    dlasim.disable_observers(prepared)
    frozen = layer.bn.running_var.clone()
    with torch.no_grad():
        y_train = prepared(x2)
        assert torch.equal(layer.bn.running_var, frozen)
        # frozen BN, frozen fracs: the training forward is the eval forward, bit for bit
        y_eval = prepared.eval()(x2)
    assert torch.equal(y_train, y_eval)


def test_learnable_pow2_scales_get_gradients_and_move(tmp_path):
    prepared, x = small(learnable_scales=True)
    prepared.train()
    prepared(x)
    scales = [a.log2_scale for a in prepared.acts if a.learnable]
    wscales = [m.weight_log2_scale for m in prepared.layers.values() if getattr(m, "weight_log2_scale", None)
               is not None]
    assert len(scales) == len(prepared.acts) and len(wscales) == 5
    loss = torch.nn.functional.cross_entropy(prepared(x), torch.arange(8) % 10)
    loss.backward()
    grads = [s.grad for s in scales + wscales]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    before = prepared.fracs()
    with torch.no_grad():
        for s in scales:
            s.sub_(2.0)  # scale / 4: frac + 2
    after = prepared.fracs()
    assert all(after[k][1] == min(32, before[k][1] + 2) for k in before)
    prepared.eval()
    path = dlasim.export(prepared, (x,), tmp_path / "l.pt")
    assert dlasim.check_export(prepared, path, torch.rand(3, 1, 28, 28)) > 0


def test_report_has_every_layer_and_its_numbers():
    prepared, x = small(plan="int16")
    train(prepared, [x, x])
    rep16 = dlasim.report(prepared, (x,))
    d = rep16.to_dict()
    names = [l["name"] for l in d["layers"]]
    assert names == [n["name"] for n in prepared.nodes if n["kind"] != "float"]
    fc = rep16.layer("fc")
    assert fc["dtype"] == "i16" and fc["weight_dtype"] == "i8" and fc["mac_mode"] == "a16w8"
    assert fc["sqnr_db"] > 40 and fc["overflow"] == 0.0
    assert "conv1_0" in str(rep16) and "SQNR" in str(rep16)
    p4, _ = small(plan="int4")
    train(p4, [x, x])
    assert dlasim.report(p4, (x,)).layer("conv3_0")["sqnr_db"] < rep16.layer("conv3_0")["sqnr_db"]
    # a fixed frac far too fine saturates, and the report shows it
    p_sat, _ = small(plan=dict(fixed_fracs={"conv4": 12}))
    train(p_sat, [x])
    row = dlasim.report(p_sat, (x,)).layer("conv4_0")
    assert row["frac"] == 12 and row["at_limit"] > 0.2 and row["clamped"] > 0.2
    assert math.isfinite(row["sqnr_db"])


@pytest.mark.parametrize("observer", obs.OBSERVERS)
def test_every_observer_trains_and_exports_bit_exactly(observer, tmp_path):
    prepared, x = small(plan="int4", observer=observer, weight_observer="mse" if observer == "mse" else "max")
    train(prepared, [x, torch.rand(8, 1, 28, 28)])
    prepared.eval()
    path = dlasim.export(prepared, (x,), tmp_path / "o.pt")
    assert dlasim.check_export(prepared, path, torch.rand(5, 1, 28, 28)) == 50


def test_post_training_calibration_and_a_hardware_config_from_json(tmp_path):
    torch.manual_seed(0)
    model = M.SmallCNN(4).eval()
    hw = '{"preset": "default", "acc_bits": 24, "rounding_mode": "HALF_EVEN"}'
    prepared = dlasim.prepare_qat(model, (torch.rand(2, 1, 28, 28),), hw=hw, observer="minmax")
    assert prepared.hw_options.acc_bits == 24
    data = [torch.rand(4, 1, 28, 28) * s for s in (1.0, 2.0)]
    dlasim.calibrate(prepared, data)
    assert prepared.acts[0].observer.range()[1] == pytest.approx(float(data[1].max()))
    assert prepared.fracs()["x"] == ("u8", obs.frac_for_range(0.0, float(data[1].max()), "u8"))
    path = dlasim.export(prepared, (data[0],), tmp_path / "c.pt")
    g = dlasim.load_export(path).graph
    assert g["hw"]["acc_bits"] == 24 and g["hw"]["rounding_mode"] == "HALF_EVEN" and g["hw_list"][0] == 24
    assert dlasim.check_export(prepared, path, data[1]) == 40
