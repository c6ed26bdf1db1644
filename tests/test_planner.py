"""Memory planner properties over many seeded random graphs."""
from __future__ import annotations

import numpy as np
import pytest

from mcuforge import reference
from mcuforge.config import BuildConfig
from mcuforge.memory import verify
from mcuforge.plan import build_plan
from mcuforge.quantize import quantize

from randgraph import random_graph

SEEDS = range(60)


def _plan(seed, allow_inplace=True):
    g = quantize(random_graph(seed))
    return build_plan(g, BuildConfig(name=f"rand{seed}"), allow_inplace=allow_inplace)


def live_intervals(plan):
    """Recompute lifetimes from the steps alone (independent of memory.py)."""
    n = len(plan.steps)
    first, last = {}, {}
    for t in plan.graph.inputs:
        first[t] = -1
    for i, s in enumerate(plan.steps):
        for t in s.outputs:
            first.setdefault(t, i)
        for t in s.inputs + s.outputs:
            last[t] = max(last.get(t, -1), i)
    for t in plan.graph.outputs:
        last[t] = n
    # reshape aliases share bytes: a tensor read through an alias lives as long
    for node in plan.graph.nodes:
        if node.op == "reshape":
            a, b = node.inputs[0], node.outputs[0]
            lo = min(first.get(a, 0), first.get(b, first.get(a, 0)))
            hi = max(last.get(a, -1), last.get(b, -1))
            first[a] = first[b] = lo
            last[a] = last[b] = hi
    return first, last


@pytest.mark.parametrize("seed", SEEDS)
def test_no_live_overlap(seed):
    plan = _plan(seed)
    assert verify(plan.memory) == []
    first, last = live_intervals(plan)
    g = plan.graph
    inplace_pairs = {(s.inputs[s.inplace_input], s.outputs[0]) for s in plan.steps if s.inplace_input >= 0}
    names = [t for t in first]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if not (first[a] <= last[b] and first[b] <= last[a]):
                continue  # never live together
            if (a, b) in inplace_pairs or (b, a) in inplace_pairs:
                continue
            oa, ob = plan.offset(a), plan.offset(b)
            sa, sb = g.tensors[a].nbytes, g.tensors[b].nbytes
            assert oa + sa <= ob or ob + sb <= oa, f"{a} and {b} are live together and overlap"
    # scratch buffers overlap nothing live at their step
    for s in plan.steps:
        if not s.scratch:
            continue
        so = plan.memory.scratch_offsets[s.index]
        for t in names:
            if first[t] <= s.index <= last[t]:
                o, sz = plan.offset(t), g.tensors[t].nbytes
                assert so + s.scratch <= o or o + sz <= so, f"scratch of step {s.index} overlaps {t}"
    # the peak is at least the largest set of simultaneously live bytes
    assert plan.arena_size >= max(plan.memory.live_bytes)
    assert plan.arena_size == max(b.offset + b.size for b in plan.memory.buffers)


@pytest.mark.parametrize("seed", SEEDS)
def test_poisoned_arena_matches(seed):
    plan = _plan(seed)
    rng = np.random.default_rng(1000 + seed)
    x = rng.integers(-128, 128, plan.graph.tensors[plan.input].size).astype(np.int8)
    clean = reference.run(plan, x)
    for poison in (1, 2):
        dirty = reference.run(plan, x, poison=poison)
        for o in plan.outputs:
            assert np.array_equal(clean.outputs[o], dirty.outputs[o]), f"output {o} depends on stale arena bytes"
    # in-place reuse changes nothing: same outputs as a plan without it
    plain = _plan(seed, allow_inplace=False)
    ref_plain = reference.run(plain, x, poison=3)
    for o in plan.outputs:
        assert np.array_equal(clean.outputs[o], ref_plain.outputs[o])
    assert plan.arena_size <= plain.arena_size


def test_inplace_depthwise_is_used():
    """A chain conv -> depthwise -> conv must run the depthwise in place."""
    hits = 0
    for seed in SEEDS:
        plan = _plan(seed)
        hits += sum(1 for s in plan.steps if s.kernel == "depthwise_conv2d_s8_inplace")
    assert hits > 0


@pytest.mark.parametrize("seed", range(0, 60, 3))
def test_random_graph_c_equals_reference(seed, tmp_path):
    """The planner's aliasing, run by the real generated C (in-place kernels included)."""
    from mcuforge.tools import hostrun
    from mcuforge.pipeline import write_outputs

    plan = _plan(seed)
    out = tmp_path / "gen"
    write_outputs(plan, out)
    exe = hostrun.build(plan, out, tmp_path / "build", opt="-O1")
    rng = np.random.default_rng(seed)
    shape = plan.graph.tensors[plan.input].shape
    xs = rng.integers(-128, 128, (3,) + shape[1:]).astype(np.int8)
    got = hostrun.run(plan, exe, xs)
    for i, x in enumerate(xs):
        want = reference.run(plan, x, poison=seed).outputs
        for k, o in enumerate(plan.outputs):
            assert np.array_equal(want[o].reshape(-1), got[k][i].reshape(-1)), f"seed {seed} output {o}"
