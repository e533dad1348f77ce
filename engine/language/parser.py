"""Cohort text → frozen IR. Syntax errors become `CohortError` with line and column."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from functools import cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from antal.catalog.usercache import cache_dir
from antal.engine import ir, limits
from antal.engine.errors import CohortError
from antal.engine.language.postlex import CohortPostLex

__all__ = ["parse"]

_GRAMMAR = Path(__file__).with_name("cohort.lark")
_EACH_EXAMPLE = "`index each diagnosis I50* between 2023-01-01 and 2025-09-30, washout 365 days`"


@cache
def _parser() -> Lark:
    grammar = _GRAMMAR.read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer="basic",
        postlex=CohortPostLex(),
        propagate_positions=True,
        maybe_placeholders=False,
        cache=_cache_file(grammar),
    )


def _cache_file(grammar: str) -> str | bool:
    """Where lark keeps the parse tables it built from this grammar (building them took a
    sixth of `antal check`; loading them takes a tenth of that): a file in the user's
    cache directory named by the grammar's hash, which lark checks again against the
    grammar, its options and its own version before using it, and rebuilds when they
    differ or the file cannot be read. False (no cache) without a cache directory."""
    d = cache_dir()
    if d is None:
        return False
    return str(d / f"cohort-grammar-{hashlib.sha256(grammar.encode()).hexdigest()[:24]}.lark")


# How tokens are named to people in "expected ..." messages.
_TOKEN_WORDS = {
    "_NL": "end of line",
    "$END": "end of file",
    "NAME": "a name",
    "CODE": "a code",
    "ICD9": "a code",  # an ICD-9 code is a code like any other to the writer
    "INT": "a whole number",
    "NUMBER": "a number",
    "DATE": "a date (YYYY-MM-DD)",
    "STRING": 'a "string"',
    "CMP": "a comparison (= != < <= > >=)",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "WCOMMA": "','",
    "COLON": "':'",
    "EQUAL": "'='",
    "AT": "'@'",
    "DOT": "'.'",
    "FAND": "'and'",
    "FOR": "'or'",
    "FNOT": "'not'",
}


def _word(tok: str) -> str:
    if tok in _TOKEN_WORDS:
        return _TOKEN_WORDS[tok]
    if tok.startswith("__ANON") or not tok.isupper():
        return "a symbol"
    return f"'{tok.lower()}'"


def _describe(tok: Token) -> str:
    if tok.type == "_NL":
        return "end of line"
    if tok.type == "$END":
        return "end of file"
    return f"'{tok.value}'"


def _syntax_error(e: UnexpectedInput, text: str) -> CohortError:
    line, col = e.line, e.column
    hint = None
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        word = text[e.pos_in_stream :].split(maxsplit=1)[0] if ch.strip() else ch
        msg = f"unexpected character {ch!r}"
        if ch.isalpha() and word.isalnum() and not word.islower() and not word.isupper():
            hint = "names and keywords are lower case, codes upper case"
        elif ch == "'":
            hint = 'strings use double quotes: "like this"'
        elif ch.isalpha() and word[:1].islower() and any(c.isdigit() for c in word[1:3]):
            hint = f"codes are written in upper case: {word.upper()!r}"
        return CohortError.at(line, col, msg, hint, code="syntax")
    if isinstance(e, UnexpectedToken | UnexpectedEOF):
        tok: Token = getattr(e, "token", None) or Token("$END", "")
        expected = sorted({_word(t) for t in e.expected if not t.startswith("__")})
        # the parser's state knows better than the lexer whether a name was meant
        if tok.type == "$END" or (line in (None, -1)):
            lines = text.rstrip("\n").splitlines() or [""]
            line, col = len(lines), len(lines[-1]) + 1
        else:
            line, col = tok.line, tok.column
        exp = ", ".join(expected[:8]) + (" ..." if len(expected) > 8 else "")
        msg = f"unexpected {_describe(tok)}; expected {exp}"
        if tok.type == "NAME" and "a code" in expected and tok.value[:1].isalpha():
            hint = f"codes are written in upper case: {tok.value.upper()!r}"
        return CohortError.at(
            line,
            col,
            msg,
            hint,
            code="syntax",
            end_column=(col + len(tok.value)) if tok.value.strip() else None,
        )
    return CohortError.at(line or 1, col or 1, str(e), code="syntax")


def _pos(meta: Any) -> ir.Pos | None:
    return ir.Pos(meta.line, meta.column) if not getattr(meta, "empty", True) else None


def _tpos(tok: Token) -> ir.Pos:
    return ir.Pos(tok.line or 1, tok.column or 1)


def _value_error(tok: Token, message: str, hint: str | None = None) -> CohortError:
    return CohortError.at(tok.line or 1, tok.column or 1, message, hint, "value")


def _date(tok: Token) -> dt.date:
    try:
        d = dt.date.fromisoformat(str(tok))
    except ValueError:
        raise _value_error(tok, f"{tok} is not a valid date") from None
    if not limits.DATE_MIN <= d <= limits.DATE_MAX:  # also keeps `before D` - 1 day in range
        raise _value_error(tok, f"dates lie between {limits.DATE_MIN} and {limits.DATE_MAX}")
    return d


def _int(tok: Token, lo: int, hi: int, what: str) -> int:
    """A whole number within [lo, hi]. The length is checked before int(): a number of
    thousands of digits is out of range, and int() would refuse it with a ValueError."""
    s = str(tok)
    if len(s) > 12 or not lo <= int(s) <= hi:
        raise _value_error(tok, f"{what} lies between {lo} and {hi}")
    return int(s)


def _days(tok: Token) -> int:
    return _int(tok, 0, limits.WINDOW_DAYS_MAX, "a window in days")


def _string(tok: Token) -> str:
    """The value of a "string": the escapes \\" and \\\\ and nothing else (no control
    characters). Written out by hand: Python's literal rules are not the language's."""
    raw = str(tok)[1:-1]
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\":
            nxt = raw[i + 1] if i + 1 < len(raw) else ""
            if nxt not in ('"', "\\"):
                raise CohortError.at(
                    tok.line or 1,
                    (tok.column or 1) + 1 + i,
                    f"unknown escape {(ch + nxt)!r} in a string",
                    'the escapes are \\" and \\\\',
                    "syntax",
                )
            out.append(nxt)
            i += 2
            continue
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise CohortError.at(
                tok.line or 1,
                (tok.column or 1) + 1 + i,
                f"a string may not contain the control character {ch!r}",
                code="syntax",
            )
        out.append(ch)
        i += 1
    value = "".join(out)
    if len(value) > limits.MAX_STRING_CHARS:
        raise _value_error(tok, f"a string is at most {limits.MAX_STRING_CHARS} characters")
    return value


def _code(tok: Token) -> tuple[str, bool]:
    raw = str(tok)
    prefix = raw.endswith("*")
    return raw.rstrip("*").replace(".", ""), prefix


def _check_range(lo: Token, hi: Token) -> tuple[int, int]:
    """`I20..I25`: the categories from lo to hi, numbered letter*100 + number."""
    a, b = str(lo), str(hi)
    pos = _tpos(lo)
    shape = "a range is written between three-character categories, like I20..I25"
    for t, v in ((lo, a), (hi, b)):
        if len(v) != 3 or not (v[0].isalpha() and v[1:].isdigit()):
            raise CohortError.at(
                t.line or 1, t.column or 1, f"{v!r} is not a category", shape, "code"
            )
    if (a[0], int(a[1:])) > (b[0], int(b[1:])):
        raise CohortError.at(
            pos.line, pos.column, f"range {a}..{b} is empty", "write the lower bound first", "code"
        )
    return (ord(a[0]) - 65) * 100 + int(a[1:]), (ord(b[0]) - 65) * 100 + int(b[1:])


class _Codesets:
    """Named code sets, expanded on use (a set may use sets defined anywhere in the file).

    Each set is expanded once and de-duplicated; a list's ranges are merged before they are
    spelled out as category prefixes (so `A00..Z99` written 1,000 times is 2,600 patterns,
    not 2.6 million). `work` counts the patterns copied, against MAX_CODE_EXPANSION: a chain
    of sets that each use the one before ten times stays linear, and a text that still
    makes too much work gets an error instead of the server's memory."""

    def __init__(self, defs: dict[str, tuple[Tree, Token]]) -> None:
        self.defs = defs
        self.done: dict[str, tuple[ir.CodePattern, ...]] = {}
        self.active: list[str] = []
        self.work = 0

    def _spend(self, n: int, at: Token) -> None:
        self.work += n
        if self.work > limits.MAX_CODE_EXPANSION:
            raise CohortError.at(
                at.line or 1,
                at.column or 1,
                f"the code lists expand to more than {limits.MAX_CODE_EXPANSION} codes",
                "use each code set once per list; write ranges once",
                "limit",
            )

    def items(self, tree: Tree) -> list[ir.CodePattern]:
        if len(tree.children) > limits.MAX_CODES_PER_SET:
            first = tree.children[limits.MAX_CODES_PER_SET].children[0]
            raise CohortError.at(
                first.line or 1,
                first.column or 1,
                f"a code list has at most {limits.MAX_CODES_PER_SET} items",
                code="limit",
            )
        # ordered and de-duplicated (pos is not compared); the ranges' categories take the
        # place of the first range written
        before: dict[ir.CodePattern, None] = {}
        after: dict[ir.CodePattern, None] = {}
        ranges: list[tuple[int, int, Token]] = []
        used: set[str] = set()
        for item in tree.children:
            out = after if ranges else before
            if item.data == "code":
                code, prefix = _code(item.children[0])
                out.setdefault(ir.CodePattern(code, prefix, _tpos(item.children[0])))
            elif item.data == "code_range":
                lo, hi = _check_range(*item.children)
                ranges.append((lo, hi, item.children[0]))
            elif str(item.children[0]) not in used:  # a second use of a set adds nothing
                used.add(str(item.children[0]))
                patterns = self.get(item.children[0])
                self._spend(len(patterns), item.children[0])
                for p in patterns:
                    out.setdefault(p)
        ranges.sort(key=lambda r: r[:2])
        merged: list[list[Any]] = []
        for lo, hi, tok in ranges:
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi, tok])
        for lo, hi, tok in merged:
            self._spend(hi - lo + 1, tok)
            pos = _tpos(tok)
            for n in range(lo, hi + 1):
                before.setdefault(ir.CodePattern(f"{chr(65 + n // 100)}{n % 100:02d}", True, pos))
        for p in after:
            before.setdefault(p)
        return list(before)

    def get(self, name: Token) -> tuple[ir.CodePattern, ...]:
        n = str(name)
        if n in self.done:
            return self.done[n]
        if n not in self.defs:
            from antal.catalog import suggest

            s = suggest(n, set(self.defs))
            raise CohortError.at(
                name.line or 1,
                (name.column or 2) - 1,
                f"unknown code set '@{n}'",
                f"did you mean '@{s}'?" if s else "define it with `codeset NAME = CODES`",
                "unknown_codeset",
            )
        if n in self.active:
            cycle = " -> ".join([*self.active[self.active.index(n) :], n])
            raise CohortError.at(
                name.line or 1,
                name.column or 1,
                f"code sets refer to each other in a cycle: {cycle}",
                code="codeset_cycle",
            )
        self.active.append(n)
        self.done[n] = tuple(self.items(self.defs[n][0]))
        self.active.pop()
        return self.done[n]


