"""Write the hello_inference model: a small CNN for 8x8 one-channel images
(conv 3x3 -> depthwise 3x3 -> pointwise -> global average pool -> fully
connected -> 10 scores) as ONNX, and its calibration inputs as .npy.

Weights and calibration inputs come from integer formulas (exact in float32),
so every machine writes the same bytes and the generated C, the NumPy
reference and the checksum in sample.yaml agree everywhere. Run at build time
by CMakeLists.txt:  python make_model.py OUT_DIR
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def pattern(shape, salt: int, scale: int = 16) -> np.ndarray:
    n = int(np.prod(shape))
    return (((np.arange(n) * 37 + salt * 11) % 17 - 8) / scale).astype(np.float32).reshape(shape)


def make_model() -> onnx.ModelProto:
    inits = [
        numpy_helper.from_array(pattern((8, 1, 3, 3), 1, 8), "conv1_w"),
        numpy_helper.from_array(pattern((8,), 2, 32), "conv1_b"),
        numpy_helper.from_array(pattern((8, 1, 3, 3), 3, 8), "dw_w"),
        numpy_helper.from_array(pattern((8,), 4, 32), "dw_b"),
        numpy_helper.from_array(pattern((16, 8, 1, 1), 5, 8), "pw_w"),
        numpy_helper.from_array(pattern((16,), 6, 32), "pw_b"),
        numpy_helper.from_array(pattern((10, 16), 7, 8), "fc_w"),
        numpy_helper.from_array(pattern((10,), 8, 32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv1_w", "conv1_b"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "dw_w", "dw_b"], ["c2"], name="dw", pads=[1, 1, 1, 1], group=8,
                         strides=[2, 2]),
        helper.make_node("Clip", ["c2", "lo", "hi"], ["r2"], name="relu6"),
        helper.make_node("Conv", ["r2", "pw_w", "pw_b"], ["c3"], name="pw"),
        helper.make_node("Relu", ["c3"], ["r3"], name="relu3"),
        helper.make_node("GlobalAveragePool", ["r3"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["scores"], name="fc", transB=1),
    ]
    inits += [numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
              numpy_helper.from_array(np.array(6.0, np.float32), "hi")]
    graph = helper.make_graph(nodes, "hello", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="hello_inference")


def calibration() -> np.ndarray:
    idx = np.arange(16 * 64).reshape(16, 1, 8, 8)
    return (((idx * 13 + (idx // 64) * 7) % 23) / 22).astype(np.float32)


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(make_model(), out / "hello.onnx")
    np.save(out / "hello_calibration.npy", calibration())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
