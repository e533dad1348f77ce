"""Token-stream rules that a context-free LALR grammar cannot say by itself."""

from __future__ import annotations

import re
from collections.abc import Iterator

from lark import Token

from antal.engine import limits
from antal.engine.errors import CohortError

_WINDOW_START = {"BEFORE", "AFTER", "ON", "WITHIN", "BETWEEN"}
_FILTER_OF = {"AND": "FAND", "OR": "FOR", "NOT": "FNOT"}
# tokens after which a code list begins, and those that continue one
_ICD9 = re.compile(r"[0-9]{3}(\.?[0-9A-Z])?")  # an ICD-9 code without `*`
_CODES_START = {"DIAGNOSIS", "DEATH"}
_CODES_GO_ON = {"COMMA", "DOTS", "CODE", "ICD9", "AT", "NAME"}


def _too_deep(t: Token) -> CohortError:
    return CohortError.at(
        t.line or 1,
        t.column or 1,
        f"conditions are nested too deeply: at most {limits.MAX_DEPTH} levels",
        code="limit",
    )


def _starts_comparison(toks: list[Token], i: int) -> bool:
    """Do the tokens from i start a filter comparison (`var op`, `var in`, `not ...`, `( ...`)?"""
    # bounded look-ahead: a longer run of `not`/`(` is refused as too deep by `process`,
    # and an unbounded one would make a text of many `not`s quadratic
    stop = min(len(toks), i + 2 * limits.MAX_DEPTH + 2)
    while i < stop and toks[i].type in ("NOT", "LPAR"):
        i += 1
    if i == stop and stop < len(toks):
        return True  # a filter nested too deeply: taken as one, so `process` says so
    return i + 1 < len(toks) and toks[i].type == "NAME" and toks[i + 1].type in ("CMP", "IN")


class CohortPostLex:
    """Drops newlines inside parentheses, folds blank lines, and marks the and/or/not
    that belong to a `where` filter (FAND/FOR/FNOT) rather than to a condition."""

    always_accept = ("_NL",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        toks = list(stream)
        depth = 0
        filter_depth: int | None = None  # paren depth at which the current filter began
        prev_nl = True
        nots = 0  # `not`s in a row: each nests one level (parentheses are counted in depth)
        codes = False  # inside a code list, where digits are an ICD-9 code, not a number
        for i, t in enumerate(toks):
            # `index each EVENT ..., washout N days`: that comma does not continue a code list
            if t.type == "COMMA" and i + 1 < len(toks) and toks[i + 1].type == "WASHOUT":
                t = Token.new_borrow_pos("WCOMMA", t.value, t)
            if codes and t.type in ("INT", "NUMBER") and _ICD9.fullmatch(t.value):
                t = Token.new_borrow_pos("ICD9", t.value, t)
            elif not codes and t.type == "ICD9" and t.value.isdigit():
                t = Token.new_borrow_pos("INT", t.value, t)
            codes = (
                t.type in _CODES_START
                or (t.type == "CMP" and i >= 2 and toks[i - 2].type == "CODESET")
                or (codes and t.type in _CODES_GO_ON)
                or (codes and t.type == "ICD9")
            )
            nots = nots + 1 if t.type == "NOT" else 0
            if nots > limits.MAX_DEPTH:
                raise _too_deep(t)
            if t.type == "_NL":
                if depth > 0 or prev_nl:
                    continue
                filter_depth = None
                prev_nl = True
                yield t
                continue
            prev_nl = False
            if t.type == "LPAR":
                depth += 1
                if depth > limits.MAX_DEPTH:
                    raise _too_deep(t)
            elif t.type == "RPAR":
                depth -= 1
                if filter_depth is not None and depth < filter_depth:
                    filter_depth = None
            elif t.type == "WHERE":
                filter_depth = depth
            elif t.type in _WINDOW_START:
                filter_depth = None
            elif t.type in _FILTER_OF and filter_depth is not None:
                if _starts_comparison(toks, i + 1):
                    t = Token.new_borrow_pos(_FILTER_OF[t.type], t.value, t)
                elif t.type != "NOT":
                    filter_depth = None
            yield t
        if not prev_nl:
            last = toks[-1]
            yield Token.new_borrow_pos("_NL", "\n", last)
