"""The search space from tiny to large: families of networks for any input
shape (C, H, W): square or not, and 1-D signals as (C, L, 1).

A network is a `Design` (plain data, JSON round-trip):

* ``input_shape`` (C, H, W) of the data and ``classes``;
* ``scale``: the resolution the network computes at, as a factor of the
  data's: 1/2 (average pooling), 1, 2 (nearest upsampling as reshape +
  concat), resizing inside the model with ops mcuforge compiles; a 1-wide
  axis (1-D data) is never resized;
* ``stem``: channels, kernel and stride of a first plain convolution, or none;
* ``stages``: per stage the block type, depth, channels, kernel, expansion
  and how it downsamples (the first block's stride 2, a 2x2 max pooling
  after it, or not at all);
* ``head``: global average pooling or flatten, then one linear layer;
* ``layout``: ``image`` computes on (C, H, W) as given; ``columns`` reads a
  2-D input (C, H, W) as a 1-D signal of length H with W x C channels (the
  input row of W x C values at each step of H becomes one step's channels:
  an MFCC map's 10 coefficients per 20 ms frame, as temporal-convolution
  keyword spotters read them). In the NHWC buffer the generated C reads,
  both are the same bytes: the view compiles to a reshape, the user's data
  and the C's input are unchanged.

Block types: ``conv`` (k x k convolution, BN, ReLU), ``ds`` (depthwise k x k
+ pointwise, each with BN and ReLU) and ``mb`` (inverted residual: 1x1
expansion by 1/3/4/6, depthwise k x k, linear 1x1 projection, residual add
when the shapes allow; ReLU6). Kernels are 3/5/7; on 1-D data a kernel k is
k x 1 and every stride and pool acts along the length only.

A family fixes which block types its stages use and their channel counts at
width 1; `FAMILIES` spans from a two-layer plain CNN (a few hundred bytes of
SRAM, little code: convolution, pooling and a linear layer) to MobileNetV2 /
MCUNet-like inverted-residual networks (many layers, many kernels' code).
The search-space step (``choose_space`` in `designsearch`) picks the family,
the width multiplier and the scale by the compute of the sampled networks
that fit the budgets.

torch is imported inside the functions.
"""
from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, replace

from .space import make_divisible

BLOCKS = ("conv", "ds", "mb")
DOWNSAMPLES = ("stride", "maxpool", "none")
HEADS = ("pool", "flatten")
SCALES = (0.5, 1.0, 2.0)
WIDTHS = (0.25, 0.5, 0.75, 1.0, 1.5)
CHANNEL_FACTORS = (0.5, 0.75, 1.0)  # a stage's channels: the family's at this width times one of these


@dataclass(frozen=True)
class Family:
    name: str
    blocks: tuple[str, ...]  # block types a stage may use
    channels: tuple[int, ...]  # per stage at width 1 (the number of stages is at most this long)
    stages: tuple[int, ...]  # how many stages
    depths: tuple[int, ...]
    kernels: tuple[int, ...]
    expands: tuple[int, ...]
    downsamples: tuple[str, ...]
    heads: tuple[str, ...]
    stem: int  # stem channels at width 1 (0: no stem)


FAMILIES = {
    # conv 3x3 -> pool -> conv 3x3 -> pool -> linear and its relatives
    "plain": Family("plain", ("conv",), (16, 24, 32, 48), (2, 3, 4), (1, 2), (3, 5), (1,), ("maxpool", "stride"),
                    ("flatten", "pool"), 0),
    # DS-CNN (Zhang et al., Hello Edge): a plain stem, depthwise-separable stages
    "dscnn": Family("dscnn", ("ds",), (32, 48, 64, 96), (2, 3, 4), (1, 2, 3), (3, 5, 7), (1,),
                    ("stride", "none", "maxpool"), ("pool",), 32),
    # MobileNetV2 / MCUNet: a stem, inverted-residual stages (expansion 1 = depthwise separable)
    "mbconv": Family("mbconv", ("mb",), (16, 24, 40, 64, 96), (3, 4, 5), (1, 2, 3), (3, 5, 7), (1, 3, 4, 6),
                     ("stride", "none"), ("pool",), 16),
}


@dataclass(frozen=True)
class Stage:
    block: str
    depth: int
    channels: int
    kernel: int
    expand: int
    downsample: str


