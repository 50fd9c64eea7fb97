"""Observers: they watch the real values a layer is about to requantize and pick its pow2 frac.

Every observer keeps its statistics in buffers (so they are saved, loaded and, under
DistributedDataParallel, identical on every rank) and all-reduces each batch's statistics
across the processes of the default torch.distributed group before using them, so every
rank picks the same frac.

| name | statistic | frac |
|---|---|---|
| "minmax" | min and max over every batch seen | largest f with lo*2^f, hi*2^f in the type's range |
| "moving_average" | exponential moving average (constant c) of each batch's min and max | same |
| "percentile" | moving average of each batch's p-th and (100-p)-th percentiles | same |
| "mse" | moving average range, plus the squared error of quantizing each batch (with the hardware's rounding, through dla.quantize; an evenly strided sample of at most 65536 elements) at the 4 fracs from the range's frac up | the one with the least error |

Weights: per output channel, "max" (largest frac that holds max|w|) or "mse" (of that frac
and the next two, the one with the least squared error, quantized by dla.quantize_per_channel).
"""

import math

import torch
import torch.distributed as dist
from torch import nn

from . import functional as F
from .hw import FRAC_MAX, FRAC_MIN, dtype_range

OBSERVERS = ("minmax", "moving_average", "percentile", "mse")
WEIGHT_OBSERVERS = ("max", "mse")


def _flag(value):
    """A 0/1 int64 scalar buffer (gloo cannot broadcast bool tensors, which DDP does)."""
    return torch.tensor(int(bool(value)), dtype=torch.int64)


def _clamps(clip):
    return clip is not None and (clip[0] is not None or clip[1] is not None)


def world_size():
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def all_reduce_(t, op="sum"):
    """In-place all-reduce over the default group (no-op in one process). op: sum, min, max, mean."""
    ws = world_size()
    if ws > 1:
        red = {"sum": dist.ReduceOp.SUM, "mean": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN,
               "max": dist.ReduceOp.MAX}[op]
        dist.all_reduce(t, op=red)
        if op == "mean":
            t.div_(ws)
    return t


def fracs_for_bound(mags, bound):
    """Per element of `mags` (float64), the largest frac f in [-32, 32] with mag * 2^f <=
    bound (a number, or a float64 tensor of mags' shape): 32 for 0, 0 for a non-finite
    magnitude. The one rule every frac choice uses (dla.fracs_for_bound, the C++ modules'
    and dla.quantize_per_channel_max's rule)."""
    bounds = bound if torch.is_tensor(bound) else torch.tensor([float(bound)], dtype=torch.float64)
    return torch.ops.dla.fracs_for_bound(mags.double(), bounds.double())


def frac_for_max(max_abs, dtype):
    """Largest frac f in [-32, 32] with max_abs * 2^f <= the type's max (32 for 0)."""
    return torch.ops.dla.frac_for_bound(float(max_abs), float(dtype_range(dtype)[1]))


def channel_range(weight):
    """(min, max) of each output channel (dimension 0) of a weight tensor, in one pass (no
    |w| copy; dla.channel_range); NaN where a channel holds a NaN, as torch.aminmax."""
    return torch.ops.dla.channel_range(weight.detach(), 0)


def weight_fracs_for(weight, dtype, w_range=None):
    """frac_for_max of each output channel (dimension 0) of a weight tensor (w_range: its
    channel_range, when the caller has it)."""
    lo, hi = channel_range(weight) if w_range is None else w_range
    m = torch.maximum(-lo, hi).double()
    return fracs_for_bound(m, float(dtype_range(dtype)[1])).tolist()


def frac_for_range(lo, hi, dtype):
    """Largest frac f in [-32, 32] with lo * 2^f >= T.min and hi * 2^f <= T.max.

    For unsigned types lo is ignored (values below 0 are clipped to 0 by the layer's clip).
    An all-zero range gives 32; a non-finite one 0.
    """
    qmin, qmax = dtype_range(dtype)
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0
    # the rule of fracs_for_bound on two numbers, without tensors (every act, every step)
    return min(torch.ops.dla.frac_for_bound(max(hi, 0.0), float(qmax)),
               torch.ops.dla.frac_for_bound(0.0 if qmin == 0 else -min(lo, 0.0), float(max(-qmin, 1))))


