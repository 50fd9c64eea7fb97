"""pytest set-up for the QAT bridge tests: makes `dlasim` importable from the source tree.

ctest sets PYTHONPATH and DLASIM_QAT_LIBRARY (tests/qat/tests.cmake); run by hand,
`/usr/bin/python3 -m pytest tests/qat` finds the package here and the library in
build/{ci,dev}/qat_bridge.
"""

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

_python = Path(__file__).resolve().parents[2] / "qat_bridge" / "python"
if str(_python) not in sys.path:
    sys.path.insert(0, str(_python))
