"""NumPy executor of a Plan.

It runs the Plan's steps in order on a NumPy arena of exactly
``plan.arena_size`` bytes, reading every input from and writing every output
to the offsets the planner chose, so aliasing and in-place reuse are the
ones the generated C performs. Kernels are the NumPy twins of the C runtime
(mcuforge.kernels), equal to it bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kernels import KERNELS
from .plan import Plan


@dataclass
class ReferenceResult:
    outputs: dict[str, np.ndarray]  # graph outputs, IR shape, int8
    intermediates: dict[str, np.ndarray]  # every activation right after it was written
    arena: np.ndarray


def _view(plan: Plan, arena: np.ndarray, tensor: str) -> np.ndarray:
    t = plan.graph.tensors[tensor]
    off = plan.offset(tensor)
    return arena[off:off + t.size]


def run(plan: Plan, x: np.ndarray, poison: int | None = None, keep_intermediates: bool = False,
        steps=None) -> ReferenceResult:
    """Execute the plan on one int8 input in the IR layout (shape of the input tensor).

    poison: fill the arena with seeded random bytes first (None: zeros), so
    that any read of a byte the plan did not write shows up as a mismatch.
    """
    g = plan.graph
    in_t = g.tensors[plan.input]
    x = np.asarray(x)
    if x.dtype != np.int8 or x.size != in_t.size:
        raise ValueError(f"input must be int8 with {in_t.size} elements, got {x.dtype} {x.shape}")
    if poison is None:
        arena = np.zeros(plan.arena_size, dtype=np.int8)
    else:
        arena = np.random.default_rng(poison).integers(-128, 128, plan.arena_size, dtype=np.int16).astype(np.int8)
    _view(plan, arena, plan.input)[:] = x.reshape(-1)
    inter: dict[str, np.ndarray] = {}
    if keep_intermediates:
        inter[plan.input] = x.reshape(in_t.shape).copy()
    for step in (steps if steps is not None else plan.steps):
        fn = KERNELS[step.kernel]
        inputs = [_view(plan, arena, t).copy() for t in step.inputs]
        if step.kernel == "concat_s8":
            result = fn(step.params, inputs)
        else:
            result = fn(step.params, *inputs)
        out_name = step.outputs[0]
        out = _view(plan, arena, out_name)
        result = np.asarray(result, dtype=np.int8).reshape(-1)
        if result.size != out.size:
            raise AssertionError(f"step {step.index} ({step.name}): kernel wrote {result.size} values, "
                                 f"tensor has {out.size}")
        if step.scratch:
            # the C kernel uses this scratch region; mirror that it is clobbered
            s_off = plan.memory.scratch_offsets[step.index]
            arena[s_off:s_off + step.scratch] = np.int8(0x5A)
        out[:] = result
        if keep_intermediates:
            inter[out_name] = out.reshape(g.tensors[out_name].shape).copy()
    outputs = {o: _view(plan, arena, o).reshape(g.tensors[o].shape).copy() for o in g.outputs}
    return ReferenceResult(outputs, inter, arena)
