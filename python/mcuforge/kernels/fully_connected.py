"""NumPy twin of mcf_fully_connected_s8 (TFLM reference_integer_ops::FullyConnected)."""
from __future__ import annotations

import numpy as np

from ._common import as_int8, positive, requantize_acc


def fully_connected_s8(params: dict, x) -> np.ndarray:
    p = params
    positive(p, "rows", "in_features", "out_features")
    rows, k, n = int(p["rows"]), int(p["in_features"]), int(p["out_features"])
    xo = as_int8(x, rows * k).reshape(rows, k).astype(np.float64) + int(p["input_offset"])
    w = np.asarray(p["filter"], dtype=np.int8).reshape(n, k).astype(np.float64)
    acc = (xo @ w.T).astype(np.int64)  # exact: integer partial sums < 2^53
    return requantize_acc(acc, p, n).reshape(-1)
