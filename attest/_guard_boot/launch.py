"""Turn ``attest run -- COMMAND`` into a guarded launch, or say why it cannot be guarded.

The guard must be in place before the program's first line, whatever the interpreter's flags, so
``attest run`` never relies on ``sitecustomize`` for the program itself: it starts the program's own
interpreter on ``boot.py``, which installs the guard and then runs the script, module or code. For that
it has to know which interpreter runs the program and what the program is:

* ``python [options] script.py | -m module | -c code [args]``: the interpreter and its options are kept
  (``-I``, ``-E``, ``-O``, ``-u``, ``-W``, ``-X`` ...), the target is handed to ``boot.py``;
* a Python script or console-script entry point (``uvicorn``, ``my-tool``): its ``#!`` line names the
  interpreter, and the script itself is the target;
* multi-process launchers (``torchrun``, ``accelerate launch``, ``deepspeed``) start workers in ways the
  guard does not follow, and anything that is not Python (a shell script, a binary): refused.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from attest.errors import UsageError
from attest.guard import CannotProtect, hooks

_PYTHON = hooks.PYTHON_NAME
# Launchers whose workers are started by their own process management: guard each worker instead.
LAUNCHER_COMMANDS = {"torchrun", "accelerate", "deepspeed", "torch-distributed-launch"}
LAUNCHER_MODULES = (
    "torch.distributed.run",
    "torch.distributed.launch",
    "torch.distributed.elastic",
    "accelerate.commands",
    "deepspeed.launcher",
)


@dataclass
class Launch:
    """How to start the program: ``interpreter *options boot.py SPEC *args`` running ``target``."""

    interpreter: str
    options: list[str] = field(default_factory=list)
    kind: str = "script"  # script | module | code | none (e.g. --version: no program code runs)
    target: str = ""
    args: list[str] = field(default_factory=list)


def _refuse_launcher(what: str) -> None:
    raise CannotProtect(
        f"{what} starts worker processes that the guard cannot follow; "
        "run each worker under `attest run` instead (e.g. torchrun's --no-python with an `attest run` script)"
    )


def _parse_python(interpreter: str, argv: list[str]) -> Launch:
    try:
        options, kind, target, args = hooks.split_python_argv(argv)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return Launch(interpreter, options, kind, target, args)


def _shebang(script: Path) -> list[str] | None:
    """The interpreter command line of a Python script (``#!``, or pip's ``/bin/sh`` trampoline)."""
    try:
        with open(script, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    lines = head.decode("utf-8", "replace").splitlines()
    words = shlex.split(lines[0][2:].strip())
    if words and Path(words[0]).name == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
        found = shutil.which(words[0]) if words else None
        words = [found, *words[1:]] if found else []
    if words and Path(words[0]).name == "sh" and len(lines) > 1:
        # pip writes '#!/bin/sh' + "'''exec' /long/path/python "$0" "$@"" for very long paths
        m = re.match(r"^'''exec' (\S+) \"\$0\"", lines[1])
        words = [m.group(1)] if m else []
    if words and _PYTHON.match(Path(words[0]).name):
        return words
    return None


def plan(command: list[str] | tuple[str, ...]) -> Launch:
    """Decide how to start ``command`` guarded; UsageError (exit 2) or CannotProtect (exit 3) if not."""
    if not command:
        raise UsageError("attest run needs a command")
    name = Path(command[0]).name
    if name in LAUNCHER_COMMANDS:
        _refuse_launcher(name)
    program = shutil.which(command[0])
    if program is None:
        raise UsageError(f"{command[0]}: command not found")
    if _PYTHON.match(name) or _PYTHON.match(Path(program).resolve().name):
        launch = _parse_python(program, list(command[1:]))
    else:
        interpreter = _shebang(Path(program))
        if interpreter is None:
            raise CannotProtect(
                f"{command[0]} is not a Python program (attest run guards a Python interpreter, a Python "
                "script or a console-script entry point)"
            )
        exe = shutil.which(interpreter[0]) or interpreter[0]
        launch = _parse_python(exe, [*interpreter[1:], program, *command[1:]])
        _check_console_script(Path(program))
    if launch.kind == "module" and launch.target.startswith(LAUNCHER_MODULES):
        _refuse_launcher(f"python -m {launch.target}")
    if launch.kind == "script" and Path(launch.target).name in LAUNCHER_COMMANDS:
        _refuse_launcher(Path(launch.target).name)
    return launch


def _check_console_script(script: Path) -> None:
    """A console script whose entry point is a launcher (a renamed ``torchrun``) is refused too."""
    try:
        text = script.read_text(encoding="utf-8", errors="replace")[:8192]
    except OSError:
        return
    for m in re.finditer(r"^\s*from\s+([\w.]+)\s+import", text, re.MULTILINE):
        if m.group(1).startswith(LAUNCHER_MODULES):
            _refuse_launcher(f"{script.name} (entry point {m.group(1)})")
