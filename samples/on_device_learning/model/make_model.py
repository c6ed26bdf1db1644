"""Write the on_device_learning model and data: a small classifier of 16
sensor features into 4 classes (fully connected 16 -> 16, ReLU, fully
connected 16 -> 4) as ONNX, "pretrained" on the factory's data, and the data
the device sees after its sensor drifted (every feature offset).

The pretrained weights are a nearest-class-mean classifier written in closed
form, so no training framework is needed at build time: the hidden layer is a
fixed mixing of the features, the output layer scores each class by
<h, m_k> - |m_k|^2 / 2 with m_k the hidden image of the class mean. The drift
moves every sample by the same offset, which the biases can take back: what
bias-only training on the device has to learn.

Writes odl.onnx, odl_calibration.npy (drifted samples: what the device sees)
and odl_data.npz (x_train, y_train, x_test, y_test, float32 features, NCHW
(N, 16) rows, integer labels).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FEATURES, HIDDEN, CLASSES = 16, 16, 4
TRAIN, TEST = 48, 40


def data(rng: np.random.Generator, n: int, means: np.ndarray, drift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.arange(n) % CLASSES
    rng.shuffle(y)
    x = means[y] + 0.6 * rng.standard_normal((n, FEATURES)) + drift
    return x.astype(np.float32), y.astype(np.int64)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2024)
    means = rng.uniform(-1.5, 1.5, (CLASSES, FEATURES))
    mix = np.eye(HIDDEN, FEATURES) + 0.2 * rng.uniform(-1, 1, (HIDDEN, FEATURES))
    b1 = np.full(HIDDEN, 3.0)  # keeps the hidden units above zero for the factory data
    hidden_means = means @ mix.T + b1
    w2 = hidden_means
    b2 = -0.5 * (hidden_means ** 2).sum(axis=1)
    drift = rng.uniform(-3.0, 3.0, FEATURES)

    init = [numpy_helper.from_array(mix.astype(np.float32), "w1"), numpy_helper.from_array(b1.astype(np.float32), "b1"),
            numpy_helper.from_array(w2.astype(np.float32), "w2"), numpy_helper.from_array(b2.astype(np.float32), "b2")]
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="relu1"),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2", transB=1)]
    graph = helper.make_graph(nodes, "odl", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, FEATURES])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, CLASSES])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, out / "odl.onnx")

    x_train, y_train = data(rng, TRAIN, means, drift)
    x_test, y_test = data(rng, TEST, means, drift)
    np.save(out / "odl_calibration.npy", x_train)
    np.savez(out / "odl_data.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
