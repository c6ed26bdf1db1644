"""C kernels mcf_binary_s8 / mcf_binary_const_s8 (ADD, SUB, MUL, PRELU with
4-D broadcasting, of two activations or with a constant operand) and
mcf_reduce_s8 (MEAN, REDUCE_MAX over the middle of an (outer, reduce, inner)
view) against their NumPy twins, byte for byte, on seeded random shapes
and quantization parameters (the twins themselves equal TFLM by
tests/test_tflite_models.py)."""
from __future__ import annotations

import ctypes as ct

import numpy as np
import pytest

from mcuforge import fixedpoint as fp
from mcuforge.ir import Node, Quant
from mcuforge.kernels import KERNELS
from mcuforge.ops import BINARY_KINDS, binary_fields, broadcast_params
from test_kernels import _BROADCAST, I32, P8, STRUCTS, check, lib, rng_for, run_c  # noqa: F401  (lib: the fixture)

Binary = type("Binary", (ct.Structure,), {"_fields_": [("kind", I32), ("constant_first", I32)] + _BROADCAST + [
    (f, I32) for f in ("left_shift input1_offset input1_multiplier input1_shift input2_offset input2_multiplier "
                       "input2_shift output_offset output_multiplier output_shift act_min act_max").split()]
    + [("constant", P8)]})
Reduce = type("Reduce", (ct.Structure,), {"_fields_": [("kind", I32), ("in_shape", I32 * 4), ("reduce", I32 * 4)] + [
    (f, I32) for f in "input_offset output_offset multiplier shift".split()]})
STRUCTS.update(binary_s8=Binary, binary_const_s8=Binary, reduce_s8=Reduce)


def _quant(rng) -> Quant:
    return Quant(np.array([np.float32(np.exp2(rng.uniform(-9, -2)))], np.float64),
                 np.array([int(rng.integers(-128, 128))], np.int64))


def _shapes(rng):
    out = tuple(int(v) for v in rng.integers(1, 6, 4))
    out = (1,) + out[1:]
    a = tuple(d if rng.random() < 0.6 else 1 for d in out)
    b = tuple(d if rng.random() < 0.6 else 1 for d in out)
    b = b[int(rng.integers(0, 4)):]  # lower rank: broadcast from the last axes
    a = tuple(max(x, y) for x, y in zip(a, (1,) * (4 - len(b)) + b)) if rng.random() < 0.5 else a
    return a, b, tuple(np.broadcast_shapes(a, b))


def binary_case(seed: int):
    rng = rng_for("binary", seed)
    op = ["add", "sub", "mul", "prelu"][seed % 4]
    a_shape, b_shape, out_shape = _shapes(rng)
    node = Node("n", op, ["a", "b"], ["y"], {"act_min": -np.inf, "act_max": np.inf})
    if rng.random() < 0.3 and op != "prelu":
        node.attrs["act_min"] = 0.0
    p = dict(kind=BINARY_KINDS[op], constant_first=0, **broadcast_params(node, a_shape, b_shape, out_shape),
             **binary_fields(node, _quant(rng), _quant(rng), _quant(rng)))
    a = rng.integers(-128, 128, int(np.prod(a_shape))).astype(np.int8)
    b = rng.integers(-128, 128, int(np.prod(b_shape))).astype(np.int8)
    return p, a, b


@pytest.mark.parametrize("seed", range(48))
def test_binary(lib, seed):
    p, a, b = binary_case(seed)
    check(lib, "binary_s8", p, a, b)


@pytest.mark.parametrize("seed", range(16))
def test_binary_const(lib, seed):
    p, a, b = binary_case(seed)
    first = seed % 2 == 1
    p = dict(p, constant_first=int(first), constant=a if first else b)
    x = b if first else a
    want = check(lib, "binary_const_s8", p, x)
    assert np.array_equal(want, KERNELS["binary_s8"](p, a, b))


@pytest.mark.parametrize("seed", range(32))
def test_reduce(lib, seed):
    rng = rng_for("reduce", seed)
    shape = [1] + [int(v) for v in rng.integers(1, 8, 3)]
    if seed % 8 == 0:
        shape[2] = int(rng.integers(100, 700))  # a long 1-D signal
    reduced = [0] + [int(v) for v in rng.integers(0, 2, 3)]
    kind = seed % 2
    n = int(np.prod([d for d, r in zip(shape, reduced) if r]))
    p = dict(kind=kind, in_shape=np.array(shape, np.int32), reduce=np.array(reduced, np.int32), input_offset=0,
             output_offset=0, multiplier=0, shift=0)
    if kind == 0:
        qi, qo = _quant(rng), _quant(rng)
        p.update(fp.mean_params(float(qi.scale[0]), int(qi.zero_point[0]), float(qo.scale[0]),
                                int(qo.zero_point[0]), n))
    x = rng.integers(-128, 128, int(np.prod(shape))).astype(np.int8)
    want = check(lib, "reduce_s8", p, x)
    if kind == 1:  # the max is the plain max over the axes
        axes = tuple(d for d in range(4) if reduced[d])
        assert np.array_equal(want, x.reshape(shape).max(axis=axes).reshape(-1) if axes else x)


def test_bad_parameters_are_refused(lib):
    p, a, b = binary_case(0)
    status, _ = run_c(lib, "binary_s8", dict(p, kind=9), a, b, out_size=p["size"])
    assert status != 0
    with pytest.raises(ValueError):
        KERNELS["binary_s8"](dict(p, kind=9), a, b)
    status, _ = run_c(lib, "reduce_s8", dict(kind=0, in_shape=[1, 1, 0, 1], reduce=[0, 0, 1, 0], shift=0),
                      np.zeros(1, np.int8), out_size=1)
    assert status != 0


Tile = type("Tile", (ct.Structure,), {"_fields_": [("in_shape", I32 * 4), ("multiples", I32 * 4)]})
STRUCTS["tile_s8"] = Tile


@pytest.mark.parametrize("seed", range(12))
def test_tile(lib, seed):
    rng = rng_for("tile", seed)
    shape = [1] + [int(v) for v in rng.integers(1, 6, 3)]
    multiples = [1] + [int(v) for v in rng.integers(1, 4, 3)]
    x = rng.integers(-128, 128, int(np.prod(shape))).astype(np.int8)
    want = check(lib, "tile_s8", dict(in_shape=shape, multiples=multiples), x)
    assert np.array_equal(want, np.tile(x.reshape(shape), multiples).reshape(-1))
