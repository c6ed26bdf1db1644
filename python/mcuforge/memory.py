"""Arena planning: lifetimes over the execution order -> offsets in one buffer.

Rules (DESIGN.md, "Memory"):
* Two buffers whose lifetimes overlap never overlap in the arena.
* Exceptions are proven safe here and nowhere else:
  - ``reshape`` output is the input's bytes (an alias, no kernel);
  - elementwise ops (add, requantize/clamp, softmax) write their output over
    an input of the same size when that input dies at this step;
  - depthwise conv with depth multiplier 1 and an output no larger than its
    input writes over its input when the input dies at this step, channel by
    channel through a small scratch buffer.
* Scratch buffers live for their step only.
The peak (arena size) is the largest ``offset + size`` over all buffers.
"""
from __future__ import annotations

from dataclasses import dataclass

from .ir import Graph
from .ops import Step

ALIGN = 4


def _align(x: int) -> int:
    return (x + ALIGN - 1) // ALIGN * ALIGN


@dataclass
class Buffer:
    """A region of the arena: one or more tensors sharing bytes, or a scratch."""

    key: str  # tensor name of the group's root, or "scratch:<step>"
    tensors: list[str]
    size: int
    first: int  # first step at which it is live (-1: before the first step)
    last: int  # last step at which it is live (len(steps): after the last)
    offset: int = -1

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last

    def overlaps_in_space(self, other: "Buffer") -> bool:
        return self.offset < other.offset + other.size and other.offset < self.offset + self.size


@dataclass
class MemoryPlan:
    buffers: list[Buffer]
    tensor_offsets: dict[str, int]
    scratch_offsets: dict[int, int]
    arena_size: int
    live_bytes: list[int]  # per step: bytes of all buffers live at that step
    strategy: str = ""


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, root: str, other: str) -> None:
        a, b = self.find(root), self.find(other)
        if a != b:
            self.parent[b] = a


def plan_memory(graph: Graph, steps: list[Step], aliases: list[tuple[str, str]],
                scratch_size=None, allow_inplace: bool = True) -> MemoryPlan:
    """Decide in-place steps, then place every buffer.

    `aliases` are (input, output) pairs of alias ops (reshape). `scratch_size`
    maps a Step whose planner set it in place to its scratch bytes.
    Mutates steps: sets ``inplace_input``, ``kernel`` and ``scratch``.
    """
    n = len(steps)
    uf = _UnionFind()
    for t in graph.activations():
        uf.find(t.name)
    for src, dst in aliases:
        uf.union(src, dst)

    def group_last_use() -> dict[str, int]:
        last: dict[str, int] = {}
        for i, s in enumerate(steps):
            for name in s.inputs + s.outputs:
                r = uf.find(name)
                last[r] = max(last.get(r, -1), i)
        for name in graph.outputs:
            last[uf.find(name)] = n
        return last

    outputs_roots = lambda: {uf.find(o) for o in graph.outputs}  # noqa: E731
    size_of = {t.name: t.nbytes for t in graph.activations()}

    def group_size(root: str) -> int:
        return max(size_of[t] for t in size_of if uf.find(t) == root)

    if allow_inplace:
        for i, s in enumerate(steps):
            if not s.inplace:
                continue
            last = group_last_use()
            out = s.outputs[0]
            candidates = [0] if s.inplace == "depthwise" else list(range(len(s.inputs)))
            for k in candidates:
                root = uf.find(s.inputs[k])
                if last.get(root, -1) != i or root in outputs_roots() or root == uf.find(out):
                    continue
                if s.inplace == "elementwise" and size_of[s.inputs[k]] != size_of[out]:
                    continue
                if group_size(root) < size_of[out]:
                    continue
                s.inplace_input = k
                uf.union(root, out)
                if s.inplace == "depthwise":
                    s.kernel = "depthwise_conv2d_s8_inplace"
                    s.scratch = int(scratch_size(s)) if scratch_size else 0
                break

    if scratch_size is not None:  # every step's scratch, as the backend's kernels need it
        for s in steps:
            s.scratch = int(scratch_size(s))

    # groups -> buffers
    first: dict[str, int] = {}
    for name in graph.inputs:
        first[uf.find(name)] = -1
    for i, s in enumerate(steps):
        for name in s.outputs:
            r = uf.find(name)
            first[r] = min(first.get(r, i), i)
    last = group_last_use()
    members: dict[str, list[str]] = {}
    for t in graph.activations():
        members.setdefault(uf.find(t.name), []).append(t.name)
    buffers = [Buffer(key=r, tensors=ts, size=max(size_of[t] for t in ts), first=first.get(r, -1),
                      last=last.get(r, first.get(r, -1)))
               for r, ts in members.items()]
    for i, s in enumerate(steps):
        if s.scratch:
            buffers.append(Buffer(key=f"scratch:{i}", tensors=[], size=s.scratch, first=i, last=i))

    best: tuple[int, str, list[int]] | None = None
    for strategy, order in _orders(buffers):
        for fit in ("first", "best"):
            offsets = _place([buffers[j] for j in order], fit)
            placed = [0] * len(buffers)
            for j, off in zip(order, offsets):
                placed[j] = off
            peak = max((placed[j] + b.size for j, b in enumerate(buffers)), default=0)
            if best is None or peak < best[0]:
                best = (peak, f"{strategy}/{fit}-fit", placed)
    assert best is not None
    peak, strategy, placed = best
    for b, off in zip(buffers, placed):
        b.offset = off

    tensor_offsets = {t: b.offset for b in buffers for t in b.tensors}
    scratch_offsets = {int(b.key.split(":")[1]): b.offset for b in buffers if b.key.startswith("scratch:")}
    live = [sum(b.size for b in buffers if b.first <= i <= b.last) for i in range(n)]
    return MemoryPlan(buffers, tensor_offsets, scratch_offsets, peak, live, strategy)


