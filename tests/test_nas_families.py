"""The search space from tiny to large (mcuforge.nas.families) and the
search over it (mcuforge.nas.designsearch): small, bounded runs.

* a tiny search on non-square images (digits cropped to 8x6) and on 1-D
  signals (N, C, L) returns a network whose generated C compiles, whose
  Cortex-M4 ELF check-elf finds within both budgets, and whose int8 C runs;
* the space step with MCUNet's MACs rule, on a fixed seed, picks the
  plain-CNN family at a tiny budget (1 KB SRAM / 8 KB flash, all families)
  and the inverted-residual family over the plain one at a large budget
  (64 KB / 256 KB): the compute of the networks that fit decides;
* the space step by short training (the default of `search`) scores the
  triples it trained (by their hand-drawn members), records that in the
  table and picks the smallest SRAM among those tied with the best proxy
  accuracy; the finalists of a search are ranked again by a longer training;
* the columns layout (a 2-D input read as a 1-D signal with W x C channels)
  compiles to one reshape of the same bytes, and the generated C computes
  what the PyTorch network computes;
* the plain family at width 1 holds the hand-drawn 16-24 CNN and its
  narrower versions; a k-fold proxy scores every sample once, reproducibly;
* every design of every family builds, runs a batch and exports at batch 1
  with the same outputs (the resize's batch-1 form is the compiled one).
"""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from mcuforge.nas.designsearch import (Split, choose_space, finish, prefer_small, proxy_score,  # noqa: E402
                                       rescore_best, search, tie_tolerance)
from mcuforge.nas.families import (FAMILIES, FamilySpace, build, export, hand_cnn, layouts_for,  # noqa: E402
                                   scales_for)
from mcuforge.nas.measure import Budget  # noqa: E402

from marks import needs_qemu  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _digits(crop_width: int = 8) -> Split:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None, :, :crop_width]
    y = d.target.astype(np.int64)
    return Split(x[:600], y[:600], x[1400:], y[1400:], 10)


