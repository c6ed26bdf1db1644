"""The planner's choice of each layer's kernel variant (arm-dsp builds).

Every layer has candidates: the portable kernel, and the arm-dsp variants
(codegen/arm_dsp.candidates: e.g. the depthwise ring, or the depthwise plane
that holds the whole padded input of 4 channels). Each costs

* cycles: estimated from its shape with per-variant coefficients measured
  with the Cortex-M4 cycle model (tools/cycles.py, docs/speed.md) on the
  MLPerf Tiny models; only their order matters to the choice;
* scratch: arena bytes, which the memory planner places like any buffer;
* flash: bytes beyond the layer's own weights (the tables of ADD and SUB,
  2 KB each, of MAXIMUM and MINIMUM, 512 bytes, of SOFTMAX, 1 KB: TABLES in
  arm_dsp.py; a filter widened to int16 offline, its int8 size once more).

``choose`` minimizes the estimated cycles within the SRAM limit (the arena
of --sram-budget, or without one the arena of the portable plan: arm-dsp then
never costs SRAM the user did not allow) and the flash left by the weights
and CODE_RESERVE under --flash-budget. It first tries every layer's fastest
variant; when that plan is over a limit it starts from every layer's smallest
scratch and upgrades layers one at a time, most cycles saved first, keeping
an upgrade only when the planned arena and the flash stay within the limits.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ops import Step
from ..registry import portable_scratch_size
from . import arm_dsp


@dataclass(frozen=True)
class Option:
    key: str  # "portable" or an arm_dsp.Variant key
    what: str
    cycles: int  # estimated Cortex-M4 cycles (0 wait states)
    flash: int  # bytes of flash beyond the layer's weights


# Flash of --flash-budget that variants never spend on tables or widened filters: it is kept for the code
# (the arm-dsp kernels and the model's C link 22-42 KB on the benchmark's models, bench/results/speed.md)
CODE_RESERVE = 48 * 1024


def estimate(step: Step, key: str, outs: int) -> int:
    """Estimated Cortex-M4 cycles of a step (outs: its output elements) on a
    variant (coefficients fitted to the cycle model's per-layer profile of
    VWW, portable and arm-dsp)."""
    p, macs = step.params, step.macs
    k = step.kernel
    if k.startswith("depthwise_conv2d_s8"):
        groups = (p["in_c"] + 3) // 4
        copies = 17 * p["in_h"] * p["in_w"] * groups
        if key == "portable":
            return 45 * macs
        if key == "plane":  # per output, per channel row and channel (one assembly call), the copy, the zeroing
            q = arm_dsp.plane_oriented(p)  # a map of short rows goes in transposed
            rows = (q["out_h"] - 1) * q["stride_h"] + (q["k_h"] - 1) * q["dilation_h"] + 1
            return 30 * outs + 25 * q["out_h"] * p["in_c"] + 60 * p["in_c"] + copies + 2 * rows * 4 * (q["in_w"] + 2)
        # the ring: per channel group and output row, its bookkeeping
        return 30 * outs + 75 * p["out_h"] * p["in_c"] + copies + 450 * p["out_h"] * groups
    if k in ("conv2d_s8", "fully_connected_s8"):
        if key == "portable":
            return 13 * macs + 60 * outs
        if key == "reuse":  # the pw4 blocks
            return int(1.2 * macs) + 12 * outs + 1
        if key == "reusew":  # the pw4w blocks
            return int(1.07 * macs) + 12 * outs + 1
        if key in ("winw", "winreusew"):  # the pw4w blocks without the columns; per output row its window widened
            return int(1.0 * macs) + 12 * outs + p["out_h"] * arm_dsp.win_scratch(p)  # 2 cycles per int16
        if key == "pw4":  # 36 cycles per 32 multiply-accumulates, per 8 outputs a block
            return int(1.2 * macs) + 12 * outs
        if key == "pw4w":  # the same blocks without SXTB16 (32 cycles per 32); the last block overlaps
            pixels = max(outs // max(p["out_c"], 1), 1)
            done = (pixels + 3) // 4 * 4 / pixels
            return int((1.07 * macs + 12 * outs) * done)
        if key in ("tail", "tailw"):  # the pw4 (pw4w) blocks but the last 8 Kp output bytes' pixels, those as
            pixels = outs // max(p["out_c"], 1)  # rows (a k x k window gathered first)
            kp = (p["k_h"] * p["k_w"] * p["in_c"] + 3) // 4 * 4
            last = min(pixels, (8 * kp + 3) // max(p["out_c"], 1) + 4)
            gather = 0 if arm_dsp._pointwise(p) else 4 * kp + 60
            if key == "tail":
                return int(1.2 * macs + 12 * outs + last * (1.65 * macs / max(pixels, 1) + 35 * p["out_c"] + 140
                                                            + gather))
            return int(1.07 * macs + 12 * outs + last * (2.3 * macs / max(pixels, 1) + 12 * p["out_c"] + 40 + gather))
        if key == "rows":  # 4 channels per input word, per pixel a call
            return int(1.65 * macs) + 35 * outs + 140 * (outs // max(p["out_c"], 1))
        if key == "w6":  # 31 cycles per 24 multiply-accumulates over rows padded to blocks of 6
            n, kp = p["out_features"], (p["in_features"] + 3) // 4 * 4
            rows = n + -n % 6
            if p["in_features"] % 4 == 0 and arm_dsp.has_records(k, p):
                return int(1.3 * rows * kp) + 21 * rows  # in assembly from bias to output
            return int(1.35 * rows * kp) + 35 * rows  # requantization in C
        if k == "fully_connected_s8":  # rows of 4 (one input row) or 2 x 2 blocks
            return int(1.9 * macs) + 40 * outs
        if k == "conv2d_s8" and arm_dsp.conv_columns(p) != arm_dsp.POINTWISE_BLOCK:  # 2 x 2 blocks
            return int(1.4 * macs) + 10 * outs
        return int(1.3 * macs) + 8 * outs
    if k == "add_s8":
        return 30 * outs if key == "portable" else 9 * outs
    if k == "transpose_conv_s8":  # per multiply-accumulate some 19 cycles portable, 2 arm-dsp; per output 40
        return 19 * macs + 60 * outs if key == "portable" else 2 * macs + 40 * outs
    if k == "softmax_s8":  # per value two exps (some 110 cycles each) portable, two table loads arm-dsp
        return 240 * outs + 400 if key == "portable" else 40 * outs + 400
    if k == "lut_s8":  # per value a byte loop; 4 values a word
        return 18 * outs if key == "portable" else 5 * outs + 40
    if k in arm_dsp.BINARY:  # per value a call through the broadcast walk; one loop per innermost axis
        runs = outs // max(int(p["out_shape"][3]), 1) if p["broadcast"] else 1
        per = {"mul_s8": (105, 20), "sub_s8": (185, 12)}.get(k, (155, 10))
        return per[0] * outs if key == "portable" else per[1] * outs + 30 * runs + 60
    if k == "avg_pool_s8":  # per tap and channel about 11 cycles; 4 channels in about 5
        taps = p["k_h"] * p["k_w"]
        return (11 * taps + 40) * outs if key == "portable" else (taps * 5 // 4 + 45) * outs
    # any other layer (e.g. the 16x8 ones): its arm-dsp variant taken as the faster
    return (10 if key == "portable" else 5) * max(macs, outs, 1)


def options(step: Step, outs: int, input_dies: bool = False) -> list[Option]:
    """A layer's candidates: the portable kernel, then its arm-dsp variants
    (those that overwrite the input only when input_dies)."""
    opts = [Option("portable", f"portable kernel mcf_{step.kernel}", estimate(step, "portable", outs), 0)]
    for v in arm_dsp.candidates(step):
        if v.key in ("reuse", "reusew", "winreusew") and not input_dies:
            continue
        flash = arm_dsp.table_bytes(step.kernel, step.params) if step.kernel in arm_dsp.TABLES else 0
        if v.wide:  # int16 pairs: the int8 filter's bytes (K padded to 4) once more
            p = step.params
            if step.kernel == "fully_connected_s8":  # rows padded to blocks of 6; records, 3 words a row
                n = p["out_features"]
                flash = (2 * (n + -n % 6) - n) * ((p["in_features"] + 3) // 4 * 4) + 4 * (-n % 6)
                if arm_dsp.has_records(step.kernel, p):
                    flash += 12 * (n + (-n % 6))
            else:
                flash = p["out_c"] * ((p["k_h"] * p["k_w"] * p["in_c"] + 3) // 4 * 4)
        opts.append(Option(v.key, f"{v.function}: {v.what}", estimate(step, v.key, outs), flash))
    return opts


def scratch_of(choice: dict):
    """The memory planner's scratch function for a choice (layer name -> key)."""
    def size(step: Step) -> int:
        return arm_dsp.scratch_size(step, choice)
    return size


