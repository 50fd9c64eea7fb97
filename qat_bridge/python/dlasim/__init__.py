"""dlasim: bit-exact quantization-aware training for the dlasim accelerator.

The ops (torch.ops.dla.*) come from the C++ library libdla_qat.so, loaded on import (see
_library.load_library for where it is looked for). Their forward computes the
accelerator's integers with the same code as the simulator (dla/numerics.hpp); their
backward is the straight-through estimator with the clamp mask.

    import dlasim
    hw = dlasim.HwOptions.preset("default")
    conv = dlasim.nn.QConv2d(3, 16, 3, padding=1, in_dtype="u8", in_frac=8, out_dtype="u8",
                             out_frac=4, relu=True, hw=hw)

The workflow on an ordinary model (dlasim.prepare, dlasim.export, dlasim.diagnostics):

    prepared = dlasim.prepare_qat(model, (x,), hw="default", plan="int4")
    ... train prepared (dlasim.set_epoch(prepared, epoch) at each epoch) ...
    dlasim.export(prepared.eval(), (x,), "net.dla.pt")
    assert torch.equal(dlasim.to_integers(prepared(x), frac), dlasim.integer_forward("net.dla.pt", x))
    print(dlasim.report(prepared, (x,)))
"""

from ._library import load_library

load_library()

from . import functional, nn  # noqa: E402  (after the library is loaded)
from .hw import DTYPES, OVERFLOW_POLICIES, RANGES, ROUND_MODES, HwOptions  # noqa: E402
from . import datasets, observers  # noqa: E402
from .plan import LayerPrecision, PlanError, PrecisionPlan  # noqa: E402
from .prepare import PrepareError, QatConfig, prepare_qat  # noqa: E402
from .runtime import QatModel, calibrate, disable_observers, freeze_bn, set_epoch, unwrap  # noqa: E402
from .export import (ExportError, Exported, check_export, export, export_graph, export_module,  # noqa: E402
                     integer_forward, load_export, output_fracs, write_graph_file)
from .integers import to_integers, to_reals  # noqa: E402
from .diagnostics import Report, report  # noqa: E402
from .device import Device  # noqa: E402
from .signoff import SignoffReport, signoff  # noqa: E402

__all__ = ["load_library", "functional", "nn", "HwOptions", "DTYPES", "RANGES", "ROUND_MODES",
           "OVERFLOW_POLICIES", "datasets", "observers", "PrecisionPlan", "LayerPrecision", "PlanError", "prepare_qat",
           "QatConfig", "QatModel", "PrepareError", "set_epoch", "disable_observers", "freeze_bn", "calibrate",
           "unwrap", "export", "export_graph", "export_module", "integer_forward", "load_export", "Exported", "check_export", "to_integers",
           "to_reals", "write_graph_file", "output_fracs", "ExportError", "report", "Report", "Device", "signoff", "SignoffReport"]
