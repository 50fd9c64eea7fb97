"""Per-layer diagnostics of a prepared model: fracs, saturation and overflow, SQNR vs float.

    rep = dlasim.report(prepared, (x,))
    print(rep)            # a table
    rep.to_dict()         # {"layers": [{...}, ...], "plan": ..., "hw": ...}

For every quantized tensor of the graph (in topological order): its type and frac; for MAC
layers the weight type, the range of the per-channel weight fracs and the MAC mode; from
one eval forward on the given inputs: `clamped` (fraction of outputs the requantizer
clamped, ReLU clips of negatives included, as the ops count them), `at_limit` (fraction
of outputs at the type's bounds, not counting a ReLU's 0: saturation), `overflow`
(accumulator overflows per output), and `sqnr_db`: 10 log10(sum r^2 / sum (r - q)^2) of
the layer's output q against the same tensor r of the float model (the prepared graph
run with floats: BN folded with its running statistics, no quantization) on the same
inputs: inf when they are equal.
"""

import math

import torch

from . import ops
from .hw import dtype_range
from .integers import to_integers
from .layers import clip_ints
from .runtime import FLOAT, as_inputs, evaluating


class Report:
    def __init__(self, layers, plan, hw, notes=()):
        self.layers = layers
        self.plan = plan
        self.hw = hw
        self.notes = list(notes)

    def to_dict(self):
        return {"plan": self.plan, "hw": self.hw, "notes": list(self.notes), "layers": [dict(l) for l in self.layers]}

    def layer(self, name):
        for l in self.layers:
            if l["name"] == name:
                return l
        raise KeyError(name)

    def __str__(self):
        head = ("%-24s %-8s %-5s %5s %-11s %-6s %8s %8s %8s %8s"
                % ("layer", "op", "type", "frac", "w fracs", "mode", "clamped", "at_lim", "overflow", "SQNR dB"))
        lines = ["dlasim QAT report (plan: %s)" % self.plan, head, "-" * len(head)]
        for l in self.layers:
            wf = "" if l.get("weight_frac_min") is None else "%s %d..%d" % (l["weight_dtype"], l["weight_frac_min"],
                                                                             l["weight_frac_max"])
            lines.append("%-24s %-8s %-5s %5d %-11s %-6s %8s %8s %8s %8s" % (
                l["name"][:24], l["op"], l["dtype"], l["frac"], wf, l.get("mac_mode") or "",
                _pct(l.get("clamped")), _pct(l.get("at_limit")), _pct(l.get("overflow")), _db(l.get("sqnr_db"))))
        lines += ["note: " + n for n in self.notes]
        return "\n".join(lines)

    __repr__ = __str__


def _pct(v):
    return "" if v is None else "%.2f%%" % (100.0 * v)


def _db(v):
    if v is None:
        return ""
    return "inf" if math.isinf(v) else "%.1f" % v


def sqnr_db(ref, q):
    ref, q = ref.detach().double(), q.detach().double()
    noise = float((ref - q).square().sum())
    signal = float(ref.square().sum())
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


@torch.no_grad()
def report(model, example_inputs):
    """A Report of the prepared model on example_inputs (see the module docstring)."""
    example_inputs = as_inputs(example_inputs)
    with evaluating(model) as m:
        m(*example_inputs)
        before = {k: (int(l.overflow_count), int(l.saturation_count), int(l.element_count))
                  for k, l in m.layers.items()}
        rq, rf = {}, {}
        m.run(*example_inputs, record=rq)
        m.run(*example_inputs, float_mode=True, record=rf)
    rows = []
    for info in m.nodes:
        if info["kind"] == FLOAT:
            continue
        op = ops.BY_NAME[info["kind"]]
        name = info["name"]
        layer = m.layers[info["layer"]]
        act = m.acts[info["act"]]
        f = act.frac()
        row = {"name": name, "op": info["kind"], "source": info["source"], "dtype": act.dtype, "frac": f,
               "format": act.name, "frac_kind": "fixed" if act.fixed else ("learnable" if act.learnable else "observed")}
        q = rq[name]
        if op.describe is not None:
            row.update(op.describe(layer, m))
        if op.requantizes:
            o0, s0, e0 = before[info["layer"]]
            elems = int(layer.element_count) - e0
            if elems:
                row["clamped"] = (int(layer.saturation_count) - s0) / elems
                row["overflow"] = (int(layer.overflow_count) - o0) / elems
            ints = to_integers(q, f)
            lo, hi = dtype_range(act.dtype)
            c = clip_ints(getattr(layer, "clip", None), f)
            if c is not None and c[1] is not None:
                hi = min(hi, c[1])
            at = ints >= hi
            if lo < 0 and (c is None or c[0] is None or c[0] <= lo):  # a signed bound, not a ReLU's 0
                at = at | (ints <= lo)
            row["at_limit"] = float(at.double().mean()) if ints.numel() else 0.0
        row["sqnr_db"] = sqnr_db(rf[name], q)
        rows.append(row)
    return Report(rows, m.plan.describe(), m.hw_options.to_list(), getattr(m, "notes", ()))


__all__ = ["report", "Report", "sqnr_db"]
