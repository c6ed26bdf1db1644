"""MLPerf Tiny benchmark: mcuforge against TFLM on the four int8 reference models.

For each model in ../shared/models (vww_96_int8, pretrainedResnet_quant,
kws_ref_model, ad01_int8; never copied into this repository), layer by layer:

* mcuforge's arena (``<NAME>_ARENA_SIZE``: activations + scratch);
* TFLM's arena, activations + persistent, as its recording allocator prints
  it (``print_allocations()`` writes to stderr and has no getter: file
  descriptor 2 is captured around the call);
* the largest single op's inputs + output (a lower bound for any
  layer-by-layer schedule);
* flash: weights + code of the Cortex-M4 objects (arm-none-eabi-gcc -Os,
  .text + .rodata + .data), next to the .tflite file size;
* codegen time (best of 3 compiles, model file to C);
* the output bytes of the generated C (host gcc) against TFLM on 20 seeded
  random inputs.

Writes bench/results/mlperf_tiny.json and .md and refreshes the table in docs/benchmarks.md
between ``<!-- bench:mlperf:begin -->`` and ``<!-- bench:mlperf:end -->``.

    .venv/bin/python bench/mlperf_tiny.py
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, flash_bytes, write_results  # noqa: E402

MODELS_DIR = ROOT.parent / "shared" / "models"
# (key, file, task, layer-by-layer arena target in bytes, strictly below it?)
MODELS = [
    ("vww", "vww_96_int8.tflite", "visual wake words, MobileNetV1-0.25", 55_296, False),
    ("ic", "pretrainedResnet_quant.tflite", "image classification, ResNet-8", 49_152, False),
    ("kws", "kws_ref_model.tflite", "keyword spotting, DS-CNN", 16_000, False),
    ("ad", "ad01_int8.tflite", "anomaly detection, FC autoencoder", 3_984, True),  # below TFLM's arena
]
N_INPUTS = 20


def capture_fd2(fn) -> str:
    """Run fn() and return what it (or native code) wrote to file descriptor 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            fn()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return tmp.read().decode("utf-8", "replace")


