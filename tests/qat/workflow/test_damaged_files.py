"""Damaged files of the float-parts chain: random byte flips and truncations of a QAT export
(read by `dla compile`) and of a segmented program (read by `dla disasm`, which loads the
plan, every segment and the host modules). Each is refused with one line naming the file
(exit 1) or, where the damage hit bytes nothing reads, accepted (exit 0); never a signal, a
hang or an internal error. (The fuzz preset builds no libtorch; these run the real tool.)"""

import numpy as np

import dlasim
from test_host_segments import dla, float_middle


def damage(tmp_path, data, suffix, seed, command, count=30):
    """Runs `command(file)` on `count` damaged copies of `data` (one to three bytes
    flipped; every fourth truncated instead); each must exit 0 or 1, and exit 1 with one
    line naming the file. Returns the number refused and the outputs of those accepted."""
    rng = np.random.default_rng(seed)
    refused, accepted = 0, []
    for k in range(count):
        bad = bytearray(data)
        if k % 4 == 3:
            bad = bad[: int(rng.integers(0, len(bad)))]
        else:
            for i in rng.integers(0, len(bad), size=1 + k % 3):
                bad[i] ^= int(rng.integers(1, 256))
        f = tmp_path / ("bad" + suffix)
        f.write_bytes(bytes(bad))
        r = command(f)
        assert r.returncode in (0, 1), (k, r.returncode, r.stderr[-2000:])
        if r.returncode == 1:
            refused += 1
            assert len(r.stderr.strip().splitlines()) == 1 and f.name in r.stderr, (k, r.stderr)
        else:
            accepted.append(r.stdout)
    return refused, accepted


def segments_text(disasm):
    """`dla disasm` of a segmented program without its first line (which counts the
    export's bytes): the plan and every segment."""
    return disasm.split("\n", 1)[1]


def test_damaged_segmented_programs_are_refused_never_crash(tmp_path):
    """Random byte flips and truncations of a segmented program: `dla disasm` (which reads
    the plan, every segment and the export's host modules) exits 0 (the damage hit bytes
    nothing reads) or 1 with one line naming the file, never a signal or a hang."""
    prepared, example, g, make_inputs = float_middle(tmp_path)
    path = dlasim.export(prepared.eval(), example, tmp_path / "net.dla.pt")
    prog = tmp_path / "net.dlab"
    assert dla("compile", path, "-o", prog).returncode == 0
    clean = segments_text(dla("disasm", prog).stdout)
    refused, accepted = damage(tmp_path, prog.read_bytes(), ".dlab", 0, lambda f: dla("disasm", f))
    assert refused >= 15  # most damage is caught (the records' CRC-32s, the .dlab CRCs, the plan's checks)
    assert all(segments_text(out) == clean for out in accepted)  # what is accepted reads as the original


def test_damaged_exports_are_refused_by_the_compiler_never_crash(tmp_path):
    """Random byte flips and truncations of a QAT export with float parts: `dla compile`
    (libtorch's reader, the export's digest, the strict graph reader, the host plan)
    exits 0 (the damage hit bytes nothing reads) or 1 with one line naming the file, never
    a signal or a hang, and never compiles a damaged graph or tensor into the program."""
    prepared, example, g, make_inputs = float_middle(tmp_path)
    path = dlasim.export(prepared.eval(), example, tmp_path / "net.dla.pt")
    assert dla("compile", path, "-o", tmp_path / "net.dlab").returncode == 0
    clean = segments_text(dla("disasm", tmp_path / "net.dlab").stdout)

    def compile_and_list(f):
        r = dla("compile", f, "-o", tmp_path / "bad.dlab")
        return dla("disasm", tmp_path / "bad.dlab") if r.returncode == 0 else r

    refused, accepted = damage(tmp_path, open(path, "rb").read(), ".dla.pt", 1, compile_and_list)
    assert refused >= 15
    assert all(segments_text(out) == clean for out in accepted)


def _with_plan(prog, out, edit):
    """A copy of the segmented program `prog` whose plan.json `edit` changed, with a
    matching digest.json (what a buggy or hostile tool, not a flipped bit, would write)."""
    import json
    import zipfile
    import zlib

    with zipfile.ZipFile(prog) as z:
        records = {n: z.read(n) for n in z.namelist()}
    plan_name = next(n for n in records if n.endswith("/plan.json"))
    digest_name = next(n for n in records if n.endswith("/digest.json"))
    plan = json.loads(records[plan_name])
    edit(plan)
    records[plan_name] = json.dumps(plan).encode()
    digest = json.loads(records[digest_name])
    digest["plan.json"] = zlib.crc32(records[plan_name])
    records[digest_name] = json.dumps(digest).encode()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for n, data in records.items():
            z.writestr(n, data)
    return out


def test_a_plan_with_fields_of_the_wrong_type_is_one_line(tmp_path):
    """Found by fuzz_segmented_program: a plan.json (with a matching digest) whose "format"
    or "version" or an input's "value" has the wrong JSON type was a raw json type_error
    (`dla: internal error`, exit 2); it is one line naming plan.json and the field, exit 1."""
    prepared, example, g, make_inputs = float_middle(tmp_path)
    path = dlasim.export(prepared.eval(), example, tmp_path / "net.dla.pt")
    prog = tmp_path / "net.dlab"
    assert dla("compile", path, "-o", prog).returncode == 0
    same = _with_plan(prog, tmp_path / "same.dlab", lambda p: None)
    assert dla("disasm", same).returncode == 0  # the rewritten container itself is fine
    for case, edit, message in [
        ("format", lambda p: p.update(format=7), 'plan.json: not a host plan ("format": "dlasim-host-plan" missing)'),
        ("version", lambda p: p.update(version="1"), "plan.json: unsupported version (this build reads version 1)"),
        ("value", lambda p: p["inputs"][0].update(value=0), 'plan.json input: "value" must be "int" or "float"'),
    ]:
        bad = _with_plan(prog, tmp_path / ("bad_%s.dlab" % case), edit)
        r = dla("disasm", bad)
        # (the host plan's errors name the file and plan.json, the record, as every plan error does)
        assert r.returncode == 1 and r.stderr.strip().splitlines() == ["dla: error: %s: %s" % (bad, message)], (
            case, r.returncode, r.stderr)
