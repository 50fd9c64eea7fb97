"""Types, rounding modes and the hardware options the dla ops take.

The codes, ranges, the order of the `hw` list and the MAC modes are the op library's
(torch.ops.dla.hw_tables, from dla/numerics.hpp, dla/mac_modes.hpp and
dla/qat/hw_options.hpp), not restated here.
"""

import json
from dataclasses import dataclass, replace

import torch

from ._library import load_library

load_library()
#: The library's tables (see dla::qat::hw_tables_json).
TABLES = json.loads(torch.ops.dla.hw_tables())

#: Activation and weight types, as the ops' integer codes (dla::DType).
DTYPES = dict(TABLES["dtypes"])
#: Ranges of the types, inclusive.
RANGES = {name: tuple(r) for name, r in TABLES["ranges"].items()}
ROUND_MODES = dict(TABLES["round_modes"])
OVERFLOW_POLICIES = dict(TABLES["overflow_policies"])
FRAC_MIN, FRAC_MAX = TABLES["frac_range"]
#: The HwConfig fields of the `hw` list of every op, in order.
HW_LIST = list(TABLES["hw_list"])
#: The enum-valued entries of the `hw` list: name -> {value name: code}.
_HW_ENUMS = {"overflow_policy": OVERFLOW_POLICIES, "rounding_mode": ROUND_MODES}


def requant_shifts(x_frac, w_fracs, y_frac):
    """The requantize shift of each output channel of a MAC layer (dla::requant_shift)."""
    return list(torch.ops.dla.requant_shifts(int(x_frac), [int(f) for f in w_fracs], int(y_frac)))


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
        fields = {}
        for name, value in zip(HW_LIST, values):
            if name in _HW_ENUMS:
                codes = {v: k for k, v in _HW_ENUMS[name].items()}
                if value not in codes:
                    raise ValueError("%s: %s %d is not one of %s" % (where, name, value, _HW_ENUMS[name]))
                fields[name] = codes[value]
            elif isinstance(HwOptions.__dataclass_fields__[name].default, bool):
                fields[name] = bool(value)
            else:
                fields[name] = int(value)
        return HwOptions(**fields)

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
        return [_HW_ENUMS[name][getattr(self, name)] if name in _HW_ENUMS else int(getattr(self, name))
                for name in HW_LIST]


_HW_FIELDS = "[%s]" % ", ".join(HW_LIST)


def _hw_values(hw, where):
    """The integers of an `hw` list, or a clear error saying what `hw` can be."""
    ok = isinstance(hw, (list, tuple)) and len(hw) == len(HW_LIST) and all(
        isinstance(v, (int, bool)) or (isinstance(v, torch.Tensor) and v.numel() == 1) for v in hw)
    if not ok:
        raise TypeError("%s must be an HwOptions, a preset name (\"default\"), hardware-config JSON text, or the "
                        "%d-integer list %s; got %r" % (where, len(HW_LIST), _HW_FIELDS, hw))
    return [int(v) for v in hw]


def as_hw_list(hw):
    """The `hw` list of an HwOptions, a list, or None (the default preset)."""
    if hw is None:
        return HwOptions().to_list()
    if isinstance(hw, HwOptions):
        return hw.to_list()
    return _hw_values(hw, "hw")
