"""The trained-state record: a training build saves its state with <name>_state_save()
(mcf_state_pack, runtime C) and restores it with <name>_state_restore(); the Python side
(mcuforge.state_record) reads and writes the same bytes. A 'reboot' on the host (a fresh process)
restoring the record gives the same inference as before it; a record of another model, of the
same model with another training policy, a torn write and a flipped byte are refused, and the
state stays the model's flash weights."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mcuforge import state_record  # noqa: E402
from mcuforge.codegen.portable import c_sources, include_dirs  # noqa: E402
from mcuforge.config import BuildConfig  # noqa: E402
from mcuforge.frontends.torch import from_torch  # noqa: E402
from mcuforge.pipeline import compile_model  # noqa: E402
from mcuforge.zoo import ZOO  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler (cc)")

# train N steps (labels from argv), save the record; or restore a record; then print the output bytes.
HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mcuforge/kernels.h"
#include "{p}.h"

static uint8_t record[{P}_STATE_RECORD_SIZE + 16], record2[{P}_STATE_RECORD_SIZE + 16];

static long load(const char *path, uint8_t *buf)
{{
    long n;
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    n = (long)fread(buf, 1, {P}_STATE_RECORD_SIZE + 16, f);
    fclose(f);
    return n;
}}

int main(int argc, char **argv)
{{
    FILE *f;
    long n;
    int i, status;
    if ({p}_init() != 0) return 2;
    memset({p}_input(), 7, {P}_INPUT_SIZE);
    if (strncmp(argv[1], "train", 5) == 0) {{  /* trainG: save as generation G (default 1) */
        const uint32_t generation = argv[1][5] ? (uint32_t)strtoul(argv[1] + 5, NULL, 10) : 1u;
        for (i = 3; i < argc; ++i) {{
            float loss;
            if ({p}_train_step(atoi(argv[i]), &loss) != 0) return 3;
        }}
        n = {p}_state_save(record, sizeof record, generation);
        if (n != {P}_STATE_RECORD_SIZE) return 4;
        f = fopen(argv[2], "wb");
        if (!f || fwrite(record, 1, (size_t)n, f) != (size_t)n) return 5;
        fclose(f);
        if ({p}_state_save(record, {P}_STATE_RECORD_SIZE - 1, 1) != MCF_STATE_ERR_SIZE) return 9;
    }} else if (strcmp(argv[1], "slots") == 0) {{  /* two slots: restore the newest valid one */
        const uint8_t *records[2] = {{record, record2}};
        uint32_t sizes[2];
        int st[2], best;
        n = load(argv[2], record);
        sizes[0] = n < 0 ? 0u : (uint32_t)n;
        n = load(argv[3], record2);
        sizes[1] = n < 0 ? 0u : (uint32_t)n;
        best = {p}_state_newest(records, sizes, 2, st);
        printf("newest %d %d %d", best, st[0], st[1]);
        if (best >= 0) {{
            printf(" generation %u restore %d", (unsigned)mcf_state_generation(records[best]),
                   {p}_state_restore(records[best], sizes[best]));
        }}
        printf("\n");
    }} else {{
        f = fopen(argv[2], "rb");
        if (!f) return 6;
        n = (long)fread(record, 1, sizeof record, f);
        fclose(f);
        status = {p}_state_restore(record, (uint32_t)n);
        printf("restore %d %s\n", status, mcf_state_error(status));
    }}
    memset({p}_input(), 7, {P}_INPUT_SIZE);
    if ({p}_invoke() != 0) return 7;
    printf("output");
    for (i = 0; i < {P}_OUTPUT_SIZE; ++i) printf(" %d", {p}_output()[i]);
    printf("\n");
    return 0;
}}
"""


