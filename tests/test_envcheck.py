"""Configure time, not build time: a generator Python that cannot import what the model needs
(Zephyr's own environment without onnx, say) stops the configuration with the Python named, the
missing modules and the two ways out (pip install into it, or -DMCUFORGE_PYTHON)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "tests" / "cmake_project"
CMAKE, NINJA = shutil.which("cmake"), shutil.which("ninja")
ENVCHECK = ROOT / "python" / "mcuforge" / "tools" / "envcheck.py"

pytestmark = pytest.mark.skipif(CMAKE is None or NINJA is None, reason="cmake and ninja are needed")


def _bare_python(tmp: Path) -> Path:
    """A virtual environment with nothing installed (no onnx, no numpy)."""
    env = tmp / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    return env / "bin" / "python"


def test_configure_names_the_python_and_the_missing_modules(tmp_path):
    python = _bare_python(tmp_path)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not read at configure time")
    res = subprocess.run([CMAKE, "-G", "Ninja", "-S", str(PROJECT), "-B", str(tmp_path / "build"),
                          f"-DMODEL={model}", f"-DMCUFORGE_PYTHON={python}"], capture_output=True, text=True)
    out = " ".join((res.stdout + res.stderr).split())
    assert res.returncode != 0
    assert f"the generator's Python {python} cannot import numpy, elftools, onnx" in out
    assert "pip install numpy onnx pyelftools" in out and "-DMCUFORGE_PYTHON=" in out


def test_envcheck_passes_in_the_project_environment():
    res = subprocess.run([sys.executable, str(ENVCHECK), "model.onnx"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout == ""
