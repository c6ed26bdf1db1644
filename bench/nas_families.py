"""TinyNAS over the family space against honest baselines, same data, same
budget, same training recipe.

Digits (scikit-learn 8x8, 75% train / 25% test, stratified, seed 0) and the
espeak-ng keyword set (`mcuforge datasets keywords`; test = speakers never
heard in training). The search sees only the training part: it scores its
candidates on a held-out fifth of it. Every network reported is then trained
from scratch with the same recipe (Adam 3e-3, cosine, batch 64, the same
epochs) on the whole training part, compiled under the budget, its Cortex-M4
ELF checked, and scored on the test part by the generated int8 C on the host.

Baselines:
* digits: the hand-drawn CNN (conv 3x3 x16 -> max-pool -> conv 3x3 x24 ->
  max-pool -> flatten -> linear) and the MLP 64-32-10;
* keywords: the MLPerf Tiny DS-CNN scaled in width (the widest that fits);
* both: random search over all families, widths and scales with the same
  number of evaluated candidates and the same proxy training.

    .venv/bin/python bench/nas.py --space families [--quick]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    return train_test_split(x, d.target.astype(np.int64), test_size=0.25, random_state=0, stratify=d.target)


def keywords(path: Path, speakers: int, copies: int):
    from mcuforge.datasets import keywords as kw

    if not path.exists():
        arrays = kw.build(kw.Recipe(seed=0, speakers=speakers, copies=copies))
        np.savez(path, **arrays)
    with np.load(path) as f:
        return f["x"], f["x_val"], f["y"], f["y_val"]


def inner_split(x, y, classes, seed=0):
    from mcuforge.nas.designsearch import Split

    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(y))
    n_val = len(y) // 5
    return Split(x[idx[n_val:]], y[idx[n_val:]], x[idx[:n_val]], y[idx[:n_val]], classes)


def mlp(input_shape, classes, hidden=32):
    import torch

    n = int(np.prod(input_shape))
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(n, hidden), torch.nn.ReLU(),
                               torch.nn.Linear(hidden, classes))


def evaluate(name, net_or_design, full, budget, epochs, log, seed=0, extra=None) -> dict:
    """Train from scratch with the recipe, compile, check-elf, int8 C accuracy on the test split."""
    import torch

    from mcuforge.nas.designsearch import finish
    from mcuforge.nas.families import build
    from mcuforge.nas.measure import accuracy, train

    torch.manual_seed(seed)
    net = build(net_or_design) if hasattr(net_or_design, "stages") else net_or_design
    t = time.monotonic()
    train(net, full.x_train, full.y_train, epochs, 3e-3, seed)
    float_acc = accuracy(net, full.x_val, full.y_val)
    with tempfile.TemporaryDirectory(prefix="mcuforge-bench-nasf-") as tmp:
        try:
            out = finish(net, full.input_shape, full, budget, Path(tmp))
        except Exception as err:  # over budget: reported, not hidden
            out = {"error": f"{err.__class__.__name__}: {err}"}
    out.pop("elf", None)
    row = dict(name=name, float_accuracy=float_acc, train_seconds=round(time.monotonic() - t, 1), **out,
               **(extra or {}))
    log(f"  {name}: float {float_acc:.2%}, " + (f"int8 C {row['int8_accuracy']:.2%}, {row['macs']:,} MACs, "
                                                 f"arena {row['arena_bytes']} B, RAM {row['sram_bytes']} B, "
                                                 f"flash {row['flash_bytes']} B, fits {row['fits']}"
                                                 if "int8_accuracy" in row else row["error"]))
    return row


def random_search(split, budget, candidates, proxy_epochs, seed, families, widths, log):
    """Random designs from every family, width and scale; the same evaluation as the search."""
    from mcuforge.nas.designsearch import measure_design, train_design
    from mcuforge.nas.families import FamilySpace, scales_for
    from mcuforge.nas.measure import accuracy

    rng = random.Random(f"random-{seed}")
    best, evaluated, trained, t = None, 0, 0, time.monotonic()
    while trained < candidates and evaluated < 6 * candidates:  # the search's rule: fitting ones count
        space = FamilySpace(rng.choice(families), split.input_shape, split.classes, rng.choice(widths),
                            rng.choice(scales_for(split.input_shape)))
        d = space.sample(rng)
        row = measure_design(d, budget, split.x_train[:32])
        evaluated += 1
        if row["fits"]:
            trained += 1
            acc = accuracy(train_design(d, split, proxy_epochs, seed), split.x_val, split.y_val)
            if best is None or acc > best[0]:
                best = (acc, d)
    log(f"  random search: {trained} trained of {evaluated} proposed in {time.monotonic() - t:.0f} s, best proxy "
        f"{best[0]:.2%}" if best else "  random search: nothing fitted")
    return best, time.monotonic() - t


def run_task(task, x_train, x_test, y_train, y_test, classes, budget, args, log) -> dict:
    from mcuforge.nas.designsearch import Split, measure_design, search
    from mcuforge.nas.families import FAMILIES, ds_cnn, hand_cnn

    full = Split(x_train, y_train, x_test, y_test, classes)
    split = inner_split(x_train, y_train, classes)
    rows = []
    log(f"{task} at {budget.sram // 1024}K/{budget.flash // 1024}K: search")
    t = time.monotonic()
    res = search(split, budget, seed=0, widths=tuple(args.widths), scales=None, space_samples=args.space_samples,
                 candidates=args.candidates, proxy_epochs=args.proxy_epochs, final_epochs=1,
                 say=(lambda m: log("    " + m)) if args.verbose else None)
    search_seconds = time.monotonic() - t
    rows.append(evaluate("searched", res.design, full, budget, args.epochs, log,
                         extra={"design": res.design.to_dict(), "search_seconds": round(search_seconds, 1),
                                "space_table": res.choice.table,
                                "chosen": [res.choice.family, res.choice.width, res.choice.scale],
                                "candidates": len(res.evaluated)}))
    if task == "digits":
        rows.append(evaluate("hand CNN 16-24", hand_cnn(full.input_shape, classes), full, budget, args.epochs, log))
        rows.append(evaluate("MLP 64-32-10", mlp(full.input_shape, classes), full, budget, args.epochs, log))
    else:
        for w in sorted(args.dscnn_widths, reverse=True):  # the widest DS-CNN that fits
            d = ds_cnn(full.input_shape, classes, w)
            if measure_design(d, budget, split.x_train[:32])["fits"]:
                rows.append(evaluate(f"DS-CNN x{w}", d, full, budget, args.epochs, log))
                break
        else:
            log("  no width of the DS-CNN fits")
    best, seconds = random_search(split, budget, args.candidates, args.proxy_epochs, 0, tuple(FAMILIES),
                                  tuple(args.widths), log)
    if best:
        rows.append(evaluate("random search", best[1], full, budget, args.epochs, log,
                             extra={"design": best[1].to_dict(), "search_seconds": round(seconds, 1)}))
    return {"task": task, "budget": [budget.sram, budget.flash], "rows": rows}


def markdown(results) -> str:
    lines = ["| task | budget (SRAM/flash) | model | int8 C acc. | float acc. | MACs | arena | RAM (ELF) | flash (ELF) | "
             "search time |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        b = f"{r['budget'][0] // 1024}K/{r['budget'][1] // 1024}K"
        for row in r["rows"]:
            if "int8_accuracy" not in row:
                lines.append(f"| {r['task']} | {b} | {row['name']} | {row['error']} | | | | | | |")
                continue
            st = f"{row['search_seconds']:.0f} s" if "search_seconds" in row else ""
            lines.append(f"| {r['task']} | {b} | {row['name']} | {row['int8_accuracy']:.2%} | "
                         f"{row['float_accuracy']:.2%} | {row['macs']:,} | {row['arena_bytes']:,} | "
                         f"{row['sram_bytes']:,} | {row['flash_bytes']:,} | {st} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import torch

    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["digits", "keywords"])
    ap.add_argument("--digits-budgets", nargs="+", default=["2K/16K"])
    ap.add_argument("--keywords-budgets", nargs="+", default=["8K/64K"])
    ap.add_argument("--epochs", type=int, default=60, help="training epochs of every reported network")
    ap.add_argument("--keywords-epochs", type=int, default=20)
    ap.add_argument("--space-samples", type=int, default=3)
    ap.add_argument("--candidates", type=int, default=10)
    ap.add_argument("--proxy-epochs", type=int, default=8)
    ap.add_argument("--widths", type=float, nargs="+", default=[0.5, 0.75, 1.0])
    ap.add_argument("--dscnn-widths", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    ap.add_argument("--keywords-data", default=str(ROOT / "out" / "keywords.npz"))
    ap.add_argument("--speakers", type=int, default=256)
    ap.add_argument("--copies", type=int, default=3)
    ap.add_argument("--verbose", action="store_true")
    args, _ = ap.parse_known_args(argv)
    from mcuforge.config import parse_size
    from mcuforge.nas.measure import Budget

    start = time.monotonic()

    def log(m):
        print(f"[{time.monotonic() - start:7.1f}s] {m}", flush=True)

    results = []  # earlier runs' other (task, budget) rows are kept
    previous = RESULTS / "nas_families.json"
    kept = json.loads(previous.read_text())["results"] if previous.exists() else []
    for task in args.tasks:
        if task == "digits":
            data, budgets, epochs = digits(), args.digits_budgets, args.epochs
        else:
            Path(args.keywords_data).parent.mkdir(parents=True, exist_ok=True)
            data, budgets, epochs = keywords(Path(args.keywords_data), args.speakers, args.copies), \
                args.keywords_budgets, args.keywords_epochs
        x_train, x_test, y_train, y_test = data
        classes = int(max(y_train.max(), y_test.max()) + 1)
        for b in budgets:
            sram, flash = (parse_size(v, b) for v in b.split("/"))
            a = argparse.Namespace(**vars(args))
            a.epochs = epochs
            r = run_task(task, x_train, x_test, y_train, y_test, classes, Budget(sram, flash), a, log)
            r["args"] = {k: v for k, v in vars(a).items() if k not in ("tasks", "verbose")}
            results.append(r)
            kept = [k for k in kept if (k["task"], k["budget"]) != (r["task"], r["budget"])] + [r]
            kept.sort(key=lambda k: (k["task"], k["budget"]))
            RESULTS.mkdir(parents=True, exist_ok=True)
            previous.write_text(json.dumps({"results": kept}, indent=2) + "\n")
            (RESULTS / "nas_families.md").write_text(markdown(kept))
    print(markdown(kept))
    return 0


if __name__ == "__main__":
    sys.exit(main())
