"""The modules prepare_qat puts in place of a model's layers.

Each quantized tensor of the prepared graph belongs to one *activation format*
(ActFormat): a dtype and one frac, shared by every tensor the hardware requires to share
it (the inputs of a concat and the output; a max pool, upsample or flatten and its
input). An ActFormat holds the observer of the real values its producers requantize, the
frac they use (a buffer), or a learnable log2 scale.

Layers (QatLayer subclasses, one per op kind of dlasim.ops) take their inputs and a run
context (`RunContext`): the list of ActFormats, whether to observe, and whether to run
the float reference instead of the integers (calibration and diagnostics). Their
quantized forward calls the dla ops only. They share dlasim.nn's base, QModule, and are
named apart from its modules (dlasim.nn.QAdd is a module with fixed formats; AddLayer is
the add of a prepared graph, with formats from the graph).
"""

import math
from collections import namedtuple

import torch
import torch.nn.functional as TF
from torch import nn

from . import functional as F
from .hw import dtype_range
from .nn import QModule
from .observers import _flag, all_reduce_, channel_range, make_observer, weight_fracs, world_size

_LN2 = math.log(2.0)

#: What a quantizer does with NaN and inf (QatConfig.nonfinite).
NONFINITE_POLICIES = ("error", "count")

#: Where a folded BatchNorm's batch statistics come from in training (QatConfig.bn_stats_conv).
BN_STATS_CONVS = ("float", "integer")


class NonFiniteError(ValueError):
    """A tensor to quantize holds NaN or inf (QatConfig.nonfinite="error")."""


Folded = namedtuple("Folded", ["weight", "bias", "y", "inv", "y_range", "mean", "var"])


class RunContext:
    """What one forward of a QatModel runs with."""

    __slots__ = ("acts", "float_mode", "observe", "record")

    def __init__(self, acts, float_mode=False, observe=False, record=None):
        self.acts = acts
        self.float_mode = float_mode
        self.observe = observe
        self.record = record


def clip_ints(clip, frac):
    """Output-integer clip (lo, hi) of a real clip (lo, hi) at `frac` (None: unbounded).

    lo rounds up and hi down, so the clipped reals stay inside the real clip; ReLU is
    (0, None) and ReLU6 (0, 6 * 2^frac).
    """
    if clip is None:
        return None
    lo, hi = clip
    qlo = None if lo is None else int(math.ceil(math.ldexp(float(lo), frac)))
    qhi = None if hi is None else int(math.floor(math.ldexp(float(hi), frac)))
    return (qlo, qhi)


def clamp_real(x, clip):
    if clip is None:
        return x
    lo, hi = clip
    return torch.clamp(x, min=lo, max=hi)


class ActFormat(nn.Module):
    """dtype + frac of a set of tensors that must share them, and its observer."""

    def __init__(self, name, dtype, config, hw, fixed_frac=None, learnable=False):
        super().__init__()
        self.name = name
        self.dtype = dtype
        self.hw = hw
        self.fixed = fixed_frac is not None
        self.register_buffer("frac_", torch.tensor(0 if fixed_frac is None else int(fixed_frac), dtype=torch.int64))
        self.register_buffer("observer_enabled", _flag(not self.fixed))
        self.register_buffer("ready", _flag(self.fixed))
        self.observer = None if self.fixed else make_observer(config.observer, dtype, config, hw)
        self.count_nonfinite = config.nonfinite == "count"
        self.log2_scale = nn.Parameter(torch.zeros(())) if (learnable and not self.fixed) else None

    @property
    def learnable(self):
        return self.log2_scale is not None

    def frac(self):
        if self.log2_scale is not None:
            return F.frac_from_log2_scale(float(self.log2_scale))
        return int(self.frac_)

    def observing(self, ctx):
        return ctx.observe and self.observer is not None and bool(self.observer_enabled)

    def observe(self, x, ctx, clip=None):
        """Observes x clamped to the real clip (lo, hi) (None: no clamp)."""
        if self.observing(ctx):
            x = x.detach()
            if self.count_nonfinite:  # counted NaN / inf set no frac (else they stopped the quantizer)
                x = _finite_part(x)
            if x.numel():
                self.observer.observe_clipped(x, clip)

    @torch.no_grad()
    def observe_affine(self, y, scale, shift, channel_dim, clip, ctx, y_range=None):
        """observe(y * scale + shift, clip), scale and shift per channel of `channel_dim`.

        A range observer gets the range from each channel's min and max of y (`y_range`
        when the caller has them; float rounding and clamp are monotone, so it is the range
        of the values themselves) instead of a computed tensor.
        """
        if not self.observing(ctx):
            return
        shape = [1] * y.dim()
        shape[channel_dim] = -1
        if self.count_nonfinite or not self.observer.range_only or y.numel() == 0:
            # NaN / inf counted rather than refused: observe() drops them from the tensor.
            self.observe(y.detach() * scale.reshape(shape) + shift.reshape(shape), ctx, clip)
            return
        if y_range is None:
            dims = [d for d in range(y.dim()) if d != channel_dim % y.dim()]
            y_range = torch.amin(y, dims), torch.amax(y, dims)
        ymin, ymax = y_range
        up = scale >= 0
        lo = (torch.where(up, ymin, ymax) * scale + shift).min()
        hi = (torch.where(up, ymax, ymin) * scale + shift).max()
        self.observer.observe_range(lo, hi, clip)

    @torch.no_grad()
    def update(self):
        """Sets the frac from the observer (learnable: initializes the scale once)."""
        if self.fixed or self.observer is None or not self.observer.has_stats():
            return
        if self.learnable:
            if not bool(self.ready):
                self.log2_scale.fill_(-float(self.observer.frac()))
        elif bool(self.observer_enabled):
            self.frac_.fill_(self.observer.frac())
        self.ready.fill_(True)

    def extra_repr(self):
        kind = "fixed" if self.fixed else ("learnable" if self.learnable else "observed")
        return "%s: %s frac %d (%s)" % (self.name, self.dtype, self.frac(), kind)


