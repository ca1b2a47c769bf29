"""Input files on the command line: regular files of bounded size, checked before any command runs.

Why: a path option that names ``/dev/zero``, a FIFO or a 50 GB file would otherwise hang the command
or exhaust memory inside whichever library reads it; checked here, it is a one-line usage error
(exit 2) before any work, whatever module reads the file later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from attest._internal.capped import MAX_DOCUMENT_BYTES, check_regular_file
from attest.errors import AttestError


class InputFile(click.ParamType):
    """A path to an existing regular file of at most ``limit`` bytes, converted to ``Path``."""

    name = "file"

    def __init__(self, what: str = "file", limit: int = MAX_DOCUMENT_BYTES) -> None:
        self.what = what
        self.limit = limit

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        try:
            return check_regular_file(Path(value), self.limit, self.what)
        except AttestError as exc:
            self.fail(exc.message, param, ctx)