def inputs_dying(graph, steps: list[Step], aliases) -> set[str]:
    """Layers whose (first) input no later layer reads, that is not a model
    input or output and shares its buffer with no other tensor (an alias)."""
    aliased = {t for pair in aliases for t in pair}
    keep = set(graph.outputs) | set(graph.inputs) | aliased
    out = set()
    for i, s in enumerate(steps):
        t = s.inputs[0] if s.inputs else None
        if t is None or t in keep or any(t in later.inputs for later in steps[i + 1:]):
            continue
        if s.inputs.count(t) == 1:
            out.add(s.name)
    return out


def choose(graph, steps: list[Step], aliases, allow_inplace: bool, config, plan_steps):
    """(steps, MemoryPlan, choice, reasons) of the layer plan with each
    layer's variant chosen within the budgets (module docstring)."""
    # a training build's backward pass reads forward activations: no layer overwrites its input there
    dies = inputs_dying(graph, steps, aliases) if config.training == "none" else set()
    opts = {s.name: options(s, graph.tensors[s.outputs[0]].size, s.name in dies) for s in steps}
    portable = {s.name: "portable" for s in steps}
    base_steps, base_mem = plan_steps(graph, steps, aliases, allow_inplace, portable_scratch_size)
    portable_arena = base_mem.arena_size
    if config.sram_budget is not None:
        limit, limit_what = max(config.sram_budget, portable_arena), f"--sram-budget {config.sram_budget}"
        if config.sram_budget < portable_arena:
            limit_what = f"the portable plan's arena {portable_arena} (over --sram-budget)"
    else:
        limit, limit_what = portable_arena, f"the portable plan's arena ({portable_arena} B; no --sram-budget)"
    weights = sum(s.weight_bytes for s in steps)
    spare_flash = None if config.flash_budget is None else max(0, config.flash_budget - weights - CODE_RESERVE)

    def flash_of(choice):
        return sum(next(o.flash for o in opts[n] if o.key == k) for n, k in choice.items())

    def fits_flash(choice):
        return spare_flash is None or flash_of(choice) <= spare_flash

    def plan(choice):
        return plan_steps(graph, steps, aliases, allow_inplace, scratch_of(choice))

    def cycles(name, key):
        return next(o.cycles for o in opts[name] if o.key == key)

    fastest = {n: min(o, key=lambda x: x.cycles).key for n, o in opts.items()}
    planned, mem = plan(fastest)
    reasons = {}
    if mem.arena_size <= limit and fits_flash(fastest):
        for n, k in fastest.items():
            reasons[n] = _reason(opts[n], k, None)
        return planned, mem, fastest, reasons, limit
    # smallest scratch first (portable where an arm-dsp variant needs more), then upgrades
    choice = dict(portable)
    best = (base_steps, base_mem)
    blocked: dict[str, tuple[str, str]] = {}
    order = sorted(((cycles(n, "portable") - o.cycles, n, o.key) for n, os_ in opts.items() for o in os_
                    if o.key != "portable"), reverse=True)
    for saved, name, key in order:
        if saved <= 0 or cycles(name, choice[name]) <= cycles(name, key):
            continue
        trial = {**choice, name: key}
        if not fits_flash(trial):
            blocked.setdefault(name, (key, f"its {next(o.flash for o in opts[name] if o.key == key)} B of flash "
                                           f"do not fit --flash-budget {config.flash_budget} beside the weights and "
                                           f"{CODE_RESERVE} B kept for code"))
            continue
        p_steps, p_mem = plan(trial)
        if p_mem.arena_size > limit:
            blocked.setdefault(name, (key, f"its scratch would grow the arena to {p_mem.arena_size} B, beyond "
                                           f"{limit_what}"))
            continue
        choice, best = trial, (p_steps, p_mem)
    for n, k in choice.items():
        reasons[n] = _reason(opts[n], k, blocked.get(n) if k != fastest[n] else None)
    return best[0], best[1], choice, reasons, limit


def _reason(opts: list[Option], key: str, blocked) -> str:
    o = next(x for x in opts if x.key == key)
    if len(opts) == 1:
        return f"{o.what}: no arm-dsp variant"
    if blocked is None:
        return f"{o.what}: the fastest of {len(opts)} (estimated {o.cycles:,} cycles)"
    faster = next(x for x in opts if x.key == blocked[0])
    return (f"{o.what} (estimated {o.cycles:,} cycles): {faster.key} (estimated {faster.cycles:,}) is faster but "
            f"{blocked[1]}")
