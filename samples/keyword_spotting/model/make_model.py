"""Write the keyword_spotting model: a DS-CNN (MLPerf Tiny's keyword-spotting
network, Zhang et al. 2017) for 49x10 MFCC features, 12 classes, as ONNX,
and calibration inputs as .npy: conv 10x4 stride 2 to 64 channels, four
depthwise-separable blocks, global average pooling, fully connected.

The weights are not trained: they come from integer formulas (exact in
float32), so every machine writes the same bytes and the outputs the sample
prints are known in advance. The point of the sample is the build: the
memory budget, the schedule, the boards. Run at build time by CMakeLists.txt:
    python make_model.py OUT_DIR
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CHANNELS = 64
CLASSES = 12


def pattern(shape, salt: int, scale: int) -> np.ndarray:
    n = int(np.prod(shape))
    return (((np.arange(n) * 37 + salt * 11) % 17 - 8) / scale).astype(np.float32).reshape(shape)


def make_model() -> onnx.ModelProto:
    c = CHANNELS
    inits = [numpy_helper.from_array(pattern((c, 1, 10, 4), 1, 32), "conv1_w"),
             numpy_helper.from_array(pattern((c,), 2, 64), "conv1_b")]
    nodes = [helper.make_node("Conv", ["mfcc", "conv1_w", "conv1_b"], ["c0"], name="conv1", strides=[2, 2],
                              pads=[4, 1, 5, 2]),
             helper.make_node("Relu", ["c0"], ["a0"], name="conv1_relu")]
    x = "a0"
    for b in range(1, 5):
        inits += [numpy_helper.from_array(pattern((c, 1, 3, 3), 10 * b + 1, 8), f"dw{b}_w"),
                  numpy_helper.from_array(pattern((c,), 10 * b + 2, 64), f"dw{b}_b"),
                  numpy_helper.from_array(pattern((c, c, 1, 1), 10 * b + 3, 64), f"pw{b}_w"),
                  numpy_helper.from_array(pattern((c,), 10 * b + 4, 64), f"pw{b}_b")]
        nodes += [helper.make_node("Conv", [x, f"dw{b}_w", f"dw{b}_b"], [f"d{b}"], name=f"block{b}_dw", group=c,
                                   pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"d{b}"], [f"dr{b}"], name=f"block{b}_dw_relu"),
                  helper.make_node("Conv", [f"dr{b}", f"pw{b}_w", f"pw{b}_b"], [f"p{b}"], name=f"block{b}_pw"),
                  helper.make_node("Relu", [f"p{b}"], [f"a{b}"], name=f"block{b}_pw_relu")]
        x = f"a{b}"
    inits += [numpy_helper.from_array(pattern((CLASSES, c), 99, 16), "fc_w"),
              numpy_helper.from_array(pattern((CLASSES,), 98, 32), "fc_b")]
    nodes += [helper.make_node("GlobalAveragePool", [x], ["g"], name="pool"),
              helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
              helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
              helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1)]
    graph = helper.make_graph(nodes, "kws", [helper.make_tensor_value_info("mfcc", TensorProto.FLOAT, [1, 1, 49, 10])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, CLASSES])],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="keyword_spotting")


def calibration() -> np.ndarray:
    idx = np.arange(16 * 490).reshape(16, 1, 49, 10)
    return (((idx * 29 + (idx // 490) * 5) % 41) / 8 - 2.5).astype(np.float32)


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(make_model(), out / "kws.onnx")
    np.save(out / "kws_calibration.npy", calibration())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
