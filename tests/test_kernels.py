"""The C runtime kernels against their NumPy twins, byte for byte.

The runtime sources are compiled once per session with the host gcc (strict
warnings) into a shared library driven through ctypes; every kernel is run
on many seeded random parameter sets and compared with
``mcuforge.kernels``. The fixed-point helpers are also checked against
hand-derived values, and every runtime file is compiled for Cortex-M4.
"""
from __future__ import annotations

import ctypes as ct
import math
import re
import zlib
import shutil
import subprocess

import numpy as np
import pytest

from mcuforge import fixedpoint as fp
from mcuforge.kernels import (KERNELS, RUNTIME_INCLUDE_DIR, RUNTIME_SOURCES, RUNTIME_SRC_DIR,
                              SCRATCH_SIZE)

SOURCES = sorted(RUNTIME_SRC_DIR.glob("*.c"))
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
I32 = ct.c_int32
P8 = ct.POINTER(ct.c_int8)
P32 = ct.POINTER(ct.c_int32)


# ------------------------------------------------------------------ C side

def _struct(name: str, ints: list[str], pointers: list[tuple[str, object]] = ()):
    fields = [(f, I32) for f in ints] + list(pointers)
    return type(name, (ct.Structure,), {"_fields_": fields})


def _ints(s: str) -> list[str]:
    return s.split()


Conv = _struct("Conv", _ints("in_h in_w in_c out_h out_w out_c k_h k_w stride_h stride_w dilation_h dilation_w "
                             "pad_top pad_left input_offset output_offset act_min act_max per_channel"),
               [("filter", P8), ("bias", P32), ("multiplier", P32), ("shift", P32), ("pw_requant", P32)])
Depthwise = _struct("Depthwise", _ints("in_h in_w in_c out_h out_w out_c depth_multiplier k_h k_w stride_h "
                                       "stride_w dilation_h dilation_w pad_top pad_left input_offset "
                                       "output_offset act_min act_max per_channel plane_transposed"),
                    [("filter", P8), ("bias", P32), ("multiplier", P32), ("shift", P32)])
FullyConnected = _struct("FullyConnected", _ints("rows in_features out_features input_offset output_offset "
                                                 "act_min act_max per_channel"),
                         [("filter", P8), ("bias", P32), ("multiplier", P32), ("shift", P32), ("pw_requant", P32)])
Add = _struct("Add", _ints("size left_shift input1_offset input1_multiplier input1_shift input2_offset "
                           "input2_multiplier input2_shift output_offset output_multiplier output_shift "
                           "act_min act_max"))
Pool = _struct("Pool", _ints("in_h in_w channels out_h out_w k_h k_w stride_h stride_w pad_top pad_left "
                             "act_min act_max requantize input_offset output_offset multiplier shift"))
Mean = _struct("Mean", _ints("in_h in_w channels input_offset output_offset multiplier shift"))
Softmax = _struct("Softmax", _ints("rows cols input_multiplier input_left_shift diff_min"))
Requantize = _struct("Requantize", _ints("size input_offset output_offset multiplier shift act_min act_max"))
Concat = _struct("Concat", _ints("num_inputs outer"), [("inner", P32), ("requant", ct.POINTER(Requantize))])
Pad = _struct("Pad", _ints("in_h in_w in_c pad_top pad_bottom pad_left pad_right pad_front pad_back pad_value"))
Transpose = type("Transpose", (ct.Structure,), {"_fields_": [("in_shape", I32 * 4), ("perm", I32 * 4)]})
Lut = _struct("Lut", ["size"], [("table", P8)])
_BROADCAST = [("size", I32), ("broadcast", I32), ("out_shape", I32 * 4), ("input1_stride", I32 * 4),
              ("input2_stride", I32 * 4)]
Mul = type("Mul", (ct.Structure,), {"_fields_": _BROADCAST + [(f, I32) for f in _ints(
    "input1_offset input2_offset output_offset multiplier shift act_min act_max")]})
Sub = type("Sub", (ct.Structure,), {"_fields_": _BROADCAST + [(f, I32) for f in _ints(
    "left_shift input1_offset input1_multiplier input1_shift input2_offset input2_multiplier input2_shift "
    "output_offset output_multiplier output_shift act_min act_max")]})
StridedSlice = type("StridedSlice", (ct.Structure,), {"_fields_": [(f, I32 * 4) for f in _ints(
    "in_shape begin stride out_shape")]})
Resize = _struct("Resize", _ints("in_h in_w channels out_h out_w"), [("row_index", P32), ("col_index", P32)])
TransposeConv = _struct("TransposeConv", _ints("in_h in_w in_c out_h out_w out_c k_h k_w stride_h stride_w pad_top "
                                               "pad_left input_offset output_offset act_min act_max per_channel"),
                        [("filter", P8), ("bias", P32), ("multiplier", P32), ("shift", P32)])
MaxMin = type("MaxMin", (ct.Structure,), {"_fields_": _BROADCAST + [(f, I32) for f in _ints(
    "input1_offset input1_multiplier input1_shift input2_offset input2_multiplier input2_shift output_offset")]})

STRUCTS = {
    "conv2d_s8": Conv, "depthwise_conv2d_s8": Depthwise, "depthwise_conv2d_s8_inplace": Depthwise,
    "fully_connected_s8": FullyConnected, "add_s8": Add, "avg_pool_s8": Pool, "max_pool_s8": Pool,
    "mean_s8": Mean, "softmax_s8": Softmax, "requantize_s8": Requantize, "concat_s8": Concat,
    "pad_s8": Pad, "transpose_s8": Transpose, "lut_s8": Lut, "mul_s8": Mul, "sub_s8": Sub,
    "maximum_s8": MaxMin, "minimum_s8": MaxMin, "strided_slice_s8": StridedSlice, "resize_nearest_s8": Resize,
    "transpose_conv_s8": TransposeConv,
}


