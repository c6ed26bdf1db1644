"""int8 against 16x8: a keyword-spotting DS-CNN compiled both ways.

The zoo's DS-CNN (MLPerf Tiny KWS shape, width 32, 49x10 MFCC in, 12
classes) is trained in float on the espeak-ng keyword set
(``mcuforge datasets keywords``; built into out/keywords.npz when absent;
the test split is speakers never heard in training). The same float network
is then quantized by mcuforge's PTQ twice, on the same calibration clips:
int8 (default) and 16x8 (``activations="int16"``: int16 activations, int8
weights, int64 biases), and compiled with both kernel sets.

Measured per build:

* accuracy on the held-out split of the float network (PyTorch) and of the
  generated C (host gcc), and how often the C's class equals the float one;
* the mean |error| of the C's dequantized logits against the float logits;
* arena (planned) and flash (weights + code, read back from a linked
  Cortex-M4 ELF, -Os: ``CompiledModel.elf_memory()``);
* Cortex-M4 cycles of one invoke (traced under QEMU, priced with the M4 TRM
  table; docs/speed.md) and instructions.

Writes bench/results/int16.json and .md and the table between the
``<!-- bench:int16:... -->`` markers of docs/benchmarks.md.

    .venv/bin/python bench/int16.py [--epochs 20] [--data out/keywords.npz]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import ROOT, write_results


def load_keywords(path: Path):
    from mcuforge.datasets import keywords as kw

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = kw.build(kw.Recipe(seed=0))
        np.savez(path, **arrays)
    with np.load(path) as f:
        return f["x"].astype(np.float32), f["y"].astype(np.int64), f["x_val"].astype(np.float32), \
            f["y_val"].astype(np.int64)


def measure(net, name: str, activations: str, kernels: str, calib, x_val, y_val, float_logits, workdir: Path) -> dict:
    import mcuforge
    from mcuforge.quantize import dequantize_values, quantize_values
    from mcuforge.tools import cycles

    t = time.monotonic()
    c = mcuforge.compile(net, np.zeros((1,) + x_val.shape[1:], np.float32), calib, activations=activations,
                         kernels=kernels, name=name, out=workdir / f"{activations}-{kernels}")
    codegen = time.monotonic() - t
    out_t = c.plan.graph.tensors[c.plan.outputs[0]]
    q = c.run(x_val)
    logits = dequantize_values(q, out_t.quant).reshape(len(x_val), -1)
    pred = logits.argmax(1)
    mem = c.elf_memory()
    in_t = c.plan.graph.tensors[c.plan.input]
    x0 = quantize_values(x_val[:1].transpose(0, 2, 3, 1), in_t.quant, in_t.dtype)  # the IR's channels last
    traced = cycles.run(c.plan, c.out, x0, "qemu-cortex-m4", workdir=workdir / f"cycles-{activations}-{kernels}")
    return {
        "activations": activations, "kernels": kernels,
        "c_accuracy": round(float((pred == y_val).mean()), 4),
        "agrees_with_float": round(float((pred == float_logits.argmax(1)).mean()), 4),
        "mean_abs_logit_error": round(float(np.mean(np.abs(logits - float_logits))), 5),
        "arena_bytes": c.arena_size, "flash_bytes": mem["flash_bytes"],
        "weights_bytes": mem["weights_bytes"], "code_bytes": mem["code_bytes"],
        "m4_cycles": round(traced.total.cycles), "m4_instructions": traced.total.instructions,
        "macs": sum(s.macs for s in c.plan.steps), "codegen_seconds": round(codegen, 2),
        "kernels_used": sorted({s.kernel for s in c.plan.steps}),
    }


def markdown(rows: list[dict], head: dict) -> str:
    lines = [f"DS-CNN (zoo `dscnn`, {head['macs']:,} MACs), float accuracy {head['float_accuracy']:.2%} on "
             f"{head['held_out']} held-out clips ({head['train']} training clips, {head['epochs']} epochs)", "",
             "| activations | kernels | C accuracy | = float class | mean abs logit error | arena (B) | "
             "flash M4 (B) | of which weights (B) | Cortex-M4 cycles | instructions |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {'16x8' if r['activations'] == 'int16' else 'int8'} | {r['kernels']} | "
                     f"{r['c_accuracy']:.2%} | {r['agrees_with_float']:.2%} | {r['mean_abs_logit_error']:.4f} | "
                     f"{r['arena_bytes']:,} | {r['flash_bytes']:,} | {r['weights_bytes']:,} | "
                     f"{r['m4_cycles']:,} | {r['m4_instructions']:,} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "out" / "keywords.npz"))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--calibration", type=int, default=256, help="training clips used for calibration")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    from mcuforge.nas.measure import train
    from mcuforge.zoo import ZOO

    x, y, x_val, y_val = load_keywords(Path(args.data))
    net, _example = ZOO["dscnn"](seed=args.seed)
    t = time.monotonic()
    train(net, x, y, args.epochs, 3e-3, args.seed)
    net.eval()
    print(f"trained {args.epochs} epochs in {time.monotonic() - t:.0f} s", file=sys.stderr)
    with torch.no_grad():
        float_logits = net(torch.from_numpy(x_val)).numpy()
    float_acc = float((float_logits.argmax(1) == y_val).mean())
    calib = x[np.random.default_rng(args.seed).permutation(len(x))[:args.calibration]]
    rows = []
    with tempfile.TemporaryDirectory(prefix="mcuforge-bench-int16-") as tmp:
        for activations in ("int8", "int16"):
            for kernels in ("portable", "arm-dsp"):
                r = measure(net, "kws", activations, kernels, calib, x_val, y_val, float_logits, Path(tmp))
                print(r, file=sys.stderr)
                rows.append(r)
    head = {"float_accuracy": round(float_acc, 4), "held_out": len(y_val), "train": len(y), "epochs": args.epochs,
            "macs": rows[0]["macs"], "calibration_clips": len(calib)}
    table = markdown(rows, head)
    write_results("int16", [{"model": "dscnn", **head}, *rows], table, "int16")
    return 0


if __name__ == "__main__":
    sys.exit(main())
