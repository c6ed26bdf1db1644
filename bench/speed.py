"""Speed benchmark: instructions per invoke, portable against arm-dsp kernels.

For the MLPerf Tiny models (../shared/models, never copied here), MobileNetV2
0.35 at 96x96 and every zoo model, layer by layer, both kernel sets:

* instructions per invoke on Cortex-M4 (QEMU mps2-an386) and Cortex-M7
  (mps2-an500), arm-none-eabi-gcc -O2, ``-icount shift=0`` (SysTick x 40:
  exactly ``mcuforge run --target``), one seeded random input;
* MACs per instruction (Cortex-M4);
* code bytes (.text of the model's C and the runtime kernels it links, -O2,
  Cortex-M4), constant bytes (weights and tables, .rodata) and the arena
  (scratch included);
* both kernel sets' outputs equal, and equal to the NumPy reference;
* for the MLPerf models, the anchors of issue 9 (TFLM reference kernels,
  TFLM + CMSIS-NN, TinyEngine on the same machine and method) and the
  target: at most 0.8x the best anchor on Cortex-M4.

Writes bench/results/speed.json and .md and the README table between
``<!-- bench:speed:begin -->`` and ``<!-- bench:speed:end -->``.

    .venv/bin/python bench/speed.py [model ...]
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, write_results  # noqa: E402

MODELS_DIR = ROOT.parent / "shared" / "models"
MLPERF = {"vww": "vww_96_int8.tflite", "ic": "pretrainedResnet_quant.tflite", "kws": "kws_ref_model.tflite",
          "ad": "ad01_int8.tflite"}
# Issue 9, Cortex-M4 -O2 instructions per invoke: TFLM reference kernels, TFLM + CMSIS-NN, TinyEngine
# (None: TinyEngine fails to generate working code for IC and KWS).
ANCHORS = {"vww": (100_365_800, 24_101_920, 19_725_760), "ic": (107_377_200, 29_862_000, None),
           "kws": (43_098_160, 7_701_400, None), "ad": (1_953_960, 582_960, 770_360)}
TARGET_FACTOR = 0.8
KERNEL_SETS = ("portable", "arm-dsp")
TARGETS = ("qemu-cortex-m4", "qemu-cortex-m7")


def target_of(key: str) -> int | None:
    anchors = [a for a in ANCHORS.get(key, ()) if a is not None]
    return int(TARGET_FACTOR * min(anchors)) if anchors else None


def sources() -> dict[str, object]:
    """model key -> .tflite path or a zoo (module, example) factory."""
    from mcuforge.zoo import ZOO, mobilenet_v2

    out: dict[str, object] = {k: MODELS_DIR / f for k, f in MLPERF.items() if (MODELS_DIR / f).is_file()}
    out["mobilenetv2_035_96"] = lambda: mobilenet_v2(width=0.35, resolution=96)
    out.update({k: v for k, v in ZOO.items()})
    return out


def compile_one(key: str, src, kernels: str, workdir: Path):
    from mcuforge.config import BuildConfig
    from mcuforge.pipeline import compile_model

    out = workdir / f"{key}-{kernels}"
    if isinstance(src, Path):
        return compile_model(src, BuildConfig(name=key, kernels=kernels), out), out
    from mcuforge.frontends.torch import from_torch

    module, example = src()
    calib = workdir / f"{key}-calibration.npy"
    if not calib.is_file():
        rng = np.random.default_rng(sum(map(ord, key)))
        np.save(calib, rng.standard_normal((8,) + tuple(example.shape[1:])).astype(np.float32))
    graph = from_torch(module, example, name=key)
    return compile_model(graph, BuildConfig(name=key, kernels=kernels, calibration=str(calib)), out), out


def section_bytes(outdir: Path, name: str) -> tuple[int, int]:
    """(code, constants): .text and .rodata of the model's objects, Cortex-M4 -O2."""
    from elftools.elf.elffile import ELFFile

    from mcuforge.codegen.portable import c_sources, include_dirs
    from mcuforge.tools.qemu import ARM_GCC, TARGETS

    code = constants = 0
    with tempfile.TemporaryDirectory() as tmp:
        for src in c_sources(outdir, name):
            obj = Path(tmp) / (src.stem + ".o")
            subprocess.run([ARM_GCC, *TARGETS["qemu-cortex-m4"].cflags, "-O2", "-std=c99", "-ffunction-sections",
                            "-fdata-sections", *[f"-I{d}" for d in include_dirs(outdir)], "-c", str(src),
                            "-o", str(obj)], check=True)
            with open(obj, "rb") as f:
                for sec in ELFFile(f).iter_sections():
                    if sec.name.startswith(".text"):
                        code += sec["sh_size"]
                    elif sec.name.startswith(".rodata"):
                        constants += sec["sh_size"]
    return code, constants


