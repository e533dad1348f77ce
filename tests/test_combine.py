"""Combining nodes' released counts (antal.privacy.combine): the total, the stated interval
when a node's count is suppressed, and the (1-α) interval's coverage, checked by simulating
the real mechanism (OpenDP's discrete Laplace through `release_attrition`, the
non-increasing post-processing, rounding and suppression) many times on known truths."""

from __future__ import annotations

import math

import numpy as np
import pytest

from antal.api.federation.results import query_view
from antal.api.federation.store import QueryRow, TaskRow
from antal.engine.limits import MAX_CRITERIA
from antal.privacy.combine import (
    GRID,
    MAX_STEPS,
    NodeCount,
    Noise,
    combine,
    discrete_laplace_variance,
    max_mean_moments,
    step_error_moments,
)
from antal.privacy.mechanism import (
    _publish,
    dlap_accuracy,
    noisy_vector,
    release_attrition,
    small_buckets,
)
from antal.privacy.params import PrivacyParams


def _cumulative(counts: tuple[int, ...], p: PrivacyParams) -> tuple[list, float]:
    """The attrition mechanism before issue 23, as older nodes still release it (the
    oracle of their answers): the k steps at scale k/ε, made non-increasing (pool adjacent
    violators), rounded, suppressed, each with the plain noise's interval."""
    k = len(counts)
    scale = k / p.epsilon
    blocks: list[list[float]] = []
    for x in noisy_vector(list(counts), scale):
        blocks.append([float(x), 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            total, n = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += n
    values = [b[0] / b[1] for b in blocks for _ in range(int(b[1]))]
    acc = dlap_accuracy(scale, p.alpha)
    return [_publish(x, acc, p) for x in values], scale


def _small(steps: list, scale: float, p: PrivacyParams) -> list[int]:
    """What the hub reads from a partition answer: its buckets released near 0."""
    c = [s.value or 0 for s in steps]
    buckets = [float(c[i] - c[i + 1]) for i in range(len(c) - 1)] + [float(c[-1])]
    return small_buckets(buckets, scale, p.alpha, p.noise)


def _coverage(
    truths: list[list[int]], p: PrivacyParams, trials: int, mechanism: str = "partition"
) -> tuple[list[float], list[float]]:
    """Per step, the share of trials whose combined interval holds the true total: ours,
    and that of a naive interval (sum ± z·sd of plain discrete Laplace draws)."""
    k = len(truths[0])
    hits, naive_hits = [0] * k, [0] * k
    z = 1.959963984540054
    release = release_attrition if mechanism == "partition" else _cumulative
    for _ in range(trials):
        released = [release(tuple(t), p) for t in truths]
        sd = math.sqrt(sum(p.kind.variance(scale) for _, scale in released))
        for j in range(k):
            counts = [
                NodeCount(f"n{i}", s[j].value,
                          Noise(scale, k, p.rounding, p.threshold, mechanism, p.noise), j,
                          _small(s, scale, p)[j] if mechanism == "partition" else 0)
                for i, (s, scale) in enumerate(released)
            ]  # fmt: skip
            c = combine(counts, p.alpha)
            true = sum(t[j] for t in truths)
            hits[j] += c.low <= true <= c.high
            naive_hits[j] += c.total_low - z * sd <= true <= c.total_high + z * sd
    return [h / trials for h in hits], [h / trials for h in naive_hits]


def _floor(trials: int) -> float:
    """95% less three standard errors of a share estimated from `trials` draws."""
    return 0.95 - 3 * math.sqrt(0.95 * 0.05 / trials)


def test_discrete_laplace_variance_matches_opendps_noise() -> None:
    for scale in (1.0, 2.0, 6.0):
        draws = np.array(noisy_vector([0] * 40_000, scale))
        assert draws.var() == pytest.approx(discrete_laplace_variance(scale), rel=0.05)


def test_last_step_upper_error_is_the_plain_draw() -> None:
    # for the last step the upper bound of the error is the draw itself: mean 0, DL variance
    m_u, v_u, m_l, _ = step_error_moments(6.0, 3, 2)
    assert abs(m_u) < 0.1 and v_u == pytest.approx(discrete_laplace_variance(6.0), rel=0.03)
    # the lower bound pools with the steps before: biased down, never above the draw
    assert m_l < -1.0


DESIGNS = [
    pytest.param([[1000] * 5] * 5, id="five flat attritions"),  # empty buckets: the worst case
    pytest.param([[1000, 500, 200, 100, 50]] * 5, id="five steep attritions"),
    pytest.param([[30, 12, 12], [8, 8, 3], [200, 150, 150]], id="small counts, suppressed"),
]


@pytest.mark.parametrize("truths", DESIGNS)
def test_combined_intervals_cover_the_true_total(truths: list[list[int]]) -> None:
    p = PrivacyParams(epsilon=0.5, threshold=10)
    ours, _naive = _coverage(truths, p, 300)
    assert min(ours) >= _floor(300), ours  # every step


@pytest.mark.parametrize("truths", DESIGNS)
def test_gaussian_nodes_are_combined_and_cover_too(truths: list[list[int]]) -> None:
    """Nodes that release under zCDP (discrete Gaussian buckets, issue 23): the hub's
    interval uses the Gaussian's variance and positive-part mean."""
    p = PrivacyParams(noise="gaussian", threshold=10)
    ours, _naive = _coverage(truths, p, 300)
    assert min(ours) >= _floor(300), ours


@pytest.mark.parametrize("truths", DESIGNS)
def test_older_nodes_cumulative_answers_are_combined_and_cover_too(truths: list[list[int]]) -> None:
    p = PrivacyParams(epsilon=0.5, threshold=10)
    ours, _naive = _coverage(truths, p, 300, "cumulative")
    assert min(ours) >= _floor(300), ours


def test_plain_laplace_variance_would_under_cover_a_flat_cumulative_attrition() -> None:
    """Why an older node's post-processing is accounted for: without it, the last step of
    5 nodes' flat 5-step attritions is covered about 90% of the time, not 95% (pooling with
    the steps before biases it down)."""
    p = PrivacyParams(epsilon=0.5, threshold=10)
    ours, naive = _coverage([[1000] * 5] * 5, p, 1000, "cumulative")
    assert naive[-1] < 0.935 and ours[-1] >= _floor(1000), (naive, ours)


def test_empty_buckets_bias_a_partition_up_and_the_interval_allows_for_it() -> None:
    """A criterion that removes nobody is a bucket released as max(0, e): biased up by
    E[max(0, e)]. Five flat nodes: the index step adds up 5 such buckets per node."""
    p = PrivacyParams(epsilon=0.5, threshold=10)
    ours, naive = _coverage([[1000] * 5] * 5, p, 1000)
    assert naive[0] < 0.9 and ours[0] >= _floor(1000), (naive, ours)


def test_mii_parameters_rounding_to_ten_cover_too() -> None:
    # MII's feasibility sites: Laplace ε 0.5 and rounding to 10
    p = PrivacyParams(epsilon=0.5, threshold=10, rounding=10)
    truths = [[25, 14, 9, 3], [500, 300, 300, 100], [60, 40, 20, 20]]
    for mechanism in ("partition", "cumulative"):
        ours, _ = _coverage(truths, p, 300, mechanism)
        assert min(ours) >= _floor(300), (mechanism, ours)


def test_a_suppressed_node_makes_the_total_an_interval() -> None:
    exact = Noise(scale=0.0, steps=1, rounding=1, threshold=10)
    c = combine([NodeCount("a", 120, exact, 0), NodeCount("b", None, exact, 0),
                 NodeCount("c", 40, exact, 0)])  # fmt: skip
    # b shows <10: it holds 0..9, so the total is 160..169, stated as such
    assert (c.total_low, c.total_high, c.low, c.high) == (160, 169, 160, 169)
    assert c.is_interval and c.shown() == "160–169" and c.suppressed == 1
    assert c.to_json()["total"] is None and c.to_json()["total_range"] == [160, 169]
    # the fields of a released count elsewhere in antal: no single number, the interval
    assert {k: c.to_json()[k] for k in ("count", "lower", "upper", "display")} == {
        "count": None,
        "lower": 160,
        "upper": 169,
        "display": "160–169",
    }
    whole = combine([NodeCount("a", 120, exact, 0), NodeCount("c", 40, exact, 0)])
    assert (
        not whole.is_interval and whole.shown() == "160" and (whole.low, whole.high) == (160, 160)
    )


def test_rounding_is_added_as_a_bound_not_as_noise() -> None:
    r10 = Noise(scale=0.0, steps=1, rounding=10, threshold=0)
    c = combine([NodeCount(n, 100, r10, 0) for n in "abc"])
    # each released 100 is a true count of 95..105: the total is within 285..315
    assert (c.total_low, c.low, c.high) == (300, 285, 315)


def test_bad_inputs_are_errors() -> None:
    with pytest.raises(ValueError, match="step 3 of an attrition of 3"):
        NodeCount("a", 1, Noise(1.0, 3), 3)
    with pytest.raises(ValueError, match="not negative"):
        NodeCount("a", -1, Noise(1.0, 1), 0)
    with pytest.raises(ValueError, match="finite"):
        Noise(float("nan"), 1)
    with pytest.raises(ValueError, match="alpha"):
        combine([], alpha=0)


# ---- the hub's view of a query (no processes: its rules on given answers) ---------------------


def _answer(counts: list[int | None], threshold: int = 10) -> dict:
    steps = [{"label": f"s{i}", "count": c, "low": c, "high": c} for i, c in enumerate(counts)]
    return {"steps": steps, "threshold": threshold, "rounding": 1, "epsilon": 1000.0,
            "alpha": 0.05, "scale": len(counts) / 1000.0, "release": "r", "stored": False,
            "query_hash": "a" * 64, "answer_key": "b" * 64, "epsilon_charged": 0.0}  # fmt: skip


def _task(node: str, state: str, answer: dict | None = None, code: str | None = None) -> TaskRow:
    return TaskRow("q1", node, state, 1, 1.0, 2.0 if state != "pending" else None,  # type: ignore[arg-type]
                   answer, code, "why" if code else None)  # fmt: skip


Q = QueryRow("q1", "nat", "anna", "t", "cohort", "h" * 64, ("npr",), 0.0, 100.0)


def test_view_shows_per_node_counts_only_when_enough_nodes_are_above_the_threshold() -> None:
    tasks = [_task("a", "succeeded", _answer([500, 300])), _task("b", "succeeded", _answer([90, None])),
             _task("c", "succeeded", _answer([400, 200]))]  # fmt: skip
    v = query_view(Q, tasks, min_nodes_shown=3, at=50.0)
    assert v["complete"] and not v["per_node_counts"] and "count" not in v["nodes"][0]
    assert v["total"]["total"] is None and v["total"]["total_range"] == [500, 509]
    assert v["total"]["lower_bound"] is False
    assert [s["total_range"] for s in v["attrition"]] == [[990, 990], [500, 509]]
    shown = query_view(Q, tasks, min_nodes_shown=2, at=50.0)
    assert [n["count"] for n in shown["nodes"]] == [300, "<10", 200]


def test_view_labels_missing_nodes_and_times_them_out_at_the_deadline() -> None:
    tasks = [
        _task("a", "succeeded", _answer([500, 300])),
        _task("b", "running"),
        _task("c", "refused", code="budget_exceeded"),
        _task("d", "pending"),
    ]
    # a network without per-node secrecy (N = 1): every total is shown
    before = query_view(Q, tasks, min_nodes_shown=1, at=50.0)
    assert [n["status"] for n in before["nodes"]] == ["succeeded", "running", "refused", "pending"]
    assert before["missing"] == ["b", "c", "d"] and before["total"]["lower_bound"]
    assert not before["complete"] and not before["past_deadline"]
    after = query_view(Q, tasks, min_nodes_shown=1, at=150.0)
    assert [n["status"] for n in after["nodes"]] == [
        "succeeded",
        "timed_out",
        "refused",
        "timed_out",
    ]
    assert after["nodes"][2]["error"] == {"code": "budget_exceeded", "message": "why"}
    assert after["total"]["total"] == 300 and after["past_deadline"]
    # with the network's rule (N = 3) one node's answer is its own count: no total
    secret = query_view(Q, tasks, min_nodes_shown=3, at=150.0)
    assert secret["total"] is None and secret["attrition"] == []
    assert "at least 3 nodes" in secret["total_note"]


# ---- per-node secrecy however the nodes are chosen (issue 22, item 3) ---------------------------


def _answers(*nodes: str, state: str = "succeeded") -> list[TaskRow]:
    return [_task(n, state, _answer([500 + i, 300 + i]) if state == "succeeded" else None)
            for i, n in enumerate(nodes)]  # fmt: skip


def test_a_total_of_fewer_nodes_than_the_rule_is_never_shown() -> None:
    """The attack: `nodes: ["region2"]` returned that node's count as the total."""
    one = query_view(Q, _answers("b"), min_nodes_shown=3, at=50.0)
    assert one["complete"] and one["total"] is None and one["attrition"] == []
    assert "count" not in one["nodes"][0] and one["nodes"][0]["in_total"] is False
    three = query_view(Q, _answers("a", "b", "c"), min_nodes_shown=3, at=50.0)
    assert three["total"]["total"] == 300 + 301 + 302


def test_no_two_totals_of_a_cohort_differ_by_fewer_nodes_than_the_rule() -> None:
    """Asking {a,b,c,d} and then {a,b,c} would give d's count by difference."""
    four = frozenset("abcd")
    v = query_view(Q, _answers("a", "b", "c"), min_nodes_shown=3, at=50.0, shown_before=[four])
    assert v["total"] is None and "differ" in v["total_note"]
    far = query_view(Q, _answers("e", "f", "g"), min_nodes_shown=3, at=50.0, shown_before=[four])
    assert far["total"]["over_nodes"] == ["e", "f", "g"]  # 7 nodes apart: shown
    same = query_view(Q, _answers(*"abcd"), min_nodes_shown=3, at=50.0, shown_before=[four])
    assert same["total"]["over_nodes"] == list("abcd")  # the same set again: shown


def test_a_partial_total_waits_unless_enough_nodes_are_still_missing() -> None:
    tasks = [*_answers("a", "b", "c"), _task("d", "running")]
    waiting = query_view(Q, tasks, min_nodes_shown=3, at=50.0)
    assert waiting["total"] is None and "waiting" in waiting["total_note"]
    # past the deadline the partial total is shown; a late answer then is not added to it
    late = query_view(Q, tasks, min_nodes_shown=3, at=150.0)
    assert late["total"]["over_nodes"] == ["a", "b", "c"] and late["total"]["lower_bound"]
    shown = [frozenset(late["total"]["over_nodes"])]
    after = query_view(Q, _answers(*"abcd"), min_nodes_shown=3, at=160.0, shown_before=shown)
    assert after["total"]["over_nodes"] == ["a", "b", "c"] and after["total"]["lower_bound"]
    assert "d are not added" in after["total_note"]
    assert [n["in_total"] for n in after["nodes"]] == [True, True, True, False]
    # enough nodes still missing: the partial total is shown before the deadline
    many = [*_answers("a", "b", "c"), *(_task(n, "pending") for n in "defg")]
    assert query_view(Q, many, min_nodes_shown=3, at=50.0)["total"]["over_nodes"] == list("abc")


def test_the_hub_shows_its_own_labels_never_a_nodes() -> None:
    v = query_view(Q, _answers("a", "b", "c"), min_nodes_shown=3, at=50.0,
                   labels=("Index", "Adults"))  # fmt: skip
    assert [s["label"] for s in v["attrition"]] == ["Index", "Adults"]
    assert all("stored_answer" not in n for n in v["nodes"])  # a local project's fact


# ---- the moments' table (issue 22, item 2: no simulation per view) -------------------------------


def _simulated(scale: float, steps: int, step: int) -> tuple[float, float, float, float]:
    """The oracle: the bounds U and L of the error simulated from the mechanism's definition
    (every step's draw, the running means over the tail and the head), not from the table."""
    rng = np.random.default_rng([7, steps, step, round(scale * 1e3)])
    p = -math.expm1(-1.0 / scale)
    e = (rng.geometric(p, (100_000, steps)) - rng.geometric(p, (100_000, steps))).astype(float)
    tail = e[:, step:]
    upper = (np.cumsum(tail, axis=1) / np.arange(1, tail.shape[1] + 1)).max(axis=1)
    head = e[:, : step + 1][:, ::-1]
    lower = (np.cumsum(head, axis=1) / np.arange(1, head.shape[1] + 1)).min(axis=1)
    return upper.mean(), upper.var(), lower.mean(), lower.var()


@pytest.mark.parametrize(
    ("scale", "steps", "step"),
    [(0.37, 2, 0), (2.71, 5, 2), (13.3, 7, 0), (13.3, 7, 6), (123.4, 12, 5), (9000.0, 3, 1)],
)
def test_tabulated_moments_match_a_simulation_of_the_mechanism(
    scale: float, steps: int, step: int
) -> None:
    """Off the grid (interpolated) and beyond it (clamped), within 2% of the noise's sd."""
    sd = math.sqrt(discrete_laplace_variance(scale))
    got, want = step_error_moments(scale, steps, step), _simulated(scale, steps, step)
    for g, w in ((got[0], want[0]), (got[2], want[2])):
        assert abs(g - w) <= 0.02 * sd, (got, want)
    for g, w in ((got[1], want[1]), (got[3], want[3])):
        assert g == pytest.approx(w, rel=0.05), (got, want)


def test_the_shipped_table_is_what_build_table_makes() -> None:
    """One grid column simulated again (fixed seed): the file is the code's output."""
    import json

    from antal.privacy.combine import _TABLE_FILE

    body = json.loads(_TABLE_FILE.read_text(encoding="utf-8"))
    assert MAX_STEPS == MAX_CRITERIA + 1 == body["max_steps"]
    assert [r["scale"] for r in body["grid"]] == list(GRID)
    row = body["grid"][40]
    sd = math.sqrt(discrete_laplace_variance(row["scale"]))
    mean, var = max_mean_moments(row["scale"])
    assert row["mean"] == pytest.approx([x / sd for x in mean], rel=1e-5, abs=1e-9)
    assert row["var"] == pytest.approx([x / sd**2 for x in var], rel=1e-5, abs=1e-9)
