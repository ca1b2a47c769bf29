"""``/v1/namespaces/{namespace}/signers``: which signers may publish under a namespace (admin-managed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from registry.auth import bind_signer, list_bindings, unbind_signer
from registry.deps import AdminDep, ReaderDep, RegistryDep
from registry.log import NotFoundError
from registry.models import NamespaceSigner

router = APIRouter(prefix="/v1/namespaces", tags=["namespaces"])


class Binding(BaseModel):
    signer: str  # key fingerprint sha256:<hex>, or a Sigstore identity (SAN)
    issuer: str = ""  # OIDC issuer, for Sigstore identities


def binding_json(row: NamespaceSigner) -> dict[str, Any]:
    return {"namespace": row.namespace, "signer": row.signer, "issuer": row.issuer or None}


@router.post("/{namespace}/signers", status_code=201, summary="Bind a signer to a namespace (admin)")
def bind(reg: RegistryDep, _admin: AdminDep, namespace: str, body: Binding) -> Any:
    with reg.db.write_session() as session:
        return binding_json(bind_signer(session, namespace, body.signer, body.issuer))


@router.get("/{namespace}/signers", dependencies=[ReaderDep], summary="Signers bound to a namespace")
def signers(reg: RegistryDep, namespace: str) -> Any:
    with reg.db.read_session() as session:
        return {
            "namespace": namespace,
            "signers": [binding_json(b) for b in list_bindings(session, namespace)],
        }


@router.delete("/{namespace}/signers", summary="Remove a signer binding (admin)")
def unbind(reg: RegistryDep, _admin: AdminDep, namespace: str, body: Binding) -> Any:
    with reg.db.write_session() as session:
        if not unbind_signer(session, namespace, body.signer, body.issuer):
            raise NotFoundError("no such binding")
    return {"removed": True}
