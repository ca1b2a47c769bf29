"""Signer selection shared by every command that signs: a local key, a key in an HSM or KMS (a
securesystemslib signer URI), optionally with an X.509 certificate, or Sigstore keyless."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from attest.errors import UsageError
from attest.keys import PASSPHRASE_ENV, is_encrypted_key, load_private_key, load_public_key
from attest.signing import PIN_ENV, SIGNER_URI_SCHEMES, KeySigner, Signer


def signer_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options selecting the signer; keyless Sigstore is used when neither --key nor --signer-uri is given."""
    schemes = ", ".join(f"{s}:" for s in SIGNER_URI_SCHEMES)
    for decorator in reversed(
        (
            click.option(
                "--key",
                "key_path",
                type=click.Path(path_type=Path),
                help="Private key (PEM) for key-mode signing.",
            ),
            click.option(
                "--signer-uri",
                metavar="URI",
                help=f"Key held in an HSM or KMS, as a securesystemslib signer URI ({schemes}), "
                f"e.g. 'hsm:2?label=mytoken' (PKCS#11 module from $PYKCS11LIB, PIN from ${PIN_ENV}).",
            ),
            click.option(
                "--public-key",
                "public_key_path",
                type=click.Path(path_type=Path),
                help="Public half (PEM key or certificate) of the --signer-uri key (hsm: default: read "
                "from the token).",
            ),
            click.option(
                "--signing-certificate",
                type=click.Path(path_type=Path),
                help="X.509 certificate of the signing key: the bundle carries it and --certificate-chain "
                "instead of a key hint (OpenSSF model-signing 'certificate' mode).",
            ),
            click.option(
                "--certificate-chain",
                "sign_chain",
                multiple=True,
                type=click.Path(path_type=Path),
                help="Intermediate/root CA certificates (PEM, repeatable) to put after --signing-certificate.",
            ),
            click.option(
                "--identity-token",
                envvar="SIGSTORE_ID_TOKEN",
                help="OIDC token for keyless signing (default: $SIGSTORE_ID_TOKEN, ambient CI identity, "
                "browser).",
            ),
            click.option(
                "--trust-config",
                type=click.Path(path_type=Path, exists=True, dir_okay=False),
                help="Sigstore ClientTrustConfig JSON of a private deployment (default: public-good).",
            ),
        )
    ):
        f = decorator(f)
    return f


def _local_key_signer(key_path: Path, pem_hint: bool) -> KeySigner:
    passphrase = None
    if is_encrypted_key(key_path) and not os.environ.get(PASSPHRASE_ENV):
        if not os.isatty(0):
            raise UsageError(f"{key_path}: key is encrypted; set {PASSPHRASE_ENV}")
        passphrase = click.prompt("Key passphrase", hide_input=True).encode()
    return KeySigner(load_private_key(key_path, passphrase), pem_hint=pem_hint)


def make_signer(
    key_path: Path | None,
    signer_uri: str | None = None,
    public_key_path: Path | None = None,
    signing_certificate: Path | None = None,
    sign_chain: tuple[Path, ...] = (),
    *,
    pem_hint: bool = False,
    **keyless: Any,
) -> Signer:
    """The signer the options name; every inconsistent combination is a usage error, before hashing."""
    if key_path is not None and signer_uri is not None:
        raise UsageError("give --key or --signer-uri, not both")
    if public_key_path is not None and signer_uri is None:
        raise UsageError("--public-key goes with --signer-uri (a local --key holds its public half)")
    if (signing_certificate or sign_chain) and key_path is None and signer_uri is None:
        raise UsageError("--signing-certificate needs the certificate's key: --key or --signer-uri")
    if sign_chain and signing_certificate is None:
        raise UsageError("--certificate-chain goes with --signing-certificate")
    signer: KeySigner
    if signer_uri is not None:
        given = public_key_path or signing_certificate
        public = load_public_key(given) if given is not None else None  # hsm: reads it from the token
        pin = None
        if signer_uri.startswith("hsm:") and not os.environ.get(PIN_ENV) and os.isatty(0):
            pin = click.prompt("Token PIN", hide_input=True)
        signer = KeySigner.from_uri(signer_uri, public, pem_hint=pem_hint, pin=pin)
    elif key_path is not None:
        signer = _local_key_signer(key_path, pem_hint)
    else:
        from attest._sigstore import keyless_signer

        return keyless_signer(**keyless)
    if signing_certificate is not None:
        from attest.oms import load_certificates

        leaf = load_certificates([signing_certificate])
        if len(leaf) != 1:
            raise UsageError(f"{signing_certificate}: expected exactly one certificate")
        signer.with_certificate(leaf[0], load_certificates(list(sign_chain)))
    return signer
