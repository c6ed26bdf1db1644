"""The same C, cross-compiled with arm-none-eabi-gcc and run under QEMU on
Cortex-M (MPS2 machines, semihosting I/O), gives exactly the host's bytes;
`mcuforge run --target` works end to end; the QEMU instruction count is
deterministic. One image per model and target."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mcuforge.tools import hostrun, qemu  # noqa: E402
from mcuforge.config import BuildConfig  # noqa: E402
from mcuforge.frontends.torch import from_torch  # noqa: E402
from mcuforge.pipeline import compile_model  # noqa: E402
from mcuforge.zoo import ZOO  # noqa: E402

from marks import needs_qemu  # noqa: E402

pytestmark = needs_qemu

# Three zoo models on three cores: depthwise + residual, residual CNN, concat + odd shapes.
CASES = [("mbv2_blocks", "qemu-cortex-m4"), ("resnet8", "qemu-cortex-m3"), ("concat_net", "qemu-cortex-m7"),
         ("odd_shapes", "qemu-cortex-m3")]
N_INPUTS = 4


def compile_zoo(name: str, outdir: Path):
    module, example = ZOO[name]()
    rng = np.random.default_rng(sum(map(ord, name)))
    calib = outdir.parent / f"{name}_calib.npy"
    np.save(calib, rng.standard_normal((16,) + tuple(example.shape[1:])).astype(np.float32))
    return compile_model(from_torch(module, example, name=name), BuildConfig(name=name, calibration=str(calib)),
                         outdir)


@pytest.mark.parametrize("name,target", CASES)
def test_cortex_m_equals_host(name, target, tmp_path):
    out = tmp_path / "gen"
    plan = compile_zoo(name, out)
    shape = plan.graph.tensors[plan.input].shape
    xs = np.random.default_rng(11).integers(-128, 128, (N_INPUTS,) + shape[1:]).astype(np.int8)
    host = hostrun.run(plan, hostrun.build(plan, out, tmp_path / "host"), xs)
    elf = qemu.build(plan, out, tmp_path / "arm", target)
    got, stats = qemu.run(plan, elf, xs, target)
    for k, (h, g) in enumerate(zip(host, got)):
        assert h.dtype == g.dtype == np.int8
        assert np.array_equal(h, g), f"{name} on {target}: output {k} differs from the host"
    # Deterministic instruction counts (-icount): one per input, all plausible.
    assert len(stats.ticks) == N_INPUTS and all(t > 0 for t in stats.ticks)
    macs = plan.macs
    assert all(n > macs // 4 for n in stats.instructions), (stats.instructions, macs)
    again, stats2 = qemu.run(plan, elf, xs[:1], target)
    assert np.array_equal(again[0], got[0][:1]) and stats2.ticks[0] == stats.ticks[0]


def test_cli_run_target_check(tmp_path):
    out = tmp_path / "gen"
    compile_zoo("tiny_1x1", out)
    _module, example = ZOO["tiny_1x1"]()  # the input in the model's own (NCHW) layout
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(2).integers(-128, 128, (3,) + tuple(example.shape[1:])).astype(np.int8))
    res = subprocess.run([sys.executable, "-m", "mcuforge", "run", str(out), "--input", str(x), "--output",
                          str(tmp_path / "y.npy"), "--check", "--target", "qemu-cortex-m3"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "check passed" in res.stdout and "instructions per invoke" in res.stdout
    res = subprocess.run([sys.executable, "-m", "mcuforge", "run", str(out), "--input", str(x), "--target",
                          "qemu-cortex-m99"], capture_output=True, text=True)
    assert res.returncode == 2 and "qemu-cortex-m99" in res.stderr and "Traceback" not in res.stderr
