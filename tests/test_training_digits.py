"""Learning on real data (scikit-learn digits): pretrained in float on the
digits 0-4 only, the generated C learns all ten on the host. Held-out
accuracy rises from below 55% to at least 90%; with quantization-aware
scaling off it is measurably worse; int8 + QAS ends within 2 points of a
PyTorch float fine-tune of the same parameters."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from mcuforge.tools.training_demo import run_training_demo  # noqa: E402


def test_digits_learn_new_classes_on_device(tmp_path):
    r = run_training_demo(tmp_path / "training", quiet=True)
    summary = {k: v for k, v in r.items() if k != "plan"}
    assert r["int8_before"] < 0.55, summary
    assert r["int8_qas"] >= 0.90, summary
    assert r["int8_no_qas"] <= r["int8_qas"] - 0.10, summary
    assert abs(r["int8_qas"] - r["float_finetune"]) <= 0.02, summary
    first, last = r["int8_qas_loss_first_last"]
    assert last < first, summary
