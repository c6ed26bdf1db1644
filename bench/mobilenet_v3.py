"""MobileNetV3-small as an int8 TFLite file: mcuforge against TFLM.

The zoo's Keras-style MobileNetV3-small (``mcuforge.zoo.mobilenet_v3_small_tflite``:
HARD_SWISH, squeeze-and-excitation as MEAN / CONV_2D / ADD 3 + RELU6 / MUL 1/6 /
broadcast MUL, seeded random int8 weights) at width 1.0 on 96x96 and width
0.75 on 128x128, 1000 classes, compiled layer by layer. The same columns as
bench/mlperf_tiny.py: mcuforge's arena against TFLM's (activations +
persistent, from the ``tflite-micro`` interpreter's recording allocator),
the largest single op's inputs + output, flash (weights + code of the
Cortex-M4 objects, -Os) next to the .tflite file size, codegen time, and how
many of 20 seeded random inputs give TFLM's output bytes from the generated C
(host gcc). Writes bench/results/mobilenet_v3.json and .md and the docs/benchmarks.md
table between ``<!-- bench:mbv3:begin -->`` and ``<!-- bench:mbv3:end -->``.

    .venv/bin/python bench/mobilenet_v3.py
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from mlperf_tiny import markdown, measure_file  # noqa: E402

MODELS = [("mbv3_small_100_96", 1.0, 96), ("mbv3_small_075_128", 0.75, 128)]


def measure(key: str, width: float, resolution: int, workdir: Path) -> dict:
    from mcuforge.zoo import mobilenet_v3_small_tflite

    path = workdir / f"{key}.tflite"
    path.write_bytes(mobilenet_v3_small_tflite(width=width, resolution=resolution))
    return measure_file(key, path, "mcuforge.zoo.mobilenet_v3_small_tflite",
                        f"MobileNetV3-small, width {width}, {resolution}x{resolution}, Keras-style int8", workdir)


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory(prefix="mcuforge-mbv3-") as tmp:
        for key, width, resolution in MODELS:
            row = measure(key, width, resolution, Path(tmp))
            print(f"{key}: arena {row['arena_bytes']} B (TFLM {row['tflm_arena_bytes']} B, largest op "
                  f"{row['largest_op_bytes']} B), flash {row['flash_bytes_cortex_m4']} B, "
                  f"{row['inputs_equal_to_tflm']}/{row['inputs_checked']} outputs equal to TFLM", flush=True)
            rows.append(row)
    write_results("mobilenet_v3", rows, markdown(rows), "mbv3")
    return 0 if all(r["inputs_equal_to_tflm"] == r["inputs_checked"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
