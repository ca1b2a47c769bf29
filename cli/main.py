"""Entry point of the ``attest`` command.

Sub-commands are imported lazily so that ``attest digest`` does not pay for importing torch or
FastAPI. Every failure becomes a one-line message and its documented exit code here, in one place
(see ``EPILOG``): ``AttestError`` carries its own code, ``OSError`` is a usage error or "could not
decide", and anything else is a bug reported as ``internal error`` with exit 3, never a traceback.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import signal
import sys
import traceback
from typing import Any, NoReturn

import click

from attest import hashing
from attest._internal.capped import os_error
from attest.errors import EXIT_UNDECIDED, EXIT_USAGE, AttestError

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


EPILOG = """\b
Exit codes:
  0  allowed / done
  1  denied, or not verified
  2  usage error: bad option, missing, unreadable or malformed input
  3  could not decide: registry or mirror unreachable, I/O error, timeout, internal error
  129, 130, 143  interrupted by SIGHUP, SIGINT, SIGTERM (partial output removed)

\b
Errors print one line on stderr ("error: ..."). With --json they are also printed on stdout as
  {"error": {"code": "USAGE_ERROR", "message": "..."}, "exitCode": 2}
(a --json after "--", or after "attest run", belongs to the program run).
ATTEST_DEBUG=1 adds the Python traceback to an internal error.
"""


class Interrupted(BaseException):
    """SIGTERM or SIGHUP arrived: unwinds like KeyboardInterrupt so every ``finally`` and
    ``except BaseException`` cleanup (pull's staging folder, atomic writes) runs before the exit."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


def _install_signal_handlers() -> None:
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _raise_interrupted)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.version_option(package_name="model-attest")
def cli() -> None:
    """Sign, publish and verify attestations for open-weight AI models."""


def error_code(exc: BaseException) -> str:
    """A stable machine-readable code for a failure: the exception class name in UPPER_SNAKE."""
    if isinstance(exc, click.UsageError):
        return "USAGE_ERROR"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).upper()


def fail(message: str, exit_code: int, code: str, as_json: bool) -> NoReturn:
    """Print one line on stderr (and the JSON error object on stdout under --json), then exit."""
    line = " ".join(message.split()) or "unknown error"
    click.echo(f"error: {line}", err=True)
    if as_json:
        doc = {"error": {"code": code, "message": line}, "exitCode": exit_code}
        click.echo(json.dumps(doc, ensure_ascii=False))
    sys.exit(exit_code)


def exit_code_of(exc: AttestError) -> int:
    """The exit code of an ``AttestError``; a registry that cannot be reached or answers 5xx/429 means
    "could not decide" (3), whatever class the client raised."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and (status == 0 or status == 429 or status >= 500):
        return EXIT_UNDECIDED
    return exc.exit_code


def wants_json(args: list[str]) -> bool:
    """Whether ``--json`` was given to attest itself, so that errors are printed as JSON.

    Only arguments before a ``--`` count: what follows belongs to another program, whose own flags
    must not turn attest's error lines into JSON. ``attest run`` has no ``--json`` and takes its
    program with or without ``--`` (``attest run --policy p.yaml prog.py --json``): every ``--json``
    after ``run`` is the program's.
    """
    own = args[: args.index("--")] if "--" in args else args
    return "--json" in own and own[:1] != ["run"]


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI; every failure becomes one line on stderr and a documented exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    as_json = wants_json(args)
    # A CLI process is short-lived and isolated: hash by mapping files (see attest.hashing).
    hashing.use_mmap()
    _install_signal_handlers()
    try:
        return cli.main(args=args, prog_name="attest", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        fail("aborted", 130, "INTERRUPTED", as_json)
    except Interrupted as exc:
        fail(f"interrupted by {signal.Signals(exc.signum).name}", 128 + exc.signum, "INTERRUPTED", as_json)
    except click.ClickException as exc:
        code = EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
        hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        fail(exc.format_message() + hint, code, error_code(exc), as_json)
    except AttestError as exc:
        fail(exc.message, exit_code_of(exc), error_code(exc), as_json)
    except OSError as exc:
        where = exc.filename if exc.filename is not None else "I/O"
        err = os_error(where, exc, "error")
        fail(
            err.message,
            err.exit_code,
            "IO_ERROR" if err.exit_code == EXIT_UNDECIDED else "USAGE_ERROR",
            as_json,
        )
    except Exception as exc:  # last resort: a bug must still be one line and a documented exit code
        if os.environ.get("ATTEST_DEBUG") == "1":
            traceback.print_exc()
        detail = str(exc).splitlines()[0] if str(exc) else ""
        fail(
            f"internal error: {type(exc).__name__}: {detail}".rstrip(": "),
            EXIT_UNDECIDED,
            "INTERNAL_ERROR",
            as_json,
        )


if __name__ == "__main__":
    main()
