"""``/v1/models/{namespace}/{name}``: the versions (digests) of a model and their attestations."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from registry.api_models import ModelPage, errors, ok
from registry.deps import ReaderDep, RegistryDep
from registry.entries import model_page

router = APIRouter(prefix="/v1/models", tags=["models"], dependencies=[ReaderDep])


@router.get(
    "/{namespace}/{name}",
    operation_id="getModel",
    summary="Versions of a model and which attestations each has",
    responses=ok(ModelPage, "The model's versions.") | errors(400, 401, 404, 429),
)
def model(reg: RegistryDep, namespace: str, name: str) -> Any:
    with reg.db.read_session() as session:
        return model_page(session, namespace, name)
