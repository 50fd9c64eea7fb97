"""Finds and loads the op library (libdla_qat.so) into torch.ops.dla."""

import os
import shutil
from pathlib import Path

import torch

_LIB_NAME = "libdla_qat.so"
_loaded = None


def _candidates():
    env = os.environ.get("DLASIM_QAT_LIBRARY")
    if env:
        yield Path(env)
        return
    here = Path(__file__).resolve().parent
    yield here / _LIB_NAME  # installed next to the package
    # In the source tree: qat_bridge/python/dlasim -> <repo>/build/<preset>/qat_bridge
    repo = here.parents[2]
    for preset in ("ci", "dev", "release"):
        yield repo / "build" / preset / "qat_bridge" / _LIB_NAME


def dla_tool():
    """The `dla` tool that belongs to the loaded op library: $DLA_TOOL, then the build tree's
    (<build>/sim/dla beside <build>/qat_bridge/libdla_qat.so), then the installed one
    (<prefix>/bin/dla for <prefix>/lib/python3.X/dist-packages/dlasim), then PATH."""
    env = os.environ.get("DLA_TOOL")
    if env:
        return env
    lib = Path(load_library())
    for candidate in (lib.parent.parent / "sim" / "dla", lib.parents[4] / "bin" / "dla" if len(lib.parents) > 4 else None):
        if candidate is not None and candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("dla")
    if found:
        return found
    raise RuntimeError("dlasim: cannot find the dla tool (set DLA_TOOL, or build it: cmake --build --preset ci --target dla)")


def load_library(path=None):
    """Loads the dla op library once and returns its path.

    The path is, in order: `path`, $DLASIM_QAT_LIBRARY, libdla_qat.so next to this
    package, build/{ci,dev,release}/qat_bridge/ of the source tree.
    """
    global _loaded
    if _loaded is not None:
        return _loaded
    candidates = [Path(path)] if path is not None else list(_candidates())
    for candidate in candidates:
        if candidate.is_file():
            torch.ops.load_library(str(candidate))
            _loaded = str(candidate)
            return _loaded
    raise RuntimeError(
        "dlasim: cannot find %s (looked at: %s); build it (cmake --build --preset ci "
        "--target dla_qat) or set DLASIM_QAT_LIBRARY" % (_LIB_NAME, ", ".join(map(str, candidates))))