def _build(tmp: Path, name: str, bias_layers: int) -> tuple[Path, object]:
    module, example = ZOO["mbv1"]()
    calib = tmp / "calib.npy"
    np.save(calib, np.random.default_rng(1).standard_normal((8,) + tuple(example.shape[1:])).astype(np.float32))
    out = tmp / f"gen_{name}_{bias_layers}"
    plan = compile_model(from_torch(module, example, name="mbv1"),
                         BuildConfig(name=name, calibration=str(calib), training="bias",
                                     train_bias_layers=bias_layers, stack_target="none"), out)
    main = out / "main.c"
    main.write_text(HARNESS.format(p=name, P=name.upper()))
    exe = out / "run"
    cmd = ["cc", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", *[f"-I{d}" for d in include_dirs(out)],
           *map(str, c_sources(out, name)), str(main), "-o", str(exe)]
    subprocess.run(cmd, check=True)
    return exe, plan


def _run(exe: Path, *args) -> str:
    res = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True)
    assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)
    return res.stdout


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("state")
    return tmp, _build(tmp, "odl", 2), _build(tmp, "odl", 1)


def test_restore_after_reboot_equals_before(builds):
    tmp, (exe, plan), _ = builds
    rec = tmp / "state.bin"
    trained = _run(exe, "train", rec, 1, 0, 1, 1, 0, 1).splitlines()[-1]
    fresh = _run(exe, "restore", rec)  # a fresh process: the reboot
    assert fresh.splitlines()[0] == "restore 0 ok"
    assert fresh.splitlines()[-1] == trained
    # the record is what the Python side builds: same header, CRC, identity
    data = rec.read_bytes()
    state = state_record.unpack(state_record.identity(plan), data, plan.training.state_bytes)
    assert state_record.pack(state_record.identity(plan), state) == data
    assert len(data) == plan.training.state_bytes + state_record.HEADER_SIZE
    # learning changed the output: the round trip is not vacuous
    untrained = tmp / "untrained.bin"
    _run(exe, "train", untrained)
    assert _run(exe, "restore", untrained).splitlines()[-1] != trained


@pytest.mark.parametrize("damage,reason", [
    ("torn", "CRC"), ("flip", "CRC"), ("short", "SIZE"), ("erased", "MAGIC"), ("other_model", "MODEL")])
