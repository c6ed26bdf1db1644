"""The digits data and network the demos use: scikit-learn's handwritten digits (8x8,
shipped inside scikit-learn, no download), a small depthwise-separable CNN and its
float training recipe."""
from __future__ import annotations

import numpy as np


def digits_split(seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]  # (N, 1, 8, 8), NCHW
    return train_test_split(x, d.target.astype(np.int64), test_size=0.25, random_state=seed, stratify=d.target)


def make_model(seed: int | None = None):
    """The digits network; its initial weights come from torch's generator
    seeded with `seed` (None: the generator as it is)."""
    import torch
    import torch.nn as nn

    if seed is not None:
        torch.manual_seed(seed)

    def block(cin, cout, stride=1):
        return [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(),
                nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6()]

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
        *block(16, 24), *block(24, 32, 2), *block(32, 48),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(48, 10))


def train(model, x, y, epochs: int = 40, seed: int = 0) -> None:
    import torch

    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
