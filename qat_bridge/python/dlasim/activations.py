"""Nonlinear activations on the DLA's lookup-table unit (VLUT): the prepared layer and
the float forms of the functions the tables hold.

The layer's integer forward is dla::lut (dlasim.functional.lut): the table the compiler
emits for the same layer, computed by the same C++ function, so training sees the chip's
outputs bit for bit; its backward is the function's derivative.
"""

import math

import torch
import torch.nn.functional as TF

from . import functional as F
from .layers import QatLayer

_GELU_C = math.sqrt(2.0 / math.pi)

# function name -> float form (x, alpha) -> y: what float mode and the observers see.
FLOAT_FORMS = {
    "silu": lambda x, a: TF.silu(x),
    "sigmoid": lambda x, a: torch.sigmoid(x),
    "tanh": lambda x, a: torch.tanh(x),
    "hardswish": lambda x, a: TF.hardswish(x),
    "hardsigmoid": lambda x, a: TF.hardsigmoid(x),
    "gelu_tanh": lambda x, a: 0.5 * x * (1 + torch.tanh(_GELU_C * (x + 0.044715 * x * x * x))),
    "leaky_relu": lambda x, a: TF.leaky_relu(x, a),
    "elu": lambda x, a: TF.elu(x, a),
}


class LutLayer(QatLayer):
    """y = g(x) through the hardware table; the output has a format of its own."""

    def __init__(self, name, source, hw, in_id, out_id, function, alpha):
        super().__init__(name, source, hw)
        self.in_id, self.out_id, self.function, self.alpha = in_id, out_id, function, float(alpha)
        self.clip = None

    def forward(self, x, ctx):
        fin = ctx.acts[self.in_id]
        return self._requantize(ctx, ctx.acts[self.out_id], lambda: FLOAT_FORMS[self.function](x, self.alpha),
                                lambda y_dtype, y_frac, clip: F.lut(
                                    x, self.function, x_dtype=fin.dtype, x_frac=fin.frac(), y_dtype=y_dtype,
                                    y_frac=y_frac, alpha=self.alpha, hw=self.hw))


__all__ = ["LutLayer", "FLOAT_FORMS"]