def _orders(buffers: list[Buffer]):
    idx = list(range(len(buffers)))
    yield "size", sorted(idx, key=lambda j: (-buffers[j].size, buffers[j].first, buffers[j].key))
    yield "start", sorted(idx, key=lambda j: (buffers[j].first, -buffers[j].size, buffers[j].key))
    yield "duration", sorted(idx, key=lambda j: (-(buffers[j].last - buffers[j].first), -buffers[j].size,
                                                 buffers[j].key))
    yield "area", sorted(idx, key=lambda j: (-buffers[j].size * (buffers[j].last - buffers[j].first + 1),
                                             buffers[j].key))


def _place(order: list[Buffer], fit: str) -> list[int]:
    placed: list[tuple[int, int, Buffer]] = []  # (offset, end, buffer)
    result = []
    for b in order:
        busy = sorted((o, e) for o, e, other in placed if other.overlaps_in_time(b))
        candidate, best_off, best_gap = 0, None, None
        for o, e in busy:
            if o - candidate >= b.size:
                gap = o - candidate
                if fit == "first":
                    best_off = candidate
                    break
                if best_gap is None or gap < best_gap:
                    best_off, best_gap = candidate, gap
            candidate = max(candidate, _align(e))
        if best_off is None:
            best_off = candidate
        result.append(best_off)
        placed.append((best_off, best_off + b.size, b))
    return result


def verify(plan: MemoryPlan) -> list[str]:
    """Problems with a plan: overlapping live buffers, misalignment. Empty if sound."""
    problems = []
    bs = plan.buffers
    for i, a in enumerate(bs):
        if a.offset % ALIGN:
            problems.append(f"{a.key} at {a.offset} is not {ALIGN}-byte aligned")
        if a.offset + a.size > plan.arena_size:
            problems.append(f"{a.key} ends past the arena")
        for b in bs[i + 1:]:
            if a.overlaps_in_time(b) and a.overlaps_in_space(b):
                problems.append(f"{a.key} [{a.offset},+{a.size}) t[{a.first},{a.last}] overlaps "
                                f"{b.key} [{b.offset},+{b.size}) t[{b.first},{b.last}]")
    return problems
