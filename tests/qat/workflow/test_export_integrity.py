"""A damaged export is refused with one ExportError naming what is wrong (dlasim.integrity),
never loaded into a replay that computes other integers, and never a raw KeyError."""

import json
import random

import pytest
import torch

import dlasim
from dlasim import ExportError
from dlasim.export import export_module
import wf_models as M
from test_compile_export import run, trained_export


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("integrity")
    x = torch.randn(1, 3, 16, 16)
    _, path = trained_export(M.ResidualCNN(), x, tmp / "net.dla.pt", plan="int8")
    return path, x, tmp


def test_every_flipped_bit_is_refused_or_harmless(exported):
    path, x, tmp = exported
    want = dlasim.integer_forward(path, x)
    data = bytearray(open(path, "rb").read())
    rng = random.Random(0)
    refused = 0
    for i in range(40):
        pos = rng.randrange(len(data))
        bad = bytearray(data)
        bad[pos] ^= 1 << rng.randrange(8)
        p = tmp / ("flip%d.dla.pt" % i)
        p.write_bytes(bytes(bad))
        try:
            ex = dlasim.load_export(p)
        except ExportError as e:
            assert str(p) in str(e) and "\n" not in str(e), e
            refused += 1
            continue
        # A flip the loader never reads (zip padding, timestamps): the same integers.
        assert torch.equal(dlasim.integer_forward(ex, x), want), "bit flip at byte %d changed the replay" % pos
    assert refused >= 20, refused


def _rewrite(path, out, edit):
    """A copy of the export whose graph `edit` changed, with a matching digest (what a
    buggy tool, not a flipped bit, would write)."""
    ex = dlasim.load_export(path)
    graph = json.loads(ex.module.graph_json)
    edit(graph)
    tensors = {k: getattr(ex.module, k) for k in json.loads(ex.module.digest_json)["tensors"]}
    hosts = {k: getattr(ex.module, k) for k in json.loads(ex.module.digest_json)["hosts"]}
    torch.jit.save(export_module(graph, tensors, hosts), str(out))
    return out


@pytest.mark.parametrize("case,edit,message,compiler_message", [
    ("cycle", lambda g: g["nodes"][1].update(inputs=[g["nodes"][2]["name"]]), "which is not an earlier node",
     "node 'stem_0': input \"layer1_conv1\" is not an earlier node"),
    ("missing input", lambda g: g["nodes"][2].update(inputs=["nope"]), "reads 'nope', which is not an earlier node",
     "node 'layer1_conv1': input \"nope\" is not an earlier node"),
    ("duplicate", lambda g: g["nodes"][3].update(name=g["nodes"][2]["name"]), "appears twice",
     "node 'layer1_conv1': a node with this name already exists"),
    ("missing output", lambda g: g.update(outputs=["nope"]), "output 'nope' is not a node", "outputs: unknown output \"nope\""),
    ("missing tensor", lambda g: g["nodes"][1]["weights"].update(tensor="w_nope"), "names tensor 'w_nope'",
     "node 'stem_0' weights: tensor 'w_nope' is not in the export"),
])
def test_a_malformed_graph_is_one_export_error(exported, case, edit, message, compiler_message):
    path, x, tmp = exported
    bad = _rewrite(path, tmp / ("bad_%s.dla.pt" % case.replace(" ", "_")), edit)
    with pytest.raises(ExportError, match=message):
        dlasim.load_export(bad)
    with pytest.raises(ExportError, match=message):
        dlasim.integer_forward(bad, x)
    with pytest.raises(ExportError, match=message):
        dlasim.write_graph_file(bad, tmp / "bad.json")
    # the compiler's importer (C++) validates the same graph: one line naming the file and the node
    r = run("compile", bad, "-o", tmp / "bad.dlab")
    assert r.returncode == 1 and r.stderr == "dla: error: %s: %s\n" % (bad, compiler_message), r.stderr
    assert not (tmp / "bad.dlab").exists()


def test_the_compiler_checks_the_crcs_too(exported):
    path, x, tmp = exported
    ex = dlasim.load_export(path)
    graph = json.loads(ex.module.graph_json)
    digest = json.loads(ex.module.digest_json)
    key = sorted(digest["tensors"])[0]
    tensors = {k: getattr(ex.module, k).clone() for k in digest["tensors"]}
    tensors[key].view(-1)[0] += 1  # one weight changed after the digest was taken
    m = export_module(graph, {k: getattr(ex.module, k) for k in digest["tensors"]}, {})
    for k, t in tensors.items():
        setattr(m, k, t)
    p = tmp / "altered.dla.pt"
    torch.jit.save(m, str(p))
    with pytest.raises(ExportError, match="tensor '%s' does not match its CRC-32" % key):
        dlasim.load_export(p)
    r = run("compile", p, "-o", tmp / "altered.dlab")
    assert r.returncode == 1 and "tensor '%s' does not match its CRC-32" % key in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("field,value,compiler_message", [
    ("format", 7, 'not a dlasim QAT export ("format": "dlasim-qat-export" missing)'),
    ("version", "1", "unsupported export version (this build reads version 1)"),
])
def test_graph_fields_of_the_wrong_type_are_one_line_from_the_compiler(exported, field, value, compiler_message):
    # Found by fuzz_qat_export: a wrong JSON type (with a matching digest) was the raw text
    # of nlohmann's type_error ("malformed export: [json.exception.type_error.302] ...").
    path, x, tmp = exported
    bad = _rewrite(path, tmp / ("bad_%s_type.dla.pt" % field), lambda g: g.update({field: value}))
    r = run("compile", bad, "-o", tmp / "bad.dlab")
    assert r.returncode == 1 and r.stderr == "dla: error: %s: %s\n" % (bad, compiler_message), r.stderr


def test_a_load_error_without_a_message_is_still_one_export_error(tmp_path, monkeypatch):
    """libtorch raises some errors with an empty message on a damaged zip (seen as a raw
    IndexError from the message handling): the ExportError then names the error's type."""
    def fail(*args, **kwargs):
        raise RuntimeError("")
    monkeypatch.setattr(torch.jit, "load", fail)
    with pytest.raises(ExportError, match=r"x\.dla\.pt: cannot read it as a TorchScript export: RuntimeError$"):
        dlasim.load_export(tmp_path / "x.dla.pt")
