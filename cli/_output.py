"""Printing helpers shared by the commands: JSON to stdout, human text through rich."""

from __future__ import annotations

import json
import sys
from typing import Any

import click


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False))


def console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def err_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def is_tty() -> bool:
    return sys.stdout.isatty()
