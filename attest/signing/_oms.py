"""Signing a model as an OpenSSF model-signing v1.0 signature (what ``model_signing verify`` checks)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attest.manifest import Manifest, compute_manifest
from attest.oms import OMS_GIT_PATHS, check_ignore_paths, oms_statement, oms_walk_ignores
from attest.signing._base import Signer
from attest.signing._key import KeySigner


def oms_ignore_paths(model: Path, extra: Sequence[str] = (), output: Path | None = None) -> list[str]:
    """What an OpenSSF model signature leaves out: model_signing's git paths, the caller's paths, and
    the signature file itself when it is written inside the model (as model_signing records it)."""
    paths = [*OMS_GIT_PATHS, *extra]
    root = Path(model).resolve()
    if output is not None and root.is_dir():
        out = Path(output).resolve()
        if out.is_relative_to(root):
            paths.append(out.relative_to(root).as_posix())
    return check_ignore_paths(paths)


def sign_oms(
    signer: Signer, model: Path, ignore_paths: Sequence[str] = (), output: Path | None = None
) -> tuple[dict[str, Any], Manifest]:
    """Sign ``model`` as an OpenSSF model-signing v1.0 signature (files mode, sha256).

    The subject is the folder's name and the OMS root digest; the returned manifest is the one hashed
    (its ``digest`` is the model-attest model digest of the same files, which does bind names).
    """
    if isinstance(signer, KeySigner):
        signer.require_oms_key()
    paths = oms_ignore_paths(model, ignore_paths, output)
    manifest = compute_manifest(model, ignores=oms_walk_ignores(paths), progress=True)
    statement = oms_statement(manifest, Path(model).resolve().name, paths, _has_symlinks(Path(model)))
    return signer.sign_statement(statement), manifest


def _has_symlinks(model: Path) -> bool:
    """Whether the model holds links (a Hugging Face snapshot does): OMS records ``allow_symlinks``."""
    if not model.is_dir():
        return model.is_symlink()
    return any(
        os.path.islink(os.path.join(d, n)) for d, dirs, files in os.walk(model) for n in (*dirs, *files)
    )