# Kernel classes of the profile breakdown: (label, the arm-dsp functions).
CLASSES = (("pointwise", ("mcf_dsp_conv2d_1x1_s8",)),
           ("depthwise", ("mcf_dsp_depthwise_conv2d_s8", "mcf_dsp_depthwise_conv2d_s8_inplace")))


def by_kernel(plan, out: Path, x: np.ndarray, builddir: Path) -> dict:
    """From a profiled Cortex-M4 run (SysTick around each kernel call, as
    ``mcuforge run --profile``): MACs, instructions and MACs per instruction
    of the 1x1 layers and of the depthwise layers, and the pointwise MACs
    per instruction of each input-channel count K."""
    from mcuforge.tools import qemu

    elf = qemu.build(plan, out, builddir, "qemu-cortex-m4", profile=True)
    _got, stats = qemu.run(plan, elf, x, "qemu-cortex-m4")
    rows, _table = qemu.profile_table(plan, stats)
    result: dict = {}
    for label, functions in CLASSES:
        sel = [r for r in rows if r["function"] in functions]
        macs, instr = sum(r["macs"] for r in sel), sum(r["instructions"] for r in sel)
        result[label] = {"layers": len(sel), "macs": macs, "instructions": instr,
                         "macs_per_instruction": round(macs / instr, 3) if instr else None}
    per_k: dict[int, list[int]] = {}
    for r, s in zip(rows, plan.steps):
        if r["function"] == "mcf_dsp_conv2d_1x1_s8":
            acc = per_k.setdefault(int(s.params["in_c"]), [0, 0])
            acc[0] += r["macs"]
            acc[1] += r["instructions"]
    result["pointwise_by_k"] = {str(k): round(m / n, 3) for k, (m, n) in sorted(per_k.items()) if n}
    return result


def measure(key: str, src, workdir: Path) -> dict:
    from mcuforge.tools import qemu
    from mcuforge import reference
    from mcuforge.codegen.arm_dsp import fallback_layers
    from mcuforge.tools.compare import random_inputs

    row: dict = {"model": key}
    outputs = {}
    for kernels in KERNEL_SETS:
        plan, out = compile_one(key, src, kernels, workdir)
        x = random_inputs(plan, 1, seed=7)
        code, constants = section_bytes(out, key)
        entry = {"arena_bytes": plan.arena_size, "code_bytes": code, "constant_bytes": constants}
        for target in TARGETS:
            elf = qemu.build(plan, out, workdir / f"{key}-{kernels}-{target}", target)
            got, stats = qemu.run(plan, elf, x, target)
            outputs[(kernels, target)] = got[0].reshape(-1)
            entry[f"instructions_{target.split('-')[-1]}"] = stats.instructions[0]
        entry["macs_per_instruction_m4"] = round(plan.macs / entry["instructions_m4"], 3)
        if kernels == "arm-dsp":
            entry["portable_fallback_layers"] = fallback_layers(plan)
            entry["by_kernel_m4"] = by_kernel(plan, out, x, workdir / f"{key}-profile")
        row[kernels] = entry
        row["macs"] = plan.macs
        outputs[("reference", "")] = reference.run(plan, x[0]).outputs[plan.outputs[0]].reshape(-1)
    want = outputs.pop(("reference", ""))
    row["outputs_equal"] = all(np.array_equal(v, want) for v in outputs.values())
    dsp = row["arm-dsp"]
    row["speedup_m4"] = round(row["portable"]["instructions_m4"] / dsp["instructions_m4"], 2)
    row["scratch_bytes"] = dsp["arena_bytes"] - row["portable"]["arena_bytes"]
    if key in ANCHORS:
        tflm, cmsis, tinyengine = ANCHORS[key]
        row["anchors_m4"] = {"tflm_reference": tflm, "tflm_cmsis_nn": cmsis, "tinyengine": tinyengine}
        row["target_m4"] = target_of(key)
        row["target_met"] = dsp["instructions_m4"] <= row["target_m4"]
    return row


