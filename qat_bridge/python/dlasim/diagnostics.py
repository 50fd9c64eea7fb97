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
inputs: inf when they are equal; `nonfinite` (NaN / inf values a quantizer saw, when
QatConfig.nonfinite="count"); `first_last` ("first" / "last" where the plan's first/last
rule set the layer's types) and, in a module called more than once, `shared` (that
module), `site` (the same for the corresponding tensors of its calls) and `call` (0, 1, ...).

The notes under the table (and `Report.rules`) say what the plan's rules did: which
layers the first/last rule set and which float-island neighbours it left alone
(plan.first_last_at_islands), which calls of shared modules are tied (plan.tie_calls),
which calls of one module got different fracs (one compiled module cannot serve them),
which quantizers saw NaN or inf, and what the precision resolution widened or joined.
"""

import math

import torch

from . import ops
from .hw import dtype_range
from .integers import to_integers
from .layers import clip_ints
from .runtime import FLOAT, as_inputs, evaluating


class Report:
    def __init__(self, layers, plan, hw, notes=(), rules=None):
        self.layers = layers
        self.plan = plan
        self.hw = hw
        self.notes = list(notes)
        self.rules = dict(rules or {})

    def to_dict(self):
        return {"plan": self.plan, "hw": self.hw, "notes": list(self.notes), "rules": dict(self.rules),
                "layers": [dict(l) for l in self.layers]}

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
        nonfinite = {k: int(l.nonfinite_count) for k, l in m.layers.items()}
        rq, rf = {}, {}
        m.run(*example_inputs, record=rq)
        nonfinite = {k: int(l.nonfinite_count) - nonfinite[k] for k, l in m.layers.items()}
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
        row["nonfinite"] = nonfinite[info["layer"]]
        for k in ("first_last", "site", "call", "shared"):
            if k in info:
                row[k] = info[k]
        rows.append(row)
    rules = dict(getattr(m, "rules", {}))
    notes = _rule_notes(rules, m.plan) + _call_notes(rows, rules) + list(getattr(m, "notes", ()))
    notes += ["'%s' saw %d NaN / inf value(s) (counted: nonfinite='count')" % (r["name"], r["nonfinite"])
              for r in rows if r["nonfinite"]]
    return Report(rows, m.plan.describe(), m.hw_options.to_list(), notes, rules)


def _rule_notes(rules, plan):
    if not rules.get("first_last"):
        return []
    first, last = rules.get("first", []), rules.get("last", [])
    out = ["first/last rule (%s): first %s, last %s" % (rules["first_last"], ", ".join(first) or "-",
                                                         ", ".join(last) or "-")]
    if rules.get("first_last_at_islands"):
        out[0] += " (float islands' neighbours included: plan.first_last_at_islands=True)"
    elif rules.get("island_neighbours"):
        out.append("float islands' neighbours %s keep the plan's types (plan.first_last_at_islands=False, the "
                   "default)" % ", ".join(rules["island_neighbours"]))
    return out


def _call_notes(rows, rules):
    """Which calls of shared modules are tied, and which got different fracs."""
    sites = {}
    for r in rows:
        if "site" in r:
            sites.setdefault(r["site"], []).append(r)
    tied_modules = set(rules.get("tied", []))
    differ = {}
    for site, members in sites.items():
        if len(members) < 2:
            continue
        module = members[0]["shared"]
        formats = {(r["dtype"], r["frac"]) for r in members}
        if len(formats) > 1:
            names = "/".join(r["name"] for r in members)
            differ.setdefault(module, []).append("%s %s" % (names, "/".join("%s %d" % (r["dtype"], r["frac"])
                                                                              for r in members)))
    out = ["calls of '%s' are tied: one set of fracs" % m for m in sorted(tied_modules)]
    for module, what in sorted(differ.items()):
        out.append("calls of '%s' got different fracs (%s%s): one compiled '%s' cannot serve them; plan "
                   "tie_calls=[%r] ties them" % (module, "; ".join(what[:3]), "; ..." if len(what) > 3 else "",
                                                  module, module))
    return out


__all__ = ["report", "Report", "sqnr_db"]
