"""Device: the simulated chip from Python, through the op library (no subprocess).

    dev = dlasim.Device("net.dlab", engine="emu", export="net.dla.pt")
    logits = dev.run(images)               # a batch [N, ...]: the program runs image by image
    reals = dlasim.to_reals(logits, dev.frac("fc"))

`engine` is "emu" (the functional emulator), "cycle" (the SystemC cycle model; same
integers, plus cycles) or, in builds with the RTL, "rtl" (the cycle model with every
compute instruction on the Verilated RTL). A segmented program (a model with float parts, from
`dla compile`) runs its device segments on the engine and its float parts on the host, in
the op library; its float inputs are given as floats, its float outputs come back as
float32 tensors, and floats for an integer input are quantized by the host plan exactly as
the model does. Inputs are given positionally in the program's input order or by
name. Integer tensors are taken as the integers; float tensors are quantized to the
input's type and frac with the hardware's rounding, and, when the export the program was
compiled from is given, with the input's clip too, exactly as the prepared model and
`integer_forward` quantize them. Outputs are int64 tensors of integers (real = q * 2^-frac):
one tensor, or a tuple in the program's output order.
"""

import zipfile
from pathlib import Path

import torch

from . import functional as F
from ._library import load_library
from .integers import to_integers


class Device:
    def __init__(self, program, engine="emu", export=None):
        load_library()
        self.program = str(program)
        self.segmented = is_segmented_program(self.program)
        cls = torch.classes.dla.SegmentedDevice if self.segmented else torch.classes.dla.Device
        self._dev = cls(self.program, str(engine))
        self.inputs = list(self._dev.input_names())
        self.outputs = list(self._dev.output_names())
        self._hw = None if self.segmented else list(self._dev.hw_list())
        self._clips = {}
        if export is not None:
            from .export import Exported, load_export
            ex = export if isinstance(export, Exported) else load_export(export)
            for name in self.inputs:
                node = ex.node(name)
                if node.get("clip") is not None:
                    self._clips[name] = tuple(node["clip"])

    @property
    def engine(self):
        return self._dev.engine()

    def info(self, name):
        """(dtype, frac, per-image shape [1, ...]) of a tensor of the program."""
        dtype, frac, shape = self._dev.tensor_info(name)
        return dtype, int(frac), list(shape)

    def frac(self, name):
        return self.info(name)[1]

    def _integers(self, name, x):
        x = torch.as_tensor(x)
        if not x.is_floating_point() or self.segmented:  # the host plan quantizes floats itself
            return x
        dtype, frac, _ = self.info(name)
        return to_integers(F.quantize(x, dtype, frac, self._clips.get(name), self._hw).y, frac)

    def run(self, *args, **kwargs):
        if args and kwargs:
            raise TypeError("Device.run: give the inputs positionally or by name, not both")
        if args:
            if len(args) != len(self.inputs):
                raise TypeError("Device.run: the program takes %d input(s) (%s), got %d"
                                % (len(self.inputs), ", ".join(self.inputs), len(args)))
            kwargs = dict(zip(self.inputs, args))
        inputs = {name: self._integers(name, x) for name, x in kwargs.items()}
        out = self._dev.run(inputs)
        ys = tuple(out[name] for name in self.outputs)
        return ys[0] if len(ys) == 1 else ys

    __call__ = run

    def last_cycles(self):
        """Simulated cycles of the last image (the cycle engine; 0 on emu)."""
        if self.segmented:
            raise NotImplementedError("Device.last_cycles: a segmented program has several device segments; "
                                      "dla run --engine cycle reports each")
        return int(self._dev.last_stats()[0])

    def __repr__(self):
        return "dlasim.Device(%r, engine=%r)" % (Path(self.program).name, self.engine)


def is_segmented_program(path):
    """Whether `path` is a segmented program (a zip with the host plan) rather than a .dlab."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n == "plan.json" or n.endswith("/plan.json") for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


__all__ = ["Device", "is_segmented_program"]
