"""``attest serve``: run the registry (FastAPI under uvicorn)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from attest.errors import UsageError
from cli._output import print_json


def parse_policy_specs(specs: tuple[str, ...]) -> tuple[Path | None, dict[str, str]]:
    """``--policy FILE`` (the default policy) and ``--policy NAME=FILE`` (named ones), resolved."""
    default: Path | None = None
    named: dict[str, str] = {}
    for spec in specs:
        name, sep, file = spec.partition("=")
        path = Path(file if sep else spec)
        if not path.is_file():
            raise UsageError(f"--policy {spec}: {path} is not a readable file")
        if not sep:
            if default is not None:
                raise UsageError("--policy FILE given twice: name the others with NAME=FILE")
            default = path.resolve()
        elif name in named:
            raise UsageError(f"--policy: two policies named {name!r}")
        else:
            named[name] = str(path.resolve())
    from registry.admission import load_server_policies

    # parsed here too, so a bad name or policy file is one line and exit 2, not a worker's traceback
    load_server_policies(default, {n: Path(f) for n, f in named.items()})
    return default, named


def tls_options(cert: Path | None, key: Path | None) -> tuple[str | None, str | None]:
    """uvicorn's HTTPS options; a certificate needs its key (a webhook must be served over TLS)."""
    if (cert is None) != (key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    if cert is None or key is None:
        return None, None
    for what, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not path.is_file():
            raise UsageError(f"{what} {path}: not a readable file")
    import ssl

    try:  # fail here with one line, not in a uvicorn traceback
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise UsageError(f"--tls-cert/--tls-key: cannot load the certificate and key: {exc}") from None
    return str(cert.resolve()), str(key.resolve())


def settings_env(**values: object) -> dict[str, str]:
    """Command-line options as ``ATTEST_REGISTRY_*`` variables (how uvicorn workers get settings)."""
    return {f"ATTEST_REGISTRY_{k.upper()}": str(v) for k, v in values.items() if v is not None}


@click.command()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path("registry-data"),
    show_default=True,
    help="Directory for the SQLite database and the log key.",
)
@click.option(
    "--database-url",
    envvar="ATTEST_REGISTRY_DATABASE_URL",
    help="PostgreSQL URL (postgresql+psycopg://...); default: SQLite in --data-dir.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--trust",
    "trust_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Trust file: keys and Sigstore identities whose bundles are accepted.",
)
@click.option(
    "--policy",
    "policy_specs",
    multiple=True,
    metavar="[NAME=]FILE",
    help="Admission policy the server holds (repeatable): FILE is named 'default' (AdmissionReview "
    "and requests naming no policy use it); NAME=FILE adds a named one. Signed verdicts (VSAs) are "
    "given only for these, and record NAME as policy.uri.",
)
@click.option(
    "--tls-cert", type=click.Path(path_type=Path), help="Serve HTTPS with this PEM certificate (chain)."
)
@click.option("--tls-key", type=click.Path(path_type=Path), help="The PEM private key of --tls-cert.")
@click.option("--origin", help="Log origin (checkpoint first line and log key name).")
@click.option("--max-bundle-bytes", type=int, help="Size limit of one published bundle.")
@click.option("--workers", default=1, show_default=True, type=int, help="uvicorn worker processes.")
@click.option("--migrate/--no-migrate", default=True, show_default=True, help="Run migrations at startup.")
@click.option("--migrate-only", is_flag=True, help="Run the database migrations and exit.")
@click.option("--json", "as_json", is_flag=True, help="With --migrate-only: print the result as JSON.")
def serve(
    data_dir: Path,
    database_url: str | None,
    host: str,
    port: int,
    trust_file: Path | None,
    policy_specs: tuple[str, ...],
    tls_cert: Path | None,
    tls_key: Path | None,
    origin: str | None,
    max_bundle_bytes: int | None,
    workers: int,
    migrate: bool,
    migrate_only: bool,
    as_json: bool,
) -> None:
    """Run the registry: verified publishing, transparency log, queries and admission."""
    policy_file, named_policies = parse_policy_specs(policy_specs)
    certfile, keyfile = tls_options(tls_cert, tls_key)
    env = settings_env(
        data_dir=data_dir.resolve(),
        database_url=database_url,
        trust_file=trust_file.resolve() if trust_file else None,
        policy_file=policy_file,
        policies=json.dumps(named_policies) if named_policies else None,
        origin=origin,
        max_bundle_bytes=max_bundle_bytes,
        migrate=migrate,
    )
    os.environ.update(env)
    from registry.settings import Settings

    settings = Settings()
    if migrate_only:
        from registry.db import Database
        from registry.migrate import upgrade

        db = Database(settings)
        upgrade(db.write)
        db.dispose()
        result = {"migrated": True, "database": "sqlite" if settings.is_sqlite else "postgresql"}
        print_json(result) if as_json else click.echo(f"database migrated ({result['database']})")
        return
    import uvicorn

    from registry import jsonlog

    jsonlog.configure()
    if workers > 1:
        from registry.state import Registry

        Registry(settings).close()  # migrate and create the log key once, before workers race for it
        os.environ["ATTEST_REGISTRY_MIGRATE"] = "false"
    uvicorn.run(
        "registry.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
    )
