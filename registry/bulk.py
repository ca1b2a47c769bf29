"""Bulk loading through the storage layer: many attestations per sequencer transaction.

For migrations from another store and for benchmarks at scale. The caller vouches that each
attestation already verified (``VerifiedAttestation``) and may be placed under its namespace: no
token or binding checks happen here. Every batch is one transaction with one signed checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable

from attest.verifying import VerifiedAttestation
from registry.publishing import _SEQUENCER, namespace_for, store_entries, subject_rows
from registry.state import Registry


def bulk_load(reg: Registry, attestations: Iterable[VerifiedAttestation], batch: int = 2000) -> int:
    """Append and store ``attestations`` in batches; return the log size afterwards."""
    pending: list[tuple[VerifiedAttestation, str, list[tuple[str, str]]]] = []

    def flush() -> None:
        with _SEQUENCER, reg.db.sequencer_session() as session:
            store_entries(reg, session, pending)
        pending.clear()

    for att in attestations:
        pending.append((att, namespace_for(att), subject_rows(att)))
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    with reg.db.read_session() as session:
        return reg.log.size(session)
