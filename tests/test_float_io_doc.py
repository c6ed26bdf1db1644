"""The float input / output code of docs/operators.md, compiled as it is
written against a model compiled from a full-integer .tflite file with the
converter's float32 ends, gives TFLM's float outputs bit for bit."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mcuforge.codegen.portable import c_sources, include_dirs
from mcuforge.config import BuildConfig
from mcuforge.tools.hostrun import WARNING_FLAGS
from mcuforge.pipeline import compile_model
from test_tflite_models import _float_io, tflm_outputs

DOC = Path(__file__).resolve().parents[1] / "docs" / "operators.md"

HARNESS = """
#include <stdio.h>
int main(int argc, char **argv)
{
    float x[MODEL_INPUT_SIZE], y[MODEL_OUTPUT_SIZE];
    FILE *in, *out;
    if (argc != 3 || !(in = fopen(argv[1], "rb")) || !(out = fopen(argv[2], "wb")) || model_init() != 0) return 2;
    while (fread(x, sizeof(float), MODEL_INPUT_SIZE, in) == MODEL_INPUT_SIZE) {
        model_quantize_input(x, model_input(), MODEL_INPUT_SIZE);
        if (model_invoke() != 0) return 3;
        model_dequantize_output(model_output(), y, MODEL_OUTPUT_SIZE);
        fwrite(y, sizeof(float), MODEL_OUTPUT_SIZE, out);
    }
    fclose(in);
    fclose(out);
    return 0;
}
"""


def doc_code() -> str:
    blocks = re.findall(r"```c\n(.*?)```", DOC.read_text(), re.S)
    return next(b for b in blocks if "model_quantize_input" in b)


def test_float_io_code_of_the_docs_equals_tflm(tmp_path):
    data = _float_io()
    path = tmp_path / "model.tflite"
    path.write_bytes(data)
    gen = tmp_path / "gen"
    compile_model(path, BuildConfig(name="model"), gen)
    main = tmp_path / "main.c"
    main.write_text(doc_code() + HARNESS)
    exe = tmp_path / "model_float"
    cmd = ["cc", "-O2", *WARNING_FLAGS, *(f"-I{d}" for d in include_dirs(gen)),
           *map(str, c_sources(gen, "model")), str(main), "-o", str(exe), "-lm"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr
    rng = np.random.default_rng(5)
    xs = rng.uniform(-3.5, 3.5, (16, 1, 8, 8, 3)).astype(np.float32)[:, 0]
    # zero, halves of the step, values far outside the input's range (TFLM's int32 cast overflows,
    # undefined behaviour, beyond 2^31 steps: not compared)
    step = 0.02  # the input scale of _float_io
    xs[0].reshape(-1)[:8] = [0.0, -0.0, 1000.0, -1000.0, 0.5 * step, -0.5 * step, 2.5 * step, -7.5 * step]
    (tmp_path / "x.bin").write_bytes(xs.tobytes())
    res = subprocess.run([str(exe), str(tmp_path / "x.bin"), str(tmp_path / "y.bin")], capture_output=True)
    assert res.returncode == 0, res.stderr
    got = np.frombuffer((tmp_path / "y.bin").read_bytes(), np.float32).reshape(len(xs), -1)
    want = tflm_outputs(data, xs)
    assert want.dtype == np.float32
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    assert len(np.unique(want)) > 10


if __name__ == "__main__":
    pytest.main([__file__])
