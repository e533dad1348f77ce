"""Privacy: the only way a count leaves antal (see docs/privacy.md).

OpenDP discrete Laplace noise under a per-project ε budget kept in a transactional
ledger, non-increasing attrition, suppression below a threshold, optional rounding,
95% intervals, stored answers for repeated queries, receipts signed by the installation
(Ed25519), and a hash-chained audit log.
This package imports nothing else of antal but the catalog's root error and vocabulary
(antal.catalog.errors, antal.catalog.vocabulary): it receives plain `TrueCounts`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from antal.privacy.errors import (
    AlreadyExists,
    BudgetExceeded,
    CountFailed,
    InvalidValue,
    NotFound,
    PrivacyError,
    SigningKeyError,
    StoreUnavailable,
    UnknownProject,
    UnknownUser,
)

if TYPE_CHECKING:
    from antal.privacy.gate import Answer, Gate, Quote
    from antal.privacy.mechanism import ReleasedCount, TrueCounts
    from antal.privacy.params import PrivacyParams
    from antal.privacy.receipts import Signer
    from antal.privacy.store import PostgresStore, Project, SQLiteStore, Store, open_store

__all__ = [
    "AlreadyExists",
    "Answer",
    "BudgetExceeded",
    "CountFailed",
    "Gate",
    "InvalidValue",
    "NotFound",
    "PostgresStore",
    "PrivacyError",
    "PrivacyParams",
    "Project",
    "Quote",
    "ReleasedCount",
    "SQLiteStore",
    "Signer",
    "SigningKeyError",
    "Store",
    "StoreUnavailable",
    "TrueCounts",
    "UnknownProject",
    "UnknownUser",
    "open_store",
]

# Imported on first use (PEP 562), not with the package: the errors above are all that
# `antal check` and the catalog need of it, and the gate (OpenDP) and the receipts
# (cryptography) take longer to import than such a command takes to run.
_LAZY = {
    "Answer": "gate",
    "Gate": "gate",
    "Quote": "gate",
    "ReleasedCount": "mechanism",
    "TrueCounts": "mechanism",
    "PrivacyParams": "params",
    "Signer": "receipts",
    "PostgresStore": "store",
    "Project": "store",
    "SQLiteStore": "store",
    "Store": "store",
    "open_store": "store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once: later look-ups find it without this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
