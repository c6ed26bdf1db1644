"""Seeded example networks for tests, demos and benchmarks.

Every function returns ``(module, example_input)``: a ``torch.nn.Module`` in
eval mode with deterministic random weights, and an NCHW (or 2-D) float32
input of batch 1. BatchNorm layers get non-trivial random running statistics
so that folding them is really exercised.

``ZOO`` lists the small models the tests run; ``mobilenet_v2`` is bigger and
meant for benchmarks and demos.

torch is imported inside the functions, so importing this module does not
need torch.
"""
from __future__ import annotations

from typing import Any, Callable

SEED = 0


def _torch():
    import torch

    return torch


def _finish(module: Any, input_shape: tuple[int, ...], seed: int) -> tuple[Any, Any]:
    """Give BatchNorm layers random affine params and running stats, set eval
    mode and draw a seeded example input."""
    torch = _torch()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
    module.eval()
    example = torch.randn(*input_shape, generator=gen)
    return module, example


def _conv_bn(nn: Any, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
             act: Any = None) -> Any:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


def _make_divisible(value: float, divisor: int = 8) -> int:
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def _inverted_residual_class():
    torch = _torch()
    nn = torch.nn

    class InvertedResidual(nn.Module):
        """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear project,
        residual add when stride is 1 and channels match."""

        def __init__(self, cin: int, cout: int, stride: int, expand: int):
            super().__init__()
            hidden = cin * expand
            layers: list[Any] = []
            if expand != 1:
                layers.append(_conv_bn(nn, cin, hidden, 1, act=nn.ReLU6))
            layers.append(_conv_bn(nn, hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6))
            layers.append(_conv_bn(nn, hidden, cout, 1))
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.body(x)
            return x + y if self.residual else y

    return InvertedResidual


def mbv2_blocks(seed: int = SEED):
    """A stem conv and four MobileNetV2 inverted-residual blocks (two with a
    residual add) with BN and ReLU6, global average pooling and a classifier;
    input 1x3x32x32."""
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(seed)
    block = _inverted_residual_class()
    model = nn.Sequential(
        _conv_bn(nn, 3, 16, 3, 2, act=nn.ReLU6),
        block(16, 8, 1, 1),
        block(8, 16, 2, 6),
        block(16, 16, 1, 6),
        block(16, 16, 1, 4),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )
    return _finish(model, (1, 3, 32, 32), seed)


def mbv1(seed: int = SEED):
    """MobileNetV1-style depthwise separable stack (3x3 depthwise + 1x1
    pointwise, BN, ReLU) on a 1x3x32x32 input, average pool and classifier."""
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(seed)

    def dw_sep(cin: int, cout: int, stride: int):
        return nn.Sequential(_conv_bn(nn, cin, cin, 3, stride, groups=cin, act=nn.ReLU),
                             _conv_bn(nn, cin, cout, 1, act=nn.ReLU))

    model = nn.Sequential(
        _conv_bn(nn, 3, 8, 3, 2, act=nn.ReLU),
        dw_sep(8, 16, 1),
        dw_sep(16, 32, 2),
        dw_sep(32, 32, 1),
        dw_sep(32, 64, 2),
        nn.AvgPool2d(4),
        nn.Flatten(),
        nn.Linear(64, 10),
    )
    return _finish(model, (1, 3, 32, 32), seed)