class Observer(nn.Module):
    """Base: `observe(x)` with a float tensor (no grad), `frac()` for the observer's type."""

    def __init__(self, dtype):
        super().__init__()
        self.dtype = dtype
        self.register_buffer("initialized", _flag(False))

    def has_stats(self):
        return bool(self.initialized)

    def observe(self, x):
        raise NotImplementedError

    # Observers whose statistic is the batch's range accept it directly (observe_range),
    # so a layer can pass the range of an affine map of its values without computing them.
    range_only = False

    def observe_clipped(self, x, clip):
        """observe(x clamped to the real clip (lo, hi), either None)."""
        if _clamps(clip):
            x = torch.clamp(x, min=clip[0], max=clip[1])
        self.observe(x)

    def frac(self):
        raise NotImplementedError

    def reset(self):
        self.initialized.fill_(False)

    def range(self):
        return float(self.min_val), float(self.max_val)

    def extra_repr(self):
        return "dtype=%s" % self.dtype


class MinMaxObserver(Observer):
    def __init__(self, dtype):
        super().__init__(dtype)
        self.register_buffer("min_val", torch.zeros((), dtype=torch.float64))
        self.register_buffer("max_val", torch.zeros((), dtype=torch.float64))

    range_only = True

    @staticmethod
    def _batch_range(x, clip=None):
        x = x.detach()
        if x.numel() == 0:
            return torch.zeros(2, dtype=torch.float64)
        lo, hi = torch.aminmax(x)
        return MinMaxObserver._reduce_range(lo, hi, clip)

    @staticmethod
    def _reduce_range(lo, hi, clip):
        # clamp is monotone: the range of clamp(x) is the clamp (in x's dtype) of x's range
        if _clamps(clip):
            lo, hi = torch.clamp(lo, min=clip[0], max=clip[1]), torch.clamp(hi, min=clip[0], max=clip[1])
        r = torch.stack([-lo.double(), hi.double()])
        return all_reduce_(r, "max")

    def _update(self, lo, hi):
        if bool(self.initialized):
            self.min_val.fill_(min(float(self.min_val), lo))
            self.max_val.fill_(max(float(self.max_val), hi))
        else:
            self.min_val.fill_(lo)
            self.max_val.fill_(hi)
            self.initialized.fill_(True)

    @torch.no_grad()
    def observe(self, x):
        self._observe_range_of(x, None)

    @torch.no_grad()
    def observe_clipped(self, x, clip):
        if not self.range_only:
            return Observer.observe_clipped(self, x, clip)
        self._observe_range_of(x, clip)

    def _observe_range_of(self, x, clip):
        r = self._batch_range(x, clip)
        self._update(-float(r[0]), float(r[1]))

    @torch.no_grad()
    def observe_range(self, lo, hi, clip=None):
        """observe() of a batch whose smallest and largest values are the 0-d tensors lo, hi."""
        r = self._reduce_range(lo, hi, clip)
        self._update(-float(r[0]), float(r[1]))

    def frac(self):
        return frac_for_range(float(self.min_val), float(self.max_val), self.dtype)


class MovingAverageMinMaxObserver(MinMaxObserver):
    def __init__(self, dtype, averaging_constant=0.01):
        super().__init__(dtype)
        self.averaging_constant = float(averaging_constant)

    def _update(self, lo, hi):
        if bool(self.initialized):
            c = self.averaging_constant
            self.min_val.add_(c * (lo - float(self.min_val)))
            self.max_val.add_(c * (hi - float(self.max_val)))
        else:
            super()._update(lo, hi)


class PercentileObserver(MovingAverageMinMaxObserver):
    """Moving average of the p-th / (100-p)-th percentiles of each batch (all ranks' mean)."""

    range_only = False

    def __init__(self, dtype, percentile=99.99, averaging_constant=0.01):
        super().__init__(dtype, averaging_constant)
        self.percentile = float(percentile)

    @torch.no_grad()
    def observe(self, x):
        flat = x.detach().reshape(-1).double()
        n = flat.numel()
        if n == 0:
            return
        k_hi = min(n, max(1, int(math.ceil(self.percentile / 100.0 * n))))
        k_lo = max(1, min(n, n + 1 - k_hi))
        lo = flat.kthvalue(k_lo).values
        hi = flat.kthvalue(k_hi).values
        r = all_reduce_(torch.stack([lo, hi]), "mean")
        self._update(float(r[0]), float(r[1]))


