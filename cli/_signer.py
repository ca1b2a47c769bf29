"""Signer selection shared by every command that signs: a local key, or Sigstore keyless."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from attest.errors import UsageError
from attest.keys import PASSPHRASE_ENV, is_encrypted_key, load_private_key
from attest.signing import KeySigner, Signer


def signer_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options selecting the signer; keyless Sigstore is used when no --key is given."""
    f = click.option(
        "--key", "key_path", type=click.Path(path_type=Path), help="Private key (PEM) for key-mode signing."
    )(f)
    f = click.option(
        "--identity-token",
        envvar="SIGSTORE_ID_TOKEN",
        help="OIDC token for keyless signing (default: $SIGSTORE_ID_TOKEN, ambient CI identity, browser).",
    )(f)
    f = click.option(
        "--trust-config",
        type=click.Path(path_type=Path, exists=True, dir_okay=False),
        help="Sigstore ClientTrustConfig JSON of a private deployment (default: public-good).",
    )(f)
    return f


def make_signer(key_path: Path | None, **keyless: Any) -> Signer:
    if key_path is not None:
        passphrase = None
        if is_encrypted_key(key_path) and not os.environ.get(PASSPHRASE_ENV):
            if not os.isatty(0):
                raise UsageError(f"{key_path}: key is encrypted; set {PASSPHRASE_ENV}")
            passphrase = click.prompt("Key passphrase", hide_input=True).encode()
        return KeySigner(load_private_key(key_path, passphrase))
    from attest._sigstore import keyless_signer

    return keyless_signer(**keyless)
