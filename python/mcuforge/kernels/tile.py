"""NumPy twin of mcf_tile_s8 (mcf_tile.c): the 4-D input repeated multiples[d] times along each axis."""
from __future__ import annotations

import numpy as np

from ._common import as_int8


def tile_s8(params: dict, x) -> np.ndarray:
    shape = tuple(int(v) for v in params["in_shape"])
    multiples = tuple(int(v) for v in params["multiples"])
    if len(shape) != 4 or len(multiples) != 4 or min(shape + multiples) <= 0:
        raise ValueError("bad tile parameters")
    return np.tile(as_int8(x, int(np.prod(shape))).reshape(shape), multiples).reshape(-1)
