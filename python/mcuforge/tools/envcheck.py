"""Whether a Python can run the generator on a model: the modules it imports.

Run as a script (``python .../envcheck.py MODEL``, no mcuforge import: it must work in an
environment that lacks mcuforge's own dependencies), by CMake at configure time. Prints the
missing modules with the pip package to install, one line, and exits 1; exits 0 when all import.
"""
from __future__ import annotations

import importlib
import sys

# module -> pip package
ALWAYS = {"numpy": "numpy", "elftools": "pyelftools"}
BY_SUFFIX = {".onnx": {"onnx": "onnx"}, ".tflite": {"tflite": "tflite"},
             ".pt": {"torch": "torch"}, ".pth": {"torch": "torch"}}


def missing(model: str) -> dict[str, str]:
    need = dict(ALWAYS)
    for suffix, modules in BY_SUFFIX.items():
        if model.lower().endswith(suffix):
            need.update(modules)
    out = {}
    for module, package in need.items():
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - any failure to import is a missing module here
            out[module] = package
    return out


def main(argv: list[str]) -> int:
    model = argv[1] if len(argv) > 1 else ""
    gone = missing(model)
    if not gone:
        return 0
    print(f"{', '.join(gone)} (pip install {' '.join(sorted(set(gone.values())))})")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
