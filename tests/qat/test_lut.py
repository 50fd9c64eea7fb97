"""dla::lut from Python: the forward against an independent reference (the function in
float64 via math, rounded here by the contract's modes, the i16 interpolation written
out), the backward against finite differences of the function, a training run, and the
errors.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from dlasim import functional as F
from dlasim.hw import HwOptions

MODES = ["HALF_UP", "HALF_AWAY", "HALF_EVEN", "FLOOR"]
RANGE = {"i4": (-8, 7), "u4": (0, 15), "i8": (-128, 127), "u8": (0, 255), "i16": (-32768, 32767)}

FUNCTIONS = {
    "silu": (lambda x: x / (1 + math.exp(-x)), lambda x: torch.nn.functional.silu(x)),
    "sigmoid": (lambda x: 1 / (1 + math.exp(-x)), torch.sigmoid),
    "tanh": (math.tanh, torch.tanh),
    "hardswish": (lambda x: x * min(max(x + 3, 0), 6) / 6, torch.nn.functional.hardswish),
    "hardsigmoid": (lambda x: min(max(x + 3, 0), 6) / 6, torch.nn.functional.hardsigmoid),
    "gelu_tanh": (lambda x: 0.5 * x * (1 + math.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
                  lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
    "leaky_relu": (lambda x: x if x >= 0 else 0.1 * x, lambda x: torch.nn.functional.leaky_relu(x, 0.1)),
    "elu": (lambda x: x if x >= 0 else math.expm1(x), torch.nn.functional.elu),
}
ALPHA = {"leaky_relu": 0.1, "elu": 1.0}


def ref_round(v, mode):
    """v (a Fraction, or a float64 away from ties except exact halves) rounded by mode."""
    q = math.floor(v)
    r = v - q
    if mode == "FLOOR":
        return q
    if r > 0.5:
        return q + 1
    if r < 0.5:
        return q
    return {"HALF_UP": q + 1, "HALF_AWAY": q + 1 if v >= 0 else q, "HALF_EVEN": q + (q % 2)}[mode]


EXACT = {  # the piecewise-rational functions, on Fractions: their ties are exact
    "hardswish": lambda x: x * min(max(x + 3, 0), 6) / 6,
    "hardsigmoid": lambda x: min(max(x + 3, 0), 6) / 6,
    "leaky_relu": lambda x: x if x >= 0 else Fraction(0.1) * x,
}


def ref_entry(fn, k, fx, fy, ty, mode):
    lo, hi = RANGE[ty]
    if fn in EXACT:
        v = EXACT[fn](Fraction(k) * Fraction(2) ** -fx) * Fraction(2) ** fy
    else:
        v = FUNCTIONS[fn][0](math.ldexp(k, -fx)) * 2.0 ** fy
    return min(max(ref_round(v, mode), lo), hi)


@pytest.mark.parametrize("fn", sorted(FUNCTIONS))
@pytest.mark.parametrize("mode", ["HALF_UP", "HALF_EVEN"])
def test_forward_every_8bit_input_equals_the_reference(fn, mode):
    for tx, fx, ty, fy in [("i8", 4, "i8", 5), ("u8", 5, "i8", 6), ("i8", 3, "i16", 10), ("i4", 1, "i8", 4)]:
        lo, hi = RANGE[tx]
        ks = torch.arange(lo, hi + 1, dtype=torch.float64)
        r = F.lut(ks * 2.0 ** -fx, fn, x_dtype=tx, x_frac=fx, y_dtype=ty, y_frac=fy, alpha=ALPHA.get(fn, 0.0),
                  hw=HwOptions(rounding_mode=mode))
        got = (r.y * 2.0 ** fy).round().long().tolist()
        want = [ref_entry(fn, int(k), fx, fy, ty, mode) for k in range(lo, hi + 1)]
        # float64 cannot see how far an asymptote is approached; only HALF modes are
        # checked here, where that never matters (tests/compiler checks FLOOR exactly).
        assert got == want, (fn, tx, fx, ty, fy)


def test_int16_interpolates_between_knots():
    fx, fy = 12, 12
    ks = torch.arange(-32768, 32768, dtype=torch.float64)
    for fn in ("silu", "tanh", "sigmoid"):
        r = F.lut(ks * 2.0 ** -fx, fn, x_dtype="i16", x_frac=fx, y_dtype="i16", y_frac=fy)
        got = (r.y * 2.0 ** fy).round().long().numpy()
        knots = np.array([ref_entry(fn, j * 256 - 32768, fx, fy, "i16", "HALF_UP") for j in range(257)], np.int64)
        u = np.arange(65536, dtype=np.int64)
        j, t = u >> 8, u & 255
        step = (knots[j + 1] - knots[j]) * t
        want = np.clip(knots[j] + ((step + 128) >> 8), -32768, 32767)  # HALF_UP: (v + 2^7) >> 8
        assert (got == want).all(), fn


@pytest.mark.parametrize("fn", sorted(FUNCTIONS))
def test_backward_is_the_derivative_away_from_steps(fn):
    fx = 5
    ks = torch.arange(-100, 100, 7, dtype=torch.float64)
    x = (ks * 2.0 ** -fx).requires_grad_(True)
    r = F.lut(x, fn, x_dtype="i8", x_frac=fx, y_dtype="i16", y_frac=10, alpha=ALPHA.get(fn, 0.0))
    r.y.sum().backward()
    h = 1e-6
    xs = x.detach()
    fd = (FUNCTIONS[fn][1](xs + h) - FUNCTIONS[fn][1](xs - h)) / (2 * h)
    kink = (xs.abs() < 1e-3) | ((xs.abs() - 3).abs() < 1e-3)
    assert torch.allclose(x.grad[~kink], fd[~kink], atol=1e-5), fn


def test_backward_is_zero_where_the_output_clamp_cuts():
    # silu at i8 frac 4 -> i8 frac 6: outputs above 127 / 64 ~ 1.98 saturate.
    x = (torch.arange(-128, 128, dtype=torch.float64) / 16).requires_grad_(True)
    r = F.lut(x, "silu", x_dtype="i8", x_frac=4, y_dtype="i8", y_frac=6)
    r.y.sum().backward()
    cut = torch.nn.functional.silu(x.detach()) * 64 > 127.5
    assert cut.any() and (x.grad[cut] == 0).all() and (x.grad[~cut] != 0).any()
    assert int(r.counts[1]) == int(cut.sum())


def test_training_through_the_table_converges():
    torch.manual_seed(0)
    # Fit a and b of silu(a x + b) to a target made with other values, through the table.
    xs = torch.linspace(-3, 3, 64, dtype=torch.float64)
    target = torch.nn.functional.silu(1.5 * xs - 0.5)
    a = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([a, b], lr=0.1)
    losses = []
    for _ in range(150):
        pre = F.quantize(a * xs + b, "i8", 4).y
        y = F.lut(pre, "silu", x_dtype="i8", x_frac=4, y_dtype="i8", y_frac=4).y
        loss = ((y - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.1 * losses[0]
    assert abs(float(a) - 1.5) < 0.2 and abs(float(b) + 0.5) < 0.2


def test_user_tables_and_bad_arguments():
    ks = torch.arange(-128, 128, dtype=torch.float32)
    table = [k // 2 for k in range(-128, 128)]
    r = F.lut(ks, "table", x_dtype="i8", x_frac=0, y_dtype="i8", y_frac=0, table=table)
    assert r.y.tolist() == [float(v) for v in table]
    with pytest.raises(RuntimeError, match="a table for i8 inputs has 256 entries, this one has 3"):
        F.lut(ks, "table", x_dtype="i8", x_frac=0, y_dtype="i8", y_frac=0, table=[1, 2, 3])
    with pytest.raises(RuntimeError, match="table entry 0 = 200 is outside i8"):
        F.lut(ks, "table", x_dtype="i8", x_frac=0, y_dtype="i8", y_frac=0, table=[200] * 256)
    with pytest.raises(RuntimeError, match="cannot represent it: every entry is 0"):
        F.lut(ks, "sigmoid", x_dtype="i8", x_frac=0, y_dtype="i8", y_frac=-8)
    with pytest.raises(RuntimeError, match="unknown function \"swish\""):
        F.lut(ks, "swish", x_dtype="i8", x_frac=0, y_dtype="i8", y_frac=0)
    with pytest.raises(RuntimeError, match="x is not a quantized tensor of type i8 at frac 0"):
        F.lut(ks + 0.5, "silu", x_dtype="i8", x_frac=0, y_dtype="i8", y_frac=4)
