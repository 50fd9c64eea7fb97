"""dlasim: bit-exact quantization-aware training for the dlasim accelerator.

The ops (torch.ops.dla.*) come from the C++ library libdla_qat.so, loaded on import (see
_library.load_library for where it is looked for). Their forward computes the
accelerator's integers with the same code as the simulator (dla/numerics.hpp); their
backward is the straight-through estimator with the clamp mask.

    import dlasim
    hw = dlasim.HwOptions.preset("default")
    conv = dlasim.nn.QConv2d(3, 16, 3, padding=1, in_dtype="u8", in_frac=8, out_dtype="u8",
                             out_frac=4, relu=True, hw=hw)
"""

from ._library import load_library

load_library()

from . import functional, nn  # noqa: E402  (after the library is loaded)
from .hw import DTYPES, OVERFLOW_POLICIES, RANGES, ROUND_MODES, HwOptions  # noqa: E402

__all__ = ["load_library", "functional", "nn", "HwOptions", "DTYPES", "RANGES", "ROUND_MODES",
           "OVERFLOW_POLICIES"]
