"""torch.nn modules over the dla ops: their forward is the hardware's integers.

Every module keeps two int64 buffers, `overflow_count` and `saturation_count`, that its
forward adds the op's counts to (reset_counts() zeroes them). Fracs are plain integers
(`in_frac`, `out_frac`, ...): a module's input frac must be the frac its producer
outputs; the next issue's prepare_qat sets them from the graph.

Weights are quantized per output channel, symmetric: with `weight_fracs=None` each
forward picks, per channel, the largest frac f with max|w| * 2^f <= type max (an
observer); with `learn_weight_scale=True` the scales are parameters in the log2 domain
(`weight_log2_scale`, TQT gradient). QuantizeAct likewise has a fixed frac, a frac set
from the first batch, or a learnable log2 scale.
"""

import torch
from torch import nn

from . import functional as F
from .hw import as_hw_list, dtype_code
from .observers import frac_for_max, weight_fracs_for


def _clip_of(relu, clip):
    if clip is not None:
        return tuple(clip)
    return (0, None) if relu else None


class QModule(nn.Module):
    def __init__(self, hw=None):
        super().__init__()
        self.hw = as_hw_list(hw)
        self.register_buffer("overflow_count", torch.zeros((), dtype=torch.int64))
        self.register_buffer("saturation_count", torch.zeros((), dtype=torch.int64))

    def _count(self, counts):
        with torch.no_grad():
            self.overflow_count += counts[0]
            self.saturation_count += counts[1]

    def reset_counts(self):
        with torch.no_grad():
            self.overflow_count.zero_()
            self.saturation_count.zero_()


class QuantizeAct(QModule):
    """Quantizes reals to an activation type (the network input, or any float tensor)."""

    def __init__(self, dtype="i8", frac=None, relu=False, clip=None, learnable=False, hw=None):
        super().__init__(hw)
        self.dtype = dtype
        self.clip = _clip_of(relu, clip)
        self.learnable = learnable
        self.register_buffer("frac_", torch.tensor(0 if frac is None else int(frac), dtype=torch.int64))
        # A buffer, so that a loaded state dict is not re-calibrated.
        self.register_buffer("calibrated", torch.tensor(frac is not None))
        self.log2_scale = nn.Parameter(torch.tensor(-float(self.frac_))) if learnable else None

    @property
    def frac(self):
        if self.learnable:
            return F.frac_from_log2_scale(self.log2_scale.item())
        return int(self.frac_)

    def forward(self, x):
        if not bool(self.calibrated):
            with torch.no_grad():
                self.frac_.fill_(frac_for_max(x.detach().abs().max().item(), self.dtype))
                if self.log2_scale is not None:
                    self.log2_scale.fill_(-float(self.frac_))
                self.calibrated.fill_(True)
        if self.learnable:
            r = F.quantize_learnable(x, self.log2_scale.to(x.dtype), 0, self.dtype, self.clip, self.hw)
        else:
            r = F.quantize(x, self.dtype, int(self.frac_), self.clip, self.hw)
        self._count(r.counts)
        return r.y


class _QMac(QModule):
    """What QConv2d and QLinear share: the float layer's weight and bias, the formats, the
    clip and the per-channel weight quantization."""

    def __init__(self, ref, out_channels, in_dtype, in_frac, out_dtype, out_frac, weight_dtype, weight_fracs,
                 learn_weight_scale, relu, clip, hw):
        super().__init__(hw)
        self.weight, self.bias = ref.weight, ref.bias
        self.in_dtype, self.in_frac, self.out_dtype, self.out_frac = in_dtype, in_frac, out_dtype, out_frac
        self.clip = _clip_of(relu, clip)
        self.weight_dtype = weight_dtype
        self.fixed_weight_fracs = None if weight_fracs is None else [int(f) for f in weight_fracs]
        self.learn_weight_scale = learn_weight_scale
        self.weight_log2_scale = None
        if learn_weight_scale:
            self.weight_log2_scale = nn.Parameter(torch.zeros(out_channels))
            # Initialized from the observer on the first forward; a buffer, so that a loaded
            # state dict keeps its scales.
            self.register_buffer("scale_initialized", torch.tensor(False))

    def quantized_weight(self):
        """(weight reals, fracs) as the forward uses them."""
        w = self.weight
        if self.learn_weight_scale:
            if not bool(self.scale_initialized):
                with torch.no_grad():
                    fr = self.fixed_weight_fracs or weight_fracs_for(w, self.weight_dtype)
                    self.weight_log2_scale.copy_(-torch.tensor(fr, dtype=self.weight_log2_scale.dtype))
                    self.scale_initialized.fill_(True)
            fracs = [F.frac_from_log2_scale(v) for v in self.weight_log2_scale.detach().tolist()]
            r = F.quantize_learnable(w, self.weight_log2_scale.to(w.dtype), 0, self.weight_dtype, None, self.hw)
        else:
            fracs = self.fixed_weight_fracs or weight_fracs_for(w, self.weight_dtype)
            r = F.quantize_per_channel(w, fracs, 0, self.weight_dtype, None, self.hw)
        self._count(r.counts)
        return r.y, fracs

    def _formats(self, fracs):
        """The op arguments both MAC ops take, with the weights' fracs."""
        return dict(x_dtype=self.in_dtype, x_frac=self.in_frac, w_dtype=self.weight_dtype, w_fracs=fracs,
                    y_dtype=self.out_dtype, y_frac=self.out_frac, clip=self.clip, hw=self.hw)


