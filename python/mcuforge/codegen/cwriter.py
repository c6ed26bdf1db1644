"""Small helpers that render C text deterministically.

>>> c_int_array("int8_t", "m_w", [1, -2, 3], per_line=2)
'const int8_t m_w[3] = {\\n    1, -2,\\n    3,\\n};\\n'
>>> c_float(0.0078125)
'0.0078125f'
>>> c_comment("a */ b")
'a * / b'
>>> c_comment("x??/")
'x? ?/'
"""
from __future__ import annotations

import re

import numpy as np


def c_int_array(ctype: str, name: str, values, per_line: int = 16, storage: str = "") -> str:
    vals = np.asarray(values).reshape(-1).astype(np.int64).tolist()
    lines = []
    for i in range(0, len(vals), per_line):
        lines.append("    " + ", ".join(str(v) if v != -2**31 else "(-2147483647 - 1)"
                                        for v in vals[i:i + per_line]) + ",")
    prefix = f"{storage} " if storage else ""
    return f"{prefix}const {ctype} {name}[{len(vals)}] = {{\n" + "\n".join(lines) + "\n};\n"


def c_float(x: float) -> str:
    """A float literal that reads back as the same float32."""
    text = np.format_float_positional(np.float32(x), unique=True, trim="0") if abs(x) >= 1e-4 or x == 0 \
        else np.format_float_scientific(np.float32(x), unique=True, trim="0")
    if text.endswith("."):
        text += "0"
    if "." not in text and "e" not in text:
        text += ".0"
    return text + "f"


def c_comment(text: str) -> str:
    """Text safe inside a C block comment: printable ASCII, no comment
    delimiters, no trigraphs (``??/`` is a backslash in C99)."""
    text = re.sub(r"[^\x20-\x7e]", "?", str(text)).replace("*/", "* /").replace("/*", "/ *")
    return re.sub(r"\?(?=\?)", "? ", text)


def c_int(v) -> str:
    v = int(v)
    if v == -2**31:
        return "(-2147483647 - 1)"
    return f"({v})" if v < 0 else str(v)


def c_identifier(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", text)
    if not s or s[0].isdigit():
        s = "m_" + s
    return s.lower()
