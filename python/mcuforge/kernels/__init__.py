"""NumPy twins of the C runtime kernels (runtime/src/mcf_*.c).

Each twin takes ``(params, *inputs)``: ``params`` has exactly the C struct's
field names (arrays as NumPy arrays, ``bias`` may be None; concat's
``requant`` is a list of dicts), inputs are int8 arrays, flat or shaped. It
returns the flat int8 output, equal byte for byte to the C kernel, and
raises ValueError where the C kernel returns MCF_ERR_ARG.

``KERNELS`` maps the C function name without ``mcf_`` to the twin,
``SCRATCH_SIZE`` the kernels that need scratch to a function of params
returning the bytes the C kernel uses, and ``RUNTIME_SOURCES`` each kernel to
the .c files (in runtime/src) it needs.
"""
from __future__ import annotations

from pathlib import Path

from .add import add_s8
from .binary import binary_const_s8, binary_s8
from .conv2d import conv2d_s8
from .data import (concat_s8, copy_tile_s8, pad_s8, requantize_s8, resize_nearest_s8, strided_slice_s8,
                   transpose_s8)
from .depthwise_conv2d import (depthwise_conv2d_s8, depthwise_conv2d_s8_inplace,
                               depthwise_conv2d_s8_inplace_scratch_size)
from .elementwise import lut_s8, maximum_s8, minimum_s8, mul_s8, sub_s8
from .fully_connected import fully_connected_s8
from .mean import mean_s8
from .pool import avg_pool_s8, max_pool_s8
from .reduce import reduce_s8
from .s16 import KERNELS_S16, RUNTIME_SOURCES_S16
from .tile import tile_s8
from .softmax import softmax_s8
from .transpose_conv import transpose_conv_s8

KERNELS = {
    "conv2d_s8": conv2d_s8,
    "depthwise_conv2d_s8": depthwise_conv2d_s8,
    "depthwise_conv2d_s8_inplace": depthwise_conv2d_s8_inplace,
    "fully_connected_s8": fully_connected_s8,
    "add_s8": add_s8,
    "avg_pool_s8": avg_pool_s8,
    "max_pool_s8": max_pool_s8,
    "mean_s8": mean_s8,
    "softmax_s8": softmax_s8,
    "requantize_s8": requantize_s8,
    "concat_s8": concat_s8,
    "pad_s8": pad_s8,
    "transpose_s8": transpose_s8,
    "copy_tile_s8": copy_tile_s8,
    "lut_s8": lut_s8,
    "mul_s8": mul_s8,
    "sub_s8": sub_s8,
    "maximum_s8": maximum_s8,
    "minimum_s8": minimum_s8,
    "strided_slice_s8": strided_slice_s8,
    "resize_nearest_s8": resize_nearest_s8,
    "transpose_conv_s8": transpose_conv_s8,
    "binary_s8": binary_s8,
    "binary_const_s8": binary_const_s8,
    "reduce_s8": reduce_s8,
    "tile_s8": tile_s8,
}

SCRATCH_SIZE = {
    "depthwise_conv2d_s8_inplace": depthwise_conv2d_s8_inplace_scratch_size,
}

_FIXEDPOINT = "mcf_fixedpoint.c"
_BROADCAST = "mcf_broadcast.c"
RUNTIME_SOURCES = {
    "conv2d_s8": ["mcf_conv2d.c", _FIXEDPOINT],
    "depthwise_conv2d_s8": ["mcf_depthwise_conv2d.c", _FIXEDPOINT],
    "depthwise_conv2d_s8_inplace": ["mcf_depthwise_conv2d.c", _FIXEDPOINT],
    "fully_connected_s8": ["mcf_fully_connected.c", _FIXEDPOINT],
    "add_s8": ["mcf_add.c", _FIXEDPOINT],
    "avg_pool_s8": ["mcf_pool.c", _FIXEDPOINT],
    "max_pool_s8": ["mcf_pool.c", _FIXEDPOINT],
    "mean_s8": ["mcf_mean.c", _FIXEDPOINT],
    "softmax_s8": ["mcf_softmax.c", _FIXEDPOINT],
    "requantize_s8": ["mcf_data.c", _FIXEDPOINT],
    "concat_s8": ["mcf_data.c", _FIXEDPOINT],
    "pad_s8": ["mcf_data.c", _FIXEDPOINT],
    "transpose_s8": ["mcf_data.c", _FIXEDPOINT],
    "copy_tile_s8": ["mcf_data.c", _FIXEDPOINT],
    "lut_s8": ["mcf_lut.c"],
    "mul_s8": ["mcf_mul.c", _BROADCAST, _FIXEDPOINT],
    "sub_s8": ["mcf_sub.c", _BROADCAST, _FIXEDPOINT],
    "maximum_s8": ["mcf_maximum_minimum.c", _BROADCAST, _FIXEDPOINT],
    "minimum_s8": ["mcf_maximum_minimum.c", _BROADCAST, _FIXEDPOINT],
    "strided_slice_s8": ["mcf_strided_slice.c"],
    "resize_nearest_s8": ["mcf_resize_nearest.c"],
    "transpose_conv_s8": ["mcf_transpose_conv.c", _FIXEDPOINT],
    "binary_s8": ["mcf_binary.c", _BROADCAST, _FIXEDPOINT],
    "binary_const_s8": ["mcf_binary.c", _BROADCAST, _FIXEDPOINT],
    "reduce_s8": ["mcf_reduce.c", _FIXEDPOINT],
    "tile_s8": ["mcf_tile.c"],
}
# on-device training kernels (their NumPy twins are in mcuforge.training.kernels)
TRAINING_RUNTIME_SOURCES = {k: ["mcf_train.c"] for k in (
    "train_loss", "train_conv_input_grad", "train_conv_update", "train_conv_apply", "train_mask",
    "train_pool_backward", "train_grad_sum")}
TRAINING_RUNTIME_SOURCES["train_loss"] = ["mcf_train.c", "mcf_state.c"]  # every training step has a loss

RUNTIME_DIR = Path(__file__).resolve().parent.parent / "runtime"
RUNTIME_INCLUDE_DIR = RUNTIME_DIR / "include"
RUNTIME_SRC_DIR = RUNTIME_DIR / "src"

__all__ = ["KERNELS", "SCRATCH_SIZE", "RUNTIME_SOURCES", "TRAINING_RUNTIME_SOURCES", "RUNTIME_DIR",
           "RUNTIME_INCLUDE_DIR", "RUNTIME_SRC_DIR"] + sorted(KERNELS)

# int16 activations (16x8 models): twins in kernels/s16.py, C in runtime/src/mcf_s16_*.c
KERNELS.update(KERNELS_S16)
RUNTIME_SOURCES.update(RUNTIME_SOURCES_S16)
