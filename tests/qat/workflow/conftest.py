"""pytest set-up for the QAT workflow tests (prepare_qat, export, DDP, Fashion-MNIST).

ctest sets PYTHONPATH and DLASIM_QAT_LIBRARY (tests/qat/tests.cmake); run by hand,
`/usr/bin/python3 -m pytest tests/qat/workflow` finds the package in qat_bridge/python and
the library in build/{ci,dev}/qat_bridge; the reference arithmetic shared with the op tests
(int_arith.py) is in tests/qat. Torch runs single-threaded here: the suites
share two cores with the rest of ctest.
"""

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

_here = Path(__file__).resolve().parent
_python = _here.parents[2] / "qat_bridge" / "python"
for p in (str(_python), str(_here), str(_here.parent)):
    if p not in sys.path:
        sys.path.insert(0, p)

import torch  # noqa: E402

torch.set_num_threads(1)
