"""Types, rounding modes and the hardware options the dla ops take."""

from dataclasses import dataclass, replace

import torch

from ._library import load_library

#: Activation and weight types, as the ops' integer codes (dla::DType).
DTYPES = {"i4": 0, "u4": 1, "i8": 2, "u8": 3, "i16": 4}
#: Ranges of the types, inclusive.
RANGES = {"i4": (-8, 7), "u4": (0, 15), "i8": (-128, 127), "u8": (0, 255), "i16": (-32768, 32767)}
ROUND_MODES = {"HALF_UP": 0, "HALF_AWAY": 1, "HALF_EVEN": 2, "FLOOR": 3}
OVERFLOW_POLICIES = {"WRAP": 0, "SATURATE_FINAL": 1}
FRAC_MIN, FRAC_MAX = -32, 32


def dtype_code(dtype):
    """The integer code of a type name ("i8") or code."""
    if isinstance(dtype, int):
        return dtype
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ValueError("unknown dla type %r (expected one of %s)" % (dtype, ", ".join(DTYPES))) from None


def dtype_name(dtype):
    if isinstance(dtype, str):
        return dtype
    return {v: k for k, v in DTYPES.items()}[dtype]


def dtype_range(dtype):
    return RANGES[dtype_name(dtype)]


@dataclass(frozen=True)
class HwOptions:
    """The hardware-config fields the QAT ops compute with (see dla/qat/hw_options.hpp).

    `HwOptions.preset("default")` reads them from dla::HwConfig's presets, and
    `HwOptions.from_json(text)` from a hardware-config JSON; `to_list()` is the `hw`
    argument of every op.
    """

    acc_bits: int = 32
    overflow_policy: str = "WRAP"
    rounding_mode: str = "HALF_UP"
    avgpool_shift: int = 15
    supports_a4w4: bool = True
    supports_a8w4: bool = True
    supports_a16w8: bool = True

    @staticmethod
    def from_list(values, where="hw"):
        values = _hw_values(values, where)
        policies = {v: k for k, v in OVERFLOW_POLICIES.items()}
        modes = {v: k for k, v in ROUND_MODES.items()}
        if values[1] not in policies or values[2] not in modes:
            raise ValueError("%s: overflow policy %d / rounding mode %d is not one of %s / %s"
                             % (where, values[1], values[2], OVERFLOW_POLICIES, ROUND_MODES))
        return HwOptions(int(values[0]), policies[int(values[1])], modes[int(values[2])], int(values[3]),
                         bool(values[4]), bool(values[5]), bool(values[6]))

    @staticmethod
    def preset(name="default"):
        load_library()
        return HwOptions.from_list(torch.ops.dla.hw_preset(name))

    @staticmethod
    def from_json(text):
        load_library()
        return HwOptions.from_list(torch.ops.dla.hw_from_json(text))

    def replace(self, **changes):
        return replace(self, **changes)

    def to_list(self):
        return [int(self.acc_bits), OVERFLOW_POLICIES[self.overflow_policy], ROUND_MODES[self.rounding_mode],
                int(self.avgpool_shift), int(self.supports_a4w4), int(self.supports_a8w4),
                int(self.supports_a16w8)]


_HW_FIELDS = "[acc_bits, overflow_policy, rounding_mode, avgpool_shift, supports_a4w4, supports_a8w4, supports_a16w8]"


def _hw_values(hw, where):
    """The 7 integers of an `hw` list, or a clear error saying what `hw` can be."""
    ok = isinstance(hw, (list, tuple)) and len(hw) == 7 and all(
        isinstance(v, (int, bool)) or (isinstance(v, torch.Tensor) and v.numel() == 1) for v in hw)
    if not ok:
        raise TypeError("%s must be an HwOptions, a preset name (\"default\"), hardware-config JSON text, or the "
                        "7-integer list %s; got %r" % (where, _HW_FIELDS, hw))
    return [int(v) for v in hw]


def as_hw_list(hw):
    """The `hw` list of an HwOptions, a list, or None (the default preset)."""
    if hw is None:
        return HwOptions().to_list()
    if isinstance(hw, HwOptions):
        return hw.to_list()
    return _hw_values(hw, "hw")
