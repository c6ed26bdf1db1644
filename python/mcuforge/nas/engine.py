"""Candidate evaluation on several workers: Ray when asked, a local process
pool otherwise. Both run the same function (`run_task`) on the same inputs
and return results in input order, so a search gives the same answer on
either.

A task is ``(kind, context, item)``: ``measure`` (exact SRAM and flash of an
architecture) or ``candidate`` (measure, and if it fits, held-out accuracy
with the supernet's shared weights). The context (budgets, calibration
samples, supernet weights, data) is shipped once per Ray job through the
object store and cached per worker process by its token.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from ..ir import McuforgeError

_CACHE: dict = {}


def _supernet(ctx: dict):
    key = ctx["token"]
    if key not in _CACHE:
        import torch

        from .space import supernet

        net = supernet(ctx["space"])
        net.load_state_dict({k: torch.from_numpy(v) for k, v in ctx["supernet"].items()})
        _CACHE.clear()
        _CACHE[key] = net
    return _CACHE[key]


def run_task(kind: str, ctx: dict, item) -> dict:
    from .measure import accuracy, measure, recalibrate_bn
    from .space import Arch

    arch = Arch.from_dict(item) if isinstance(item, dict) else item
    row = measure(arch, ctx["budget"], ctx["calibration"])
    if kind == "candidate" and row["fits"]:
        net = _supernet(ctx).extract(arch)
        recalibrate_bn(net, ctx["x_bn"])
        row["accuracy"] = accuracy(net, ctx["x_val"], ctx["y_val"])
    return row


def _init_worker() -> None:
    os.environ.setdefault("MCUFORGE_NAS_THREADS", "1")
    import torch

    torch.set_num_threads(1)


def _pool_task(args):
    return run_task(*args)


def ray_requested(flag: bool) -> bool:
    return bool(flag or os.environ.get("RAY_ADDRESS"))


class Engine:
    """`map(kind, ctx, items)` on `workers` local processes or on Ray."""

    def __init__(self, workers: int = 2, use_ray: bool = False):
        self.workers = max(1, int(workers))
        self.use_ray = use_ray
        self._pool = None
        self._ray = None
        self._started_ray = False
        self._remote = None
        self._ctx_ref = (None, None)

    @property
    def name(self) -> str:
        if self.use_ray:
            return f"ray ({self._ray.cluster_resources().get('CPU', 0):g} CPUs)" if self._ray else "ray"
        return f"process pool ({self.workers} workers)"

    def _start(self) -> None:
        if self.use_ray and self._ray is None:
            try:
                import ray
            except ImportError:
                raise McuforgeError("--ray: Ray is not installed; pip install 'mcuforge[nas]' "
                                    "(or run without --ray for a local process pool)") from None
            if not ray.is_initialized():
                address = os.environ.get("RAY_ADDRESS")
                if address:
                    ray.init(address=address, log_to_driver=False)
                else:
                    ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False,
                             configure_logging=False)
                self._started_ray = True
            self._ray = ray
            self._remote = ray.remote(num_cpus=1)(_ray_task)
        elif not self.use_ray and self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"),
                                             initializer=_init_worker)

    def map(self, kind: str, ctx: dict, items: list) -> list[dict]:
        if not items:
            return []
        self._start()
        if self.use_ray:
            if self._ctx_ref[0] != ctx["token"]:
                self._ctx_ref = (ctx["token"], self._ray.put(ctx))
            refs = [self._remote.remote(kind, self._ctx_ref[1], item) for item in items]
            return self._ray.get(refs)
        return list(self._pool.map(_pool_task, [(kind, ctx, item) for item in items]))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        if self._ray is not None and self._started_ray:
            self._ray.shutdown()
        self._ray = None

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _ray_task(kind, ctx, item):
    _init_worker()
    return run_task(kind, ctx, item)
