"""`make demo`: train a small CNN on real data, compile it, run the C.

The data are scikit-learn's handwritten digits (1,797 8x8 images that ship
inside the package, no download). The demo trains a depthwise-separable CNN
in a few seconds, exports it through the PyTorch frontend, quantizes it with
calibration samples from the training split, generates C, builds that C for
this machine and runs it on the held-out split, then prints float accuracy,
int8 accuracy, the per-layer memory report and where the plot went. Then
(unless --no-training) the on-device training part: mcuforge.tools.training_demo.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from .digits import digits_split, make_model, train


def run_demo(outdir: Path, epochs: int = 40, quiet: bool = False, training: bool = False) -> dict:
    import torch

    from . import hostrun
    from ..config import BuildConfig
    from ..frontends.torch import from_torch
    from ..pipeline import compile_model, no_progress, stderr_progress
    from ..quantize import quantize_values, to_ir_layout
    from .report import build_report, format_table, plot_memory

    say = (lambda *a: None) if quiet else print
    progress = no_progress if quiet else stderr_progress()
    torch.set_num_threads(2)
    t0 = time.monotonic()
    x_train, x_test, y_train, y_test = digits_split()
    say(f"data: scikit-learn digits, {len(x_train)} training and {len(x_test)} held-out 8x8 images")
    model = make_model(seed=0)  # the same weights, and so the same figures, on every run
    train(model, x_train, y_train, epochs=epochs)
    with torch.no_grad():
        float_logits = model(torch.from_numpy(x_test)).numpy()
    float_pred = float_logits.argmax(1)
    float_acc = float((float_pred == y_test).mean())
    say(f"trained a depthwise-separable CNN in {time.monotonic() - t0:.1f} s: float accuracy {float_acc:.2%}")

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    calib = outdir / "calibration.npy"
    np.save(calib, x_train[:300])
    graph = from_torch(model, torch.from_numpy(x_test[:1]), name="digits")
    plan = compile_model(graph, BuildConfig(name="digits", calibration=str(calib)), outdir / "digits", progress)

    x_q = to_ir_layout(plan.graph, quantize_values(x_test, plan.graph.tensors[plan.input].quant))
    exe = hostrun.build(plan, outdir / "digits", outdir / "host-build")
    (y_int8,) = hostrun.run(plan, exe, x_q)
    int8_pred = y_int8.reshape(len(x_test), -1).argmax(1)
    int8_acc = float((int8_pred == y_test).mean())
    agreement = float((int8_pred == float_pred).mean())

    report = build_report(plan)
    png = plot_memory(report, outdir / "digits_memory.png")
    say("")
    say(format_table(report))
    say("")
    say(f"float accuracy (PyTorch):          {float_acc:.2%}")
    say(f"int8 accuracy (generated C, host): {int8_acc:.2%}   top-1 agreement with float: {agreement:.2%}")
    say(f"generated C:    {outdir / 'digits'}/digits.c, digits.h, digits_weights.c")
    say(f"memory profile: {png}")
    result = {"float_accuracy": float_acc, "int8_accuracy": int8_acc, "agreement": agreement,
              "arena_bytes": plan.arena_size, "png": str(png), "plan": plan}
    if training:
        from .training_demo import run_training_demo

        result["training"] = run_training_demo(outdir / "training", quiet=quiet)
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mcuforge.tools.demo", description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default="out/demo", help="output directory (default out/demo)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--no-training", action="store_true", help="skip the on-device training part")
    args = ap.parse_args(argv)
    run_demo(Path(args.output), epochs=args.epochs, training=not args.no_training)
    return 0


if __name__ == "__main__":
    sys.exit(main())
