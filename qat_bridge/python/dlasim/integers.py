"""Reals that are integers at a frac (y = q * 2^-frac) and back, exactly."""

import torch


class ExportError(RuntimeError):
    pass


def first_line(error):
    """The first line of an exception's message for a one-line error; its type's name when
    it has none (libtorch raises some with an empty message on damaged files)."""
    lines = str(error).splitlines()
    return lines[0] if lines and lines[0].strip() else type(error).__name__


def to_integers(y, frac):
    """The integers q of reals y = q * 2^-frac (int64); an error if y is not such a tensor."""
    v = y.detach().to(torch.float64) * (2.0 ** int(frac))
    q = v.to(torch.int64)
    if not torch.equal(q.to(torch.float64), v):
        bad = (q.to(torch.float64) != v).nonzero()[0].tolist()
        raise ExportError("to_integers: element %s = %r times 2^%d is not an integer" % (bad, float(y[tuple(bad)]), frac))
    return q


def to_reals(q, frac, dtype=torch.float64):
    """q * 2^-frac, exactly (float64; float32 for |q| < 2^24)."""
    return q.to(dtype) * (2.0 ** -int(frac))


def channel_scale(fracs, dims, sign=-1):
    """2^(sign * frac) per output channel, shaped to scale a tensor of `dims` dimensions."""
    t = torch.tensor([2.0 ** (sign * int(f)) for f in fracs], dtype=torch.float64)
    return t.reshape([-1] + [1] * (dims - 1))


__all__ = ["ExportError", "first_line", "to_integers", "to_reals", "channel_scale"]
