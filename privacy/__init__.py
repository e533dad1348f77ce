"""Privacy: the only way a count leaves antal (see docs/privacy.md).

OpenDP discrete Laplace noise under a per-project ε budget kept in a transactional
ledger, non-increasing attrition, suppression below a threshold, optional rounding,
95% intervals, stored answers for repeated queries, receipts signed by the installation
(Ed25519), and a hash-chained audit log.
This package imports nothing else of antal but the catalog's root error and vocabulary
(antal.catalog.errors, antal.catalog.vocabulary): it receives plain `TrueCounts`.
"""

from antal.privacy.errors import (
    AlreadyExists,
    BudgetExceeded,
    CountFailed,
    InvalidValue,
    NotFound,
    PrivacyError,
    SigningKeyError,
    UnknownProject,
    UnknownUser,
)
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
    "TrueCounts",
    "UnknownProject",
    "UnknownUser",
    "open_store",
]