class _TqtOut(torch.autograd.Function):
    """Identity on y; the log2 scale gets TQT's gradient ln2 * sum(g * (y - x * mask))."""

    @staticmethod
    def forward(ctx, y, x, mask, log2_scale):
        ctx.save_for_backward(y, x, mask)
        return y.view_as(y)

    @staticmethod
    def backward(ctx, g):
        y, x, mask = ctx.saved_tensors
        gl = (g * (y - torch.where(mask, x, torch.zeros((), dtype=x.dtype)))).sum() * _LN2
        return g, None, None, gl.reshape(())


# What a batch-statistics backward needs of the forward (computed without autograd); inv_run
# is the running statistics' fold of the "integer" step (None for _FoldedConvBnGrad). wq is
# Q(w') as reals, or as its int16 integers with w_scale = 2^-frac per output channel (a
# quarter of the memory of float64 reals, half of float32, kept from forward to backward).
BatchStatsState = namedtuple("BatchStatsState", ["wq", "w_scale", "w_mask", "out_mask", "y", "mean", "var", "inv",
                                                 "inv_run", "eps", "stats_grad", "conv_args"])


def _weight_reals(s, dtype):
    """Q(w') of a BatchStatsState as reals of `dtype`."""
    if s.wq.is_floating_point():
        return s.wq
    # exact (q * 2^-frac); converted then scaled in place: torch 1.13's out-of-place
    # int16 * float broadcast multiply took 25-50 ms on a 512x512x3x3 weight (0.2 ms this way)
    return s.wq.to(dtype).mul_(s.w_scale.to(dtype).reshape(-1, 1, 1, 1))


def _conv_grads(g, x, w, a, need_x, need_w):
    """(d x, d w) of conv2d(x, w) for the output gradient g (one convolution backward)."""
    gx, gw, _ = torch.ops.aten.convolution_backward(g, x, w, None, a["stride"], a["padding"], a["dilation"], False,
                                                    [0, 0], a["groups"], [need_x, need_w, False])
    return gx, gw


