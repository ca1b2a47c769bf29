"""``attest serve``: run the registry (FastAPI under uvicorn)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from cli._output import print_json


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
    "policy_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Default admission policy (used by AdmissionReview).",
)
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
    policy_file: Path | None,
    origin: str | None,
    max_bundle_bytes: int | None,
    workers: int,
    migrate: bool,
    migrate_only: bool,
    as_json: bool,
) -> None:
    """Run the registry: verified publishing, transparency log, queries and admission."""
    env = settings_env(
        data_dir=data_dir.resolve(),
        database_url=database_url,
        trust_file=trust_file.resolve() if trust_file else None,
        policy_file=policy_file.resolve() if policy_file else None,
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
    )
