"""``attest run -- COMMAND``: run a Python program with the verify-before-load guard installed.

Fail closed, in this order: the policy is loaded and validated before anything starts (exit 2 when it
is bad); the command is planned (``attest._guard_boot.launch``: exit 3 when it cannot be guarded, e.g.
not Python, or a multi-process launcher); the program's interpreter starts ``boot.py``, which installs
the guard before the program's first line or exits 3 without running it. ``attest run`` stays as a
small supervisor: it forwards SIGTERM/SIGHUP, returns the program's exit status, and removes the
verified snapshots even when the program is killed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from attest._guard_boot.store import STORE_ENV
from attest.errors import UsageError
from attest.guard import DEBUG_ENV, POLICY_ENV, REGISTRY_ENV, snapshot_root
from attest.policy import Policy

BOOT_DIR = Path(__file__).resolve().parents[1] / "attest" / "_guard_boot"
SPEC_ENV = "ATTEST_GUARD_SPEC"


def _pythonpath(*parts: str | None) -> str:
    return os.pathsep.join(p for p in parts if p)


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option(
    "--policy",
    "policy",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar=POLICY_ENV,
    help=f"Policy YAML (default: ${POLICY_ENV}).",
)
@click.option(
    "--registry", envvar=REGISTRY_ENV, help=f"Registry to fetch attestations from (default: ${REGISTRY_ENV})."
)
@click.option(
    "--no-store",
    is_flag=True,
    help="Do not use the verified store: copy and hash every file again (sets ATTEST_GUARD_STORE=off).",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(policy: Path | None, registry: str | None, no_store: bool, command: tuple[str, ...]) -> None:
    """Run COMMAND (a Python program) so that transformers, safetensors, torch and the other loaders
    refuse any model that does not verify under the policy. The program's exit code is returned;
    2 means a bad policy or command, 3 that the program cannot be guarded (it is not started)."""
    from attest._guard_boot import launch as launcher

    if policy is None:
        raise UsageError(f"a policy is required: --policy FILE or ${POLICY_ENV}")
    if no_store:  # before snapshot_root(): snapshots then live outside the store, and children inherit it
        os.environ[STORE_ENV] = "off"
    policy = policy.resolve()
    Policy.load(policy)  # a bad policy stops here, exit 2, before anything runs
    plan = launcher.plan(list(command))
    if plan.kind == "none":  # `python --version`: no program code runs, nothing to guard
        raise SystemExit(subprocess.call([plan.interpreter, *plan.options]))

    run_dir = Path(tempfile.mkdtemp(prefix="attest-run-", dir=snapshot_root()))
    try:
        spec_path = run_dir / "spec.json"
        original_pythonpath = os.environ.get("PYTHONPATH")
        verifier_env = {k: v for k, v in os.environ.items() if k not in (SPEC_ENV, "PYTHONPATH")}
        verifier_env[POLICY_ENV] = str(policy)
        if original_pythonpath:
            verifier_env["PYTHONPATH"] = original_pythonpath
        if registry:
            verifier_env[REGISTRY_ENV] = registry
        spec = {
            "version": 1,
            "mode": "attest-run",
            "hooks": str(BOOT_DIR / "hooks.py"),
            "kind": plan.kind,
            "target": plan.target,
            "attest_python": sys.executable,
            "run_dir": str(run_dir),
            "verifier_env": verifier_env,
            "debug": os.environ.get(DEBUG_ENV, "") not in ("", "0"),
        }
        fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(spec, f)
        env = dict(os.environ)
        env[SPEC_ENV] = str(spec_path)
        env[POLICY_ENV] = str(policy)
        if registry:
            env[REGISTRY_ENV] = registry
        env["PYTHONPATH"] = _pythonpath(str(BOOT_DIR / "site"), original_pythonpath)
        argv = [plan.interpreter, *plan.options, str(BOOT_DIR / "boot.py"), str(spec_path), *plan.args]
        code = _supervise(argv, env)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    raise SystemExit(code)


def _supervise(argv: list[str], env: dict[str, str]) -> int:
    """Run the program; Ctrl-C reaches it from the terminal, SIGTERM/SIGHUP are forwarded to it."""
    try:
        proc = subprocess.Popen(argv, env=env)
    except OSError as exc:
        raise UsageError(f"{argv[0]}: cannot start: {exc.strerror}") from None
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        while True:
            try:
                code = proc.wait()
                break
            except BaseException as exc:  # SIGTERM/SIGHUP arrive as exceptions (cli.main)
                signum = getattr(exc, "signum", signal.SIGTERM)
                proc.send_signal(signum)
                proc.wait()
                raise
    finally:
        signal.signal(signal.SIGINT, previous)
    return code if code >= 0 else 128 - code
