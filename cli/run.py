"""``attest run -- COMMAND``: run a Python program with the verify-before-load guard installed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import click

import attest
from attest.errors import UsageError
from attest.guard import POLICY_ENV, REGISTRY_ENV

BOOT_DIR = Path(attest.__file__).resolve().parent / "_guard_boot"


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option(
    "--policy",
    "policy",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    envvar=POLICY_ENV,
    help=f"Policy YAML (default: ${POLICY_ENV}).",
)
@click.option(
    "--registry", envvar=REGISTRY_ENV, help=f"Registry to fetch attestations from (default: ${REGISTRY_ENV})."
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(policy: Path | None, registry: str | None, command: tuple[str, ...]) -> None:
    """Run COMMAND (a Python program) so that transformers, safetensors and torch refuse to load any
    model that does not verify under the policy. The program's exit code is returned."""
    if policy is None:
        raise UsageError(f"a policy is required: --policy FILE or ${POLICY_ENV}")
    program = shutil.which(command[0])
    if program is None:
        raise UsageError(f"{command[0]}: command not found")
    env = dict(os.environ)
    env["ATTEST_GUARD"] = "1"
    env[POLICY_ENV] = str(policy.resolve())
    if registry:
        env[REGISTRY_ENV] = registry
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BOOT_DIR), env.get("PYTHONPATH", "")) if p)
    os.execve(program, list(command), env)
