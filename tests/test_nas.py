"""TinyNAS on the real planner (mcuforge nas): small, bounded runs on
scikit-learn digits.

* every subnet the search returns fits its budgets: the arena in the
  generated header and check-elf on the Cortex-M4 ELF;
* the search-space step, under a tight budget, picks a (width, resolution)
  whose fitting subnets have more MACs on average than the largest
  width-scaled MobileNetV2 that fits;
* Ray (a real local cluster, ray.init(num_cpus=2)) and the process pool
  return the same search result for the same seed;
* bad data exits 2 naming the problem, budgets nothing meets exit 3 with the
  smallest peak found, and neither leaves anything in DIR.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

import mcuforge

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from mcuforge.tools import cli  # noqa: E402
from mcuforge.nas.baseline import WIDTHS as MBV2_WIDTHS, ScaledMobileNetV2  # noqa: E402
from mcuforge.nas.engine import Engine  # noqa: E402
from mcuforge.nas.measure import Budget, measurement_graph, plan_for  # noqa: E402
from mcuforge.nas.run import Options, search, write_result  # noqa: E402
from mcuforge.nas.search import check_data, evolve, optimize_space, split, train_supernet  # noqa: E402
from mcuforge.nas.space import Space  # noqa: E402

from marks import needs_qemu  # noqa: E402

BUDGET = Budget(8 * 1024, 32 * 1024, "layer")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    from mcuforge.tools.digits import digits_split

    x_train, _, y_train, _ = digits_split()
    x, y, classes = check_data(x_train[:400], y_train[:400], "digits")
    return split(x, y, classes)


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory, digits):
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x=digits.x_train, y=digits.y_train)
    return path


# ---- the returned network fits --------------------------------------------------------------

@needs_qemu
def test_search_returns_a_network_within_budget(tmp_path, digits):
    # far more epochs and generations than 20 s allow: --time-budget stops each phase and keeps the best so far
    opts = Options(budget=BUDGET, widths=(0.25,), resolutions=(16,), space_samples=2, supernet_epochs=40,
                   population=3, generations=20, finetune_epochs=1, time_budget=20)
    with Engine(2) as engine:
        result = search(digits, opts, engine=engine)
        out = tmp_path / "out"
        report = write_result(result, digits, opts, out)
    # each phase stopped at its share of the time budget (wall time itself is for benchmarks, not tests)
    assert result["supernet_epochs"] < 40 and len(result["evolution"].history) - 1 < 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary sibling left
    assert {"arch.json", "model.pt", "model.onnx", "report.json", "elf_check.json", "nas_cortex_m4.elf",
            "c"} <= {p.name for p in out.iterdir()}
    # every subnet of the last generation was measured from its own ELF within the budgets
    for row in result["evolution"].population:
        assert row["fits"] and row["sram_bytes"] <= BUDGET.sram and row["flash_bytes"] <= BUDGET.flash
    # the arena in the generated header, and check-elf on the Cortex-M4 image
    header = (out / "c" / "nas.h").read_text()
    arena = int(re.search(r"#define NAS_ARENA_SIZE\s+(\d+)", header).group(1))
    assert arena == report["arena_bytes"] <= BUDGET.sram
    rc = cli.main(["-q", "check-elf", str(out / "nas_cortex_m4.elf"), "--model", "nas", "--sram-budget",
                   str(BUDGET.sram), "--flash-budget", str(BUDGET.flash), "--report", str(tmp_path / "chk.json")])
    assert rc == 0
    checked = json.loads((tmp_path / "chk.json").read_text())["model"]
    assert checked["arena_bytes"] == arena
    assert (checked["ram_bytes"], checked["flash_bytes"]) == (report["sram_bytes"], report["flash_bytes"])
    assert report["flash_bytes"] <= BUDGET.flash
    # model.onnx takes the data's own 8x8 images (the 16x16 resize is inside) and is the saved network
    import onnxruntime as ort

    from mcuforge.nas import load

    sess = ort.InferenceSession(str(out / "model.onnx"))
    assert sess.get_inputs()[0].shape == [1, 1, 8, 8]
    net = load(out)
    assert net.arch.resolution == 16
    x = digits.x_val[:1]
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(sess.run(None, {sess.get_inputs()[0].name: x})[0], want, rtol=1e-4, atol=1e-4)
    # the reported int8 accuracy is the generated C's on the held-out split (how good a net a 20 s
    # search finds depends on how loaded the machine is: accuracy targets live in bench/nas.py)
    compiled = mcuforge.load(out / "c")
    y_c = compiled.run(digits.x_val).reshape(len(digits.x_val), -1)
    assert report["accuracy"]["int8_c"] == float((y_c.argmax(1) == digits.y_val).mean())


# ---- search-space optimization ------------------------------------------------------------

@needs_qemu
def test_space_step_beats_largest_fitting_mobilenet_v2(digits):
    budget = Budget(8 * 1024, 32 * 1024, "layer")
    resolutions = (8, 16)
    with Engine(2) as engine:
        choice = optimize_space(engine, digits, budget, widths=(0.25, 0.5), resolutions=resolutions, samples=2)
        # MobileNetV2 scaled in width and resolution: weights grow with the width, so once a width
        # fits at no resolution, no wider one does
        archs = [ScaledMobileNetV2(1, 8, 10, w, r) for w in MBV2_WIDTHS[:2] for r in resolutions]
        ctx = {"token": "mbv2", "budget": budget, "calibration": digits.x_train[:32]}
        rows = engine.map("measure", ctx, archs)
    assert not any(r["fits"] for a, r in zip(archs, rows) if a.width == MBV2_WIDTHS[1])
    mbv2 = [r["macs"] for r in rows if r["fits"]]
    assert mbv2, "some width-scaled MobileNetV2 should fit 8 KB / 32 KB"
    chosen = choice.chosen
    assert chosen["mean_macs_fitting"] > max(mbv2)
    assert chosen["mean_macs_fitting"] == max(t["mean_macs_fitting"] for t in choice.table
                                              if t["fit_fraction"] >= 0.2)
    for r in choice.rows:
        if r["fits"]:
            assert r["sram_bytes"] <= budget.sram and r["flash_bytes"] <= budget.flash
        else:
            assert r["reason"]
    # the table's peak of the smallest subnet is the planner's own figure
    smallest = Space(1, 8, 10, 0.25, 8).smallest()
    plan, peak, _ = plan_for(measurement_graph(smallest), budget, None)
    assert next(t for t in choice.table if (t["width"], t["resolution"]) == (0.25, 8))["min_sram_bytes"] <= peak


# ---- Ray and the process pool --------------------------------------------------------------

@needs_qemu
def test_ray_and_process_pool_give_the_same_result(digits, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    space = Space(1, 8, 10, 0.25, 8)
    net, _ = train_supernet(space, digits, epochs=1, seed=3)
    results = {}
    for use_ray in (False, True):
        with Engine(2, use_ray=use_ray) as engine:
            evo = evolve(engine, net, space, digits, BUDGET, population=2, generations=1, seed=3)
            results[use_ray] = evo
            if use_ray:
                assert engine.name == "ray (2 CPUs)"  # a real local cluster of 2 CPUs
    pool, ray = results[False], results[True]
    assert pool.best["arch"] == ray.best["arch"]
    assert pool.best["accuracy"] == ray.best["accuracy"]
    assert (pool.best["sram_bytes"], pool.best["flash_bytes"]) == (ray.best["sram_bytes"], ray.best["flash_bytes"])
    assert pool.history == ray.history and pool.evaluated == ray.evaluated


# ---- errors -----------------------------------------------------------------------------------

def _bad(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("case, pattern", [
    ("shape", r"x has shape \(40, 8\); expected \(N, C, H, W\)"),
    ("nan", r"x contains 3 NaN or infinite value"),
    ("one_class", r"y has only one class \(4\)"),
    ("labels", r"y has shape \(39,\); expected \(40,\)"),
    ("missing", r"no array named y"),
])
def test_bad_data_exits_2(tmp_path, capsys, case, pattern):
    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 8, 8), dtype=np.float32)
    y = np.arange(40) % 4
    if case == "shape":  # (N, C, L) is 1-D data (the family space); (N, L) is not
        x = x[:, 0, 0]
    elif case == "nan":
        x[1, 0, 2, :3] = np.nan
    elif case == "one_class":
        y = np.full(40, 4)
    elif case == "labels":
        y = y[:39]
    path = _bad(tmp_path, x=x) if case == "missing" else _bad(tmp_path, x=x, y=y)
    out = tmp_path / "out"
    rc = cli.main(["nas", "--data", str(path), "--sram-budget", "8K", "--flash-budget", "32K", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert str(path) in err and re.search(pattern, err), err
    assert "Traceback" not in err and not out.exists()


@needs_qemu
def test_budget_nothing_meets_exits_3_with_smallest_peak(tmp_path, capsys, digits_npz):
    out = tmp_path / "out"
    rc = cli.main(["-q", "nas", "--data", str(digits_npz), "--sram-budget", "200", "--flash-budget", "4K",
                   "--space-samples", "1", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 3, err
    peak = int(re.search(r"smallest peak SRAM found is (\d+) bytes \(width 0.25, resolution 4\)", err).group(1))
    smallest = Space(1, 8, 10, 0.25, 4).smallest()  # the smallest subnet of the smallest (width, resolution)
    plan, _, _ = plan_for(measurement_graph(smallest), Budget(200, 4096), None)
    assert peak == plan.sram_bytes() > 200
    assert "raise --sram-budget to at least 1K" in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_time_budget_and_usage_errors(tmp_path, capsys, digits_npz):
    for extra, pattern in ((["--time-budget", "soon"], r"--time-budget: 'soon' is not a duration"),
                           (["--workers", "0"], r"--workers: give at least 1"),
                           (["--name", "9x"], r"--name: '9x' is not a C identifier")):
        rc = cli.main(["nas", "--data", str(digits_npz), "--sram-budget", "8K", "--flash-budget", "32K",
                       "-o", str(tmp_path / "o"), *extra])
        assert rc == 2 and re.search(pattern, capsys.readouterr().err)
    rc = cli.main(["nas", "--data", str(digits_npz), "--sram-budget", "8K", "-o", str(tmp_path / "o")])
    assert rc == 2 and "--flash-budget" in capsys.readouterr().err
