"""The precision resolution of prepare_qat: the plan, the first/last rule, activation formats.

Every requantizer gets its type from the plan (explicit types bind; "int4"/"int8" pick
u or i from whether the value is >= 0 by construction); the tensors the hardware needs
to share a type and frac (through concats, max pools, upsamples and flattens) are joined
into one group, which becomes one ActFormat of the prepared model.
"""

from . import ops
from .fuse import Analyzer, QNode
from .plan import MAC_MODES_TEXT, LayerPrecision, PlanError, act_bits, act_name, input_specs, mac_mode, \
    name_matches, parse_act, parse_weight
from .tracer import PrepareError, fx_names


class Resolver:
    """Resolves every requantizer's precision from the plan (run()), joins the tensors
    that must share a format into groups (activation formats), widens 4-bit inputs of i8
    MAC layers (widen_mac_inputs) and checks the MAC modes against the hardware (check_hw)."""

    def __init__(self, an):
        self.an = an
        self.plan = an.plan
        self.qnodes = an.qnodes

    def run(self):
        an, plan = self.an, self.plan
        qnodes = self.qnodes
        layers = [q for q in qnodes if q.op.requantizes]
        # Plan entries must name layers with a precision of their own.
        entries = [(p, LayerPrecision.coerce(v, "plan.layers[%r]" % p)) for p, v in plan.layers.items()]
        entries += [(p, LayerPrecision(frac=f)) for p, f in plan.fixed_fracs.items()]
        for pattern, _ in entries:
            if not any(name_matches(pattern, self.names(q)) for q in layers):
                other = [q.name for q in qnodes if name_matches(pattern, self.names(q))]
                if other:
                    raise PlanError("plan entry %r names %s, which keep their input's type and frac (max pool, "
                                    "upsample, flatten, concat); set the layers that produce their input instead"
                                    % (pattern, ", ".join(other)))
                raise PlanError("plan entry %r names no layer of the model (%s)" % (pattern, an.name_examples()))
        first, last, island_first, island_last = self.first_last(qnodes)
        rule = plan.first_last if (plan.four_bit_default and plan.first_last) else None
        self.rule = rule
        self.island_neighbours = (island_first | island_last) - first - last
        if plan.first_last_at_islands:
            first, last = first | island_first, last | island_last
        in_specs = input_specs(plan.input, [q.name for q in qnodes if q.op is ops.INPUT])
        nonneg = self.nonnegative(qnodes)
        self.spec = {}
        for q in layers:
            set_w = set_a = set_f = None
            for pattern, lp in entries:
                if name_matches(pattern, self.names(q)):
                    set_w = lp.weight if lp.weight is not None else set_w
                    set_a = lp.act if lp.act is not None else set_a
                    set_f = lp.frac if lp.frac is not None else set_f
            # exact types (i4, u4, i8, u8, i16) set by the plan are binding; "int4"/"int8"/
            # "int16" widen where a concat or pool joins them with wider tensors (noted)
            explicit = set_a is not None and str(set_a) in ("i4", "u4", "i8", "u8", "i16")
            if q.op is ops.INPUT:
                s = in_specs[q.name]
                if s["dtype"] is not None:
                    set_a = s["dtype"]
                    explicit = str(set_a) in ("i4", "u4", "i8", "u8", "i16")
                if s["frac"] is not None:
                    set_f = s["frac"]
                if set_a is None:
                    set_a = "int8"  # graph inputs: 8 bits (u8 images) unless plan.input says otherwise
            act = set_a
            if act is None:
                act = rule if (rule and q.op.mac and (q in first or q in last)) else plan.act
            bits, sign = parse_act(act, "layer '%s'" % q.name)
            if sign == "auto":
                sign = "u" if nonneg[q] else "i"
            if q.op.mac:
                w = set_w
                if w is None:
                    w = "i8" if (rule and (q in first or q in last)) else plan.weight
                q.weight_dtype = parse_weight(w, "layer '%s'" % q.name)
            self.spec[q] = dict(bits=bits, signed=sign == "i", explicit=explicit, frac=set_f, asked=act)
        self.first, self.last = first, last
        self.notes = []
        self.classes()
        for gid, g in enumerate(self.groups):
            for m in g["members"]:
                m.act_id = gid
        return self

    @staticmethod
    def nonnegative(qnodes):
        """Values that are >= 0 by construction (auto types make them unsigned): clipped at
        >= 0, averages and sums of such values, and inputs that were >= 0 in the example."""
        out = {}
        for q in qnodes:
            out[q] = q.op.nonneg(q, out)
        return out

    def names(self, q):
        if q.op is ops.QUANT_IN:
            src = q.attrs["float_source"]
            return [q.name] + fx_names(src)
        return q.names

    def first_last(self, qnodes):
        """(first, last, island first, island last): the MAC layers reached from a graph
        input (from a float island's output) without passing another MAC layer, and those
        from which a graph output (a float island) is reached without another MAC layer."""
        users = Analyzer.users(qnodes)

        def forward(starts):
            out, stack, seen = set(), list(starts), set()
            while stack:
                q = stack.pop()
                for u in users.get(q, []):
                    if u in seen:
                        continue
                    seen.add(u)
                    if u.op.mac:
                        out.add(u)
                    else:
                        stack.append(u)
            return out

        def backward(ends):
            out, stack, seen = set(), list(ends), set()
            while stack:
                q = stack.pop()
                if q in seen:
                    continue
                seen.add(q)
                if q.op.mac:
                    out.add(q)
                    continue
                stack.extend(i for i in q.inputs if isinstance(i, QNode))
            return out

        outputs = {self.an.value.get(n) for n in self.an.fx_outputs()}
        outputs = {v for v in outputs if isinstance(v, QNode)}
        island_ends = {q for q in qnodes if any(u.op != "output" for u in self.an.float_users(q))}
        return (forward(q for q in qnodes if q.op is ops.INPUT), backward(outputs),
                forward(q for q in qnodes if q.op is ops.QUANT_IN), backward(island_ends))

    def classes(self):
        qnodes = self.qnodes
        parent = {q: q for q in qnodes}

        def find(q):
            while parent[q] is not q:
                parent[q] = parent[parent[q]]
                q = parent[q]
            return q

        def union(a, b):
            ra, rb = find(a), find(b)
            if ra is not rb:
                parent[rb] = ra

        for q in qnodes:
            if q.op.shares_format:
                for i in q.inputs:
                    union(q, i)
        self.ties = {}
        self.tied_nodes = []
        for members in self.tied_sites().values():
            self.tied_nodes += members
            lead = members[0]
            for q in members[1:]:
                union(lead, q)
                for a, b in zip(lead.inputs, q.inputs):
                    union(a, b)
                if q.op.mac and q.weight_dtype == lead.weight_dtype and q.clip == lead.clip:
                    self.ties[q] = lead  # one layer (weights, weight fracs) for both calls
        groups = {}
        for q in qnodes:
            groups.setdefault(find(q), []).append(q)
        self.groups = []
        for members in groups.values():
            producers = [m for m in members if m.op.requantizes]
            if not producers:
                raise PrepareError("dlasim.prepare_qat: internal error: no requantizer in %s" % members)
            specs = [self.spec[p] for p in producers]
            bits = max(s["bits"] for s in specs)
            signed = any(s["signed"] for s in specs) or bits == 16
            dtype = act_name(bits, signed)
            for p, s in zip(producers, specs):
                if s["explicit"] and act_name(s["bits"], s["signed"]) != dtype:
                    joined = ", ".join("'%s' (%s)" % (o.name, act_name(self.spec[o]["bits"], self.spec[o]["signed"]))
                                       for o in producers)
                    raise PlanError("plan: '%s' is set to %s, but the hardware needs %s to share one type and frac "
                                    "(a concat joins them, a pool/upsample/flatten passes them on, or plan.tie_calls "
                                    "ties them), and together "
                                    "they need %s; set them alike" % (p.name, act_name(s["bits"], s["signed"]),
                                                                      joined, dtype))
            for p, s in zip(producers, specs):
                if act_name(s["bits"], s["signed"]) != dtype:
                    self.notes.append("'%s' asked for %s, runs %s: it shares its type with %s"
                                      % (p.name, act_name(s["bits"], s["signed"]), dtype,
                                         ", ".join("'%s'" % o.name for o in producers if o is not p)))
            fixed = {s["frac"] for s in specs if s["frac"] is not None}
            if len(fixed) > 1:
                raise PlanError("plan: fixed fracs %s are set for %s, which must share one frac"
                                % (sorted(fixed), ", ".join(p.name for p in producers)))
            self.groups.append(dict(members=members, producers=producers, dtype=dtype,
                                    frac=fixed.pop() if fixed else None))

    def tied_sites(self):
        """{call site: [QNodes of the calls]} of the modules plan.tie_calls names."""
        ties = self.plan.tie_calls
        if not ties:
            return {}
        sites = {}
        for q in self.qnodes:
            key = site_of(q)
            if key is not None:
                sites.setdefault(key, []).append(q)
        shared = {k: v for k, v in sites.items() if len(v) > 1}
        modules = sorted({shared_of(v[0]) for v in shared.values()})
        patterns = None if ties is True else list(ties)
        out = {}
        for pattern in patterns or []:
            if not any(name_matches(pattern, [m]) for m in modules):
                raise PlanError("plan.tie_calls entry %r names no module called more than once (%s)"
                                % (pattern, "modules called more than once: " + ", ".join(modules) if modules
                                   else "the model calls no module more than once"))
        for key, members in shared.items():
            path = shared_of(members[0])
            if patterns is None or any(name_matches(p, [path, key[0].rsplit("#", 1)[0]]) for p in patterns):
                targets = {str(m.fx_node.target) if m.fx_node is not None else None for m in members}
                if len(targets) > 1:
                    raise PlanError("plan.tie_calls: the calls of '%s' were traced differently (%s); they cannot be "
                                    "tied" % (path, ", ".join(m.name for m in members)))
                out[key] = members
        return out

    def widen_mac_inputs(self):
        """i8 weights read 8-bit activations on the MAC array: widen auto-typed 4-bit inputs."""
        for q in self.qnodes:
            if not q.op.mac or q.weight_dtype != "i8":
                continue
            g = self.groups[q.inputs[0].act_id]
            if act_bits(g["dtype"]) != 4:
                continue
            fixed = [p for p in g["producers"] if self.spec[p]["explicit"]]
            if fixed:
                raise PlanError("plan: layer '%s' (%s) has i8 weights, so it reads 8-bit activations (the MAC array "
                                "runs %s), but the plan sets '%s' to %s; give '%s' i4 weights or its input 8 bits"
                                % (q.name, q.kind, MAC_MODES_TEXT, fixed[0].name, g["dtype"], q.name))
            wide = g["dtype"][0] + "8"
            self.notes.append("%s widened from %s to %s: '%s' reads it with i8 weights"
                              % (", ".join("'%s'" % p.name for p in g["producers"]), g["dtype"], wide, q.name))
            g["dtype"] = wide

    def check_hw(self, hw):
        for q in self.qnodes:
            if not q.op.mac:
                continue
            x_dtype = self.dtype_of(q.inputs[0])
            mm = mac_mode(x_dtype, q.weight_dtype)
            if mm is None:
                raise PlanError("plan: layer '%s' (%s%s) reads %s activations with %s weights, which is not a precision "
                                "of the MAC array (%s); change its weights or its input's type in the plan"
                                % (q.name, q.kind, ", module '%s'" % q.source if q.source else "", x_dtype,
                                   q.weight_dtype, MAC_MODES_TEXT))
            mode, flag = mm
            if flag is not None and not getattr(hw, flag):
                raise PlanError("plan: layer '%s' (%s%s) reads %s activations with %s weights: the %s mode, which this "
                                "hardware config does not support (%s = false); give it i8 weights or other "
                                "activations in the plan" % (q.name, q.kind, ", module '%s'" % q.source
                                                             if q.source else "", x_dtype, q.weight_dtype, mode, flag))

    def dtype_of(self, q):
        return self.groups[q.act_id]["dtype"]


def site_of(q):
    """(call site, kind) of a QNode: equal for the corresponding nodes of the calls of a
    module called more than once (see dlasim.tracer); None for other nodes."""
    n = q.fx_node if q.fx_node is not None else q.attrs.get("float_source")
    if n is None or n.meta.get("dla_shared") is None:
        return None
    return (n.meta["dla_site"], q.kind)


def shared_of(q):
    """The outermost module called more than once that q belongs to."""
    n = q.fx_node if q.fx_node is not None else q.attrs.get("float_source")
    return n.meta.get("dla_shared")


__all__ = ["Resolver", "site_of", "shared_of"]
