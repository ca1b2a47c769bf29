"""``attest publish``: send bundles to a registry and check the log proof of each answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from attest._internal.capped import MAX_BUNDLE_BYTES, read_capped
from attest.errors import UsageError
from cli._output import console, print_json


@click.command()
@click.argument(
    "bundles", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False)
)
@click.option(
    "--registry", "registry_url", required=True, envvar="ATTEST_REGISTRY_URL", help="Registry base URL."
)
@click.option(
    "--token", envvar="ATTEST_REGISTRY_TOKEN", help="Publisher token (default: $ATTEST_REGISTRY_TOKEN)."
)
@click.option("--log-key", help="Pin the log's verifier key (C2SP vkey) instead of trusting it on first use.")
@click.option(
    "--checkpoint-dir", type=click.Path(path_type=Path), help="Where verified checkpoints are kept."
)
@click.option("--json", "as_json", is_flag=True, help="Print the log entries as JSON.")
def publish(
    bundles: tuple[Path, ...],
    registry_url: str,
    token: str | None,
    log_key: str | None,
    checkpoint_dir: Path | None,
    as_json: bool,
) -> None:
    """Publish BUNDLES to the registry; each entry's inclusion proof is verified locally."""
    from attest.registry_client import CheckpointStore, RegistryClient

    if not token:
        raise UsageError("a publisher token is needed: --token or $ATTEST_REGISTRY_TOKEN")
    results: list[dict[str, Any]] = []
    with RegistryClient(registry_url, token, CheckpointStore(checkpoint_dir), log_key) as client:
        for path in bundles:
            data = read_capped(path, MAX_BUNDLE_BYTES, "bundle")
            entry = client.publish(data)
            results.append(
                {
                    "bundle": str(path),
                    "logIndex": entry["logIndex"],
                    "id": entry["id"],
                    "treeSize": entry["inclusionProof"]["treeSize"],
                    "entry": entry,
                }
            )
    if as_json:
        print_json(
            [
                {k: v for k, v in r.items() if k != "entry"}
                | {"integratedTime": r["entry"]["integratedTime"]}
                for r in results
            ]
        )
        return
    out = console()
    for r in results:
        out.print(
            f"[green]logged[/] {r['bundle']} at index {r['logIndex']} (tree size {r['treeSize']}, proof verified)"
        )