@pytest.fixture(scope="session")
def lib(tmp_path_factory):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("no host gcc")
    out = tmp_path_factory.mktemp("mcf") / "libmcf.so"
    cmd = [gcc, *STRICT, "-O2", "-fPIC", "-shared", f"-I{RUNTIME_INCLUDE_DIR}", *map(str, SOURCES), "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr
    return ct.CDLL(str(out))


def _arr(a, dtype):
    """C-contiguous copy and a pointer to it (caller keeps the array alive)."""
    a = np.ascontiguousarray(np.asarray(a, dtype=dtype).reshape(-1))
    ctype = ct.c_int8 if dtype == np.int8 else ct.c_int32
    return a, a.ctypes.data_as(ct.POINTER(ctype))


def _fill(struct_cls, params: dict, keep: list):
    s = struct_cls()
    for name, ftype in struct_cls._fields_:
        if ftype is I32 * 4:
            setattr(s, name, (I32 * 4)(*[int(v) for v in params[name]]))
        elif ftype is I32:
            setattr(s, name, int(params.get(name, 0)))
        elif name == "requant":
            reqs = (Requantize * len(params["requant"]))()
            for i, r in enumerate(params["requant"]):
                for f, _ in Requantize._fields_:
                    setattr(reqs[i], f, int(r.get(f, 0)))
            keep.append(reqs)
            s.requant = ct.cast(reqs, ct.POINTER(Requantize))
        else:
            value = params.get(name)
            if value is None:
                continue  # NULL pointer
            a, ptr = _arr(value, np.int8 if name in ("filter", "table", "constant") else np.int32)
            keep.append(a)
            setattr(s, name, ptr)
    return s


def run_c(lib, kernel: str, params: dict, *inputs, out_size: int):
    """Run mcf_<kernel>; returns (status, flat int8 output)."""
    keep: list = []
    s = _fill(STRUCTS[kernel], params, keep)
    out = np.full(out_size, 0x55, dtype=np.int8)
    fn = getattr(lib, "mcf_" + kernel)
    if kernel == "concat_s8":
        arrays = [_arr(x, np.int8) for x in inputs[0]]
        ptrs = (P8 * len(arrays))(*[p for _, p in arrays])
        status = fn(ct.byref(s), ptrs, out.ctypes.data_as(P8))
    else:
        arrays = [_arr(x, np.int8) for x in inputs]
        status = fn(ct.byref(s), *[p for _, p in arrays], out.ctypes.data_as(P8))
    return status, out


def check(lib, kernel: str, params: dict, *inputs):
    """C output == NumPy twin output, byte for byte."""
    expected = KERNELS[kernel](params, *inputs)
    assert expected.dtype == np.int8
    status, got = run_c(lib, kernel, params, *inputs, out_size=expected.size)
    assert status == 0, f"{kernel} returned {status} for {params}"
    if not np.array_equal(got, expected):
        bad = np.flatnonzero(got != expected)
        raise AssertionError(f"{kernel}: {bad.size} of {expected.size} bytes differ, first at {bad[0]}: "
                             f"C {got[bad[0]]} vs NumPy {expected[bad[0]]}\nparams {_short(params)}")
    return expected


def _short(p: dict) -> dict:
    return {k: (v if np.isscalar(v) else f"<{np.asarray(v).shape}>") for k, v in p.items() if k != "requant"}


# ---------------------------------------------------------- random params

def rng_for(*key) -> np.random.Generator:
    """Seeded generator; strings hashed stably (not with hash(), which is salted per process)."""
    return np.random.default_rng([zlib.crc32(k.encode()) if isinstance(k, str) else k for k in key])


def rand_i8(rng, n) -> np.ndarray:
    return rng.integers(-128, 128, size=n, dtype=np.int16).astype(np.int8)


def rand_act(rng, out_zp: int) -> tuple[int, int]:
    """Full range, ReLU, ReLU6-like or a random clamp."""
    kind = rng.integers(4)
    if kind == 0:
        return -128, 127
    if kind == 1:
        return max(out_zp, -128), 127
    if kind == 2:
        lo = max(out_zp, -128)
        return lo, int(min(127, lo + rng.integers(0, 100)))
    lo = int(rng.integers(-128, 100))
    return lo, int(rng.integers(lo, 128))


def rand_requant(rng, n: int, per_channel: bool, extreme: bool = False):
    """Multipliers/shifts from random real scales, realistic or extreme."""
    count = n if per_channel else 1
    if extreme:
        reals = np.exp2(rng.uniform(-33, 8, size=count))
    else:
        reals = np.exp2(rng.uniform(-14, -2, size=count))
    m, s = fp.quantize_multiplier_array(reals)
    return m, s


def conv_geometry(rng, k_h, k_w, stride, dilation, in_h, in_w):
    """pads and output size for random (asymmetric) padding; None if empty."""
    eff_h, eff_w = (k_h - 1) * dilation[0] + 1, (k_w - 1) * dilation[1] + 1
    pt, pb = (int(v) for v in rng.integers(0, eff_h, size=2))
    pl, pr = (int(v) for v in rng.integers(0, eff_w, size=2))
    out_h = (in_h + pt + pb - eff_h) // stride[0] + 1
    out_w = (in_w + pl + pr - eff_w) // stride[1] + 1
    if out_h < 1 or out_w < 1:
        return None
    return pt, pl, out_h, out_w


def conv_params(rng, depthwise=False, extreme=False):
    while True:
        k_h = int(rng.choice([1, 3, 5, 7]))
        k_w = k_h if rng.random() < 0.8 else int(rng.choice([1, 3, 5]))
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4))) if rng.random() < 0.5 else (1, 1)
        if rng.random() < 0.3:
            stride = (2, 2)
        dilation = (1, 1) if rng.random() < 0.75 else (int(rng.integers(1, 4)), int(rng.integers(1, 3)))
        in_h, in_w = int(rng.integers(1, 16)), int(rng.integers(1, 16))
        if rng.random() < 0.3:  # odd sizes with stride 2
            in_h, in_w, stride = 2 * int(rng.integers(1, 8)) + 1, 2 * int(rng.integers(1, 8)) + 1, (2, 2)
        geo = conv_geometry(rng, k_h, k_w, stride, dilation, in_h, in_w)
        if geo is not None:
            break
    pt, pl, out_h, out_w = geo
    in_c = int(rng.integers(1, 10))
    per_channel = bool(rng.random() < 0.7)
    in_zp, out_zp = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
    act_min, act_max = rand_act(rng, out_zp)
    p = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, k_h=k_h, k_w=k_w,
             stride_h=stride[0], stride_w=stride[1], dilation_h=dilation[0], dilation_w=dilation[1],
             pad_top=pt, pad_left=pl, input_offset=-in_zp, output_offset=out_zp,
             act_min=act_min, act_max=act_max, per_channel=int(per_channel))
    if depthwise:
        mult = int(rng.choice([1, 1, 1, 2, 3]))
        out_c = in_c * mult
        p.update(depth_multiplier=mult, out_c=out_c)
        p["filter"] = rand_i8(rng, k_h * k_w * out_c)
    else:
        out_c = int(rng.integers(1, 11))
        p["out_c"] = out_c
        p["filter"] = rand_i8(rng, out_c * k_h * k_w * in_c)
    p["bias"] = None if rng.random() < 0.2 else rng.integers(-(1 << 16), 1 << 16, size=out_c).astype(np.int32)
    p["multiplier"], p["shift"] = rand_requant(rng, out_c, per_channel, extreme)
    return p


# ------------------------------------------------------------ conv family

@pytest.mark.parametrize("seed", range(60))
def test_conv2d(lib, seed):
    rng = rng_for("conv", seed)
    p = conv_params(rng, extreme=seed % 6 == 5)
    x = rand_i8(rng, p["in_h"] * p["in_w"] * p["in_c"])
    check(lib, "conv2d_s8", p, x)


def test_conv2d_pointwise_large(lib):
    rng = rng_for("conv-large")
    p = dict(in_h=9, in_w=11, in_c=64, out_h=9, out_w=11, out_c=48, k_h=1, k_w=1, stride_h=1, stride_w=1,
             dilation_h=1, dilation_w=1, pad_top=0, pad_left=0, input_offset=128, output_offset=-128,
             act_min=-128, act_max=127, per_channel=1, filter=rand_i8(rng, 48 * 64),
             bias=rng.integers(-9999, 9999, 48).astype(np.int32))
    p["multiplier"], p["shift"] = rand_requant(rng, 48, True)
    # worst case inputs: all -128 with offset 128 -> 0, and all 127 -> 255
    for x in (np.full(9 * 11 * 64, -128, np.int8), np.full(9 * 11 * 64, 127, np.int8), rand_i8(rng, 9 * 11 * 64)):
        check(lib, "conv2d_s8", p, x)


@pytest.mark.parametrize("seed", range(60))
def test_depthwise_conv2d(lib, seed):
    rng = rng_for("dw", seed)
    p = conv_params(rng, depthwise=True, extreme=seed % 6 == 5)
    x = rand_i8(rng, p["in_h"] * p["in_w"] * p["in_c"])
    check(lib, "depthwise_conv2d_s8", p, x)


def run_inplace(lib, p: dict, x: np.ndarray) -> np.ndarray:
    """C in-place depthwise on a guarded buffer; returns the output bytes."""
    keep: list = []
    s = _fill(Depthwise, p, keep)
    size = lib.mcf_depthwise_conv2d_s8_inplace_scratch_size(ct.byref(s))
    assert size == SCRATCH_SIZE["depthwise_conv2d_s8_inplace"](p)
    assert 0 <= size <= p["in_h"] * p["in_w"]
    guard = 32
    buf = np.full(x.size + guard, 0x3C, dtype=np.int8)
    buf[:x.size] = x
    scratch = np.full(size + guard, 0x2D, dtype=np.int8)
    status = lib.mcf_depthwise_conv2d_s8_inplace(ct.byref(s), buf.ctypes.data_as(P8), scratch.ctypes.data_as(P8))
    assert status == 0
    assert np.all(buf[x.size:] == 0x3C), "wrote past the buffer"
    assert np.all(scratch[size:] == 0x2D), "wrote past the scratch"
    return buf[:p["out_h"] * p["out_w"] * p["out_c"]].copy()


@pytest.mark.parametrize("seed", range(40))
def test_depthwise_inplace_equals_normal(lib, seed):
    rng = rng_for("dw-inplace", seed)
    while True:
        p = conv_params(rng, depthwise=True)
        if p["depth_multiplier"] == 1 and p["out_h"] * p["out_w"] <= p["in_h"] * p["in_w"]:
            break
    x = rand_i8(rng, p["in_h"] * p["in_w"] * p["in_c"])
    normal = check(lib, "depthwise_conv2d_s8", p, x)
    assert np.array_equal(run_inplace(lib, p, x), normal)
    assert np.array_equal(KERNELS["depthwise_conv2d_s8_inplace"](p, x), normal)


def test_depthwise_inplace_geometry_sweep(lib):
    """Every stride/padding/dilation the struct allows on small shapes,
    including wide outputs (heavy padding) that overwrite rows ahead of the
    window and outputs shorter than the input."""
    rng = rng_for("dw-sweep")
    cases = 0
    for k in (1, 2, 3, 5):
        for stride in (1, 2, 3):
            for dil in (1, 2):
                for in_h, in_w in ((1, 1), (2, 5), (5, 2), (4, 4), (7, 3), (6, 9)):
                    eff = (k - 1) * dil + 1
                    for pt in range(0, eff + 1):
                        for extra in (0, 1, 3):
                            pl = int(rng.integers(0, eff + 1))
                            out_h = (in_h + pt + extra - eff) // stride + 1
                            out_w = (in_w + pl + int(rng.integers(0, eff + 2)) - eff) // stride + 1
                            if out_h < 1 or out_w < 1 or out_h * out_w > in_h * in_w:
                                continue
                            c = int(rng.integers(1, 4))
                            p = dict(in_h=in_h, in_w=in_w, in_c=c, out_h=out_h, out_w=out_w, out_c=c,
                                     depth_multiplier=1, k_h=k, k_w=k, stride_h=stride, stride_w=stride,
                                     dilation_h=dil, dilation_w=dil, pad_top=pt, pad_left=pl,
                                     input_offset=int(rng.integers(-127, 129)),
                                     output_offset=int(rng.integers(-128, 128)), act_min=-128, act_max=127,
                                     per_channel=1, filter=rand_i8(rng, k * k * c),
                                     bias=rng.integers(-500, 500, c).astype(np.int32))
                            p["multiplier"], p["shift"] = rand_requant(rng, c, True)
                            x = rand_i8(rng, in_h * in_w * c)
                            expected = KERNELS["depthwise_conv2d_s8"](p, x)
                            got = run_inplace(lib, p, x)
                            assert np.array_equal(got, expected), _short(p)
                            cases += 1
    assert cases > 300