@dataclass(frozen=True)
class Design:
    input_shape: tuple[int, int, int]
    classes: int
    family: str
    width: float
    scale: float
    stem_channels: int  # 0: none
    stem_stride: int
    stages: tuple[Stage, ...]
    head: str
    layout: str = "image"  # image | columns (module doc)

    # ---- derived -------------------------------------------------------------
    @property
    def net_shape(self) -> tuple[int, int, int]:
        """(C, H, W) the layers compute on: the input's, or for `columns` (W x C, H, 1)."""
        return net_shape(self.input_shape, self.layout)

    @property
    def one_d(self) -> bool:
        return self.net_shape[2] == 1

    def resolution(self) -> tuple[int, int]:
        h, w = self.net_shape[1:]
        return int(h * self.scale), (w if self.one_d else int(w * self.scale))

    def feature_shapes(self) -> list[tuple[int, int, int]]:
        """(C, H, W) after the stem and after every stage."""
        h, w = self.resolution()
        out = []
        c = self.net_shape[0]
        if self.stem_channels:
            h, w = _down(h, self.stem_stride), (w if self.one_d else _down(w, self.stem_stride))
            c = self.stem_channels
            out.append((c, h, w))
        for s in self.stages:
            if s.downsample != "none":
                h, w = _down(h, 2), (w if self.one_d else _down(w, 2))
            c = s.channels
            out.append((c, h, w))
        return out

    def key(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        d["stages"] = [asdict(s) for s in self.stages]
        return d

    @staticmethod
    def from_dict(d: dict) -> "Design":
        return Design(tuple(int(x) for x in d["input_shape"]), int(d["classes"]), str(d["family"]),
                      float(d["width"]), float(d["scale"]), int(d["stem_channels"]), int(d["stem_stride"]),
                      tuple(Stage(**s) for s in d["stages"]), str(d["head"]), str(d.get("layout", "image")))

    def module(self):
        return build(self)


def _down(n: int, stride: int) -> int:
    return (n + stride - 1) // stride  # 'same' padding, as the convolutions use


def net_shape(input_shape: tuple[int, int, int], layout: str = "image") -> tuple[int, int, int]:
    """(C, H, W) the layers compute on (`Design.layout`)."""
    c, h, w = input_shape
    if layout == "image":
        return tuple(input_shape)
    if layout == "columns":
        return (w * c, h, 1)
    raise ValueError(f"layout '{layout}': expected image or columns")


def layouts_for(input_shape: tuple[int, int, int]) -> tuple[str, ...]:
    """`columns` is a choice for 2-D inputs only (1-D data already is a signal)."""
    return ("image", "columns") if input_shape[2] > 1 else ("image",)


def scales_for(input_shape: tuple[int, int, int], layout: str = "image") -> tuple[float, ...]:
    """Scales the resize ops reach for this shape: 1/2 needs even sides of 8 or more."""
    _, h, w = net_shape(input_shape, layout)
    one_d = w == 1
    half = h % 2 == 0 and h >= 8 and (one_d or (w % 2 == 0 and w >= 8))
    return tuple(s for s in SCALES if s != 0.5 or half)


def valid(design: Design) -> bool:
    """Every feature map keeps at least one pixel; a flatten head stays small enough to be a head."""
    shapes = design.feature_shapes()
    if any(h < 1 or w < 1 for _, h, w in shapes):
        return False
    c, h, w = shapes[-1]
    return design.head == "pool" or c * h * w <= 4096


class FamilySpace:
    """What the search may choose within one family at one (width, scale, layout)."""

    def __init__(self, family: Family | str, input_shape: tuple[int, int, int], classes: int, width: float,
                 scale: float, layout: str = "image"):
        self.family = FAMILIES[family] if isinstance(family, str) else family
        self.input_shape, self.classes, self.width, self.scale = tuple(input_shape), classes, width, scale
        self.layout = layout

    def _stem(self, rng: random.Random | None) -> tuple[int, int]:
        f = self.family
        if not f.stem:
            return 0, 1
        h = net_shape(self.input_shape, self.layout)[1] * self.scale
        return make_divisible(f.stem * self.width), (2 if h >= 16 else 1)

    def channel_choices(self, index: int) -> tuple[int, ...]:
        """A stage's channel counts: the family's at this width times 1/2, 3/4 or 1 (so a width-1
        plain space holds the 16-24 hand CNN and its 8-12 and 12-20 versions)."""
        base = self.family.channels[index] * self.width
        return tuple(sorted({make_divisible(base * f) for f in CHANNEL_FACTORS}))

    def stage(self, index: int, rng: random.Random) -> Stage:
        f = self.family
        return Stage(rng.choice(f.blocks), rng.choice(f.depths), rng.choice(self.channel_choices(index)),
                     rng.choice(f.kernels), rng.choice(f.expands), rng.choice(f.downsamples))

    def _design(self, stem: tuple[int, int], stages: list[Stage], head: str) -> Design:
        return Design(self.input_shape, self.classes, self.family.name, self.width, self.scale, stem[0], stem[1],
                      tuple(stages), head, self.layout)

    def sample(self, rng: random.Random, tries: int = 50) -> Design:
        for _ in range(tries):
            n = rng.choice(self.family.stages)
            d = self._design(self._stem(rng), [self.stage(i, rng) for i in range(n)], rng.choice(self.family.heads))
            if valid(d):
                return d
        return self.smallest()

    def smallest(self) -> Design:
        """Fewest stages, depth 1, the fewest channels, the smallest kernel and expansion, downsampling
        at every stage."""
        f = self.family
        n = min(f.stages)
        down = "maxpool" if "maxpool" in f.downsamples else f.downsamples[0]
        stages = [Stage(f.blocks[0], min(f.depths), min(self.channel_choices(i)), min(f.kernels),
                        min(f.expands), down) for i in range(n)]
        return self._design(self._stem(None), stages, "pool" if "pool" in f.heads else f.heads[0])

    def widest(self) -> Design:
        """`smallest` with every stage at its most channels and the family's first head: the shallow
        end of the space at full width (for the plain family at width 1, the hand-drawn 16-24 CNN)."""
        d = self.smallest()
        return replace(d, stages=tuple(replace(st, channels=max(self.channel_choices(i)))
                                       for i, st in enumerate(d.stages)), head=self.family.heads[0])

    def anchors(self) -> list[Design]:
        """The family's hand-drawn members at this width: for every number of stages, `widest`
        with that many stages (for the plain family: the 2-, 3- and 4-convolution CNNs with pooling
        that the hand-designed baselines are), the valid ones. The evolution starts from them."""
        base = self.widest()
        out = []
        for n in sorted(self.family.stages):
            stages = [replace(base.stages[0], channels=max(self.channel_choices(i))) for i in range(n)]
            d = replace(base, stages=tuple(stages))
            if valid(d) and d not in out:
                out.append(d)
        return out

    def mutate(self, design: Design, rng: random.Random, prob: float = 0.25) -> Design:
        f = self.family
        for _ in range(20):
            stages = list(design.stages)
            if rng.random() < prob:  # add or drop a stage
                n = rng.choice(f.stages)
                stages = stages[:n] + [self.stage(i, rng) for i in range(len(stages), n)]
            stages = [Stage(*(rng.choice(choices) if rng.random() < prob else value
                              for value, choices in ((s.block, f.blocks), (s.depth, f.depths),
                                                     (s.channels, self.channel_choices(i)), (s.kernel, f.kernels),
                                                     (s.expand, f.expands), (s.downsample, f.downsamples))))
                      for i, s in enumerate(stages)]
            head = rng.choice(f.heads) if rng.random() < prob else design.head
            d = replace(design, stages=tuple(stages), head=head)
            if valid(d) and d != design:
                return d
        return design


# ---- PyTorch modules -----------------------------------------------------------

def _nn():
    import torch

    return torch, torch.nn


def resize_module(channels: int, shape: tuple[int, int], scale: float, one_d: bool):
    """Identity, average pooling by 2, or nearest upsampling by 2 written as
    reshape + concat (ops mcuforge compiles); on 1-D data only the length."""
    torch, nn = _nn()
    fh = 2 if scale == 2 else 1
    fw = 1 if one_d else fh

    class Identity(nn.Module):
        def forward(self, x):
            return x

    class Upsample(nn.Module):
        def forward(self, x):
            h, w = shape
            if x.shape[0] != 1:  # training batches: the same copies
                return x.repeat_interleave(fh, 2).repeat_interleave(fw, 3)
            y = x.reshape(1, channels * h, w, 1)
            if fw > 1:
                y = torch.cat([y] * fw, 3)
            y = y.reshape(1, channels * h, 1, w * fw)
            y = torch.cat([y] * fh, 2)
            return y.reshape(1, channels, h * fh, w * fw)

    if scale == 1:
        return Identity()
    if scale == 0.5:
        return nn.AvgPool2d((2, 1 if one_d else 2))
    return Upsample()


def build(design: Design):
    """The plain PyTorch module of `design` (random weights, train mode)."""
    torch, nn = _nn()
    one_d = design.one_d

    def k2(k):
        return (k, 1) if one_d else (k, k)

    def s2(s):
        return (s, 1) if one_d else (s, s)

    def conv_bn(cin, cout, k, stride=1, groups=1, act=nn.ReLU):
        kernel = k2(k)
        layers = [nn.Conv2d(cin, cout, kernel, s2(stride), tuple(x // 2 for x in kernel), groups=groups, bias=False),
                  nn.BatchNorm2d(cout)]
        if act is not None:
            layers.append(act())
        return nn.Sequential(*layers)

    class Inverted(nn.Module):
        def __init__(self, cin, cout, stride, kernel, expand):
            super().__init__()
            hidden = cin * expand
            layers = [conv_bn(cin, hidden, 1, act=nn.ReLU6)] if expand != 1 else []
            layers += [conv_bn(hidden, hidden, kernel, stride, hidden, nn.ReLU6), conv_bn(hidden, cout, 1, act=None)]
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.body(x)
            return x + y if self.residual else y

    layers = []
    c = design.net_shape[0]
    if design.stem_channels:
        layers.append(conv_bn(c, design.stem_channels, 3, design.stem_stride))
        c = design.stem_channels
    for st in design.stages:
        for b in range(st.depth):
            stride = 2 if b == 0 and st.downsample == "stride" else 1
            if st.block == "conv":
                layers.append(conv_bn(c, st.channels, st.kernel, stride))
            elif st.block == "ds":
                layers += [conv_bn(c, c, st.kernel, stride, c), conv_bn(c, st.channels, 1)]
            else:
                layers.append(Inverted(c, st.channels, stride, st.kernel, st.expand))
            c = st.channels
        if st.downsample == "maxpool":
            layers.append(nn.MaxPool2d(s2(2), s2(2), ceil_mode=True))
    c_last, h_last, w_last = design.feature_shapes()[-1]
    features = c_last if design.head == "pool" else c_last * h_last * w_last
    resize = resize_module(design.net_shape[0], design.net_shape[1:], design.scale, one_d)
    columns = design.layout == "columns"

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.design = design
            self.resize, self.features = resize, nn.Sequential(*layers)
            self.classifier = nn.Linear(features, design.classes)

        def forward(self, x):
            if columns:  # (N, C, H, W) -> (N, W x C, H, 1), channel w * C + c: NHWC's own byte order
                n, c_in, h, w = x.shape
                x = (x.permute(0, 3, 2, 1) if c_in == 1 else
                     x.permute(0, 2, 3, 1).reshape(n, h, w * c_in, 1).permute(0, 2, 1, 3))
            y = self.features(self.resize(x))
            y = y.mean((2, 3)) if design.head == "pool" else y.flatten(1)
            return self.classifier(y)

    return Net()


def export(net, input_shape, name: str = "nas"):
    """The float Graph of `net` (eval mode) for a batch-1 input of `input_shape` (C, H, W)."""
    from ..frontends.torch import from_torch

    torch, _ = _nn()
    return from_torch(net.eval(), torch.zeros(1, *input_shape), name=name)


# ---- hand-drawn references in the same terms ----------------------------------------

def hand_cnn(input_shape: tuple[int, int, int], classes: int, channels: tuple[int, int] = (16, 24)) -> Design:
    """conv 3x3 x16 -> max-pool -> conv 3x3 x24 -> max-pool -> flatten -> linear."""
    stages = tuple(Stage("conv", 1, c, 3, 1, "maxpool") for c in channels)
    return Design(tuple(input_shape), classes, "hand-cnn", 1.0, 1.0, 0, 1, stages, "flatten")


def ds_cnn(input_shape: tuple[int, int, int], classes: int, width: float = 1.0) -> Design:
    """The MLPerf Tiny KWS DS-CNN (a 10x4 stride-2 conv of 64, four
    depthwise-separable 3x3 blocks of 64, average pooling, linear) scaled in
    width; its stem here is 3x3 stride 2 (the nearest the space expresses)."""
    c = make_divisible(64 * width)
    return Design(tuple(input_shape), classes, "ds-cnn", width, 1.0, c, 2, (Stage("ds", 4, c, 3, 1, "none"),),
                  "pool")


# MobileNetV2 (Sandler et al.): (expansion, channels, blocks, stride) per stage after a 32-channel stem
MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))


def mobilenet_v2(input_shape: tuple[int, int, int], classes: int, width: float = 1.0, depth: float = 1.0,
                 scale: float = 1.0) -> Design:
    """MobileNetV2 scaled in width, depth (blocks per stage, at least one) and
    resolution (`scale`), in the family space's terms: the stem (3x3, stride 2
    when the resized input is at least 16 high), the seven inverted-residual
    stages, global pooling and one linear layer (the 1280-channel last 1x1
    convolution is left out, as in MCUNet's small models)."""
    h = input_shape[1] * scale
    stages = tuple(Stage("mb", max(1, int(round(n * depth))), make_divisible(c * width), 3, t,
                         "stride" if s == 2 else "none") for t, c, n, s in MOBILENET_V2)
    return Design(tuple(input_shape), classes, "mobilenetv2", width, scale, make_divisible(32 * width),
                  2 if h >= 16 else 1, stages, "pool")
