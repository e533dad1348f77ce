"""How a delivery's files map onto the canonical layout (docs/extracts.md#deliveries).

A register's data rarely arrives as the canonical Parquet file: the regions' monthly
reporting to the patient register is semicolon-separated text in several files, research
extracts from Socialstyrelsen and SCB are SAS datasets or text with their own variable
names, dates as `YYYYMMDD` and diagnoses in wide columns (`DIA1`..`DIA30`). A *delivery
description* says, per register, where its files are and every rule that turns them into
the canonical columns; nothing is guessed (no type, encoding or separator is sniffed):

    name: research-extract
    registers:
      npr:
        files: par_*.csv                # a glob, relative to the data directory
        format: text                    # text, parquet or sas (.sas7bdat or .xpt)
        separator: ";"
        encoding: latin-1
        columns: {lopnr: LopNr, indatum: INDATUM}   # canonical -> the file's
        dates: {indatum: YYYYMMDD}      # YYYYMMDD, YYYY-MM-DD or sas (days since 1960)
        gather: {diagnos: [DIA1..DIA30]}  # wide columns -> the space-separated list
        first: {hdia: diagnos}          # the main code: the list's first item
        normalise: [diagnos, hdia]      # codes: dots and spaces removed, upper case

A register the description does not name is read as the canonical `DIR/<id>.parquet`
when that file exists. An installation file names a description with `delivery:` (a
shipped one by name, `catalog/deliveries/<name>.yaml`, a path, or the description
inline); `antal.engine.delivery` converts the files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from antal.catalog.errors import CatalogError

__all__ = [
    "DateFormat",
    "Delivery",
    "ListFile",
    "RegisterDelivery",
    "deliveries_dir",
    "expand_names",
    "load_delivery",
]

DateFormat = Literal["YYYYMMDD", "YYYY-MM-DD", "sas"]
_RANGE = re.compile(r"^(?P<p>[A-Za-z_]\w*?)(?P<a>\d+)\.\.(?P=p)(?P<b>\d+)$")
_NAME = re.compile(r"^[^\x00-\x1f\"]{1,128}$")  # a column name: quoted in SQL, never pasted


def expand_names(names: list[str]) -> list[str]:
    """`DIA1..DIA30` -> DIA1, DIA2, ..., DIA30 (in order); other names as they are."""
    out: list[str] = []
    for n in names:
        m = _RANGE.match(n)
        if m:
            a, b = int(m["a"]), int(m["b"])
            if b < a or b - a > 999:
                raise ValueError(f"{n}: a range runs up, at most 1000 names")
            out += [f"{m['p']}{i}" for i in range(a, b + 1)]
        else:
            out.append(n)
    return out


class _Files(BaseModel):
    """Files of one table and how to read them."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    files: str = Field(min_length=1)  # a glob relative to the data directory
    format: Literal["text", "parquet", "sas"]
    # text only: the separator, the encoding (utf-8 or latin-1), whether the first line
    # names the fields; without a header, `fields` names them in order
    separator: str = Field(default=";", min_length=1, max_length=1)
    encoding: Literal["utf-8", "latin-1"] = "utf-8"
    header: bool = True
    fields: list[str] = Field(default_factory=list)
    decimal: Literal[".", ","] = "."  # a decimal comma in numbers (text)

    @field_validator("fields")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        bad = [n for n in v if not _NAME.match(n)]
        if bad or len(set(v)) != len(v):
            raise ValueError("field names must be distinct and printable")
        return v


class ListFile(_Files):
    """A file of one code per row, the codes of a record of the main file: `key` names
    the record (a field of both files), `code` the code; the rows of a record, in the
    file's order, make its space-separated list (the first is the main code)."""

    key: str
    code: str
    parent_key: str | None = None  # the key's name in the main file, if it differs


class RegisterDelivery(_Files):
    """One register's files and the rules that make its canonical columns."""

    columns: dict[str, str] = Field(default_factory=dict)  # canonical -> the file's
    constants: dict[str, str] = Field(default_factory=dict)  # canonical -> a fixed value
    dates: dict[str, DateFormat] = Field(default_factory=dict)  # default YYYY-MM-DD
    gather: dict[str, list[str]] = Field(default_factory=dict)  # list column <- wide ones
    lists: dict[str, ListFile] = Field(default_factory=dict)  # list column <- a code file
    first: dict[str, str] = Field(default_factory=dict)  # main code <- first of a list
    normalise: list[str] = Field(default_factory=list)  # code columns to normalise
    # further file sets of the same register with the same rules but for these
    # overrides (e.g. the inpatient and the outpatient files of the patient register)
    also: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _parts_valid(self) -> RegisterDelivery:
        self.parts()  # each further file set is a whole description once merged
        return self

    @field_validator("gather")
    @classmethod
    def _expand(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        return {k: expand_names(names) for k, names in v.items()}

    def parts(self) -> list[RegisterDelivery]:
        """This file set and each of `also`, each with the rules it inherits."""
        base = self.model_dump(exclude={"also"})
        out = [self.model_copy(update={"also": []})]
        for extra in self.also:
            if "also" in extra:
                raise ValueError("`also` is one level deep")
            out.append(RegisterDelivery.model_validate({**base, **extra}))
        return out


class Delivery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str = Field(min_length=1, max_length=100)
    title: str | None = None
    # where the layout comes from (a regulation's annex, a holder's variable list)
    sources: list[dict[str, str]] = Field(default_factory=list)
    note: str | None = None
    registers: dict[str, RegisterDelivery]


def deliveries_dir() -> Path:
    """The shipped delivery descriptions (`catalog/deliveries/*.yaml`)."""
    return Path(__file__).parent / "deliveries"


def load_delivery(ref: str | dict, base: Path | None = None) -> Delivery:
    """A delivery description: inline (a mapping), a shipped one by name, or a file."""
    where = Path(base or ".")
    if isinstance(ref, dict):
        raw: object = ref
    else:
        shipped = deliveries_dir() / f"{ref}.yaml"
        path = shipped if re.fullmatch(r"[a-z0-9-]+", ref) and shipped.is_file() else None
        if path is None:
            path = Path(ref) if Path(ref).is_absolute() else where / ref
        where = path
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise CatalogError(path, "delivery", f"cannot be read as YAML: {e}") from e
    try:
        return Delivery.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(map(str, err["loc"]))
        raise CatalogError(where, f"delivery.{loc}", err["msg"]) from e
