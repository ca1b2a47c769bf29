"""``/v1/tokens``: admin-only token management (secrets are shown once, stored hashed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from registry.auth import create_token, list_tokens, revoke_token
from registry.deps import AdminDep, RegistryDep
from registry.models import Token

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])


class TokenRequest(BaseModel):
    role: str = "publisher"
    namespaces: list[str] = Field(default_factory=list)
    description: str = ""


def token_json(row: Token) -> dict[str, Any]:
    return {
        "id": row.id,
        "role": row.role,
        "namespaces": [n for n in row.namespaces.split(",") if n],
        "description": row.description,
        "createdAt": row.created_at.isoformat() if row.created_at else None,
        "revokedAt": row.revoked_at.isoformat() if row.revoked_at else None,
    }


@router.post("", status_code=201, summary="Create a token (admin)")
def create(reg: RegistryDep, _admin: AdminDep, body: TokenRequest) -> Any:
    with reg.db.write_session() as session:
        secret, row = create_token(session, body.role, body.namespaces, body.description)
        return token_json(row) | {"token": secret}


@router.get("", summary="List tokens (admin)")
def index(reg: RegistryDep, _admin: AdminDep) -> Any:
    with reg.db.read_session() as session:
        return {"tokens": [token_json(t) for t in list_tokens(session)]}


@router.delete("/{token_id}", summary="Revoke a token (admin)")
def revoke(reg: RegistryDep, _admin: AdminDep, token_id: int) -> Any:
    with reg.db.write_session() as session:
        return token_json(revoke_token(session, token_id))
