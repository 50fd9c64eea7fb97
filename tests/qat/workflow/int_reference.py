"""An independent reference for exported graphs: numpy int64, straight from isa/README.md
section 1 (not through dla/numerics.hpp or the dla ops), so that a bug shared by the ops
and the exporter cannot hide.

It runs the device nodes of an export (input, conv2d, linear, add, concat, max_pool,
avg_pool, global_avg_pool, upsample2x, flatten) from the integers in the file alone.
"""

import numpy as np

from int_arith import out_range, ref_conv_int


def round_shift(v, s, mode):
    v = np.asarray(v, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64)
    out = np.empty(np.broadcast(v, s).shape, dtype=np.int64)
    vb, sb = np.broadcast_arrays(v, s)
    for shift in np.unique(sb):
        sel = sb == shift
        x = vb[sel]
        if shift <= 0:
            out[sel] = x * (1 << int(-shift))
            continue
        half = 1 << int(shift - 1)
        floor = x >> int(shift)
        rem = x - (floor << int(shift))
        if mode == "HALF_UP":
            r = (x + half) >> int(shift)
        elif mode == "FLOOR":
            r = floor
        elif mode == "HALF_AWAY":
            r = np.where(x >= 0, (x + half) >> int(shift), -((-x + half) >> int(shift)))
        elif mode == "HALF_EVEN":
            r = floor + (rem > half) + ((rem == half) & (floor & 1 == 1))
        else:
            raise ValueError(mode)
        out[sel] = r
    return out


def wrap(v, bits):
    v = np.asarray(v, dtype=np.int64)
    m = np.int64(1) << bits
    r = v & (m - 1)
    return np.where(r >= (m >> 1), r - m, r)


def clamp(v, dtype, clip):
    return np.clip(v, *out_range(dtype, clip))


def _finalize(acc, hw):
    bits = hw["acc_bits"]
    if hw["overflow_policy"] == "WRAP":
        return wrap(acc, bits)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(acc, lo, hi)


def conv2d(x, w, b, stride, pad, dil, groups):
    return ref_conv_int(x, w, stride, pad, dil, groups) + b.reshape(1, -1, 1, 1)


def avgpool_multiplier(n, s):
    return ((1 << (s + 1)) + n) // (2 * n)


def run(exported, inputs, segment_inputs=None):
    """{node name: int64 array} of every device node; `inputs` are integer arrays. With
    float islands, `segment_inputs` gives the integers of the host's `quantize` nodes
    (the device segments' inputs) and the host nodes are skipped."""
    g = exported.graph
    hw = g["hw"]
    mode = hw["rounding_mode"]
    env, frac, dtype = {}, {}, {}
    for n in g["nodes"]:
        name, op = n["name"], n["op"]
        ins = n.get("inputs", [])
        if op == "input":
            env[name] = np.asarray(inputs[n["index"]], dtype=np.int64)
            frac[name], dtype[name] = n["frac"], n["dtype"]
            continue
        if op == "quantize" and segment_inputs is not None:
            env[name] = np.asarray(segment_inputs[name], dtype=np.int64)
            frac[name], dtype[name] = n["frac"], n["dtype"]
            continue
        if op in ("host", "float_input") and segment_inputs is not None:
            continue
        if op in ("host", "quantize", "float_input"):
            raise ValueError("the reference runs device graphs only")
        out = n.get("out")
        if op in ("conv2d", "linear"):
            w = exported.tensor(n["weights"]["tensor"]).numpy().astype(np.int64)
            b = exported.tensor(n["bias"]["tensor"]).numpy().astype(np.int64)
            x = env[ins[0]]
            if op == "conv2d":
                acc = conv2d(x, w, b, n["stride"], n["padding"][:2], n["dilation"], n["groups"])
                shift = (frac[ins[0]] + np.asarray(n["weight_frac"]) - out["frac"]).reshape(1, -1, 1, 1)
            else:
                acc = x @ w.T + b
                shift = (frac[ins[0]] + np.asarray(n["weight_frac"]) - out["frac"]).reshape(1, -1)
            y = clamp(round_shift(_finalize(acc, hw), shift, mode), out["dtype"], out["clip"])
        elif op == "add":
            fa, fb = frac[ins[0]], frac[ins[1]]
            f = max(fa, fb)
            s = (env[ins[0]] << (f - fa)) + (env[ins[1]] << (f - fb))
            y = clamp(round_shift(s, f - out["frac"], mode), out["dtype"], out["clip"])
        elif op in ("avg_pool", "global_avg_pool"):
            x = env[ins[0]]
            if op == "avg_pool":
                k, st, p = n["kernel"], n["stride"], n["padding"][:2]
            else:
                k, st, p = list(x.shape[2:]), list(x.shape[2:]), [0, 0]
            ones = np.ones((x.shape[1], 1, k[0], k[1]), dtype=np.int64)
            sums = conv2d(x, ones, np.zeros(x.shape[1], dtype=np.int64), st, p, (1, 1), x.shape[1])
            s_ = hw["avgpool_shift"]
            m = avgpool_multiplier(k[0] * k[1], s_)
            y = clamp(round_shift(sums * m, s_ + frac[ins[0]] - out["frac"], mode), out["dtype"], out["clip"])
        elif op == "max_pool":
            x = env[ins[0]]
            k, st, p = n["kernel"], n["stride"], n["padding"][:2]
            low = np.iinfo(np.int64).min
            xp = np.full((x.shape[0], x.shape[1], x.shape[2] + 2 * p[0], x.shape[3] + 2 * p[1]), low, dtype=np.int64)
            xp[:, :, p[0]:p[0] + x.shape[2], p[1]:p[1] + x.shape[3]] = x
            oh = (x.shape[2] + 2 * p[0] - k[0]) // st[0] + 1
            ow = (x.shape[3] + 2 * p[1] - k[1]) // st[1] + 1
            y = np.full((x.shape[0], x.shape[1], oh, ow), low, dtype=np.int64)
            for i in range(k[0]):
                for j in range(k[1]):
                    y = np.maximum(y, xp[:, :, i: i + st[0] * (oh - 1) + 1: st[0], j: j + st[1] * (ow - 1) + 1: st[1]])
        elif op == "concat":
            assert len({(frac[i], dtype[i]) for i in ins}) == 1, "concat inputs must share dtype and frac"
            y = np.concatenate([env[i] for i in ins], axis=1)
        elif op == "upsample2x":
            y = env[ins[0]].repeat(2, axis=2).repeat(2, axis=3)
        elif op == "flatten":
            y = env[ins[0]].reshape(env[ins[0]].shape[0], -1)
        else:
            raise ValueError(op)
        env[name] = y
        if out is not None:
            frac[name], dtype[name] = out["frac"], out["dtype"]
        else:
            frac[name], dtype[name] = frac[ins[0]], dtype[ins[0]]
        assert (frac[name], dtype[name]) == (n["frac"], n["dtype"]), name
    return env