class _BatchStatsGrad(torch.autograd.Function):
    """Base of the gradients of a conv + BatchNorm step on batch statistics: identity on the
    layer's output (computed without autograd), what the backward needs kept on ctx."""

    @staticmethod
    def forward(ctx, out, x, w, b, gamma, beta, state):
        ctx.state = state
        ctx.save_for_backward(x, w, b, gamma)
        return out.view_as(out)

    @staticmethod
    def _begin(ctx, g):
        """What both backwards start from: (state, x, w, b, gamma, need_x, need_w, count,
        g1 = g * mask, per channel sum(g1) and sum(g1 * y)) (the sums in one pass)."""
        s = ctx.state
        x, w, b, gamma = ctx.saved_tensors
        count = float(g.numel() // g.shape[1])
        g1, gb_f, g1_dot_y = torch.ops.dla.ste_channel_sums(g, s.out_mask, s.y, 1)
        return s, x, w, b, gamma, ctx.needs_input_grad[1], ctx.needs_input_grad[2], count, g1, gb_f, g1_dot_y


def _statistics_line(s, gb_f, d_inv, b, gamma, count):
    """(d inv, d gamma, slope, offset) of a folded BatchNorm: d inv gains the b' = beta +
    (b - mean) inv term; the gradient of y through mean and var is offset + slope * y per
    channel (BatchNorm's)."""
    d_inv = d_inv + gb_f * ((b - s.mean) if b is not None else -s.mean)
    d_gamma = d_inv / torch.sqrt(s.var + s.eps) if gamma is not None else None
    slope = (-0.5 * d_inv * s.inv / (s.var + s.eps)) * (2.0 / count)
    offset = -gb_f * s.inv / count - slope * s.mean
    return d_inv, d_gamma, slope, offset


class _FoldedConvBnGrad(_BatchStatsGrad):
    """Identity on the layer's output; the gradient of a conv + BatchNorm layer trained with
    batch statistics, for x, the conv weight and bias, and the BN's gamma and beta, in as
    few convolution backwards as float training's BatchNorm.

    The forward (MacLayer, without autograd) is y = conv(x, w) for the statistics (mean,
    var), inv = gamma / sqrt(var + eps), w' = w * inv, b' = beta + (b - mean) * inv and
    out = requant(conv(x, Q(w')) + b'). Its gradient with the STE for Q and the requant
    (mask: where the output clamp kept the value) has, per output channel, with
    g1 = g * mask and g2 the gradient of y through mean and var:
        d x = conv^T(g1, Q(w')) + conv^T(g2, w),   d w = inv * corr(x, g1) + corr(x, g2).
    Both weight terms are one correlation of G = g1 + g2 / inv (times inv), and the
    second data term is conv^T(g2 / inv, w') = conv^T(g2 / inv, Q(w')) up to the weights'
    quantization error, so one convolution backward of G with Q(w') gives both (float
    training runs one per layer too). d inv needs corr(x, g1) . w = sum(g1 * y), which the
    saved y gives without a convolution. The exact two-backward form is used instead where
    the weights saturated (the STE mask cuts corr(x, g1)), where a gamma is 0 (no g2 / inv)
    and with bn_stats_grad "weight" (no statistics term in d x).
    """

    @staticmethod
    def backward(ctx, g):
        s, x, w, b, gamma, need_x, need_w, count, g1, gb_f, g1_dot_y = _BatchStatsGrad._begin(ctx, g)
        c4 = (1, -1, 1, 1)  # per channel of a feature map
        fused = s.w_mask is None and bool((s.inv != 0).all()) and s.stats_grad != "weight"
        gx = gwf = None
        if fused:
            d_inv = g1_dot_y  # = corr(x, g1) . w
        else:
            gx, gwf = _conv_grads(g1, x, s.wq, s.conv_args, need_x, True)
            if s.w_mask is not None:
                gwf = torch.ops.dla.ste_grad(gwf, s.w_mask)
            d_inv = (gwf * w).sum((1, 2, 3))
        d_inv, d_gamma, slope, offset = _statistics_line(s, gb_f, d_inv, b, gamma, count)
        if fused:
            G = g1  # g1 + g2 / inv, in place (one pass): g1 is this backward's own tensor
            if s.stats_grad:
                torch.ops.dla.channel_affine_(G, None, s.y, slope / s.inv, offset / s.inv, 1)
            gx, gG = _conv_grads(G, x, s.wq, s.conv_args, need_x, need_w)
            gw = gG.mul_(s.inv.reshape(-1, 1, 1, 1)) if need_w else None  # in place: the backward's own tensors
        else:
            gw = gwf.mul_(s.inv.reshape(-1, 1, 1, 1))
            if s.stats_grad:
                g2 = torch.addcmul(offset.reshape(c4), s.y, slope.reshape(c4))
                gx2, gw2 = _conv_grads(g2, x, w, s.conv_args, need_x and s.stats_grad != "weight", True)
                gx = gx + gx2 if gx2 is not None else gx
                gw = gw.add_(gw2)
        gb = gb_f * s.inv if b is not None else None
        gbeta = gb_f if ctx.needs_input_grad[5] else None
        return None, gx if need_x else None, gw, gb, d_gamma, gbeta, None


class _IntegerBnGrad(_BatchStatsGrad):
    """Identity on the output; the gradient of MacLayer's "integer" batch-statistics step
    (QatConfig.bn_stats_conv): y = conv(x, Q(w * inv_r)) / inv_r with the running
    statistics' inv_r (the integer conv's exact sums), the batch's mean and var of y,
    inv = gamma / sqrt(var + eps), out = quantize(y * inv + beta + (b - mean) * inv).
    With the STE for both quantizers and inv_r a constant, d y = g1 * inv + g2 (g1 the
    quantizer's masked gradient, g2 through mean and var, as BatchNorm's), and one
    convolution backward of G = d y / inv_r with Q(w * inv_r) gives d x and, times inv_r,
    d w (both statistics terms in one; with bn_stats_grad "weight" d x takes a second
    backward without g2)."""

    @staticmethod
    def backward(ctx, g):
        s, x, w, b, gamma, need_x, need_w, count, g1, gb_f, g1_dot_y = _BatchStatsGrad._begin(ctx, g)
        c4 = (1, -1, 1, 1)  # per channel of a feature map
        d_inv, d_gamma, slope, offset = _statistics_line(s, gb_f, g1_dot_y, b, gamma, count)
        wq = _weight_reals(s, x.dtype)
        scale = s.inv / s.inv_run  # d y / inv_r = g1 * inv / inv_r + the statistics' terms / inv_r
        G = G_x = g1  # in place: g1 is this backward's own tensor
        if s.stats_grad == "weight" and need_x:
            G_x = g1.mul_(scale.reshape(c4))  # d x without the statistics' terms
            G = torch.ops.dla.channel_affine_(G_x.clone(), None, s.y, slope / s.inv_run, offset / s.inv_run, 1)
        elif s.stats_grad:
            torch.ops.dla.channel_affine_(G, scale, s.y, slope / s.inv_run, offset / s.inv_run, 1)  # one pass
        else:
            G.mul_(scale.reshape(c4))
        if G_x is G:
            gx, gwq = _conv_grads(G, x, wq, s.conv_args, need_x, need_w)
        else:
            gx = _conv_grads(G_x, x, wq, s.conv_args, True, False)[0] if need_x else None
            gwq = _conv_grads(G, x, wq, s.conv_args, False, True)[1] if need_w else None
        gw = None
        if gwq is not None:
            if s.w_mask is not None:
                gwq = torch.ops.dla.ste_grad(gwq, s.w_mask)
            gw = gwq.mul_(s.inv_run.reshape(-1, 1, 1, 1))  # in place: the backward's own tensor
        gb = gb_f * s.inv if b is not None else None
        gbeta = gb_f if ctx.needs_input_grad[5] else None
        return None, gx if need_x else None, gw, gb, d_gamma, gbeta, None


class QatLayer(QModule):
    """Base of the prepared layers: dlasim.nn's QModule (hw list, overflow and saturation
    counts) with the layer's name, its source module and a count of the outputs."""

    def __init__(self, name, source, hw):
        super().__init__(hw)
        self.name = name
        self.source = source
        self.register_buffer("element_count", torch.zeros((), dtype=torch.int64))
        self.register_buffer("nonfinite_count", torch.zeros((), dtype=torch.int64))
        self.nonfinite = "error"

    def _finite(self, x, what):
        """x, checked for NaN / inf (QatConfig.nonfinite): an error naming `what`, or counted."""
        if not x.is_floating_point():
            return x
        bad = torch.isfinite(x).logical_not_().sum()
        if bool(bad):
            if self.nonfinite == "error":
                raise NonFiniteError("dlasim: %s: %d non-finite value(s) (NaN or inf) of %d, which have no "
                                     "integer; prepare_qat(..., nonfinite='count') counts them instead (NaN "
                                     "becomes 0, inf saturates)" % (what, int(bad), x.numel()))
            with torch.no_grad():
                self.nonfinite_count += bad
        return x

    def _count(self, counts, numel=0):
        super()._count(counts)
        with torch.no_grad():
            self.element_count += int(numel)

    def reset_counts(self):
        super().reset_counts()
        with torch.no_grad():
            self.element_count.zero_()
            self.nonfinite_count.zero_()

    def _requantize(self, ctx, fout, real_op, int_op):
        """The forward of a layer whose output format is `fout`: `real_op()` is the float
        op (float mode; observers see its values), `int_op(y_dtype, y_frac, clip)` the dla op."""
        if ctx.float_mode:
            y = clamp_real(real_op(), self.clip)
            fout.observe(y, ctx)
            return y
        pre = None
        if fout.observing(ctx) or (fout.learnable and self.training):
            with torch.no_grad():
                pre = real_op()
            fout.observe(pre, ctx, self.clip)
        yf = fout.frac()
        r = int_op(fout.dtype, yf, clip_ints(self.clip, yf))
        self._count(r.counts, r.y.numel())
        return self._out(ctx, r.y, pre, r.mask, fout)

    def _out(self, ctx, y, pre, mask, act):
        """Training with a learnable output scale: attach TQT's gradient."""
        if act.learnable and self.training and torch.is_grad_enabled():
            y = _TqtOut.apply(y, pre.detach().to(y.dtype), mask, act.log2_scale)
        return y


class QuantizeLayer(QatLayer):
    """Quantizes a float tensor (a graph input, or the output of a float island). An
    integer tensor (uint8 images) holds the integers themselves at the format's frac, which
    must then be fixed (plan input={"dtype": "u8", "frac": 8}), as in integer_forward."""

    def __init__(self, name, source, hw, out_id, clip=None, nonfinite="error", what=None):
        super().__init__(name, source, hw)
        self.out_id = out_id
        self.clip = clip
        self.nonfinite = nonfinite
        self.what = what or "tensor '%s'" % name

    def _reals(self, x, act):
        """The reals of an integer input tensor: q * 2^-frac, exactly (checked against the type)."""
        if not act.fixed:
            raise TypeError("dlasim: %s is an integer tensor (%s); integers need a fixed frac to mean reals: set it "
                            "in the plan (input={'dtype': 'u8', 'frac': 8}) or pass floats" % (self.what, x.dtype))
        lo, hi = dtype_range(act.dtype)
        if x.numel() and (int(x.min()) < lo or int(x.max()) > hi):
            raise ValueError("dlasim: %s holds integers outside %s [%d, %d]" % (self.what, act.dtype, lo, hi))
        return x.to(torch.get_default_dtype()) * (2.0 ** -act.frac())

    def forward(self, x, ctx):
        act = ctx.acts[self.out_id]
        if not x.is_floating_point():
            x = self._reals(x, act)
        self._finite(x, self.what)
        if ctx.float_mode:
            y = clamp_real(x, self.clip)
            act.observe(y, ctx)
            return y
        act.observe(x, ctx, self.clip)
        f = act.frac()
        clip = clip_ints(self.clip, f)
        if act.learnable and self.training:
            r = F.quantize_learnable(x, act.log2_scale.to(x.dtype), 0, act.dtype, clip, self.hw)
        else:
            r = F.quantize(x, act.dtype, f, clip, self.hw)
        self._count(r.counts, x.numel())
        return r.y


def _finite_part(x):
    """What observers see of x: its finite values (all of x when there is no NaN or inf)."""
    finite = torch.isfinite(x)
    return x if bool(finite.all()) else x[finite]


class MacLayer(QatLayer):
    """conv2d or linear, with the BatchNorm that followed it folded in, and the requantizer.

    BatchNorm folding: w' = w * gamma / sigma, b' = beta + (b - mu) * gamma / sigma. In
    training, until the BN is frozen, mu and sigma are the batch's (all-reduced across
    processes) from a float conv of the same input, their gradient flows as in BatchNorm,
    and the running statistics are updated; frozen, and in eval, they are the running
    statistics. The batch statistics are nn.BatchNorm2d's: per channel, the mean and the
    biased variance over (N, H, W) (dla.channel_moments, double sums), sigma = sqrt(var +
    eps), the running variance updated with the unbiased one. The same pass gives each
    channel's min and max, from which a range observer gets the output's range. The folded weights are quantized per output channel (observer or learnable
    log2 scales), the folded bias by the op at x_frac + w_frac.
    """


    #: Training with batch statistics takes its gradient from _FoldedConvBnGrad (False: from
    #: autograd through every step of the fold, which costs a second convolution backward).
    fused_bn_grad = True

    def __init__(self, name, source, hw, kind, module, bn, in_id, out_id, weight_dtype, clip, config, conv_args=None):
        super().__init__(name, source, hw)
        self.kind = kind  # "conv2d" or "linear"
        self.module = module
        self.bn = bn
        self.in_id, self.out_id = in_id, out_id
        self.weight_dtype = weight_dtype
        self.clip = clip
        self.weight_observer = config.weight_observer
        self.nonfinite = config.nonfinite
        self.bn_stats_grad = config.bn_stats_grad
        self.bn_stats_conv = getattr(config, "bn_stats_conv", "integer")
        oc = module.weight.shape[0]
        self.register_buffer("weight_frac", torch.zeros(oc, dtype=torch.int64))
        self.register_buffer("weight_frac_frozen", _flag(False))
        self.register_buffer("weight_frac_set", _flag(False))
        self.register_buffer("bn_frozen", _flag(False))
        self.weight_log2_scale = nn.Parameter(torch.zeros(oc)) if config.learnable_scales else None
        self.conv_args = dict(conv_args) if conv_args is not None else None

    @property
    def is_conv(self):
        return self.conv_args is not None

    # -- float pieces ------------------------------------------------------------------

    def _float_op(self, x, w, b):
        if self.is_conv:
            a = self.conv_args
            return TF.conv2d(x, w, b, a["stride"], a["padding"], a["dilation"], a["groups"])
        return TF.linear(x, w, b)

    def _shape(self, t):
        return t.reshape(-1, 1, 1, 1) if self.is_conv else t.reshape(-1, 1)

    def _batch_stats(self, y):
        dims = (0, 2, 3) if self.is_conv else (0,)
        if world_size() > 1:
            import torch.distributed.nn.functional as DF

            n = torch.tensor(float(y.numel() // y.shape[1]), dtype=y.dtype)
            s = torch.stack([y.sum(dims), y.square().sum(dims)])
            s = DF.all_reduce(s)
            n = all_reduce_(n.clone(), "sum")
            mean = s[0] / n
            var = (s[1] / n - mean.square()).clamp_min(0)
            return mean, var, float(n), None
        # mean and E[y^2] - mean^2 per channel in one pass (double sums), gradient in one;
        # with each channel's min and max for the output observer
        mean, var, lo, hi = torch.ops.dla.channel_moments(y, 1)
        return mean, var, float(y.numel() // y.shape[1]), (lo, hi)

    @torch.no_grad()
    def _update_running(self, mean, var, n):
        bn = self.bn
        if not bn.track_running_stats or bn.running_mean is None:
            return
        bn.num_batches_tracked += 1
        m = (1.0 / float(bn.num_batches_tracked)) if bn.momentum is None else bn.momentum
        unbiased = var * (n / max(n - 1.0, 1.0))
        bn.running_mean.mul_(1 - m).add_(mean.detach() * m)
        bn.running_var.mul_(1 - m).add_(unbiased.detach() * m)

    def folded(self, x, batch_stats, update_running, fold_weight=True):
        """Folded(w', b', y, inv, y_range, mean, var): y is the float conv of x with the
        unfolded weights (only when the batch statistics are used; else None), y * inv + (b'
        per channel) is the folded layer's float output, y_range each channel's (min, max) of
        y or None, mean and var the statistics folded in; inv, mean and var are None without
        BatchNorm; fold_weight False leaves w' None (the caller folds it itself)."""
        w, b = self.module.weight, self.module.bias
        bn = self.bn
        if bn is None:
            return Folded(w, b, None, None, None, None, None)
        y = y_range = None
        if batch_stats:
            if self.bn_stats_grad == "weight":
                y = self._float_op(x.detach(), w, None)
            elif self.bn_stats_grad:
                y = self._float_op(x, w, None)
            else:
                with torch.no_grad():
                    y = self._float_op(x, w, None)
            mean, var, n, y_range = self._batch_stats(y)
            if update_running:
                self._update_running(mean, var, n)
        else:
            mean, var = bn.running_mean, bn.running_var
        gamma = bn.weight if bn.affine else torch.ones_like(mean)
        beta = bn.bias if bn.affine else torch.zeros_like(mean)
        inv = gamma / torch.sqrt(var + bn.eps)
        w_f = w * self._shape(inv) if fold_weight else None
        b_f = beta + ((b - mean) if b is not None else -mean) * inv
        return Folded(w_f, b_f, y, inv, y_range, mean, var)

    def _normalized(self, y, inv, b_f):
        """The folded layer's float output from folded()'s y (no gradient: for observers)."""
        with torch.no_grad():
            return y * inv.reshape(1, -1, 1, 1) + b_f.reshape(1, -1, 1, 1) if self.is_conv else y * inv + b_f

    # -- weights -------------------------------------------------------------------------

    def _weight_fracs(self, w, w_range):
        if bool(self.weight_frac_frozen) and bool(self.weight_frac_set):
            return self.weight_frac.tolist()
        fr = weight_fracs(w, self.weight_dtype, self.weight_observer, self.hw, w_range)
        self._record_weight_fracs(torch.tensor(fr, dtype=torch.int64), bool(self.weight_frac_frozen))
        return fr

    @torch.no_grad()
    def _record_weight_fracs(self, fracs, frozen):
        """Keeps the fracs just chosen (an int64 tensor) in the buffers, in training or
        when the fracs are being frozen."""
        if self.training or frozen:
            self.weight_frac.copy_(fracs)
            self.weight_frac_set.fill_(True)

    def quantized_weight(self, w):
        """(weight reals, fracs, counts) as the forward uses them."""
        r, fr = self._quantized_weight(w)
        return r.y, fr, r.counts

    def _quantized_weight(self, w):
        """(QResult of the weights' quantization, fracs)."""
        if not (torch.is_grad_enabled() and w.requires_grad):
            fused = self._max_quantized(w, None)
            if fused is not None:
                return fused
        w_range = channel_range(w)  # one pass serves the NaN / inf check and the fracs
        if not bool(torch.isfinite(torch.stack(w_range)).all()):
            self._finite(w, "the weights of layer '%s' (module '%s')" % (self.name, self.source))
        if self.weight_log2_scale is not None:
            if not bool(self.weight_frac_set):
                with torch.no_grad():
                    fr = weight_fracs(w, self.weight_dtype, self.weight_observer, self.hw, w_range)
                    self.weight_log2_scale.copy_(-torch.tensor(fr, dtype=self.weight_log2_scale.dtype))
                    self.weight_frac.copy_(torch.tensor(fr, dtype=torch.int64))
                    self.weight_frac_set.fill_(True)
            fr = [F.frac_from_log2_scale(v) for v in self.weight_log2_scale.detach().tolist()]
            return F.quantize_learnable(w, self.weight_log2_scale.to(w.dtype), 0, self.weight_dtype, None, self.hw), fr
        fr = self._weight_fracs(w, w_range)
        return F.quantize_per_channel(w, fr, 0, self.weight_dtype, None, self.hw), fr

    def _max_quantized(self, w, scale, as_ints=False):
        """(QResult, fracs) of w (times `scale` per output channel) quantized at the max
        observer's fracs, chosen as it is quantized (dla.quantize_per_channel_max: each
        channel read once), recording the fracs as _weight_fracs does; None where the
        fracs come from elsewhere (another observer, learnable scales, frozen fracs) or a
        channel's magnitude is not finite (the caller's path then names or counts it)."""
        frozen = bool(self.weight_frac_frozen)
        if self.weight_observer != "max" or self.weight_log2_scale is not None:
            return None
        if frozen and bool(self.weight_frac_set):
            return None
        with torch.no_grad():
            r, fracs, max_abs = F.quantize_per_channel_max(w.detach(), scale, self.weight_dtype, self.hw, as_ints)
            if not bool(torch.isfinite(max_abs).all()):
                return None
        self._record_weight_fracs(fracs, frozen)
        return r, fracs.tolist()

    def _quantized_folded_weight(self, inv, as_ints=False):
        """_quantized_weight(w * inv) (inv per output channel) without the product tensor
        where the max observer sets the fracs: the op multiplies as it quantizes and takes
        each channel's range from the same read (the products' range is the range's
        products: float rounding is monotone); as_ints: its y is the int16 integers. Frozen
        fracs take them from the buffer; a non-finite range (or another observer) takes
        the product tensor (y the reals)."""
        w = self.module.weight.detach()
        fused = self._max_quantized(w, inv, as_ints)
        if fused is not None:
            return fused
        if self.weight_observer == "max" and self.weight_log2_scale is None:
            lo, hi = channel_range(w)
            a, b = lo * inv, hi * inv
            w_range = (torch.minimum(a, b), torch.maximum(a, b))
            if bool(torch.isfinite(torch.stack(w_range)).all()):
                fr = self._weight_fracs(None, w_range)
                return F.quantize_per_channel_scaled(w, inv, fr, 0, self.weight_dtype, None, self.hw,
                                                     want_mask=False, as_ints=as_ints), fr
        return self._quantized_weight(w * self._shape(inv))

    def eval_weights(self):
        """(weight reals, weight fracs, folded float bias or None) of the eval forward."""
        w, b = self.folded(None, batch_stats=False, update_running=False)[:2]
        wq, fr, _ = self.quantized_weight(w)
        return wq, fr, b

    # -- forward -------------------------------------------------------------------------

    def forward(self, x, ctx):
        fin, fout = ctx.acts[self.in_id], ctx.acts[self.out_id]
        batch_stats = self.training and self.bn is not None and not bool(self.bn_frozen)
        if ctx.float_mode:
            with torch.no_grad():
                w, b, y, inv = self.folded(x, batch_stats, update_running=False)[:4]
                y = self._float_op(x, w, b) if y is None else self._normalized(y, inv, b)
                y = clamp_real(y, self.clip)
            fout.observe(y, ctx)
            return y
        if batch_stats and self._fused_grad(ctx, fout):
            if self.bn_stats_conv == "integer":
                out = self._forward_integer_bn(x, fin, fout, ctx)
                if out is not None:
                    return out
            return self._forward_fused_bn_grad(x, fin, fout, ctx)
        w, b, y, inv, y_range = self.folded(x, batch_stats, update_running=batch_stats)[:5]
        wq, wfr, wcounts = self.quantized_weight(w)
        pre = None
        if fout.learnable and self.training:
            with torch.no_grad():
                pre = self._float_op(x, w, b) if y is None else self._normalized(y, inv, b)
        if fout.observing(ctx):
            if pre is not None:
                fout.observe(pre, ctx, self.clip)
            elif y is not None:  # the batch-statistics pass already ran: its range suffices
                fout.observe_affine(y.detach(), inv.detach(), b.detach(), 1, self.clip, ctx, y_range)
            else:
                with torch.no_grad():
                    fout.observe(self._float_op(x, w, b), ctx, self.clip)
        r = self._mac(x, wq, wfr, b, fin, fout)
        self._count(r.counts + wcounts, r.y.numel())
        return self._out(ctx, r.y, pre, r.mask, fout)

    def _forward_integer_bn(self, x, fin, fout, ctx):
        """The "integer" batch-statistics step (see _IntegerBnGrad), or None where it cannot
        run (no running statistics, or a running-stat fold with a zero factor)."""
        bn, conv = self.bn, self.module
        if not bn.track_running_stats or bn.running_var is None:
            return None
        c4 = (1, -1, 1, 1)
        with torch.no_grad():
            gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
            beta = bn.bias if bn.affine else torch.zeros_like(bn.running_var)
            inv_run = gamma / torch.sqrt(bn.running_var + bn.eps)
            if not bool((inv_run != 0).all()):
                return None
            wr, wfr = self._quantized_folded_weight(inv_run, as_ints=True)
            y = F.conv2d_sums(x, wr.y, x_dtype=fin.dtype, x_frac=fin.frac(), w_dtype=self.weight_dtype, w_fracs=wfr,
                              hw=self.hw, **self.conv_args)
            y.div_(inv_run.reshape(c4))  # the statistics' conv: conv(x, w) up to the weights' quantization
            mean, var, n, y_range = self._batch_stats(y)
            self._update_running(mean, var, n)
            inv = gamma / torch.sqrt(var + bn.eps)
            b = conv.bias
            b_f = beta + ((b - mean) if b is not None else -mean) * inv
            fout.observe_affine(y, inv, b_f, 1, self.clip, ctx, y_range)
            yf = fout.frac()
            # quantize(y * inv + b') per channel, without the two temporaries
            r = F.quantize_per_channel_scaled(y, inv, [yf], 1, fout.dtype, clip_ints(self.clip, yf), self.hw, b_f)
        w_scale = torch.tensor([2.0 ** -f for f in wfr], dtype=x.dtype)
        return self._with_batch_stats_grad(_IntegerBnGrad, x, r, wr, y, mean, var, inv, inv_run, w_scale)

    def _mac(self, x, wq, wfr, b, fin, fout):
        yf = fout.frac()
        common = dict(x_dtype=fin.dtype, x_frac=fin.frac(), w_dtype=self.weight_dtype, w_fracs=wfr,
                      y_dtype=fout.dtype, y_frac=yf, clip=clip_ints(self.clip, yf), hw=self.hw)
        if self.is_conv:
            return F.conv2d(x, wq, b, **common, **self.conv_args)
        return F.linear(x, wq, b, **common)

    def _fused_grad(self, ctx, fout):
        """Whether a training step with batch statistics takes its gradient from
        _FoldedConvBnGrad: a conv with fixed-point (not learnable) scales in one process
        (under DDP the statistics' gradient is all-reduced by the general path)."""
        return (self.fused_bn_grad and self.is_conv and torch.is_grad_enabled() and self.weight_log2_scale is None
                and not fout.learnable and world_size() == 1)

    def _forward_fused_bn_grad(self, x, fin, fout, ctx):
        """The forward of the general path, without autograd, and _FoldedConvBnGrad's gradient."""
        with torch.no_grad():
            _, b_f, y, inv, y_range, mean, var = self.folded(x, True, update_running=True, fold_weight=False)
            wr, wfr = self._quantized_folded_weight(inv)
            fout.observe_affine(y, inv, b_f, 1, self.clip, ctx, y_range)
            r = self._mac(x, wr.y, wfr, b_f, fin, fout)
        return self._with_batch_stats_grad(_FoldedConvBnGrad, x, r, wr, y, mean, var, inv, None)

    def _with_batch_stats_grad(self, fn, x, r, wr, y, mean, var, inv, inv_run, w_scale=None):
        """Counts the step's overflows and saturations (output r, weights wr) and attaches the
        gradient `fn` (a _BatchStatsGrad) to the output; a mask is kept only where something
        saturated."""
        self._count(r.counts + wr.counts, r.y.numel())
        bn, conv = self.bn, self.module
        state = BatchStatsState(wq=wr.y, w_scale=w_scale, w_mask=wr.mask if int(wr.counts[1]) else None,
                                out_mask=r.mask if int(r.counts[1]) else None, y=y, mean=mean, var=var, inv=inv,
                                inv_run=inv_run, eps=bn.eps, stats_grad=self.bn_stats_grad, conv_args=self.conv_args)
        return fn.apply(r.y, x, conv.weight, conv.bias, bn.weight if bn.affine else None,
                        bn.bias if bn.affine else None, state)


class AddLayer(QatLayer):
    """Residual add with the hardware's frac alignment."""

    def __init__(self, name, source, hw, a_id, b_id, out_id, clip):
        super().__init__(name, source, hw)
        self.a_id, self.b_id, self.out_id, self.clip = a_id, b_id, out_id, clip

    def forward(self, a, b, ctx):
        fa, fb = ctx.acts[self.a_id], ctx.acts[self.b_id]
        return self._requantize(ctx, ctx.acts[self.out_id], lambda: a + b, lambda y_dtype, y_frac, clip: F.add(
            a, b, a_dtype=fa.dtype, a_frac=fa.frac(), b_dtype=fb.dtype, b_frac=fb.frac(), y_dtype=y_dtype,
            y_frac=y_frac, clip=clip, hw=self.hw))


class AvgPoolLayer(QatLayer):
    """Average pool (count_include_pad zero padding) or, with kernel None, global average
    pool [N, C, H, W] -> [N, C, 1, 1]; the hardware's M = round(2^S / N)."""

    def __init__(self, name, source, hw, in_id, out_id, kernel, stride, padding, clip):
        super().__init__(name, source, hw)
        self.in_id, self.out_id = in_id, out_id
        self.kernel, self.stride, self.padding, self.clip = kernel, stride, padding, clip

    def _geometry(self, x):
        if self.kernel is None:
            k = (int(x.shape[2]), int(x.shape[3]))
            return k, k, (0, 0)
        return self.kernel, self.stride, self.padding

    def forward(self, x, ctx):
        fin = ctx.acts[self.in_id]
        k, s, p = self._geometry(x)
        return self._requantize(ctx, ctx.acts[self.out_id], lambda: TF.avg_pool2d(x, k, s, p, count_include_pad=True),
                                lambda y_dtype, y_frac, clip: F.avg_pool2d(
                                    x, k, s, p, x_dtype=fin.dtype, x_frac=fin.frac(), y_dtype=y_dtype,
                                    y_frac=y_frac, clip=clip, hw=self.hw))


class MaxPoolLayer(QatLayer):
    def __init__(self, name, source, hw, act_id, kernel, stride, padding):
        super().__init__(name, source, hw)
        self.act_id, self.kernel, self.stride, self.padding = act_id, kernel, stride, padding

    def forward(self, x, ctx):
        if ctx.float_mode or (self.training and torch.is_grad_enabled()):
            # The max of exact reals q * 2^-f is the real of the max of the integers, and
            # torch's padding never wins either: bit-identical to dla.max_pool2d, faster
            # for training. Eval (and the export's replay) runs the dla op.
            return TF.max_pool2d(x, self.kernel, self.stride, self.padding)
        act = ctx.acts[self.act_id]
        return F.max_pool2d(x, self.kernel, self.stride, self.padding, dtype=act.dtype, frac=act.frac())[0]


class ConcatLayer(QatLayer):
    def __init__(self, name, source, hw, act_id, count):
        super().__init__(name, source, hw)
        self.act_id, self.count = act_id, count

    def forward(self, *args):
        xs, ctx = list(args[:-1]), args[-1]
        if ctx.float_mode:
            return torch.cat(xs, 1)
        act = ctx.acts[self.act_id]
        return F.concat(xs, 1, dtype=act.dtype, fracs=[act.frac()] * len(xs))


class Upsample2xLayer(QatLayer):
    """Nearest-neighbour x2: a copy of each value into a 2x2 block."""

    def forward(self, x, ctx):
        return TF.interpolate(x, scale_factor=2, mode="nearest")


class FlattenLayer(QatLayer):
    """[N, C, H, W] -> [N, C*H*W] in (c, h, w) order."""

    def forward(self, x, ctx):
        return torch.flatten(x, 1)


__all__ = ["NONFINITE_POLICIES", "BN_STATS_CONVS", "NonFiniteError", "ActFormat", "RunContext", "QatLayer", "QuantizeLayer", "MacLayer",
           "AddLayer", "AvgPoolLayer", "MaxPoolLayer", "ConcatLayer", "Upsample2xLayer", "FlattenLayer", "clip_ints",
           "clamp_real"]
