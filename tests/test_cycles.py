"""The Cortex-M4 cycle model (mcuforge.cycles, docs/speed.md) prices small
hand-written Thumb-2 loops exactly as counted by hand from the Cortex-M4 TRM's
table: LDR chains (independent and dependent), LDM and PUSH/POP, taken and
untaken branches, an SMLAD loop, flash wait states. Each snippet runs on QEMU
mps2-an386 under the project's TCG plugin (built here with the host's gcc),
between two marks; `mcuforge run --profile` prices a model layer by layer.

Every hand count includes the 1 cycle of the `movs r0, #3` that names the
closing mark (the call to the mark itself is not priced)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mcuforge.tools import cycles, qemu

from marks import needs_qemu  # noqa: E402

pytestmark = needs_qemu
M4 = "qemu-cortex-m4"

MAIN = """#include <stdint.h>
#include "semihost.h"
{marks}
void test_body(uint32_t *buffer);
static uint32_t buffer[16];

static char *next_word(char *s)
{{
    while (*s && *s != ' ') s++;
    while (*s == ' ') *s++ = 0;
    return s;
}}

int main(void)
{{
    int in, out;
{open_files}    test_body(buffer);
    sh_close(in);
    sh_close(out);
    return 0;
}}
"""

BODY = """    .syntax unified
    .thumb
    .text
    .global test_body
    .type test_body, %function
    .thumb_func
test_body:
    push {{r4-r11, lr}}
    mov r1, r0
    str r1, [r1]
    movs r0, #2
    bl mcuforge_mark
{body}
    movs r0, #3
    bl mcuforge_mark
    pop {{r4-r11, pc}}
    .ltorg
