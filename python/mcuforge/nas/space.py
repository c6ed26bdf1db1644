"""The search space: MobileNetV2/MCUNet-style inverted-residual networks.

A network is described by an `Arch` (plain data, JSON round-trip):

* ``in_channels``, ``in_resolution`` (the data's own H = W) and ``classes``;
* ``resolution``: the resolution the network computes at. Resizing is part
  of the model and uses only ops mcuforge compiles: average pooling for an
  integer downscale, nearest upsampling by an integer factor written as
  reshape + concat (a copy of each pixel along W, then along H);
* ``width``: multiplier of every stage's channel count;
* per stage a depth and, per block, a depthwise kernel size (3/5/7) and an
  expansion ratio (3/4/6).

The fixed skeleton (channels at width 1, first strides) follows MCUNet's
small networks: a 3x3 stem (stride 2 from resolution 16 up), a depthwise
separable first block, stages of inverted-residual blocks (1x1 expand, kxk
depthwise, 1x1 linear project, residual add when the shape allows), global
average pooling and a linear classifier.

`build(arch)` returns a plain ``torch.nn.Module`` of exactly that network;
`SuperNet` holds the largest network's weights, runs any subnet with shared
weights (kernel: centre crop, expansion: leading channels, depth: leading
blocks) and `SuperNet.extract(arch)` copies a subnet's weights into `build`'s
module.

torch is imported inside the functions.
"""
from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field, replace
from typing import Any

KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 6)
DEPTHS = (1, 2, 3)
# channels at width 1 and the first block's stride, per searchable stage
STAGES = ((16, 1), (24, 2), (32, 2), (48, 1), (64, 2))
STEM_CHANNELS = 16
FIRST_BLOCK_CHANNELS = 8
CHANNEL_DIVISOR = 4
WIDTHS = (0.25, 0.35, 0.5, 0.75, 1.0)


