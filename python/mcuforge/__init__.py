"""mcuforge: neural networks to dependency-free int8 C for microcontrollers.

The Python API (see docs/python-api.md)::

    import mcuforge
    m = mcuforge.compile("model.tflite", out="build/kws", sram_budget="64K", kernels="arm-dsp")
    m.arena_size, m.flash_bytes, m.report()
    y = m.run(x)

Errors are exceptions whose classes map to the command line's exit codes:
``mcuforge.BadInput`` (2) and ``mcuforge.OverBudget`` (3).
"""
from .errors import BadInput, BudgetError, McuforgeError, OverBudget
from .version import __version__

__all__ = ["compile", "CompiledModel", "load", "BadInput", "OverBudget", "McuforgeError", "BudgetError",
           "__version__"]


def __getattr__(name: str):
    # the API module imports the whole compiler: only when it is asked for
    if name in ("compile", "CompiledModel", "load", "TrainingStep"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'mcuforge' has no attribute {name!r}")