"""


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    return cycles.build_plugin(tmp_path_factory.mktemp("plugin"))


def priced(tmp_path: Path, plugin: Path, body: str, model: cycles.CoreModel) -> cycles.Cost:
    """Cost of the snippet (segment of mark 2) under `model`."""
    t = qemu.get_target(M4)
    (tmp_path / "main.c").write_text(MAIN.format(marks=qemu.MARK_SUPPORT.format(marks=4),
                                                 open_files=qemu.open_files("in", "out")))
    (tmp_path / "body.S").write_text(BODY.format(body=body))
    elf = tmp_path / "snippet.elf"
    targets = qemu.TARGETS_DIR
    subprocess.run([qemu.ARM_GCC, *t.cflags, "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", f"-I{targets}",
                    str(tmp_path / "main.c"), str(tmp_path / "body.S"), str(targets / "startup.c"), "-nostartfiles",
                    "--specs=nano.specs", "--specs=nosys.specs", f"-L{targets}", f"-T{targets / t.linker_script}",
                    "-o", str(elf)], check=True)
    _console, _raw, segments = cycles.trace(t, elf, b"\0", plugin)
    code, functions = cycles.disassemble(elf)
    (segment,) = [s for s in segments if s.label == 2]
    return cycles.price(segment.counts, code, model, cycles.excluded_addresses(code, functions))


P2 = cycles.CoreModel(branch_refill=2)

CASES = {
    # 4 independent loads: 4 + 1 = 5
    "ldr_chain": ("    ldr r2, [r1]\n    ldr r3, [r1, #4]\n    ldr r4, [r1, #8]\n    ldr r5, [r1, #12]",
                  5 + 1, 4 + 1),
    # the second load's address is the first one's result: 2 + 2
    "ldr_dependent": ("    ldr r2, [r1]\n    ldr r3, [r2, #4]", 2 + 2 + 1, 2 + 1),
    # an independent load after a dependent pair pipelines again: 2 + 2 + 1
    "ldr_mixed": ("    ldr r2, [r1]\n    ldr r3, [r2]\n    ldrb r4, [r1, #5]", 2 + 2 + 1 + 1, 3 + 1),
    # LDM of 4: 1 + 4; PUSH/POP of 3: 1 + 3 each; a store: 2
    "ldm_push_pop": ("    ldmia r1, {r2, r3, r4, r5}\n    push {r2, r3, r4}\n    pop {r2, r3, r4}\n    str r2, [r1, #8]",
                     5 + 4 + 4 + 2 + 1, 4 + 1),
    # 10 iterations: movs 1, subs 10 x 1, bne 9 taken x (1 + P) + 1 untaken x 1
    "branch_loop": ("    movs r2, #10\n1:\n    subs r2, #1\n    bne 1b", 1 + 10 + 9 * 3 + 1 + 1, 1 + 20 + 1),
    # a forward branch over one instruction, taken (1 + P), then untaken (1) and the instruction it guards (1)
    "branch_forward": ("    cmp r1, r1\n    beq 1f\n    nop\n1:\n    cmp r1, #0\n    beq 2f\n    nop\n2:",
                       1 + 3 + 1 + 1 + 1 + 1, 5 + 1),
    # 8 iterations of 2 pipelined loads (2 + 1), 2 SMLAD (1 each), subs (1), bne (taken 7 x 3, untaken 1)
    "smlad_loop": ("    movs r2, #8\n1:\n    ldr r3, [r1]\n    ldr r4, [r1, #4]\n    smlad r6, r3, r4, r6\n"
                   "    smlad r6, r3, r4, r6\n    subs r2, #1\n    bne 1b",
                   1 + 8 * (3 + 2 + 1) + 7 * 3 + 1 + 1, 1 + 8 * 6 + 1),
    # SDIV at the model's stated cost (12), SSAT 1, a 32x32 multiply-accumulate 1 (Cortex-M4 TRM: MLA 1)
    "divide_saturate_mac": ("    movs r2, #7\n    sdiv r3, r1, r2\n    ssat r3, #8, r3\n    mla r4, r2, r3, r4",
                            1 + 12 + 1 + 1 + 1, 4 + 1),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hand_counted_snippet(case, plugin, tmp_path):
    body, want_cycles, want_instructions = CASES[case]
    cost = priced(tmp_path, plugin, body, P2)
    assert cost.instructions == want_instructions
    assert cost.cycles == want_cycles


def test_page_end_is_no_taken_branch(plugin, tmp_path):
    """Loads and a move up to a 1 KB page's last halfword: QEMU ends its
    translation blocks there and the trace reports the flow leaving the
    instruction before it, but only a write of the PC is charged a refill."""
    body = ("    b 3f\n    .balign 1024\n    .space 1016\n3:\n"  # the loads at the page's last 8 bytes
            "    ldr r2, [r1]\n    ldr r3, [r1, #4]\n    ldr r4, [r1, #8]\n    movs r5, #1\n    adds r5, #1")
    # b taken (1 + P), 3 independent loads (3 + 1), movs, adds, the closing movs
    cost = priced(tmp_path, plugin, body, P2)
    assert (cost.instructions, cost.cycles) == (7, 3 + 4 + 1 + 1 + 1)


def test_pipeline_refill_is_charged_per_taken_branch(plugin, tmp_path):
    # the loop of branch_loop with P = 1 and P = 3: 9 taken branches
    body = CASES["branch_loop"][0]
    assert priced(tmp_path, plugin, body, cycles.CoreModel(branch_refill=1)).cycles == 1 + 10 + 9 * 2 + 1 + 1
    assert priced(tmp_path, plugin, body, cycles.CoreModel(branch_refill=3)).cycles == 1 + 10 + 9 * 4 + 1 + 1


def test_flash_wait_states(plugin, tmp_path):
    # a literal (flash) load and a RAM load, all 16-bit instructions; one 32-bit word fetched per 1 + W cycles
    # W = 1: ldr literal max(2, 1) + 1 (its flash word); ldr from RAM max(2, 1); movs max(1, 1)
    body = "    ldr r2, =0x12345678\n    ldr r3, [r1]"
    assert priced(tmp_path, plugin, body, cycles.CoreModel(flash_wait_states=0)).cycles == 2 + 1 + 1
    one = priced(tmp_path, plugin, body, cycles.CoreModel(flash_wait_states=1))
    assert one.flash_data_words == 1
    assert one.cycles == (2 + 1) + 1 + 1
    # W = 5: each 16-bit instruction waits for half a word, 3 cycles: ldr literal 3 + 5, ldr (pipelined) 3, movs 3
    assert priced(tmp_path, plugin, body, cycles.CoreModel(flash_wait_states=5)).cycles == (3 + 5) + 3 + 3


def test_mnemonics_of_it_blocks_and_wide_forms():
    assert cycles.base_mnemonic("ldrbeq") == "ldrb"
    assert cycles.base_mnemonic("ldr.w") == "ldr"
    assert cycles.base_mnemonic("bls") == "b" and cycles.base_mnemonic("ble") == "b"
    assert cycles.base_mnemonic("bl") == "bl" and cycles.base_mnemonic("bics") == "bics"
    assert cycles.base_mnemonic("pople") == "pop"
    assert cycles.classify(0, 4, "vpush", "{d8-d15}").registers == 16
    assert cycles.classify(0, 4, "ldmia.w", "sp!, {r4, r5, r6, r7, r8, pc}").registers == 6
    load = cycles.classify(0, 4, "ldrsh.w", "r3, [r2, ip, lsl #1]")
    assert load.destinations == {"r3"} and load.address_registers == {"r2", "r12"}


def test_cli_profile_prices_every_layer(tmp_path):
    """`mcuforge run --target qemu-cortex-m4 --profile` on a small zoo model: per-layer instructions and cycles
    add up to the invoke's, and the invoke's traced instruction count is the -icount one (the same image bar
    the marks around each layer)."""
    torch = pytest.importorskip("torch")  # noqa: F841
    from mcuforge.config import BuildConfig
    from mcuforge.frontends.torch import from_torch
    from mcuforge.pipeline import compile_model
    from mcuforge.zoo import ZOO

    module, example = ZOO["dscnn"]()
    rng = np.random.default_rng(3)
    calib = tmp_path / "calib.npy"
    np.save(calib, rng.standard_normal((8,) + tuple(example.shape[1:])).astype(np.float32))
    out = tmp_path / "gen"
    plan = compile_model(from_torch(module, example, name="dscnn"),
                         BuildConfig(name="dscnn", calibration=str(calib), kernels="arm-dsp"), out)
    x = tmp_path / "x.npy"
    np.save(x, rng.integers(-128, 128, (1,) + tuple(example.shape[1:])).astype(np.int8))
    cmd = [sys.executable, "-m", "mcuforge", "run", str(out), "--input", str(x), "--target", M4, "--profile"]
    res = subprocess.run(cmd + ["--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "check passed" in res.stdout
    rows = [line.split() for line in res.stdout.splitlines() if line[:2].strip().isdigit()]
    assert [int(r[0]) for r in rows] == list(range(len(plan.steps)))
    assert [int(r[-5].replace(",", "")) for r in rows] == [s.macs for s in plan.steps]
    layer_cycles = [int(r[-3].replace(",", "")) for r in rows]
    total_line = [line for line in res.stdout.splitlines() if line.split()[:1] == ["invoke"]][0].split()
    outside = [line for line in res.stdout.splitlines() if "(invoke outside the kernels)" in line][0].split()
    assert int(total_line[-4].replace(",", "")) == sum(int(r[-4].replace(",", "")) for r in rows) + int(
        outside[-4].replace(",", ""))
    assert abs(int(total_line[-3].replace(",", "")) - sum(layer_cycles) - int(outside[-3].replace(",", ""))) \
        <= len(rows) + 1  # each row rounded
    # wait states only add cycles; bad values are refused with exit 2
    res5 = subprocess.run(cmd + ["--flash-wait-states", "5"], capture_output=True, text=True)
    assert res5.returncode == 0, res5.stderr
    assert int(res5.stdout.split("cycles: ")[1].split()[0]) > int(res.stdout.split("cycles: ")[1].split()[0])
    for bad in (["--flash-wait-states", "-1"], ["--target", "qemu-cortex-m7", "--flash-wait-states", "2"]):
        res = subprocess.run(cmd + bad, capture_output=True, text=True)
        assert res.returncode == 2 and "--flash-wait-states" in res.stderr and "Traceback" not in res.stderr


DOCS = Path(__file__).resolve().parent.parent / "docs" / "speed.md"
AD_MODEL = Path(__file__).resolve().parent.parent.parent / "shared" / "models" / "ad01_int8.tflite"


@pytest.mark.skipif(not AD_MODEL.is_file(), reason=f"{AD_MODEL} absent (the shared MLPerf Tiny models)")
def test_docs_commands_run(tmp_path):
    """docs/speed.md's commands, on the MLPerf Tiny AD model: each exits 0, and 5 wait states cost more."""
    text = DOCS.read_text()
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(1).integers(-128, 128, (1, 640)).astype(np.int8))
    totals = []
    for line in block.strip().splitlines():
        args = line.split()
        assert args[0] == "mcuforge"
        # the page's model (model.onnx, calib.npy: the docs' fixture) is the AD model here; it is int8
        # already, so its calibration file is not read
        args = [str(AD_MODEL) if a == "model.onnx" else str(tmp_path / "out") if a == "out/" else
                str(x) if a == "x.npy" else str(tmp_path / "calib.npy") if a == "calib.npy" else a
                for a in args[1:]]
        res = subprocess.run([sys.executable, "-m", "mcuforge", *args], capture_output=True, text=True)
        assert res.returncode == 0, f"{line}: {res.stderr}"
        if "--profile" in args:
            totals.append(int(res.stdout.split("cycles: ")[1].split()[0]))
    assert len(totals) == 2 and totals[1] > totals[0]


