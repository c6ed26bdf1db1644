"""Learning on the device, shown on real data (the second half of `make demo`).

The digits network (mcuforge.tools.digits) is pretrained in float on the digits 0-4
only, compiled with training on (int8, full update: the features learned from
five digits must change to separate ten), and then learns all ten classes
with the generated C training step on this machine: four passes over the
training split, one image per step. Printed: held-out accuracy
before and after, the same with quantization-aware scaling switched off, and
a PyTorch float fine-tune of the same parameters (same samples, same order,
same learning rate) for comparison.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

KNOWN = 5  # pretrained on the digits 0 .. KNOWN-1
MODE = "full"
LEARNING_RATE = 0.01
EPOCHS = 4


def pretrain(seed: int = 0, epochs: int = 30):
    from .digits import digits_split, make_model, train

    x_train, x_test, y_train, y_test = digits_split(seed)
    model = make_model(seed)
    known = y_train < KNOWN
    train(model, x_train[known], y_train[known], epochs=epochs, seed=seed)
    return model, (x_train, x_test, y_train, y_test)


def order(n: int, epochs: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.permutation(n) for _ in range(epochs)])


def float_finetune(model, plan, x: np.ndarray, y: np.ndarray, idx: np.ndarray, x_test: np.ndarray,
                   lr: float) -> float:
    """SGD, batch 1, on a BN-folded float copy of the model, updating the
    parameters the plan's policy trains (same leading channels)."""
    import copy

    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    m = copy.deepcopy(model).eval()
    mods = list(m)
    layers = []
    for i, mod in enumerate(mods):
        if isinstance(mod, torch.nn.Conv2d):
            fused = fuse_conv_bn_eval(mod, mods[i + 1]) if isinstance(mods[i + 1], torch.nn.BatchNorm2d) else mod
            mods[i] = fused
            if isinstance(mods[i + 1], torch.nn.BatchNorm2d):
                mods[i + 1] = torch.nn.Identity()
            layers.append(fused)
        elif isinstance(mod, torch.nn.Linear):
            layers.append(mod)
    net = torch.nn.Sequential(*mods).float()
    for p in net.parameters():
        p.requires_grad_(False)
    tp = plan.training
    trained = []
    for t in tp.layers:
        layer = layers[t.layer]
        if t.bias:
            layer.bias.requires_grad_(True)
            trained.append((layer.bias, None))
        if t.channels:
            layer.weight.requires_grad_(True)
            trained.append((layer.weight, t.channels))
    xt = torch.from_numpy(x).float()
    for i in idx:
        net.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(xt[i:i + 1]), torch.tensor([int(y[i])]))
        loss.backward()
        with torch.no_grad():
            for p, ch in trained:
                if ch is None:
                    p -= lr * p.grad
                else:
                    p[:ch] -= lr * p.grad[:ch]
    with torch.no_grad():
        return net(torch.from_numpy(x_test).float()).argmax(1).numpy()


def learn_on_device(plan, outdir: Path, x_train_q, y_train, idx, x_test_q):
    """With the generated C on the host: predict the held-out set, train,
    predict it again. Returns (predictions before, after, losses)."""
    from . import harness

    exe = harness.build_host(plan, outdir, outdir / "host-build")
    n = len(x_test_q)
    xs = np.concatenate([x_test_q, x_train_q[idx], x_test_q])
    labels = np.concatenate([-np.ones(n, dtype=np.int64), y_train[idx], -np.ones(n, dtype=np.int64)])
    run = harness.run_host(plan, exe, xs, labels)
    pred = run.outputs.argmax(1)
    return pred[:n], pred[n:], run.losses


def run_training_demo(outdir: Path, quiet: bool = False, epochs: int = EPOCHS, lr: float = LEARNING_RATE) -> dict:
    import torch

    from ..config import BuildConfig
    from ..frontends.torch import from_torch
    from ..pipeline import compile_model
    from ..quantize import quantize_values, to_ir_layout
    from ..training import describe

    say = (lambda *a: None) if quiet else print
    t0 = time.monotonic()
    torch.set_num_threads(1)  # the same float results on any machine
    model, (x_train, x_test, y_train, y_test) = pretrain()
    with torch.no_grad():
        float_before = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    calib = outdir / "calibration.npy"
    np.save(calib, x_train[:300])
    graph = from_torch(model, torch.from_numpy(x_test[:1]), name="digits_train")
    idx = order(len(x_train), epochs)
    results = {}
    for qas in (True, False):
        cfg = BuildConfig(name="digits_train", calibration=str(calib), training=MODE, learning_rate=lr,
                          train_qas=qas)
        gen = outdir / ("digits_train" if qas else "digits_train_noqas")
        plan = compile_model(graph, cfg, gen)
        q = plan.graph.tensors[plan.input].quant
        x_train_q = to_ir_layout(plan.graph, quantize_values(x_train, q))
        x_test_q = to_ir_layout(plan.graph, quantize_values(x_test, q))
        before, pred, losses = learn_on_device(plan, gen, x_train_q, y_train, idx, x_test_q)
        if qas:
            results["int8_before"] = float((before == y_test).mean())
            results["policy"] = describe(plan)
            results["plan"] = plan
        key = "int8_qas" if qas else "int8_no_qas"
        results[key] = float((pred == y_test).mean())
        results[key + "_loss_first_last"] = (float(losses[:200].mean()), float(losses[-200:].mean()))
    results["float_before"] = float_before
    float_pred = float_finetune(model, results["plan"], x_train, y_train, idx, x_test, lr)
    results["float_finetune"] = float((float_pred == y_test).mean())
    results["steps"] = int(len(idx))
    results["seconds"] = time.monotonic() - t0
    say("")
    say(f"on-device training: pretrained (float) on digits 0-{KNOWN - 1} only, then {len(idx)} training steps "
        f"({epochs} passes, one image per step, learning rate {lr:g}) on all ten digits with the generated C")
    say(f"  {results['policy']}")
    say(f"  held-out accuracy before (int8, generated C):        {results['int8_before']:.2%}")
    say(f"  after on-device training, int8 + QAS (generated C):  {results['int8_qas']:.2%}")
    say(f"  after on-device training, QAS off (generated C):     {results['int8_no_qas']:.2%}")
    say(f"  PyTorch float fine-tune of the same parameters:      {results['float_finetune']:.2%}")
    say(f"  mean loss, first/last 200 steps (int8 + QAS): {results['int8_qas_loss_first_last'][0]:.3f} / "
        f"{results['int8_qas_loss_first_last'][1]:.3f}   ({results['seconds']:.1f} s)")
    return results
