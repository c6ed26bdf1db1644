"""mcuforge command line: compile, report, run, check-elf, compare, nas.

Exit codes: 0 success; 1 internal error (a bug); 2 bad input or usage;
3 the model does not fit the budget. No traceback unless --debug.
4 (run --check, compare): outputs differ.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np

from ..config import BuildConfig, from_kconfig, parse_float, parse_float_list, parse_int_list, parse_size
from ..ir import McuforgeError
from ..version import __version__


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors: one line, exit 2
        self.print_usage(sys.stderr)
        print(f"mcuforge: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _add_build_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="C identifier prefixing every generated symbol (default: the model file's stem)")
    p.add_argument("--calibration", metavar="FILE", help="calibration inputs (.npy or .npz) in the model's layout")
    p.add_argument("--activations", choices=["int8", "int16"],
                   help="a float model's quantized activations: int8 (default) or int16 (TFLite's 16x8 scheme: "
                        "int16 activations, int8 weights, int64 biases)")
    p.add_argument("--sram-budget", metavar="SIZE", help="SRAM the model may use, e.g. 256K (exit 3 if it does not fit)")
    p.add_argument("--flash-budget", metavar="SIZE", help="flash the model may use, e.g. 1M")
    p.add_argument("--schedule", choices=["layer", "patch", "auto"], help="layer by layer, patch-based, or auto")
    p.add_argument("--patch-grid", type=int, metavar="N", help="patches per side (0: chosen by the planner)")
    p.add_argument("--patch-max-overhead", type=float, metavar="F",
                   help="extra MACs a patch schedule may cost, as a fraction (default 0.3)")
    p.add_argument("--input-stream", action="store_true", default=None,
                   help="patch schedule: the generated code reads the input region by region through a callback "
                        "(<name>_invoke_stream), so the whole input never sits in SRAM")
    p.add_argument("--training", choices=["none", "bias", "sparse", "full"], help="on-device training mode")
    p.add_argument("--learning-rate", metavar="LR", help="training: SGD learning rate in float terms (QAS)")
    p.add_argument("--momentum", metavar="M",
                   help="training: SGD momentum in [0, 1) (default 0; > 0 keeps an int32 velocity per trained parameter)")
    p.add_argument("--train-bias-layers", type=int, metavar="N", help="training: update the biases of the last N layers")
    p.add_argument("--train-weight-layers", metavar="I,J", help="training (sparse): weight layers whose weights are updated")
    p.add_argument("--train-weight-ratio", metavar="R1,R2",
                   help="training (sparse): leading fraction of output channels updated, one per --train-weight-layers")
    p.add_argument("--train-data", metavar="FILE.npz",
                   help="training: labelled data (x in the model's layout, y labels) to choose the sparse policy "
                        "under the SRAM budget")
    p.add_argument("--no-qas", action="store_true",
                   help="training: no quantization-aware scaling (plain SGD on the int8 parameters; for comparison)")
    p.add_argument("--no-reorder", action="store_true",
                   help="training: no operator reordering (keep every update until the backward pass ends)")
    p.add_argument("--kernels", choices=["portable", "arm-dsp"], help="C kernel set")
    p.add_argument("--stack-target", choices=["cortex-m4", "cortex-m3", "cortex-m7", "host", "none"],
                   help="core whose -O2 build of the generated C gives <NAME>_STACK_SIZE (default cortex-m4)")
    p.add_argument("--kconfig", metavar="PATH", help="take the options from a Zephyr .config (CONFIG_MCUFORGE_*)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mcuforge", description="Neural networks to int8 C for microcontrollers, SRAM planned at build time.")
    parser.add_argument("--version", action="version", version=f"mcuforge {__version__}")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    # --debug / --quiet are accepted after the verb too
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_parser = sub.add_parser
    sub.add_parser = lambda *a, **k: _add_parser(*a, parents=[common], **k)  # type: ignore[method-assign]

    c = sub.add_parser("compile", help="compile a model to C")
    c.add_argument("model")
    c.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    c.add_argument("--warn-only", action="store_true",
                   help="over the SRAM or flash budget: warn and write the model anyway (exit 0) instead of exit 3")
    _add_build_options(c)

    r = sub.add_parser("report", help="per-layer memory and compute report")
    r.add_argument("model", help="a model file or an output directory of 'compile'")
    r.add_argument("--plot", metavar="PNG", help="write the memory profile over the layers to a PNG")
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_build_options(r)

    u = sub.add_parser("run", help="build the generated C for the host and run it")
    u.add_argument("dir", help="output directory of 'compile'")
    u.add_argument("--input", required=True, metavar="X.npy", help="input in the model's layout (int8, int16 for a 16x8 model, or float32 to quantize)")
    u.add_argument("--output", metavar="Y.npy", help="write the output here (int8, or int16 for a 16x8 model; the model's layout)")
    u.add_argument("--train", metavar="LABELS.npy",
                   help="training build: run the training step on each input with these integer labels, printing "
                        "the losses and the trained state's checksum")
    u.add_argument("--epochs", type=int, default=1, metavar="N", help="with --train: passes over the inputs")
    u.add_argument("--save-state", metavar="FILE", help="with --train: write the trained state record here")
    u.add_argument("--check", action="store_true", help="compare with the NumPy reference; exit 4 on any difference")
    u.add_argument("--opt", default="-O2", help="optimisation flag for the host build (default -O2)")
    u.add_argument("--profile", action="store_true",
                   help="with a Cortex-M --target: MACs, instructions and (Cortex-M4) estimated cycles of every "
                        "layer and of the invoke, every executed instruction traced (docs/speed.md)")
    u.add_argument("--flash-wait-states", type=int, default=0, metavar="N",
                   help="with --profile on qemu-cortex-m4: charge N wait states to every instruction fetch and "
                        "constant read from flash (default 0: ideal memory)")
    u.add_argument("--target", default="host", metavar="T",
                   help="host (default), or a Cortex-M under QEMU: qemu-cortex-m3, qemu-cortex-m4, qemu-cortex-m7")

    k = sub.add_parser("compare", help="compare a TFLite model layer by layer with TFLM or LiteRT")
    k.add_argument("model", help="a .tflite file, or an output directory compiled from one")
    k.add_argument("--input", metavar="X.npy", help="inputs (NHWC; int8, or float32 to quantize); "
                   "default: one seeded random int8 input")
    k.add_argument("--oracle", choices=["tflm", "litert"], default="tflm",
                   help="tflm: TFLM reference kernels (default); litert: LiteRT builtin kernels")
    k.add_argument("--seed", type=int, default=0, help="seed of the random input (without --input)")

    e = sub.add_parser("check-elf", help="memory of a linked ELF against the budgets")
    e.add_argument("elf")
    e.add_argument("--sram-budget", metavar="SIZE")
    e.add_argument("--flash-budget", metavar="SIZE")
    e.add_argument("--model", metavar="ID", help="model name (symbol prefix) to account for")
    e.add_argument("--json", action="store_true")
    e.add_argument("--report", metavar="FILE", help="also write the JSON report to FILE")
    e.add_argument("--warn-only", action="store_true", help="over budget warns (exit 0) instead of exit 3")
    e.add_argument("--generated", metavar="DIR", help="the model's generated C (its header gives <NAME>_STACK_SIZE)")
    e.add_argument("--stack-objects", metavar="DIR", help="re-derive the stack from the build's objects and .su files")
    e.add_argument("--stack-target", choices=["cortex-m4", "cortex-m3", "cortex-m7", "host"],
                   help="the core those objects were built for (its toolchain's libraries; default cortex-m4)")
    e.add_argument("--thread-stack", type=int, metavar="N",
                   help="stack bytes of the thread that runs the model: fail (exit 3) when the model needs more")
    e.add_argument("--thread-stack-symbol", metavar="SYMBOL", help=argparse.SUPPRESS)
    e.add_argument("--verbose", action="store_true",
                   help="with --model: also the whole image's RAM and flash by section")
    n = sub.add_parser("nas", help="search a network that fits the SRAM and flash budgets (TinyNAS)")
    n.add_argument("--data", required=True, metavar="FILE.npz", help="x (N, C, H, W) float32 images, y (N,) labels")
    n.add_argument("--sram-budget", metavar="SIZE", help="SRAM the model may use, e.g. 8K")
    n.add_argument("--flash-budget", metavar="SIZE", help="flash the model may use (weights + code), e.g. 32K")
    n.add_argument("--schedule", choices=["layer", "patch", "auto"],
                   help="schedules the search may use (default layer; patch/auto: patch-based co-design)")
    n.add_argument("--time-budget", metavar="T", help="stop searching after T (90s, 10m, 1h) and keep the best so far")
    n.add_argument("--ray", action="store_true", help="evaluate candidates on Ray (also when RAY_ADDRESS is set)")
    n.add_argument("--workers", type=int, default=2, help="local worker processes or Ray CPUs (default 2)")
    n.add_argument("--seed", type=int, default=0)
    n.add_argument("--name", help="C identifier of the compiled model (default nas)")
    n.add_argument("--space-samples", type=int, metavar="N", help="subnets sampled per (width, resolution) (default 8)")
    n.add_argument("--supernet-epochs", type=int, metavar="N", help="supernet training epochs (default 30)")
    n.add_argument("--population", type=int, metavar="N", help="evolution population (default 12)")
    n.add_argument("--generations", type=int, metavar="N", help="evolution generations (default 6)")
    n.add_argument("--finetune-epochs", type=int, metavar="N", help="fine-tuning epochs of the winner (default 10)")
    n.add_argument("--space", choices=["auto", "mobilenet", "families"], default="auto",
                   help="families: plain CNN / DS-CNN / inverted-residual families, any input shape and 1-D data; "
                        "mobilenet: the weight-sharing inverted-residual supernet (square images); "
                        "auto (default): mobilenet for square images, families otherwise")
    n.add_argument("--candidates", type=int, metavar="N", help="families: candidates evaluated (default 12)")
    n.add_argument("--proxy-epochs", type=int, metavar="N", help="families: training epochs per candidate (default 5)")
    n.add_argument("--final-epochs", type=int, metavar="N", help="families: training epochs of the winner (default 40)")
    n.add_argument("--latency-budget", metavar="N",
                   help="families: Cortex-M4 instructions per inference (e.g. 2M, 500K), predicted from a per-layer "
                        "cost table measured under QEMU")
    n.add_argument("--space-criterion", choices=["train", "macs"],
                   help="families: how the space step picks (family, width, scale): train (default: a short "
                        "training of a few per family, the smallest SRAM among ties) or macs (MCUNet's rule)")
    n.add_argument("--folds", type=int, metavar="K",
                   help="families: score candidates by K-fold cross-validation over all the data (default 1: "
                        "the held-out split); for small data sets")
    n.add_argument("--widths", metavar="W,W", help="families: width multipliers to compare (default 0.25,0.5,0.75,1,1.5)")
    n.add_argument("--scales", metavar="S,S", help="families: input scales to compare (default 0.5,1,2 where possible)")
    n.add_argument("--layouts", metavar="L,L",
                   help="families: input layouts to compare: image (C x H x W as given) and columns (a 2-D input "
                        "read as a 1-D signal along H with W x C channels, the same bytes; default both for 2-D data)")
    n.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")

    d = sub.add_parser("datasets", help="make a data set offline (keywords: spoken words by espeak-ng, as MFCC)")
    dsub = d.add_subparsers(dest="dataset", required=True, parser_class=_Parser)
    from ..datasets import keywords
    keywords.add_arguments(dsub.add_parser("keywords", parents=[common],
                                           help="12-class keyword spotting, 49x10 MFCC (MLPerf Tiny KWS features)"))
    return parser


def config_from_args(args: argparse.Namespace) -> BuildConfig:
    base: dict = {}
    if getattr(args, "kconfig", None):
        base.update(from_kconfig(Path(args.kconfig)))
    explicit = dict(
        name=args.name, calibration=args.calibration, activations=getattr(args, "activations", None), schedule=args.schedule, patch_grid=args.patch_grid,
        patch_max_overhead=args.patch_max_overhead, input_stream=args.input_stream,
        training=args.training, kernels=args.kernels, stack_target=getattr(args, "stack_target", None),
        learning_rate=parse_float(args.learning_rate, "--learning-rate") if args.learning_rate else None,
        momentum=parse_float(args.momentum, "--momentum") if args.momentum else None,
        train_bias_layers=args.train_bias_layers,
        train_weight_layers=(parse_int_list(args.train_weight_layers, "--train-weight-layers")
                             if args.train_weight_layers else None),
        train_weight_ratio=(parse_float_list(args.train_weight_ratio, "--train-weight-ratio")
                            if args.train_weight_ratio else None),
        train_data=args.train_data,
        train_qas=False if getattr(args, "no_qas", False) else None,
        train_reorder=False if getattr(args, "no_reorder", False) else None,
        sram_budget=parse_size(args.sram_budget, "--sram-budget") if args.sram_budget else None,
        flash_budget=parse_size(args.flash_budget, "--flash-budget") if args.flash_budget else None,
    )
    return BuildConfig(**base).merged(**explicit).validate()


def _progress(args):
    from ..pipeline import no_progress, stderr_progress

    return no_progress if args.quiet else stderr_progress()


def cmd_compile(args) -> int:
    from ..pipeline import compile_model
    from .report import build_report, format_table

    cfg = config_from_args(args)
    progress = _progress(args)
    plan = compile_model(Path(args.model), cfg, Path(args.output), progress, warn_over_budget=args.warn_only)
    if not args.quiet:
        print(format_table(build_report(plan)))
    if plan.training is not None:
        from ..training import describe

        print(describe(plan))
    print(f"wrote {args.output}/{plan.name}.c, {plan.name}.h, {plan.name}_weights.c "
          f"(arena {plan.arena_size} bytes)")
    return 0


def _load_report(args) -> tuple[dict, object]:
    from ..plan import Plan
    from ..pipeline import plan_model
    from .report import build_report

    path = Path(args.model)
    if path.is_dir():
        plan = Plan.load(path)
    else:
        plan = plan_model(path, config_from_args(args), _progress(args))
    return build_report(plan), plan


def cmd_report(args) -> int:
    from .report import format_table, plot_memory

    report, _plan = _load_report(args)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(format_table(report))
    if args.plot:
        path = plot_memory(report, Path(args.plot))
        print(f"memory profile written to {path}", file=sys.stderr if args.json else sys.stdout)
    return 0


def cmd_run(args) -> int:
    from . import hostrun
    from .. import reference
    from ..plan import Plan
    from ..quantize import to_source_layout

    outdir = Path(args.dir)
    plan = Plan.load(outdir)
    x = hostrun.load_input(Path(args.input), plan)
    if getattr(args, "train", None):
        from .train_run import run as train_run

        return train_run(plan, outdir, x, Path(args.train), args.epochs, args.target, args.opt, args.save_state)
    if args.flash_wait_states != 0 and not (args.profile and args.target == "qemu-cortex-m4"):
        raise McuforgeError("--flash-wait-states: only priced with --profile --target qemu-cortex-m4")
    if args.flash_wait_states < 0:
        raise McuforgeError(f"--flash-wait-states: {args.flash_wait_states} is negative; give 0 or more")
    if args.target != "host" and args.profile:
        from . import cycles

        model = cycles.CoreModel(flash_wait_states=args.flash_wait_states)
        result = cycles.run(plan, outdir, x, args.target, opt=args.opt, profile=True, model=model)
        outs = result.outputs
        if len(x) > 1:
            print(f"(profiled: the first of the {len(x)} inputs; outputs of that one)")
            x = x[:1]
        macs = sum(s.macs for s in plan.steps)
        line = f"{args.target}: instructions per invoke (traced): {result.total.instructions}"
        if result.priced:
            line += (f"; estimated {result.model.name} cycles: {round(result.total.cycles)} "
                     f"({macs / result.total.cycles:.3f} MAC/cycle, P = {result.model.branch_refill}, "
                     f"{result.model.flash_wait_states} flash wait states)")
        print(line)
        print(cycles.profile_table(plan, result)[1])
    elif args.target != "host":
        from . import qemu

        outs, stats = qemu.build_and_run(plan, outdir, x, args.target, opt=args.opt)
        if stats.ticks:
            print(f"{args.target}: instructions per invoke (QEMU -icount): "
                  + ", ".join(str(n) for n in stats.instructions))
    else:
        if args.profile:
            raise McuforgeError("--profile: needs a Cortex-M --target (qemu-cortex-m3, qemu-cortex-m4, "
                                "qemu-cortex-m7); the host has no instruction counter")
        with tempfile.TemporaryDirectory(prefix="mcuforge-host-") as tmp:
            exe = hostrun.build(plan, outdir, Path(tmp), opt=args.opt)
            outs = hostrun.run(plan, exe, x)
    y = outs[0]
    if args.output:
        np.save(args.output, to_source_layout(plan.graph, y))
    if len(y) == 1 and y[0].size <= 64:
        print("output:", " ".join(str(int(v)) for v in y[0].reshape(-1)))
    else:
        print(f"output: {y.shape[0]} x {y[0].size} {y.dtype} values" + (f" -> {args.output}" if args.output else ""))
    if args.check:
        bad = 0
        for i in range(len(x)):
            ref = reference.run(plan, x[i])
            for o, got in zip(plan.outputs, outs):
                want = ref.outputs[o]
                if not np.array_equal(want.reshape(-1), got[i].reshape(-1)):
                    diff = int(np.max(np.abs(want.astype(np.int32).reshape(-1) - got[i].astype(np.int32).reshape(-1))))
                    n = int(np.sum(want.reshape(-1) != got[i].reshape(-1)))
                    print(f"MISMATCH input {i} output '{o}': {n} value(s) differ, max |diff| {diff}", file=sys.stderr)
                    bad += 1
        if bad:
            print(f"check FAILED: C output differs from the reference on {bad} output(s)", file=sys.stderr)
            return 4
        print(f"check passed: C output equals the reference on {len(x)} input(s), bit for bit")
    return 0


def cmd_check_elf(args) -> int:
    from .elfcheck import main_check

    return main_check(args)


def cmd_compare(args) -> int:
    from .compare import main_compare

    return main_compare(args)


def cmd_nas(args) -> int:
    from ..nas.run import main_nas

    return main_nas(args)


def cmd_datasets(args) -> int:
    from ..datasets import keywords

    return keywords.main(args)


COMMANDS = {"compile": cmd_compile, "nas": cmd_nas, "datasets": cmd_datasets, "report": cmd_report, "run": cmd_run, "check-elf": cmd_check_elf,
            "compare": cmd_compare}


_NUMBER_LIST = re.compile(r"^-?\d*\.?\d+(,-?\d*\.?\d+)*$")


def join_negative_lists(argv: list[str]) -> list[str]:
    """`--train-weight-layers -7,-4,-1`: argparse would read `-7,-4,-1` as an option; a
    value that is a list of numbers is joined to its flag (`--flag=-7,-4,-1`)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--") and "=" not in a and i + 1 < len(argv) and argv[i + 1].startswith("-") \
                and _NUMBER_LIST.match(argv[i + 1]):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(join_negative_lists(list(sys.argv[1:] if argv is None else argv)))
    try:
        return COMMANDS[args.command](args)
    except McuforgeError as err:
        if args.debug:
            traceback.print_exc()
        print(f"mcuforge: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("mcuforge: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug
        if args.debug:
            traceback.print_exc()
        print(f"mcuforge: internal error (this is a bug; rerun with --debug and report it): "
              f"{err.__class__.__name__}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
