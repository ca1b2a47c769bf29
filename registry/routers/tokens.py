"""``/v1/tokens``: admin-only token management (secrets are shown once, stored hashed)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from registry.api_models import TokenCreated, TokenList, TokenOut, TokenRequest, errors, ok
from registry.auth import create_token, list_tokens, parse_expiry, revoke_token
from registry.deps import AdminDep, RegistryDep
from registry.models import Token
from registry.validation import MAX_INT

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])


def token_json(row: Token) -> dict[str, Any]:
    return {
        "id": row.id,
        "role": row.role,
        "namespaces": [n for n in row.namespaces.split(",") if n],
        "description": row.description,
        "createdAt": row.created_at.isoformat() if row.created_at else None,
        "revokedAt": row.revoked_at.isoformat() if row.revoked_at else None,
        "expiresAt": row.expires_at.isoformat() if row.expires_at else None,
    }


@router.post(
    "",
    operation_id="createToken",
    status_code=201,
    summary="Create a token (admin)",
    responses=ok(TokenCreated, "The token; its secret is shown only here.", 201)
    | errors(400, 401, 403, 413, 422, 429),
)
def create(reg: RegistryDep, _admin: AdminDep, body: TokenRequest) -> Any:
    with reg.db.write_session() as session:
        expires_at = parse_expiry(body.expires)
        secret, row = create_token(session, body.role, body.namespaces, body.description, expires_at)
        return token_json(row) | {"token": secret}


@router.get(
    "",
    operation_id="listTokens",
    summary="List tokens (admin)",
    responses=ok(TokenList, "Every token, never its secret.") | errors(401, 403, 429),
)
def index(reg: RegistryDep, _admin: AdminDep) -> Any:
    with reg.db.read_session() as session:
        return {"tokens": [token_json(t) for t in list_tokens(session)]}


@router.delete(
    "/{token_id}",
    operation_id="revokeToken",
    summary="Revoke a token (admin)",
    responses=ok(TokenOut, "The revoked token.") | errors(400, 401, 403, 422, 429),
)
def revoke(reg: RegistryDep, _admin: AdminDep, token_id: Annotated[int, Path(ge=0, le=MAX_INT)]) -> Any:
    with reg.db.write_session() as session:
        return token_json(revoke_token(session, token_id))