class MSEObserver(MovingAverageMinMaxObserver):
    """Picks, of the range's frac and the three above it, the one whose quantization (the
    hardware's rounding and saturation, through dla.quantize) has the least squared error,
    accumulated over batches (moving average)."""

    range_only = False
    CANDIDATES = 4
    SAMPLE = 1 << 16  # elements of each batch the errors are measured on

    def __init__(self, dtype, averaging_constant=0.01, hw=None):
        super().__init__(dtype, averaging_constant)
        self.hw = hw
        span = FRAC_MAX - FRAC_MIN + 1
        self.register_buffer("errors", torch.zeros(span, dtype=torch.float64))
        self.register_buffer("seen", torch.zeros(span, dtype=torch.int64))

    @torch.no_grad()
    def observe(self, x):
        self._observe_range_of(x, None)
        base = super().frac()
        fracs = [f for f in range(base, base + self.CANDIDATES) if f <= FRAC_MAX]
        xd = x.detach().reshape(-1)
        if xd.numel() > self.SAMPLE:  # a deterministic, evenly strided sample
            xd = xd[:: (xd.numel() + self.SAMPLE - 1) // self.SAMPLE]
        errs = torch.stack([(F.quantize(xd, self.dtype, f, None, self.hw).y - xd).double().square().mean()
                            for f in fracs])
        errs = all_reduce_(errs, "mean")
        c = self.averaging_constant
        for f, e in zip(fracs, errs.tolist()):
            i = f - FRAC_MIN
            if bool(self.seen[i]):
                self.errors[i] += c * (e - float(self.errors[i]))
            else:
                self.errors[i] = e
                self.seen[i] = True

    def frac(self):
        base = super().frac()
        best, best_err = base, None
        for f in range(base, min(base + self.CANDIDATES, FRAC_MAX + 1)):
            i = f - FRAC_MIN
            if bool(self.seen[i]) and (best_err is None or float(self.errors[i]) < best_err):
                best, best_err = f, float(self.errors[i])
        return best


def make_observer(kind, dtype, config, hw=None):
    if kind == "minmax":
        return MinMaxObserver(dtype)
    if kind == "moving_average":
        return MovingAverageMinMaxObserver(dtype, config.averaging_constant)
    if kind == "percentile":
        return PercentileObserver(dtype, config.percentile, config.averaging_constant)
    if kind == "mse":
        return MSEObserver(dtype, config.averaging_constant, hw)
    raise ValueError("unknown observer %r (expected one of %s)" % (kind, ", ".join(OBSERVERS)))


def weight_fracs(weight, dtype, kind="max", hw=None, w_range=None):
    """Per-output-channel fracs of a weight tensor (dimension 0); w_range: its channel_range."""
    base = weight_fracs_for(weight, dtype, w_range)
    if kind == "max":
        return base
    if kind != "mse":
        raise ValueError("unknown weight observer %r (expected one of %s)" % (kind, ", ".join(WEIGHT_OBSERVERS)))
    with torch.no_grad():
        w = weight.detach()
        oc = w.shape[0]
        best = torch.tensor(base, dtype=torch.int64)
        best_err = None
        for k in range(3):
            fr = [min(FRAC_MAX, f + k) for f in base]
            q = F.quantize_per_channel(w, fr, 0, dtype, None, hw).y
            err = (q - w).double().square().reshape(oc, -1).sum(dim=1)
            if best_err is None:
                best_err = err
            else:
                better = err < best_err
                best = torch.where(better, torch.tensor(fr, dtype=torch.int64), best)
                best_err = torch.where(better, err, best_err)
        return best.tolist()


__all__ = ["_flag", "OBSERVERS", "WEIGHT_OBSERVERS", "Observer", "MinMaxObserver", "MovingAverageMinMaxObserver",
           "PercentileObserver", "MSEObserver", "make_observer", "frac_for_range",
           "frac_for_max", "channel_range", "weight_fracs_for", "fracs_for_bound", "weight_fracs", "all_reduce_",
           "world_size"]
