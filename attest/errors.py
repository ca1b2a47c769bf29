"""The one exception hierarchy of model-attest.

Every failure a user can cause or meet is an ``AttestError`` carrying a one-line message and the exit
code the CLI must return, so the mapping from failure to exit code / HTTP status lives here and
nowhere else. Anything else escaping to the CLI is a bug and is reported as such.
"""

from __future__ import annotations


class AttestError(Exception):
    """Base class: a failure with a user-facing one-line message."""

    exit_code: int = 1
    http_status: int = 422

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(AttestError):
    """The caller asked for something malformed (bad option, unreadable input file)."""

    exit_code = 2
    http_status = 400


class ModelPathError(AttestError):
    """The model directory cannot be hashed safely (escaping symlink, special file, bad name)."""

    exit_code = 1
    http_status = 422


class VerificationError(AttestError):
    """A bundle, signature, subject or predicate did not verify. Always a denial (fail closed)."""

    exit_code = 1
    http_status = 422


class SchemaError(VerificationError):
    """A predicate, policy or other document does not validate against its JSON Schema."""


class PolicyError(UsageError):
    """A policy file is malformed (a usage error, distinct from a policy *denial*)."""


class SigningError(AttestError):
    """Signing could not complete (no key, no identity token, signing service refused)."""

    exit_code = 1
    http_status = 502


class KeyMaterialError(AttestError):
    """A key could not be loaded or generated (wrong passphrase, unsupported algorithm)."""

    exit_code = 2
    http_status = 400


class UndecidedError(AttestError):
    """No decision could be made: a registry or mirror unreachable, an I/O error, a timeout.

    Exit code 3, distinct from 1 ("denied"): a caller that retries on 3 must never retry on 1, and an
    admission controller that fails closed on 3 knows the model was not judged bad.
    """

    exit_code = 3
    http_status = 503


# The exit codes of the ``attest`` command, documented in ``attest --help`` and the README.
EXIT_ALLOWED = 0
EXIT_DENIED = 1
EXIT_USAGE = 2
EXIT_UNDECIDED = 3
