"""model-attest: signed attestations for open-weight AI models.

The public surface a consumer needs is small: ``verify_model`` (verify files and bundles against a
policy) and the ``Decision`` it returns. Everything else lives in modules named for what they do:
``manifest``, ``signing``, ``verifying``, ``policy``, ``predicates``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Decision", "Policy", "Trust", "verify_model"]

if TYPE_CHECKING:
    from attest.model_verification import verify_model
    from attest.policy import Decision, Policy
    from attest.verifying import Trust


def __getattr__(name: str) -> Any:
    # Lazy: `import attest` stays cheap for the guard and the CLI's start-up.
    if name == "verify_model":
        from attest.model_verification import verify_model

        return verify_model
    if name in ("Decision", "Policy"):
        from attest import policy

        return getattr(policy, name)
    if name == "Trust":
        from attest.verifying import Trust

        return Trust
    raise AttributeError(name)
