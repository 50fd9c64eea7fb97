"""Functional forms of the dla ops, with named arguments and type names.

Each returns QResult(y, mask, counts): y the output reals (q * 2^-frac), mask the STE mask
(bool, True where the output clamp did not change the value), counts an int64 tensor
[overflows, saturations]. Types are names ("i8") or codes; `hw` is an HwOptions, a list,
or None for the default hardware.
"""

import math
from collections import namedtuple

import torch

from ._library import load_library
from .hw import as_hw_list, dtype_code

load_library()

QResult = namedtuple("QResult", ["y", "mask", "counts"])


def _pair(v):
    return [int(v), int(v)] if isinstance(v, int) else [int(e) for e in v]


def _clip(clip):
    if clip is None:
        return None, None
    lo, hi = clip
    return (None if lo is None else int(lo)), (None if hi is None else int(hi))


def quantize(x, dtype, frac, clip=None, hw=None):
    lo, hi = _clip(clip)
    return QResult(*torch.ops.dla.quantize(x, dtype_code(dtype), int(frac), lo, hi, as_hw_list(hw)))


def quantize_per_channel(x, fracs, axis=0, dtype="i8", clip=None, hw=None):
    lo, hi = _clip(clip)
    return QResult(*torch.ops.dla.quantize_per_channel(x, [int(f) for f in fracs], int(axis),
                                                       dtype_code(dtype), lo, hi, as_hw_list(hw)))


def quantize_per_channel_scaled(x, scale, fracs, axis=0, dtype="i8", clip=None, hw=None, shift=None, want_mask=True,
                                as_ints=False):
    """quantize_per_channel(x * scale[c] (+ shift[c])) without the temporaries, bit for bit
    (no autograd: weights with a BatchNorm folded in, a BatchNorm's output; under
    torch.no_grad). want_mask=False computes the mask only when an element saturated (else
    it is an all-true view without storage): for weights, which rarely saturate. as_ints=True
    returns the integers as an int16 y (conv2d and conv2d_sums take it as their weight)."""
    lo, hi = _clip(clip)
    return QResult(*torch.ops.dla.quantize_per_channel_scaled(x, scale, shift, [int(f) for f in fracs], int(axis),
                                                              dtype_code(dtype), lo, hi, as_hw_list(hw),
                                                              bool(want_mask), bool(as_ints)))


def quantize_per_channel_max(x, scale=None, dtype="i8", hw=None, as_ints=False):
    """Each output channel (dimension 0) of x (times scale[c]) quantized at the "max" weight
    observer's frac, chosen from the same read of the channel (no autograd): (QResult with
    quantize_per_channel_scaled's want_mask=False mask, fracs as an int64 tensor, each
    channel's max |x * scale| as float64, NaN where it holds a NaN)."""
    y, mask, counts, fracs, max_abs = torch.ops.dla.quantize_per_channel_max(x, scale, dtype_code(dtype),
                                                                            as_hw_list(hw), bool(as_ints))
    return QResult(y, mask, counts), fracs, max_abs


def quantize_learnable(x, log2_scale, axis=0, dtype="i8", clip=None, hw=None, smooth=False):
    lo, hi = _clip(clip)
    return QResult(*torch.ops.dla.quantize_learnable(x, log2_scale, int(axis), dtype_code(dtype), lo, hi,
                                                     as_hw_list(hw), bool(smooth)))


def frac_from_log2_scale(log2_scale):
    """The integer frac of a log2 scale l (scale 2^-frac): -floor(l + 1/2)."""
    return int(-math.floor(float(log2_scale) + 0.5))


def conv2d(x, weight, bias=None, *, x_dtype, x_frac, w_dtype, w_fracs, y_dtype, y_frac, stride=1,
           padding=0, dilation=1, groups=1, clip=None, hw=None):
    lo, hi = _clip(clip)
    return QResult(*torch.ops.dla.conv2d(x, weight, bias, dtype_code(x_dtype), int(x_frac), dtype_code(w_dtype),
                                         [int(f) for f in w_fracs], dtype_code(y_dtype), int(y_frac),
                                         _pair(stride), _pair(padding), _pair(dilation), int(groups), lo, hi,
                                         as_hw_list(hw)))