def test_depthwise_inplace_scratch_is_small_for_mobilenet_shapes(lib):
    # 3x3 stride 1 'same': 3 rows; 3x3 stride 2 on even input: 3 rows
    for in_hw, stride, pad, out_hw in ((72, 1, 1, 72), (72, 2, 0, 36), (36, 1, 1, 36)):
        p = dict(in_h=in_hw, in_w=in_hw, in_c=8, out_h=out_hw, out_w=out_hw, out_c=8, depth_multiplier=1,
                 k_h=3, k_w=3, stride_h=stride, stride_w=stride, dilation_h=1, dilation_w=1,
                 pad_top=pad, pad_left=pad, input_offset=0, output_offset=0, act_min=-128, act_max=127,
                 per_channel=0, filter=np.zeros(72, np.int8), bias=None,
                 multiplier=np.array([1 << 30], np.int32), shift=np.array([0], np.int32))
        assert SCRATCH_SIZE["depthwise_conv2d_s8_inplace"](p) <= 4 * in_hw


def fc_params(rng, seed: int) -> dict:
    """1-4 rows, 1-299 input and 1-39 output features, per tensor or channel."""
    rows, k, n = int(rng.integers(1, 5)), int(rng.integers(1, 300)), int(rng.integers(1, 40))
    per_channel = bool(rng.random() < 0.5)
    in_zp, out_zp = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
    act_min, act_max = rand_act(rng, out_zp)
    p = dict(rows=rows, in_features=k, out_features=n, input_offset=-in_zp, output_offset=out_zp,
             act_min=act_min, act_max=act_max, per_channel=int(per_channel), filter=rand_i8(rng, n * k),
             bias=None if seed % 4 == 0 else rng.integers(-(1 << 20), 1 << 20, n).astype(np.int32))
    p["multiplier"], p["shift"] = rand_requant(rng, n, per_channel, extreme=seed % 5 == 4)
    return p


@pytest.mark.parametrize("seed", range(30))
def test_fully_connected(lib, seed):
    rng = rng_for("fc", seed)
    p = fc_params(rng, seed)
    check(lib, "fully_connected_s8", p, rand_i8(rng, p["rows"] * p["in_features"]))


# ------------------------------------------------------------- elementwise

def rand_scale(rng, lo=-10, hi=0) -> float:
    return float(np.float32(np.exp2(rng.uniform(lo, hi))))


@pytest.mark.parametrize("seed", range(30))
def test_add(lib, seed):
    rng = rng_for("add", seed)
    s1, s2 = rand_scale(rng), rand_scale(rng)
    if seed % 3 == 0:
        s2 = s1  # equal scales: exact halves everywhere
    so = float(np.float32(max(s1, s2) * np.exp2(rng.uniform(-1, 3))))
    out_zp = int(rng.integers(-128, 128))
    act = rand_act(rng, out_zp)
    size = int(rng.integers(1, 500))
    p = fp.add_params(s1, int(rng.integers(-128, 128)), s2, int(rng.integers(-128, 128)), so, out_zp,
                      act_min=act[0], act_max=act[1], size=size)
    a, b = rand_i8(rng, size), rand_i8(rng, size)
    expected = check(lib, "add_s8", p, a, b)
    # in place: output aliases input1
    keep: list = []
    s = _fill(Add, p, keep)
    buf = a.copy()
    assert lib.mcf_add_s8(ct.byref(s), buf.ctypes.data_as(P8), b.ctypes.data_as(P8), buf.ctypes.data_as(P8)) == 0
    assert np.array_equal(buf, expected)


def pool_params(rng, requantize=False):
    while True:
        k_h, k_w = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        s_h, s_w = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        in_h, in_w = int(rng.integers(1, 14)), int(rng.integers(1, 14))
        pt, pb = int(rng.integers(0, k_h)), int(rng.integers(0, k_h))
        pl, pr = int(rng.integers(0, k_w)), int(rng.integers(0, k_w))
        out_h, out_w = (in_h + pt + pb - k_h) // s_h + 1, (in_w + pl + pr - k_w) // s_w + 1
        if out_h < 1 or out_w < 1:
            continue
        p = dict(in_h=in_h, in_w=in_w, channels=int(rng.integers(1, 10)), out_h=out_h, out_w=out_w,
                 k_h=k_h, k_w=k_w, stride_h=s_h, stride_w=s_w, pad_top=pt, pad_left=pl)
        try:  # windows must touch the input
            KERNELS["avg_pool_s8"](dict(p, act_min=-128, act_max=127, requantize=0,
                                        input_offset=0, output_offset=0, multiplier=0, shift=0),
                                   np.zeros(in_h * in_w * p["channels"], np.int8))
        except ValueError:
            continue
        break
    out_zp = int(rng.integers(-128, 128))
    p["act_min"], p["act_max"] = rand_act(rng, out_zp)
    if requantize:
        m, s = quantize_real(np.exp2(rng.uniform(-3, 3)))
        p.update(requantize=1, input_offset=int(rng.integers(-127, 129)), output_offset=out_zp,
                 multiplier=m, shift=s)
    else:
        p.update(requantize=0, input_offset=0, output_offset=0, multiplier=1 << 30, shift=1)
    return p


def quantize_real(real):
    return fp.quantize_multiplier(float(real))


@pytest.mark.parametrize("seed", range(40))
def test_avg_pool(lib, seed):
    rng = rng_for("avg", seed)
    p = pool_params(rng, requantize=seed % 2 == 1)
    check(lib, "avg_pool_s8", p, rand_i8(rng, p["in_h"] * p["in_w"] * p["channels"]))


@pytest.mark.parametrize("seed", range(25))
def test_max_pool(lib, seed):
    rng = rng_for("max", seed)
    p = pool_params(rng)
    check(lib, "max_pool_s8", p, rand_i8(rng, p["in_h"] * p["in_w"] * p["channels"]))


def test_avg_pool_rounding_ties(lib):
    """2 taps: sums 1, -1, 3, -3 are exact halves; TFLite rounds them away from 0."""
    p = dict(in_h=1, in_w=8, channels=1, out_h=1, out_w=4, k_h=1, k_w=2, stride_h=1, stride_w=2,
             pad_top=0, pad_left=0, act_min=-128, act_max=127, requantize=0, input_offset=0,
             output_offset=0, multiplier=1 << 30, shift=1)
    x = np.array([0, 1, 0, -1, 1, 2, -1, -2], np.int8)
    out = check(lib, "avg_pool_s8", p, x)
    assert out.tolist() == [1, -1, 2, -2]


@pytest.mark.parametrize("seed", range(25))
def test_mean(lib, seed):
    rng = rng_for("mean", seed)
    h, w, c = int(rng.integers(1, 24)), int(rng.integers(1, 24)), int(rng.integers(1, 20))
    s_in = rand_scale(rng, -8, 0)
    s_out = float(np.float32(s_in * np.exp2(rng.uniform(-4, 4 if seed % 5 else 12))))
    p = dict(in_h=h, in_w=w, channels=c)
    p.update(fp.mean_params(s_in, int(rng.integers(-128, 128)), s_out, int(rng.integers(-128, 128)), h * w))
    check(lib, "mean_s8", p, rand_i8(rng, h * w * c))


def test_mean_large_and_tiny_ratio(lib):
    rng = rng_for("mean-extreme")
    for real, hw in ((2.0 ** -30, 5), (2.0 ** -31 * 1.5, 1), (100.0, 3), (1.0, 1), (1.0, 200)):
        m, s = fp.quantize_multiplier(real)
        p = dict(in_h=hw, in_w=hw, channels=3, input_offset=7, output_offset=-5, multiplier=m, shift=s)
        check(lib, "mean_s8", p, rand_i8(rng, hw * hw * 3))


SOFTMAX_SCALES = [1 / 256, 1e-3, 0.01, 0.05, 1 / 16, 0.1, 0.25, 0.5, 1.0, 4.0, 100.0]


