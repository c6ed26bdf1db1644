"""Frontends: a model file (or an in-memory model) -> float ``ir.Graph``.

Each module defines ``FRONTEND`` (a ``registry.Frontend``) and is found
through the plugin registry by file suffix:

* ``onnx``  -- ``.onnx`` files, float or QDQ-quantized (``onnx.load``).
* ``torch`` -- ``.pt2`` files written by ``torch.export.save``, and the Python
  API ``from_torch(module, example_input)``; both go through ONNX.
* ``tflite`` -- ``.tflite`` files, full-integer int8 (the ``tflite`` schema
  package); scales, zero points, weights and biases kept as in the file.
"""
from __future__ import annotations

import keyword
import re

# C keywords a model name must not collide with (Python's are a superset of
# most; the C-only ones are added).
_C_KEYWORDS = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "bool", "main",
}


def c_identifier(text: str, fallback: str = "model") -> str:
    """A lowercase C identifier made from `text` (e.g. a file stem).

    >>> c_identifier("MobileNet-V2 (0.35)")
    'mobilenet_v2_0_35'
    >>> c_identifier("8bit")
    'm_8bit'
    >>> c_identifier("int")
    'int_model'
    """
    name = re.sub(r"[^a-z0-9_]+", "_", text.lower())
    name = re.sub(r"_+", "_", name).strip("_")
    if not name:
        name = fallback
    if name[0].isdigit():
        name = "m_" + name
    if name in _C_KEYWORDS or keyword.iskeyword(name):
        name += "_model"
    return name