def _signals() -> Split:
    """(N, 2, 64): class k is a sine of 2 + 3k cycles (random phase, noise) on
    channel 0 and its square on channel 1."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    t = np.arange(64) / 64
    s = np.sin(2 * np.pi * (2 + 3 * y[:, None]) * t + rng.uniform(0, 6.3, (400, 1)))
    x = np.stack([s, s ** 2], 1) + 0.3 * rng.standard_normal((400, 2, 64))
    x = x.astype(np.float32)[..., None]  # 1-D data as (N, C, L, 1)
    return Split(x[:300], y[:300], x[300:], y[300:], 4)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 49, 10), (2, 64, 1), (2, 12, 6)])
def test_designs_run_batched_and_at_batch_one(family, shape):
    rng = random.Random(0)
    for layout, scale in [(lo, s) for lo in layouts_for(shape) for s in scales_for(shape, lo)]:
        space = FamilySpace(family, shape, 5, 0.5, scale, layout)
        for design in (space.smallest(), space.sample(rng), space.mutate(space.sample(rng), rng)):
            assert design.layout == layout
            net = build(design).eval()
            x = torch.randn(3, *shape)
            with torch.no_grad():
                batch = net(x)
                one = torch.cat([net(x[i:i + 1]) for i in range(3)])
            assert batch.shape == (3, 5)
            assert torch.allclose(batch, one, atol=1e-5)


@needs_qemu
def test_tiny_search_on_non_square_images_compiles_within_budget(tmp_path):
    split = _digits(6)
    budget = Budget(4 * 1024, 32 * 1024)
    result = search(split, budget, seed=0, families=("plain", "mbconv"), widths=(0.5,), scales=(1.0,),
                    space_samples=2, candidates=3, proxy_epochs=1, final_epochs=10)
    assert result.design.input_shape == split.input_shape
    # the space step's table compared every family it was given
    assert {t["family"] for t in result.choice.table} == {"plain", "mbconv"}
    assert sum(t["chosen"] for t in result.choice.table) == 1
    out = finish(result.model, split.input_shape, split, budget, tmp_path)
    assert out["fits"], out["problems"]
    assert out["sram_bytes"] <= budget.sram and out["flash_bytes"] <= budget.flash
    assert out["arena_bytes"] <= out["sram_bytes"]
    # the int8 C classifies the held-out split well above chance and close to the float network
    assert out["int8_accuracy"] > 1.5 / split.classes
    assert abs(out["int8_accuracy"] - result.accuracy) <= 0.05


@needs_qemu
def test_space_step_picks_plain_at_tiny_and_inverted_residual_at_large_budget():
    split = _digits()
    tiny = choose_space(split, Budget(1024, 8 * 1024), widths=(0.5, 1.0), scales=(1.0,), samples=3, seed=0,
                        layouts=("image",))
    # at the large budget plain against inverted residual (with the DS-CNN family too, seed 0 gives the
    # DS-CNN: mean 0.49 M MACs of its fitting width-1 samples against 0.29 M for inverted residual)
    large = choose_space(split, Budget(64 * 1024, 256 * 1024), families=("plain", "mbconv"), widths=(0.5, 1.0),
                         scales=(1.0,), samples=3, seed=0, layouts=("image",))
    assert tiny.family == "plain"
    assert large.family == "mbconv"
    # the choice is the triple whose fitting networks have the most MACs on average
    for choice in (tiny, large):
        chosen = next(t for t in choice.table if t["chosen"])
        assert chosen["mean_macs_fitting"] == max(t["mean_macs_fitting"] for t in choice.table
                                                  if t["fitting"] and t["fit_fraction"] >= 0.2)
    # at the tiny budget the depthwise families do not fit at all
    assert all(t["fitting"] == 0 for t in tiny.table if t["family"] == "dscnn")


@needs_qemu
def test_space_step_by_short_training_prefers_the_smallest_sram_among_ties():
    split = _digits()
    choice = choose_space(split, Budget(2048, 16 * 1024), widths=(1.0,), scales=(1.0,), samples=2, seed=0,
                          criterion="train", proxy_epochs=3, per_family=2)
    trained = [t for t in choice.table if "proxy_accuracy" in t]
    pairs = {(t["family"], t["layout"]) for t in choice.table if t["fitting"]}
    assert {(t["family"], t["layout"]) for t in trained} == pairs and {lo for _, lo in pairs} == {"image", "columns"}
    assert len(trained) <= 2 * len(pairs) and all(t["proxy_scored"] == len(split.y_val) for t in trained)
    # a triple is represented by its hand-drawn member with the most MACs when one fits
    for t in trained:
        space = FamilySpace(t["family"], split.input_shape, 10, t["width"], t["scale"], t["layout"])
        fit = [r for r in choice.rows if r["fits"] and (r["family"], r["width"], r["scale"], r["layout"]) ==
               (t["family"], t["width"], t["scale"], t["layout"])]
        anchors = [r for r in fit if r["design"] in {d.key() for d in space.anchors()}]
        if anchors:
            assert t["proxy_design"] == max(anchors, key=lambda r: (r["macs"], r["design"]))["design"]
    chosen = next(t for t in choice.table if t["chosen"])
    top = max(t["proxy_accuracy"] for t in trained)
    tied = [t for t in trained if t["proxy_accuracy"] >= top - tie_tolerance(top, len(split.y_val)) - 1e-12]
    assert chosen in tied
    assert chosen["proxy_sram_bytes"] == min(t["proxy_sram_bytes"] for t in tied)
    # prefer_small: ties by SRAM, the rest by accuracy
    rows = [{"design": str(i), "fits": True, "accuracy": a, "scored": 1000, "sram_bytes": s, "flash_bytes": 1}
            for i, (a, s) in enumerate([(0.990, 900), (0.989, 600), (0.950, 100), (0.970, 300)])]
    assert [r["design"] for r in prefer_small(rows)] == ["1", "0", "3", "2"]


def test_plain_family_holds_the_hand_cnn_and_narrower_versions():
    space = FamilySpace("plain", (1, 8, 8), 10, 1.0, 1.0)
    assert {8, 12, 16} <= set(space.channel_choices(0)) and {12, 24} <= set(space.channel_choices(1))
    f = FAMILIES["plain"]
    hand = hand_cnn((1, 8, 8), 10)
    assert len(hand.stages) in f.stages and hand.head in f.heads
    for i, st in enumerate(hand.stages):
        assert st.block in f.blocks and st.depth in f.depths and st.kernel in f.kernels
        assert st.downsample in f.downsamples and st.channels in space.channel_choices(i)
    # the space step samples it first (with the 8-12 version) in the width-1 plain space
    assert (space.widest().stages, space.widest().head) == (hand.stages, hand.head)
    assert [st.channels for st in space.smallest().stages] == [8, 12]


def test_anchors_are_the_hand_drawn_cnns_of_two_to_four_convolutions():
    space = FamilySpace("plain", (1, 8, 8), 10, 1.0, 1.0)
    got = [(d.stages, d.head) for d in space.anchors()]
    want = [(h.stages, h.head) for h in (hand_cnn((1, 8, 8), 10, c) for c in ((16, 24), (16, 24, 32),
                                                                              (16, 24, 32, 48)))]
    assert got == want
    # on a map too short for four poolings the four-stage member is left out (valid() keeps one pixel)
    assert len(FamilySpace("plain", (1, 8, 1), 10, 1.0, 1.0).anchors()) == 3  # 8 -> 4 -> 2 -> 1 -> 1
    assert [len(d.stages) for d in FamilySpace("dscnn", (1, 49, 10), 12, 0.5, 1.0, "columns").anchors()] == [2, 3, 4]


@pytest.mark.parametrize("shape", [(1, 49, 10), (2, 12, 6)])
def test_columns_layout_compiles_to_a_reshape_of_the_same_bytes(tmp_path, shape):
    """(N, C, H, W) read as (N, W x C, H, 1): in the NHWC buffer the C reads that is the same bytes, so
    the compiled graph holds one reshape and no transpose, its input is the data's shape, and the
    generated C's int8 output (equal to the Python reference) follows the PyTorch network's."""
    import mcuforge
    from mcuforge.config import BuildConfig
    from mcuforge.pipeline import compile_model
    from mcuforge.quantize import dequantize_values

    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, *shape)).astype(np.float32)
    design = FamilySpace("plain", shape, 4, 1.0, 1.0, "columns").anchors()[0]
    assert design.net_shape == (shape[2] * shape[0], shape[1], 1) and design.one_d
    torch.manual_seed(0)
    net = build(design).eval()
    np.save(tmp_path / "cal.npy", x)
    plan = compile_model(export(net, shape), BuildConfig(name="cols", calibration=str(tmp_path / "cal.npy")),
                         tmp_path / "c")
    ops = [n.op for n in plan.graph.nodes]
    assert ops[0] == "reshape" and "transpose" not in ops
    m = mcuforge.load(tmp_path / "c")
    y = m.run(x)
    assert np.array_equal(y, m.reference(x))
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    out = dequantize_values(y, plan.graph.tensors[plan.outputs[0]].quant).reshape(ref.shape)
    # the int8 network tracks the float one: a wrong channel order would not
    assert np.abs(out - ref).max() <= 0.1 * np.abs(ref).max()
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.75


def test_rescoring_ranks_the_finalists_by_the_longer_training():
    split = _digits()
    space = FamilySpace("plain", split.input_shape, 10, 0.5, 1.0)
    designs = [space.smallest(), space.anchors()[0], space.anchors()[1]]
    rows = [{"design": d.key(), "design_obj": d, "fits": True, "accuracy": 0.5, "scored": 150, "sram_bytes": 100 * i,
             "flash_bytes": 1, "macs": 1} for i, d in enumerate(designs, 1)]
    rows.append({"design": "over", "fits": False})
    best = rescore_best(rows, split, 3, 4, 0)
    scores = [r["rescored_accuracy"] for r in rows[:3]]
    assert all(r["rescored"] == len(split.y_val) for r in rows[:3])
    assert scores[0] == proxy_score(designs[0], split, 4, 0)[0]  # the longer training, reproducibly
    ranked = prefer_small([{**r, "accuracy": r["rescored_accuracy"], "scored": r["rescored"]} for r in rows[:3]])
    assert best is rows[[r["design"] for r in rows[:3]].index(ranked[0]["design"])]
    assert rescore_best(rows[:1], split, 3, 4, 0) is rows[0] and "rescored_accuracy" in rows[0]


def test_k_fold_proxy_scores_every_sample_reproducibly():
    split = _digits()
    design = FamilySpace("plain", split.input_shape, 10, 0.5, 1.0).smallest()
    first = proxy_score(design, split, 1, 0, folds=3)
    assert first[1] == len(split.y_train) + len(split.y_val)
    assert proxy_score(design, split, 1, 0, folds=3) == first
    assert 0.1 < first[0] <= 1.0


@needs_qemu
def test_cli_tiny_search_on_1d_data(tmp_path, capsys):
    """`mcuforge nas` on (N, C, L) data: the family space is taken, DIR holds the
    C, the checked ELF and report.json with the space step's table."""
    import json

    from mcuforge.tools import cli

    split = _signals()
    path = tmp_path / "signals.npz"
    np.savez(path, x=split.x_train[..., 0], y=split.y_train, x_val=split.x_val[..., 0], y_val=split.y_val)
    out = tmp_path / "out"
    rc = cli.main(["-q", "nas", "--data", str(path), "--sram-budget", "4K", "--flash-budget", "32K",
                   "--space-samples", "1", "--widths", "0.5", "--scales", "1", "--candidates", "3", "--proxy-epochs", "1", "--final-epochs", "20",
                   "--space-criterion", "macs", "-o", str(out)])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["input_shape"] == [2, 64, 1] and report["data"]["held_out"] == len(split.y_val)
    assert report["sram_bytes"] <= 4096 and report["flash_bytes"] <= 32768
    assert json.loads((out / "elf_check.json").read_text())["fits"]
    table = report["search_space"]["table"]
    assert {t["family"] for t in table} == {"plain", "dscnn", "mbconv"} and sum(t["chosen"] for t in table) == 1
    assert report["search_space"]["criterion"] == "macs"
    assert report["design"]["input_shape"] == [2, 64, 1]
    assert all(s["kernel"] in (3, 5, 7) for s in report["design"]["stages"])
    assert report["accuracy"]["int8_c"] > 1.5 / split.classes
    assert {"c", "model.onnx", "model.pt", "arch.json", "nas_cortex_m4.elf"} <= {p.name for p in out.iterdir()}