class QConv2d(_QMac):
    """Bit-exact conv2d (+ bias, + ReLU or clip) requantized to (out_dtype, out_frac)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, *, in_dtype="u8", in_frac=0, out_dtype="u8", out_frac=0, weight_dtype="i8",
                 weight_fracs=None, learn_weight_scale=False, relu=False, clip=None, hw=None):
        ref = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        super().__init__(ref, out_channels, in_dtype, in_frac, out_dtype, out_frac, weight_dtype, weight_fracs,
                         learn_weight_scale, relu, clip, hw)
        self.stride, self.padding, self.dilation = ref.stride, ref.padding, ref.dilation
        self.groups = groups

    def forward(self, x):
        wq, fracs = self.quantized_weight()
        r = F.conv2d(x, wq, self.bias, stride=self.stride, padding=self.padding, dilation=self.dilation,
                     groups=self.groups, **self._formats(fracs))
        self._count(r.counts)
        return r.y


class QLinear(_QMac):
    """Bit-exact linear layer requantized to (out_dtype, out_frac)."""

    def __init__(self, in_features, out_features, bias=True, *, in_dtype="i8", in_frac=0, out_dtype="i8",
                 out_frac=0, weight_dtype="i8", weight_fracs=None, learn_weight_scale=False, relu=False, clip=None,
                 hw=None):
        ref = nn.Linear(in_features, out_features, bias)
        super().__init__(ref, out_features, in_dtype, in_frac, out_dtype, out_frac, weight_dtype, weight_fracs,
                         learn_weight_scale, relu, clip, hw)

    def forward(self, x):
        wq, fracs = self.quantized_weight()
        r = F.linear(x, wq, self.bias, **self._formats(fracs))
        self._count(r.counts)
        return r.y


class QAdd(QModule):
    """Residual add with the hardware's frac alignment."""

    def __init__(self, *, a_dtype="i8", a_frac=0, b_dtype="i8", b_frac=0, out_dtype="i8", out_frac=0, relu=False,
                 clip=None, hw=None):
        super().__init__(hw)
        self.a_dtype, self.a_frac, self.b_dtype, self.b_frac = a_dtype, a_frac, b_dtype, b_frac
        self.out_dtype, self.out_frac = out_dtype, out_frac
        self.clip = _clip_of(relu, clip)

    def forward(self, a, b):
        r = F.add(a, b, a_dtype=self.a_dtype, a_frac=self.a_frac, b_dtype=self.b_dtype, b_frac=self.b_frac,
                  y_dtype=self.out_dtype, y_frac=self.out_frac, clip=self.clip, hw=self.hw)
        self._count(r.counts)
        return r.y


class QAvgPool2d(QModule):
    """Average pool with M = round(2^S / N); kernel_size None is the global average pool."""

    def __init__(self, kernel_size=None, stride=None, padding=0, *, in_dtype="u8", in_frac=0, out_dtype="u8",
                 out_frac=0, clip=None, hw=None):
        super().__init__(hw)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.in_dtype, self.in_frac, self.out_dtype, self.out_frac = in_dtype, in_frac, out_dtype, out_frac
        self.clip = clip

    def forward(self, x):
        r = F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, x_dtype=self.in_dtype, x_frac=self.in_frac,
                         y_dtype=self.out_dtype, y_frac=self.out_frac, clip=self.clip, hw=self.hw)
        self._count(r.counts)
        return r.y


class QMaxPool2d(nn.Module):
    """Max pool on the integers (frac unchanged)."""

    def __init__(self, kernel_size, stride=None, padding=0, *, dtype="u8", frac=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dtype, self.frac = dtype, frac

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, dtype=self.dtype, frac=self.frac)[0]


class QConcat(nn.Module):
    """Concatenation of tensors that share one type and frac."""

    def __init__(self, dim=1, *, dtype="u8", frac=0):
        super().__init__()
        self.dim, self.dtype, self.frac = dim, dtype, frac

    def forward(self, xs):
        return F.concat(xs, self.dim, dtype=self.dtype, fracs=[self.frac] * len(xs))


class TableActivation(nn.Module):
    """y = fn(x) for a user's element-wise function, on the DLA's lookup-table unit.

    In float, forward is `fn(x)`; `dlasim.prepare_qat` maps it onto the table unit like
    nn.SiLU: the table is fn at the table's input reals (every integer of an 8-bit input,
    the 257 knots of an i16 one) rounded to the output format with the hardware rounding,
    rebuilt when a format changes; training's backward is the table's central difference;
    the export writes the table (function "table") and `dla compile` loads it. fn must map
    a float64 tensor to a finite tensor of the same shape (checked, naming the layer)."""

    dla_leaf = True  # traced as one node: fn is the user's, never the graph's

    def __init__(self, fn):
        super().__init__()
        if not callable(fn):
            raise TypeError("dlasim.nn.TableActivation: fn must be callable (tensor -> tensor), got %r" % (fn,))
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


__all__ = ["QModule", "QuantizeAct", "QConv2d", "QLinear", "QAdd", "QAvgPool2d", "QMaxPool2d", "QConcat",
           "TableActivation",
           "frac_for_max", "weight_fracs_for", "dtype_code"]
