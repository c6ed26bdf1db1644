"""Training memory benchmark: peak training SRAM per update policy, PyTorch
float training memory at batch 1, Cortex-M4 instructions per training step.

For MobileNetV2-0.35 at 96x96 (10 classes, random weights) and two zoo
models, each policy is compiled and its peak training SRAM taken from the
plan: the arena (covering forward + backward) + the trained state in RAM
(biases, int8 filter copies and the int8 fractions of their master weights; SGD has no optimizer
state). Policies:

* full: every weight and bias, without operator reordering (every update
  kept until the backward pass ends, as a framework that computes all
  gradients first); full + reordering;
* last-2-blocks: weights and biases of the layers of the last two blocks and
  the classifier head;
* bias: the biases of the last 4 weight layers (the default);
* sparse: biases of the last 8 weight layers + the classifier's weights + a
  quarter of the channels of the last block's project conv and of the head
  conv, without reordering; sparse + reordering; for MobileNetV2 also a
  smaller sparse policy (SMALL_SPARSE) that fits the paper's 141 KB;
* "+ patch": the same policy with --schedule patch (the layers below the
  lowest one the backward pass reaches run tile by tile): for MobileNetV2
  bias, sparse (with and without reordering), the default sparse policy,
  SMALL_SPARSE and a wider PATCH_SPARSE that fits 141,000 B only this way;
  for the zoo models sparse + reordering;
* default sparse (zoo models): what --training sparse gives without options
  (biases of the last 4 weight layers, weights of the last two), without and
  with reordering.

PyTorch: the float model in train mode, one SGD step at batch 1, in a fresh
process: the parameters + their gradients + the tensors autograd saves for
the backward pass (counted with a saved-tensors hook); a lower bound of what
the step holds (allocator slack and temporaries come on top).
QEMU: instructions per training step on Cortex-M4 (mps2-an386, -icount), the
second of two steps. Writes bench/results/training.json and .md and the
table in docs/training.md.

    .venv/bin/python bench/training.py [--no-qemu]
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

# model -> (factory, weight layers in the last two blocks + head)
MODELS = {
    "mobilenetv2_035_96": ("mobilenet_v2", 8),
    "mbv2_blocks": ("mbv2_blocks", 7),
    "resnet8": ("resnet8", 7),
}


def make(name: str):
    from mcuforge import zoo

    if name == "mobilenetv2_035_96":
        return zoo.mobilenet_v2(width=0.35, resolution=96, num_classes=10)
    return zoo.ZOO[name]()


# MobileNetV2-0.35: a sparse policy small enough for the paper's 141 KB layer by layer (the forward
# pass alone then needs a 126 KiB arena): biases of the last 4 weight layers + half the channels of
# the last block's depthwise weights.
SMALL_SPARSE = {"mobilenetv2_035_96": dict(training="sparse", train_bias_layers=4, train_weight_layers=(-4,),
                                           train_weight_ratio=(0.5,))}
# ... and one that fits 141,000 B only with the patch-based forward prefix: biases of the last 8
# weight layers + the whole weights of the last two blocks' depthwise convs and of the classifier.
PATCH_SPARSE = {"mobilenetv2_035_96": dict(training="sparse", train_bias_layers=8, train_weight_layers=(-7, -4, -1))}
PATCH = dict(schedule="patch")  # the layers below the lowest one the backward pass reaches run on patches


def policies(name: str, last2: int) -> dict[str, dict]:
    last = tuple(range(-last2, 0))
    sparse = dict(training="sparse", train_bias_layers=8, train_weight_layers=(-4, -2, -1),
                  train_weight_ratio=(0.25, 0.25, 1.0))
    rows = {
        "full": dict(training="full", train_reorder=False),
        "full + reordering": dict(training="full"),
        "last-2-blocks": dict(training="sparse", train_bias_layers=last2, train_weight_layers=last),
        "bias": dict(training="bias"),
        "sparse": dict(sparse, train_reorder=False),
        "sparse + reordering": dict(sparse),
    }
    if name in SMALL_SPARSE:
        small, wide = SMALL_SPARSE[name], PATCH_SPARSE[name]
        rows.update({
            "sparse (141 KB) + reordering": small,
            "bias + patch": dict(training="bias", **PATCH),
            "sparse + patch": dict(sparse, train_reorder=False, **PATCH),
            "sparse + reordering + patch": dict(sparse, **PATCH),
            "default sparse + reordering": dict(training="sparse"),
            "default sparse + reordering + patch": dict(training="sparse", **PATCH),
            "sparse (141 KB) + patch": dict(small, train_reorder=False, **PATCH),
            "sparse (141 KB) + reordering + patch": dict(small, **PATCH),
            "sparse (141 KB, patch) + patch": dict(wide, train_reorder=False, **PATCH),
            "sparse (141 KB, patch) + reordering + patch": dict(wide, **PATCH),
        })
    else:
        rows.update({
            "sparse + reordering + patch": dict(sparse, **PATCH),
            # what --training sparse gives without options: the biases of the last 4 weight layers and the
            # weights of the last two (DESIGN.md); the bench's sparse policy above is MobileNetV2's, which
            # on these shallower models reaches back into their high-resolution layers
            "default sparse": dict(training="sparse", train_reorder=False),
            "default sparse + reordering": dict(training="sparse"),
        })
    return rows


TORCH_PROBE = r"""
import json, resource, sys, torch
sys.path.insert(0, sys.argv[1])
torch.set_num_threads(1)
from training import make
module, x = make(sys.argv[2])
with torch.no_grad():
    module.eval()(x)  # load and initialise the kernels before measuring
