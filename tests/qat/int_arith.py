"""Reference integer arithmetic shared by test_ops.py and workflow/int_reference.py: numpy
int64 straight from isa/README.md section 1, never through the library (dlasim, the dla
ops, dla/numerics.hpp).
"""

import numpy as np

RANGES = {"i4": (-8, 7), "u4": (0, 15), "i8": (-128, 127), "u8": (0, 255), "i16": (-32768, 32767)}


def out_range(dtype, clip=None):
    """The range of dtype narrowed by clip = (lo or None, hi or None)."""
    lo, hi = RANGES[dtype]
    if clip is not None:
        if clip[0] is not None:
            lo = max(lo, clip[0])
        if clip[1] is not None:
            hi = min(hi, clip[1])
    return lo, hi


def ref_conv_int(x, w, stride, pad, dil, groups):
    """Exact int64 convolution, [N, C, H, W] x [OC, C/groups, KH, KW]."""
    n, c, h, wd = x.shape
    oc, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    oh = (h + 2 * pad[0] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * pad[1] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, oc, oh, ow), dtype=np.int64)
    ocg = oc // groups
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = w[g * ocg:(g + 1) * ocg]
        for i in range(kh):
            for j in range(kw):
                h0, w0 = i * dil[0], j * dil[1]
                patch = xs[:, :, h0:h0 + stride[0] * (oh - 1) + 1:stride[0], w0:w0 + stride[1] * (ow - 1) + 1:stride[1]]
                out[:, g * ocg:(g + 1) * ocg] += np.einsum("nchw,oc->nohw", patch, ws[:, :, i, j])
    return out