def make_divisible(value: float, divisor: int = CHANNEL_DIVISOR) -> int:
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def resolutions_for(in_resolution: int) -> tuple[int, ...]:
    """Resolutions reachable from the data's with the resize ops: an integer
    downscale by 2 (average pooling), the data's own, x2 and x3 (nearest)."""
    out = [in_resolution // 2] if in_resolution % 2 == 0 and in_resolution >= 8 else []
    return tuple(out + [in_resolution, 2 * in_resolution, 3 * in_resolution])


@dataclass(frozen=True)
class Arch:
    in_channels: int
    in_resolution: int
    classes: int
    resolution: int
    width: float
    depths: tuple[int, ...]  # per stage
    kernels: tuple[tuple[int, ...], ...]  # per stage, per block (len == max depth; unused tail ignored)
    expands: tuple[tuple[int, ...], ...]

    # ---- derived -------------------------------------------------------------
    @property
    def stem_stride(self) -> int:
        return 2 if self.resolution >= 16 else 1

    def channels(self) -> list[int]:
        return [make_divisible(c * self.width) for c, _ in STAGES]

    @property
    def stem_channels(self) -> int:
        return make_divisible(STEM_CHANNELS * self.width)

    @property
    def first_block_channels(self) -> int:
        return make_divisible(FIRST_BLOCK_CHANNELS * self.width)

    def blocks(self) -> list[tuple[int, int, int, int, int]]:
        """(cin, cout, stride, kernel, expand) of every active block."""
        out = []
        cin = self.first_block_channels
        for s, ((_, stride), cout) in enumerate(zip(STAGES, self.channels())):
            for b in range(self.depths[s]):
                out.append((cin, cout, stride if b == 0 else 1, self.kernels[s][b], self.expands[s][b]))
                cin = cout
        return out

    def key(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["depths"] = list(self.depths)
        d["kernels"] = [list(k[:n]) for k, n in zip(self.kernels, self.depths)]
        d["expands"] = [list(e[:n]) for e, n in zip(self.expands, self.depths)]
        return d

    @staticmethod
    def from_dict(d: dict) -> "Arch":
        depth = max(DEPTHS)
        pad = lambda rows, fill: tuple(tuple(list(r) + [fill] * (depth - len(r))) for r in rows)  # noqa: E731
        return Arch(int(d["in_channels"]), int(d["in_resolution"]), int(d["classes"]), int(d["resolution"]),
                    float(d["width"]), tuple(int(x) for x in d["depths"]), pad(d["kernels"], min(KERNELS)),
                    pad(d["expands"], min(EXPANDS)))

    def canonical(self) -> "Arch":
        """Blocks past a stage's depth set to the smallest choice, so equal
        networks have equal keys."""
        return Arch.from_dict(self.to_dict())


@dataclass(frozen=True)
class Space:
    """What the search may choose for given data and one (width, resolution)."""

    in_channels: int
    in_resolution: int
    classes: int
    width: float
    resolution: int
    kernels: tuple[int, ...] = KERNELS
    expands: tuple[int, ...] = EXPANDS
    depths: tuple[int, ...] = DEPTHS

    def _arch(self, depths, kernels, expands) -> Arch:
        return Arch(self.in_channels, self.in_resolution, self.classes, self.resolution, self.width,
                    tuple(depths), tuple(tuple(k) for k in kernels), tuple(tuple(e) for e in expands)).canonical()

    def largest(self) -> Arch:
        n, d = len(STAGES), max(self.depths)
        return self._arch([d] * n, [[max(self.kernels)] * d] * n, [[max(self.expands)] * d] * n)

    def smallest(self) -> Arch:
        n, d = len(STAGES), max(self.depths)
        return self._arch([min(self.depths)] * n, [[min(self.kernels)] * d] * n, [[min(self.expands)] * d] * n)

    def sample(self, rng: random.Random) -> Arch:
        n, d = len(STAGES), max(self.depths)
        return self._arch([rng.choice(self.depths) for _ in range(n)],
                          [[rng.choice(self.kernels) for _ in range(d)] for _ in range(n)],
                          [[rng.choice(self.expands) for _ in range(d)] for _ in range(n)])

    def mutate(self, arch: Arch, rng: random.Random, prob: float = 0.2) -> Arch:
        depths = [rng.choice(self.depths) if rng.random() < prob else x for x in arch.depths]
        kernels = [[rng.choice(self.kernels) if rng.random() < prob else k for k in row] for row in arch.kernels]
        expands = [[rng.choice(self.expands) if rng.random() < prob else e for e in row] for row in arch.expands]
        return self._arch(depths, kernels, expands)

    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch:
        pick = lambda x, y: x if rng.random() < 0.5 else y  # noqa: E731
        return self._arch([pick(x, y) for x, y in zip(a.depths, b.depths)],
                          [[pick(x, y) for x, y in zip(r, s)] for r, s in zip(a.kernels, b.kernels)],
                          [[pick(x, y) for x, y in zip(r, s)] for r, s in zip(a.expands, b.expands)])


def space_for(arch: Arch) -> Space:
    return Space(arch.in_channels, arch.in_resolution, arch.classes, arch.width, arch.resolution)


# ---- PyTorch modules -----------------------------------------------------------

def torch_nn():
    import torch

    return torch, torch.nn


def resize_module(channels: int, in_resolution: int, resolution: int):
    """The model's own resize from the data's resolution to `resolution`,
    with ops mcuforge compiles (identity, average pooling, or nearest
    upsampling as reshape + concat)."""
    torch, nn = torch_nn()

    class Identity(nn.Module):
        def forward(self, x):
            return x

    class Upsample(nn.Module):
        """Nearest upsampling by an integer factor: each pixel copied
        `factor` times along W, then each row along H."""

        def __init__(self, factor: int):
            super().__init__()
            self.factor = factor

        def forward(self, x):
            f, c, h, w = self.factor, channels, in_resolution, in_resolution
            y = x.reshape(1, c * h, w, 1)
            y = torch.cat([y] * f, 3).reshape(1, c * h, 1, w * f)
            y = torch.cat([y] * f, 2).reshape(1, c, h * f, w * f)
            return y

        # training runs batches: the same copies, batch by batch
        def forward_batch(self, x):
            return x.repeat_interleave(self.factor, 2).repeat_interleave(self.factor, 3)

    if resolution == in_resolution:
        return Identity()
    if resolution < in_resolution:
        if in_resolution % resolution:
            raise ValueError(f"resolution {resolution} does not divide {in_resolution}")
        return nn.AvgPool2d(in_resolution // resolution)
    if resolution % in_resolution:
        raise ValueError(f"resolution {resolution} is not a multiple of {in_resolution}")
    return Upsample(resolution // in_resolution)


def apply_resize(resize, x):
    """Batches take the batched form of the upsampling (the same copies);
    batch 1, which is what is exported, the reshape + concat form."""
    if x.shape[0] != 1 and hasattr(resize, "forward_batch"):
        return resize.forward_batch(x)
    return resize(x)


def conv_bn(nn, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


def build(arch):
    """The plain PyTorch module of `arch` (random weights, train mode); any
    other architecture description (the scaled MobileNetV2 baseline) builds
    itself with `arch.module()`."""
    if not isinstance(arch, Arch):
        return arch.module()
    torch, nn = torch_nn()

    class Block(nn.Module):
        def __init__(self, cin, cout, stride, kernel, expand):
            super().__init__()
            hidden = cin * expand
            self.expand = conv_bn(nn, cin, hidden, 1)
            self.depthwise = conv_bn(nn, hidden, hidden, kernel, stride, groups=hidden)
            self.project = conv_bn(nn, hidden, cout, 1, act=False)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.project(self.depthwise(self.expand(x)))
            return x + y if self.residual else y

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.arch = arch
            self.resize = resize_module(arch.in_channels, arch.in_resolution, arch.resolution)
            self.stem = conv_bn(nn, arch.in_channels, arch.stem_channels, 3, arch.stem_stride)
            c0, c1 = arch.stem_channels, arch.first_block_channels
            self.first = nn.Sequential(conv_bn(nn, c0, c0, 3, groups=c0), conv_bn(nn, c0, c1, 1, act=False))
            self.blocks = nn.Sequential(*[Block(*b) for b in arch.blocks()])
            self.classifier = nn.Linear(arch.channels()[-1], arch.classes)

        def forward(self, x):
            y = self.blocks(self.first(self.stem(apply_resize(self.resize, x))))
            return self.classifier(y.mean((2, 3)))

    return Net()


def _crop(weight, kernel: int):
    k = weight.shape[-1]
    lo = (k - kernel) // 2
    return weight[..., lo:lo + kernel, lo:lo + kernel]


def supernet(space: Space):
    """The weight-sharing network of `space`: the largest subnet's weights,
    run as any subnet with `net(x, arch)`."""
    torch, nn = torch_nn()
    F = torch.nn.functional
    largest = space.largest()

    class DynamicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            hidden = cin * max(space.expands)
            k = max(space.kernels)
            self.cin, self.cout, self.stride = cin, cout, stride
            self.expand = conv_bn(nn, cin, hidden, 1)
            self.depthwise = conv_bn(nn, hidden, hidden, k, stride, groups=hidden)
            self.project = conv_bn(nn, hidden, cout, 1, act=False)
            self.residual = stride == 1 and cin == cout

        @staticmethod
        def _bn(seq, y, n):
            bn = seq[1]
            return F.batch_norm(y, bn.running_mean[:n], bn.running_var[:n], bn.weight[:n], bn.bias[:n],
                                bn.training, bn.momentum, bn.eps)

        def forward(self, x, kernel, expand):
            hidden = self.cin * expand
            y = F.conv2d(x, self.expand[0].weight[:hidden])
            y = F.relu6(self._bn(self.expand, y, hidden))
            w = _crop(self.depthwise[0].weight[:hidden], kernel)
            y = F.conv2d(y, w, None, self.stride, kernel // 2, 1, hidden)
            y = F.relu6(self._bn(self.depthwise, y, hidden))
            y = self._bn(self.project, F.conv2d(y, self.project[0].weight[:, :hidden]), self.cout)
            return x + y if self.residual else y

    class SuperNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.space = space
            base = build(largest)
            self.resize, self.stem, self.first, self.classifier = base.resize, base.stem, base.first, base.classifier
            self.stages = nn.ModuleList()
            for s, ((cin, cout, stride, _, _)) in enumerate(_stage_heads(largest)):
                blocks = nn.ModuleList([DynamicBlock(cin if b == 0 else cout, cout, stride if b == 0 else 1)
                                        for b in range(max(space.depths))])
                self.stages.append(blocks)

        def forward(self, x, arch: Arch):
            y = self.first(self.stem(apply_resize(self.resize, x)))
            for s, blocks in enumerate(self.stages):
                for b in range(arch.depths[s]):
                    y = blocks[b](y, arch.kernels[s][b], arch.expands[s][b])
            return self.classifier(y.mean((2, 3)))

        def extract(self, arch: Arch):
            """`build(arch)` with this supernet's weights."""
            net = build(arch)
            with torch.no_grad():
                for name in ("stem", "first", "classifier"):
                    getattr(net, name).load_state_dict(getattr(self, name).state_dict())
                i = 0
                for s, blocks in enumerate(self.stages):
                    for b in range(arch.depths[s]):
                        src, dst = blocks[b], net.blocks[i]
                        hidden = src.cin * arch.expands[s][b]
                        _copy_conv_bn(dst.expand, src.expand, slice(0, hidden), slice(None))
                        _copy_conv_bn(dst.depthwise, src.depthwise, slice(0, hidden), slice(None),
                                      arch.kernels[s][b])
                        _copy_conv_bn(dst.project, src.project, slice(None), slice(0, hidden))
                        i += 1
            return net

    return SuperNet()


def _stage_heads(arch: Arch) -> list[tuple[int, int, int, int, int]]:
    """(cin, cout, stride, -, -) of each stage's first block."""
    heads, i = [], 0
    for d in arch.depths:
        heads.append(arch.blocks()[i])
        i += d
    return heads


def _copy_conv_bn(dst, src, out_slice, in_slice, kernel: int | None = None) -> None:
    w = src[0].weight[out_slice, in_slice]
    dst[0].weight.copy_(_crop(w, kernel) if kernel else w)
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst[1], name).copy_(getattr(src[1], name)[out_slice])
