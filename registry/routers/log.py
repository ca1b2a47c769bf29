"""``/v1/log``: the signed checkpoint, the log key, inclusion and consistency proofs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from registry.deps import ReaderDep, RegistryDep
from registry.models import Checkpoint

router = APIRouter(prefix="/v1/log", tags=["log"], dependencies=[ReaderDep])


def _checkpoint_json(cp: Checkpoint, origin: str) -> dict[str, Any]:
    return {"origin": origin, "treeSize": cp.size, "rootHash": cp.root_hash.hex(), "checkpoint": cp.note}


@router.get("/checkpoint", summary="The latest signed checkpoint (C2SP signed note)")
def checkpoint(reg: RegistryDep) -> Any:
    with reg.db.read_session() as session:
        return _checkpoint_json(reg.log.checkpoint(session), reg.log.origin)


@router.get("/checkpoints/{size}", summary="The checkpoint the log signed at a given tree size")
def checkpoint_at(reg: RegistryDep, size: int) -> Any:
    with reg.db.read_session() as session:
        return _checkpoint_json(reg.log.checkpoint(session, size), reg.log.origin)


@router.get("/key", summary="The log's note verifier key (C2SP vkey)")
def key(reg: RegistryDep) -> Any:
    return {"origin": reg.log.origin, "vkey": reg.log.verifier.vkey()}


@router.get("/proof/inclusion", summary="Inclusion proof of a log index in a tree size")
def inclusion(reg: RegistryDep, logIndex: int, treeSize: int | None = None) -> Any:
    with reg.db.read_session() as session:
        cp = reg.log.checkpoint(session, treeSize)
        proof = reg.log.inclusion_proof(session, logIndex, cp.size)
        leaf_hash = reg.log.leaf_hash(session, logIndex)
    return {
        "logIndex": logIndex,
        "treeSize": cp.size,
        "leafHash": leaf_hash.hex(),
        "hashes": [h.hex() for h in proof],
        "checkpoint": cp.note,
    }


@router.get("/proof/consistency", summary="Consistency proof between two tree sizes")
def consistency(reg: RegistryDep, firstSize: int, lastSize: int | None = None) -> Any:
    with reg.db.read_session() as session:
        cp = reg.log.checkpoint(session, lastSize)
        proof = reg.log.consistency_proof(session, firstSize, cp.size)
    return {
        "firstSize": firstSize,
        "lastSize": cp.size,
        "hashes": [h.hex() for h in proof],
        "checkpoint": cp.note,
    }