def test_refusals_leave_the_flash_weights(builds, damage, reason):
    tmp, (exe, plan), _ = builds
    rec = tmp / "good.bin"
    _run(exe, "train", rec, 1, 0, 1, 1)
    baseline = _run(exe, "train", tmp / "none.bin").splitlines()[-1]  # no training: flash weights
    data = bytearray(rec.read_bytes())
    if damage == "torn":  # a reset part-way through the write: the tail still erased flash
        data[len(data) // 2:] = b"\xff" * (len(data) - len(data) // 2)
    elif damage == "flip":
        data[-1] ^= 0x10
    elif damage == "short":
        data = data[:-4]
    elif damage == "erased":
        data = bytearray(b"\xff" * len(data))
    else:  # a well-formed record of the same size from another model
        ident = bytes(31) + b"\x01"
        data = bytearray(state_record.pack(ident, bytes(data[state_record.HEADER_SIZE:])))
    bad = tmp / f"bad_{damage}.bin"
    bad.write_bytes(bytes(data))
    out = _run(exe, "restore", bad).splitlines()
    code = {"SIZE": -1, "MAGIC": -2, "VERSION": -3, "CRC": -4, "MODEL": -5}[reason]
    assert out[0].startswith(f"restore {code} "), out
    assert out[-1] == baseline  # the state stayed the flash weights
    with pytest.raises(state_record.StateRecordError) as err:
        state_record.unpack(state_record.identity(plan), bytes(data), plan.training.state_bytes)
    assert err.value.reason == reason


def test_same_model_other_policy_is_refused(builds):
    tmp, (exe2, plan2), (exe1, plan1) = builds
    assert state_record.identity(plan1) != state_record.identity(plan2)
    rec = tmp / "policy2.bin"
    _run(exe2, "train", rec, 1, 0)
    out = _run(exe1, "restore", rec).splitlines()
    assert out[0].startswith("restore -1 ") or out[0].startswith("restore -5 "), out


def test_cli_run_train_prints_reference_losses_and_checksum(builds, tmp_path):
    """`mcuforge run DIR --input x.npy --train labels.npy` prints every step's loss and the state's
    checksum as the on_device_learning sample does; they equal the NumPy reference's."""
    import re
    import sys

    from mcuforge.reference import training as tref
    from mcuforge.tools.train_run import fnv1a

    _, (exe, plan), _ = builds
    out = exe.parent
    rng = np.random.default_rng(5)
    shape = plan.graph.tensors[plan.input].shape
    xs = rng.integers(-128, 128, (4,) + shape[1:]).astype(np.int8)
    labels = np.array([1, 0, 1, 1], dtype=np.int64)
    # --input in the source model's layout (NCHW for PyTorch), int8 as it is
    np.save(tmp_path / "x.npy", np.transpose(xs, (0, 3, 1, 2)))
    np.save(tmp_path / "y.npy", labels)
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-m", "mcuforge", "run", str(out), "--input", str(tmp_path / "x.npy"),
                          "--train", str(tmp_path / "y.npy"), "--epochs", "2", "--save-state",
                          str(tmp_path / "s.bin")], capture_output=True, text=True,
                         env={"PYTHONPATH": str(root / "python"), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    state = tref.TrainState.initial(plan)
    want = [tref.train_step(plan, state, x, int(y)) for _ in range(2) for x, y in zip(xs, labels)]
    got = [float(v) for v in re.findall(r"^step \d+ epoch \d+ label \d+ loss (\S+)$", res.stdout, re.M)]
    assert got == [float(f"{w:.6f}") for w in want]
    assert f"train state checksum 0x{fnv1a(state.to_bytes(plan)):08x}" in res.stdout
    record = (tmp_path / "s.bin").read_bytes()
    assert state_record.unpack(state_record.identity(plan), record, plan.training.state_bytes) == \
        state.to_bytes(plan)
    bad = subprocess.run([sys.executable, "-m", "mcuforge", "run", str(out), "--input", str(tmp_path / "x.npy"),
                          "--train", str(tmp_path / "x.npy")], capture_output=True, text=True,
                         env={"PYTHONPATH": str(root / "python"), "PATH": "/usr/bin:/bin"})
    assert bad.returncode == 2 and "--train" in bad.stderr and "Traceback" not in bad.stderr


def test_two_slots_restore_the_newest_valid_record(builds):
    """Saves alternate between two slots with a growing generation: the newest valid slot is
    restored; when it is corrupted (a reset during its write), the previous generation is, and
    when both are bad, the flash weights stay; a generation counter that wrapped still orders."""
    tmp, (exe, plan), _ = builds
    old, new = tmp / "slot_old.bin", tmp / "slot_new.bin"
    first = _run(exe, "train1", old, 1, 0).splitlines()[-1]
    second = _run(exe, "train2", new, 1, 0, 1, 1, 0, 1).splitlines()[-1]
    assert first != second
    assert state_record.generation(old.read_bytes()) == 1 and state_record.generation(new.read_bytes()) == 2
    out = _run(exe, "slots", old, new).splitlines()
    assert out[0] == "newest 1 0 0 generation 2 restore 0" and out[-1] == second
    assert _run(exe, "slots", new, old).splitlines()[0] == "newest 0 0 0 generation 2 restore 0"
    torn = tmp / "slot_torn.bin"
    data = bytearray(new.read_bytes())
    data[len(data) // 2:] = b"\xff" * (len(data) - len(data) // 2)
    torn.write_bytes(bytes(data))
    out = _run(exe, "slots", old, torn).splitlines()
    assert out[0] == "newest 0 0 -4 generation 1 restore 0" and out[-1] == first
    erased = tmp / "slot_erased.bin"
    erased.write_bytes(b"\xff" * len(data))
    baseline = _run(exe, "train", tmp / "none.bin").splitlines()[-1]
    out = _run(exe, "slots", erased, torn).splitlines()
    assert out[0] == "newest -1 -2 -4" and out[-1] == baseline
    wrapped = tmp / "slot_wrapped.bin"
    _run(exe, "train4294967295", wrapped, 1, 0)
    zero = tmp / "slot_zero.bin"
    _run(exe, "train0", zero, 1, 0, 1, 1, 0, 1)
    assert _run(exe, "slots", wrapped, zero).splitlines()[0] == "newest 1 0 0 generation 0 restore 0"
