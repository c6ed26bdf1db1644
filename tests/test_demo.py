"""The demo's claims: int8 C agrees with the float model on the held-out split."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from mcuforge.tools.demo import run_demo  # noqa: E402


def test_demo_int8_agrees_with_float(tmp_path):
    result = run_demo(tmp_path / "demo", quiet=True)
    assert result["float_accuracy"] >= 0.95
    assert result["agreement"] >= 0.97, result
    assert result["int8_accuracy"] >= result["float_accuracy"] - 0.02
    assert (tmp_path / "demo" / "digits_memory.png").read_bytes()[:4] == b"\x89PNG"
