"""The model-attest registry service (FastAPI). ``create_app(settings)`` is the entry point."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from registry.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    from registry.app import create_app as _create_app

    return _create_app(settings)