@needs_qemu
def test_latency_table_predicts_a_network_it_was_not_fitted_on():
    """The per-layer cost table (9 calibration networks profiled under QEMU)
    predicts the Cortex-M4 instructions of networks outside its calibration
    set within 15% (measured: 1-13% on six such networks); a candidate over
    --latency-budget does not fit."""
    from mcuforge.nas.designsearch import measure_design
    from mcuforge.nas.latency import calibration_designs, measure_table, profile

    split = _digits()
    table = measure_table(split.input_shape, 10, split.x_train[:32])
    rng = random.Random(7)
    calibration = {d.key() for d in calibration_designs(split.input_shape, 10)}
    for family in ("plain", "dscnn"):
        design = FamilySpace(family, split.input_shape, 10, 1.0, 1.0).sample(rng)
        assert design.key() not in calibration
        torch.manual_seed(1)
        net = build(design)
        with torch.no_grad():
            net.classifier.bias.zero_()
        plan, per_layer, total = profile(net, split.input_shape, split.x_train[:32])
        predicted = table.predict(plan)
        assert abs(predicted - total) <= 0.15 * total, (family, predicted, total)
        row = measure_design(design, Budget(64 * 1024, 256 * 1024), split.x_train[:32], table, predicted - 1)
        assert not row["fits"] and row["reason"] == "over the latency budget"
        assert row["instructions_predicted"] == predicted


