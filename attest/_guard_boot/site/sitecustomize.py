"""On ``PYTHONPATH`` of programs run by ``attest run``: a Python process they start (a subprocess, a
worker) installs the same guard before its own code, or exits with status 3 (fail closed).

Interpreters started with ``-I``, ``-E`` or ``-S`` skip this file: ``attest run`` itself starts the
program through ``boot.py`` and multiprocessing children get a prelude, so only such grandchildren that
the program starts by hand with those flags are outside the guard (see docs/end-to-end.md).
"""

import os

if os.environ.get("ATTEST_GUARD_SPEC"):
    import sys

    _hooks = sys.modules.get("_attest_guard_hooks")
    if _hooks is None:
        try:
            import importlib.util

            _file = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hooks.py")
            _spec = importlib.util.spec_from_file_location("_attest_guard_hooks", _file)
            if _spec is None or _spec.loader is None:
                raise ImportError(f"cannot load the guard's hooks from {_file}")
            _hooks = importlib.util.module_from_spec(_spec)
            sys.modules["_attest_guard_hooks"] = _hooks
            _spec.loader.exec_module(_hooks)
        except BaseException as exc:
            sys.stderr.write(f"attest: cannot protect this process, not starting it: {exc}\n")
            os._exit(3)
    _hooks.install_from_spec_file(os.environ["ATTEST_GUARD_SPEC"])
