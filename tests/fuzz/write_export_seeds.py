"""Seeds of the libFuzzer targets for libtorch's container (scripts/fuzz runs this with
Debian's python3 and the ci build's op library): two small QAT exports written by the
Python workflow (one all on the device, one with a float layer in the middle) and the
segmented program `dla compile` makes of the second. The first byte of a seed picks the
target's mode (tests/fuzz/fuzz_qat_export.cpp, fuzz_segmented_program.cpp): 0 the file's
bytes, 1 the graph_json / plan.json text put into the base file (written as base.dla.pt
and base.dlab beside the seed folders).

Usage: write_export_seeds.py SEEDS_DIR DLA_TOOL"""

import subprocess
import sys
import zipfile
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here.parent / "qat" / "workflow"))
sys.path.insert(0, str(here.parents[1] / "qat_bridge" / "python"))

import torch  # noqa: E402

import dlasim  # noqa: E402
import wf_models as M  # noqa: E402

seeds, dla = Path(sys.argv[1]), sys.argv[2]
for d in ("fuzz_qat_export", "fuzz_segmented_program"):
    (seeds / d).mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
g = torch.Generator().manual_seed(0)
x = (torch.randint(0, 256, (1, 1, 8, 8), generator=g, dtype=torch.uint8),)
u8 = {"dtype": "u8", "frac": 8}


def seed(target, name, mode, data):
    (seeds / target / name).write_bytes(bytes([mode]) + data)


for name, plan in [("device", dlasim.PrecisionPlan.preset("int8", input=u8)),
                   ("float_parts", dlasim.PrecisionPlan.preset("int4", input=u8, float_layers=["mid"]))]:
    prepared = dlasim.prepare_qat(M.FloatMiddle(width=2, classes=3), x, plan=plan).eval()
    path = dlasim.export(prepared, x, seeds / ("%s.dla.pt" % name))
    seed("fuzz_qat_export", name, 0, Path(path).read_bytes())
    seed("fuzz_qat_export", name + "_graph", 1, torch.jit.load(path).graph_json.encode())

base = seeds / "float_parts.dla.pt"
base.rename(seeds / "base.dla.pt")
(seeds / "device.dla.pt").unlink()
prog = seeds / "base.dlab"
subprocess.run([dla, "compile", str(seeds / "base.dla.pt"), "-o", str(prog)], check=True, capture_output=True)
seed("fuzz_segmented_program", "program", 0, prog.read_bytes())
with zipfile.ZipFile(prog) as z:
    plan = next(n for n in z.namelist() if n.endswith("/plan.json"))
    seed("fuzz_segmented_program", "plan", 1, z.read(plan))
