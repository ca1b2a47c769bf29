"""``/v1/namespaces/{namespace}/signers``: which signers may publish under a namespace (admin-managed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from registry.api_models import Binding, BindingOut, Removed, SignerList, errors, ok
from registry.auth import bind_signer, list_bindings, unbind_signer
from registry.deps import AdminDep, ReaderDep, RegistryDep
from registry.log import NotFoundError
from registry.models import NamespaceSigner
from registry.validation import MAX_NAMESPACE, check_name

router = APIRouter(prefix="/v1/namespaces", tags=["namespaces"])


def binding_json(row: NamespaceSigner) -> dict[str, Any]:
    return {"namespace": row.namespace, "signer": row.signer, "issuer": row.issuer or None}


@router.post(
    "/{namespace}/signers",
    operation_id="bindSigner",
    status_code=201,
    summary="Bind a signer to a namespace (admin)",
    responses=ok(BindingOut, "The binding (also when it already existed).", 201)
    | errors(400, 401, 403, 413, 422, 429),
)
def bind(reg: RegistryDep, _admin: AdminDep, namespace: str, body: Binding) -> Any:
    with reg.db.write_session() as session:
        return binding_json(bind_signer(session, namespace, body.signer, body.issuer))


@router.get(
    "/{namespace}/signers",
    operation_id="listSigners",
    dependencies=[ReaderDep],
    summary="Signers bound to a namespace",
    responses=ok(SignerList, "The bindings.") | errors(400, 401, 429),
)
def signers(reg: RegistryDep, namespace: str) -> Any:
    check_name(namespace, "namespace", MAX_NAMESPACE)
    with reg.db.read_session() as session:
        return {
            "namespace": namespace,
            "signers": [binding_json(b) for b in list_bindings(session, namespace)],
        }


@router.delete(
    "/{namespace}/signers",
    operation_id="unbindSigner",
    summary="Remove a signer binding (admin)",
    responses=ok(Removed, "Removed.") | errors(400, 401, 403, 404, 413, 422, 429),
)
def unbind(reg: RegistryDep, _admin: AdminDep, namespace: str, body: Binding) -> Any:
    check_name(namespace, "namespace", MAX_NAMESPACE)
    with reg.db.write_session() as session:
        if not unbind_signer(session, namespace, body.signer, body.issuer):
            raise NotFoundError("no such binding")
    return {"removed": True}
