"""The root of antal's errors, and the catalog's own.

`AntalError` lives here because the catalog is the bottom layer: the engine, the privacy
layer and the service all import it, and it imports none of them. Every error antal
raises on purpose (bad input, a refused request, data that cannot be counted) derives
from it, so a caller can tell antal's answers from bugs and library failures:

    AntalError
    ├── CatalogError                  a catalog or installation file that cannot be used
    ├── InternalError                 a bug in antal (an IR node no handler knows)
    ├── engine.EngineError            CohortError, IRInvalid, MissingRegisterError, DataError,
    │                                 QueryTimeout, BreakdownTooFine
    ├── privacy.PrivacyError          BudgetExceeded, CountFailed,
    │                                 NotFound (UnknownProject, UnknownUser),
    │                                 AlreadyExists, InvalidValue, SigningKeyError,
    │                                 StoreUnavailable
    └── api.usecases.UseCaseError     requests the use cases refuse (Invalid, NotFound,
                                      Forbidden, NotApproved, EntryMismatch, ...)

No domain error is a `KeyError` or `ValueError`: their text is the message to show, as
is, never a `repr` to be stripped of its quotes. (The HTTP client's errors in
`antal.api.client` are the *remote* side of these: they carry an HTTP status and the
server's error code, and are named apart, e.g. `CohortInvalidError`.)
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["AntalError", "CatalogError", "InternalError"]


class AntalError(Exception):
    """Base of every error antal raises on purpose; its text is a message for people."""


class InternalError(AntalError):
    """A bug in antal, never the user's input: e.g. an IR node that a dispatcher has no
    handler for. Raised loudly instead of falling through to another node's meaning."""


class CatalogError(AntalError):
    """A catalog file that cannot be used; carries the file, the field and what was expected."""

    def __init__(self, path: Path | str, field: str, message: str) -> None:
        self.path = str(path)
        self.field = field
        self.message = message
        super().__init__(f"{self.path}: {field}: {message}" if field else f"{self.path}: {message}")