module.train()
opt = torch.optim.SGD(module.parameters(), lr=0.01)
param_storages = {p.untyped_storage().data_ptr() for p in module.parameters()}
saved = {}  # storage -> bytes of every tensor autograd keeps for the backward pass (not the parameters)


def pack(t):
    st = t.untyped_storage()
    if st.data_ptr() not in param_storages:
        saved[st.data_ptr()] = st.nbytes()
    return t


before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
opt.zero_grad(set_to_none=True)
with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
    loss = torch.nn.functional.cross_entropy(module(x), torch.tensor([0]))
loss.backward()
opt.step()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
params = sum(p.numel() * p.element_size() for p in module.parameters())
grads = sum(p.grad.numel() * p.grad.element_size() for p in module.parameters() if p.grad is not None)
print(json.dumps({"params_bytes": params, "grad_bytes": grads, "saved_bytes": sum(saved.values()),
                  "rss_growth_bytes": (after - before) * 1024}))
"""


def torch_training_bytes(name: str) -> dict:
    """Measured in a fresh process, one SGD step at batch 1: the parameters,
    their gradients and the tensors autograd saves for the backward pass
    (counted by a saved-tensors hook, each storage once). That is what a float
    training step must hold at least; allocator and temporaries come on top
    (the process's peak resident memory growth over the step is kept in the
    JSON as rss_growth_bytes, but it depends on what the allocator already
    holds, so it is not the table's figure)."""
    res = subprocess.run([sys.executable, "-c", TORCH_PROBE, str(Path(__file__).resolve().parent), name],
                         capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(res.stderr)
    m = json.loads(res.stdout.strip().splitlines()[-1])
    return {"torch_params_bytes": m["params_bytes"], "torch_grad_bytes": m["grad_bytes"],
            "torch_saved_activation_bytes": m["saved_bytes"], "torch_step_rss_growth_bytes": m["rss_growth_bytes"],
            "torch_training_bytes": m["params_bytes"] + m["grad_bytes"] + m["saved_bytes"]}


def measure(name: str, work: Path, use_qemu: bool) -> list[dict]:
    from mcuforge.tools import qemu
    from mcuforge.config import BuildConfig
    from mcuforge.frontends.torch import from_torch
    from mcuforge.ir import McuforgeError
    from mcuforge.pipeline import compile_model
    from mcuforge.tools import harness

    module, example = make(name)
    graph = from_torch(module, example, name="m")
    calib = work / f"{name}_calib.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((8,) + tuple(example.shape[1:])).astype(np.float32))
    torch_mem = torch_training_bytes(name)
    rows = []
    for label, opts in policies(name, MODELS[name][1]).items():
        out = work / (name + "_" + re.sub(r"[^A-Za-z0-9]+", "_", label))  # a plain directory name for the linker
        plan = compile_model(graph, BuildConfig(name="m", calibration=str(calib), **opts), out)
        tp = plan.training
        row = {"model": name, "policy": label, "description": tp.policy.describe(tp.weight_layer_names),
               "arena_bytes": plan.arena_size, "state_bytes": tp.state_bytes, "sram_bytes": plan.sram_bytes(),
               "trained_parameters": sum(t.out_c * t.bias + t.trained_weights for t in tp.layers), **torch_mem}
        if plan.patch is not None:
            st = plan.patch
            row["patch"] = {"split": st.split, "grid": st.grid, "mac_overhead": round(st.mac_overhead, 4),
                            "layer_arena_bytes": st.layer_arena, "lowest_reached_layer": tp.lowest_reached}
        if use_qemu and not qemu.tools_missing():
            try:
                elf = harness.build_qemu(plan, out, out / "m4", "qemu-cortex-m4")
                shape = plan.graph.tensors[plan.input].shape[1:]
                xs = np.random.default_rng(1).integers(-128, 128, (2,) + shape).astype(np.int8)
                run = harness.run_qemu(plan, elf, xs, [1, 2], "qemu-cortex-m4", timeout=3000)
                row["cortex_m4_instructions_per_step"] = run.instructions()[-1]
            except McuforgeError as err:
                row["cortex_m4_error"] = str(err)[:200]
        rows.append(row)
        print(json.dumps(row), flush=True)
    full = next(r for r in rows if r["policy"] == "full")["sram_bytes"]
    for r in rows:
        r["reduction_vs_full"] = round(full / r["sram_bytes"], 2)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| model | policy | arena B | trained state B | peak SRAM B | vs full | PyTorch float training B "
             "(batch 1) | Cortex-M4 instructions / step |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ins = r.get("cortex_m4_instructions_per_step")
        policy = r["policy"]
        if r.get("patch"):
            pt = r["patch"]
            policy += f" ({pt['split']} layer{'s' if pt['split'] > 1 else ''} on {pt['grid']}x{pt['grid']} patches)"
        lines.append(f"| {r['model']} | {policy} | {r['arena_bytes']:,} | {r['state_bytes']:,} | "
                     f"{r['sram_bytes']:,} | {r['reduction_vs_full']}x | {r['torch_training_bytes']:,} | "
                     f"{ins:,} |" if ins else f"| {r['model']} | {policy} | {r['arena_bytes']:,} | "
                     f"{r['state_bytes']:,} | {r['sram_bytes']:,} | {r['reduction_vs_full']}x | "
                     f"{r['torch_training_bytes']:,} | n/a |")
    by = {(r["model"], r["policy"]): r for r in rows}
    notes = []
    for m in dict.fromkeys(r["model"] for r in rows):
        sp, spr = by[(m, "sparse")], by[(m, "sparse + reordering")]
        fu, fur = by[(m, "full")], by[(m, "full + reordering")]
        notes.append(
            f"{m}: sparse + reordering needs {spr['sram_bytes'] / 1024:.1f} KiB, {spr['reduction_vs_full']}x below "
            f"full ({fu['sram_bytes'] / spr['sram_bytes']:.1f}x below full, {fur['sram_bytes'] / spr['sram_bytes']:.1f}x "
            f"below full + reordering); reordering alone: peak SRAM {sp['sram_bytes'] / spr['sram_bytes']:.2f}x "
            f"(sparse), {fu['sram_bytes'] / fur['sram_bytes']:.2f}x (full); arena (activations + gradients, what "
            f"reordering acts on) {sp['arena_bytes'] / spr['arena_bytes']:.2f}x (sparse), "
            f"{fu['arena_bytes'] / fur['arena_bytes']:.2f}x (full); PyTorch float training at batch 1 "
            f"{fu['torch_training_bytes'] / spr['sram_bytes']:.1f}x above sparse + reordering")
        ds, dsr = by.get((m, "default sparse")), by.get((m, "default sparse + reordering"))
        if ds is not None and dsr is not None:
            notes.append(f"{m}: default sparse + reordering needs {dsr['sram_bytes']:,} B, {dsr['reduction_vs_full']}x "
                         f"below full; reordering alone {ds['sram_bytes'] / dsr['sram_bytes']:.2f}x on peak SRAM, "
                         f"{ds['arena_bytes'] / dsr['arena_bytes']:.2f}x on the arena")
        notes += _patch_notes(m, by)
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def _patch_notes(m: str, by: dict) -> list[str]:
    """The patch-based rows of a model: what the patch stage saves, reordering
    alone on the same schedule, and which policies fit 141,000 B."""
    notes = []
    for base in ("sparse", "sparse (141 KB)", "sparse (141 KB, patch)"):
        unordered, ordered = by.get((m, f"{base} + patch")), by.get((m, f"{base} + reordering + patch"))
        if unordered is None or ordered is None:
            continue
        notes.append(f"{m}, {base}, both with patches: reordering alone {unordered['sram_bytes'] / ordered['sram_bytes']:.2f}x "
                     f"on peak SRAM ({unordered['sram_bytes']:,} -> {ordered['sram_bytes']:,} B), "
                     f"{unordered['arena_bytes'] / ordered['arena_bytes']:.2f}x on the arena "
                     f"({unordered['arena_bytes']:,} -> {ordered['arena_bytes']:,} B)")
    for base in ("bias", "sparse + reordering", "default sparse + reordering", "sparse (141 KB) + reordering"):
        layer, patch = by.get((m, base)), by.get((m, f"{base} + patch"))
        if layer is not None and patch is not None and patch.get("patch"):
            notes.append(f"{m}, {base}: the patch-based forward prefix takes the arena from {layer['arena_bytes']:,} to "
                         f"{patch['arena_bytes']:,} B ({layer['arena_bytes'] / patch['arena_bytes']:.2f}x), peak SRAM "
                         f"{layer['sram_bytes']:,} -> {patch['sram_bytes']:,} B")
    fits = [r for (model, _), r in by.items() if model == m and r["sram_bytes"] <= 141_000 and r["state_bytes"] > 0]
    if m in SMALL_SPARSE:
        names = ", ".join(f"{r['policy']} ({r['sram_bytes']:,} B)" for r in sorted(fits, key=lambda r: r["sram_bytes"]))
        notes.append(f"{m}: within 141,000 B: {names or 'none'}")
    return notes


def rerender(torch_again: bool = False) -> None:
    """Table and docs/training.md again from results/training.json (no measuring but,
    with torch_again, the PyTorch numbers)."""
    from _common import RESULTS

    rows = json.loads((RESULTS / "training.json").read_text())
    if torch_again:
        fresh = {m: torch_training_bytes(m) for m in dict.fromkeys(r["model"] for r in rows)}
        for r in rows:
            r.update(fresh[r["model"]])
    write_results("training", rows, table(rows), "training")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--rerender", action="store_true", help="only rewrite the table from results/training.json")
    ap.add_argument("--torch-only", action="store_true", help="measure PyTorch again, keep the rest of the JSON")
    args = ap.parse_args(argv)
    if args.rerender or args.torch_only:
        rerender(torch_again=args.torch_only)
        return 0
    rows = []
    names = args.models.split(",")
    with tempfile.TemporaryDirectory(prefix="mcuforge-bench-training-") as tmp:
        for name in names:
            rows += measure(name, Path(tmp), not args.no_qemu)
    from _common import RESULTS

    old = RESULTS / "training.json"
    if set(names) != set(MODELS) and old.is_file():  # keep the other models' measured rows
        kept = [r for r in json.loads(old.read_text()) if r["model"] not in names]
        rows = sorted(kept + rows, key=lambda r: list(MODELS).index(r["model"]))
    write_results("training", rows, table(rows), "training")
    return 0


if __name__ == "__main__":
    sys.exit(main())
