"""``attest registry``: administer a registry's tokens and namespace signer bindings.

Runs against the registry's database directly (``--data-dir`` / ``--database-url``, as ``attest serve``),
which is how the first admin token is made; the same operations exist over HTTP for admins
(``/v1/tokens``, ``/v1/namespaces/{ns}/signers``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from cli._output import console, print_json

_db_options = [
    click.option(
        "--data-dir", type=click.Path(path_type=Path), default=Path("registry-data"), show_default=True
    ),
    click.option(
        "--database-url", envvar="ATTEST_REGISTRY_DATABASE_URL", help="PostgreSQL URL, as for serve."
    ),
    click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
]


def db_options(f: Any) -> Any:
    for option in reversed(_db_options):
        f = option(f)
    return f


@contextmanager
def _database(data_dir: Path, database_url: str | None) -> Iterator[Any]:
    from sqlalchemy.exc import DBAPIError

    from registry.db import Database, classify_db_error
    from registry.migrate import upgrade
    from registry.settings import Settings

    db = Database(Settings(data_dir=data_dir, database_url=database_url))
    try:
        upgrade(db.write)
        with db.write_session() as session:
            yield session
    except DBAPIError as exc:  # unreachable or full database: one line and exit 3, not a traceback
        raise classify_db_error(exc) from None
    finally:
        db.dispose()


@click.group()
def registry() -> None:
    """Administer a registry: tokens and namespace signer bindings."""


@registry.group()
def token() -> None:
    """Create, list and revoke API tokens."""


@token.command("create")
@click.option("--role", type=click.Choice(["publisher", "admin"]), default="publisher", show_default=True)
@click.option(
    "--namespace", "namespaces", multiple=True, help="Namespace (org) a publisher may write to; repeatable."
)
@click.option("--description", default="", help="What the token is for.")
@click.option(
    "--expires",
    default=None,
    help="When the token stops working: a duration (90m, 12h, 30d, 8w) or an ISO date/time. Default: never.",
)
@db_options
def token_create(
    role: str,
    namespaces: tuple[str, ...],
    description: str,
    expires: str | None,
    data_dir: Path,
    database_url: str | None,
    as_json: bool,
) -> None:
    """Create a token; the secret is printed once and stored only as a hash.

    Pass it to clients in $ATTEST_REGISTRY_TOKEN, never on the command line (other users can read
    a process's arguments)."""
    from registry.auth import create_token, parse_expiry
    from registry.routers.tokens import token_json

    expires_at = parse_expiry(expires)
    with _database(data_dir, database_url) as session:
        secret, row = create_token(session, role, list(namespaces), description, expires_at)
        doc = token_json(row) | {"token": secret}
    if as_json:
        print_json(doc)
    else:
        scope = ", ".join(doc["namespaces"]) or "all namespaces"
        until = f"; expires {doc['expiresAt']}" if doc["expiresAt"] else ""
        console().print(f"token {doc['id']} ({role}; {scope}{until}):")
        click.echo(secret)


@token.command("list")
@db_options
def token_list(data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """List tokens (never their secrets)."""
    from registry.auth import list_tokens
    from registry.routers.tokens import token_json

    with _database(data_dir, database_url) as session:
        docs = [token_json(t) for t in list_tokens(session)]
    if as_json:
        print_json(docs)
        return
    for d in docs:
        state = f"revoked {d['revokedAt']}" if d["revokedAt"] else "active"
        if not d["revokedAt"] and d["expiresAt"]:
            state = f"expires {d['expiresAt']}"
        click.echo(f"{d['id']}\t{d['role']}\t{','.join(d['namespaces']) or '*'}\t{state}\t{d['description']}")


@token.command("revoke")
@click.argument("token_id", type=int)
@db_options
def token_revoke(token_id: int, data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """Revoke a token by id: it stops working immediately."""
    from registry.auth import revoke_token
    from registry.routers.tokens import token_json

    with _database(data_dir, database_url) as session:
        doc = token_json(revoke_token(session, token_id))
    print_json(doc) if as_json else click.echo(f"token {token_id} revoked")


@registry.group()
def signer() -> None:
    """Bind signers (key fingerprints or Sigstore identities) to namespaces."""


def _signer_args(f: Any) -> Any:
    f = click.option("--issuer", default="", help="OIDC issuer, for a Sigstore identity.")(f)
    f = click.option("--identity", help="Sigstore certificate identity (SAN).")(f)
    f = click.option(
        "--key", "key_file", type=click.Path(path_type=Path, exists=True), help="Public key PEM."
    )(f)
    f = click.option("--fingerprint", help="Key fingerprint sha256:<hex of DER SPKI>.")(f)
    f = click.option("--namespace", required=True)(f)
    return f


def _who(
    fingerprint: str | None, key_file: Path | None, identity: str | None, issuer: str
) -> tuple[str, str]:
    from attest.errors import UsageError
    from attest.keys import fingerprint as key_fingerprint
    from attest.keys import load_public_key

    given = [x for x in (fingerprint, key_file, identity) if x]
    if len(given) != 1:
        raise UsageError("give exactly one of --fingerprint, --key or --identity (with --issuer)")
    if key_file:
        return key_fingerprint(load_public_key(key_file)), ""
    if identity:
        if not issuer:
            raise UsageError("--identity needs --issuer")
        return identity, issuer
    return str(fingerprint), ""


@signer.command("add")
@_signer_args
@db_options
def signer_add(
    namespace: str,
    fingerprint: str | None,
    key_file: Path | None,
    identity: str | None,
    issuer: str,
    data_dir: Path,
    database_url: str | None,
    as_json: bool,
) -> None:
    """Allow a signer to publish under NAMESPACE."""
    from registry.auth import bind_signer
    from registry.routers.namespaces import binding_json

    who, iss = _who(fingerprint, key_file, identity, issuer)
    with _database(data_dir, database_url) as session:
        doc = binding_json(bind_signer(session, namespace, who, iss))
    print_json(doc) if as_json else click.echo(f"{who} may publish under {namespace}")


@signer.command("remove")
@_signer_args
@db_options
def signer_remove(
    namespace: str,
    fingerprint: str | None,
    key_file: Path | None,
    identity: str | None,
    issuer: str,
    data_dir: Path,
    database_url: str | None,
    as_json: bool,
) -> None:
    """Stop a signer from publishing under NAMESPACE (its logged entries stay)."""
    from attest.errors import UsageError
    from registry.auth import unbind_signer

    who, iss = _who(fingerprint, key_file, identity, issuer)
    with _database(data_dir, database_url) as session:
        removed = unbind_signer(session, namespace, who, iss)
    if not removed:
        raise UsageError(f"{who} is not bound to {namespace}")
    print_json({"removed": True}) if as_json else click.echo(f"{who} removed from {namespace}")


@signer.command("list")
@click.option("--namespace", default=None)
@db_options
def signer_list(namespace: str | None, data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """List signer bindings."""
    from registry.auth import list_bindings
    from registry.routers.namespaces import binding_json

    with _database(data_dir, database_url) as session:
        docs = [binding_json(b) for b in list_bindings(session, namespace)]
    if as_json:
        print_json(docs)
        return
    for d in docs:
        click.echo(f"{d['namespace']}\t{d['signer']}\t{d['issuer'] or ''}")


@registry.command("fsck")
@click.option(
    "--quick", is_flag=True, help="Only the O(log n) checks the server can run at every start (tip)."
)
@db_options
def fsck(quick: bool, data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """Check that the stored log reproduces every checkpoint it signed.

    Recomputes each leaf hash from its leaf record and each stored subtree from its children,
    verifies every signed checkpoint with the log key recorded in the database, and checks each leaf
    against its stored bundle. Read-only; safe while the server runs. Exits 0 when intact, 1 naming
    the problems otherwise (the server refuses proofs and writes in that state), 3 if the database
    cannot be read.
    """
    from sqlalchemy import func
    from sqlalchemy.exc import DBAPIError
    from sqlmodel import select

    from attest.checkpoint import NoteVerifier
    from attest.errors import UsageError
    from registry.db import Database, classify_db_error
    from registry.integrity import check_log
    from registry.log import LogConsistencyError
    from registry.models import Checkpoint, LogKey
    from registry.settings import Settings

    settings = Settings(data_dir=data_dir, database_url=database_url)
    if settings.is_sqlite and not (data_dir / "registry.db").is_file():
        raise UsageError(f"{data_dir}: no registry database here (registry.db)")
    db = Database(settings)
    try:
        with db.read_session() as session:
            key = session.exec(select(LogKey)).first()
            if key is None:
                raise LogConsistencyError("no log key is recorded in the database: not a registry log")
            verifier = NoteVerifier.from_vkey(key.vkey)
            problems = check_log(session, verifier, full=not quick, deep=not quick)
            size = int(session.exec(select(func.max(Checkpoint.size))).one() or 0)
    except DBAPIError as exc:
        raise classify_db_error(exc) from None
    finally:
        db.dispose()
    doc = {"ok": not problems, "origin": verifier.name, "treeSize": size, "problems": problems}
    if not problems:
        print_json(doc) if as_json else click.echo(f"log {verifier.name}: {size} entries, intact")
        return
    if not as_json:
        for p in problems:
            click.echo(f"problem: {p}")
    raise LogConsistencyError(
        f"log {verifier.name} is corrupt: {len(problems)} problem(s); first: {problems[0]}"
    )