@v_args(meta=True)
class _ToIR(Transformer):
    def __init__(self, text: str, codesets: _Codesets) -> None:
        super().__init__()
        self.text = text
        self.codesets = codesets

    # ---- values ----
    def v_string(self, meta: Any, c: list[Token]) -> str:
        return _string(c[0])

    def v_number(self, meta: Any, c: list[Token]) -> int | float:
        s = str(c[0])
        bound = f"numbers are at most {limits.NUMBER_ABS_MAX:g} in size"
        if len(s) > 40:  # before int(): thousands of digits are refused with a ValueError
            raise _value_error(c[0], bound)
        v: int | float = float(s) if "." in s else int(s)
        if not math.isfinite(v) or abs(v) > limits.NUMBER_ABS_MAX:
            raise _value_error(c[0], bound)
        return v

    def v_date(self, meta: Any, c: list[Token]) -> dt.date:
        return _date(c[0])

    # ---- codes ----
    def code_list(self, meta: Any, c: list[Any]) -> tuple[ir.CodePattern, ...]:
        return tuple(self.codesets.items(Tree("code_list", c)))

    # code items stay trees for code_list to expand
    def code(self, meta: Any, c: list[Any]) -> Tree:
        return Tree("code", c, meta)

    def code_range(self, meta: Any, c: list[Any]) -> Tree:
        return Tree("code_range", c, meta)

    def code_ref(self, meta: Any, c: list[Any]) -> Tree:
        return Tree("code_ref", c, meta)

    # ---- filters ----
    def f_cmp(self, meta: Any, c: list[Any]) -> ir.Cmp:
        return ir.Cmp(str(c[0]), str(c[1]), c[2], _pos(meta))  # type: ignore[arg-type]

    def f_in(self, meta: Any, c: list[Any]) -> ir.FIn:
        _list_size(meta, c[1:])
        return ir.FIn(str(c[0]), tuple(c[1:]), _pos(meta))

    def f_not(self, meta: Any, c: list[Any]) -> ir.FNot:
        return ir.FNot(c[1], _pos(meta))

    def f_and(self, meta: Any, c: list[Any]) -> ir.FAnd:
        return ir.FAnd(tuple(x for x in c if not isinstance(x, Token)), _pos(meta))

    def f_or(self, meta: Any, c: list[Any]) -> ir.FOr:
        return ir.FOr(tuple(x for x in c if not isinstance(x, Token)), _pos(meta))

    # ---- events ----
    def diagnosis(self, meta: Any, c: list[Any]) -> ir.Diagnosis:
        return ir.Diagnosis(c[0], main=len(c) > 1, pos=_pos(meta))

    def procedure(self, meta: Any, c: list[Any]) -> ir.Procedure:
        return ir.Procedure(c[0], _pos(meta))

    def drug(self, meta: Any, c: list[Any]) -> ir.Drug:
        return ir.Drug(c[0], tuple(str(s) for s in c[1:]), _pos(meta))

    def death(self, meta: Any, c: list[Any]) -> ir.Death:
        codes = next((x for x in c if isinstance(x, tuple)), ())
        mentioned = any(isinstance(x, Token) and x.type == "MENTIONED" for x in c)
        return ir.Death(codes, mentioned, _pos(meta))

    def register_where(self, meta: Any, c: list[Any]) -> ir.RegisterEvent:
        return ir.RegisterEvent(str(c[0]), c[1], _pos(meta))

    def register_any(self, meta: Any, c: list[Any]) -> ir.RegisterEvent:
        return ir.RegisterEvent(str(c[0]), None, _pos(meta))

    def register_cmp(self, meta: Any, c: list[Any]) -> ir.RegisterEvent:
        var = c[1]
        return ir.RegisterEvent(
            str(c[0]), ir.Cmp(str(var), str(c[2]), c[3], _tpos(var)), _pos(meta)
        )  # type: ignore[arg-type]

    def register_in(self, meta: Any, c: list[Any]) -> ir.RegisterEvent:
        var = c[1]
        _list_size(meta, c[2:])
        return ir.RegisterEvent(str(c[0]), ir.FIn(str(var), tuple(c[2:]), _tpos(var)), _pos(meta))

    # ---- windows ----
    def _w(self, meta: Any, **kw: Any) -> ir.Window:
        return ir.Window(pos=_pos(meta), **kw)

    def w_before_index(self, meta: Any, c: list[Any]) -> ir.Window:
        return self._w(meta, hi=-1)

    def w_after_index(self, meta: Any, c: list[Any]) -> ir.Window:
        return self._w(meta, lo=1)

    def w_on_or_before_index(self, meta: Any, c: list[Any]) -> ir.Window:
        return self._w(meta, hi=0)

    def w_on_or_after_index(self, meta: Any, c: list[Any]) -> ir.Window:
        return self._w(meta, lo=0)

    def _range(
        self, meta: Any, a: Token, b: Token, what: str = "window {}..{} days"
    ) -> tuple[int, int]:
        lo, hi = (
            (_int(a, 0, limits.AGE_MAX, "an age"), _int(b, 0, limits.AGE_MAX, "an age"))
            if what.startswith("age")
            else (_days(a), _days(b))
        )
        if lo > hi:
            raise CohortError.at(
                a.line or 1,
                a.column or 1,
                f"{what.format(lo, hi)} is empty",
                "write the smaller number first",
                "window",
            )
        return lo, hi

    def w_within_before(self, meta: Any, c: list[Any]) -> ir.Window:
        a, b = self._range(meta, c[0], c[1])
        return self._w(meta, lo=-b, hi=-a)

    def w_within_after(self, meta: Any, c: list[Any]) -> ir.Window:
        a, b = self._range(meta, c[0], c[1])
        return self._w(meta, lo=a, hi=b)

    def w_within_n_before(self, meta: Any, c: list[Any]) -> ir.Window:
        return self._w(meta, lo=-_days(c[0]), hi=0)

    def w_within_n_after(self, meta: Any, c: list[Any]) -> ir.Window:
        return self._w(meta, lo=0, hi=_days(c[0]))

    def w_within_of(self, meta: Any, c: list[Any]) -> ir.Window:
        n = _days(c[0])
        return self._w(meta, lo=-n, hi=n)

    def w_between(self, meta: Any, c: list[Any]) -> ir.Window:
        a, b = _date(c[0]), _date(c[1])
        if a > b:
            raise CohortError.at(
                c[0].line,
                c[0].column,
                f"between {a} and {b} is empty",
                "write the earlier date first",
                "window",
            )
        return self._w(meta, start=a, end=b)

    def w_before_date(self, meta: Any, c: list[Any]) -> ir.Window:
        return self._w(meta, end=_date(c[0]) - dt.timedelta(days=1))

    def w_after_date(self, meta: Any, c: list[Any]) -> ir.Window:
        return self._w(meta, start=_date(c[0]) + dt.timedelta(days=1))

    # ---- conditions ----
    def at_least(self, meta: Any, c: list[Any]) -> ir.Count:
        return ir.Count(">=", _int(c[0], 0, limits.COUNT_MAX, "a count"), _pos(meta))

    def at_most(self, meta: Any, c: list[Any]) -> ir.Count:
        return ir.Count("<=", _int(c[0], 0, limits.COUNT_MAX, "a count"), _pos(meta))

    def exactly(self, meta: Any, c: list[Any]) -> ir.Count:
        return ir.Count("=", _int(c[0], 0, limits.COUNT_MAX, "a count"), _pos(meta))

    def event_cond(self, meta: Any, c: list[Any]) -> ir.EventCond:
        count = next((x for x in c if isinstance(x, ir.Count)), None)
        latest = any(isinstance(x, Token) and x.type == "LATEST" for x in c)
        event = next(x for x in c if isinstance(x, ir.Event))  # type: ignore[arg-type]
        window = next((x for x in c if isinstance(x, ir.Window)), ir.Window())
        return ir.EventCond(event, window, count, latest, _pos(meta))

    def age(self, meta: Any, c: list[Any]) -> ir.Age:
        lo, hi = self._range(meta, c[0], c[1], "age {}..{}")
        return ir.Age(lo, hi, _pos(meta))

    def sex_female(self, meta: Any, c: list[Any]) -> ir.Sex:
        return ir.Sex("female", _pos(meta))

    def sex_male(self, meta: Any, c: list[Any]) -> ir.Sex:
        return ir.Sex("male", _pos(meta))

    def region(self, meta: Any, c: list[Any]) -> ir.RegionIn:
        _list_size(meta, c)
        for t in c:
            if len(t) != 2:
                raise CohortError.at(
                    t.line,
                    t.column,
                    f"region code {t} is not a two-digit län code",
                    "e.g. 01 for Stockholm, 18 for Örebro",
                    "value",
                )
        return ir.RegionIn(tuple(str(t) for t in c), _pos(meta))

    def not_cond(self, meta: Any, c: list[Any]) -> ir.Not:
        return ir.Not(c[1], _pos(meta))

    def and_cond(self, meta: Any, c: list[Any]) -> ir.AllOf:
        return ir.AllOf(tuple(x for x in c if not isinstance(x, Token)), _pos(meta))

    def or_cond(self, meta: Any, c: list[Any]) -> ir.AnyOf:
        return ir.AnyOf(tuple(x for x in c if not isinstance(x, Token)), _pos(meta))

    # ---- statements ----
    def title(self, meta: Any, c: list[Any]) -> tuple[str, Any]:
        return ("title", _string(c[0]), meta)

    def codeset(self, meta: Any, c: list[Any]) -> tuple[str, Any]:
        return ("codeset", None, meta)

    def _index(self, which: str, meta: Any, c: list[Any]) -> tuple[str, Any]:
        window = c[2] if len(c) > 2 else ir.Window()
        return ("index", ir.IndexEvent(which, c[1], window, pos=_pos(meta)), meta)  # type: ignore[arg-type]

    def index_first(self, meta: Any, c: list[Any]) -> tuple[str, Any]:
        return self._index("first", meta, c)

    def index_last(self, meta: Any, c: list[Any]) -> tuple[str, Any]:
        return self._index("last", meta, c)

    def index_each(self, meta: Any, c: list[Any]) -> tuple[str, Any]:
        """`index each EVENT between D1 and D2, washout N days`: both are needed to know,
        before any data is read, how many episodes one person can have (ir.contribution)."""
        each, event = c[0], c[1]
        window = next((x for x in c if isinstance(x, ir.Window)), None)
        if window is None or window.relative or window.start is None or window.end is None:
            at = window.pos if window is not None and window.pos else _tpos(each)
            raise CohortError.at(
                at.line, at.column,
                "`index each` needs a window with both ends",
                f"e.g. {_EACH_EXAMPLE}",
                "index_window",
            )  # fmt: skip
        days = next((x for x in c if isinstance(x, Token) and x.type == "INT"), None)
        if days is None:
            raise CohortError.at(
                meta.end_line, meta.end_column,
                "`index each` needs a washout: a new episode needs N days without the event before it",
                f"e.g. {_EACH_EXAMPLE}",
                "washout",
            )  # fmt: skip
        washout = _int(days, 0, limits.WINDOW_DAYS_MAX, "a washout in days")
        return ("index", ir.IndexEvent("each", event, window, washout, pos=_pos(meta)), meta)

    def index_date(self, meta: Any, c: list[Any]) -> tuple[str, Any]:
        return ("index", ir.IndexDate(_date(c[0]), _pos(meta)), meta)

    def _step(self, action: str, meta: Any, c: list[Any]) -> tuple[str, Any]:
        label = _string(c[0]) if len(c) == 2 else None
        cond = c[-1]
        if label is None:  # the condition's own text names the step
            label = " ".join(self.text[cond_start(cond, meta, self.text) : meta.end_pos].split())
        return ("step", ir.Step(action, cond, label, _pos(meta)), meta)  # type: ignore[arg-type]

    def include(self, meta: Any, c: list[Any]) -> tuple[str, Any]:
        return self._step("include", meta, c)

    def exclude(self, meta: Any, c: list[Any]) -> tuple[str, Any]:
        return self._step("exclude", meta, c)

    def dim_region(self, meta: Any, c: list[Any]) -> ir.Dim:
        return ir.Dim("region", _pos(meta))

    def dim_sex(self, meta: Any, c: list[Any]) -> ir.Dim:
        return ir.Dim("sex", _pos(meta))

    def dim_year(self, meta: Any, c: list[Any]) -> ir.Dim:
        return ir.Dim("year", _pos(meta))

    def dim_hospital(self, meta: Any, c: list[Any]) -> ir.Dim:
        return ir.Dim("hospital", _pos(meta))

    def dim_sjukvardsregion(self, meta: Any, c: list[Any]) -> ir.Dim:
        return ir.Dim("sjukvardsregion", _pos(meta))

    def dim_month(self, meta: Any, c: list[Any]) -> ir.Dim:
        return ir.Dim("month", _pos(meta))

    def dim_quarter(self, meta: Any, c: list[Any]) -> ir.Dim:
        return ir.Dim("quarter", _pos(meta))

    def dim_clinic(self, meta: Any, c: list[Any]) -> ir.Dim:
        return ir.Dim("clinic", _pos(meta))

    def dim_age(self, meta: Any, c: list[Any]) -> ir.AgeBand:
        return ir.AgeBand(_int(c[0], 1, limits.AGE_MAX, "an age band's width"), _pos(meta))

    def report(self, meta: Any, c: list[Any]) -> tuple[str, Any]:
        rollup = bool(c) and isinstance(c[-1], Token) and c[-1].type == "ROLLUP"
        dims = tuple(c[:-1] if rollup else c)
        if len(dims) > limits.MAX_REPORT_DIMS:
            raise _err(
                meta, f"`report by` lists at most {limits.MAX_REPORT_DIMS} dimensions", code="limit"
            )
        return ("report", ir.Report(dims, rollup, _pos(meta)), meta)


