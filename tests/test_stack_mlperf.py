"""The stack bound of the MLPerf Tiny reference models (../shared/models, skipped when absent)
covers their measured peak stack on the host and on Cortex-M4 under QEMU (see test_stack.py for
the method); the margins are printed with pytest -s."""
from __future__ import annotations

import pytest

from mcuforge.config import BuildConfig
from mcuforge.pipeline import compile_model

from marks import needs_qemu
from test_stack import MLPERF, MODELS_DIR, check, needs_gcc


@needs_gcc
@needs_qemu
@pytest.mark.parametrize("model", MLPERF)
def test_mlperf_bound_covers_measured(model, tmp_path):
    path = MODELS_DIR / model
    if not path.is_file():
        pytest.skip(f"{path} absent (the MLPerf Tiny reference models live in ../shared/models)")
    name = model.split("_")[0].lower()
    out = tmp_path / "gen"
    plan = compile_model(path, BuildConfig(name=name, kernels="arm-dsp"), out)
    check(plan, out, tmp_path, f"{model} (arm-dsp)")
