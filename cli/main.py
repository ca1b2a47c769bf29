"""Entry point of the ``attest`` command.

Sub-commands are imported lazily so that ``attest digest`` does not pay for importing torch or
FastAPI. Every ``AttestError`` becomes a one-line message and its exit code here, in one place.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from attest import hashing
from attest.errors import AttestError

# name -> ("module:attribute", one-line help). One line per command; a module is imported only when
# its command runs, so `attest --help` stays instant and never imports torch.
COMMANDS: dict[str, tuple[str, str]] = {
    "comply": ("cli.comply:comply", "Assess a deployment profile against compliance rule packs."),
    "constitution": (
        "cli.constitution:constitution",
        "Hash a constitution canonically, prove sections, bind.",
    ),
    "digest": ("cli.digest:digest", "Print the model digest (or the manifest) of a model folder."),
    "keygen": ("cli.keys:keygen", "Generate a signing key pair."),
    "matrix": ("cli.matrix:matrix", "Count compliance assessments: models x jurisdictions x releases."),
    "publish": ("cli.publish:publish", "Publish bundles to a registry, checking each log proof."),
    "pull": (
        "cli.pull:pull_cmd",
        "Download a model only after the registry's attestations satisfy a policy.",
    ),
    "registry": ("cli.registry:registry", "Administer a registry: tokens and namespace signer bindings."),
    "scan": ("cli.scan:scan", "Scan a model for unsafe files and planted backdoors (backdoor-scan/v1)."),
    "serve": ("cli.serve:serve", "Run the registry (verified publishing, transparency log, admission)."),
    "sign": ("cli.sign:sign", "Sign an attestation about a model into a Sigstore bundle."),
    "release": (
        "cli.release:release_cmd",
        "Scan, assess, bind, sign and publish a model release (resumable).",
    ),
    "run": ("cli.run:run", "Run a program with verify-before-load hooks installed."),
    "verify": ("cli.verify:verify", "Verify a model and its attestations against a policy."),
}


class LazyGroup(click.Group):
    """A click group that imports a sub-command's module only when it is invoked or listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr = entry[0].split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="model-attest")
def cli() -> None:
    """Sign, publish and verify attestations for open-weight AI models."""


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI, turning ``AttestError`` into a one-line message and its exit code."""
    # A CLI process is short-lived and isolated: hash by mapping files (see attest.hashing).
    hashing.use_mmap()
    try:
        return cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except AttestError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
