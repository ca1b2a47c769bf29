"""``attest digest``: the model digest, or the whole manifest with ``--json``."""

from __future__ import annotations

from pathlib import Path

import click

from attest._internal.walk import DEFAULT_IGNORES
from attest.manifest import compute_manifest
from cli._output import print_json


@click.command()
@click.argument("path", type=click.Path(path_type=Path, exists=False))
@click.option(
    "--ignore", "ignores", multiple=True, metavar="PATTERN", help="Extra ignore pattern (gitignore-style)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def digest(path: Path, ignores: tuple[str, ...], as_json: bool) -> None:
    """Print the model digest of PATH (a folder or a single file) as sha256:<hex>."""
    manifest = compute_manifest(path, ignores=DEFAULT_IGNORES + ignores, progress=True)
    if as_json:
        print_json(manifest.to_json())
    else:
        click.echo(manifest.digest)
