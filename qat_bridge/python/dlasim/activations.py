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
from .hw import dtype_code
from .integers import first_line, to_integers
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
    """y = g(x) through the hardware table; the output has a format of its own. With
    function "table", g is a user's function `fn` (dlasim.nn.TableActivation) and the
    table is fn at the table's inputs, rounded by the library (table_for)."""

    def __init__(self, name, source, hw, in_id, out_id, function, alpha, fn=None):
        super().__init__(name, source, hw)
        self.in_id, self.out_id, self.function, self.alpha = in_id, out_id, function, float(alpha)
        self.fn = fn
        self.clip = None
        self._tables = {}  # (x_dtype, x_frac, y_dtype, y_frac) -> the user table

    def _where(self):
        return "layer '%s' (module '%s')" % (self.name, self.source)

    def table_for(self, x_dtype, x_frac, y_dtype, y_frac):
        """The user function's table for these formats: fn at the reals of the table's
        input integers (dla::lut_inputs), quantized to the output format by dla::quantize
        (the hardware rounding; saturating); None for a built-in function."""
        if self.fn is None:
            return None
        key = (x_dtype, int(x_frac), y_dtype, int(y_frac))
        if key not in self._tables:
            q = torch.tensor(torch.ops.dla.lut_inputs(dtype_code(x_dtype)), dtype=torch.float64)
            x = q * 2.0 ** -int(x_frac)  # exact: |q| <= 2^15
            with torch.no_grad():
                y = self.fn(x)
            if not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.shape != x.shape:
                raise ValueError("dlasim: %s: TableActivation's function must map a float tensor of shape %s to a "
                                 "float tensor of the same shape (the table's %d inputs), got %s"
                                 % (self._where(), tuple(x.shape), x.numel(), _describe(y)))
            self._finite(y.to(torch.float64), "the table of %s" % self._where())
            r = F.quantize(y.to(torch.float64), y_dtype, int(y_frac), hw=self.hw)
            self._tables[key] = [int(v) for v in to_integers(r.y, int(y_frac)).tolist()]
        return self._tables[key]

    def _real(self, x):
        return self.fn(x) if self.fn is not None else FLOAT_FORMS[self.function](x, self.alpha)

    def _lut(self, x, fin, y_dtype, y_frac):
        try:
            table = self.table_for(fin.dtype, fin.frac(), y_dtype, y_frac)
            return F.lut(x, self.function, x_dtype=fin.dtype, x_frac=fin.frac(), y_dtype=y_dtype, y_frac=y_frac,
                         alpha=self.alpha, table=table, hw=self.hw)
        except RuntimeError as e:
            # dla::lut names itself; the user needs the layer of the prepared model.
            raise RuntimeError("dlasim: %s, %s %s[frac %d] -> %s[frac %d]: %s"
                               % (self._where(), self.function, fin.dtype, fin.frac(), y_dtype, y_frac,
                                  first_line(e))) from e

    def forward(self, x, ctx):
        fin = ctx.acts[self.in_id]
        return self._requantize(ctx, ctx.acts[self.out_id], lambda: self._real(x),
                                lambda y_dtype, y_frac, clip: self._lut(x, fin, y_dtype, y_frac))


def _describe(y):
    if isinstance(y, torch.Tensor):
        return "a %s tensor of shape %s" % (y.dtype, tuple(y.shape))
    return "a %s" % type(y).__name__


__all__ = ["LutLayer", "FLOAT_FORMS"]
