"""The stack part of ``check-elf --model``: the worst-case stack of the model's entry points (from
the generated header, or re-derived from the build's own objects and their ``.su`` files), added
to the model's RAM, and checked against the stack of the thread that runs the model."""
from __future__ import annotations

import re
from pathlib import Path

from .. import stack
from ..errors import McuforgeError

# Where the thread's stack comes from, by the symbol the user raises.
THREAD_STACK_SYMBOLS = ("CONFIG_MAIN_STACK_SIZE", "CONFIG_MCUFORGE_THREAD_STACK_SIZE")


def header_stack(header: Path, model: str) -> dict[str, int]:
    """<NAME>_STACK_SIZE / <NAME>_TRAIN_STEP_STACK_SIZE of a generated header ({} when absent)."""
    text = Path(header).read_text()
    out = {}
    for key in ("STACK_SIZE", "TRAIN_STEP_STACK_SIZE"):
        m = re.search(rf"^#define {model.upper()}_{key} (\d+)$", text, re.M)
        if m:
            out[key] = int(m.group(1))
    return out


def build_objects(directory: Path, model: str) -> list[Path]:
    """The model's and the runtime's objects under a build directory that have a .su beside them."""
    objects = []
    for path in sorted(Path(directory).rglob("*")):
        if path.suffix not in (".o", ".obj") or not stack.su_path(path).is_file():
            continue
        stem = path.name.split(".")[0]
        if stem == model or stem.startswith("mcf_"):
            objects.append(path)
    return objects


def derive(directory: Path, model: str, cc: str, flags: tuple[str, ...]) -> dict[str, int]:
    objects = build_objects(directory, model)
    if not objects:
        raise McuforgeError(f"{directory}: no {model}.c / mcf_*.c objects with .su files (compile with -fstack-usage)")
    return stack.summary(stack.analyze(objects, model, cc, flags), model)


def apply(summary: dict, args) -> tuple[list[str], list[str]]:
    """Fill summary["model"]["stack_bytes"] and the RAM total; return (problems, warnings)."""
    m = summary["model"]
    name = m["name"]
    problems, warnings = [], []
    generated = {}
    if getattr(args, "generated", None):
        header = Path(args.generated) / f"{name}.h"
        if not header.is_file():
            raise McuforgeError(f"--generated: {header} not found")
        generated = header_stack(header, name)
    derived = {}
    if getattr(args, "stack_objects", None):
        target = getattr(args, "stack_target", None) or stack.DEFAULT_TARGET
        cc = getattr(args, "stack_cc", None) or stack.compiler_for(target)
        if cc is None:
            warnings.append(f"stack not re-derived: {stack.TARGETS[target][0]} not found")
        else:
            derived = derive(Path(args.stack_objects), name, cc, stack.TARGETS[target][1])
            for key, value in derived.items():
                if generated.get(key) is not None and generated[key] != value:
                    warnings.append(f"{name.upper()}_{key} is {generated[key]} in the generated header but this "
                                    f"build's objects need {value} bytes (other compiler or flags); using {value}")
    numbers = derived or generated
    stack_bytes = max(numbers.values()) if numbers else None
    m["stack_bytes"] = stack_bytes
    m["stack_source"] = "build objects (.su)" if derived else ("generated header" if generated else None)
    if stack_bytes is not None:
        m["ram_bytes"] += stack_bytes
    thread = getattr(args, "thread_stack", None)
    if thread is not None:
        m["thread_stack_bytes"] = thread
        symbol = getattr(args, "thread_stack_symbol", None) or "--thread-stack"
        if stack_bytes is None:
            warnings.append(f"thread stack not checked: no stack size for model {name} (pass --generated DIR "
                            "or --stack-objects BUILD_DIR)")
        elif stack_bytes > thread:
            problems.append(f"model {name} needs {stack_bytes} bytes of stack on its deepest path, the thread "
                            f"that runs it has {thread} bytes; raise {symbol} to at least {stack_bytes} plus "
                            "the application's own frames")
    return problems, warnings