@pytest.mark.parametrize("scale", SOFTMAX_SCALES)
def test_softmax(lib, scale):
    rng = rng_for("softmax", int(scale * 1e6))
    mult, left_shift = fp.preprocess_softmax_scaling(1.0, scale, 5)
    diff_min = -fp.calculate_input_radius(5, left_shift, 31)
    for rows, cols in ((1, 1), (1, 10), (3, 7), (2, 100), (4, 255), (1, 1001)):
        p = dict(rows=rows, cols=cols, input_multiplier=mult, input_left_shift=left_shift, diff_min=diff_min)
        x = rand_i8(rng, rows * cols)
        if cols > 4:  # also a peaked row set
            x[:cols] = np.clip(rng.normal(0, 5, cols), -128, 127).astype(np.int8)
        out = check(lib, "softmax_s8", p, x)
        if cols == 1:
            assert out.tolist() == [127] * rows
        keep: list = []
        st = _fill(Softmax, p, keep)
        buf = x.copy()  # in place: output aliases the input
        assert lib.mcf_softmax_s8(ct.byref(st), buf.ctypes.data_as(P8), buf.ctypes.data_as(P8)) == 0
        assert np.array_equal(buf, out)


def test_softmax_flat_wide_rows(lib):
    """Flat rows of >= 512 columns push TFLM's exponent above 31 (TFLM
    aborts there); mcuforge defines the result as the correctly rounded 0."""
    mult, left_shift = fp.preprocess_softmax_scaling(1.0, 0.1, 5)
    diff_min = -fp.calculate_input_radius(5, left_shift, 31)
    for cols in (511, 512, 600, 2000):
        p = dict(rows=1, cols=cols, input_multiplier=mult, input_left_shift=left_shift, diff_min=diff_min)
        out = check(lib, "softmax_s8", p, np.zeros(cols, np.int8))
        assert np.all(out == out[0])


def test_softmax_beta(lib):
    rng = rng_for("softmax-beta")
    for beta in (0.5, 2.0, 1e-3):
        mult, left_shift = fp.preprocess_softmax_scaling(beta, 0.1, 5)
        diff_min = -fp.calculate_input_radius(5, left_shift, 31)
        p = dict(rows=3, cols=33, input_multiplier=mult, input_left_shift=left_shift, diff_min=diff_min)
        check(lib, "softmax_s8", p, rand_i8(rng, 99))


# ------------------------------------------------------------------- data

@pytest.mark.parametrize("seed", range(20))
def test_requantize(lib, seed):
    rng = rng_for("requant", seed)
    size = int(rng.integers(1, 300))
    if seed % 4 == 0:
        m, s = 1 << 30, 1
        in_zp = int(rng.integers(-128, 128))
        out_zp = in_zp
    else:
        m, s = quantize_real(np.exp2(rng.uniform(-6, 6)))
        in_zp, out_zp = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
    act = rand_act(rng, out_zp)
    p = dict(size=size, input_offset=-in_zp, output_offset=out_zp, multiplier=m, shift=s,
             act_min=act[0], act_max=act[1])
    x = rand_i8(rng, size)
    expected = check(lib, "requantize_s8", p, x)
    keep: list = []
    st = _fill(Requantize, p, keep)
    buf = x.copy()  # in place
    assert lib.mcf_requantize_s8(ct.byref(st), buf.ctypes.data_as(P8), buf.ctypes.data_as(P8)) == 0
    assert np.array_equal(buf, expected)


def test_requantize_identity_is_exact():
    x = np.arange(-128, 128, dtype=np.int8)
    p = dict(size=256, input_offset=0, output_offset=0, multiplier=1 << 30, shift=1, act_min=-128, act_max=127)
    assert np.array_equal(KERNELS["requantize_s8"](p, x), x)


@pytest.mark.parametrize("seed", range(15))
def test_concat(lib, seed):
    rng = rng_for("concat", seed)
    n, outer = int(rng.integers(1, 5)), int(rng.integers(0, 6))
    inner = rng.integers(0, 20, n).astype(np.int32)
    requant = []
    for i in range(n):
        if rng.random() < 0.5:
            requant.append(dict(input_offset=0, output_offset=0, multiplier=1 << 30, shift=1,
                                act_min=-128, act_max=127))
        else:
            m, s = quantize_real(np.exp2(rng.uniform(-2, 2)))
            requant.append(dict(input_offset=int(rng.integers(-127, 129)), output_offset=int(rng.integers(-128, 128)),
                                multiplier=m, shift=s, act_min=-128, act_max=127))
    p = dict(num_inputs=n, outer=outer, inner=inner, requant=requant)
    inputs = [rand_i8(rng, outer * int(v)) for v in inner]
    if outer * int(inner.sum()) == 0:
        assert KERNELS["concat_s8"](p, inputs).size == 0
        return
    check(lib, "concat_s8", p, inputs)


@pytest.mark.parametrize("seed", range(15))
def test_pad(lib, seed):
    rng = rng_for("pad", seed)
    p = dict(in_h=int(rng.integers(1, 8)), in_w=int(rng.integers(1, 8)), in_c=int(rng.integers(1, 6)),
             pad_value=int(rng.integers(-128, 128)))
    for k in ("pad_top", "pad_bottom", "pad_left", "pad_right", "pad_front", "pad_back"):
        p[k] = int(rng.integers(0, 4))
    check(lib, "pad_s8", p, rand_i8(rng, p["in_h"] * p["in_w"] * p["in_c"]))


@pytest.mark.parametrize("seed", range(15))
def test_transpose(lib, seed):
    rng = rng_for("transpose", seed)
    shape = [int(v) for v in rng.integers(1, 6, 4)]
    perm = [int(v) for v in rng.permutation(4)]
    p = dict(in_shape=shape, perm=perm)
    x = rand_i8(rng, int(np.prod(shape)))
    out = check(lib, "transpose_s8", p, x)
    assert np.array_equal(out, x.reshape(shape).transpose(perm).reshape(-1))


# ------------------------------------------------- tables and binary ops

@pytest.mark.parametrize("seed", range(6))
def test_lut(lib, seed):
    rng = rng_for("lut", seed)
    size = int(rng.integers(1, 700))
    p = dict(size=size, table=rand_i8(rng, 256))
    x = rand_i8(rng, size)
    expected = check(lib, "lut_s8", p, x)
    assert np.array_equal(expected, p["table"][x.astype(np.int64) + 128])  # table[x + 128], independently


def binary_shapes(rng) -> tuple[tuple[int, ...], tuple[int, ...], dict]:
    """Random broadcastable 4-D shapes and the broadcast fields mcuforge lowers them to."""
    from mcuforge.ir import Node
    from mcuforge.ops import broadcast_params

    out = tuple(int(v) for v in rng.integers(1, 7, 4))
    a = tuple(d if rng.random() < 0.6 else 1 for d in out)
    b = tuple(d if rng.random() < 0.6 else 1 for d in out)
    out = tuple(max(x, y) for x, y in zip(a, b))
    return a, b, broadcast_params(Node("n", "mul", [], []), a, b, out)


def binary_quant(rng, kernel: str) -> dict:
    z = [int(v) for v in rng.integers(-128, 128, 3)]
    act = rand_act(rng, z[2])
    if kernel == "mul_s8":
        m, s = quantize_real(np.exp2(rng.uniform(-14, -4)))
        return dict(input1_offset=-z[0], input2_offset=-z[1], output_offset=z[2], multiplier=m, shift=s,
                    act_min=act[0], act_max=act[1])
    if kernel == "sub_s8":
        s1, s2, so = (rand_scale(rng) for _ in range(3))
        return fp.sub_params(s1, z[0], s2, z[1], so, z[2], act_min=act[0], act_max=act[1])
    p = dict(output_offset=z[2])
    for k in (1, 2):
        m, s = (1 << 30, 1) if rng.random() < 0.4 else quantize_real(np.exp2(rng.uniform(-2, 2)))
        p.update({f"input{k}_offset": -z[k - 1], f"input{k}_multiplier": m, f"input{k}_shift": s})
    return p


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("kernel", ["mul_s8", "sub_s8", "maximum_s8", "minimum_s8"])
def test_binary(lib, kernel, seed):
    rng = rng_for("binary", kernel, seed)
    a_shape, b_shape, shape = binary_shapes(rng) if seed % 3 else ((1, 3, 5, 7),) * 2 + (None,)
    if shape is None:
        from mcuforge.ir import Node
        from mcuforge.ops import broadcast_params
        shape = broadcast_params(Node("n", "mul", [], []), a_shape, a_shape, a_shape)
    p = {**shape, **binary_quant(rng, kernel)}
    a, b = rand_i8(rng, int(np.prod(a_shape))), rand_i8(rng, int(np.prod(b_shape)))
    expected = check(lib, kernel, p, a, b)
    # NumPy's own broadcasting gives the same operand pairs as the strided walk
    if kernel in ("maximum_s8", "minimum_s8") and p["input1_multiplier"] == p["input2_multiplier"] == 1 << 30 \
            and p["input1_shift"] == p["input2_shift"] == 1 and p["input1_offset"] == p["input2_offset"] \
            == -p["output_offset"]:
        fn = np.maximum if kernel == "maximum_s8" else np.minimum
        assert np.array_equal(expected, fn(a.reshape(a_shape), b.reshape(b_shape)).reshape(-1))
    if not p["broadcast"]:  # in place: output over input 1
        keep: list = []
        st = _fill(STRUCTS[kernel], p, keep)
        buf = a.copy()
        assert getattr(lib, "mcf_" + kernel)(ct.byref(st), buf.ctypes.data_as(P8), b.ctypes.data_as(P8),
                                              buf.ctypes.data_as(P8)) == 0
        assert np.array_equal(buf, expected)


