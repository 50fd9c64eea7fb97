"""`scripts/regress`: the QAT workflow's model families as cases of `dla regress` (issue 11):
each export a case (each device segment of a model with float parts), every layer of every
engine against the compiler's reference evaluator, a wrong reference caught and named."""

import subprocess
import sys
from pathlib import Path

from test_host_segments import ENGINES
from test_signoff import DLA

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "regress"


def regress(tmp_path, *args):
    return subprocess.run([sys.executable, str(SCRIPT), "--families", "residual-int4,int4-float-middle",
                           "--out", str(tmp_path / "models"), "--seeds", "0", "--resnet-size", "0",
                           "--engines", ",".join(ENGINES), *map(str, args)],
                          capture_output=True, text=True, timeout=600, env=dict(__import__("os").environ, DLA_TOOL=DLA))


def test_the_model_families_are_cases_of_the_regression(tmp_path):
    r = regress(tmp_path, "--junit", tmp_path / "r.xml")
    assert r.returncode == 0, r.stdout + r.stderr
    cases = ["model/residual-int4.dla.pt", "model/int4-float-middle.dla.pt/segment0",
             "model/int4-float-middle.dla.pt/segment1"]
    for case in cases:
        for engine in ENGINES:
            row = [l.split() for l in r.stdout.splitlines() if l.startswith(case + " ")]
            assert [engine, "pass"] in [[x[1], x[4]] for x in row], (case, engine, r.stdout)
    assert "regress: PASS" in r.stdout
    assert 'failures="0"' in (tmp_path / "r.xml").read_text()


def test_a_wrong_reference_of_a_segment_fails_and_is_named(tmp_path):
    r = regress(tmp_path, "--fault-reference", "model/int4-float-middle.dla.pt/segment1")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "first: case 'model/int4-float-middle.dla.pt/segment1' on %s: MISMATCH" % ENGINES[0] in r.stdout, r.stdout


def test_a_file_that_is_no_model_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.dla.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    r = subprocess.run([DLA, "regress", "--model", bad, "--seeds", "0", "--resnet-size", "0"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and str(bad) in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
