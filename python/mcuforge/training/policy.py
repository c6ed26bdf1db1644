"""Update policies: which biases and weights a training step updates.

Weight layers are the conv2d, depthwise and fully-connected layers in
execution order, numbered from 0 (negative numbers count from the end, -1 is
the last). A policy gives each weight layer a trained bias (yes/no) and a
trained fraction of its output channels' weights (0: frozen; sub-tensor
update trains the leading ceil(ratio * out_channels) channels).

* ``bias``: the biases of the last N weight layers (default N below).
* ``sparse``: the biases of the last N weight layers plus the weights of the
  chosen layers at the chosen ratios; without options, the weights of the
  last two weight layers, whole.
* ``full``: every bias and every weight.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..config import BuildConfig
from ..ir import McuforgeError
from ..ops import Step

DEFAULT_BIAS_LAYERS = 4
DEFAULT_WEIGHT_LAYERS = (-2, -1)
DEFAULT_LEARNING_RATE = 0.05
WEIGHT_KERNELS = ("conv2d_s8", "depthwise_conv2d_s8", "fully_connected_s8")


@dataclass
class Policy:
    mode: str
    bias: set[int] = field(default_factory=set)  # weight-layer indices with a trained bias
    weights: dict[int, float] = field(default_factory=dict)  # weight-layer index -> ratio of channels
    source: str = "options"  # options | default | contribution analysis

    def channels(self, layer: int, out_c: int) -> int:
        r = self.weights.get(layer, 0.0)
        return 0 if r <= 0 else max(1, min(out_c, math.ceil(r * out_c - 1e-9)))

    def describe(self, names: list[str]) -> str:
        parts = []
        if self.bias:
            parts.append("biases of " + ", ".join(f"{i}:{names[i]}" for i in sorted(self.bias)))
        if self.weights:
            parts.append("weights of " + ", ".join(f"{i}:{names[i]}" + (f" ({r:g} of the channels)" if r < 1 else "")
                                                  for i, r in sorted(self.weights.items())))
        return f"{self.mode}: " + ("; ".join(parts) if parts else "nothing")

    def as_dict(self) -> dict:
        return {"mode": self.mode, "bias_layers": sorted(self.bias),
                "weight_layers": {str(k): v for k, v in sorted(self.weights.items())}, "source": self.source}


def weight_layers(steps: list[Step]) -> list[Step]:
    return [s for s in steps if s.kernel.startswith(WEIGHT_KERNELS)]


def _resolve(index: int, count: int, flag: str) -> int:
    k = index + count if index < 0 else index
    if not 0 <= k < count:
        raise McuforgeError(f"{flag}: layer {index} does not exist; the model has {count} weight layers "
                            f"(0..{count - 1}, or -1 for the last)")
    return k


def policy_from_options(config: BuildConfig, steps: list[Step]) -> Policy:
    layers = weight_layers(steps)
    count = len(layers)
    if count == 0:
        raise McuforgeError("--training: the model has no conv or fully-connected layer to train")
    mode = config.training
    if mode == "full":
        return Policy("full", set(range(count)), {i: 1.0 for i in range(count)})
    n = min(DEFAULT_BIAS_LAYERS, count) if config.train_bias_layers is None else config.train_bias_layers
    if n > count:
        raise McuforgeError(f"--train-bias-layers: {n} is more than the model's {count} weight layers")
    bias = set(range(count - n, count))
    if mode == "bias":
        if config.train_weight_layers:
            raise McuforgeError("--train-weight-layers: only with --training sparse (bias trains biases only)")
        return Policy("bias", bias, {}, source="options" if config.train_bias_layers is not None else "default")
    chosen = config.train_weight_layers if config.train_weight_layers is not None else DEFAULT_WEIGHT_LAYERS
    ratios = config.train_weight_ratio or tuple(1.0 for _ in chosen)
    weights = {}
    for idx, r in zip(chosen, ratios):
        weights[_resolve(idx, count, "--train-weight-layers")] = float(r)
    explicit = config.train_weight_layers is not None or config.train_bias_layers is not None
    return Policy("sparse", bias, weights, source="options" if explicit else "default")