@pytest.mark.parametrize("seed", range(8))
def test_strided_slice(lib, seed):
    rng = rng_for("slice", seed)
    shape = [int(v) for v in rng.integers(1, 7, 4)]
    begin, stride, count = [], [], []
    for n in shape:
        s = int(rng.choice([-2, -1, 1, 2, 3]))
        b = int(rng.integers(0, n))
        room = (n - b - 1) // s if s > 0 else b // -s
        begin.append(b), stride.append(s), count.append(int(rng.integers(0, room + 1)) + 1)
    p = dict(in_shape=shape, begin=begin, stride=stride, out_shape=count)
    x = rand_i8(rng, int(np.prod(shape)))
    got = check(lib, "strided_slice_s8", p, x)
    slices = tuple(slice(b, b + s * n if b + s * n >= 0 else None, s) for b, s, n in zip(begin, stride, count))
    assert np.array_equal(got, x.reshape(shape)[slices].reshape(-1))  # NumPy's own slicing


@pytest.mark.parametrize("seed", range(6))
def test_resize_nearest(lib, seed):
    rng = rng_for("resize", seed)
    h, w, c, oh, ow = (int(v) for v in rng.integers(1, 9, 5))
    p = dict(in_h=h, in_w=w, channels=c, out_h=oh, out_w=ow, row_index=rng.integers(0, h, oh),
             col_index=rng.integers(0, w, ow))
    check(lib, "resize_nearest_s8", p, rand_i8(rng, h * w * c))


def tconv_params(rng, seed: int) -> dict:
    h, w, c, oc = (int(v) for v in rng.integers(1, 6, 4))
    k_h, k_w, s_h, s_w = (int(v) for v in rng.integers(1, 5, 4))
    pad_top, pad_left = int(rng.integers(0, k_h)), int(rng.integers(0, k_w))
    oh = max(1, (h - 1) * s_h + k_h - pad_top - int(rng.integers(0, 2)))
    ow = max(1, (w - 1) * s_w + k_w - pad_left - int(rng.integers(0, 2)))
    per_channel = bool(seed % 2)
    m, s = rand_requant(rng, oc, per_channel)
    zp_out = int(rng.integers(-128, 128))
    act = rand_act(rng, zp_out)
    return dict(in_h=h, in_w=w, in_c=c, out_h=oh, out_w=ow, out_c=oc, k_h=k_h, k_w=k_w, stride_h=s_h, stride_w=s_w,
                pad_top=pad_top, pad_left=pad_left, input_offset=-int(rng.integers(-128, 128)), output_offset=zp_out,
                act_min=act[0], act_max=act[1], per_channel=int(per_channel),
                filter=rand_i8(rng, oc * k_h * k_w * c), bias=None if seed % 3 == 0 else rng.integers(-5000, 5000, oc),
                multiplier=m, shift=s)


@pytest.mark.parametrize("seed", range(12))
def test_transpose_conv(lib, seed):
    rng = rng_for("tconv", seed)
    p = tconv_params(rng, seed)
    check(lib, "transpose_conv_s8", p, rand_i8(rng, p["in_h"] * p["in_w"] * p["in_c"]))


# ------------------------------------------------------------- bad params

BAD = [
    ("conv2d_s8", dict(stride_h=0)), ("conv2d_s8", dict(act_min=10, act_max=5)),
    ("conv2d_s8", dict(shift=np.array([40] * 16, np.int32))),
    ("depthwise_conv2d_s8", dict(out_c=-1)),   # out_c != in_c * depth_multiplier
    ("avg_pool_s8", dict(pad_left=9)), ("avg_pool_s8", dict(out_w=40)),   # windows in the padding
    ("softmax_s8", dict(diff_min=1)),
]


@pytest.mark.parametrize("kernel,change", BAD)
def test_bad_params_rejected_by_both(lib, kernel, change):
    rng = rng_for("bad", kernel)
    if kernel.startswith("conv") or kernel.startswith("depthwise"):
        p = conv_params(rng, depthwise=kernel.startswith("depthwise"))
        n = p["in_h"] * p["in_w"] * p["in_c"]
        p["per_channel"] = 1 if "shift" in change else p["per_channel"]
    elif kernel == "avg_pool_s8":
        p = pool_params(rng)
        p["k_w"] = 2
        n = p["in_h"] * p["in_w"] * p["channels"]
    else:
        p = dict(rows=1, cols=4, input_multiplier=1 << 30, input_left_shift=20, diff_min=-10)
        n = 4
    p.update(change)
    with pytest.raises(ValueError):
        KERNELS[kernel](p, np.zeros(n, np.int8))
    status, out = run_c(lib, kernel, p, np.zeros(n, np.int8), out_size=4096)
    assert status == -1
    assert np.all(out == 0x55), "a rejected call must not write"


def test_inplace_rejects_depth_multiplier(lib):
    p = conv_params(rng_for("inplace-bad"), depthwise=True)
    p.update(depth_multiplier=2, out_c=2 * p["in_c"])
    keep: list = []
    s = _fill(Depthwise, p, keep)
    assert lib.mcf_depthwise_conv2d_s8_inplace_scratch_size(ct.byref(s)) == -1
    with pytest.raises(ValueError):
        SCRATCH_SIZE["depthwise_conv2d_s8_inplace"](p)


# ------------------------------------------------------- fixed point

def c_srdhm(lib, a, b):
    f = lib.mcf_saturating_rounding_doubling_high_mul
    f.restype, f.argtypes = I32, [I32, I32]
    return f(a, b)


def c_rdbp(lib, x, e):
    f = lib.mcf_rounding_divide_by_pot
    f.restype, f.argtypes = I32, [I32, ct.c_int]
    return f(x, e)


def c_mbqm(lib, x, m, s):
    f = lib.mcf_multiply_by_quantized_multiplier
    f.restype, f.argtypes = I32, [I32, I32, ct.c_int]
    return f(x, m, s)


MIN, MAX = fp.INT32_MIN, fp.INT32_MAX


def test_fixedpoint_hand_cases(lib):
    srdhm = [
        ((MIN, MIN), MAX),            # the one overflow: saturates
        ((MIN, MAX), -MAX),           # -2^31 * (2^31-1) / 2^31 = -(2^31 - 1)
        ((MAX, MAX), MAX - 1),        # (2^31-1)^2 / 2^31 = 2^31 - 2 + 2^-31 -> 2^31 - 2
        ((1, 1 << 30), 1),            # 0.5 rounds up
        ((-1, 1 << 30), 0),           # -0.5 rounds up too (gemmlowp nudge)
        ((-3, 1 << 30), -1),          # -1.5 -> -1
        ((3, 1 << 30), 2),            # 1.5 -> 2
        ((1 << 30, 1 << 30), 1 << 29),
        ((0, MIN), 0),
    ]
    for (a, b), want in srdhm:
        assert c_srdhm(lib, a, b) == want, (a, b)
        assert fp.saturating_rounding_doubling_high_mul(a, b).item() == want, (a, b)
    rdbp = [
        ((5, 1), 3), ((-5, 1), -3),   # +-2.5: ties away from zero
        ((6, 2), 2), ((-6, 2), -2),   # +-1.5
        ((2, 2), 1), ((-2, 2), -1),   # +-0.5
        ((1, 2), 0), ((-1, 2), 0),    # +-0.25
        ((7, 0), 7), ((-7, 0), -7),
        ((MAX, 31), 1), ((MIN, 31), -1), ((MIN + 1, 31), -1), ((-(1 << 30), 31), -1),
        ((-(1 << 30) + 1, 31), 0), ((1 << 30, 31), 1), (((1 << 30) - 1, 31), 0),
    ]
    for (x, e), want in rdbp:
        assert c_rdbp(lib, x, e) == want, (x, e)
        assert fp.rounding_divide_by_pot(x, e).item() == want, (x, e)
    mbqm = [
        ((3, 1 << 30, 1), 3),             # identity
        ((1000, 1 << 30, 0), 500),        # * 0.5
        ((-7, 1 << 30, -1), -2),          # -7 / 4 = -1.75
        ((6, 1 << 30, -2), 1),            # 6 / 8 = 0.75
        ((-4, 1 << 30, -2), -1),          # -0.5 -> tie away from zero in the divide
        ((1 << 20, MAX, 31), MAX),        # left shift wraps to 0 ... (2^20 << 31 == 0 mod 2^32)
    ]
    mbqm[-1] = ((1 << 20, MAX, 31), 0)
    for (x, m, s), want in mbqm:
        assert c_mbqm(lib, x, m, s) == want, (x, m, s)
        assert fp.multiply_by_quantized_multiplier(x, m, s).item() == want, (x, m, s)


