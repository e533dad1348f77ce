"""Errors of the privacy layer and of the application database it keeps (projects,
accounts, answers, audit). None carries a true count.

`PrivacyError` derives from antal's root error, `antal.catalog.errors.AntalError` (see
there for the whole tree). Lookups and creations in the store raise `NotFound`,
`AlreadyExists` or `InvalidValue`, whose text is the message to show as it is; a store
that cannot be reached raises `StoreUnavailable`.
"""

from __future__ import annotations

from antal.catalog.errors import AntalError

__all__ = [
    "AlreadyExists",
    "BudgetExceeded",
    "CountFailed",
    "InvalidValue",
    "NotFound",
    "PrivacyError",
    "SigningKeyError",
    "StoreUnavailable",
    "UnknownProject",
    "UnknownUser",
]


class PrivacyError(AntalError):
    """Base of errors the privacy layer and its store raise; none carries a true count."""


class BudgetExceeded(PrivacyError):
    """A project whose budget is too small for the query: nothing was read or released.
    The message names the ways forward (a new project, or an admin raising this one's
    budget), never only the refusal."""

    def __init__(self, project_id: str, needed: float, left: float) -> None:
        self.project_id, self.needed, self.left = project_id, needed, left
        super().__init__(
            f"project {project_id!r} has ε {left:g} left; this query needs ε {needed:g}. "
            "Nothing was released. Questions this project asked before are still answered, "
            "free. To ask new ones: a new project for a new study question, or an admin "
            f"raises this project's budget (`antal admin set-budget {project_id} EPSILON`, "
            "audited)."
        )


class CountFailed(PrivacyError):
    """Computing a charged count failed (an error or its time budget ran out).

    The same message whatever failed and whatever the data: whether a count fails may
    depend on the data, so nothing about the failure is told, and the charge stands."""

    def __init__(self, project_id: str, charged: float, left: float) -> None:
        self.project_id, self.charged, self.left = project_id, charged, left
        super().__init__(
            f"the count could not be computed; ε {charged:g} was charged as for an answer "
            "and nothing was released"
        )


class NotFound(PrivacyError):
    """A project or user the store does not hold."""


class UnknownProject(NotFound):
    def __init__(self, project_id: str) -> None:
        self.project_id = project_id
        super().__init__(f"no project {project_id!r}")


class UnknownUser(NotFound):
    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        super().__init__(f"no user {user_id!r}")


class AlreadyExists(PrivacyError):
    """A project or user created under an id the store already holds."""

    def __init__(self, what: str, ident: str) -> None:
        self.what, self.ident = what, ident
        super().__init__(f"{what} {ident!r} exists")


class InvalidValue(PrivacyError):
    """A value outside what the store accepts (a purpose, a role, a negative budget)."""


class SigningKeyError(PrivacyError):
    """The installation's receipt signing key cannot be made, read or trusted (a file that
    others may read, or not an Ed25519 key). Its text names the file, never the key."""


class StoreUnavailable(PrivacyError):
    """The store cannot be reached (a PostgreSQL server down, a wrong host or port, a
    refused login): a settings or operations problem, not a refusal. Its text names the
    store without its password, and the driver's reason."""

    def __init__(self, where: str, reason: str) -> None:
        self.where, self.reason = where, reason
        super().__init__(f"cannot connect to the store {where}: {reason}")
