"""Write the test network (ONNX) and its calibration inputs: a 24x24x3 input,
a full-resolution 3x3 conv to 16 channels (the memory peak), two stride-2
depthwise-separable blocks, global average pooling and a fully connected
layer. The peak sits in the first stage, where patch-based inference lowers
it, so the schedule scenarios of testcase.yaml really differ. Weights from
integer formulas (exact in float32): the same bytes on every machine.

    python make_model.py OUT_DIR
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def pattern(shape, salt: int, scale: int) -> np.ndarray:
    n = int(np.prod(shape))
    return (((np.arange(n) * 37 + salt * 11) % 17 - 8) / scale).astype(np.float32).reshape(shape)


def make_model() -> onnx.ModelProto:
    inits, nodes = [], []

    def conv(name, x, cout, cin_per_group, k, stride, group=1, act="Relu"):
        inits.append(numpy_helper.from_array(pattern((cout, cin_per_group, k, k), len(inits) + 1, 8), f"{name}_w"))
        inits.append(numpy_helper.from_array(pattern((cout,), len(inits) + 1, 32), f"{name}_b"))
        p = k // 2
        nodes.append(helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [f"{name}_c"], name=name,
                                      pads=[p, p, p, p], strides=[stride, stride], group=group))
        nodes.append(helper.make_node(act, [f"{name}_c"], [f"{name}_a"], name=f"{name}_{act.lower()}"))
        return f"{name}_a"

    x = conv("stem", "x", 16, 3, 3, 1)
    x = conv("dw1", x, 16, 1, 3, 2, group=16)
    x = conv("pw1", x, 32, 16, 1, 1)
    x = conv("dw2", x, 32, 1, 3, 2, group=32)
    x = conv("pw2", x, 32, 32, 1, 1)
    inits += [numpy_helper.from_array(pattern((10, 32), 90, 8), "fc_w"),
              numpy_helper.from_array(pattern((10,), 91, 32), "fc_b")]
    nodes += [helper.make_node("GlobalAveragePool", [x], ["g"], name="pool"),
              helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
              helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "testnet", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 24, 24])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="mcuforge-ztest")


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(make_model(), out / "testnet.onnx")
    idx = np.arange(16 * 3 * 24 * 24).reshape(16, 3, 24, 24)
    np.save(out / "testnet_calibration.npy", (((idx * 13 + (idx // 1728) * 7) % 31) / 15 - 1).astype(np.float32))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