def test_fixedpoint_random_against_c(lib):
    rng = rng_for("fixedpoint")
    edge = np.array([MIN, MIN + 1, -(1 << 30), -1, 0, 1, 1 << 30, MAX - 1, MAX], np.int64)
    a = np.concatenate([edge, rng.integers(MIN, MAX, 400, endpoint=True)])
    b = np.concatenate([edge[::-1], rng.integers(MIN, MAX, 400, endpoint=True)])
    got = fp.saturating_rounding_doubling_high_mul(a, b)
    assert [c_srdhm(lib, int(x), int(y)) for x, y in zip(a, b)] == got.tolist()
    e = rng.integers(0, 32, a.size)
    got = fp.rounding_divide_by_pot(a, e)
    assert [c_rdbp(lib, int(x), int(k)) for x, k in zip(a, e)] == got.tolist()
    x = rng.integers(-(1 << 24), 1 << 24, a.size)
    m = rng.integers(1 << 30, MAX, a.size, endpoint=True)
    s = rng.integers(-31, 32, a.size)
    got = fp.multiply_by_quantized_multiplier(x, m, s)
    assert [c_mbqm(lib, int(v), int(mm), int(ss)) for v, mm, ss in zip(x, m, s)] == got.tolist()


def test_quantize_multiplier_cases():
    assert fp.quantize_multiplier(0.0) == (0, 0)
    assert fp.quantize_multiplier(0.5) == (1 << 30, 0)
    assert fp.quantize_multiplier(1.0) == (1 << 30, 1)
    assert fp.quantize_multiplier(0.75) == (3 << 29, 0)
    # the mantissa rounds to 2^31: halves and the shift goes up by one
    assert fp.quantize_multiplier(1.0 - 2.0 ** -33) == (1 << 30, 1)
    # just above 2^-32 the shift would be -31 - 1: flushed to zero
    assert fp.quantize_multiplier(2.0 ** -33) == (0, 0)
    assert fp.quantize_multiplier(2.0 ** -32) == (1 << 30, -31)
    # ties of the Q31 mantissa round half away from zero (std::round)
    real = (2 ** 30 + 0.5) / 2 ** 31          # mantissa exactly x.5 in Q31 units
    assert fp.quantize_multiplier(real) == (2 ** 30 + 1, 0)
    assert fp.quantize_multiplier(-real) == (-(2 ** 30 + 1), 0)
    reals = np.concatenate([np.exp2(np.linspace(-40, 20, 301)), [0.0, real, 1 - 2.0 ** -33, 0.3, 1e-7]])
    m, s = fp.quantize_multiplier_array(reals)
    assert m.dtype == np.int32 and s.dtype == np.int32
    assert list(zip(m.tolist(), s.tolist())) == [fp.quantize_multiplier(r) for r in reals]
    for r in reals[(reals > 2.0 ** -31) & (reals < 1 - 2.0 ** -30)]:
        mult, shift = fp.quantize_multiplier_smaller_than_one_exp(r)
        assert shift <= 0 and abs(mult * 2.0 ** (shift - 31) - r) <= r * 2.0 ** -30
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError):
            fp.quantize_multiplier(bad)
        with pytest.raises(ValueError):
            fp.quantize_multiplier_array([0.5, bad])
    for bad in (1.0, 1.0 - 2.0 ** -33, 0.0):   # the middle one rounds up to 1.0: TFLite CHECK-fails
        with pytest.raises(ValueError):
            fp.quantize_multiplier_smaller_than_one_exp(bad)


def test_softmax_scaling_and_radius():
    # scale 1/16: beta*s*2^26 = 2^22 -> (2^30, 23); radius 31*2^26/2^23 = 248
    assert fp.preprocess_softmax_scaling(1.0, 1 / 16) == (1 << 30, 23)
    assert fp.calculate_input_radius(5, 23) == 248
    # huge scale: capped at 2^31 - 1 -> shift 31, radius floor(31/32) = 0
    mult, shift = fp.preprocess_softmax_scaling(1.0, 1000.0)
    assert (mult, shift) == (MAX, 31) and fp.calculate_input_radius(5, shift) == 0


def test_add_params_tflite_example():
    # equal scales: each input multiplier is 1/2, output 2s / (2^20 s) = 2^-19 = 0.5 * 2^-18
    p = fp.add_params(0.1, 3, 0.1, -4, 0.1, 5)
    assert (p["input1_multiplier"], p["input1_shift"]) == (1 << 30, 0)
    assert (p["input2_offset"], p["output_offset"]) == (4, 5)
    assert (p["output_multiplier"], p["output_shift"]) == (1 << 30, -18)
    assert "size" not in p and fp.add_params(0.1, 0, 0.1, 0, 0.1, 0, size=7)["size"] == 7


# ---------------------------------------------------------- compilation

def test_runtime_sources_cover_every_kernel():
    assert set(RUNTIME_SOURCES) == set(KERNELS)
    names = {p.name for p in SOURCES}
    for kernel, files in RUNTIME_SOURCES.items():
        assert set(files) <= names, kernel


