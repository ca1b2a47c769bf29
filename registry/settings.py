"""All registry configuration in one pydantic-settings object (env prefix ``ATTEST_REGISTRY_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

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
    # Policy used by admission when a request names none (YAML); it is the server policy "default".
    policy_file: Path | None = None
    # More named admission policies, NAME -> YAML file (env: a JSON object). Only server policies get
    # signed verdicts (VSAs), which record the name as policy.uri and the policy's sha256 as its digest.
    policies: dict[str, Path] = {}
    # Admission cost bounds: request body size (413 beyond), attestations verified per decision (after
    # leaving out signers the policy does not trust), and wall time of one evaluation (503 beyond).
    admission_max_body_bytes: int = 262_144
    admission_max_attestations: int = 64
    admission_time_budget_s: float = 10.0
    # The registry's external URL: VSAs locate their input attestations at {public_url}/v1/attestations/N
    # (default: the URL the request came in on).
    public_url: str | None = None
    max_bundle_bytes: int = 1_000_000
    max_query_limit: int = 500
    read_token_required: bool = False
    migrate: bool = True  # run Alembic migrations at startup
    admission_cache_size: int = 10_000
    # How stale this process's view of the log size may be for admission cache hits when *another*
    # process appended (own publishes are seen at once). 0 = query the database on every decision.
    size_refresh_s: float = 0.25
    db_pool_size: int = 20
    # Largest request body any endpoint reads (413 beyond; publish also obeys max_bundle_bytes).
    max_body_bytes: int = 2_000_000
    # Requests per second a client address / a bearer token may make, with a burst allowance; 0 = off.
    # Per worker process (in memory): with N workers the effective limit is up to N times this.
    # The defaults sit above what one worker serves (~3,000 req/s): they cap a runaway client without
    # touching benchmarks; set them for your deployment.
    rate_limit_per_client: float = 5000.0
    rate_limit_per_client_burst: int = 10_000
    rate_limit_per_token: float = 5000.0
    rate_limit_per_token_burst: int = 10_000
    # Publishes one namespace may make per quota window (counted in the database); 0 = unlimited.
    namespace_publish_quota: int = 100_000
    namespace_quota_window_s: int = 86_400
    # Log integrity check at startup: "full" re-hashes every leaf and node (~35 us per entry); "tip"
    # checks that the stored subtrees reproduce the latest signed checkpoint and its last leaf
    # (O(log n)); "auto" is full up to startup_full_check_max entries, tip beyond.
    startup_check: Literal["auto", "full", "tip"] = "auto"
    startup_full_check_max: int = 200_000

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