def conv2d_sums(x, weight, *, x_dtype, x_frac, w_dtype, w_fracs, stride=1, padding=0, dilation=1, groups=1,
                hw=None):
    """The exact integer sums of conv2d (no bias, accumulator or output stage) as reals at
    x_frac + w_fracs[oc] (no autograd: training glue)."""
    return torch.ops.dla.conv2d_sums(x, weight, dtype_code(x_dtype), int(x_frac), dtype_code(w_dtype),
                                     [int(f) for f in w_fracs], _pair(stride), _pair(padding), _pair(dilation),
                                     int(groups), as_hw_list(hw))


def linear(x, weight, bias=None, *, x_dtype, x_frac, w_dtype, w_fracs, y_dtype, y_frac, clip=None, hw=None):
    lo, hi = _clip(clip)
    return QResult(*torch.ops.dla.linear(x, weight, bias, dtype_code(x_dtype), int(x_frac), dtype_code(w_dtype),
                                         [int(f) for f in w_fracs], dtype_code(y_dtype), int(y_frac), lo, hi,
                                         as_hw_list(hw)))


def add(a, b, *, a_dtype, a_frac, b_dtype, b_frac, y_dtype, y_frac, clip=None, hw=None):
    lo, hi = _clip(clip)
    return QResult(*torch.ops.dla.add(a, b, dtype_code(a_dtype), int(a_frac), dtype_code(b_dtype), int(b_frac),
                                      dtype_code(y_dtype), int(y_frac), lo, hi, as_hw_list(hw)))


def avg_pool2d(x, kernel_size=None, stride=None, padding=0, *, x_dtype, x_frac, y_dtype, y_frac, clip=None,
               hw=None):
    """Average pool with the hardware's 1/N; kernel_size None is the global pool."""
    kernel = [x.shape[2], x.shape[3]] if kernel_size is None else _pair(kernel_size)
    stride = kernel if stride is None else _pair(stride)
    lo, hi = _clip(clip)
    return QResult(*torch.ops.dla.avg_pool2d(x, dtype_code(x_dtype), int(x_frac), dtype_code(y_dtype), int(y_frac),
                                             kernel, stride, _pair(padding), lo, hi, as_hw_list(hw)))


def max_pool2d(x, kernel_size, stride=None, padding=0, *, dtype, frac):
    """Returns (y, indices)."""
    kernel = _pair(kernel_size)
    stride = kernel if stride is None else _pair(stride)
    return torch.ops.dla.max_pool2d(x, dtype_code(dtype), int(frac), kernel, stride, _pair(padding))


def concat(xs, dim=1, *, dtype, fracs):
    return torch.ops.dla.concat(list(xs), int(dim), dtype_code(dtype), [int(f) for f in fracs])


def lut(x, function, *, x_dtype, x_frac, y_dtype, y_frac, alpha=0.0, table=None, hw=None):
    """A nonlinear activation as the DLA's lookup table (VLUT): the forward is the table
    the compiler emits for the same layer, bit for bit; the backward is the function's
    derivative (for function "table", the table's central difference), zero where the
    output clamp cut the function off. `function` is one of silu, sigmoid, tanh,
    hardswish, hardsigmoid, gelu_tanh, leaky_relu (alpha = negative slope), elu (alpha),
    table (`table`: the output integers for every input, 2^bits entries, 257 knots for i16)."""
    return QResult(*torch.ops.dla.lut(x, dtype_code(x_dtype), int(x_frac), dtype_code(y_dtype), int(y_frac),
                                      str(function), float(alpha), [int(v) for v in (table or [])],
                                      as_hw_list(hw)))
