"""The arm-dsp kernel set as a backend plugin: its kernels and C emission (arm_dsp.py) and the
planner's per-layer choice among their variants (variants.py, which reads arm_dsp.py's variant
tables: hence a module of its own above both)."""
from __future__ import annotations

from ..registry import Backend
from . import arm_dsp, variants

BACKEND = Backend(name="arm_dsp", generate=arm_dsp.generate,
                  description="Cortex-M DSP-extension kernels specialized per layer, bit-exact with the portable set",
                  runtime_sources=arm_dsp.runtime_sources, scratch_size=arm_dsp.scratch_size,
                  kernel_of=arm_dsp.kernel_of, choose_variants=variants.choose)
