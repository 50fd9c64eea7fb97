"""The dla ops against independent integer references (numpy int64, written here), their
gradients, and their errors.

The references do not use the library: rounding, wrapping, clamping, the convolution and
the average-pool multiplier are computed here (the type ranges and the convolution in
int_arith.py, shared with the export replay) from isa/README.md section 1.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

import dlasim
from dlasim import functional as F
from dlasim.hw import HwOptions
from int_arith import RANGES, out_range, ref_conv_int

MODES = ["HALF_UP", "HALF_AWAY", "HALF_EVEN", "FLOOR"]
ACT_TYPES = ["i4", "u4", "i8", "u8", "i16"]
W_TYPES = ["i4", "i8"]

# ---------------------------------------------------------------------------
# Reference arithmetic (numpy int64)
# ---------------------------------------------------------------------------


def ref_shift(v, s, mode):
    """round_shift: v * 2^-s rounded by mode (s may be an array broadcast against v)."""
    v = np.asarray(v, dtype=np.int64)
    s = np.broadcast_to(np.asarray(s, dtype=np.int64), v.shape)
    assert (s < 63).all()
    out = np.empty_like(v)
    left = s <= 0
    out[left] = v[left] * (np.int64(1) << (-s[left]))
    right = ~left
    vr, sr = v[right], s[right]
    q = vr >> sr  # arithmetic shift: floor
    r = vr - (q << sr)
    half = np.int64(1) << (sr - 1)
    if mode == "FLOOR":
        up = np.zeros_like(vr, dtype=bool)
    elif mode == "HALF_UP":
        up = r >= half
    elif mode == "HALF_AWAY":
        up = (r > half) | ((r == half) & (vr >= 0))
    else:
        up = (r > half) | ((r == half) & ((q & 1) == 1))
    out[right] = q + up
    return out


def ref_wrap(v, bits):
    m = np.int64(1) << bits
    return ((np.asarray(v, dtype=np.int64) + m // 2) % m) - m // 2


def ref_clamp(r, lo, hi):
    q = np.clip(r, lo, hi)
    return q, int((q != r).sum())


def ref_round_real(x, frac, mode):
    """Rounds the reals x * 2^frac (x float32/float64 with |x 2^frac| < 2^52) by mode."""
    v = np.asarray(x, dtype=np.float64) * 2.0 ** frac  # exact
    f = np.floor(v)
    r = v - f  # exact
    if mode == "FLOOR":
        up = np.zeros(v.shape, dtype=bool)
    elif mode == "HALF_UP":
        up = r >= 0.5
    elif mode == "HALF_AWAY":
        up = (r > 0.5) | ((r == 0.5) & (v >= 0))
    else:
        up = (r > 0.5) | ((r == 0.5) & (np.fmod(f, 2) != 0))
    return f.astype(np.int64) + up


def ref_mac(exact, bias_q, acc_bits, policy, shifts, mode, lo, hi, oc_axis):
    """finalize_acc + requantize per output channel; returns (q, overflows, saturations)."""
    shape = [1] * exact.ndim
    shape[oc_axis] = -1
    total = exact + bias_q.reshape(shape)
    amin, amax = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    over = (total < amin) | (total > amax)
    acc = ref_wrap(total, acc_bits) if policy == "WRAP" else np.clip(total, amin, amax)
    r = ref_shift(acc, np.broadcast_to(np.asarray(shifts).reshape(shape), acc.shape), mode)
    q, sat = ref_clamp(r, lo, hi)
    return q, int(over.sum()), sat


def ref_bias(b, x_frac, w_fracs, acc_bits, mode):
    """The bias integers at x_frac + w_frac[oc], clamped to the accumulator."""
    out = np.array([ref_round_real(np.float64(bv), x_frac + f, mode) for bv, f in zip(b, w_fracs)], dtype=np.int64)
    amin, amax = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    clipped = np.clip(out, amin, amax)
    return clipped, int((clipped != out).sum())


def rand_ints(rng, dtype, shape, extremes=0.0):
    lo, hi = RANGES[dtype]
    v = rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
    if extremes > 0:
        pick = rng.random(shape) < extremes
        v[pick] = np.where(rng.random(int(pick.sum())) < 0.5, lo, hi)
    return v


def reals(q, frac, dtype=torch.float32):
    return torch.from_numpy(q.astype(np.float64) * 2.0 ** (-frac)).to(dtype)


def ints_of(y, frac):
    q = y.detach().double().numpy() * 2.0 ** frac
    assert (q == np.round(q)).all()
    return q.astype(np.int64)


def hw_of(mode="HALF_UP", acc_bits=32, policy="WRAP", avgpool_shift=15, **flags):
    return HwOptions(acc_bits=acc_bits, overflow_policy=policy, rounding_mode=mode, avgpool_shift=avgpool_shift,
                     **flags)


# ---------------------------------------------------------------------------
# Forward equals the reference
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ACT_TYPES)
def test_quantize_matches_reference(mode, dtype):
    rng = np.random.default_rng(1)
    frac = 5
    ties = (2 * rng.integers(-3000, 3000, 400) + 1) * 2.0 ** (-frac - 1)  # exact halves of the grid
    other = rng.normal(0, 40, 600) * rng.choice([1.0, 1e-3, 1e-9, 1e-13], 600)
    x = torch.from_numpy(np.concatenate([ties, other])).float()
    for clip in [None, (0, None), (-5, 9)]:
        r = F.quantize(x, dtype, frac, clip=clip, hw=hw_of(mode))
        lo, hi = out_range(dtype, clip)
        q, sat = ref_clamp(ref_round_real(x.numpy(), frac, mode), lo, hi)
        assert np.array_equal(ints_of(r.y, frac), q)
        assert np.array_equal(r.mask.numpy(), q == ref_round_real(x.numpy(), frac, mode))
        assert r.counts.tolist() == [0, sat]


def test_quantize_of_tensors_split_across_threads_matches_reference(threads):
    """Per tensor in 32 Ki blocks, per channel in rows: more than one block and row per thread."""
    rng = np.random.default_rng(9)
    x = torch.from_numpy(rng.normal(0, 30, 150_001) * rng.choice([1.0, 1e-3, 1e-9], 150_001)).float()
    for clip in [None, (0, None)]:
        r = F.quantize(x, "i8", 3, clip=clip, hw=hw_of("HALF_EVEN"))
        lo, hi = out_range("i8", clip)
        q, sat = ref_clamp(ref_round_real(x.numpy(), 3, "HALF_EVEN"), lo, hi)
        assert np.array_equal(ints_of(r.y, 3), q) and r.counts.tolist() == [0, sat]
    w = x[:150_000].reshape(300, 500) / 100
    fracs = [int(f) for f in rng.integers(2, 12, 300)]
    r = F.quantize_per_channel(w, fracs, 0, "i4", hw=hw_of("FLOOR"))
    sat_total = 0
    for oc, f in enumerate(fracs):
        q, sat = ref_clamp(ref_round_real(w[oc].numpy(), f, "FLOOR"), -8, 7)
        assert np.array_equal(ints_of(r.y[oc], f), q)
        sat_total += sat
    assert r.counts.tolist() == [0, sat_total]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_quantize_per_channel_scaled_is_quantize_per_channel_of_the_product(dtype, threads):
    """dla.quantize_per_channel_scaled(w, s) == quantize_per_channel(w * s[c]) bit for bit
    (torch's multiply): negative, zero and tiny scales, saturating fracs, a huge product."""
    torch.manual_seed(8)
    w = torch.randn(40, 6, 3, 3, dtype=dtype) * 0.1
    s = torch.randn(40, dtype=dtype) * 3
    s[3], s[7], s[11] = 0.0, -1e-30, 1e30
    fracs = [int(f) for f in torch.randint(0, 12, (40,))]
    for t in ("i8", "i4"):
        want = F.quantize_per_channel(w * s.reshape(-1, 1, 1, 1), fracs, 0, t, hw=hw_of("HALF_EVEN"))
        got = F.quantize_per_channel_scaled(w, s, fracs, 0, t, hw=hw_of("HALF_EVEN"))
        assert torch.equal(got.y, want.y) and torch.equal(got.mask, want.mask)
        assert got.counts.tolist() == want.counts.tolist() and want.counts.tolist()[1] > 0
    with pytest.raises(RuntimeError, match="scale must have shape"):
        F.quantize_per_channel_scaled(w, s[:5], fracs, 0, "i8")
    # with a shift, per channel of a feature map, one frac: quantize(y * s + b) (a BatchNorm's output)
    y = torch.randn(2, 40, 5, 7, dtype=dtype) * 4
    b = torch.randn(40, dtype=dtype)
    for clip in [None, (0, None)]:
        want = F.quantize(y * s.reshape(1, -1, 1, 1) + b.reshape(1, -1, 1, 1), "i8", 4, clip=clip, hw=hw_of("HALF_UP"))
        got = F.quantize_per_channel_scaled(y, s, [4], 1, "i8", clip=clip, hw=hw_of("HALF_UP"), shift=b)
        assert torch.equal(got.y, want.y) and torch.equal(got.mask, want.mask)
        assert got.counts.tolist() == want.counts.tolist()
    with pytest.raises(RuntimeError, match="shift must have shape"):
        F.quantize_per_channel_scaled(y, s, [4], 1, "i8", shift=b[:3])


def test_quantize_per_channel_scaled_mask_on_demand(threads):
    """want_mask=False: the same y and counts; the mask equals the full one, computed only
    when something saturated (an all-true view without storage otherwise)."""
    torch.manual_seed(9)
    w = torch.randn(70, 8, 3, 3) * 0.1
    s = torch.rand(70) + 0.5
    fits = [6] * 70  # |w * s| < 1: nothing saturates at frac 6 in i8
    sat = [int(f) for f in torch.randint(6, 12, (70,))]
    for fracs, saturates in ((fits, False), (sat, True)):
        full = F.quantize_per_channel_scaled(w, s, fracs, 0, "i8")
        lazy = F.quantize_per_channel_scaled(w, s, fracs, 0, "i8", want_mask=False)
        assert torch.equal(lazy.y, full.y) and lazy.counts.tolist() == full.counts.tolist()
        assert (full.counts.tolist()[1] > 0) == saturates
        assert lazy.mask.shape == w.shape and torch.equal(lazy.mask, full.mask)
        assert (lazy.mask.stride() == (0, 0, 0, 0)) == (not saturates)
        # as_ints: y holds the integers themselves, as int16
        ints = F.quantize_per_channel_scaled(w, s, fracs, 0, "i8", want_mask=False, as_ints=True)
        assert ints.y.dtype == torch.int16 and torch.equal(ints.mask, full.mask)
        scale = torch.tensor([2.0 ** -f for f in fracs]).reshape(-1, 1, 1, 1)
        assert torch.equal(ints.y * scale, full.y) and ints.counts.tolist() == full.counts.tolist()


def ref_frac_for_bound(mag, bound):
    """The frac rule by its definition: the largest f in [-32, 32] with mag * 2^f <= bound
    (exact in Python floats: a power-of-two scaling), 32 for 0, 0 for NaN / inf."""
    if mag == 0:
        return 32
    if not math.isfinite(mag):
        return 0
    return max([f for f in range(-32, 33) if mag * 2.0 ** f <= bound] or [-32])


def test_fracs_for_bound_is_the_largest_frac_under_the_bound():
    """dla.fracs_for_bound against the definition: magnitudes near every power of two,
    exactly at the bound, 0, tiny, huge, NaN and inf; one bound or one per magnitude."""
    mags = [0.0, 127.0, 127.0000001, 126.99999, 1.0, 0.5, 2.0 ** -40, 2.0 ** 40, 1e-300, 1e300, 0.75, 3.0,
            float("nan"), float("inf")]
    mags += [math.ldexp(1.0 + k / 7.0, e) for e in range(-12, 12, 3) for k in range(7)]
    m = torch.tensor(mags, dtype=torch.float64)
    for bound in (127.0, 7.0, 32767.0, 128.0):
        got = torch.ops.dla.fracs_for_bound(m, torch.tensor([bound], dtype=torch.float64)).tolist()
        assert got == [ref_frac_for_bound(v, bound) for v in mags], bound
        assert [torch.ops.dla.frac_for_bound(v, bound) for v in mags] == got  # the scalar form
    bounds = torch.tensor([127.0, 128.0] * (len(mags) // 2), dtype=torch.float64)
    got = torch.ops.dla.fracs_for_bound(m[:bounds.numel()], bounds).tolist()
    assert got == [ref_frac_for_bound(v, b) for v, b in zip(mags, bounds.tolist())]
    # a negative magnitude fits at any frac (as 0); a bound that is no positive number ends in range
    odd = torch.ops.dla.fracs_for_bound(torch.tensor([-3.0, 5.0], dtype=torch.float64),
                                        torch.tensor([-1.0], dtype=torch.float64)).tolist()
    assert odd == [32, -32]
    assert torch.ops.dla.fracs_for_bound(torch.tensor([5.0], dtype=torch.float64),
                                         torch.tensor([float("nan")], dtype=torch.float64)).tolist() == [-32]
    with pytest.raises(RuntimeError, match="float64"):
        torch.ops.dla.fracs_for_bound(m.float(), torch.tensor([1.0], dtype=torch.float64))
    with pytest.raises(RuntimeError, match="bounds has shape"):
        torch.ops.dla.fracs_for_bound(m, torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_quantize_per_channel_max_chooses_the_max_observers_fracs(dtype, threads):
    """dla.quantize_per_channel_max(w, s): each channel's frac is the definition's largest
    frac holding max |w * s| (torch's multiply, torch's amax), and y is
    quantize_per_channel of the product at those fracs, bit for bit (as reals and as
    int16); channels of one element, long rows past the vector loop, zero and negative
    scales, a NaN channel (frac 0, max_abs NaN), no scale."""
    torch.manual_seed(11)
    w = torch.randn(37, 5, 7, 3, dtype=dtype) * 0.2
    w[4] = 0.0
    w[5, 0, 0, 0] = 3.5  # the channel's max is an outlier
    s = torch.randn(37, dtype=dtype) * 2
    s[6], s[7] = 0.0, -1.0
    for t, scale in (("i8", s), ("i4", s), ("i8", None)):
        prod = w if scale is None else w * scale.reshape(-1, 1, 1, 1)
        max_abs = prod.abs().reshape(37, -1).amax(1).double()
        bound = float(RANGES[t][1])
        fracs = [ref_frac_for_bound(v, bound) for v in max_abs.tolist()]
        want = F.quantize_per_channel(prod, fracs, 0, t)
        r, got_fracs, got_max = F.quantize_per_channel_max(w, scale, t)
        assert got_fracs.tolist() == fracs and torch.equal(got_max, max_abs)
        assert torch.equal(r.y, want.y) and torch.equal(r.mask, want.mask)
        assert r.counts.tolist() == want.counts.tolist() == [0, 0]
        ints = F.quantize_per_channel_max(w, scale, t, as_ints=True)[0].y
        assert ints.dtype == torch.int16
        assert torch.equal(ints.to(dtype) * torch.tensor([2.0 ** -f for f in fracs], dtype=dtype).reshape(-1, 1, 1, 1),
                           want.y)
    long_rows = torch.randn(3, 1000, dtype=dtype)
    long_rows[1, 997] = float("nan")  # in the loop's tail
    long_rows[2, 17] = float("nan")   # in its vector part
    r, fracs, max_abs = F.quantize_per_channel_max(long_rows, None, "i8")
    assert fracs.tolist()[1:] == [0, 0] and bool(max_abs[1:].isnan().all())
    assert fracs.tolist()[0] == ref_frac_for_bound(float(long_rows[0].abs().max()), 127.0)
    with pytest.raises(RuntimeError, match="scale must have shape"):
        F.quantize_per_channel_max(w, s[:3], "i8")
    with pytest.raises(RuntimeError, match="no elements per channel"):
        F.quantize_per_channel_max(torch.zeros(3, 0), None, "i8")


@pytest.mark.parametrize("mode", MODES)
def test_quantize_per_channel_and_double_inputs(mode):
    rng = np.random.default_rng(2)
    w = torch.from_numpy(rng.normal(0, 0.1, (6, 3, 3, 3)))  # float64
    fracs = [7, 8, 9, 10, 6, 11]
    for dtype in W_TYPES:
        r = F.quantize_per_channel(w, fracs, 0, dtype, hw=hw_of(mode))
        assert r.y.dtype == torch.float64
        lo, hi = RANGES[dtype]
        for oc, f in enumerate(fracs):
            q, _ = ref_clamp(ref_round_real(w[oc].numpy(), f, mode), lo, hi)
            assert np.array_equal(ints_of(r.y[oc], f), q)
    # A per-channel op along another axis.
    r = F.quantize_per_channel(w.float(), [4, 5, 6], 1, "i8", hw=hw_of(mode))
    for c, f in enumerate([4, 5, 6]):
        q, _ = ref_clamp(ref_round_real(w.float()[:, c].numpy(), f, mode), -128, 127)
        assert np.array_equal(ints_of(r.y[:, c], f), q)


CONV_CASES = [
    # shape (n, c, h, w, oc, kh, kw), stride, pad, dil, groups, x, w, y, mode, acc_bits, policy, bias, clip
    ((2, 3, 7, 9, 5, 3, 3), 1, 1, 1, 1, "u8", "i8", "u8", "HALF_UP", 32, "WRAP", True, (0, None)),
    ((1, 4, 11, 6, 6, 3, 1), (2, 1), (1, 0), 1, 1, "i8", "i8", "i8", "HALF_AWAY", 32, "WRAP", True, None),
    ((2, 6, 10, 10, 9, 3, 3), 1, 2, 2, 3, "i4", "i4", "i8", "HALF_EVEN", 32, "SATURATE_FINAL", False, None),
    ((3, 8, 5, 7, 8, 3, 3), 1, 1, 1, 8, "u4", "i8", "u4", "FLOOR", 16, "WRAP", True, None),
    ((1, 5, 9, 9, 7, 1, 1), 1, 0, 1, 1, "i16", "i8", "i16", "HALF_UP", 32, "SATURATE_FINAL", True, None),
    ((2, 3, 13, 12, 4, 7, 7), 2, 3, 1, 1, "u8", "i4", "i8", "HALF_EVEN", 20, "WRAP", True, (-20, 60)),
    ((1, 16, 4, 4, 20, 3, 3), 1, 1, 1, 4, "i8", "i4", "u8", "HALF_AWAY", 12, "SATURATE_FINAL", True, None),
    ((2, 12, 6, 5, 12, 3, 3), 2, 1, 1, 12, "i16", "i4", "i4", "FLOOR", 24, "WRAP", False, (-3, 5)),
    ((1, 2, 3, 3, 3, 3, 3), 1, 0, 1, 1, "u4", "i4", "i16", "HALF_UP", 8, "WRAP", True, None),
    ((4, 33, 3, 3, 17, 2, 2), 1, 0, 1, 1, "i8", "i8", "i8", "HALF_EVEN", 18, "SATURATE_FINAL", True, None),
    # more output channels than one packed kernel holds (64): slices, a ragged last one
    ((2, 16, 5, 6, 150, 3, 3), 1, 1, 1, 1, "u8", "i8", "i8", "HALF_UP", 32, "WRAP", True, None),
    ((1, 8, 4, 5, 272, 3, 3), 1, 1, 1, 2, "i8", "i4", "i8", "HALF_EVEN", 24, "SATURATE_FINAL", False, None),
]


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    """Runs a test with torch's intra-op thread count at 1 and at 2 (the kernels split
    images, rows and blocks across threads with at::parallel_for)."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
def test_conv2d_matches_integer_reference(case, threads):
    shape, stride, pad, dil, groups, xt, wt, yt, mode, acc_bits, policy, with_bias, clip = case
    n, c, h, wd, oc, kh, kw = shape
    stride, pad, dil = [(v, v) if isinstance(v, int) else v for v in (stride, pad, dil)]
    rng = np.random.default_rng(CONV_CASES.index(case))
    xq = rand_ints(rng, xt, (n, c, h, wd), extremes=0.5)
    wq = rand_ints(rng, wt, (oc, c // groups, kh, kw))
    x_frac, y_frac = 3, 2
    w_fracs = [int(v) for v in rng.integers(-2, 9, oc)]
    b = rng.normal(0, 2.0 ** (acc_bits - 12), oc) if with_bias else None
    hw = hw_of(mode, acc_bits, policy)
    for dtype in (torch.float32, torch.float64):
        x = reals(xq, x_frac, dtype)
        w = torch.stack([reals(wq[o], w_fracs[o], dtype) for o in range(oc)])
        bias = None if b is None else torch.from_numpy(b).to(dtype)
        r = F.conv2d(x, w, bias, x_dtype=xt, x_frac=x_frac, w_dtype=wt, w_fracs=w_fracs, y_dtype=yt, y_frac=y_frac,
                     stride=stride, padding=pad, dilation=dil, groups=groups, clip=clip, hw=hw)
        exact = ref_conv_int(xq, wq, stride, pad, dil, groups)
        if bias is None:
            bq, bsat = np.zeros(oc, dtype=np.int64), 0
        else:
            bq, bsat = ref_bias(bias.numpy(), x_frac, w_fracs, acc_bits, mode)
        shifts = [x_frac + f - y_frac for f in w_fracs]
        lo, hi = out_range(yt, clip)
        q, over, sat = ref_mac(exact, bq, acc_bits, policy, shifts, mode, lo, hi, 1)
        assert np.array_equal(ints_of(r.y, y_frac), q)
        assert r.y.dtype == dtype
        assert r.counts.tolist() == [over, sat + bsat]


@pytest.mark.parametrize("case", [0, 2, 5, 6], ids=str)
def test_conv2d_sums_are_the_exact_integer_sums(case, threads):
    """dla.conv2d_sums (a folded BN's statistics conv): the exact sums of the integers as
    reals at x_frac + w_fracs[oc], against the naive integer convolution."""
    shape, stride, pad, dil, groups, xt, wt = CONV_CASES[case][:7]
    n, c, h, wd, oc, kh, kw = shape
    stride, pad, dil = [(v, v) if isinstance(v, int) else v for v in (stride, pad, dil)]
    rng = np.random.default_rng(40 + case)
    xq = rand_ints(rng, xt, (n, c, h, wd), extremes=0.5)
    wq = rand_ints(rng, wt, (oc, c // groups, kh, kw))
    x_frac, w_fracs = 3, [int(v) for v in rng.integers(-2, 9, oc)]
    exact = ref_conv_int(xq, wq, stride, pad, dil, groups)
    for dtype in (torch.float32, torch.float64):
        x = reals(xq, x_frac, dtype)
        w = torch.stack([reals(wq[o], w_fracs[o], dtype) for o in range(oc)])
        y = F.conv2d_sums(x, w, x_dtype=xt, x_frac=x_frac, w_dtype=wt, w_fracs=w_fracs, stride=stride, padding=pad,
                          dilation=dil, groups=groups, hw=hw_of(acc_bits=8))  # no accumulator: 8 bits change nothing
        want = exact.astype(np.float64) * np.exp2(-(x_frac + np.array(w_fracs)))[None, :, None, None]
        assert y.dtype == dtype
        assert np.array_equal(y.double().numpy(), want.astype(np.float32 if dtype == torch.float32 else np.float64))
        # the weight as an int16 tensor of its integers (quantize_per_channel_scaled's as_ints)
        yi = F.conv2d_sums(x, torch.from_numpy(wq.astype(np.int16)), x_dtype=xt, x_frac=x_frac, w_dtype=wt,
                           w_fracs=w_fracs, stride=stride, padding=pad, dilation=dil, groups=groups,
                           hw=hw_of(acc_bits=8))
        assert torch.equal(yi, y)
    lo, hi = RANGES[wt]
    with pytest.raises(RuntimeError, match=r"weight holds integers in \[.*\], outside %s" % wt):
        F.conv2d_sums(reals(xq, x_frac), torch.full((oc, c // groups, kh, kw), hi + 1, dtype=torch.int16), x_dtype=xt,
                      x_frac=x_frac, w_dtype=wt, w_fracs=w_fracs, stride=stride, padding=pad, dilation=dil,
                      groups=groups)


def _exact_layer(rng, c, k, spatial, xt="i8"):
    """Inputs and weights whose products all have one sign: |sum| up to c k k max|x| max|w|."""
    lo, hi = RANGES[xt]
    sign = rng.choice([-1, 1], size=(1, c, 1, 1))
    mag = np.abs(rand_ints(rng, xt, (2, c, spatial, spatial), extremes=0.9))
    xq = np.where(sign > 0, np.minimum(mag, hi), -np.minimum(mag, -lo))
    wq = np.minimum(np.abs(rand_ints(rng, "i8", (8, c, k, k), extremes=0.9)), 127) * sign
    return xq, wq


@pytest.mark.parametrize("c,k,xt", [(512, 3, "i8"), (4096, 1, "i8"), (64, 3, "i16")],
                         ids=["3x3x512-i8", "1x1x4096-i8", "3x3x64-i16"])
def test_layers_past_fp32_exactness(c, k, xt):
    rng = np.random.default_rng(c)
    xq, wq = _exact_layer(rng, c, k, 3 if k == 3 else 2, xt)
    x_frac, w_frac, y_frac = 2, 3, -8
    pad = k // 2
    exact = ref_conv_int(xq, wq, (1, 1), (pad, pad), (1, 1), 1)
    assert np.abs(exact).max() > 2 ** 24  # fp32 cannot hold every such sum
    for mode in ["HALF_UP", "HALF_EVEN"]:
        for policy in ["WRAP", "SATURATE_FINAL"]:
            hw = hw_of(mode, 32, policy)
            r = F.conv2d(reals(xq, x_frac), reals(wq, w_frac), None, x_dtype=xt, x_frac=x_frac, w_dtype="i8",
                         w_fracs=[w_frac], y_dtype="i16", y_frac=y_frac, padding=pad, hw=hw)
            shifts = [x_frac + w_frac - y_frac] * 8
            q, over, sat = ref_mac(exact, np.zeros(8, np.int64), 32, policy, shifts, mode, -32768, 32767, 1)
            assert np.array_equal(ints_of(r.y, y_frac), q)
            assert r.counts.tolist() == [over, sat]
    # The float convolution of the same reals is not exact.
    fp32 = torch.nn.functional.conv2d(reals(xq, 0), reals(wq, 0), padding=pad).double().numpy()
    if xt == "i8":
        assert (fp32 != exact).any()


def test_int16_sums_overflow_the_int32_accumulator_and_wrap():
    # 3x3x64 taps of (-32768) * (-128) = 2^22 sum to 576 * 2^22 > 2^31.
    rng = np.random.default_rng(5)
    xq = np.full((1, 64, 5, 5), -32768, dtype=np.int64)
    xq[0, :, 4, :] = rng.integers(-32768, 32768, (64, 5))
    wq = np.full((2, 64, 3, 3), -128, dtype=np.int64)
    wq[1] = 127
    exact = ref_conv_int(xq, wq, (1, 1), (0, 0), (1, 1), 1)
    assert np.abs(exact).max() >= 2 ** 31
    for policy in ["WRAP", "SATURATE_FINAL"]:
        r = F.conv2d(reals(xq, 0), reals(wq, 0), None, x_dtype="i16", x_frac=0, w_dtype="i8", w_fracs=[0],
                     y_dtype="i16", y_frac=-16, hw=hw_of("HALF_UP", 32, policy))
        q, over, sat = ref_mac(exact, np.zeros(2, np.int64), 32, policy, [16, 16], "HALF_UP", -32768, 32767, 1)
        assert over > 0
        assert np.array_equal(ints_of(r.y, -16), q)
        assert r.counts.tolist() == [over, sat]


@pytest.mark.parametrize("kernel", torch.ops.dla.gemm_kernels())
def test_every_gemm_kernel_gives_the_same_integers(kernel):
    rng = np.random.default_rng(6)
    xq = rand_ints(rng, "i16", (2, 40, 5, 5), extremes=0.5)
    wq = rand_ints(rng, "i8", (9, 40, 3, 3))
    exact = ref_conv_int(xq, wq, (1, 1), (1, 1), (1, 1), 1)
    previous = torch.ops.dla.gemm_kernel()
    try:
        torch.ops.dla.gemm_kernel(kernel)
        r = F.conv2d(reals(xq, 0), reals(wq, 0), None, x_dtype="i16", x_frac=0, w_dtype="i8", w_fracs=[0],
                     y_dtype="i16", y_frac=-10, padding=1, hw=hw_of("HALF_EVEN", 28, "SATURATE_FINAL"))
    finally:
        torch.ops.dla.gemm_kernel(previous)
    q, over, sat = ref_mac(exact, np.zeros(9, np.int64), 28, "SATURATE_FINAL", [10] * 9, "HALF_EVEN", -32768, 32767, 1)
    assert np.array_equal(ints_of(r.y, -10), q)
    assert r.counts.tolist() == [over, sat]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape,types,policy", [
    ((5, 17), ("u8", "i4", "i8"), "WRAP"),
    ((2, 3, 64), ("i16", "i8", "i16"), "SATURATE_FINAL"),
    ((1, 600), ("i4", "i4", "u4"), "WRAP"),
    ((3, 300), ("u4", "i8", "u8"), "SATURATE_FINAL"),
])
def test_linear_matches_integer_reference(mode, shape, types, policy, threads):
    rng = np.random.default_rng(len(shape) * 7 + shape[-1])
    xt, wt, yt = types
    k, n = shape[-1], 11
    xq = rand_ints(rng, xt, shape, extremes=0.3)
    wq = rand_ints(rng, wt, (n, k))
    w_fracs = [int(v) for v in rng.integers(0, 6, n)]
    b = torch.from_numpy(rng.normal(0, 100, n)).float()
    hw = hw_of(mode, 24, policy)
    w = torch.stack([reals(wq[o], w_fracs[o]) for o in range(n)])
    r = F.linear(reals(xq, 2), w, b, x_dtype=xt, x_frac=2, w_dtype=wt, w_fracs=w_fracs, y_dtype=yt, y_frac=1,
                 clip=(-100, None), hw=hw)
    exact = np.einsum("...k,nk->...n", xq, wq)
    bq, bsat = ref_bias(b.numpy(), 2, w_fracs, 24, mode)
    lo, hi = out_range(yt, (-100, None))
    q, over, sat = ref_mac(exact, bq, 24, policy, [2 + f - 1 for f in w_fracs], mode, lo, hi, exact.ndim - 1)
    assert r.y.shape == shape[:-1] + (n,)
    assert np.array_equal(ints_of(r.y, 1), q)
    assert r.counts.tolist() == [over, sat + bsat]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("types,fracs", [
    (("i8", "i8", "i8"), (4, 4, 4)),
    (("i8", "u8", "u8"), (3, 6, 4)),
    (("i16", "i4", "i8"), (10, -2, 7)),
    (("u4", "i16", "i16"), (0, 12, 13)),
    (("i8", "i8", "i4"), (5, 2, 1)),
])
def test_add_matches_reference(mode, types, fracs):
    rng = np.random.default_rng(sum(fracs) + 50)
    (at, bt, yt), (fa, fb, fy) = types, fracs
    a, b = rand_ints(rng, at, (3, 4, 5, 7)), rand_ints(rng, bt, (3, 4, 5, 7))
    for clip in [None, (0, None)]:
        r = F.add(reals(a, fa), reals(b, fb), a_dtype=at, a_frac=fa, b_dtype=bt, b_frac=fb, y_dtype=yt, y_frac=fy,
                  clip=clip, hw=hw_of(mode))
        f = max(fa, fb)
        total = a * (1 << (f - fa)) + b * (1 << (f - fb))
        q, sat = ref_clamp(ref_shift(total, f - fy, mode), *out_range(yt, clip))
        assert np.array_equal(ints_of(r.y, fy), q)
        assert r.counts.tolist() == [0, sat]


def test_add_in_blocks_across_threads_with_its_mask(threads):
    """A tensor of many blocks: every element, the mask (1 where the clamp kept the value)
    and the count; a value off the grid in a late block is named by its element index."""
    rng = np.random.default_rng(77)
    a, b = rand_ints(rng, "i8", (3, 40, 50, 70)), rand_ints(rng, "i8", (3, 40, 50, 70))
    fa, fb, fy = 5, 3, 4
    r = F.add(reals(a, fa), reals(b, fb), a_dtype="i8", a_frac=fa, b_dtype="i8", b_frac=fb, y_dtype="i8",
              y_frac=fy, clip=(-20, 90), hw=hw_of("HALF_EVEN"))
    total = a + b * (1 << (fa - fb))
    unclamped = ref_shift(total, fa - fy, "HALF_EVEN")
    q, sat = ref_clamp(unclamped, -20, 90)
    assert np.array_equal(ints_of(r.y, fy), q)
    assert np.array_equal(r.mask.numpy(), q == unclamped) and 0 < sat < q.size
    assert r.counts.tolist() == [0, sat]
    bad = reals(a, fa).clone()
    bad.view(-1)[400_001] = 0.01
    with pytest.raises(RuntimeError, match=r"a is not a quantized tensor of type i8 at frac 5: element 400001 is 0.01"):
        F.add(bad, reals(b, fb), a_dtype="i8", a_frac=fa, b_dtype="i8", b_frac=fb, y_dtype="i8", y_frac=fy)


def ref_avgpool_m(n, s):
    """M = round(2^S / N), ties up, with exact rationals."""
    from fractions import Fraction
    return math.floor(Fraction(2 ** s, n) + Fraction(1, 2))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kernel,stride,pad,shift", [
    ((2, 2), (2, 2), (0, 0), 15), ((3, 3), (2, 2), (1, 1), 4), ((3, 2), (1, 2), (1, 0), 10), (None, None, (0, 0), 12),
])
@pytest.mark.parametrize("types", [("u8", "i8"), ("i16", "i16"), ("i4", "u4")])
def test_avg_pool_uses_the_hardware_multiplier(mode, kernel, stride, pad, shift, types):
    rng = np.random.default_rng(shift)
    xt, yt = types
    xq = rand_ints(rng, xt, (2, 3, 7, 7))
    fx, fy = 4, 3
    hw = hw_of(mode, avgpool_shift=shift)
    r = F.avg_pool2d(reals(xq, fx), kernel, stride, pad, x_dtype=xt, x_frac=fx, y_dtype=yt, y_frac=fy, hw=hw)
    kh, kw = kernel if kernel is not None else (7, 7)
    sh, sw = stride if stride is not None else (kh, kw)
    xp = np.pad(xq, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    oh, ow = (7 + 2 * pad[0] - kh) // sh + 1, (7 + 2 * pad[1] - kw) // sw + 1
    sums = np.zeros((2, 3, oh, ow), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            sums += xp[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
    m = ref_avgpool_m(kh * kw, shift)
    q, sat = ref_clamp(ref_shift(sums * m, shift + fx - fy, mode), *RANGES[yt])
    assert np.array_equal(ints_of(r.y, fy), q)
    assert r.counts.tolist() == [0, sat]


def test_avg_pool_one_ninth_is_the_hardware_one_not_the_float_one():
    # S = 4: M = round(16 / 9) = 2, so the hardware averages with 2/16 = 0.125, not 1/9.
    x = torch.full((1, 1, 3, 3), 9.0)
    r = F.avg_pool2d(x, 3, 3, 0, x_dtype="u8", x_frac=0, y_dtype="u8", y_frac=0, hw=hw_of(avgpool_shift=4))
    assert r.y.item() == 10.0  # 81 * 2 / 16 = 10.125 -> 10
    assert torch.nn.functional.avg_pool2d(x, 3).item() == 9.0


def test_max_pool_matches_reference():
    rng = np.random.default_rng(8)
    xq = rand_ints(rng, "i8", (2, 3, 8, 7))
    y, idx = F.max_pool2d(reals(xq, 3), 3, 2, 1, dtype="i8", frac=3)
    xp = np.pad(xq, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-10 ** 9)  # padding never wins
    oh, ow = (8 + 2 - 3) // 2 + 1, (7 + 2 - 3) // 2 + 1
    ref = np.full((2, 3, oh, ow), -10 ** 9, dtype=np.int64)
    for i in range(3):
        for j in range(3):
            ref = np.maximum(ref, xp[:, :, i:i + 2 * (oh - 1) + 1:2, j:j + 2 * (ow - 1) + 1:2])
    assert np.array_equal(ints_of(y, 3), ref)
    assert np.array_equal(torch.gather(reals(xq, 3).reshape(6, -1), 1, idx.reshape(6, -1)).reshape(y.shape), y)


def test_concat_copies_tensors_that_share_a_frac():
    a, b = torch.full((1, 2, 2, 2), 0.5), torch.full((1, 3, 2, 2), -0.25)
    y = F.concat([a, b], 1, dtype="i8", fracs=[2, 2])
    assert torch.equal(y, torch.cat([a, b], 1))


# ---------------------------------------------------------------------------
# Regression: stock fake-quant on a float conv is not the hardware
# ---------------------------------------------------------------------------


def stock_fake_quant(y, frac, qmin, qmax):
    return torch.fake_quantize_per_tensor_affine(y, 2.0 ** -frac, 0, qmin, qmax)


def test_regression_tie_rounds_half_up_on_the_hardware():
    # acc = 5 at shift 1 is the tie 2.5: the hardware (HALF_UP) gives 3, PyTorch (ties to even) 2.
    x = torch.tensor([[[[5.0]]]])
    w = torch.tensor([[[[1.0]]]])
    stock = stock_fake_quant(torch.nn.functional.conv2d(x, w), -1, -128, 127)
    r = F.conv2d(x, w, None, x_dtype="i8", x_frac=0, w_dtype="i8", w_fracs=[0], y_dtype="i8", y_frac=-1)
    assert r.y.item() == 6.0  # q = 3 at frac -1
    assert stock.item() == 4.0  # q = 2
    assert r.y.item() != stock.item()


def test_regression_small_accumulator_overflows_and_wraps():
    # A 16-bit accumulator: 3 * 127 * 127 = 48387 wraps to 48387 - 65536 = -17149.
    x = torch.full((1, 3, 1, 1), 127.0)
    w = torch.full((1, 3, 1, 1), 127.0)
    hw = hw_of(acc_bits=16)
    r = F.conv2d(x, w, None, x_dtype="i8", x_frac=0, w_dtype="i8", w_fracs=[0], y_dtype="i16", y_frac=0, hw=hw)
    stock = stock_fake_quant(torch.nn.functional.conv2d(x, w), 0, -32768, 32767)
    assert r.y.item() == -17149.0
    assert r.counts.tolist() == [1, 0]
    assert stock.item() == 32767.0
    r = F.conv2d(x, w, None, x_dtype="i8", x_frac=0, w_dtype="i8", w_fracs=[0], y_dtype="i16", y_frac=0,
                 hw=hw_of(acc_bits=16, policy="SATURATE_FINAL"))
    assert r.y.item() == 32767.0 and r.counts.tolist() == [1, 0]


def test_regression_fp32_inexact_sum():
    # 1x1x4096 convolutions whose exact sums S lie in [2^25, 2^26) (fp32 spacing 4) just
    # above a tie of the output grid (S = 4096 m + 2049, m even): the hardware rounds up,
    # while the float sum loses the low bits and fake-quant rounds the tie to even.
    c, n_out = 4096, 64
    inv127 = pow(127, -1, 4096)
    sums = []
    for j in range(n_out):
        t0 = (2049 * inv127) % 4096
        for k in range(200):
            s = 127 * (t0 + 4096 * (k + j))
            if s >= 2 ** 25 and (s // 4096) % 2 == 0 and s // 127 <= 127 * c:
                sums.append(s)
                break
    assert len(sums) == n_out
    x = np.full((1, c, 1, 1), 127, dtype=np.int64)
    w = np.zeros((n_out, c, 1, 1), dtype=np.int64)
    for j, s in enumerate(sums):
        t = s // 127  # sum of the weights of channel j
        full, rest = divmod(t, 127)
        w[j, :full, 0, 0] = 127
        w[j, full, 0, 0] = rest
    exact = ref_conv_int(x, w, (1, 1), (0, 0), (1, 1), 1)
    assert exact.ravel().tolist() == sums
    r = F.conv2d(reals(x, 0), reals(w, 0), None, x_dtype="i8", x_frac=0, w_dtype="i8", w_fracs=[0], y_dtype="i16",
                 y_frac=-12)
    hardware = np.array([(s + 2048) >> 12 for s in sums])  # HALF_UP
    assert np.array_equal(ints_of(r.y, -12).ravel(), hardware)
    stock = stock_fake_quant(torch.nn.functional.conv2d(reals(x, 0), reals(w, 0)), -12, -32768, 32767)
    assert (ints_of(stock, -12).ravel() != hardware).any()


# ---------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------


def test_quantize_ste_mask_is_zero_exactly_outside_the_clip():
    x = torch.linspace(-20, 20, 801, dtype=torch.float64, requires_grad=True)
    r = F.quantize(x, "i8", 3, clip=(-40, 100))  # reals [-5, 12.5]
    g = torch.randn_like(x)
    r.y.backward(g)
    q = torch.round(x.detach() * 8)
    inside = (q >= -40) & (q <= 100)
    assert torch.equal(r.mask, inside)
    assert torch.equal(x.grad[~inside], torch.zeros(int((~inside).sum()), dtype=torch.float64))
    assert torch.equal(x.grad[inside], g[inside])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ste_grad_keeps_the_gradient_where_the_mask_is_true_and_zeroes_the_rest(dtype):
    """dla.ste_grad (the STE mask of the ops' backward): torch.where(mask, g, 0), NaN and inf
    included (a masked NaN is 0, not NaN), on a non-contiguous gradient too, and sizes that
    split across threads unevenly."""
    torch.manual_seed(4)
    for shape in [(7,), (3, 5, 40, 41), (2, 96, 33, 17)]:
        g = torch.randn(shape, dtype=dtype)
        g.view(-1)[::97] = float("nan")
        g.view(-1)[5::89] = float("inf")
        mask = torch.rand(shape) > 0.4
        want = torch.where(mask, g, torch.zeros((), dtype=dtype))
        got = torch.ops.dla.ste_grad(g, mask)
        assert got.dtype == dtype and got.shape == g.shape
        assert torch.equal(got.isnan(), want.isnan()) and torch.equal(got.nan_to_num(), want.nan_to_num())
        if g.dim() == 4:
            gt, mt = g.transpose(1, 3), mask.transpose(1, 3)
            assert torch.equal(torch.ops.dla.ste_grad(gt, mt).nan_to_num(),
                               torch.where(mt, gt, torch.zeros((), dtype=dtype)).nan_to_num())
    with pytest.raises(RuntimeError, match="mask has shape"):
        torch.ops.dla.ste_grad(torch.zeros(3), torch.ones(4, dtype=torch.bool))
    with pytest.raises(RuntimeError, match="bool"):
        torch.ops.dla.ste_grad(torch.zeros(3), torch.ones(3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ste_channel_sums_are_the_masked_gradient_and_its_channel_sums(dtype):
    """dla.ste_channel_sums (a folded BatchNorm's backward): g1 = torch.where(mask, g, 0),
    sum(g1) and sum(g1 * y) per channel of dimension 1 (float64 references), without a mask
    too."""
    torch.manual_seed(6)
    for shape in [(2, 5, 7, 9), (3, 4), (1, 3, 33, 65)]:
        g, y = torch.randn(shape, dtype=dtype), torch.randn(shape, dtype=dtype)
        dims = [d for d in range(len(shape)) if d != 1]
        for mask in (torch.rand(shape) > 0.5, None):
            want = g if mask is None else torch.where(mask, g, torch.zeros((), dtype=dtype))
            g1, total, dot = torch.ops.dla.ste_channel_sums(g, mask, y, 1)
            assert torch.equal(g1, want)
            tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(total, want.double().sum(dims).to(dtype), **tol)
            torch.testing.assert_close(dot, (want.double() * y.double()).sum(dims).to(dtype), **tol)
    with pytest.raises(RuntimeError, match="y has shape"):
        torch.ops.dla.ste_channel_sums(torch.zeros(2, 3), None, torch.zeros(2, 4), 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_channel_affine_is_the_separate_multiplies_and_adds_in_one_pass(dtype, threads):
    """dla.channel_affine_(g, a, y, b, c, 1) == g * a[c] + y * b[c] + c[c], bit for bit (torch's
    separate operations), in place, with and without a; shapes and bad arguments."""
    torch.manual_seed(10)
    for shape in [(2, 5, 7, 9), (3, 4), (1, 70, 33, 65)]:
        c4 = [1] * len(shape)
        c4[1] = -1
        g, y = torch.randn(shape, dtype=dtype), torch.randn(shape, dtype=dtype)
        a, b, c = (torch.randn(shape[1], dtype=dtype) for _ in range(3))
        for scale in (a, None):
            want = (g if scale is None else g * scale.reshape(c4)) + y * b.reshape(c4) + c.reshape(c4)
            got = g.clone()
            out = torch.ops.dla.channel_affine_(got, scale, y, b, c, 1)
            assert out.data_ptr() == got.data_ptr() and torch.equal(got, want)
    with pytest.raises(RuntimeError, match="y_scale must have shape"):
        torch.ops.dla.channel_affine_(torch.zeros(2, 3), None, torch.zeros(2, 3), torch.zeros(4), torch.zeros(3), 1)
    with pytest.raises(RuntimeError, match="contiguous"):
        torch.ops.dla.channel_affine_(torch.zeros(3, 2).t(), None, torch.zeros(2, 3), torch.zeros(3), torch.zeros(3), 1)


def test_channel_range_is_aminmax_per_channel_nan_included():
    torch.manual_seed(7)
    w = torch.randn(6, 5, 3, 3)
    w[2, 1, 0, 0] = float("nan")
    w[4, 0, 2, 1] = float("inf")
    lo, hi = torch.ops.dla.channel_range(w, 0)
    want_lo, want_hi = torch.aminmax(w.reshape(6, -1), dim=1)
    assert torch.equal(lo.isnan(), want_lo.isnan()) and torch.equal(hi.isnan(), want_hi.isnan())
    assert torch.equal(lo.nan_to_num(), want_lo.nan_to_num()) and torch.equal(hi.nan_to_num(), want_hi.nan_to_num())
    lo1, hi1 = torch.ops.dla.channel_range(w, 1)
    assert torch.equal(lo1[[0, 2, 3, 4]], w.transpose(0, 1).reshape(5, -1)[[0, 2, 3, 4]].amin(1))
    assert bool(lo1[1].isnan())
    # rows longer than the vector loop's step, a NaN in its vector part and in its tail
    for dtype in (torch.float32, torch.float64):
        v = torch.randn(4, 203, dtype=dtype)
        v[1, 5], v[2, 201] = float("nan"), float("nan")
        v[3, 202], v[3, 0] = 50.0, -50.0  # the extremes at both ends
        lo, hi = torch.ops.dla.channel_range(v, 0)
        assert lo.isnan().tolist() == [False, True, True, False] == hi.isnan().tolist()
        assert torch.equal(lo[[0, 3]], v[[0, 3]].amin(1)) and torch.equal(hi[[0, 3]], v[[0, 3]].amax(1))


def test_ste_gradient_without_saturation_is_the_upstream_gradient():
    """No element saturates (counts[1] == 0): the backward keeps no mask and passes the
    gradient through; one saturated element and it is masked again."""
    x = (torch.randint(-100, 100, (4, 9)).double() / 8).requires_grad_()
    r = F.quantize(x, "i8", 3)
    assert int(r.counts[1]) == 0 and bool(r.mask.all())
    g = torch.randn_like(x)
    r.y.backward(g)
    assert torch.equal(x.grad, g)
    w = (torch.randint(-128, 128, (5, 4, 3, 3)).double() / 128).requires_grad_()
    xs = (torch.randint(0, 4, (1, 4, 5, 5)).double() / 16).requires_grad_()
    r = F.conv2d(xs, w, None, x_dtype="u8", x_frac=4, w_dtype="i8", w_fracs=[7], y_dtype="i16", y_frac=11,
                 padding=1)
    assert int(r.counts[1]) == 0
    gy = torch.randn_like(r.y)
    r.y.backward(gy)
    x2, w2 = xs.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    torch.nn.functional.conv2d(x2, w2, padding=1).backward(gy)
    assert torch.allclose(xs.grad, x2.grad) and torch.allclose(w.grad, w2.grad)
    x = x.detach().clone().requires_grad_()
    with torch.no_grad():
        x[0, 0] = 100.0
    r = F.quantize(x, "i8", 3)
    assert int(r.counts[1]) == 1
    r.y.backward(g)
    assert float(x.grad[0, 0]) == 0.0 and torch.equal(x.grad.flatten()[1:], g.flatten()[1:])


def test_conv_add_pool_gradients_are_masked_float_gradients():
    torch.manual_seed(3)
    x = (torch.randint(0, 256, (2, 4, 6, 6)).double() / 16).requires_grad_()
    w = (torch.randint(-128, 128, (5, 4, 3, 3)).double() / 128).requires_grad_()
    r = F.conv2d(x, w, None, x_dtype="u8", x_frac=4, w_dtype="i8", w_fracs=[7], y_dtype="i8", y_frac=3, padding=1)
    assert 0 < int((~r.mask).sum()) < r.mask.numel()
    g = torch.randn_like(r.y)
    r.y.backward(g)
    x2, w2 = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    torch.nn.functional.conv2d(x2, w2, padding=1).backward(g * r.mask)
    assert torch.allclose(x.grad, x2.grad) and torch.allclose(w.grad, w2.grad)

    a = (torch.randint(-128, 128, (3, 7)).double() / 4).requires_grad_()
    b = (torch.randint(-128, 128, (3, 7)).double() / 4).requires_grad_()
    r = F.add(a, b, a_dtype="i8", a_frac=2, b_dtype="i8", b_frac=2, y_dtype="i8", y_frac=2)
    r.y.backward(torch.ones_like(r.y))
    assert torch.equal(a.grad, r.mask.double()) and torch.equal(b.grad, r.mask.double())

    p = (torch.randint(0, 256, (1, 2, 4, 4)).double() / 16).requires_grad_()
    r = F.avg_pool2d(p, 2, 2, 0, x_dtype="u8", x_frac=4, y_dtype="u8", y_frac=4, clip=(None, 100))
    r.y.backward(torch.ones_like(r.y))
    m = 2 ** 15 // 4 / 2 ** 15  # M / 2^S: the hardware's 1/N
    expect = torch.nn.functional.interpolate(r.mask.double(), scale_factor=2) * m
    assert torch.allclose(p.grad, expect)

    q = (torch.randint(0, 256, (1, 1, 4, 4)).double() / 16).requires_grad_()
    y, _ = F.max_pool2d(q, 2, dtype="u8", frac=4)
    y.sum().backward()
    q2 = q.detach().clone().requires_grad_()
    torch.nn.functional.max_pool2d(q2, 2).sum().backward()
    assert torch.equal(q.grad.sum(), q2.grad.sum()) and int((q.grad != 0).sum()) == 4


@pytest.mark.parametrize("per_channel", [False, True])
def test_learnable_scale_gradcheck_on_the_smooth_surrogate(per_channel):
    torch.manual_seed(4)
    x = (torch.randn(3, 4, 5, dtype=torch.float64) * 3).requires_grad_()
    l = (torch.tensor([-3.3, -2.6, -4.1, -3.7], dtype=torch.float64) if per_channel
         else torch.tensor([-3.3], dtype=torch.float64)).requires_grad_()

    def f(x_, l_):
        return F.quantize_learnable(x_, l_, 1, "i4", hw=None, smooth=True).y

    assert torch.autograd.gradcheck(f, (x, l), eps=1e-6, atol=1e-5)


def test_learnable_scale_forward_is_the_integer_quantizer():
    x = torch.randn(200) * 4
    l = torch.tensor([-2.4])  # frac = -floor(-2.4 + 0.5) = 2
    r = F.quantize_learnable(x, l.requires_grad_(), 0, "i8")
    assert torch.equal(r.y, F.quantize(x, "i8", 2).y)
    r.y.sum().backward()
    # TQT: d y / d l = ln2 * (y - x) inside the range, ln2 * y outside.
    expect = math.log(2) * (r.y - torch.where(r.mask, x, torch.zeros_like(x))).sum()
    assert torch.allclose(l.grad, expect.reshape(1))
    assert F.frac_from_log2_scale(-2.4) == 2 and F.frac_from_log2_scale(-2.5) == 2


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def _conv(x, w, **kw):
    args = dict(x_dtype="i8", x_frac=0, w_dtype="i8", w_fracs=[0], y_dtype="i8", y_frac=0)
    args.update(kw)
    return F.conv2d(x, w, None, **args)


def test_the_python_tables_are_the_librarys():
    """plan.MAC_MODES and the hw list come from the op library's tables: every pair the
    plan lists runs on the ops when its mode's flag is on and is refused, naming the
    flag, when it is off; HwOptions' fields are the hw list, in its order."""
    from dlasim import plan
    from dlasim.hw import HW_LIST, TABLES
    x, w = torch.ones(1, 2, 4, 4), torch.ones(2, 2, 3, 3)
    assert plan.MAC_MODES
    for (bits, wgt), (mode, flag) in plan.MAC_MODES.items():
        act = next(name for name, b in TABLES["bits"].items() if b == bits)
        _conv(x, w, x_dtype=act, w_dtype=wgt)
        if flag is not None:
            with pytest.raises(RuntimeError, match="MAC mode %s.*%s is false" % (mode, flag)):
                _conv(x, w, x_dtype=act, w_dtype=wgt, hw=hw_of(**{flag: False}))
    assert HW_LIST == list(HwOptions.__dataclass_fields__)
    assert HwOptions.from_list(hw_of(supports_a8w4=False).to_list()) == hw_of(supports_a8w4=False)


def test_errors_name_the_problem():
    x, w = torch.ones(1, 2, 4, 4), torch.ones(3, 2, 3, 3)
    with pytest.raises(RuntimeError, match="supports_a4w4 is false"):
        _conv(x, w, x_dtype="i4", w_dtype="i4", hw=hw_of(supports_a4w4=False))
    with pytest.raises(RuntimeError, match="supports_a8w4 is false"):
        _conv(x, w, w_dtype="i4", hw=hw_of(supports_a8w4=False))
    with pytest.raises(RuntimeError, match="supports_a16w8 is false"):
        _conv(x, w, x_dtype="i16", hw=hw_of(supports_a16w8=False))
    with pytest.raises(RuntimeError, match="not a weight type"):
        torch.ops.dla.conv2d(x, w, None, 2, 0, 3, [0], 2, 0, [1, 1], [0, 0], [1, 1], 1, None, None, hw_of().to_list())
    with pytest.raises(RuntimeError, match=r"x_frac: frac 33 is out of range \[-32, 32\]"):
        _conv(x, w, x_frac=33)
    with pytest.raises(RuntimeError, match=r"w_fracs\[1\]: frac -40 is out of range"):
        _conv(x, w, w_fracs=[0, -40, 0])
    with pytest.raises(RuntimeError, match="w_fracs has 2 entries; expected 1 or 3"):
        _conv(x, w, w_fracs=[0, 0])
    with pytest.raises(RuntimeError, match=r"weight has 2 input channels per group, but x has 4 channels"):
        _conv(torch.ones(1, 4, 4, 4), w)
    with pytest.raises(RuntimeError, match=r"a has shape \[2, 3\] but b has shape \[3, 2\]"):
        F.add(torch.ones(2, 3), torch.ones(3, 2), a_dtype="i8", a_frac=0, b_dtype="i8", b_frac=0, y_dtype="i8",
              y_frac=0)
    with pytest.raises(RuntimeError, match=r"x is not a quantized tensor of type u8 at frac 2: element 5 is 0.1"):
        t = torch.zeros(8)
        t[5] = 0.1
        F.quantize_per_channel(torch.ones(2, 2), [0], 0, "i8")  # fine
        F.avg_pool2d(t.reshape(1, 1, 2, 4), 2, x_dtype="u8", x_frac=2, y_dtype="u8", y_frac=2)
    with pytest.raises(RuntimeError, match="inputs must share one frac"):
        F.concat([torch.ones(1, 1), torch.ones(1, 1)], 1, dtype="i8", fracs=[0, 1])
    with pytest.raises(RuntimeError, match="acc_bits"):
        F.quantize(torch.ones(2), "i8", 0, hw=[64, 0, 0, 15, 1, 1, 1])
    with pytest.raises(RuntimeError, match="not an activation type"):
        torch.ops.dla.quantize(torch.ones(2), 5, 0, None, None, hw_of().to_list())
    with pytest.raises(RuntimeError, match="leaves no value of type u8"):
        F.quantize(torch.ones(2), "u8", 0, clip=(300, None))
    with pytest.raises(RuntimeError, match="differ by more than 31"):
        F.add(torch.ones(2), torch.ones(2), a_dtype="i8", a_frac=-20, b_dtype="i8", b_frac=20, y_dtype="i8",
              y_frac=0)
    with pytest.raises(RuntimeError, match="no 16-bit multiplier"):
        F.avg_pool2d(torch.ones(1, 1, 16, 16), None, x_dtype="u8", x_frac=0, y_dtype="u8", y_frac=0,
                     hw=hw_of(avgpool_shift=4))
    with pytest.raises(RuntimeError, match="unknown hardware-config preset"):
        HwOptions.preset("huge")


# ---------------------------------------------------------------------------
# TorchScript: the ops trace as dla:: nodes (what the compiler's importer reads)
# ---------------------------------------------------------------------------


def test_traced_graph_holds_dla_ops():
    class M(torch.nn.Module):
        def forward(self, x):
            y = torch.ops.dla.quantize(x, 2, 4, None, None, [32, 0, 0, 15, 1, 1, 1])[0]
            return torch.ops.dla.conv2d(y, torch.ones(2, 3, 1, 1), None, 2, 4, 2, [0], 2, 4, [1, 1], [0, 0],
                                        [1, 1], 1, 0, None, [32, 0, 0, 15, 1, 1, 1])[0]

    traced = torch.jit.trace(M(), torch.randn(1, 3, 4, 4))
    kinds = {n.kind() for n in traced.graph.nodes()}
    assert {"dla::quantize", "dla::conv2d"} <= kinds
    x = torch.randn(1, 3, 4, 4)
    assert torch.equal(traced(x), M()(x))
    assert dlasim.HwOptions.preset("default").to_list() == [32, 0, 0, 15, 1, 1, 1]


@pytest.mark.parametrize("shape", [(3, 5, 4, 6), (7, 4), (1, 2, 1, 3)])
def test_channel_moments_are_batchnorms_statistics_with_their_gradient(shape):
    """dla.channel_moments (the folded BatchNorm's batch statistics): numpy float64 mean and
    biased variance per channel (dimension 1); its gradient matches autograd through the
    plain formula (gradcheck in double)."""
    torch.manual_seed(0)
    y = torch.randn(*shape, dtype=torch.float64) * 3 + 1
    mean, var, lo, hi = torch.ops.dla.channel_moments(y, 1)
    yn = np.moveaxis(y.numpy(), 1, 0).reshape(shape[1], -1)
    np.testing.assert_allclose(mean.numpy(), yn.mean(axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(var.numpy(), yn.var(axis=1), rtol=1e-10, atol=1e-12)
    assert np.array_equal(lo.numpy(), yn.min(axis=1)) and np.array_equal(hi.numpy(), yn.max(axis=1))
    y32 = y.float()
    m32, v32 = torch.ops.dla.channel_moments(y32, 1)[:2]
    assert m32.dtype == torch.float32 and v32.shape == (shape[1],)
    ref = nn.BatchNorm2d(shape[1], momentum=1.0) if len(shape) == 4 else nn.BatchNorm1d(shape[1], momentum=1.0)
    ref.train()(y32)
    torch.testing.assert_close(m32, ref.running_mean)
    n = y.numel() // shape[1]
    torch.testing.assert_close(v32 * (n / max(n - 1, 1)), ref.running_var)
    yg = y.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: torch.ops.dla.channel_moments(t, 1)[:2], (yg,))
    w = torch.randn(shape[1], dtype=torch.float64)
    m = torch.ops.dla.channel_moments(yg, 1)[0]
    (m * w).sum().backward()      # the mean alone
    torch.testing.assert_close(yg.grad, (w / n).reshape([-1 if d == 1 else 1 for d in range(len(shape))]).expand(shape))
    y[0, 0] = float("nan")
    assert torch.isnan(torch.ops.dla.channel_moments(y, 1)[2][0])
    with pytest.raises(RuntimeError, match="channel_moments: y must be a float32 or float64"):
        torch.ops.dla.channel_moments(torch.ones(2, 3, dtype=torch.int64), 1)