MODELS = Path(__file__).resolve().parent.parent.parent / "shared" / "models"
# Issue 18's estimates of the arm-dsp build's Cortex-M4 cycles (P = 1 to 2, 0 wait states), measured
# independently with its own TCG plugin; IC is left out: its ADD layers have run the arm-dsp variant since.
ISSUE_18 = {"vww_96_int8.tflite": (16.6e6, 17.0e6), "kws_ref_model.tflite": (6.15e6, 6.33e6),
            "ad01_int8.tflite": (0.52e6, 0.53e6)}


@pytest.mark.parametrize("model", sorted(ISSUE_18))
def test_issue_18_estimates_reproduced(model, tmp_path):
    """The model reproduces issue 18's table: P = 1 against its low end, P = 2 against its high end, within
    4%. The issue priced the kernels of commit 48c8aa4 (docs/speed.md: within 2% of those); the default
    variants' kernels have gained since (VWW's P = 2 figure 17.06 M at 48c8aa4, 16.45 M now), so the check
    on today's default variants allows 4%."""
    from mcuforge.config import BuildConfig
    from mcuforge.pipeline import compile_model
    from mcuforge.tools.compare import random_inputs

    if not (MODELS / model).is_file():
        pytest.skip(f"{MODELS / model} absent (the shared MLPerf Tiny models)")
    out = tmp_path / "gen"
    # every layer on its default variant, as the issue measured (not the planner's faster choices since)
    plan = compile_model(MODELS / model, BuildConfig(name="m", kernels="arm-dsp", kernel_variants="default"), out)
    result = cycles.run(plan, out, random_inputs(plan, 1, seed=7), M4)
    low, high = ISSUE_18[model]
    p1 = result.reprice(cycles.CoreModel(branch_refill=1)).total.cycles
    assert abs(p1 / low - 1) < 0.04 and abs(result.total.cycles / high - 1) < 0.04, (p1, result.total.cycles)


@pytest.mark.skipif(not AD_MODEL.is_file(), reason=f"{AD_MODEL} absent (the shared MLPerf Tiny models)")
def test_python_api_profile_prices_the_first_input(tmp_path):
    """mcuforge.compile(...).run(x, target=qemu-cortex-m4, profile=True): outputs of every input, equal to the
    reference; `profile` per layer with the traced instructions and cycles of the first input."""
    import mcuforge

    model = mcuforge.compile(AD_MODEL, out=tmp_path / "out", kernels="arm-dsp")
    x = np.random.default_rng(2).integers(-128, 128, (2, 640)).astype(np.int8)
    y = model.run(x, target=M4, profile=True)
    assert np.array_equal(y, model.reference(x))
    assert [r["macs"] for r in model.profile] == [s.macs for s in model.plan.steps]
    assert all(r["cycles"] > r["instructions"] > 0 for r in model.profile)
