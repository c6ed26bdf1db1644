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

from ..kernels import KERNELS
from ..plan import Plan


@dataclass
class ReferenceResult:
    outputs: dict[str, np.ndarray]  # graph outputs, IR shape, int8
    intermediates: dict[str, np.ndarray]  # every activation right after it was written
    arena: np.ndarray


def _view(plan: Plan, arena: np.ndarray, tensor: str, size: int | None = None) -> np.ndarray:
    """The tensor's elements in the arena (`size` of them, default all), typed
    as the tensor is (int8, or int16 in 16x8 models)."""
    t = plan.graph.tensors[tensor]
    off = plan.offset(tensor)
    n = t.size if size is None else size
    item = np.dtype(t.dtype).itemsize
    view = arena[off:off + n * item]
    return view if item == 1 else view.view(t.dtype)


ROW_KEYS = ("patch_rows", "out_stride", "in_offsets")


def _run_rows(plan: Plan, arena: np.ndarray, step, params: dict) -> None:
    """A pointwise layer of a patch stage, row by row (see schedule.patch)."""
    fn = KERNELS[step.kernel]
    base = {k: v for k, v in params.items() if k not in ROW_KEYS}
    if step.kernel in ("concat_s8", "concat_s16"):
        reads = [base["outer"] * int(c) for c in base["inner"]]
        writes = sum(reads)
    else:
        reads = [base["size"]] * len(step.inputs)
        writes = base["size"]
    out_off = plan.offset(step.outputs[0])
    item = lambda t: np.dtype(plan.graph.tensors[t].dtype).itemsize  # noqa: E731  (offsets count elements)
    typed = lambda t, start, n: arena[start:start + n * item(t)].view(plan.graph.tensors[t].dtype)  # noqa: E731
    for r in range(params["patch_rows"]):
        inputs = []
        for t, n, (off, stride) in zip(step.inputs, reads, params["in_offsets"]):
            start = plan.offset(t) + (off + r * stride) * item(t)
            inputs.append(typed(t, start, n).copy())
        result = fn(base, inputs) if step.kernel in ("concat_s8", "concat_s16") else fn(base, *inputs)
        out = step.outputs[0]
        view = typed(out, out_off + r * params["out_stride"] * item(out), writes)
        view[:] = np.asarray(result).astype(view.dtype).reshape(-1)


def _copy_tile(plan: Plan, arena: np.ndarray, step, params: dict, sizes: dict[str, int]) -> np.ndarray:
    """The tile copy on the bytes of its tensors (an int16 pixel is 2 * channels bytes)."""
    def raw(t: str) -> np.ndarray:
        n = sizes.get(t, plan.graph.tensors[t].size) * np.dtype(plan.graph.tensors[t].dtype).itemsize
        return arena[plan.offset(t):plan.offset(t) + n]

    out = raw(step.outputs[0])
    out[:] = KERNELS["copy_tile_s8"](params, raw(step.inputs[0]).copy(), out.copy())
    return _view(plan, arena, step.outputs[0])


def run_step(plan: Plan, arena: np.ndarray, step, params: dict, sizes: dict[str, int]) -> np.ndarray | None:
    if "patch_rows" in params:
        return _run_rows(plan, arena, step, params)
    fn = KERNELS[step.kernel]
    if step.kernel == "copy_tile_s8":  # moves bytes, whatever the element type
        return _copy_tile(plan, arena, step, params, sizes)
    inputs = [_view(plan, arena, t, sizes.get(t)).copy() for t in step.inputs]
    out = _view(plan, arena, step.outputs[0], sizes.get(step.outputs[0]))
    if step.kernel in ("concat_s8", "concat_s16"):
        result = fn(params, inputs)
    elif step.kernel == "copy_tile_s8":
        result = fn(params, inputs[0], out.copy())
    else:
        result = fn(params, *inputs)
    result = np.asarray(result).astype(out.dtype, copy=False).reshape(-1)
    if result.size != out.size:
        raise AssertionError(f"step {step.index} ({step.name}): kernel wrote {result.size} values, "
                             f"buffer has {out.size}")
    if step.scratch:
        # the C kernel uses this scratch region; mirror that it is clobbered
        s_off = plan.memory.scratch_offsets[step.index]
        arena[s_off:s_off + step.scratch] = np.int8(0x5A)
    out[:] = result
    return out


