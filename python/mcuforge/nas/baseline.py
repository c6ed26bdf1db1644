"""The reference a search must beat: MobileNetV2 (Sandler et al. 2018) scaled
by width and input resolution only.

The topology is the standard one (stem 32 stride 2, seven stages of
expansion-6 3x3 inverted-residual blocks, a 1x1 conv to 1280 channels,
global average pooling, a linear classifier). Every channel count, the last
conv's included, is the width multiplier times the original, rounded to a
multiple of 2 (torchvision rounds to 8 and keeps 1280 for widths below 1,
which no flash budget of a few tens of KB could hold; rounding to 2 lets the
baseline get as small as it can). The input is resized with the same
compiled ops as the searched networks.

`depth` below 1 is not part of the baseline the issue names (width and
resolution only): it scales every stage's block count (at least one) and
serves as a second, stronger reference when no width alone fits.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .space import conv_bn, torch_nn, apply_resize, make_divisible, resize_module

SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1))  # expansion t, channels c, repeats n, first stride s
CHANNEL_DIVISOR = 2
DEPTHS = (1.0, 0.5, 0.0)  # 0: one block per stage
WIDTHS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class ScaledMobileNetV2:
    in_channels: int
    in_resolution: int
    classes: int
    width: float
    resolution: int
    depth: float = 1.0

    def key(self) -> str:
        import json

        return json.dumps(dict(asdict(self), family="mobilenet_v2"), sort_keys=True)

    def to_dict(self) -> dict:
        return dict(asdict(self), family="mobilenet_v2")

    def module(self):
        torch, nn = torch_nn()
        w = self.width

        class Block(nn.Module):
            def __init__(self, cin, cout, stride, t):
                super().__init__()
                hidden = cin * t
                layers = [conv_bn(nn, cin, hidden, 1)] if t != 1 else []
                layers += [conv_bn(nn, hidden, hidden, 3, stride, groups=hidden), conv_bn(nn, hidden, cout, 1, act=False)]
                self.body = nn.Sequential(*layers)
                self.residual = stride == 1 and cin == cout

            def forward(self, x):
                y = self.body(x)
                return x + y if self.residual else y

        cin = make_divisible(32 * w, CHANNEL_DIVISOR)
        last = make_divisible(1280 * w, CHANNEL_DIVISOR)
        layers = [conv_bn(nn, self.in_channels, cin, 3, 2)]
        for t, c, n, s in SETTINGS:
            cout = make_divisible(c * w, CHANNEL_DIVISOR)
            for i in range(max(1, math.ceil(n * self.depth))):
                layers.append(Block(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(conv_bn(nn, cin, last, 1))
        resize = resize_module(self.in_channels, self.in_resolution, self.resolution)
        classes = self.classes

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.resize, self.features, self.classifier = resize, nn.Sequential(*layers), nn.Linear(last, classes)

            def forward(self, x):
                return self.classifier(self.features(apply_resize(self.resize, x)).mean((2, 3)))

        return Net()
