"""integrity: what an export must be to be replayed or compiled, checked on every load.

An export records a CRC-32 of every item it holds, beside them, in `digest_json`:

    {"algorithm": "crc32", "graph": C, "tensors": {key: C, ...}, "hosts": {key: C, ...}}

- graph: CRC-32 of the `graph_json` string's UTF-8 bytes, as stored;
- a tensor: CRC-32 of "<dtype><shape>" (e.g. "i8[16, 3, 3, 3]", dtype names below) followed
  by its elements' bytes, row-major, little endian;
- a host module: CRC-32 of its TorchScript code followed by, for every state-dict entry in
  name order, the name and the tensor's item bytes as above.

CRC-32 is the IEEE 802.3 one of the .dlab file (zlib.crc32; dla::crc32 in C++): it catches
corruption (any flipped bit, a truncated tensor), as the program file's section checksums
do; it is not a signature. `verify` also checks the graph's structure (unique names, every
input an earlier node, outputs and tensors that exist), so a damaged file is one
ExportError naming what is wrong, never a KeyError deep in the replay. The compiler's
importer checks the same CRCs.
"""

import json
import zlib

import torch

from .integers import ExportError

DTYPE_NAMES = {torch.int8: "i8", torch.uint8: "u8", torch.int16: "i16", torch.int32: "i32", torch.int64: "i64",
               torch.float16: "f16", torch.float32: "f32", torch.float64: "f64", torch.bool: "b1"}


def tensor_crc(t, crc=0):
    t = t.detach().contiguous()
    head = "%s%s" % (DTYPE_NAMES.get(t.dtype, str(t.dtype)), list(t.shape))
    return zlib.crc32(t.numpy().tobytes(), zlib.crc32(head.encode(), crc))


def host_crc(module):
    crc = zlib.crc32(getattr(module, "code", "").encode())
    for name, t in sorted(module.state_dict().items()):
        crc = tensor_crc(t, zlib.crc32(name.encode(), crc))
    return crc


def digest(graph_json, tensors, hosts):
    """The digest_json of an export's items."""
    return json.dumps({"algorithm": "crc32", "graph": zlib.crc32(graph_json.encode()),
                       "tensors": {k: tensor_crc(t) for k, t in sorted(tensors.items())},
                       "hosts": {k: host_crc(h) for k, h in sorted(hosts.items())}}, sort_keys=True)


def _fail(what):
    raise ExportError("damaged or altered export: %s" % what)


def verify(module):
    """The graph of a loaded export (its container module) after every check; ExportError else."""
    texts = {}
    for attr in ("graph_json", "digest_json"):
        try:
            texts[attr] = getattr(module, attr)
        except AttributeError:
            _fail("it has no %s (not a dlasim export, or written by a dlasim without digests: export it again)" % attr)
        except UnicodeDecodeError:
            _fail("its %s is not text" % attr)
        if not isinstance(texts[attr], str):
            _fail("its %s is not text" % attr)
    try:
        d = json.loads(texts["digest_json"])
        want_graph, want_tensors, want_hosts = int(d["graph"]), dict(d["tensors"]), dict(d["hosts"])
        if d.get("algorithm") != "crc32":
            raise ValueError
    except (ValueError, KeyError, TypeError, AttributeError):
        _fail("its digest_json is not a crc32 digest")
    if zlib.crc32(texts["graph_json"].encode()) != want_graph:
        _fail("the graph's CRC-32 does not match its digest")
    for key, want in sorted(want_tensors.items()):
        t = getattr(module, key, None)
        if not isinstance(t, torch.Tensor):
            _fail("tensor '%s' is missing" % key)
        if tensor_crc(t) != want:
            _fail("tensor '%s' does not match its CRC-32" % key)
    for key, want in sorted(want_hosts.items()):
        h = getattr(module, key, None)
        if h is None or host_crc(h) != want:
            _fail("host module '%s' is missing or does not match its CRC-32" % key)
    try:
        graph = json.loads(texts["graph_json"])
    except ValueError as e:
        _fail("its graph is not JSON (%s)" % e)
    check_structure(graph, want_tensors, want_hosts)
    return graph


def check_structure(graph, tensors, hosts):
    """Unique node names, inputs that name earlier nodes, outputs that exist, tensor and
    host references that the export holds."""
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list) or \
            not isinstance(graph.get("outputs"), list):
        _fail("its graph has no node list or no output list")
    seen = set()
    for i, n in enumerate(graph["nodes"]):
        if not isinstance(n, dict) or not isinstance(n.get("name"), str) or not isinstance(n.get("op"), str):
            _fail("node %d has no name or op" % i)
        name = n["name"]
        if name in seen:
            _fail("node name '%s' appears twice" % name)
        for src in n.get("inputs", []):
            if src not in seen:
                _fail("node '%s' reads '%s', which is not an earlier node (a cycle or a missing node)" % (name, src))
        for field in ("weights", "bias"):
            ref = n.get(field)
            if isinstance(ref, dict) and ref.get("tensor") not in tensors:
                _fail("node '%s' names tensor '%s', which the export does not hold" % (name, ref.get("tensor")))
        if "module" in n and n["module"] not in hosts:
            _fail("node '%s' names host module '%s', which the export does not hold" % (name, n["module"]))
        seen.add(name)
    for out in graph["outputs"]:
        if out not in seen:
            _fail("output '%s' is not a node" % out)
    if not graph["outputs"]:
        _fail("it has no outputs")
    ref = graph.get("float_reference")
    if ref is not None:
        if not isinstance(ref, dict) or ref.get("module") not in hosts or not isinstance(ref.get("values"), list) \
                or not all(v in seen for v in ref["values"]):
            _fail("its float_reference names a module it does not hold or values that are not nodes")


__all__ = ["digest", "verify", "check_structure", "tensor_crc", "host_crc", "DTYPE_NAMES"]
