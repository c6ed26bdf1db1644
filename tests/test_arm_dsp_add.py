"""The arm-dsp elementwise add (mcf_dsp_add_s8, the generator's tables) equals
the NumPy twin of the portable kernel (and so TFLM) byte for byte: odd sizes,
TFLite's parameters from random scales and zero points, fused clamps, the
general requantization (output shift 0, left shifts up to 30), in place; on
the host and under QEMU on Cortex-M4 and M7."""
from __future__ import annotations

import ctypes as ct

import numpy as np
import pytest

from mcuforge import fixedpoint as fp
from mcuforge.codegen import arm_dsp
from mcuforge.kernels import KERNELS
from mcuforge.ops import Step

from marks import needs_qemu
from test_arm_dsp_kernels import _c_array, _program, _run_on_cortex_m
from test_kernels import P8, STRUCTS, _fill, lib, rng_for  # noqa: F401

SIZES = (1, 2, 3, 4, 5, 7, 8, 13, 64, 67, 250)


def add_case(seed: int) -> dict:
    """TFLite ADD parameters: random scales and zero points, every third case a fused clamp, every fifth the
    general requantization (output shift 0 or a left shift other than 20)."""
    rng = rng_for("dsp-add", seed)
    s1, s2, so = (float(v) for v in np.exp(rng.uniform(-6, 0, 3)))
    z1, z2, zo = (int(v) for v in rng.integers(-128, 128, 3))
    lo, hi = (-128, 127)
    if seed % 3 == 1:
        lo, hi = int(rng.integers(-128, 0)), int(rng.integers(0, 128))
    p = fp.add_params(s1, z1, s2, z2, so, zo, act_min=lo, act_max=hi,
                      size=int(SIZES[seed % len(SIZES)]))
    if seed % 5 == 4:  # outside the fast path's proof
        p["left_shift"] = int(rng.integers(0, 31))
        p["output_shift"] = 0 if seed % 2 else int(rng.integers(-31, 1))
        p["output_multiplier"] = int(rng.integers(0, 2**31))
        p["input1_shift"], p["input2_shift"] = (int(v) for v in rng.integers(-31, 1, 2))
    return p


def _step(p: dict) -> Step:
    return Step(node=None, kernel="add_s8", params=p, inputs=[], outputs=[])


def run_host(lib, p: dict, a: np.ndarray, b: np.ndarray, in_place: bool) -> np.ndarray:
    keep: list = []
    s = _fill(STRUCTS["add_s8"], p, keep)
    tables = np.ascontiguousarray(arm_dsp.add_tables(p))
    guard = 32
    n = p["size"]
    a_buf = np.full(n + guard, 0x3C, dtype=np.int8)
    a_buf[:n] = a
    b_in = np.ascontiguousarray(b)
    out = a_buf if in_place else np.full(n + guard, 0x55, dtype=np.int8)
    status = lib.mcf_dsp_add_s8(ct.byref(s), a_buf.ctypes.data_as(P8), b_in.ctypes.data_as(P8),
                                out.ctypes.data_as(P8), tables.ctypes.data_as(ct.POINTER(ct.c_int32)))
    assert status == 0
    assert np.all(out[n:] == (0x3C if in_place else 0x55)), "wrote past the output"
    assert np.array_equal(b_in, b), "changed input2"
    return out[:n].copy()


@pytest.mark.parametrize("seed", range(40))
def test_add_equals_portable_twin(lib, seed):
    p = add_case(seed)
    assert arm_dsp.select(_step(p)).function == "mcf_dsp_add_s8"
    rng = rng_for("dsp-add-x", seed)
    a, b = (rng.integers(-128, 128, p["size"]).astype(np.int8) for _ in range(2))
    want = KERNELS["add_s8"](p, a, b)
    for in_place in (False, True):
        got = run_host(lib, p, a, b, in_place)
        assert np.array_equal(got, want), f"{np.count_nonzero(got != want)} of {p['size']} differ for {p}"


def test_every_requantization_mode_is_exercised():
    modes = {int(arm_dsp.add_tables(add_case(seed))[-1]) for seed in range(40)}
    assert modes == {arm_dsp.ADD_MODE_GENERAL, arm_dsp.ADD_MODE_FAST, arm_dsp.ADD_MODE_FAST_SAT}


def test_add_refuses_what_the_tables_do_not_prove(lib):
    p = add_case(0)
    tables = arm_dsp.add_tables(p)
    assert tables[-1] == arm_dsp.ADD_MODE_FAST_SAT
    bad = dict(p, act_min=-100)  # the fast clamp-free path with a clamp
    keep: list = []
    s = _fill(STRUCTS["add_s8"], bad, keep)
    x = np.zeros(p["size"], dtype=np.int8)
    out = np.zeros(p["size"], dtype=np.int8)
    t = np.ascontiguousarray(tables)
    status = lib.mcf_dsp_add_s8(ct.byref(s), x.ctypes.data_as(P8), x.ctypes.data_as(P8), out.ctypes.data_as(P8),
                                t.ctypes.data_as(ct.POINTER(ct.c_int32)))
    assert status != 0


ADD_FIELDS = ("size left_shift input1_offset input1_multiplier input1_shift input2_offset input2_multiplier "
              "input2_shift output_offset output_multiplier output_shift act_min act_max").split()


@needs_qemu
@pytest.mark.parametrize("target", ["qemu-cortex-m4", "qemu-cortex-m7"])
def test_add_on_cortex_m(target, tmp_path):
    """The same cases on the real instructions (SMMULR, SSAT), inputs at every byte offset, one in place."""
    decls, calls, cases, inputs, expected = [], [], [], [], []
    biggest = max(add_case(seed)["size"] for seed in range(20))
    for i in range(20):
        p = add_case(i)
        n = p["size"]
        rng = rng_for("dsp-add-m", i)
        a, b = (rng.integers(-128, 128, n).astype(np.int8) for _ in range(2))
        decls.append(_c_array(f"tables{i}", "int32_t", arm_dsp.add_tables(p)))
        decls.append(f"static const mcf_add_params p{i} = {{"
                     + ", ".join(f".{f} = {int(p[f])}" for f in ADD_FIELDS) + "};\n")
        at = i % 4
        dst = f"in_buf.b + {at}" if i % 3 == 0 else "output"  # every third in place (output = input1)
        calls.append(f"""    if (sh_read(in, in_buf.b + {at}, {n}) != 0 || sh_read(in, scratch.b + 1, {n}) != 0) return 8;
    status[0] = (char)mcf_dsp_add_s8(&p{i}, in_buf.b + {at}, scratch.b + 1, {dst}, tables{i});
    if (sh_write(out, {dst}, {n}) != 0 || sh_write(out, status, 1) != 0) return 5;
""")
        cases.append(p)
        inputs += [a, b]
        expected.append(np.concatenate([KERNELS["add_s8"](p, a, b), [0]]).astype(np.int8))
    calls.insert(0, "    (void)i;\n")  # the shared program's loop counter, unused here
    program = _program(decls, calls, biggest, biggest, biggest + 4)
    _run_on_cortex_m(target, tmp_path, program, "mcf_dsp_add.c", cases, inputs, expected)
