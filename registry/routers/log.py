"""``/v1/log``: the signed checkpoint, the log key, inclusion and consistency proofs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from registry.api_models import CheckpointOut, ConsistencyOut, InclusionOut, LogKeyOut, errors, ok
from registry.deps import ReaderDep, RegistryDep
from registry.models import Checkpoint
from registry.validation import MAX_INT

Index = Annotated[int, Query(ge=0, le=MAX_INT)]

router = APIRouter(prefix="/v1/log", tags=["log"], dependencies=[ReaderDep])


def _checkpoint_json(cp: Checkpoint, origin: str) -> dict[str, Any]:
    return {"origin": origin, "treeSize": cp.size, "rootHash": cp.root_hash.hex(), "checkpoint": cp.note}


@router.get(
    "/checkpoint",
    operation_id="getCheckpoint",
    summary="The latest signed checkpoint (C2SP signed note)",
    responses=ok(CheckpointOut, "The checkpoint.") | errors(401, 429),
)
def checkpoint(reg: RegistryDep) -> Any:
    with reg.db.read_session() as session:
        return _checkpoint_json(reg.log.checkpoint(session), reg.log.origin)


@router.get(
    "/checkpoints/{size}",
    operation_id="getCheckpointAt",
    summary="The checkpoint the log signed at a given tree size",
    responses=ok(CheckpointOut, "The checkpoint.") | errors(401, 404, 422, 429),
)
def checkpoint_at(reg: RegistryDep, size: Annotated[int, Path(ge=0, le=MAX_INT)]) -> Any:
    with reg.db.read_session() as session:
        return _checkpoint_json(reg.log.checkpoint(session, size), reg.log.origin)


@router.get(
    "/key",
    operation_id="getLogKey",
    summary="The log's note verifier key (C2SP vkey)",
    responses=ok(LogKeyOut, "The key.") | errors(401, 429),
)
def key(reg: RegistryDep) -> Any:
    return {"origin": reg.log.origin, "vkey": reg.log.verifier.vkey()}


@router.get(
    "/proof/inclusion",
    operation_id="getInclusionProof",
    summary="Inclusion proof of a log index in a tree size",
    responses=ok(InclusionOut, "The proof, verified by the server first.") | errors(401, 404, 422, 429, 503),
)
def inclusion(reg: RegistryDep, logIndex: Index, treeSize: Index | None = None) -> Any:
    with reg.db.read_session() as session:
        cp = reg.log.checkpoint(session, treeSize)
        proof = reg.log.inclusion_proof(session, logIndex, cp.size, cp.root_hash)
        leaf_hash = reg.log.leaf_hash(session, logIndex)
    return {
        "logIndex": logIndex,
        "treeSize": cp.size,
        "leafHash": leaf_hash.hex(),
        "hashes": [h.hex() for h in proof],
        "checkpoint": cp.note,
    }


@router.get(
    "/proof/consistency",
    operation_id="getConsistencyProof",
    summary="Consistency proof between two tree sizes",
    responses=ok(ConsistencyOut, "The proof, verified by the server first.")
    | errors(401, 404, 422, 429, 503),
)
def consistency(reg: RegistryDep, firstSize: Index, lastSize: Index | None = None) -> Any:
    with reg.db.read_session() as session:
        cp = reg.log.checkpoint(session, lastSize)
        proof = reg.log.consistency_proof(session, firstSize, cp.size)
    return {
        "firstSize": firstSize,
        "lastSize": cp.size,
        "hashes": [h.hex() for h in proof],
        "checkpoint": cp.note,
    }