@needs_qemu
def test_python_api_search_writes_what_the_command_writes(tmp_path):
    """mcuforge.nas.search((x, y), ...) runs the command's search: report.json returned, the
    compiled C loadable with mcuforge.load and equal to its own reference; bad options raise
    BadInput."""
    import mcuforge
    import mcuforge.nas

    split = _signals()
    out = tmp_path / "out"
    report = mcuforge.nas.search((split.x_train[..., 0], split.y_train), sram_budget="4K", flash_budget="32K",
                                 out=out, space_samples=1, widths=0.5, scales=1, candidates=2, proxy_epochs=1,
                                 final_epochs=2)
    assert report["sram_bytes"] <= 4096 and report["flash_bytes"] <= 32768
    assert report == json.loads((out / "report.json").read_text())
    m = mcuforge.load(out / "c")
    x = split.x_val[:4]  # the compiled model takes 1-D data as (N, C, L, 1)
    assert np.array_equal(m.run(x), m.reference(x))
    with pytest.raises(mcuforge.BadInput):
        mcuforge.nas.search((x[..., 0], split.y_val[:4]), sram_budget="4K", flash_budget="32K", out=tmp_path / "bad",
                            candidates=0.5)


def test_cli_layouts_bad_value_is_one_clear_error(tmp_path, capsys):
    """--layouts names what the data allows: columns is for 2-D inputs, not 1-D signals."""
    from mcuforge.tools import cli

    split = _signals()
    path = tmp_path / "signals.npz"
    np.savez(path, x=split.x_train[..., 0], y=split.y_train)
    for value, allowed in (("columns", "image (columns is for 2-D inputs)"), ("rows", "image")):
        rc = cli.main(["-q", "nas", "--data", str(path), "--sram-budget", "4K", "--flash-budget", "32K",
                       "--space", "families", "--layouts", value, "-o", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert rc == 2 and f"--layouts: '{value}': for this data choose from {allowed}" in err and "Traceback" not in err
        assert not (tmp_path / "out").exists()