def run(plan: Plan, x: np.ndarray, poison: int | None = None, keep_intermediates: bool = False) -> ReferenceResult:
    """Execute the plan on one int8 input in the IR layout (shape of the input tensor).

    poison: fill the arena with seeded random bytes first (None: zeros), so
    that any read of a byte the plan did not write shows up as a mismatch.
    """
    g = plan.graph
    size = sum(g.tensors[i].size for i in g.inputs)  # several inputs: their bytes one after the other
    x = np.asarray(x)
    in_t = g.tensors[plan.input]
    if x.dtype != np.dtype(in_t.dtype) or x.size != size:
        raise ValueError(f"input must be {in_t.dtype} with {size} elements, got {x.dtype} {x.shape}")
    if poison is None:
        arena = np.zeros(plan.arena_size, dtype=np.int8)
    else:
        arena = np.random.default_rng(poison).integers(-128, 128, plan.arena_size, dtype=np.int16).astype(np.int8)
    inter: dict[str, np.ndarray] | None = {} if keep_intermediates else None
    execute(plan, arena, x, inter=inter)
    outputs = {o: _view(plan, arena, o).reshape(g.tensors[o].shape).copy() for o in g.outputs}
    return ReferenceResult(outputs, inter if inter is not None else {}, arena)


def execute(plan: Plan, arena: np.ndarray, x: np.ndarray, overrides: dict[int, dict] | None = None,
            inter: dict[str, np.ndarray] | None = None) -> None:
    """The plan's forward steps on `arena` (the input written first, or read
    tile by tile when streamed): the patch stage tile by tile, then the rest.
    `overrides` maps a step index to the parameters it runs with instead of its
    own (a training build's trained layers, which never lie in a patch stage);
    `inter` (optional) receives every activation right after it was written."""
    g = plan.graph
    in_t = g.tensors[plan.input]
    overrides = overrides or {}
    stream = plan.input_stream
    flat, start = np.asarray(x, dtype=in_t.dtype).reshape(-1), 0
    for name in g.inputs if len(g.inputs) > 1 else []:  # several inputs: one after the other in x
        t = g.tensors[name]
        _view(plan, arena, name)[:] = flat[start:start + t.size]
        if inter is not None:
            inter[name] = flat[start:start + t.size].reshape(t.shape).copy()
        start += t.size
    if not stream and len(g.inputs) == 1:
        _view(plan, arena, plan.input)[:] = flat
    if inter is not None and len(g.inputs) == 1:
        inter[plan.input] = np.asarray(x).reshape(in_t.shape).copy()
    todo = list(plan.steps)
    if plan.patch is not None:
        stage = plan.patch
        per_patch, todo = todo[:stage.split + 1], todo[stage.split + 1:]
        for tile in stage.tiles:
            if stream:  # what the read callback does in C: the tile's input region, rows of r["w"] pixels
                r = tile.read
                region = np.asarray(x).reshape(in_t.shape[1:])[r["y"]:r["y"] + r["h"], r["x"]:r["x"] + r["w"]]
                buf = stage.buffers[plan.input]
                _view(plan, arena, buf, region.size)[:] = region.reshape(-1)
            for step, geometry in zip(per_patch, tile.geometry + [tile.copy]):
                run_step(plan, arena, step, {**step.params, **geometry}, tile.sizes)
        if inter is not None:
            inter[stage.tensor] = _view(plan, arena, stage.tensor).reshape(g.tensors[stage.tensor].shape).copy()
    for step in todo:
        out = run_step(plan, arena, step, overrides.get(step.index, step.params), {})
        if inter is not None:
            inter[step.outputs[0]] = out.reshape(g.tensors[step.outputs[0]].shape).copy()
