"""Patch-based inference (MCUNetV2): run the first layers tile by tile.

The network is split after its first `split` steps (the stage). The stage's
output tensor T is cut into a grid x grid array of tiles; for each tile every
stage layer computes just the region its consumers need (the tile grown by
the receptive field: overlapping recomputation), in small per-patch buffers,
and a copy step writes the tile into the full T. The rest of the network
runs layer by layer. Kernels see the same parameters as for the whole layer
except the geometry (in/out sizes and the padding, which becomes negative
where a patch starts inside the input), so padding at tile borders is
exactly what the full layer sees and the output is byte-identical.

Regions are computed backwards from each tile of T. Window ops (convolution,
pooling) need the input rows/columns their output region reads; elementwise
ops and channel concatenation need the same pixels as they write. A tensor
read by several consumers (a residual) holds the union, and an elementwise
op reading such a larger patch runs row by row. The model input is read in
place (never copied), through negative padding.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..ir import Graph, Node, Tensor
from ..ops import Step

WINDOW_OPS = {"conv2d", "depthwise_conv2d", "avg_pool", "max_pool"}
# Elementwise ops (table lookups, binary ops without broadcasting) and
# channel concatenation: a tile needs the same pixels of their inputs.
POINTWISE_OPS = {"add", "clamp", "concat", "hard_swish", "hard_sigmoid", "logistic", "tanh", "leaky_relu", "mul",
                 "sub", "maximum", "minimum"}
PATCH_SUFFIX = "@patch"
DEFAULT_MAX_MAC_OVERHEAD = 0.3
MAX_GRID = 8


@dataclass(frozen=True)
class Region:
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def h(self) -> int:
        return self.y1 - self.y0

    @property
    def w(self) -> int:
        return self.x1 - self.x0

    def union(self, other: "Region | None") -> "Region":
        if other is None:
            return self
        return Region(min(self.y0, other.y0), max(self.y1, other.y1), min(self.x0, other.x0), max(self.x1, other.x1))


@dataclass
class Tile:
    region: Region  # of the stage output T
    geometry: list[dict]  # per stage step: parameter overrides for this tile
    sizes: dict[str, int]  # patch buffer name -> bytes used by this tile
    copy: dict  # overrides of the copy step's parameters
    read: dict | None = None  # input streaming: the input region this tile reads (y, x, h, w)


@dataclass
class PatchStage:
    split: int  # number of layers run per patch
    grid: int
    tensor: str  # stage output, assembled in full
    tiles: list[Tile]
    buffers: dict[str, str]  # stage tensor -> its patch buffer tensor name
    macs: int  # MACs of the whole model with overlapping recomputation
    layer_macs: int  # MACs of the layer-by-layer schedule
    layer_arena: int  # the layer-by-layer peak, for the report
    layer_live_bytes: list[int] = field(default_factory=list)
    candidates: list[dict] = field(default_factory=list)  # every (split, grid) evaluated
    input_stream: bool = False  # the model input arrives patch by patch (never whole in the arena)

    @property
    def mac_overhead(self) -> float:
        return self.macs / self.layer_macs - 1.0 if self.layer_macs else 0.0


def _window(step: Step) -> tuple[int, int, int, int, int, int, int, int]:
    p = step.params
    return (p["k_h"], p["k_w"], p["stride_h"], p["stride_w"], p.get("dilation_h", 1), p.get("dilation_w", 1),
            p["pad_top"], p["pad_left"])


def _needed(step: Step, out: Region, in_h: int, in_w: int) -> Region:
    kh, kw, sh, sw, dh, dw, pt, pl = _window(step)
    y0 = max(0, out.y0 * sh - pt)
    y1 = min(in_h, (out.y1 - 1) * sh - pt + (kh - 1) * dh + 1)
    x0 = max(0, out.x0 * sw - pl)
    x1 = min(in_w, (out.x1 - 1) * sw - pl + (kw - 1) * dw + 1)
    return Region(y0, max(y0, y1), x0, max(x0, x1))


def _hw(graph: Graph, name: str) -> tuple[int, int, int]:
    s = graph.tensors[name].shape
    return s[1], s[2], s[3]


def _crossing(graph: Graph, stage: list[Step]) -> tuple[set[str], set[str], bool]:
    """(tensors the stage produces, those read after it, whether the model
    input is read after it)."""
    stage_nodes = {id(s.node) for s in stage}
    produced = {o for s in stage for o in s.outputs}
    crossing: set[str] = set()
    input_read_after = False
    for n in graph.nodes:
        if id(n) in stage_nodes:
            continue
        crossing.update(i for i in n.inputs if i in produced)
        input_read_after |= graph.inputs[0] in n.inputs
    return produced, crossing, input_read_after


def valid_split(graph: Graph, steps: list[Step], split: int) -> str | None:
    """None when steps[:split] can run per patch; otherwise why not."""
    if split < 1 or split >= len(steps):
        return "the split must leave at least one layer on each side"
    stage = steps[:split]
    model_input = graph.inputs[0]
    for s in stage:
        if s.node.op not in WINDOW_OPS | POINTWISE_OPS:
            return f"layer '{s.name}' ({s.node.op}) cannot run on patches"
        if s.node.op == "concat" and s.node.attrs.get("axis", 3) % 4 != 3:
            return f"layer '{s.name}' concatenates along a spatial axis"
        if s.params.get("broadcast"):
            return f"layer '{s.name}' ({s.node.op}) broadcasts an input"
        if any(len(graph.tensors[t].shape) != 4 for t in s.inputs + s.outputs):
            return f"layer '{s.name}' is not on a 4-D feature map"
        if model_input in s.inputs and s.node.op not in WINDOW_OPS:
            return f"layer '{s.name}' reads the model input elementwise"
    produced, crossing, input_read_after = _crossing(graph, stage)
    if input_read_after:
        return "the model input is read after the split"
    if set(graph.outputs) & produced:
        return "a model output is produced before the split"
    if len(crossing) != 1:
        return f"{len(crossing)} tensors cross the split (need exactly one)"
    return None


def _regions(graph: Graph, stage: list[Step], tensor: str, tile: Region,
             stream: bool = False) -> dict[str, Region] | None:
    """Region of every stage tensor one tile needs: one backward pass, each
    tensor the union of what its consumers read (consumers come later in the
    order, so they are visited first)."""
    model_input = graph.inputs[0]
    regions: dict[str, Region] = {tensor: tile}
    for s in reversed(stage):
        r = regions.get(s.outputs[0])
        if r is None:
            return None  # a stage layer whose result T does not need: not a clean stage
        for x in s.inputs:
            if x == model_input and not stream:
                continue
            if s.node.op in WINDOW_OPS:
                h, w, _ = _hw(graph, x)
                need = _needed(s, r, h, w)
            else:
                need = r  # elementwise / channel concat: the same pixels
            regions[x] = need.union(regions.get(x))
    return regions


def _tiles_of(h: int, w: int, grid: int) -> list[Region]:
    ys = [i * h // grid for i in range(grid + 1)]
    xs = [i * w // grid for i in range(grid + 1)]
    return [Region(ys[i], ys[i + 1], xs[j], xs[j + 1]) for i in range(grid) for j in range(grid)]


def _geometry(graph: Graph, s: Step, regions: dict[str, Region], stream: bool = False) -> dict:
    """Parameter overrides of one stage layer for one tile.

    Window ops get their local sizes and padding. Elementwise ops and concat
    run row by row when an input's patch is larger than the output's (a
    tensor also read by a convolution carries a halo): `patch_rows` calls of
    `count` pixels (concat: `outer`) or values (others), input k read from
    ``in_offsets[k][0] + row * in_offsets[k][1]``; one call when the rows are
    contiguous everywhere.
    """
    model_input = graph.inputs[0]
    o = regions[s.outputs[0]]
    if s.node.op in WINDOW_OPS:
        x = s.inputs[0]
        h, w, _ = _hw(graph, x)
        i = Region(0, h, 0, w) if x == model_input and not stream else regions[x]
        _, _, sh, sw, _, _, pt, pl = _window(s)
        return dict(in_h=i.h, in_w=i.w, out_h=o.h, out_w=o.w,
                    pad_top=pt + i.y0 - o.y0 * sh, pad_left=pl + i.x0 - o.x0 * sw)
    out_c = _hw(graph, s.outputs[0])[2]
    per_pixel = 1 if s.node.op == "concat" else out_c
    ins = []
    contiguous = True
    for x in s.inputs:
        i = regions[x]
        c = _hw(graph, x)[2]
        ins.append((((o.y0 - i.y0) * i.w + (o.x0 - i.x0)) * c, i.w * c))
        contiguous &= i.w == o.w
    key = "outer" if s.node.op == "concat" else "size"
    if contiguous:
        return {key: o.h * o.w * per_pixel, "patch_rows": 1, "out_stride": 0, "in_offsets": [(off, 0) for off, _ in ins]}
    return {key: o.w * per_pixel, "patch_rows": o.h, "out_stride": o.w * out_c, "in_offsets": ins}


def _step_macs(s: Step, geom: dict, graph: Graph) -> int:
    oh, ow, oc = _hw(graph, s.outputs[0])
    if s.node.op in WINDOW_OPS:
        return s.macs * geom["out_h"] * geom["out_w"] // (oh * ow)
    pixels = geom["patch_rows"] * (geom["outer"] if "outer" in geom else geom["size"] // oc)
    return s.macs * pixels // (oh * ow)


def patch_steps(graph: Graph, steps: list[Step], split: int, grid: int, stream: bool = False):
    """The per-patch schedule of steps[:split] on a grid; None if impossible.

    stream: the model input is read region by region into a patch buffer
    (through the generated code's read callback) instead of whole.

    Returns (stage pseudo steps + copy step, patch tensors, Tile list, stage MACs).
    """
    stage = steps[:split]
    produced, crossing, _ = _crossing(graph, stage)
    (tensor,) = crossing  # valid_split() made sure exactly one tensor crosses
    th, tw, tc = _hw(graph, tensor)
    if grid > min(th, tw):
        return None
    tiles = []
    patch_tensors: dict[str, Tensor] = {}
    model_input = graph.inputs[0]
    patched = produced | ({model_input} if stream else set())
    names = {t: t + PATCH_SUFFIX for t in patched}
    stage_macs = 0
    for tile in _tiles_of(th, tw, grid):
        regions = _regions(graph, stage, tensor, tile, stream)
        if regions is None:
            return None
        geometry = [_geometry(graph, s, regions, stream) for s in stage]
        stage_macs += sum(_step_macs(s, g, graph) for s, g in zip(stage, geometry))
        sizes = {}
        for t in patched:
            r = regions[t]
            c = _hw(graph, t)[2]
            sizes[names[t]] = r.h * r.w * c
        t_region = regions[tensor]
        copy = dict(tile_h=tile.h, tile_w=tile.w, src_w=t_region.w, src_y=tile.y0 - t_region.y0,
                    src_x=tile.x0 - t_region.x0, dst_y=tile.y0, dst_x=tile.x0)
        read = None
        if stream:
            r = regions[model_input]
            read = dict(y=r.y0, x=r.x0, h=r.h, w=r.w)
        tiles.append(Tile(tile, geometry, sizes, copy, read))
    for t in patched:
        c = _hw(graph, t)[2]
        biggest = max(tl.sizes[names[t]] for tl in tiles)
        patch_tensors[names[t]] = Tensor(names[t], (1, 1, biggest // c, c), graph.tensors[t].dtype,
                                         quant=graph.tensors[t].quant)
    rename = lambda x: names.get(x, x)  # noqa: E731
    pseudo = [dataclasses.replace(s, inputs=[rename(i) for i in s.inputs], outputs=[rename(o) for o in s.outputs],
                                  inplace="", inplace_input=-1, scratch=0) for s in stage]
    copy_node = Node(f"{tensor} (tile copy)", "copy_tile", [names[tensor]], [tensor])
    # the tile copy moves bytes: an int16 tensor's pixel is 2 * channels of them
    item = np.dtype(graph.tensors[tensor].dtype).itemsize
    copy_params = dict(channels=tc * item, tile_h=0, tile_w=0, src_w=0, src_y=0, src_x=0, dst_w=tw, dst_y=0, dst_x=0)
    copy_step = Step(copy_node, "copy_tile_s8", copy_params, [names[tensor]], [tensor])
    return pseudo, copy_step, patch_tensors, tiles, stage_macs, tensor, names


def candidates(graph: Graph, steps: list[Step], grid: int = 0):
    """Every (split, grid) pair that can run per patch."""
    grids = [grid] if grid else list(range(2, MAX_GRID + 1))
    for split in range(1, len(steps)):
        if valid_split(graph, steps, split) is not None:
            continue
        for g in grids:
            yield split, g