def _list_size(meta: Any, values: list[Any]) -> None:
    if len(values) > limits.MAX_VALUES_PER_LIST:
        raise _err(meta, f"a list has at most {limits.MAX_VALUES_PER_LIST} values", code="limit")


# tree nodes that nest a condition or a filter one level deeper
_NESTING = {"not_cond", "and_cond", "or_cond", "f_not", "f_and", "f_or"}


def _check_depth(tree: Tree) -> None:
    """Refuse conditions nested deeper than MAX_DEPTH before anything recursive walks the
    tree (the transformer, the checker, the compiler): measured with an explicit stack."""
    stack: list[tuple[Tree, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if node.data in _NESTING:
            depth += 1
            if depth > limits.MAX_DEPTH:
                raise _err(
                    node.meta,
                    f"conditions are nested too deeply: at most {limits.MAX_DEPTH} levels",
                    code="limit",
                )
        stack.extend((ch, depth) for ch in node.children if isinstance(ch, Tree))


def cond_start(cond: Any, meta: Any, text: str) -> int:
    """Where an unlabelled step's condition starts: after `include`/`exclude`."""
    start = meta.start_pos
    for kw in ("include", "exclude"):
        if text.startswith(kw, start):
            start += len(kw)
            rest = text[start:]
            stripped = rest.lstrip(" \t\f")
            if stripped.startswith(":"):  # `include: CONDITION`, the label-less colon
                start += len(rest) - len(stripped) + 1
            return start
    return start


def _err(meta: Any, msg: str, hint: str | None = None, code: str = "statement") -> CohortError:
    return CohortError.at(meta.line, meta.column, msg, hint, code)


def parse(text: str) -> ir.Cohort:
    """Parse cohort text into the IR. Raises `CohortError` with line and column."""
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > limits.MAX_TEXT_BYTES:
        raise CohortError.at(
            1,
            1,
            f"the cohort is {size} bytes long; at most {limits.MAX_TEXT_BYTES} are accepted",
            code="limit",
        )
    if not text.endswith("\n"):
        text += "\n"
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as e:
        raise _syntax_error(e, text) from None
    _check_depth(tree)

    defs: dict[str, tuple[Tree, Token]] = {}
    for st in tree.children:
        if st.data == "codeset":
            name, op, body = st.children
            if str(op) != "=":
                raise CohortError.at(
                    op.line, op.column, f"unexpected '{op}'; expected '='", code="syntax"
                )
            if str(name) in defs:
                raise _err(st.meta, f"code set '{name}' is defined twice", code="duplicate")
            if len(defs) >= limits.MAX_CODESETS:
                raise _err(
                    st.meta,
                    f"a cohort defines at most {limits.MAX_CODESETS} code sets",
                    code="limit",
                )
            defs[str(name)] = (body, name)
    codesets = _Codesets(defs)
    for name, (_body, tok) in defs.items():
        codesets.get(tok)
        del name

    try:
        statements = _ToIR(text, codesets).transform(tree).children
    except VisitError as e:  # an error found while building the IR: pass it on as it is
        raise e.orig_exc from None
    title = None
    index = None
    steps: list[ir.Step] = []
    reports: list[ir.Report] = []
    for i, (kind, value, meta) in enumerate(statements):
        if kind == "title":
            if i != 0:
                raise _err(meta, '`cohort "TITLE"` must be the first statement')
            title = value
        elif kind == "index":
            if index is not None:
                raise _err(
                    meta, "a cohort has exactly one `index`", "remove one of them", "duplicate"
                )
            index = value
        elif kind == "step":
            steps.append(value)
            if len(steps) > limits.MAX_CRITERIA:
                raise _err(
                    meta,
                    f"a cohort has at most {limits.MAX_CRITERIA} include/exclude steps",
                    code="limit",
                )
        elif kind == "report":
            reports.append(value)
            if len(reports) > limits.MAX_REPORTS:
                raise _err(
                    meta,
                    f"a cohort has at most {limits.MAX_REPORTS} `report by` statements",
                    code="limit",
                )
    if index is None:
        text.rstrip("\n").splitlines() or [""]
        raise CohortError.at(
            1,
            1,
            "a cohort needs an `index` statement",
            "e.g. `index first diagnosis E11*`",
            "no_index",
        )
    return ir.Cohort(
        index=index, steps=tuple(steps), reports=tuple(reports), title=title, pos=ir.Pos(1, 1)
    )
