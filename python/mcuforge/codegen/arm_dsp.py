"""The arm-dsp backend: the portable emitter, with each layer that has a
specialized kernel (runtime/include/mcuforge/kernels_arm_dsp.h) calling it
instead, its constant operands prepared here at generation time.

What the generator knows and the kernels exploit:

* convolutions (a matrix multiply over blocks of 6 output pixels
  sign-extended once into the arena: 1x1, and k x k through an im2col of 6
  columns of at most KXK_BLOCK_BYTES, else of 2 columns: conv_columns) and
  fully connected layers: the filter packed in 32-bit words of 4 products,
  output channels interleaved in pairs, K padded to a multiple of 4; the
  input offset folded into the bias;
* depthwise convolutions with depth multiplier 1 over a multiple of 4
  channels (normal and in place): the filter per channel as int16 pairs of
  horizontal taps, which SMLAD takes against two neighbours of the kernel's
  int16 channel rows; 3x3 windows with stride 1 or 2 two output pixels per
  step in assembly;
* elementwise adds: each input's scaled term tabulated by int8 value (2 KB
  of flash per layer, add_tables), so an element costs two table loads, an
  add and the output requantization;
* every layer: multipliers and shifts per output channel; a layer in the
  6-pixel blocks on the fast requantization also gets per-channel records (multiplier, right
  shift, output offset folded into the rounding) that its assembly loads
  with one LDM.

Everything else (and a depthwise layer outside those shapes) calls the
portable kernel; ``fallback_layers(plan)`` names those layers and the report
shows them. The scratch each kernel needs (``scratch_size``) is planned in the
arena like every other buffer.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..ops import Step
from ..plan import Plan
from ..registry import portable_scratch_size
from . import portable


@dataclass(frozen=True)
class Variant:
    function: str  # C function
    source: str  # runtime/src file defining it
    what: str  # one line for the report
    scratch: int = 0  # arena bytes passed as the last argument (in place: the ring)
    key: str = "default"  # the variant's name among a layer's candidates (variants.py)
    wide: bool = False  # the filter widened to int16 pairs offline (pack_wide), else int8 words (pack_matmul)
    needs: tuple = ()  # runtime/src files the source needs beside it


# binary ops with broadcasting on mcf_dsp_elementwise.c's runs (multipliers >= 0)
BINARY = {"mul_s8": "multiply", "sub_s8": "subtract, both inputs' terms from tables",
          "maximum_s8": "maximum, both inputs in the output's quantization from tables",
          "minimum_s8": "minimum, both inputs in the output's quantization from tables"}
# arm-dsp kernels that read the portable struct (TRANSPOSE_CONV's requantization fields prepared: prepared_params)
PORTABLE_STRUCT = ("avg_pool_s8", "lut_s8", "transpose_conv_s8", *BINARY)
POOL_MAX_TAPS = 255  # MCF_DSP_POOL_MAX_TAPS in mcf_dsp_pool.c: int16 sums of the window
POINTWISE_BLOCK = 6  # output pixels per block of the 1x1 kernel (MCF_BLOCK in mcf_dsp_matmul.c)


KXK_BLOCK_BYTES = 2048  # MCF_KXK_BLOCK_BYTES in mcf_dsp_matmul.c
PATCH_MAX = 64  # MCF_PATCH_MAX in mcf_dsp_matmul.c: the products of a window gathered on the stack


def _k_padded(k: int) -> int:
    return (k + 3) // 4 * 4


def _pointwise(p: dict) -> bool:
    """A convolution the 1x1 kernels take (mcf_dsp_conv2d_1x1_s8 and its
    variants; C: inside_1x1): every output pixel reads an input pixel, no
    padding on any side."""
    return (p["k_h"] == p["k_w"] == 1 and p["pad_top"] == p["pad_left"] == 0
            and (p["out_h"] - 1) * p["stride_h"] < p["in_h"] and (p["out_w"] - 1) * p["stride_w"] < p["in_w"])


def conv_columns(p: dict) -> int:
    """Int16 columns in a convolution's scratch (C: the kernels' scratch
    sizes): the 6-pixel blocks when the layer has 6 output pixels and is 1x1,
    or k x k with 6 columns within KXK_BLOCK_BYTES; else 2."""
    kp = _k_padded(p["k_h"] * p["k_w"] * p["in_c"])
    six = p["out_h"] * p["out_w"] >= POINTWISE_BLOCK and (_pointwise(p) or 12 * kp <= KXK_BLOCK_BYTES)
    return POINTWISE_BLOCK if six else 2


def ring_rows(p: dict, in_place: bool) -> int:
    """Input rows in the depthwise ring (C: mcf_ring_rows_of in mcf_ring.h)."""
    span = (p["k_h"] - 1) * p["dilation_h"]
    last = min((p["out_h"] - 1) * p["stride_h"] - p["pad_top"] + span, p["in_h"] - 1)
    rows = 0
    for oy in range(p["out_h"]):
        top = oy * p["stride_h"] - p["pad_top"]
        need = min(top + span, p["in_h"] - 1)
        hi = need
        if in_place:
            hi = max(need, min(((oy + 1) * p["out_w"] - 1) // p["in_w"], last))
        rows = max(rows, hi - max(top, 0) + 1)
    return max(rows, 1)


def depthwise_scratch(p: dict, in_place: bool) -> int:
    """Bytes of the arm-dsp depthwise scratch: the ring, rows x 4 channels x
    an int16 row of the padded width rounded up to even (a 3x3 window with
    stride 1 or 2 along the rows: one more row, of zeros, for the kernel rows
    in the padding)."""
    reach = (p["out_w"] - 1) * p["stride_w"] + (p["k_w"] - 1) * p["dilation_w"] + 1
    width = (max(reach, p["pad_left"] + p["in_w"]) + 1) // 2 * 2
    three = p["k_h"] == p["k_w"] == 3 and p["dilation_w"] == 1 and p["stride_w"] in (1, 2)  # + a row of zeros
    return (ring_rows(p, in_place) + int(three)) * width * 4 * 2


def plane_fits(p: dict) -> bool:
    """A depthwise layer the plane variant takes (C: plane_fits): 3x3 window,
    stride 1 or 2 and dilation 1 along the rows, no negative padding."""
    three = p["k_h"] == p["k_w"] == 3 and p["dilation_w"] == 1 and p["stride_w"] in (1, 2)
    return three and p["pad_top"] >= 0 and p["pad_left"] >= 0


def _plane_row_cost(n: int, s: int) -> int:
    """Cycles of one channel's plane row of n output pixels, stride s along it (the assembly of
    mcf_dsp_depthwise_conv2d.c under the Cortex-M4 cycle model)."""
    if s == 1:  # steps of 4 pixels, then 2, then 1
        return 30 + 105 * (n // 4) + 60 * ((n % 4) // 2) + 45 * (n % 2)
    return 30 + 60 * (n // 2) + 45 * (n % 2)


def _transposed(p: dict) -> dict:
    """The layer with rows and columns swapped (C: transposed)."""
    q = dict(p)
    for a, b in (("in_h", "in_w"), ("out_h", "out_w"), ("k_h", "k_w"), ("stride_h", "stride_w"),
                 ("dilation_h", "dilation_w"), ("pad_top", "pad_left")):
        q[a], q[b] = p[b], p[a]
    return q


def plane_oriented(p: dict) -> dict:
    """The layer as the plane variant's scratch holds it: transposed, input
    column by column, when those rows cost fewer cycles. The one place that
    decides: the C follows the plane_transposed field prepared_params sets."""
    q = _transposed(p)
    cheaper = (q["out_h"] * _plane_row_cost(q["out_w"], q["stride_w"])
               < p["out_h"] * _plane_row_cost(p["out_w"], p["stride_w"]))
    return q if plane_fits(q) and cheaper else p


def plane_transposed(p: dict) -> bool:
    """Whether the plane variant holds the layer transposed (plane_oriented)."""
    return plane_oriented(p) is not p


def plane_scratch(p: dict, in_place: bool) -> int:
    """Bytes of the plane variant's scratch (C: plane_scratch_size): every
    padded input row a window reads (in the plane's orientation), 4 channels
    x an int16 row of the ring's width; never below the ring."""
    ring = depthwise_scratch(p, in_place)
    p = plane_oriented(p)
    reach = (p["out_w"] - 1) * p["stride_w"] + (p["k_w"] - 1) * p["dilation_w"] + 1
    width = (max(reach, p["pad_left"] + p["in_w"]) + 1) // 2 * 2
    rows = (p["out_h"] - 1) * p["stride_h"] + (p["k_h"] - 1) * p["dilation_h"] + 1
    return max(rows * width * 4 * 2, ring)


def reuse_fits(p: dict) -> bool:
    """A k x k layer the reuse variant takes (C: reuse_split; and records, as
    the 2 x 4 blocks on Cortex-M need them)."""
    pixels, kp = p["out_h"] * p["out_w"], _k_padded(p["k_h"] * p["k_w"] * p["in_c"])
    size, at = 8 * kp, (pixels * p["out_c"] - 8 * kp) & ~3
    if pixels < 4 or at < 4 * p["out_c"]:
        return False
    first = at // p["out_c"] // 4 * 4
    if (first // p["out_w"] * p["stride_h"] - p["pad_top"]) * p["in_w"] * p["in_c"] < size:
        return False
    return has_records("conv2d_s8", p)


TCONV_MAX_TAPS = 16  # MCF_TCONV_MAX_TAPS in mcf_dsp_transpose_conv.c: the taps of one phase


def tconv_fits(p: dict) -> bool:
    """A transposed convolution mcf_dsp_transpose_conv_s8 takes (C: args_ok):
    at most TCONV_MAX_TAPS taps reach an output pixel, every multiplier >= 0."""
    phase = -(-p["k_h"] // p["stride_h"]) * -(-p["k_w"] // p["stride_w"])
    return phase <= TCONV_MAX_TAPS and bool(np.all(np.asarray(p["multiplier"]) >= 0))


def binary_fits(kernel: str, p: dict) -> bool:
    """A binary op mcf_dsp_elementwise.c takes (C: its argument checks): the
    multiplier it requantizes with >= 0 (MUL's, SUB's output one; MAXIMUM's
    and MINIMUM's are all in the tables)."""
    return int(p.get("output_multiplier" if kernel == "sub_s8" else "multiplier", 0)) >= 0


def kxk_tail_fits(p: dict) -> bool:
    """A k x k layer the tail variants take (C: tail_blocks): a window of at
    most PATCH_MAX products, at least one 2 x 4 block below the columns in
    the output's last bytes, and the records (the blocks' assembly)."""
    pixels, kp = p["out_h"] * p["out_w"], _k_padded(p["k_h"] * p["k_w"] * p["in_c"])
    return (not _pointwise(p) and p["k_h"] * p["k_w"] * p["in_c"] <= PATCH_MAX and pixels >= 4
            and (pixels * p["out_c"] - 8 * kp) // 4 * 4 >= 4 * p["out_c"] and has_records("conv2d_s8", p))


WIN_STRIDES = (48, 96, 192, 384, 768)  # MCF_WIN_STRIDES in mcf_dsp_matmul.c: column strides with an assembly instance


def win_fits(p: dict) -> bool:
    """A k x k layer the window variant takes (C: mcf_dsp_conv2d_s8_winw):
    dilation 1, in_c a multiple of 4, out_c even, at least 4 output pixels a
    row, its column stride (2 k_h in_c stride_w bytes) one of WIN_STRIDES,
    and the records (its blocks are the pw4w assembly)."""
    return (p["dilation_h"] == p["dilation_w"] == 1 and p["in_c"] % 4 == 0 and p["out_c"] % 2 == 0
            and p["out_w"] >= 4 and 2 * p["k_h"] * p["in_c"] * p["stride_w"] in WIN_STRIDES
            and has_records("conv2d_s8", p))


def win_scratch(p: dict) -> int:
    """Bytes of the window variant's scratch (C: mcf_dsp_conv2d_s8_winw_scratch_size): the padded row's
    pixels an output row reads, k_h x in_c int16 each."""
    return ((p["out_w"] - 1) * p["stride_w"] + p["k_w"]) * p["k_h"] * p["in_c"] * 2


def win_split(p: dict) -> int | None:
    """The first output row whose window lives in the input's dead first
    bytes, the rows before it with theirs in the output's last bytes (C:
    win_split, for mcf_dsp_conv2d_s8_winreusew); None where that does not fit."""
    size, row = win_scratch(p), p["out_w"] * p["out_c"]
    at = (p["out_h"] * row - size) & ~3
    for oy in range(p["out_h"]):
        if (oy * p["stride_h"] - p["pad_top"]) * p["in_w"] * p["in_c"] >= size:
            return oy if oy * row <= at else None
    return None


def candidates(step: Step) -> list[Variant]:
    """Every arm-dsp variant of a layer, select()'s first (the portable
    kernel is always a candidate too: variants.py)."""
    v = select(step)
    if v is None:
        return []
    out = [v]
    p = step.params
    if step.kernel == "conv2d_s8" and _pointwise(p) and v.scratch:
        four = 4 if p["out_h"] * p["out_w"] >= 4 else 2
        out.append(Variant("mcf_dsp_conv2d_1x1_s8_pw4", v.source, "1x1 conv as matmul, 2 channels x 4 pixels",
                           four * 2 * _k_padded(p["in_c"]), key="pw4"))
        if four == 4 and has_records("conv2d_s8", p):
            out.append(Variant("mcf_dsp_conv2d_1x1_s8_pw4w", v.source, "1x1 conv as matmul, 2 channels x 4 pixels, "
                               "the filter widened to int16 offline", 4 * 2 * _k_padded(p["in_c"]), key="pw4w",
                               wide=True))
        if conv_columns(p) == POINTWISE_BLOCK:
            out.append(Variant("mcf_dsp_conv2d_s8_tail", v.source,
                               "1x1 conv, 2 x 4 blocks with their columns in the output's tail, no scratch", 0,
                               key="tail"))
            if has_records("conv2d_s8", p):
                out.append(Variant("mcf_dsp_conv2d_s8_tailw", v.source,
                                   "1x1 conv, tail's blocks on the filter widened to int16 offline, no scratch", 0,
                                   key="tailw", wide=True))
        out.append(Variant("mcf_dsp_conv2d_1x1_s8_rows", v.source, "1x1 conv as fully connected rows, no scratch",
                           0, key="rows"))
    if step.kernel == "conv2d_s8" and not _pointwise(p) and p["out_h"] * p["out_w"] >= 4 \
            and has_records("conv2d_s8", p):
        out.append(Variant("mcf_dsp_conv2d_s8_pw4", v.source,
                           f"{p['k_h']}x{p['k_w']} conv, im2col of 4 pixels + matmul, 2 channels x 4 pixels",
                           4 * 2 * _k_padded(p["k_h"] * p["k_w"] * p["in_c"]), key="pw4"))
        out.append(Variant("mcf_dsp_conv2d_s8_pw4w", v.source,
                           f"{p['k_h']}x{p['k_w']} conv, im2col of 4 pixels + matmul, 2 channels x 4 pixels, the "
                           "filter widened to int16 offline", 4 * 2 * _k_padded(p["k_h"] * p["k_w"] * p["in_c"]),
                           key="pw4w", wide=True))
    if step.kernel == "conv2d_s8" and kxk_tail_fits(p):
        kxk = f"{p['k_h']}x{p['k_w']} conv"
        out.append(Variant("mcf_dsp_conv2d_s8_tail", v.source, f"{kxk}, 2 x 4 blocks with their columns in the "
                           "output's tail, the last pixels' windows gathered on the stack, no scratch", 0, key="tail"))
        out.append(Variant("mcf_dsp_conv2d_s8_tailw", v.source, f"{kxk}, tail's blocks on the filter widened to "
                           "int16 offline, no scratch", 0, key="tailw", wide=True))
    if step.kernel == "conv2d_s8" and not _pointwise(p) and win_fits(p):
        out.append(Variant("mcf_dsp_conv2d_s8_winw", v.source,
                           f"{p['k_h']}x{p['k_w']} conv without im2col: 2 x 4 blocks on each output row's window of "
                           "input rows widened once, the filter widened to int16 offline", win_scratch(p),
                           key="winw", wide=True))
        if win_split(p) is not None:
            out.append(Variant("mcf_dsp_conv2d_s8_winreusew", v.source,
                               f"{p['k_h']}x{p['k_w']} conv as winw, its window in the output's last bytes, then in "
                               "the dead input (no scratch; only where the input dies with the layer)", 0,
                               key="winreusew", wide=True))
    if step.kernel == "fully_connected_s8" and p["rows"] == 1:
        out.append(Variant("mcf_dsp_fully_connected_s8_w6", v.source,
                           "fully connected, 6 output rows at once, the filter widened to int16 offline", 0,
                           key="w6", wide=True))
    if step.kernel == "conv2d_s8" and reuse_fits(p):  # k x k, and 1x1 (its columns read straight)
        out.append(Variant("mcf_dsp_conv2d_s8_reuse", v.source,
                           f"{p['k_h']}x{p['k_w']} conv, 2 x 4 blocks, columns in the output's tail, then in the dead "
                           "input (no scratch; only where the input dies with the layer)", 0, key="reuse"))
        out.append(Variant("mcf_dsp_conv2d_s8_reusew", v.source,
                           f"{p['k_h']}x{p['k_w']} conv, 2 x 4 blocks as reuse, the filter widened to int16 offline "
                           "(no scratch; only where the input dies with the layer)", 0, key="reusew", wide=True))
    if step.kernel.startswith("depthwise_conv2d_s8") and plane_fits(p):
        in_place = step.kernel.endswith("_inplace")
        out.append(Variant(v.function + "_plane", v.source, v.what.replace("4 channels", "4 channels' whole plane,"),
                           plane_scratch(p, in_place), key="plane"))
    return out


def select(step: Step) -> Variant | None:
    """The specialized kernel of a layer, or None (the portable kernel runs)."""
    p = step.params
    if step.kernel in S16_VARIANTS:
        return select_s16(step)
    if step.kernel == "conv2d_s8":
        k = p["k_h"] * p["k_w"] * p["in_c"]
        columns = conv_columns(p)
        if _pointwise(p):
            return Variant("mcf_dsp_conv2d_1x1_s8", "mcf_dsp_matmul.c", "1x1 conv as matmul, 1 channel x 6 pixels",
                           columns * 2 * _k_padded(k))
        return Variant("mcf_dsp_conv2d_s8", "mcf_dsp_matmul.c",
                       f"{p['k_h']}x{p['k_w']} conv, im2col of {columns} pixels + matmul",
                       columns * 2 * _k_padded(k))
    if step.kernel == "fully_connected_s8":
        if p["rows"] == 1:  # no scratch: the input row is read in place, once per 4 output rows
            return Variant("mcf_dsp_fully_connected_s8", "mcf_dsp_matmul.c", "fully connected, 4 output rows at once")
        return Variant("mcf_dsp_fully_connected_s8", "mcf_dsp_matmul.c", "fully connected, 2 x 2 blocks",
                       2 * 2 * _k_padded(p["in_features"]))
    if step.kernel == "add_s8":
        return Variant("mcf_dsp_add_s8", "mcf_dsp_add.c", "add, both inputs' terms from 2 KB tables")
    if step.kernel == "transpose_conv_s8" and tconv_fits(p):
        return Variant("mcf_dsp_transpose_conv_s8", "mcf_dsp_transpose_conv.c",
                       "transposed conv, per output pixel its taps once, 2 channels x 4 inputs per SIMD step")
    if step.kernel == "softmax_s8":
        return Variant("mcf_dsp_softmax_s8", "mcf_dsp_softmax.c", "softmax, the exps from a 1 KB table",
                       needs=("mcf_fixedpoint.c",))
    if step.kernel == "lut_s8":
        return Variant("mcf_dsp_lut_s8", "mcf_dsp_elementwise.c", "table lookup, 4 values a word")
    if step.kernel in BINARY and binary_fits(step.kernel, p):
        return Variant(f"mcf_dsp_{step.kernel}", "mcf_dsp_elementwise.c",
                       f"{BINARY[step.kernel]}, the broadcast's innermost axis one loop, the constants in registers")
    if step.kernel == "avg_pool_s8":
        if p["channels"] % 4 or p["k_h"] * p["k_w"] > POOL_MAX_TAPS:
            return None
        return Variant("mcf_dsp_avg_pool_s8", "mcf_dsp_pool.c", "average pool, 4 channels per SIMD step")
    if step.kernel in ("depthwise_conv2d_s8", "depthwise_conv2d_s8_inplace"):
        if p["depth_multiplier"] != 1 or p["in_c"] % 4:
            return None
        taps = "3x3 unrolled" if p["k_h"] == p["k_w"] == 3 else f"{p['k_h']}x{p['k_w']}"
        if step.kernel == "depthwise_conv2d_s8":
            return Variant("mcf_dsp_depthwise_conv2d_s8", "mcf_dsp_depthwise_conv2d.c",
                           f"depthwise {taps}, 4 channels per SIMD step", depthwise_scratch(p, False))
        return Variant("mcf_dsp_depthwise_conv2d_s8_inplace", "mcf_dsp_depthwise_conv2d.c",
                       f"depthwise {taps} in place, 4 channels per ring row", depthwise_scratch(p, True))
    return None


# ---- 16x8 layers (mcf_dsp_s16.c) ---------------------------------------------------

S16_VARIANTS = ("conv2d_s16", "fully_connected_s16")
S16_RUN_LIMIT = 512  # products summed in int32 by SMLAD: each below 2^22 in magnitude


def select_s16(step: Step) -> Variant | None:
    """16x8 conv (an even in_c, a kernel row of fewer than 512 products) and
    fully connected (an even in_features): SMLAD on int16 pairs, the filter
    widened to int16 in flash."""
    p = step.params
    if step.kernel == "conv2d_s16" and p["in_c"] % 2 == 0 and p["k_w"] * p["in_c"] < S16_RUN_LIMIT:
        return Variant("mcf_dsp_conv2d_s16", "mcf_dsp_s16.c",
                       f"16x8 {p['k_h']}x{p['k_w']} conv, SMLAD on int16 pairs (filter widened in flash)")
    if step.kernel == "fully_connected_s16" and p["in_features"] % 2 == 0:
        return Variant("mcf_dsp_fully_connected_s16", "mcf_dsp_s16.c",
                       "16x8 fully connected, SMLAD on int16 pairs (filter widened in flash)")
    return None


def prepared_params_s16(params: dict) -> dict:
    """The filter as int16 pairs in 32-bit words (little-endian: weight 2j low,
    2j + 1 high), the layout a 32-bit load of the int16 input matches."""
    p = dict(params)
    w16 = np.ascontiguousarray(np.asarray(p["filter"], dtype=np.int8).reshape(-1).astype(np.int16))
    p["filter"] = w16.view("<i4").astype(np.int32)
    return p


def trained_steps(plan: Plan) -> set[int]:
    """Forward layers of a training build whose filter or bias the training step
    updates in RAM, in the portable layout (no offline reordering, no folded
    bias): they run the portable kernel."""
    if plan.training is None:
        return set()
    from ..training import trained_steps as trained

    return trained(plan.training)


def chosen(choice: dict | None, step: Step) -> Variant | None:
    """The variant `choice` (layer name -> variant key or "portable", the
    planner's: variants.py) names for a step; select(step) when it names none."""
    key = (choice or {}).get(step.name)
    if key is None:
        return select(step)
    if key == "portable":
        return None
    return next((v for v in candidates(step) if v.key == key), select(step))


def variant(plan: Plan, step: Step) -> Variant | None:
    """The planner's choice for the step (select(step) without one), except
    for layers the training step updates (portable)."""
    if step.index in trained_steps(plan):
        return None
    return chosen(plan.extra.get("variants") if plan.schedule == "layer" else None, step)


def scratch_size(step: Step, choice: dict | None = None) -> int:
    v = chosen(choice, step)
    return v.scratch if v is not None else portable_scratch_size(step)


def kernel_of(plan: Plan, step: Step) -> tuple[str, bool]:
    v = variant(plan, step)
    return (v.function, False) if v is not None else (f"mcf_{step.kernel}", True)


def fallback_layers(plan: Plan) -> list[str]:
    """Names of the layers that call a portable kernel (no arm-dsp variant)."""
    return [s.name for s in plan.steps if variant(plan, s) is None and s.kernel != "copy_tile_s8"]


# ---- operands prepared for the kernels ------------------------------------------

def _per_channel(values: np.ndarray, count: int) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(np.asarray(values, dtype=np.int32).reshape(-1), (count,))
                                if np.asarray(values).size == 1 else np.asarray(values, dtype=np.int32))


def _wrap32(values: np.ndarray) -> np.ndarray:
    return ((np.asarray(values, dtype=np.int64) + 2**31) % 2**32 - 2**31).astype(np.int32)


def pack_matmul(filter_rows: np.ndarray) -> np.ndarray:
    """(out_c, K) int8 -> the kernel's int32 words: 4 products per word in
    order (SXTB16 gives the pairs k, k+2 and k+1, k+3, the order the kernel's
    int16 columns hold the inputs in), K zero-padded to a multiple of 4,
    output channels in pairs with their words interleaved, a last odd channel
    on its own."""
    w = np.asarray(filter_rows, dtype=np.int8)
    out_c, k = w.shape
    padded = np.zeros((out_c, _k_padded(k)), dtype=np.int8)
    padded[:, :k] = w
    words = padded.view("<i4").reshape(out_c, -1)
    parts = []
    for oc in range(0, out_c - 1, 2):
        parts.append(np.stack([words[oc], words[oc + 1]], axis=1).reshape(-1))
    if out_c % 2:
        parts.append(words[-1])
    return np.concatenate(parts).astype(np.int32)


def _int16_pairs(filter_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(out_c, K) int8 -> per channel and group of 4 products (w0..w3, K
    zero-padded to a multiple of 4) the words of int16 pairs (w0, w2) and
    (w1, w3), low half first: the pairs SXTB16 makes of the int8 word."""
    w = np.asarray(filter_rows, dtype=np.int8)
    padded = np.zeros((w.shape[0], _k_padded(w.shape[1])), dtype=np.int64)
    padded[:, :w.shape[1]] = w
    g = padded.reshape(w.shape[0], -1, 4)
    return (g[..., 0] & 0xFFFF) | ((g[..., 2] & 0xFFFF) << 16), (g[..., 1] & 0xFFFF) | ((g[..., 3] & 0xFFFF) << 16)


def pack_wide(filter_rows: np.ndarray) -> np.ndarray:
    """(out_c, K) int8 -> the pw4w kernels' int32 words (kernels_arm_dsp.h):
    K zero-padded to a multiple of 4, each group of 4 products (w0..w3) as
    the int16 pairs (w0, w2) and (w1, w3) (low half first: the pairs SXTB16
    would make of the int8 word); per channel pair and group a's (w0, w2),
    b's (w0, w2), a's (w1, w3), b's (w1, w3); a last odd channel's two pairs
    per group. Twice the flash of pack_matmul's words."""
    even, odd = _int16_pairs(filter_rows)
    out_c = even.shape[0]
    parts = []
    for oc in range(0, out_c - 1, 2):
        parts.append(np.stack([even[oc], even[oc + 1], odd[oc], odd[oc + 1]], axis=1).reshape(-1))
    if out_c % 2:
        parts.append(np.stack([even[-1], odd[-1]], axis=1).reshape(-1))
    return _wrap32(np.concatenate(parts))


def pack_fc_wide(filter_rows: np.ndarray) -> np.ndarray:
    """(N, K) int8 -> mcf_dsp_fully_connected_s8_w6's int32 words
    (kernels_arm_dsp.h): K zero-padded to a multiple of 4, N to a multiple of
    6, output rows in blocks of 6, per block and group of 4 products the
    rows' int16 pairs (w0, w2), then their (w1, w3). Twice the flash of
    pack_matmul's words, and the padding rows'."""
    rows = np.asarray(filter_rows)
    n = rows.shape[0]
    rows = np.concatenate([rows, np.zeros((-n % 6, rows.shape[1]), dtype=rows.dtype)])
    even, odd = _int16_pairs(rows)
    parts = [np.concatenate([even[o:o + 6].T, odd[o:o + 6].T], axis=1).reshape(-1) for o in range(0, len(rows), 6)]
    return _wrap32(np.concatenate(parts))


def fold_bias(filter_rows: np.ndarray, bias: np.ndarray | None, input_offset: int) -> np.ndarray:
    """bias + input_offset * sum_k filter[oc][k], wrapping as int32 (the kernel
    then multiplies raw inputs; padding taps hold the zero point, which the
    fold cancels exactly)."""
    sums = np.asarray(filter_rows, dtype=np.int64).sum(axis=1)
    b = np.zeros(len(sums), dtype=np.int64) if bias is None else np.asarray(bias, dtype=np.int64)
    return _wrap32(b + int(input_offset) * sums)


def pack_depthwise(filt: np.ndarray, k_h: int, k_w: int, channels: int) -> np.ndarray:
    """(1, k_h, k_w, C) int8 -> int32 words: per channel, per kernel row,
    int16 pairs (tap 2i, tap 2i+1), an odd row's last pair padded with 0
    (what SMLAD takes against two horizontal neighbours of the kernel's int16
    channel rows)."""
    w = np.asarray(filt, dtype=np.int64).reshape(k_h, k_w, channels)
    pairs = (k_w + 1) // 2
    padded = np.zeros((channels, k_h, 2 * pairs), dtype=np.int64)
    padded[:, :, :k_w] = w.transpose(2, 0, 1)
    return _wrap32((padded[..., 0::2] & 0xFFFF) | ((padded[..., 1::2] & 0xFFFF) << 16)).reshape(-1)


FAST_REQUANT = 2  # MCF_DSP_FAST_REQUANT (kernels_arm_dsp.h)


def requant_mode(bound: np.ndarray, shift: np.ndarray) -> int:
    """MCF_DSP_FAST_REQUANT when every accumulator magnitude bound is below 2^30
    and every shift in [-31, -1] (the kernel's 5-instruction requantization is
    then TFLM's exactly), else 1 (general)."""
    ok = bool(np.all(np.asarray(bound) < 2**30)) and bool(np.all((shift >= -31) & (shift <= -1)))
    return FAST_REQUANT if ok else 1


def constant_channels(p: dict, dead: np.ndarray) -> None:
    """Output channels whose filter is all zero give one output whatever the
    input (their accumulator is the bias): compute it here, exactly as TFLM
    does, and give the kernel a small bias with multiplier 2^30 and shift -1
    that yields the same output (4 d -> 2 d -> d on both requantization paths).
    A pruned channel's bias of +-2^30 no longer forces the layer onto the
    general requantization."""
    from ..fixedpoint import multiply_by_quantized_multiplier

    for c in np.flatnonzero(dead):
        v = int(multiply_by_quantized_multiplier(np.array([p["bias"][c]], dtype=np.int32), int(p["multiplier"][c]),
                                                 int(p["shift"][c]))[0])
        d = min(max(v + p["output_offset"], p["act_min"]), p["act_max"]) - p["output_offset"]
        p["bias"][c], p["multiplier"][c], p["shift"][c] = 4 * d, 1 << 30, -1


def prepared_params(kernel: str, params: dict, variant: Variant | None = None) -> dict:
    """A layer's parameter struct as the arm-dsp kernel (the variant, when
    given) reads it (same C struct; `filter` becomes int32 words: int8
    products, or int16 pairs for a wide variant)."""
    if kernel in S16_VARIANTS:
        return prepared_params_s16(params)
    if kernel == "transpose_conv_s8":  # the portable struct, its multipliers per channel and the mode proved
        p = dict(params)
        out_c = p["out_c"]
        p["multiplier"] = _per_channel(p["multiplier"], out_c).copy()
        p["shift"] = _per_channel(p["shift"], out_c).copy()
        rows = np.asarray(p["filter"], dtype=np.int64).reshape(out_c, -1)
        bias = np.zeros(out_c, np.int64) if p["bias"] is None else np.asarray(p["bias"], dtype=np.int64)
        p["per_channel"] = requant_mode(np.abs(bias) + 255 * np.abs(rows).sum(axis=1), p["shift"])
        return p
    if kernel in PORTABLE_STRUCT:
        return dict(params)  # the portable struct as it is
    p = dict(params)
    out_c = p["out_features"] if "out_features" in p else p["out_c"]
    p["multiplier"] = _per_channel(p["multiplier"], out_c).copy()
    p["shift"] = _per_channel(p["shift"], out_c).copy()
    if kernel in ("conv2d_s8", "fully_connected_s8"):
        rows = np.asarray(p["filter"], dtype=np.int8).reshape(out_c, -1)
        p["bias"] = fold_bias(rows, p["bias"], p["input_offset"])
        constant_channels(p, ~rows.any(axis=1))
        if variant is not None and variant.key in ("winw", "winreusew"):  # products (kx, ky, c): the window's runs
            p["filter"] = pack_wide(rows.reshape(out_c, p["k_h"], p["k_w"], p["in_c"]).transpose(0, 2, 1, 3)
                                    .reshape(out_c, -1))
        elif variant is not None and variant.wide:
            p["filter"] = pack_fc_wide(rows) if kernel == "fully_connected_s8" else pack_wide(rows)
        else:
            p["filter"] = pack_matmul(rows)
        # raw inputs in [-128, 127] against the folded bias
        bound = np.abs(p["bias"].astype(np.int64)) + 128 * np.abs(rows.astype(np.int64)).sum(axis=1)
    else:
        p["bias"] = np.zeros(out_c, dtype=np.int32) if p["bias"] is None else np.asarray(p["bias"], dtype=np.int32)
        taps = np.asarray(p["filter"], dtype=np.int64).reshape(-1, out_c)
        p["bias"] = p["bias"].copy()
        constant_channels(p, ~taps.any(axis=0))
        if variant is not None and variant.key == "plane" and plane_transposed(p):  # as the plane holds the map
            taps = taps.reshape(p["k_h"], p["k_w"], out_c).transpose(1, 0, 2).reshape(-1, out_c)
            p["filter"] = pack_depthwise(taps, p["k_w"], p["k_h"], out_c)
            p["plane_transposed"] = 1
        else:
            p["filter"] = pack_depthwise(taps, p["k_h"], p["k_w"], out_c)
        # inputs plus offset in [-255, 255], then the bias
        bound = np.abs(p["bias"].astype(np.int64)) + 255 * np.abs(taps).sum(axis=0)
    p["per_channel"] = requant_mode(bound, p["shift"])
    if kernel == "conv2d_s8":  # the records of the 6-pixel and the 2 x 4 blocks
        p["pw_requant"] = pointwise_requant(p)
    if variant is not None and variant.key == "w6":  # every row's record, in order; bias and records padded
        rows = requant_records(p, out_c)  # to whole blocks of 6 rows, as the filter (their words are read, unused)
        pad = -out_c % 6
        p["bias"] = np.concatenate([p["bias"], np.zeros(pad, dtype=np.int32)])
        p["pw_requant"] = None if rows is None else np.concatenate(
            [rows, np.repeat(rows[-1:], pad, axis=0)]).reshape(-1).astype(np.int32)
    return p


ADD_MODE_GENERAL, ADD_MODE_FAST, ADD_MODE_FAST_SAT = 0, 1, 2  # MCF_DSP_GENERAL, _FAST, _FAST_SAT (mcf_dsp.h)


def add_tables(p: dict, negate_second: bool = False) -> np.ndarray:
    """mcf_dsp_add_s8's 513 words: input1's and input2's terms for x = -128..127
    (TFLM's RoundingDivideByPOT(SRDHM((x + offset) << left_shift, m), -shift),
    computed by the portable kernel's NumPy twin), then the requantization
    mode of their sum (fast when |term1 + term2| < 2^30 and the output shift
    is in [-31, -1]; with one SSAT when the clamp is [-128, 127]).
    negate_second: input2's terms negated (mcf_dsp_sub_s8: SUB is ADD's
    arithmetic with the second term subtracted)."""
    from .. import fixedpoint as fp

    x = np.arange(-128, 128, dtype=np.int64)
    terms = []
    for k in ("input1", "input2"):
        shifted = fp.wrap_int32((x + int(p[f"{k}_offset"])) << int(p["left_shift"]))
        high = fp.saturating_rounding_doubling_high_mul(shifted, int(p[f"{k}_multiplier"]))
        terms.append(np.asarray(fp.rounding_divide_by_pot(high, -int(p[f"{k}_shift"])), dtype=np.int64))
    if negate_second:
        terms[1] = -terms[1]
    bound = int(np.abs(terms[0]).max() + np.abs(terms[1]).max())
    mode = ADD_MODE_GENERAL
    if bound < 1 << 30 and -31 <= int(p["output_shift"]) <= -1 and int(p["output_multiplier"]) >= 0:
        mode = ADD_MODE_FAST_SAT if (p["act_min"], p["act_max"]) == (-128, 127) else ADD_MODE_FAST
    return np.concatenate([terms[0], terms[1], [mode]]).astype(np.int32)


def max_min_tables(p: dict) -> np.ndarray:
    """mcf_dsp_maximum_s8's / _minimum_s8's 512 bytes: input1's value x =
    -128..127 in the output's quantization, then input2's (the portable
    kernel's NumPy twin)."""
    from ..kernels.elementwise import to_output

    x = np.arange(-128, 128, dtype=np.int64)
    return np.concatenate([to_output(p, x, 1), to_output(p, x, 2)]).astype(np.int8)


def softmax_table(p: dict) -> np.ndarray:
    """mcf_dsp_softmax_s8's 256 words: exp(-d) for the differences d = 0..255
    from a row's maximum, Q0.31, 0 below diff_min (the portable kernel's
    NumPy twin, kernels/softmax.py exps)."""
    from ..kernels.softmax import exps

    return exps(p, -np.arange(256, dtype=np.int64)).astype(np.int32)


# The kernels whose arm-dsp variant reads tables the generator makes (in flash, passed for the scratch):
# (C type, the tables of a layer's parameters)
TABLES = {"add_s8": ("int32_t", add_tables), "sub_s8": ("int32_t", lambda p: add_tables(p, negate_second=True)),
          "maximum_s8": ("int8_t", max_min_tables), "minimum_s8": ("int8_t", max_min_tables),
          "softmax_s8": ("int32_t", softmax_table)}


def table_bytes(kernel: str, p: dict) -> int:
    """Flash of a layer's tables (TABLES)."""
    return int(TABLES[kernel][1](p).nbytes)


def requant_records(p: dict, out_c: int) -> np.ndarray | None:
    """Per output channel its requantization record (kernels_arm_dsp.h):
    multiplier, e = -shift and output_offset * 2^e + 2^(e-1), as (out_c, 3),
    for a layer on the fast requantization with the full clamp range and
    every shift in [-22, -1]; None for any other layer."""
    shift = np.asarray(p["shift"], dtype=np.int64)
    if (p["per_channel"] != FAST_REQUANT or (p["act_min"], p["act_max"]) != (-128, 127)
            or not np.all((shift >= -22) & (shift <= -1))):
        return None
    e = -shift
    return np.stack([np.asarray(p["multiplier"], dtype=np.int64)[:out_c], e,
                     p["output_offset"] * (1 << e) + (1 << (e - 1))], axis=1)


def has_records(kernel: str, p: dict) -> bool:
    """Whether a convolution or fully connected layer gets requantization
    records (requant_records of its prepared parameters; a convolution's
    pointwise_requant, which also needs 2 output channels)."""
    q = prepared_params(kernel, p)
    if kernel == "conv2d_s8":
        return q.get("pw_requant") is not None
    return requant_records(q, q["out_features"]) is not None


def pointwise_requant(p: dict) -> np.ndarray | None:
    """The 1x1 kernel's records (requant_records), which its assembly loads
    with one LDM: the channel pairs' first channels, then their second ones;
    None for a layer without records or of one output channel."""
    rows = requant_records(p, p["out_c"]) if p["out_c"] >= 2 else None
    if rows is None:
        return None
    pairs = p["out_c"] & ~1
    return np.concatenate([rows[0:pairs:2], rows[1:pairs:2]]).reshape(-1).astype(np.int32)


class DspEmitter(portable._Emitter):
    headers = ("kernels.h", "kernels_s16.h", "kernels_arm_dsp.h")

    def function(self, step: Step) -> str:
        v = variant(self.plan, step)
        return v.function if v is not None else super().function(step)

    def scratch_argument(self, step: Step) -> str | None:
        v = variant(self.plan, step)
        if v is not None and step.kernel in TABLES:  # the tables, in flash
            name = f"{self.p}_l{step.index}_tables"
            if name not in self.externs_named:
                self.externs_named.add(name)
                ctype, make = TABLES[step.kernel]
                self.const_array(name, ctype, make(step.params))
            return name
        if v is None or step.kernel.endswith("_inplace"):
            return None  # the in-place call passes its scratch already
        return self.arena(self.plan.memory.scratch_offsets[step.index]) if v.scratch else "NULL"

    def __init__(self, plan: Plan):
        super().__init__(plan)
        self.externs_named: set[str] = set()

    def struct_fields(self, step: Step, ident: str) -> list[str]:
        if variant(self.plan, step) is None or step.kernel in TABLES:
            return super().struct_fields(step, ident)
        if step.kernel in PORTABLE_STRUCT:  # the portable layout, the fields as prepared_params leaves them
            return super().struct_fields(replace(step, params=prepared_params(step.kernel, step.params)), ident)
        params = prepared_params(step.kernel, step.params, variant(self.plan, step))
        words = params.pop("filter")
        fields = super().struct_fields(replace(step, params=params), ident)
        packed = f"{ident}_filter"
        if self.plan.training is not None and any(t.kernel == "train_conv_input_grad" and t.name.rsplit(":", 1)[0]
                                                  == step.name for t in self.plan.training.steps):
            # the backward pass reads this frozen layer's filter in the portable layout by that name
            self.const_array(f"{ident}_filter", "int8_t", np.asarray(step.params["filter"], dtype=np.int8))
            packed = f"{ident}_filter_dsp"
        name = self.const_array(packed, "int32_t", words)
        return [f".filter = (const int8_t *)(const void *){name}"] + fields


def runtime_sources(plan: Plan) -> list[str]:
    from ..kernels import RUNTIME_SOURCES

    files: dict[str, None] = {}
    for s in plan.steps:
        v = variant(plan, s)
        for f in ([v.source, *v.needs] if v is not None else RUNTIME_SOURCES[s.kernel]):
            files[f] = None
    if plan.training is not None:
        for f in portable.runtime_sources(plan):
            files[f] = None  # the training step's kernels (and the portable ones of trained layers)
        for s in plan.training.steps:  # its forward kernels (the loss's softmax) on their variants, as emitted
            v = variant(plan, s) if s.kernel in RUNTIME_SOURCES else None
            for f in [v.source, *v.needs] if v is not None else []:
                files[f] = None
    return sorted(files)


def generate(plan: Plan, outdir: Path) -> list[Path]:
    return portable.generate(plan, outdir, emitter=DspEmitter, sources=runtime_sources)
