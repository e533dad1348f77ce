"""Typed errors of the engine. They carry data; `api` turns them into messages for people.

`EngineError` derives from antal's root error, `antal.catalog.errors.AntalError` (see
there for the whole tree)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from antal.catalog.errors import AntalError, InternalError

__all__ = [
    "BreakdownTooFine",
    "CohortError",
    "DataError",
    "Diagnostic",
    "EngineError",
    "IRInvalid",
    "InternalError",
    "MissingColumnError",
    "MissingRegisterError",
    "QueryTimeout",
]


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a cohort: where, what, and (where we can tell) what was meant."""

    line: int
    column: int
    message: str
    hint: str | None = None
    code: str = "invalid"  # a stable machine-readable kind: syntax, unknown_register, ...
    end_column: int | None = None
    # a warning does not stop a count: the answer carries it (a retired code, a window
    # reaching into a register's reporting lag)
    severity: Literal["error", "warning"] = "error"

    def to_json(self) -> dict[str, object]:
        return {"line": self.line, "column": self.column, "message": self.message,
                "hint": self.hint, "code": self.code, "severity": self.severity}  # fmt: skip

    def format(self, filename: str = "<cohort>", source: str | None = None) -> str:
        label = "warning: " if self.severity == "warning" else ""
        text = f"{filename}:{self.line}:{self.column}: {label}{self.message}"
        if self.hint:
            text += f" - {self.hint}"
        if source is not None:
            lines = source.splitlines()
            if 0 < self.line <= len(lines):
                src = lines[self.line - 1]
                width = max(1, (self.end_column or self.column + 1) - self.column)
                text += f"\n  {src}\n  {' ' * (self.column - 1)}{'^' * width}"
        return text


class EngineError(AntalError):
    """Base of the engine's errors."""


@dataclass
class CohortError(EngineError):
    """A cohort that does not parse or does not check; never reaches a database."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.__str__())

    @classmethod
    def at(
        cls,
        line: int,
        column: int,
        message: str,
        hint: str | None = None,
        code: str = "invalid",
        end_column: int | None = None,
    ) -> CohortError:
        """The error of one diagnostic (the usual case while parsing)."""
        return cls([Diagnostic(line, column, message, hint, code, end_column)])

    def __str__(self) -> str:
        return "; ".join(
            f"{d.line}:{d.column}: {d.message}" + (f" - {d.hint}" if d.hint else "")
            for d in self.diagnostics
        )

    def format(self, filename: str = "<cohort>", source: str | None = None) -> str:
        return "\n".join(d.format(filename, source) for d in self.diagnostics)


@dataclass
class MissingRegisterError(EngineError):
    """The cohort needs registers this installation does not hold."""

    registers: list[str]

    def __post_init__(self) -> None:
        super().__init__(self.__str__())

    def __str__(self) -> str:
        names = ", ".join(repr(r) for r in self.registers)
        return f"this installation holds no data for register(s) {names}"


@dataclass
class MissingColumnError(EngineError):
    """The cohort reads columns the installation's files lack: (register, column as
    named in the files, file name) each. Columns no cohort reads may be missing."""

    columns: list[tuple[str, str, str]]

    def __post_init__(self) -> None:
        super().__init__(self.__str__())

    def __str__(self) -> str:
        each = "; ".join(
            f"column {c!r} of register {r!r} is not in {f}" for r, c, f in self.columns
        )
        return f"this cohort reads columns the extracts do not have: {each}"


class QueryTimeout(EngineError):
    """A statement ran past its time budget and was interrupted."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"the count took longer than its time budget of {seconds:g} s")


class DataError(EngineError):
    """The extracts cannot be counted on: a failing data check, or a read that failed.
    Its message names files, columns and counts of rows, never a value from the data."""

    def __init__(self, message: str, findings: list | None = None) -> None:
        super().__init__(message)
        self.findings = findings or []  # datacheck.Finding, when from a check


class BreakdownTooFine(EngineError):
    """A `report by` whose public domain has more cells than the installation releases
    (privacy.PrivacyParams.max_cells); refused before anything is charged or read."""

    def __init__(self, cells: int, limit: int) -> None:
        self.cells, self.limit = cells, limit
        super().__init__(f"the breakdown has {cells} cells; at most {limit} can be released")


class IRInvalid(EngineError):
    """A JSON form of the IR that is malformed, too large, too deep or out of bounds
    (antal.engine.limits); the message names the path of the offending value."""