def resnet8(seed: int = SEED):
    """CIFAR-style ResNet-8 (MLPerf Tiny image classification): a stem and
    three residual stages (16, 32, 64 channels), the downsampling ones with a
    1x1 stride-2 projection shortcut; input 1x3x32x32."""
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(seed)

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv1 = _conv_bn(nn, cin, cout, 3, stride, act=nn.ReLU)
            self.conv2 = _conv_bn(nn, cout, cout, 3)
            self.shortcut = (nn.Identity() if stride == 1 and cin == cout
                             else nn.Conv2d(cin, cout, 1, stride))
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))

    class ResNet8(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = _conv_bn(nn, 3, 16, 3, act=nn.ReLU)
            self.stages = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            y = self.pool(self.stages(self.stem(x)))
            return self.fc(torch.flatten(y, 1))

    return _finish(ResNet8(), (1, 3, 32, 32), seed)


def dscnn(seed: int = SEED):
    """Keyword-spotting DS-CNN (MLPerf Tiny KWS, reduced width): a 10x4
    stride-2 first conv on a 1x1x49x10 MFCC input with TensorFlow-style
    asymmetric "same" padding, four depthwise separable blocks, average pool
    and a 12-class classifier."""
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(seed)
    width = 32

    def dw_sep(c: int):
        return nn.Sequential(_conv_bn(nn, c, c, 3, 1, groups=c, act=nn.ReLU),
                             _conv_bn(nn, c, c, 1, act=nn.ReLU))

    model = nn.Sequential(
        nn.ZeroPad2d((1, 2, 4, 5)),  # left, right, top, bottom: "same" for 10x4 stride 2
        nn.Conv2d(1, width, (10, 4), 2, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        *[dw_sep(width) for _ in range(4)],
        nn.AvgPool2d((25, 5)),
        nn.Flatten(),
        nn.Linear(width, 12),
    )
    return _finish(model, (1, 1, 49, 10), seed)


def fc_autoencoder(seed: int = SEED):
    """MLPerf Tiny anomaly-detection autoencoder: 640 -> 128 -> 128 -> 128 ->
    128 -> 8 -> 128 -> 128 -> 128 -> 128 -> 640, Linear + BatchNorm1d + ReLU
    (the last layer linear); input 1x640."""
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(seed)
    sizes = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128]
    layers: list[Any] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
    layers.append(nn.Linear(128, 640))
    return _finish(nn.Sequential(*layers), (1, 640), seed)


def odd_shapes(seed: int = SEED):
    """Shapes that break naive kernels: a 1x3x23x19 input, stride 2 on odd
    sizes, 5x5 and 7x7 depthwise (one with depth multiplier 2), asymmetric
    padding by nn.ZeroPad2d, channel counts that are not multiples of 4, a
    ceil-mode max pool, a padded average pool, a dilated conv, a 1x1 spatial
    map at the end and a flatten of a 2x2 map into the classifier."""
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(seed)

    class OddShapes(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = _conv_bn(nn, 3, 5, 3, 2, act=nn.ReLU)                 # 23x19 -> 12x10
            self.pad = nn.ZeroPad2d((0, 1, 2, 1))                             # 12x10 -> 15x11
            self.dw5 = nn.Conv2d(5, 5, 5, 1, 0, groups=5)                     # -> 11x7
            self.bn5 = nn.BatchNorm2d(5)
            self.pw = nn.Conv2d(5, 7, 1)
            self.maxpool = nn.MaxPool2d(2, 2, ceil_mode=True)                 # 11x7 -> 6x4
            self.dw7 = nn.Conv2d(7, 14, 7, 1, 3, groups=7)                    # multiplier 2, 6x4
            self.dil = nn.Conv2d(14, 9, 3, 1, 2, dilation=2)                  # 6x4
            self.avgpool = nn.AvgPool2d(3, 2, padding=1, count_include_pad=False)  # -> 3x2
            self.conv_last = nn.Conv2d(9, 11, (2, 1), 1, 0)                   # -> 2x2
            self.fc = nn.Linear(11 * 2 * 2, 6)
            self.head = nn.Conv2d(11, 3, 2)                                   # -> 1x1 spatial

        def forward(self, x):
            y = self.stem(x)
            y = torch.relu(self.bn5(self.dw5(self.pad(y))))
            y = torch.clamp(self.pw(y), -1.0, 2.0)
            y = self.maxpool(y)
            y = torch.nn.functional.relu6(self.dw7(y))
            y = self.avgpool(torch.relu(self.dil(y)))
            y = self.conv_last(y)
            fc = self.fc(torch.flatten(y, 1))
            spatial = torch.flatten(self.head(y), 1)
            return torch.cat([fc, spatial], 1)

    return _finish(OddShapes(), (1, 3, 23, 19), seed)


def concat_net(seed: int = SEED):
    """Two branches (3x3 conv and 1x1 -> depthwise) concatenated on the
    channel axis, an explicit constant pad before a valid conv, a max pool,
    global average pooling and a softmax at the end; input 1x3x16x16."""
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(seed)

    class ConcatNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = _conv_bn(nn, 3, 6, 3, act=nn.ReLU)
            self.b = nn.Sequential(_conv_bn(nn, 3, 10, 1, act=nn.ReLU),
                                   _conv_bn(nn, 10, 10, 3, groups=10, act=nn.ReLU6))
            self.conv = nn.Conv2d(16, 12, 3)
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(12, 5)

        def forward(self, x):
            y = torch.cat([self.a(x), self.b(x)], 1)
            y = torch.nn.functional.pad(y, (1, 1, 1, 1))
            y = self.pool(torch.relu(self.conv(y)))
            y = y.mean((2, 3))
            return torch.softmax(self.fc(y), dim=-1)

    return _finish(ConcatNet(), (1, 3, 16, 16), seed)


def tiny_1x1(seed: int = SEED):
    """Pure pointwise network on a 1x1 spatial input (1x12x1x1): 1x1 convs
    with BN, ReLU and a residual add, then flatten and a classifier."""
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(seed)

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = _conv_bn(nn, 12, 20, 1, act=nn.ReLU)
            self.c2 = _conv_bn(nn, 20, 12, 1)
            self.fc = nn.Linear(12, 4)

        def forward(self, x):
            y = torch.relu(self.c2(self.c1(x)) + x)
            return self.fc(y.reshape(1, -1))

    return _finish(Tiny(), (1, 12, 1, 1), seed)


def mobilenet_v2(width: float = 0.35, resolution: int = 96, num_classes: int = 1000,
                 seed: int = SEED):
    """The standard MobileNetV2 topology (Sandler et al. 2018; torchvision
    layout) with a width multiplier, random weights and a configurable
    number of classes; input 1x3xRxR."""
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(seed)
    block = _inverted_residual_class()
    settings = [  # expand t, channels c, repeats n, first stride s
        (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
        (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
    ]
    cin = _make_divisible(32 * width)
    last = _make_divisible(1280 * max(1.0, width))
    layers: list[Any] = [_conv_bn(nn, 3, cin, 3, 2, act=nn.ReLU6)]
    for t, c, n, s in settings:
        cout = _make_divisible(c * width)
        for i in range(n):
            layers.append(block(cin, cout, s if i == 0 else 1, t))
            cin = cout
    layers += [_conv_bn(nn, cin, last, 1, act=nn.ReLU6), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Dropout(0.2), nn.Linear(last, num_classes)]
    return _finish(nn.Sequential(*layers), (1, 3, resolution, resolution), seed)


# MobileNetV3-small (Howard et al. 2019, Table 2): kernel, expansion, output
# channels, squeeze-and-excitation, hard-swish (else ReLU), stride
MBV3_SMALL = [
    (3, 16, 16, True, False, 2), (3, 72, 24, False, False, 2), (3, 88, 24, False, False, 1),
    (5, 96, 40, True, True, 2), (5, 240, 40, True, True, 1), (5, 240, 40, True, True, 1),
    (5, 120, 48, True, True, 1), (5, 144, 48, True, True, 1), (5, 288, 96, True, True, 2),
    (5, 576, 96, True, True, 1), (5, 576, 96, True, True, 1),
]


def _mbv3_block_class():
    torch = _torch()
    nn = torch.nn

    class SqueezeExcitation(nn.Module):
        """torchvision's: global average pool, 1x1 conv, ReLU, 1x1 conv,
        hard sigmoid, then the input scaled channel by channel (a broadcast Mul)."""

        def __init__(self, channels: int):
            super().__init__()
            squeeze = _make_divisible(channels // 4)
            self.fc1, self.fc2 = nn.Conv2d(channels, squeeze, 1), nn.Conv2d(squeeze, channels, 1)

        def forward(self, x):
            s = torch.nn.functional.adaptive_avg_pool2d(x, 1)
            s = self.fc2(torch.relu(self.fc1(s)))
            return x * torch.nn.functional.hardsigmoid(s)

    class Block(nn.Module):
        def __init__(self, cin: int, k: int, expanded: int, cout: int, se: bool, hs: bool, stride: int):
            super().__init__()
            act = nn.Hardswish if hs else nn.ReLU
            layers: list[Any] = []
            if expanded != cin:
                layers.append(_conv_bn(nn, cin, expanded, 1, act=act))
            layers.append(_conv_bn(nn, expanded, expanded, k, stride, groups=expanded, act=act))
            if se:
                layers.append(SqueezeExcitation(expanded))
            layers.append(_conv_bn(nn, expanded, cout, 1))
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.body(x)
            return x + y if self.residual else y

    return Block


def mobilenet_v3_small(width: float = 1.0, resolution: int = 96, num_classes: int = 1000, blocks: int = 11,
                       seed: int = SEED):
    """MobileNetV3-small (torchvision layout: hard-swish, squeeze-and-excitation
    with a hard sigmoid) with a width multiplier, the first `blocks` of its 11
    inverted-residual blocks, random weights; input 1x3xRxR."""
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(seed)
    block = _mbv3_block_class()
    cin = _make_divisible(16 * width)
    layers: list[Any] = [_conv_bn(nn, 3, cin, 3, 2, act=nn.Hardswish)]
    for k, exp, c, se, hs, s in MBV3_SMALL[:blocks]:
        cout = _make_divisible(c * width)
        layers.append(block(cin, k, _make_divisible(exp * width), cout, se, hs, s))
        cin = cout
    last = _make_divisible(6 * cin)
    layers += [_conv_bn(nn, cin, last, 1, act=nn.Hardswish), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(last, 1024 if num_classes >= 100 else 128), nn.Hardswish(), nn.Dropout(0.2),
               nn.Linear(1024 if num_classes >= 100 else 128, num_classes)]
    return _finish(nn.Sequential(*layers), (1, 3, resolution, resolution), seed)


def mbv3_small(seed: int = SEED):
    """MobileNetV3-small at width 0.5, 48x48, 10 classes, its first 6 blocks:
    hard-swish, squeeze-and-excitation (broadcast multiply by a hard
    sigmoid), residual adds."""
    return mobilenet_v3_small(width=0.5, resolution=48, num_classes=10, blocks=6, seed=seed)


def mobilenet_v3_small_tflite(width: float = 1.0, resolution: int = 96, num_classes: int = 1000,
                              blocks: int = 11, seed: int = SEED) -> bytes:
    """MobileNetV3-small as a full-integer int8 .tflite file laid out the way
    TensorFlow's converter writes Keras' ``MobileNetV3Small``: HARD_SWISH
    operators, squeeze-and-excitation as MEAN -> CONV_2D (RELU) -> CONV_2D ->
    ADD 3 (RELU6) -> MUL 1/6 -> MUL with the block (Keras' hard sigmoid),
    residual ADDs, a 1x1-conv classifier head and SOFTMAX. Seeded random
    int8 weights and plausible scales (``tflite_writer.StableNet``); needs the
    ``tflite-micro`` package."""
    from .tflite_writer import StableNet

    n = StableNet(seed, (1, resolution, resolution, 3), in_scale=1 / 128, in_zp=0)

    def hard_swish(x: int) -> int:
        return n.unary(x, "HARD_SWISH", scale=n.scale(x) * 0.6)

    def act(x: int, hs: bool) -> int:
        return hard_swish(x) if hs else x

    cin = _make_divisible(16 * width)
    x = hard_swish(n.conv(0, cin, (3, 3), stride=2))
    for k, exp, c, se, hs, s in MBV3_SMALL[:blocks]:
        cout, expanded = _make_divisible(c * width), _make_divisible(exp * width)
        y = x
        if expanded != cin:
            y = act(n.conv(y, expanded, (1, 1), act=0 if hs else 1), hs)
        y = act(n.conv(y, 0, (k, k), stride=s, depthwise=True, act=0 if hs else 1), hs)
        if se:
            squeeze = n.conv(n.mean(y, keep_dims=True), _make_divisible(expanded // 4), (1, 1), act=1)
            excite = n.conv(squeeze, expanded, (1, 1))
            relu6 = n.binary("ADD", excite, n.scalar(3.0), 6 / 255, -128, act=3)
            hard_sigmoid = n.binary("MUL", relu6, n.scalar(1 / 6), 1 / 255, -128)
            y = n.binary("MUL", y, hard_sigmoid, n.scale(y) * 0.7)
        y = n.conv(y, cout, (1, 1))
        if s == 1 and cin == cout:
            y = n.add(x, y)
        x, cin = y, cout
    x = hard_swish(n.conv(x, _make_divisible(6 * cin), (1, 1)))
    x = n.mean(x, keep_dims=True)
    x = hard_swish(n.conv(x, 1024 if num_classes >= 100 else 128, (1, 1)))
    x = n.conv(x, num_classes, (1, 1))
    x = n.reshape(x, (1, num_classes))
    return n.build(n.softmax(x))


def mbv3_small_tflite(seed: int = SEED) -> bytes:
    """The int8 TFLite counterpart of ``mbv3_small`` (width 0.5, 48x48, 10 classes, 6 blocks)."""
    return mobilenet_v3_small_tflite(width=0.5, resolution=48, num_classes=10, blocks=6, seed=seed)


def activation_zoo(seed: int = SEED):
    """The elementwise and resampling operators of MCU models in one small
    CNN (1x3x20x20): hard-swish, leaky ReLU, a sigmoid gate times a tanh
    branch (Mul), Sub, Max and Min of two convolution outputs, then a
    transposed convolution, a strided slice and a nearest-neighbour 2x
    upsampling. Every elementwise op is fed and read by convolutions, so
    onnxruntime's quantizer puts Q/DQ pairs on both sides."""
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(seed)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = _conv_bn(nn, 3, 8, 3, act=nn.Hardswish)
            self.a = _conv_bn(nn, 8, 12, 1)
            self.gate = _conv_bn(nn, 8, 12, 1)
            self.dw = _conv_bn(nn, 12, 12, 3, groups=12)
            self.p, self.q, self.d = nn.Conv2d(12, 12, 1), nn.Conv2d(12, 12, 1), nn.Conv2d(12, 12, 1)
            self.e, self.f = nn.Conv2d(12, 12, 3, padding=1), _conv_bn(nn, 12, 16, 3, 2, act=nn.ReLU)
            self.up = nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1)
            self.g = nn.Conv2d(8, 16, 3, stride=2)
            self.fc = nn.Linear(16, 5)

        def forward(self, x):
            x = self.stem(x)
            a = torch.nn.functional.leaky_relu(self.a(x), 0.1)
            y = torch.tanh(self.dw(a)) * torch.sigmoid(self.gate(x))
            p, q = self.p(y), self.q(y)
            d = self.d(p - q)
            e = self.e(torch.maximum(p, d))
            f = self.f(torch.minimum(e, d))
            u = torch.relu(self.up(f))[:, :, 2:-1, ::2]
            u = self.g(torch.nn.functional.interpolate(u, scale_factor=2.0, mode="nearest"))
            return self.fc(u.mean(dim=(2, 3)))

    return _finish(Net(), (1, 3, 20, 20), seed)


ZOO: dict[str, Callable[[], tuple[Any, Any]]] = {
    "mbv3_small": mbv3_small,
    "activation_zoo": activation_zoo,
    "mbv2_blocks": mbv2_blocks,
    "mbv1": mbv1,
    "resnet8": resnet8,
    "dscnn": dscnn,
    "fc_autoencoder": fc_autoencoder,
    "odd_shapes": odd_shapes,
    "concat_net": concat_net,
    "tiny_1x1": tiny_1x1,
}
