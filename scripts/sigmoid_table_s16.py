"""Measure the 256-entry sigmoid table of TFLM's 16-bit LOGISTIC / TANH from
the ``tflite_micro`` interpreter (the oracle), for mcuforge.kernels.s16 and
runtime/src/mcf_s16_sigmoid.c.

A TANH with int16 input scale 2/12288 (not a power of two) takes TFLM's
general scaling, which for this scale is exactly x -> 2x (multiplier 16384,
shift 13); an input x = 128 i then lands on table entry i with no
interpolation, and TANH writes entry - 32768. Entry 255 is read only as the
right end of the last interval: it is measured at x = 128 * 254 + 127, half a
step into that interval. Prints the table as Python and C.
"""
from __future__ import annotations

import sys

import numpy as np


def measure() -> list[int]:
    from tflite_micro.python.tflite_micro import runtime

    from mcuforge.tflite_writer import build_model

    xs = np.concatenate([np.arange(255) * 128, [254 * 128 + 127]]).astype(np.int16)
    n = xs.size
    tensors = [dict(shape=(1, n), dtype="int16", scale=np.float32(2.0 / 12288), zp=0),
               dict(shape=(1, n), dtype="int16", scale=np.float32(2.0 ** -15), zp=0)]
    data = build_model(tensors, [("TANH", None, {}, [0], [1])], [0], [1])
    interpreter = runtime.Interpreter.from_bytes(data, arena_size=1 << 20)
    interpreter.set_input(xs[None], 0)
    interpreter.invoke()
    out = np.asarray(interpreter.get_output(0)).reshape(-1).astype(np.int64)
    table = (out[:255] + 32768).tolist()
    # entry 255 from the half step: tanh writes ((ua << 8) + 254 * (ub - ua) - 2^23 + 128) >> 8, ut = 254
    ua, last = table[254], int(out[255]) + 32768
    ub = next(v for v in range(ua, 65536) if ((ua << 8) + 254 * (v - ua) + 128) >> 8 == last)
    return table + [ub]


if __name__ == "__main__":
    t = measure()
    print("SIGMOID_TABLE = [" + ", ".join(map(str, t)) + "]")
    rows = [", ".join(map(str, t[i:i + 12])) for i in range(0, 256, 12)]
    sys.stdout.write("static const uint16_t sigmoid_table[256] = {\n" + "".join(f"    {r},\n" for r in rows) + "};\n")