def _m(n: int | None) -> str:
    return "fails" if n is None else f"{n / 1e6:.2f} M"


def markdown(rows: list[dict]) -> str:
    head = ("| model | MACs | M4 portable | M4 arm-dsp | MAC/instr M4 | M7 portable | M7 arm-dsp | "
            "TFLM / CMSIS-NN / TinyEngine (M4) | target M4 | code B portable → arm-dsp | arena B (scratch) | "
            "outputs equal |\n|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---|\n")
    lines = []
    for r in rows:
        p, d = r["portable"], r["arm-dsp"]
        anchors = "–"
        target = "–"
        if "anchors_m4" in r:
            a = r["anchors_m4"]
            anchors = f"{_m(a['tflm_reference'])} / {_m(a['tflm_cmsis_nn'])} / {_m(a['tinyengine'])}"
            target = f"≤ {_m(r['target_m4'])} {'met' if r['target_met'] else 'MISSED'}"
        lines.append(
            f"| {r['model']} | {r['macs']:,} | {_m(p['instructions_m4'])} | {_m(d['instructions_m4'])} "
            f"({r['speedup_m4']}x) | {p['macs_per_instruction_m4']} → {d['macs_per_instruction_m4']} | "
            f"{_m(p['instructions_m7'])} | {_m(d['instructions_m7'])} | {anchors} | {target} | "
            f"{p['code_bytes']:,} → {d['code_bytes']:,} | {d['arena_bytes']:,} (+{r['scratch_bytes']}) | "
            f"{'yes' if r['outputs_equal'] else 'NO'} |")
    note = ("\nInstructions per invoke under QEMU `-icount shift=0` (SysTick x 40), arm-none-eabi-gcc -O2, one "
            "seeded random input; M4 = mps2-an386, M7 = mps2-an500. Anchors: issue 9, same machine and method. "
            "Arena: arm-dsp, with (+) the scratch it adds over the portable arena.\n")
    head2 = ("\n| model | 1x1 layers: MAC/instr M4 (share of instructions) | 1x1 MAC/instr by input channels K | "
             "depthwise: MAC/instr M4 (share) |\n|---|---|---|---|\n")
    lines2 = []
    for r in rows:
        b, total = r["arm-dsp"].get("by_kernel_m4"), r["arm-dsp"]["instructions_m4"]
        if b is None:
            continue
        cells = []
        for label in ("pointwise", "depthwise"):
            c = b[label]
            cells.append("–" if not c["layers"] else
                         f"{c['macs_per_instruction']} ({100 * c['instructions'] / total:.0f}%)")
        ks = ", ".join(f"K={k}: {v}" for k, v in b["pointwise_by_k"].items()) or "–"
        lines2.append(f"| {r['model']} | {cells[0]} | {ks} | {cells[1]} |")
    note2 = ("\narm-dsp on Cortex-M4, from a profiled build (SysTick around each kernel call, as `mcuforge run "
             "--profile`; its totals include the timing code).\n")
    return head + "\n".join(lines) + "\n" + note + head2 + "\n".join(lines2) + "\n" + note2


def main(argv: list[str]) -> int:
    from mcuforge.tools import qemu

    missing = qemu.tools_missing()
    if missing:
        print(f"bench/speed.py: skipped, {' and '.join(missing)} not installed")
        return 0
    all_sources = sources()
    keys = argv or list(all_sources)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mcuforge-speed-") as tmp:
        for key in keys:
            row = measure(key, all_sources[key], Path(tmp))
            d = row["arm-dsp"]
            print(f"{key}: M4 {row['portable']['instructions_m4']:,} -> {d['instructions_m4']:,} instructions "
                  f"({row['speedup_m4']}x), M7 {row['portable']['instructions_m7']:,} -> {d['instructions_m7']:,}"
                  + (f", target {row['target_m4']:,} {'met' if row['target_met'] else 'MISSED'}"
                     if "target_m4" in row else "") + f", outputs equal: {row['outputs_equal']}", flush=True)
            rows.append(row)
    if argv:  # a partial run prints, and leaves the recorded results alone
        print(markdown(rows))
        return 0
    write_results("speed", rows, markdown(rows), "speed")
    return 0 if all(r["outputs_equal"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
