"""``attest keygen``: a signing key pair for key-mode signing."""

from __future__ import annotations

import os
from pathlib import Path

import click

from attest.keys import ALGORITHMS, PASSPHRASE_ENV, write_key_pair
from cli._output import print_json


@click.command()
@click.option(
    "--out",
    "prefix",
    required=True,
    type=click.Path(path_type=Path),
    help="Writes PREFIX.key and PREFIX.pub.",
)
@click.option("--algorithm", type=click.Choice(ALGORITHMS), default="ecdsa-p256", show_default=True)
@click.option(
    "--encrypt",
    is_flag=True,
    help=f"Encrypt the private key (passphrase from ${PASSPHRASE_ENV} or a prompt).",
)
@click.option("--json", "as_json", is_flag=True)
def keygen(prefix: Path, algorithm: str, encrypt: bool, as_json: bool) -> None:
    """Generate a key pair; the private key is written with mode 0600 and never overwritten."""
    passphrase = None
    if encrypt:
        env = os.environ.get(PASSPHRASE_ENV)
        passphrase = (env or click.prompt("Passphrase", hide_input=True, confirmation_prompt=True)).encode()
    fp = write_key_pair(prefix, algorithm, passphrase)
    if as_json:
        print_json(
            {
                "privateKey": f"{prefix}.key",
                "publicKey": f"{prefix}.pub",
                "fingerprint": fp,
                "algorithm": algorithm,
            }
        )
    else:
        click.echo(f"wrote {prefix}.key (private, 0600) and {prefix}.pub\nfingerprint {fp}")
