"""Damaged files of the float-parts chain: random byte flips and truncations of a QAT export
(read by `dla compile`) and of a segmented program (read by `dla disasm`, which loads the
plan, every segment and the host modules). Each is refused with one line naming the file
(exit 1) or, where the damage hit bytes nothing reads, accepted (exit 0); never a signal, a
hang or an internal error. (The fuzz preset builds no libtorch; these run the real tool.)"""

import numpy as np

import dlasim
from test_host_segments import dla, float_middle


def test_damaged_segmented_programs_are_refused_never_crash(tmp_path):
    """Random byte flips and truncations of a segmented program: `dla disasm` (which reads
    the plan, every segment and the export's host modules) exits 0 (the damage hit bytes
    nothing reads) or 1 with one line naming the file, never a signal or a hang."""
    prepared, example, g, make_inputs = float_middle(tmp_path)
    path = dlasim.export(prepared.eval(), example, tmp_path / "net.dla.pt")
    prog = tmp_path / "net.dlab"
    assert dla("compile", path, "-o", prog).returncode == 0
    data = prog.read_bytes()
    rng = np.random.default_rng(0)
    refused = 0
    for k in range(30):
        bad = bytearray(data)
        if k % 4 == 3:
            bad = bad[: int(rng.integers(0, len(bad)))]
        else:
            for i in rng.integers(0, len(bad), size=1 + k % 3):
                bad[i] ^= int(rng.integers(1, 256))
        f = tmp_path / "bad.dlab"
        f.write_bytes(bytes(bad))
        r = dla("disasm", f)
        assert r.returncode in (0, 1), (k, r.returncode, r.stderr[-2000:])
        if r.returncode == 1:
            refused += 1
            assert len(r.stderr.strip().splitlines()) == 1 and "bad.dlab" in r.stderr, (k, r.stderr)
    assert refused >= 15  # most damage is caught (zip CRCs, .dlab CRCs, the plan's checks)


def test_damaged_exports_are_refused_by_the_compiler_never_crash(tmp_path):
    """Random byte flips and truncations of a QAT export with float parts: `dla compile`
    (libtorch's reader, the export's digest, the strict graph reader, the host plan)
    exits 0 (the damage hit bytes nothing reads) or 1 with one line naming the file, never
    a signal or a hang, and never writes a program from a damaged graph or tensor."""
    prepared, example, g, make_inputs = float_middle(tmp_path)
    data = open(dlasim.export(prepared.eval(), example, tmp_path / "net.dla.pt"), "rb").read()
    rng = np.random.default_rng(1)
    refused = 0
    for k in range(30):
        bad = bytearray(data)
        if k % 4 == 3:
            bad = bad[: int(rng.integers(0, len(bad)))]
        else:
            for i in rng.integers(0, len(bad), size=1 + k % 3):
                bad[i] ^= int(rng.integers(1, 256))
        f = tmp_path / "bad.dla.pt"
        f.write_bytes(bytes(bad))
        r = dla("compile", f, "-o", tmp_path / "bad.dlab")
        assert r.returncode in (0, 1), (k, r.returncode, r.stderr[-2000:])
        if r.returncode == 1:
            refused += 1
            assert len(r.stderr.strip().splitlines()) == 1 and "bad.dla.pt" in r.stderr, (k, r.stderr)
    assert refused >= 15
