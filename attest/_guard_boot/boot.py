"""The bootstrap ``attest run`` starts in the program's interpreter: guard first, then the program.

Run as ``PYTHON [the program's interpreter options] boot.py SPEC.json [program arguments]``. It loads
the hooks by file path (so the interpreter needs neither attest nor its dependencies, and ``-I``, ``-E``
or ``-S`` change nothing), installs them, and only then runs the program's script, ``-m`` module or
``-c`` code with the ``sys.argv`` and ``sys.path[0]`` the interpreter would have given it. If the guard
cannot be installed the program is not started: one line on stderr, exit status 3.

Kept small: everything that can fail before the program starts is inside ``_prepare``.
"""

import os
import sys

EXIT_CANNOT_PROTECT = 3


def _refuse(why):
    sys.stderr.write(f"attest: cannot protect this program, not starting it: {why}\n")
    sys.stderr.flush()
    os._exit(EXIT_CANNOT_PROTECT)


def _prepare():
    import importlib.util
    import json

    spec_path = sys.argv[1]
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    hooks = sys.modules.get("_attest_guard_hooks")
    if hooks is None:
        loader_spec = importlib.util.spec_from_file_location("_attest_guard_hooks", spec["hooks"])
        if loader_spec is None or loader_spec.loader is None:
            raise ImportError(f"cannot load the guard's hooks from {spec['hooks']}")
        hooks = importlib.util.module_from_spec(loader_spec)
        sys.modules["_attest_guard_hooks"] = hooks
        loader_spec.loader.exec_module(hooks)
    hooks.install_from_spec(spec, spec_path)
    return spec


def _run(spec, args):
    import runpy
    import types

    kind, target = spec["kind"], spec["target"]
    safe_path = bool(getattr(sys.flags, "safe_path", False) or sys.flags.isolated)
    if kind == "script":
        sys.argv = [target, *args]
        if not safe_path:
            sys.path[0] = os.path.dirname(os.path.abspath(target))
        runpy.run_path(target, run_name="__main__")
    elif kind == "module":
        sys.argv = [target, *args]
        if not safe_path:
            sys.path[0] = os.getcwd()
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.argv = ["-c", *args]
        if not safe_path:
            sys.path[0] = ""
        main = types.ModuleType("__main__")
        sys.modules["__main__"] = main
        exec(compile(target, "<string>", "exec"), main.__dict__)


if __name__ == "__main__":
    try:
        _spec = _prepare()
    except BaseException as exc:
        _refuse(f"{type(exc).__name__}: {exc}")
    _run(_spec, sys.argv[2:])
