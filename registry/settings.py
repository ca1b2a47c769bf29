"""All registry configuration in one pydantic-settings object (env prefix ``ATTEST_REGISTRY_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Server settings; every field can be set as ``ATTEST_REGISTRY_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="ATTEST_REGISTRY_", extra="ignore")

    data_dir: Path = Path("./registry-data")
    # SQLite file in data_dir when unset; e.g. postgresql+psycopg://user@/db?host=/run/postgresql
    database_url: str | None = None
    # Log origin line of every checkpoint (C2SP: schema-less URL-like name); also the note key name.
    origin: str = "localhost/model-attest-log"
    log_key_path: Path | None = None  # default: data_dir / "log-key.pem"
    # Trust configuration (YAML/JSON): keys and Sigstore identities whose bundles the server accepts.
    trust_file: Path | None = None
    # Policy used by admission when a request names none (YAML).
    policy_file: Path | None = None
    max_bundle_bytes: int = 1_000_000
    max_query_limit: int = 500
    read_token_required: bool = False
    migrate: bool = True  # run Alembic migrations at startup
    admission_cache_size: int = 10_000
    # How stale this process's view of the log size may be for admission cache hits when *another*
    # process appended (own publishes are seen at once). 0 = query the database on every decision.
    size_refresh_s: float = 0.25
    db_pool_size: int = 20

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'registry.db').resolve()}"

    @property
    def resolved_log_key_path(self) -> Path:
        return self.log_key_path or self.data_dir / "log-key.pem"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")
