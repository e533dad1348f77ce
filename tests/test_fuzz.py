"""Fuzzing the front door: any text gives a result or a CohortError with line and column,
any JSON gives an IR node or an IRInvalid, each within a time bound.

Inputs are the example cohorts mutated (characters inserted, deleted, duplicated; tokens
spliced from other examples; random unicode; deep nesting) and hypothesis' own texts.
CI runs a few thousand; ANTAL_FUZZ_EXAMPLES=200000 runs that many mutations.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import time
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from antal import engine
from antal.catalog import load_catalog
from antal.engine import ir
from antal.engine.errors import CohortError, IRInvalid

CAT = load_catalog()
EXAMPLES = [p.read_text(encoding="utf-8") for p in sorted(Path("examples").glob("*.cohort"))]
TOKENS = sorted({t for text in EXAMPLES for t in re.findall(r"\S+|\s+", text)})
N = int(os.environ.get("ANTAL_FUZZ_EXAMPLES", "3000"))
# the bound on any one hostile input, in this process's CPU time (normal cohorts take
# milliseconds; a blow-up takes minutes): CPU time, so that a busy machine does not fail it
SECONDS = 5.0
ODD = ["\\x41", "\\N{DASH}", "\\u12", "\r", "\x00", "\\", '"', "(", ")", "not ", "..", "@",
       "9" * 400, "-", ".", "*", "\u00e5", "\u2028", "\ud800", "\n", "#", "=", ",", "0001-01-01",
       "9999-12-31", "2147483647", "1e309", "A00..Z99, "]  # fmt: skip


def _mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        i = rng.randint(0, len(text))
        j = min(len(text), i + rng.randint(0, 20))
        op = rng.randrange(8)
        if op == 0:  # delete
            text = text[:i] + text[j:]
        elif op == 1:  # duplicate a slice
            text = text[:j] + text[i:j] * rng.randint(1, 50) + text[j:]
        elif op == 2:  # splice in a token of any example
            text = text[:i] + rng.choice(TOKENS) + text[i:]
        elif op == 3:  # random characters, any plane
            text = text[:i] + "".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(3)) + text[i:]
        elif op == 4:
            text = text[:i] + rng.choice(ODD) * rng.choice([1, 2, 40, 3000]) + text[i:]
        elif op == 5:  # random ASCII bytes
            text = text[:i] + "".join(chr(rng.randint(0, 127)) for _ in range(4)) + text[i:]
        elif op == 6:  # a line of another example
            lines = rng.choice(EXAMPLES).splitlines()
            text = text[:i] + "\n" + rng.choice(lines) + "\n" + text[i:]
        else:  # swap two slices
            k = rng.randint(0, len(text))
            text = text[:i] + text[k:] + text[i:k] if k > i else text
    return text


def _one_text(text: str) -> str:
    """'ok' or 'error'; anything else (another exception, too slow) fails the test."""
    t = time.process_time()
    try:
        engine.compile_cohort(engine.check(engine.parse(text), CAT), CAT).sql()
        out = "ok"
    except CohortError as e:
        assert e.diagnostics, text
        d = e.diagnostics[0]
        assert d.line >= 1 and d.column >= 1, (repr(text[:200]), e)
        out = "error"
    took = time.process_time() - t
    assert took < SECONDS, (took, repr(text[:200]))
    return out


def _one_json(data: Any) -> str:
    t = time.process_time()
    try:
        node = ir.from_json(data)
        if isinstance(node, ir.Cohort):
            engine.compile_cohort(engine.check(node, CAT), CAT).sql()
        out = "ok"
    except (IRInvalid, CohortError):
        out = "error"
    took = time.process_time() - t
    assert took < SECONDS, (took, repr(data)[:200])
    return out


def test_mutated_examples_give_a_result_or_a_cohort_error() -> None:
    rng = random.Random(int(os.environ.get("ANTAL_FUZZ_SEED", "8")))
    seen = {"ok": 0, "error": 0}
    for _ in range(N):
        seen[_one_text(_mutate(rng, rng.choice(EXAMPLES)))] += 1
    assert seen["ok"] > N // 50 and seen["error"] > N // 2, seen  # both kinds were reached


def _json_mutate(rng: random.Random, data: Any) -> Any:
    """Replace one value somewhere in a JSON tree by a hostile one."""
    data = copy.deepcopy(data)
    paths: list[tuple[Any, Any]] = []
    stack = [data]
    while stack:
        v = stack.pop()
        keys = list(v) if isinstance(v, dict) else range(len(v)) if isinstance(v, list) else []
        for k in keys:
            paths.append((v, k))
            stack.append(v[k])
    hostile = [None, True, 1.5, float("nan"), float("inf"), -(10**30), 10**5000, "", "E11\n",
               "x" * 1000, [], {}, {"kind": "not"}, {"date": "0001-01-01"}, -2147483647, 36526,
               {"kind": "window", "lo": 5, "hi": 1}, [{"kind": "code", "code": "E11"}] * 30000]  # fmt: skip
    for _ in range(rng.randint(1, 3)):
        parent, key = rng.choice(paths)
        parent[key] = (
            rng.choice(hostile) if rng.random() < 0.7 else copy.deepcopy(rng.choice(paths)[0])
        )
    return data


def test_mutated_ir_json_gives_a_node_or_an_ir_invalid_error() -> None:
    rng = random.Random(int(os.environ.get("ANTAL_FUZZ_SEED", "8")))
    bases = [ir.to_json(engine.parse(t)) for t in EXAMPLES]
    seen = {"ok": 0, "error": 0}
    for _ in range(max(200, N // 5)):
        data = _json_mutate(rng, rng.choice(bases))
        # as a server receives it: through JSON text (NaN and Infinity are what Python writes)
        try:
            data = json.loads(json.dumps(data))
        except (ValueError, RecursionError):
            continue  # not JSON text: the HTTP layer refuses it before the engine
        seen[_one_json(data)] += 1
    assert seen["ok"] > 0 and seen["error"] > 0, seen


@settings(max_examples=max(300, N // 10), deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(
        st.one_of(st.sampled_from(TOKENS), st.sampled_from(ODD), st.text(max_size=5)), max_size=40
    )
)
def test_token_soup_gives_a_result_or_a_cohort_error(parts: list[str]) -> None:
    _one_text("".join(parts))


@settings(max_examples=max(300, N // 10), deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(max_size=300))
def test_any_text_gives_a_result_or_a_cohort_error(text: str) -> None:
    _one_text(text)