@pytest.mark.parametrize("kernel", sorted(RUNTIME_SOURCES))
def test_each_kernel_links_from_its_sources(tmp_path, kernel):
    """A program calling only mcf_<kernel> links from RUNTIME_SOURCES[kernel]."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("no host gcc")
    main = tmp_path / "main.c"
    main.write_text('#include "mcuforge/kernels.h"\n#include "mcuforge/kernels_s16.h"\n'
                    f"int main(void) {{ void (*volatile fn)(void) = (void (*)(void))mcf_{kernel};\n"
                    "  return fn == 0; }\n")
    srcs = [str(RUNTIME_SRC_DIR / f) for f in RUNTIME_SOURCES[kernel]]
    res = subprocess.run([gcc, *STRICT, f"-I{RUNTIME_INCLUDE_DIR}", str(main), *srcs, "-o", str(tmp_path / "a")],
                         capture_output=True, text=True)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr


@pytest.mark.parametrize("source", [p.name for p in SOURCES])
def test_cortex_m4_compile_without_warnings(tmp_path, source):
    cc = shutil.which("arm-none-eabi-gcc")
    if cc is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    res = subprocess.run([cc, "-mcpu=cortex-m4", "-mthumb", *STRICT, "-Os", f"-I{RUNTIME_INCLUDE_DIR}",
                          "-c", str(RUNTIME_SRC_DIR / source), "-o", str(tmp_path / "x.o")],
                         capture_output=True, text=True)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr
    nm = shutil.which("arm-none-eabi-nm")
    if nm is not None:  # no global or static state: nothing in .data/.bss
        symbols = subprocess.run([nm, str(tmp_path / "x.o")], capture_output=True, text=True).stdout
        state = [line for line in symbols.splitlines() if line.split()[-2:-1] and line.split()[-2] in "bBdDcC"]
        assert not state, state


def test_no_float_no_malloc_in_runtime():
    for src in SOURCES:
        code = re.sub(r"/\*.*?\*/", "", src.read_text(), flags=re.S)
        for word in ("malloc", "free", "float", "double", "math.h"):
            hits = [line for line in code.splitlines() if re.search(rf"\b{re.escape(word)}\b", line)]
            assert not hits, f"{src.name}: {word}: {hits}"


def test_no_undefined_behaviour_under_ubsan(tmp_path, capfd):
    """The kernels, built with -fsanitize=undefined, on a spread of random and
    extreme parameters: no UBSan report (shift/overflow/bounds) on stderr."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("no host gcc")
    so = tmp_path / "libmcf_ubsan.so"
    res = subprocess.run([gcc, "-std=c99", "-O1", "-fPIC", "-shared", "-fsanitize=undefined",
                          "-fsanitize-recover=undefined",
                          f"-I{RUNTIME_INCLUDE_DIR}", *map(str, SOURCES), "-o", str(so)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"no UBSan runtime: {res.stderr.strip()[:200]}")
    ub = ct.CDLL(str(so))
    for seed in range(40):
        rng = rng_for("ubsan", seed)
        for depthwise in (False, True):
            p = conv_params(rng, depthwise=depthwise, extreme=seed % 3 == 0)
            x = rand_i8(rng, p["in_h"] * p["in_w"] * p["in_c"])
            check(ub, "depthwise_conv2d_s8" if depthwise else "conv2d_s8", p, x)
            if depthwise and p["depth_multiplier"] == 1 and p["out_h"] * p["out_w"] <= p["in_h"] * p["in_w"]:
                run_inplace(ub, p, x)
        pp = pool_params(rng, requantize=seed % 2 == 1)
        n = pp["in_h"] * pp["in_w"] * pp["channels"]
        check(ub, "avg_pool_s8", pp, rand_i8(rng, n))
        check(ub, "max_pool_s8", pp, rand_i8(rng, n))
        m, s = fp.quantize_multiplier(float(np.exp2(rng.uniform(-31, 10))))
        h, w = int(rng.integers(1, 30)), int(rng.integers(1, 30))
        check(ub, "mean_s8", dict(in_h=h, in_w=w, channels=3, input_offset=int(rng.integers(-127, 129)),
                                  output_offset=0, multiplier=m, shift=s), rand_i8(rng, h * w * 3))
        s1, s2 = rand_scale(rng), rand_scale(rng)
        check(ub, "add_s8", fp.add_params(s1, 3, s2, -100, 2 * max(s1, s2), 5, size=64),
              rand_i8(rng, 64), rand_i8(rng, 64))
        for kernel in ("mul_s8", "sub_s8", "maximum_s8", "minimum_s8"):
            a_shape, b_shape, shape = binary_shapes(rng)
            check(ub, kernel, {**shape, **binary_quant(rng, kernel)}, rand_i8(rng, int(np.prod(a_shape))),
                  rand_i8(rng, int(np.prod(b_shape))))
        tp = tconv_params(rng, seed)
        check(ub, "transpose_conv_s8", tp, rand_i8(rng, tp["in_h"] * tp["in_w"] * tp["in_c"]))
    for scale in SOFTMAX_SCALES:
        mult, left_shift = fp.preprocess_softmax_scaling(1.0, scale, 5)
        for cols in (1, 300, 1000):
            p = dict(rows=2, cols=cols, input_multiplier=mult, input_left_shift=left_shift,
                     diff_min=-fp.calculate_input_radius(5, left_shift, 31))
            check(ub, "softmax_s8", p, rand_i8(rng_for("ubsan-softmax", cols), 2 * cols))
            check(ub, "softmax_s8", p, np.zeros(2 * cols, np.int8))
    err = capfd.readouterr().err
    assert "runtime error" not in err, err[:2000]


# ------------------------------------------------------------ TFLM oracle
#
# Single-operator .tflite models are written with the flatbuffer schema that
# the `tflite_micro` package ships and run by its interpreter (TFLM's
# reference kernels); the NumPy twins, fed with parameters prepared the way
# TFLM prepares them, must give the same bytes. (The C kernels equal the
# twins by the tests above.)

def _tflm():
    schema = pytest.importorskip("tflite_micro.tensorflow.lite.micro.python.schema_py_generated")
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    flatbuffers = pytest.importorskip("flatbuffers")
    return schema, runtime, flatbuffers


def tflm_run(op: str, options_name: str | None, options: dict, tensors: list[dict],
             op_inputs: list[int], feeds: list[np.ndarray]) -> np.ndarray:
    """Build a one-operator model (last tensor is the output) and run it on TFLM."""
    from mcuforge.tflite_writer import build_model

    _, runtime, _ = _tflm()
    described = [dict(t, dtype=np.dtype(t.get("dtype", np.int8)).name) for t in tensors]
    out = len(tensors) - 1
    inputs = [i for i, t in enumerate(tensors) if t.get("data") is None and i != out]
    data = build_model(described, [(op, options_name, options, list(op_inputs), [out])], inputs, [out])
    interpreter = runtime.Interpreter.from_bytes(data, arena_size=1 << 20)
    for i, x in enumerate(feeds):
        interpreter.set_input(x, i)
    interpreter.invoke()
    return np.asarray(interpreter.get_output(0)).reshape(-1)


def _round_away(x: float) -> int:
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def tflite_act_range(act: str, scale: float, zp: int) -> tuple[int, int]:
    """TFLM CalculateActivationRangeQuantized (f / scale in float32, std::round)."""
    q = lambda f: zp + _round_away(float(np.float32(f) / np.float32(scale)))  # noqa: E731
    if act == "RELU":
        return max(-128, q(0.0)), 127
    if act == "RELU6":
        return max(-128, q(0.0)), min(127, q(6.0))
    return -128, 127


def tflite_padding(same: bool, size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(output size, leading pad) as TFLite computes them for SAME/VALID."""
    eff = (k - 1) * dilation + 1
    out = (size + stride - 1) // stride if same else (size + stride - eff) // stride
    total = max((out - 1) * stride + eff - size, 0) if same else 0
    return out, total // 2


ACTS = {"NONE": 0, "RELU": 1, "RELU6": 3}


def _scales(rng, n):
    return np.float32(np.exp2(rng.uniform(-9, -5, n)))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("depthwise", [False, True], ids=["conv", "depthwise"])
def test_tflm_oracle_conv(seed, depthwise):
    rng = rng_for("tflm-conv", seed, int(depthwise))
    k = int(rng.choice([1, 3, 5]))
    stride, dil = int(rng.integers(1, 3)), int(rng.choice([1, 1, 2]))
    if stride > 1:
        dil = 1  # TFLite allows dilation only with stride 1 in practice
    same = bool(rng.random() < 0.6)
    h, w, c = int(rng.integers(k * dil, 12)), int(rng.integers(k * dil, 12)), int(rng.integers(1, 7))
    mult = int(rng.choice([1, 2])) if depthwise else 1
    out_c = c * mult if depthwise else int(rng.integers(1, 9))
    out_h, pt = tflite_padding(same, h, k, stride, dil)
    out_w, pl = tflite_padding(same, w, k, stride, dil)
    act = str(rng.choice(list(ACTS)))
    s_in, s_out = _scales(rng, 1)[0], np.float32(np.exp2(rng.uniform(-4, -1)))
    zp_in, zp_out = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
    s_w = _scales(rng, out_c) * 16
    per_channel = bool(rng.random() < 0.7)
    if not per_channel:
        s_w = s_w[:1]
    bias = rng.integers(-3000, 3000, out_c).astype(np.int32)
    if depthwise:
        wq = rand_i8(rng, k * k * out_c).reshape(1, k, k, out_c)
        wq[wq == -128] = -127
        opt = dict(padding=0 if same else 1, strideW=stride, strideH=stride, depthMultiplier=mult,
                   fusedActivationFunction=ACTS[act], dilationWFactor=dil, dilationHFactor=dil)
        op, opt_name, qdim = "DEPTHWISE_CONV_2D", "DepthwiseConv2DOptions", 3
    else:
        wq = rand_i8(rng, out_c * k * k * c).reshape(out_c, k, k, c)
        wq[wq == -128] = -127
        opt = dict(padding=0 if same else 1, strideW=stride, strideH=stride,
                   fusedActivationFunction=ACTS[act], dilationWFactor=dil, dilationHFactor=dil)
        op, opt_name, qdim = "CONV_2D", "Conv2DOptions", 0
    tensors = [dict(shape=(1, h, w, c), scale=s_in, zp=zp_in),
               dict(shape=wq.shape, scale=s_w, zp=0, data=wq, qdim=qdim),
               dict(shape=(out_c,), dtype=np.int32, scale=np.float32(s_in) * s_w, zp=0, data=bias),
               dict(shape=(1, out_h, out_w, out_c), scale=s_out, zp=zp_out)]
    x = rand_i8(rng, h * w * c).reshape(1, h, w, c)
    want = tflm_run(op, opt_name, opt, tensors, [0, 1, 2], [x])

    reals = np.float64(s_in) * np.broadcast_to(s_w, (out_c,)).astype(np.float64) / np.float64(s_out)
    m, s = fp.quantize_multiplier_array(reals)
    act_min, act_max = tflite_act_range(act, s_out, zp_out)
    p = dict(in_h=h, in_w=w, in_c=c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=k, k_w=k,
             stride_h=stride, stride_w=stride, dilation_h=dil, dilation_w=dil, pad_top=pt, pad_left=pl,
             input_offset=-zp_in, output_offset=zp_out, act_min=act_min, act_max=act_max, per_channel=1,
             filter=wq.reshape(-1), bias=bias, multiplier=m, shift=s)
    if depthwise:
        p["depth_multiplier"] = mult
    got = KERNELS["depthwise_conv2d_s8" if depthwise else "conv2d_s8"](p, x)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("seed", range(6))
def test_tflm_oracle_fully_connected(seed):
    rng = rng_for("tflm-fc", seed)
    rows, k, n = int(rng.integers(1, 4)), int(rng.integers(1, 200)), int(rng.integers(1, 30))
    s_in, s_w, s_out = _scales(rng, 1)[0], _scales(rng, 1)[0] * 16, np.float32(np.exp2(rng.uniform(-4, 0)))
    zp_in, zp_out = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
    wq = rand_i8(rng, n * k).reshape(n, k)
    wq[wq == -128] = -127
    bias = rng.integers(-3000, 3000, n).astype(np.int32)
    act = str(rng.choice(["NONE", "RELU"]))
    tensors = [dict(shape=(rows, k), scale=s_in, zp=zp_in), dict(shape=(n, k), scale=s_w, zp=0, data=wq),
               dict(shape=(n,), dtype=np.int32, scale=np.float32(s_in * s_w), zp=0, data=bias),
               dict(shape=(rows, n), scale=s_out, zp=zp_out)]
    x = rand_i8(rng, rows * k).reshape(rows, k)
    want = tflm_run("FULLY_CONNECTED", "FullyConnectedOptions", dict(fusedActivationFunction=ACTS[act]),
                    tensors, [0, 1, 2], [x])
    m, s = fp.quantize_multiplier(np.float64(s_in) * np.float64(s_w) / np.float64(s_out))
    act_min, act_max = tflite_act_range(act, s_out, zp_out)
    p = dict(rows=rows, in_features=k, out_features=n, input_offset=-zp_in, output_offset=zp_out,
             act_min=act_min, act_max=act_max, per_channel=0, filter=wq, bias=bias,
             multiplier=np.array([m]), shift=np.array([s]))
    assert np.array_equal(KERNELS["fully_connected_s8"](p, x), want)


@pytest.mark.parametrize("seed", range(8))
def test_tflm_oracle_add(seed):
    rng = rng_for("tflm-add", seed)
    shape = (1, int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(1, 9)))
    s1, s2 = (np.float32(np.exp2(rng.uniform(-8, -2))) for _ in range(2))
    so = np.float32(max(s1, s2) * np.exp2(rng.uniform(-1, 2)))
    z1, z2, zo = (int(v) for v in rng.integers(-128, 128, 3))
    act = str(rng.choice(list(ACTS)))
    tensors = [dict(shape=shape, scale=s1, zp=z1), dict(shape=shape, scale=s2, zp=z2),
               dict(shape=shape, scale=so, zp=zo)]
    a, b = (rand_i8(rng, int(np.prod(shape))).reshape(shape) for _ in range(2))
    want = tflm_run("ADD", "AddOptions", dict(fusedActivationFunction=ACTS[act]), tensors, [0, 1], [a, b])
    act_min, act_max = tflite_act_range(act, so, zo)
    p = fp.add_params(s1, z1, s2, z2, so, zo, act_min=act_min, act_max=act_max, size=a.size)
    assert np.array_equal(KERNELS["add_s8"](p, a, b), want)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("kind", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
def test_tflm_oracle_pool(seed, kind):
    rng = rng_for("tflm-pool", seed, len(kind))
    k_h, k_w, stride = int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 3))
    same = bool(rng.random() < 0.6)
    h, w, c = int(rng.integers(k_h, 12)), int(rng.integers(k_w, 12)), int(rng.integers(1, 8))
    out_h, pt = tflite_padding(same, h, k_h, stride)
    out_w, pl = tflite_padding(same, w, k_w, stride)
    scale, zp = np.float32(np.exp2(rng.uniform(-6, -1))), int(rng.integers(-128, 128))
    act = str(rng.choice(list(ACTS)))
    tensors = [dict(shape=(1, h, w, c), scale=scale, zp=zp), dict(shape=(1, out_h, out_w, c), scale=scale, zp=zp)]
    x = rand_i8(rng, h * w * c).reshape(1, h, w, c)
    opt = dict(padding=0 if same else 1, strideW=stride, strideH=stride, filterWidth=k_w, filterHeight=k_h,
               fusedActivationFunction=ACTS[act])
    want = tflm_run(kind, "Pool2DOptions", opt, tensors, [0], [x])
    act_min, act_max = tflite_act_range(act, scale, zp)
    p = dict(in_h=h, in_w=w, channels=c, out_h=out_h, out_w=out_w, k_h=k_h, k_w=k_w, stride_h=stride,
             stride_w=stride, pad_top=pt, pad_left=pl, act_min=act_min, act_max=act_max, requantize=0,
             input_offset=0, output_offset=0, multiplier=1 << 30, shift=1)
    got = KERNELS["avg_pool_s8" if kind.startswith("AVERAGE") else "max_pool_s8"](p, x)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("seed", range(30))
def test_tflm_oracle_mean(seed):
    rng = rng_for("tflm-mean", seed)
    h, w, c = int(rng.integers(1, 16)), int(rng.integers(1, 16)), int(rng.integers(1, 12))
    s_in = np.float32(np.exp2(rng.uniform(-7, -1)))
    s_out = np.float32(s_in * np.exp2(rng.uniform(-3, 3))) if seed % 3 else s_in
    z_in, z_out = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
    tensors = [dict(shape=(1, h, w, c), scale=s_in, zp=z_in),
               dict(shape=(2,), dtype=np.int32, data=np.array([1, 2], np.int32)),
               dict(shape=(1, 1, 1, c), scale=s_out, zp=z_out)]
    x = rand_i8(rng, h * w * c).reshape(1, h, w, c)
    want = tflm_run("MEAN", "ReducerOptions", dict(keepDims=True), tensors, [0, 1], [x])
    p = dict(in_h=h, in_w=w, channels=c, **fp.mean_params(s_in, z_in, s_out, z_out, h * w))
    assert np.array_equal(KERNELS["mean_s8"](p, x), want)


@pytest.mark.parametrize("scale", SOFTMAX_SCALES)
def test_tflm_oracle_softmax(scale):
    rng = rng_for("tflm-softmax", int(scale * 1e6))
    scale = float(np.float32(scale))
    for rows, cols in ((1, 1), (2, 10), (3, 100), (1, 500)):
        x = rand_i8(rng, rows * cols).reshape(rows, cols)
        if cols > 4:
            x[0] = np.clip(rng.normal(0, 8, cols), -128, 127).astype(np.int8)
        zp = int(rng.integers(-128, 128))
        tensors = [dict(shape=(rows, cols), scale=scale, zp=zp), dict(shape=(rows, cols), scale=1 / 256, zp=-128)]
        want = tflm_run("SOFTMAX", "SoftmaxOptions", dict(beta=1.0), tensors, [0], [x])
        mult, left_shift = fp.preprocess_softmax_scaling(1.0, scale, 5)
        p = dict(rows=rows, cols=cols, input_multiplier=mult, input_left_shift=left_shift,
                 diff_min=-fp.calculate_input_radius(5, left_shift, 31))
        assert np.array_equal(KERNELS["softmax_s8"](p, x), want), (rows, cols)


@pytest.mark.parametrize("seed", range(6))
def test_tflm_oracle_requantize(seed):
    rng = rng_for("tflm-quantize", seed)
    n = int(rng.integers(1, 200))
    s_in, s_out = (np.float32(np.exp2(rng.uniform(-8, 0))) for _ in range(2))
    z_in, z_out = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
    tensors = [dict(shape=(1, n), scale=s_in, zp=z_in), dict(shape=(1, n), scale=s_out, zp=z_out)]
    x = rand_i8(rng, n).reshape(1, n)
    want = tflm_run("QUANTIZE", None, {}, tensors, [0], [x])
    m, s = fp.quantize_multiplier(np.float64(s_in) / np.float64(s_out))
    p = dict(size=n, input_offset=-z_in, output_offset=z_out, multiplier=m, shift=s, act_min=-128, act_max=127)
    assert np.array_equal(KERNELS["requantize_s8"](p, x), want)


def test_tflm_oracle_data_movement():
    rng = rng_for("tflm-data")
    scale, zp = np.float32(0.05), 7
    # concatenation along channels (same quantization: a copy)
    a, b = rand_i8(rng, 2 * 3 * 4).reshape(1, 2, 3, 4), rand_i8(rng, 2 * 3 * 5).reshape(1, 2, 3, 5)
    tensors = [dict(shape=a.shape, scale=scale, zp=zp), dict(shape=b.shape, scale=scale, zp=zp),
               dict(shape=(1, 2, 3, 9), scale=scale, zp=zp)]
    want = tflm_run("CONCATENATION", "ConcatenationOptions", dict(axis=3), tensors, [0, 1], [a, b])
    ident = dict(input_offset=0, output_offset=0, multiplier=1 << 30, shift=1, act_min=-128, act_max=127)
    p = dict(num_inputs=2, outer=6, inner=np.array([4, 5]), requant=[ident, ident])
    assert np.array_equal(KERNELS["concat_s8"](p, [a, b]), want)
    # pad (pad value = zero point)
    x = rand_i8(rng, 3 * 4 * 2).reshape(1, 3, 4, 2)
    pads = np.array([[0, 0], [1, 2], [0, 3], [1, 1]], np.int32)
    tensors = [dict(shape=x.shape, scale=scale, zp=zp), dict(shape=(4, 2), dtype=np.int32, data=pads),
               dict(shape=(1, 6, 7, 4), scale=scale, zp=zp)]
    want = tflm_run("PAD", "PadOptions", {}, tensors, [0, 1], [x])
    p = dict(in_h=3, in_w=4, in_c=2, pad_top=1, pad_bottom=2, pad_left=0, pad_right=3, pad_front=1, pad_back=1,
             pad_value=zp)
    assert np.array_equal(KERNELS["pad_s8"](p, x), want)
    # transpose
    x = rand_i8(rng, 2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    perm = np.array([0, 3, 1, 2], np.int32)
    tensors = [dict(shape=x.shape, scale=scale, zp=zp), dict(shape=(4,), dtype=np.int32, data=perm),
               dict(shape=(2, 5, 3, 4), scale=scale, zp=zp)]
    want = tflm_run("TRANSPOSE", "TransposeOptions", {}, tensors, [0, 1], [x])
    assert np.array_equal(KERNELS["transpose_s8"](dict(in_shape=x.shape, perm=perm), x), want)


def test_fixedpoint_doctests():
    import doctest
    result = doctest.testmod(fp)
    assert result.attempted > 10 and result.failed == 0