def tflm_arena(path: Path, x: np.ndarray) -> dict:
    """TFLM's arena after one invoke, from its recording allocator's printout."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_file(str(path), arena_size=1 << 21)
    interpreter.set_input(x[None], 0)
    interpreter.invoke()
    text = capture_fd2(interpreter.print_allocations)

    def field(what: str) -> int:
        m = re.search(rf"Arena allocation {what} (\d+) bytes", text)
        if m is None:
            raise RuntimeError(f"no 'Arena allocation {what}' in TFLM's print_allocations output:\n{text}")
        return int(m.group(1))

    return {"total": field("total"), "activations": field("head"), "persistent": field("tail")}


def tflm_outputs(path: Path, xs: np.ndarray) -> np.ndarray:
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_file(str(path), arena_size=1 << 21)
    outs = []
    for x in xs:
        interpreter.set_input(x[None], 0)
        interpreter.invoke()
        outs.append(np.asarray(interpreter.get_output(0)).reshape(-1).copy())
    return np.stack(outs)


def measure(key: str, fname: str, task: str, target: int, strict: bool, workdir: Path) -> dict:
    return measure_file(key, MODELS_DIR / fname, fname, task, workdir, target, strict)


def measure_file(key: str, path: Path, label: str, task: str, workdir: Path, target: int | None = None,
                 strict: bool = False) -> dict:
    """Compile the int8 TFLite file `path` (best of 3 codegen times), run the C on the host for
    N_INPUTS seeded inputs against TFLM, and measure both arenas. `target` None: the largest op."""
    from mcuforge.tools import hostrun
    from mcuforge.tools.compare import random_inputs
    from mcuforge.config import BuildConfig
    from mcuforge.pipeline import compile_model
    from mcuforge.plan import largest_op_bytes

    out = workdir / key
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        plan = compile_model(path, BuildConfig(name=key), out)
        times.append(time.perf_counter() - t0)
    xs = random_inputs(plan, N_INPUTS, seed=sum(map(ord, key)))
    exe = hostrun.build(plan, out, workdir / f"{key}_host")
    got = hostrun.run(plan, exe, xs)[0].reshape(len(xs), -1)
    want = tflm_outputs(path, xs)
    equal = int(sum(np.array_equal(got[i], want[i]) for i in range(len(xs))))
    tflm = tflm_arena(path, xs[0])
    largest = largest_op_bytes(plan)
    if target is None:
        target = largest
    x_t, y_t = plan.graph.tensors[plan.input], plan.graph.tensors[plan.outputs[0]]
    return {
        "model": key,
        "file": label,
        "task": task,
        "input": list(x_t.shape),
        "output": list(y_t.shape),
        "layers": len(plan.steps),
        "macs": plan.macs,
        "arena_bytes": plan.arena_size,
        "arena_target": f"{'<' if strict else '<='} {target}",
        "arena_target_met": plan.arena_size < target if strict else plan.arena_size <= target,
        "tflm_arena_bytes": tflm["total"],
        "tflm_activation_bytes": tflm["activations"],
        "tflm_persistent_bytes": tflm["persistent"],
        "largest_op_bytes": largest,
        "weight_bytes": plan.weight_bytes,
        "flash_bytes_cortex_m4": flash_bytes(out, key),
        "model_file_bytes": path.stat().st_size,
        "codegen_seconds": round(min(times), 3),
        "inputs_checked": len(xs),
        "inputs_equal_to_tflm": equal,
    }


def markdown(rows: list[dict]) -> str:
    head = ("| model | mcuforge arena (B) | TFLM arena (B): activations + persistent | largest op in+out (B) | "
            "target (B) | flash M4 (B) | .tflite file (B) | codegen (s) | C = TFLM |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    lines = []
    for r in rows:
        flash = f"{r['flash_bytes_cortex_m4']:,}" if r["flash_bytes_cortex_m4"] is not None else "n/a"
        op, value = r["arena_target"].split()
        target = f"{'≤' if op == '<=' else '<'} {int(value):,}"
        lines.append(
            f"| {r['model']} | {r['arena_bytes']:,} | {r['tflm_arena_bytes']:,} = {r['tflm_activation_bytes']:,} + "
            f"{r['tflm_persistent_bytes']:,} | {r['largest_op_bytes']:,} | {target} "
            f"{'met' if r['arena_target_met'] else 'MISSED'} | {flash} | {r['model_file_bytes']:,} | "
            f"{r['codegen_seconds']} | {r['inputs_equal_to_tflm']}/{r['inputs_checked']} |")
    return head + "\n".join(lines) + "\n"


def main() -> int:
    missing = [m[1] for m in MODELS if not (MODELS_DIR / m[1]).is_file()]
    if missing:
        print(f"bench/mlperf_tiny.py: skipped, {', '.join(missing)} not in {MODELS_DIR} "
              f"(see ../shared/models/README.md)")
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="mcuforge-mlperf-") as tmp:
        for key, fname, task, target, strict in MODELS:
            row = measure(key, fname, task, target, strict, Path(tmp))
            print(f"{key}: arena {row['arena_bytes']} B (TFLM {row['tflm_arena_bytes']} B, largest op "
                  f"{row['largest_op_bytes']} B), flash {row['flash_bytes_cortex_m4']} B, "
                  f"{row['inputs_equal_to_tflm']}/{row['inputs_checked']} outputs equal to TFLM", flush=True)
            rows.append(row)
    write_results("mlperf_tiny", rows, markdown(rows), "mlperf")
    missed = [r["model"] for r in rows if not r["arena_target_met"]]
    unequal = [r["model"] for r in rows if r["inputs_equal_to_tflm"] != r["inputs_checked"]]
    return 1 if missed or unequal else 0


if __name__ == "__main__":
    sys.exit(main())
