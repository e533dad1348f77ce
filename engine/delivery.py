"""A delivery's files, converted into the canonical layout by its declared rules.

`convert(delivery, DIR, OUT, catalog)` writes `OUT/<id>.parquet` for each register the
description (antal.catalog.delivery) names, and copies `DIR/<id>.parquet` for each
register it does not name, and `DIR/release.yaml`. Every count and `antal prepare` then
read the canonical files, so the one conversion decides every answer on a delivery, and a
prepared file made from a delivery counts exactly as the delivery does.

Reading never guesses: a text file is read with the declared separator, encoding and
field names, every field as text (DuckDB's `read_csv`, `all_varchar`); a SAS dataset
through pandas (`read_sas`), its values turned into the same text; a Parquet file's
columns cast to text. Each canonical column is then one SQL expression over that text,
built with sqlglot (names and formats from the description are quoted identifiers and
literals, never SQL text): trimmed, an empty field missing (NULL), a date parsed in its
declared format, a number cast (a decimal comma if declared), codes normalised where
declared (dots and spaces removed, upper case), wide columns (`DIA1..DIA30`) or a file of
one code per row (the reporting format's diagnosis file) gathered into the space-separated
list, the main code its first item.

Nothing is dropped or changed in silence. What cannot be read is a finding with a count
and the file, and refuses the delivery (`DeliveryError`): a line with too many or too few
fields or bytes not of the declared encoding (DuckDB's rejects table), a value that is not
a date in the declared format or not a number, a code row naming no record of the main
file, a record key given twice. What a declared rule changed (codes normalised) is a note
with a count (`Converted.notes`). Values that parse but break the catalog (a missing
person key, a code of the wrong shape) are the data check's findings, as on any extract.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import glob
import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from sqlglot import exp

from antal.catalog import Catalog, Installation, Register
from antal.catalog.delivery import Delivery, ListFile, RegisterDelivery
from antal.catalog.installation import MANIFEST, _read_manifest
from antal.catalog.release import content_release
from antal.engine import duckconn
from antal.engine.datacheck import Finding, format_findings
from antal.engine.errors import DataError

__all__ = [
    "Converted",
    "DeliveryError",
    "convert",
    "delivery_files",
    "delivery_release",
    "open_delivery",
]

_DUCK_TYPES = {"bigint": "BIGINT", "integer": "INTEGER", "smallint": "SMALLINT",
               "double": "DOUBLE", "varchar": "VARCHAR", "date": "DATE"}  # fmt: skip
_LINE = "__antal_line"  # a row's place in its file set (a code file's order is the list's)
_FILE = "filename"  # DuckDB's name of the column naming each row's file


class DeliveryError(DataError):
    """The delivery cannot be converted as described: the findings say where and how many."""


@dataclass(frozen=True)
class Converted:
    directory: Path
    release: str
    registers: tuple[str, ...]
    notes: list[Finding] = field(default_factory=list)  # what declared rules changed


def _col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def _lit(s: str) -> exp.Literal:
    return exp.Literal.string(s)


def _text(name: str) -> exp.Expression:
    """A field as text: trimmed, an empty field missing."""
    return exp.Nullif(this=exp.Trim(this=_col(name)), expression=_lit(""))


def _kw(name: str, value: exp.Expression) -> exp.Expression:
    """A named argument of a table function (`name := value`)."""
    return exp.PropertyEQ(this=exp.var(name), expression=value)


def _regexp(e: exp.Expression, pattern: str, repl: str) -> exp.Expression:
    return exp.Anonymous(
        this="regexp_replace", expressions=[e, _lit(pattern), _lit(repl), _lit("g")]
    )


def _code(e: exp.Expression) -> exp.Expression:
    """One code, normalised: dots and white space removed, upper case; empty is missing."""
    return exp.Nullif(this=exp.Upper(this=_regexp(e, r"[.\s]", "")), expression=_lit(""))


def _code_list(e: exp.Expression) -> exp.Expression:
    """A space-separated list, normalised item by item (dots removed, one space between)."""
    items = exp.Trim(this=_regexp(_regexp(e, r"\.", ""), r"\s+", " "))
    return exp.Nullif(this=exp.Upper(this=items), expression=_lit(""))


def _typed(e: exp.Expression, typ: str, date_format: str, decimal: str) -> exp.Expression:
    """Text -> the catalog type; NULL where the text is not a value of it (counted)."""
    if typ == "varchar":
        return e
    if typ == "date":
        if date_format == "YYYYMMDD":
            # exactly eight digits: strptime alone would take "2020101" as 2020-10-01
            ok = exp.RegexpLike(this=e.copy(), expression=_lit(r"^\d{8}$"))
            parsed = exp.func("try_strptime", e, _lit("%Y%m%d"))
            return exp.Cast(this=exp.If(this=ok, true=parsed), to=exp.DataType.build("DATE"))
        if date_format == "sas":  # a SAS date value: a whole number of days since 1960-01-01
            whole = exp.RegexpLike(this=e.copy(), expression=_lit(r"^-?\d+$"))
            days = exp.If(this=whole, true=exp.TryCast(this=e, to=exp.DataType.build("INTEGER")))
            return exp.Add(
                this=exp.Cast(this=_lit("1960-01-01"), to=exp.DataType.build("DATE")),
                expression=days,
            )
        ok = exp.RegexpLike(this=e.copy(), expression=_lit(r"^\d{4}-\d{2}-\d{2}$"))
        return exp.If(this=ok, true=exp.TryCast(this=e, to=exp.DataType.build("DATE")))
    if typ == "double":
        if decimal == ",":
            e = exp.func("replace", e, _lit(","), _lit("."))
        return exp.TryCast(this=e, to=exp.DataType.build("DOUBLE"))
    # a whole number only: a cast alone would round "1.5" to 2
    whole = exp.RegexpLike(this=e.copy(), expression=_lit(r"^[+-]?\d+$"))
    return exp.If(this=whole, true=exp.TryCast(this=e, to=exp.DataType.build(_DUCK_TYPES[typ])))


def delivery_files(delivery: Delivery, directory: Path) -> list[Path]:
    """Every file the description reads from `directory` (and the canonical Parquet files
    of the registers it does not name, and the manifest): what the release id hashes."""
    d = Path(directory)
    out: set[Path] = set()
    for rd in delivery.registers.values():
        for part in rd.parts():
            out |= set(_glob(d, part.files))
            for lf in part.lists.values():
                out |= set(_glob(d, lf.files))
    out |= {p for p in d.glob("*.parquet") if p.stem not in delivery.registers}
    if (d / MANIFEST).is_file():
        out.add(d / MANIFEST)
    return sorted(out)


def delivery_release(delivery: Delivery, directory: Path, name: str | None = None) -> str:
    """The release id of a delivery: its files' names and bytes and its description (a
    changed rule changes the answers, so it changes the id)."""
    rules = json.dumps(delivery.model_dump(mode="json"), sort_keys=True)
    kind = "delivery-" + content_release([], rules)[-12:]  # the rules' digest in the kind
    return content_release(delivery_files(delivery, directory), kind, name)


def _glob(directory: Path, pattern: str) -> list[Path]:
    """The files of a glob relative to the data directory (absolute globs as they are)."""
    p = Path(pattern)
    full = p if p.is_absolute() else directory / p
    return sorted(Path(f) for f in glob.glob(str(full)) if Path(f).is_file())


class _Converter:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        directory: Path,
        catalog: Catalog,
        tolerate: Mapping[str, int] | None = None,
    ):
        self.con = con
        self.dir = directory
        self.catalog = catalog
        # `register.column` -> unreadable values accepted (the installation's `tolerate`)
        self.tolerate = dict(tolerate or {})
        self.errors: list[Finding] = []
        self.notes: list[Finding] = []
        self._n = 0
        self._pending_rejects: list[tuple[str, str, str]] = []

    def name(self, kind: str) -> str:
        self._n += 1
        return f"__antal_{kind}_{self._n}"

    # ---- reading: every field as text --------------------------------------------------
    def read(self, rid: str, spec: RegisterDelivery | ListFile) -> tuple[str, list[str]] | None:
        """A view of the files' rows, every field text, with the file's name and the row's
        place; its field names. None (and a finding) when no file matches."""
        files = _glob(self.dir, spec.files)
        if not files:
            self.errors.append(Finding(rid, spec.files, None, "missing", None,
                                       "no file matches this pattern in the data directory"))  # fmt: skip
            return None
        view = self.name("raw")
        line = exp.alias_(exp.Window(this=exp.RowNumber()), _LINE, quoted=True)
        if spec.format == "text":
            got = self._read_text(rid, spec, files)
            if got is None:
                return None
            source, names = got
            select = exp.select(exp.Star(), line).from_(source)
        elif spec.format == "parquet":
            source = exp.func(
                "read_parquet",
                exp.Array(expressions=[_lit(str(f)) for f in files]),
                _kw("filename", exp.true()),
            )
            names = [c for c in self.con.sql(exp.select(exp.Star()).from_(source).limit(0).sql(
                "duckdb")).columns if c != _FILE]  # fmt: skip
            select = exp.select(
                *(exp.alias_(exp.Cast(this=_col(c), to=exp.DataType.build("VARCHAR")), c,
                             quoted=True) for c in names),
                _col(_FILE), line,
            ).from_(source)  # fmt: skip
        else:
            arrow = _sas_table(files, spec.encoding)
            staged = self.name("sas")
            self.con.register(staged, arrow)
            names = [c for c in arrow.column_names if c != _FILE]
            select = exp.select(exp.Star(), line).from_(exp.to_table(staged, quoted=True))
        # read once into a table: the rejects are counted once and the order is kept
        self.con.execute(
            exp.Create(this=exp.to_table(view, quoted=True), kind="TABLE", expression=select).sql(
                "duckdb"
            )
        )
        return view, names

    def _read_text(
        self, rid: str, spec: RegisterDelivery | ListFile, files: list[Path]
    ) -> tuple[exp.Expression, list[str]] | None:
        """`read_csv` of the files with every declared setting (no sniffing), each field
        as text, lines DuckDB cannot read kept in a rejects table to be counted."""
        names = list(spec.fields)
        if not names and spec.header:  # the header line, in the declared encoding
            with open(files[0], encoding=spec.encoding, errors="replace", newline="") as f:
                first = f.readline().rstrip("\r\n")
            names = [n.strip() for n in first.split(spec.separator)]
        if not names:
            self.errors.append(Finding(rid, files[0].name, None, "unreadable", None,
                                       "a file without a header needs `fields`"))  # fmt: skip
            return None
        rejects, scans = self.name("rejects"), self.name("scans")
        columns = exp.Struct(
            expressions=[exp.PropertyEQ(this=_lit(n), expression=_lit("VARCHAR")) for n in names]
        )
        source = exp.Anonymous(
            this="read_csv",
            expressions=[
                exp.Array(expressions=[_lit(str(f)) for f in files]),
                _kw("delim", _lit(spec.separator)),
                _kw("header", exp.Boolean(this=spec.header)),
                _kw("columns", columns),
                _kw("encoding", _lit(spec.encoding)),
                _kw("quote", _lit('"')),
                _kw("escape", _lit('"')),
                _kw("filename", exp.true()),
                _kw("store_rejects", exp.true()),
                _kw("rejects_table", _lit(rejects)),
                _kw("rejects_scan", _lit(scans)),
                _kw("null_padding", exp.false()),
                _kw("auto_detect", exp.false()),
            ],
        )
        self._pending_rejects.append((rid, rejects, scans))
        return source, names

    def rejects(self) -> None:
        """Lines DuckDB refused (wrong number of fields, bytes not of the encoding): a
        finding per file and kind, with the count of lines; never the line itself."""
        for rid, rejects, scans in self._pending_rejects:
            rows = self.con.execute(
                exp.select(
                    exp.column("file_path", "s"),
                    exp.column("error_type", "e"),
                    exp.Count(this=exp.Star()),
                )
                .from_(exp.alias_(exp.to_table(rejects, quoted=True), "e"))
                .join(
                    exp.alias_(exp.to_table(scans, quoted=True), "s"),
                    on=exp.and_(
                        exp.column("scan_id", "e").eq(exp.column("scan_id", "s")),
                        exp.column("file_id", "e").eq(exp.column("file_id", "s")),
                    ),
                )
                .group_by(exp.column("file_path", "s"), exp.column("error_type", "e"))
                .order_by(exp.column("file_path", "s"), exp.column("error_type", "e"))
                .sql("duckdb")
            ).fetchall()
            for path, kind, n in rows:
                self.errors.append(Finding(rid, Path(path).name, None, "unreadable line", int(n),
                                           f"lines not read: {str(kind).lower()}"))  # fmt: skip

    # ---- one register --------------------------------------------------------------------
    def register(self, rid: str, rd: RegisterDelivery, out: Path) -> bool:
        reg = self.catalog.register(rid)
        if reg is None:
            self.errors.append(Finding(rid, "", None, "unknown", None,
                                       "the delivery names a register the catalog does not know"))  # fmt: skip
            return False
        selects = []
        for part in rd.parts():
            s = self.part(reg, part)
            if s is not None:
                selects.append(s)
        if len(selects) != len(rd.parts()):
            return False
        present = [v for v in reg.variables if any(v.name in cols for cols, _ in selects)]
        union: exp.Expression | None = None
        for cols, frm in selects:
            sel = exp.select(
                *(
                    exp.alias_(
                        cols.get(v.name)
                        or exp.Cast(this=exp.null(), to=exp.DataType.build(_DUCK_TYPES[v.type])),
                        v.name,
                        quoted=True,
                    )
                    for v in present
                )
            ).from_(frm)
            union = sel if union is None else exp.union(union, sel, distinct=False)
        assert union is not None
        if not self.errors:
            self.con.sql(union.sql("duckdb")).write_parquet(str(out / f"{rid}.parquet"))
        return True

    def part(
        self, reg: Register, part: RegisterDelivery
    ) -> tuple[dict[str, exp.Expression], exp.Expression] | None:
        """The canonical columns of one file set (name -> expression) and what they are
        selected from; the counts of what could not be read are findings or notes."""
        got = self.read(reg.id, part)
        if got is None:
            return None
        view, fields = got
        have = set(fields)
        src = exp.alias_(exp.to_table(view, quoted=True), "m")
        multi = {v.name for v in reg.variables if v.multi}
        known = {v.name for v in reg.variables}
        for rule, names in (("columns", part.columns), ("constants", part.constants),
                            ("dates", part.dates), ("gather", part.gather),
                            ("lists", part.lists), ("first", part.first),
                            ("normalise", dict.fromkeys(part.normalise))):  # fmt: skip
            for n in names:
                if n not in known:
                    self.errors.append(Finding(reg.id, part.files, n, "unknown column", None,
                                               f"`{rule}` names a column the catalog entry does not have"))  # fmt: skip
        cols: dict[str, exp.Expression] = {}
        checks: list[
            tuple[str, str, exp.Expression, exp.Expression]
        ] = []  # (column, kind, text, value)

        def need(field_name: str, canonical: str) -> bool:
            if field_name in have:
                return True
            self.errors.append(Finding(reg.id, part.files, canonical, "missing column", None,
                                       f"the description reads field {field_name!r}, which the file does not have"))  # fmt: skip
            return False

        joins: list[tuple[str, exp.Expression, exp.Expression]] = []
        for name, lf in part.lists.items():
            child = self.code_file(reg, part, name, lf, view, have)
            if child is not None:
                alias, on, agg = child
                joins.append((alias, on, agg))
                cols[name] = _col(alias)  # the aggregate's column is named as its subquery
        for name, names in part.gather.items():
            items = [_col(n) for n in names if need(n, name)]
            norm = name in part.normalise
            parts = [_code(exp.Trim(this=c)) if norm else _text(c.name) for c in items]
            cols[name] = exp.Nullif(
                this=exp.Anonymous(this="concat_ws", expressions=[_lit(" "), *parts]),
                expression=_lit(""),
            )
            if norm:
                for c in items:
                    checks.append(
                        (name, "normalised", _text(c.name), _code(exp.Trim(this=c.copy())))
                    )
        for v in reg.variables:
            n = v.name
            if n in cols or n in part.first:
                continue
            if n in part.constants:
                cols[n] = exp.Cast(
                    this=_lit(part.constants[n]), to=exp.DataType.build(_DUCK_TYPES[v.type])
                )
                continue
            source = part.columns.get(n, n)
            if source not in have:
                if n in part.columns:
                    need(source, n)
                continue  # not in this file: the data check says whether a cohort needs it
            text = _text(source)
            if n in part.normalise:
                value = _code_list(text) if n in multi else _code(text)
                checks.append((n, "normalised", text.copy(), value.copy()))
            else:
                value = _typed(text, v.type, part.dates.get(n, "YYYY-MM-DD"), part.decimal)
                if v.type != "varchar":
                    checks.append((n, v.type, text.copy(), value.copy()))
            cols[n] = value
        for main, of in part.first.items():
            if of not in cols:
                self.errors.append(Finding(reg.id, part.files, main, "missing column", None,
                                           f"`first` reads {of!r}, which this file set does not make"))  # fmt: skip
                continue
            cols[main] = exp.Nullif(
                this=exp.func("split_part", cols[of].copy(), _lit(" "), exp.Literal.number(1)),
                expression=_lit(""),
            )
        self.count_bad(reg.id, view, checks, part.dates)
        return cols, _from(src, joins)

    def code_file(
        self, reg: Register, part: RegisterDelivery, name: str, lf: ListFile, main: str,
        have: set[str],
    ) -> tuple[str, exp.Expression, exp.Expression] | None:  # fmt: skip
        """The codes of a code file per record of the main file, in the file's order, as
        the list column; a code row whose record is not in the main file, or a record key
        given twice, is a finding (a join would lose or double it)."""
        got = self.read(reg.id, lf)
        if got is None:
            return None
        view, fields = got
        parent = lf.parent_key or lf.key
        for f, where, n in ((lf.key, fields, lf.files), (lf.code, fields, lf.files),
                            (parent, have, part.files)):  # fmt: skip
            if f not in where:
                self.errors.append(Finding(reg.id, n, name, "missing column", None,
                                           f"the description reads field {f!r}, which the file does not have"))  # fmt: skip
                return None
        norm = name in part.normalise
        code = _code(_col(lf.code)) if norm else _text(lf.code)
        if norm:
            self.count_bad(reg.id, view, [(name, "normalised", _text(lf.code), code.copy())], {})
        alias = self.name("codes")
        agg = (
            exp.select(
                exp.alias_(_text(lf.key), f"{alias}_key", quoted=True),
                exp.alias_(
                    exp.GroupConcat(
                        this=exp.Order(
                            this=code.copy(), expressions=[exp.Ordered(this=_col(_LINE))]
                        ),
                        separator=_lit(" "),
                    ),
                    alias,
                    quoted=True,
                ),
            )
            .from_(exp.to_table(view, quoted=True))
            .where(code.copy().is_(exp.null()).not_())
            .group_by(_text(lf.key))
        )
        on = exp.EQ(
            this=exp.column(f"{alias}_key", alias, quoted=True),
            expression=_text(parent).transform(
                lambda n: exp.column(n.name, "m", quoted=True) if isinstance(n, exp.Column) else n
            ),
        )
        # code rows naming no record, and records named twice, by file
        key_m = _text(parent)
        orphans = self.con.execute(
            exp.select(exp.column(_FILE, "c", quoted=True), exp.Count(this=exp.Star()))
            .from_(exp.alias_(exp.to_table(view, quoted=True), "c"))
            .where(
                exp.Not(this=exp.Exists(this=exp.select(exp.Literal.number(1)).from_(
                    exp.alias_(exp.to_table(main, quoted=True), "m")).where(
                    exp.EQ(this=_text(lf.key).transform(
                        lambda n: exp.column(n.name, "c", quoted=True) if isinstance(n, exp.Column) else n),
                           expression=key_m.transform(
                        lambda n: exp.column(n.name, "m", quoted=True) if isinstance(n, exp.Column) else n)))))
            )
            .group_by(exp.column(_FILE, "c", quoted=True))
            .sql("duckdb")
        ).fetchall()  # fmt: skip
        for f, n in orphans:
            self.errors.append(Finding(reg.id, Path(f).name, name, "orphan code row", int(n),
                                       f"code rows whose {lf.key!r} names no record of {part.files}"))  # fmt: skip
        twice = self.con.execute(
            exp.select(exp.func("coalesce", exp.Sum(this=exp.column("n")), exp.Literal.number(0)))
            .from_(
                exp.select(exp.alias_(exp.Count(this=exp.Star()), "n"))
                .from_(exp.to_table(main, quoted=True))
                .where(_text(parent).is_(exp.null()).not_())
                .group_by(_text(parent))
                .having(exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(1)))
                .subquery("d")
            )
            .sql("duckdb")
        ).fetchall()[0][0]
        if twice:
            self.errors.append(Finding(reg.id, part.files, parent, "duplicate key", int(twice),
                                       "rows share a record key that code rows refer to"))  # fmt: skip
        return alias, on, agg

    def count_bad(
        self,
        rid: str,
        view: str,
        checks: list[tuple[str, str, exp.Expression, exp.Expression]],
        dates: dict[str, str],
    ) -> None:
        """Per file: values a rule could not read (errors) and values a rule changed (notes)."""
        if not checks:
            return
        sums = []
        for _name, kind, text, value in checks:
            if kind == "normalised":
                cond = exp.and_(
                    text.is_(exp.null()).not_(), exp.NullSafeNEQ(this=text.copy(), expression=value)
                )
            else:
                cond = exp.and_(text.is_(exp.null()).not_(), value.is_(exp.null()))
            sums.append(exp.Sum(this=exp.Case(ifs=[exp.If(this=cond, true=exp.Literal.number(1))],
                                              default=exp.Literal.number(0))))  # fmt: skip
        rows = self.con.execute(
            exp.select(_col(_FILE), *sums)
            .from_(exp.to_table(view, quoted=True))
            .group_by(_col(_FILE))
            .order_by(_col(_FILE))
            .sql("duckdb")
        ).fetchall()
        what = {"date": "not a date in the declared format", "double": "not a number",
                "bigint": "not a whole number", "integer": "not a whole number",
                "smallint": "not a whole number"}  # fmt: skip
        merged: dict[tuple[str, str, str], int] = {}
        total: dict[str, int] = {}  # unreadable values per column, over the files
        for row in rows:
            for (col, kind, _t, _v), n in zip(checks, row[1:], strict=True):
                if n:
                    key = (Path(row[0]).name, col, kind)
                    merged[key] = merged.get(key, 0) + int(n)
                    if kind != "normalised":
                        total[col] = total.get(col, 0) + int(n)
        for (f, col, kind), n in merged.items():
            if kind == "normalised":
                self.notes.append(Finding(rid, f, col, "normalised", n,
                                          "codes normalised as declared (dots and spaces removed, upper case)"))  # fmt: skip
                continue
            fmt = f" {dates.get(col, 'YYYY-MM-DD')}" if kind == "date" else ""
            allowed = self.tolerate.get(f"{rid}.{col}")
            if allowed is not None and total[col] <= allowed:
                # accepted as declared: the value is missing on these rows (no date, no code)
                self.notes.append(Finding(rid, f, col, "unparsed value", n,
                                          f"{what[kind]}{fmt}: tolerated (up to {allowed}), "
                                          "the value is missing on these rows"))  # fmt: skip
                continue
            over = f" (more than the {allowed} tolerated)" if allowed is not None else ""
            self.errors.append(Finding(rid, f, col, "unparsed value", n,
                                       f"{what[kind]}{fmt}: these rows would lose the value{over}"))  # fmt: skip


def _from(
    src: exp.Expression, joins: list[tuple[str, exp.Expression, exp.Expression]]
) -> exp.Expression:
    """The main file's rows, each joined to its code lists (a record without codes keeps a
    missing list)."""
    sel = exp.select(exp.Star()).from_(src)
    for alias, on, agg in joins:
        sel = sel.join(exp.alias_(agg.subquery(), alias), on=on, join_type="left")
    return sel.subquery("j")


def _sas_table(files: list[Path], encoding: str):  # -> pyarrow.Table
    """SAS datasets (`.xpt` transport files, `.sas7bdat`) as text columns, with the file's
    name: numbers as written without a trailing `.0`, a SAS date or datetime pandas
    converted back to days since 1960-01-01 (declared `sas`), strings decoded."""
    import math

    import pandas as pd
    import pyarrow as pa

    tables = []
    for f in files:
        fmt = "xport" if f.suffix.lower() == ".xpt" else "sas7bdat"
        df = pd.read_sas(f, format=fmt, encoding=encoding)
        cols: dict[str, list[str | None]] = {}
        for c in df.columns:
            s = df[c]
            if pd.api.types.is_datetime64_any_dtype(s):
                base = pd.Timestamp("1960-01-01")
                cols[str(c)] = [None if pd.isna(x) else str((x.normalize() - base).days) for x in s]
            elif pd.api.types.is_numeric_dtype(s):
                cols[str(c)] = [
                    None if x is None or (isinstance(x, float) and math.isnan(x))
                    else (str(int(x)) if float(x).is_integer() else repr(float(x)))
                    for x in s.tolist()
                ]  # fmt: skip
            else:
                cols[str(c)] = [
                    None if x is None or (isinstance(x, float) and math.isnan(x))
                    else (x.decode(encoding) if isinstance(x, bytes) else str(x))
                    for x in s.tolist()
                ]  # fmt: skip
        cols[_FILE] = [str(f)] * len(df)
        tables.append(pa.table({k: pa.array(v, pa.string()) for k, v in cols.items()}))
    return pa.concat_tables(tables, promote_options="default")


def _clear(target: Path) -> None:
    for p in target.glob("*.parquet"):
        p.unlink()
    shutil.rmtree(target / ".spill", ignore_errors=True)


def convert(
    delivery: Delivery,
    directory: Path | str,
    out: Path | str,
    catalog: Catalog,
    release_name: str | None = None,
    memory_limit: str | None = None,
    tolerate: Mapping[str, int] | None = None,
) -> Converted:
    """Write the delivery in `directory` into `out` in the canonical layout (see the
    module docstring); `DeliveryError` with every finding when it cannot be read as
    described (nothing is written then)."""
    d = Path(directory).resolve()
    if not d.is_dir():
        raise FileNotFoundError(f"data directory {d} does not exist")
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    config: dict[str, str] = {
        "preserve_insertion_order": "true",
        "temp_directory": str(target / ".spill"),
    }
    if memory_limit:
        config["memory_limit"] = memory_limit
    with contextlib.closing(duckconn.connect(config=config)) as con:
        conv = _Converter(con, d, catalog, tolerate)
        done = []
        try:
            for rid, rd in delivery.registers.items():
                if conv.register(rid, rd, target):
                    done.append(rid)
            conv.rejects()
        except duckdb.Error as e:  # its message may quote the data: only its kind is shown
            _clear(target)
            raise DeliveryError(
                f"the delivery could not be read ({type(e).__name__}); check each file's "
                "declared format, separator, encoding and fields"
            ) from None
        if conv.errors:
            _clear(target)
            raise DeliveryError(
                f"the delivery cannot be read as described ({len(conv.errors)} problem(s)):\n"
                + format_findings(conv.errors),
                conv.errors,
            )
    for p in sorted(d.glob("*.parquet")):
        if p.stem not in delivery.registers:
            shutil.copyfile(p, target / p.name)
            done.append(p.stem)
    if (d / MANIFEST).is_file():
        shutil.copyfile(d / MANIFEST, target / MANIFEST)
    shutil.rmtree(target / ".spill", ignore_errors=True)
    return Converted(target, delivery_release(delivery, d, release_name), tuple(done), conv.notes)


# This process's conversions, by release id: a command or a server converts a delivery
# once, into a private temporary directory removed when the process ends (row-level data
# is never left in a cache). `antal prepare` keeps a conversion, as a prepared file.
_CONVERTED: dict[str, Converted] = {}


def open_delivery(installation: Installation, catalog: Catalog) -> Installation:
    """The installation with its delivery converted: the canonical registers in a
    temporary directory, its release id the delivery's (files and rules), every other
    setting as the installation file says."""
    if installation.delivery is None or installation.delivery_dir is None:
        return installation
    d = installation.delivery_dir
    name = installation.release or _read_manifest(d / MANIFEST).release
    release = delivery_release(installation.delivery, d, name)
    made = _CONVERTED.get(release)
    if made is None or not made.directory.is_dir():
        tmp = Path(tempfile.mkdtemp(prefix="antal-delivery-"))
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        made = _CONVERTED[release] = convert(
            installation.delivery, d, tmp, catalog, name, tolerate=installation.tolerate
        )
    canonical = Installation.from_data_dir(made.directory, release)
    return dataclasses.replace(
        installation,
        sources=canonical.sources,
        release=release,
        extracted=installation.extracted or canonical.extracted,
        delivery=None,
    )
