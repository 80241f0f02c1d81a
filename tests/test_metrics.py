"""Tests of ``hybridrec.metrics`` against brute-force numpy references and hand-computed values.

The reference ranks each user's candidates with a Python sort by (score desc, tie order) and
computes every metric from its definition; AUC compares every (relevant, negative) pair. Scores
come from a small set of values in half the examples, so ties are frequent. With
``ties="index"`` the tie order is the item index; the default, expected ties, is checked against
the average of the reference over every order of the tied items.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridrec import metrics as M

AT_K = ("ndcg", "recall", "precision", "hit_rate", "map")


# --------------------------------------------------------------------------- reference
def reference_user(
    scores, relevant, exclude=(), k=10, mask=None, collie=False, order=None, popularity=None
):
    """Brute-force metrics of one user; see the definitions in ``hybridrec.metrics``.

    Ties are ordered by ``order[item]`` (default: the item index)."""
    n = len(scores)
    order = np.arange(n) if order is None else order
    rel = sorted(int(i) for i in relevant if i >= 0)
    cand = np.ones(n, bool)
    if not collie:
        for e in exclude:
            if e >= 0:
                cand[e] = False
    if mask is not None:
        cand &= mask
    cand[rel] = True
    items = sorted(np.flatnonzero(cand), key=lambda i: (-float(scores[i]), order[i]))
    rank = {int(i): p + 1 for p, i in enumerate(items)}
    ranks = sorted(rank[i] for i in rel)
    nrel = len(rel)
    hits = [r for r in ranks if r <= k]
    dcg = sum(1 / np.log2(r + 1) for r in hits)
    idcg = sum(1 / np.log2(j + 1) for j in range(1, min(nrel, k) + 1))
    negatives = [j for j in items if j not in rel]
    values = np.asarray(scores, np.float32)
    if collie:
        values = (1 / (1 + np.exp(-values.astype(np.float64)))).astype(np.float32)
    pairs = [
        1.0 if values[i] > values[j] else 0.5 if values[i] == values[j] else 0.0
        for i in rel
        for j in negatives
    ]
    auc = float(np.mean(pairs)) if pairs else (0.0 if collie else 0.5)
    return {
        "ndcg": dcg / idcg,
        "recall": len(hits) / nrel,
        "precision": len(hits) / k,
        "hit_rate": float(bool(hits)),
        "map": sum((i + 1) / r for i, r in enumerate(hits)) / min(nrel, k),
        "mrr": 1 / ranks[0],
        "auc": auc,
        "popularity": 0.0 if popularity is None else float(np.mean(popularity[items[:k]])),
        "topk": [int(i) for i in items[:k]],
        "num_candidates": len(items),
    }


def tie_orders(scores):
    """Every order of the items that keeps scores descending: one (n,) rank array per order."""
    values = np.where(scores == 0, 0.0, scores)  # -0.0 ties with 0.0
    groups = [np.flatnonzero(values == v) for v in np.unique(values)]
    for perms in itertools.product(*(itertools.permutations(g) for g in groups)):
        order = np.zeros(len(scores), np.int64)
        for perm in perms:
            order[list(perm)] = np.arange(len(perm))
        yield order


def expected_reference(scores, relevant, exclude=(), k=10, **kw):
    """``reference_user`` averaged over every order of the tied items (all permutations)."""
    names = ("ndcg", "recall", "precision", "hit_rate", "map", "mrr", "auc", "popularity")
    runs = [
        reference_user(scores, relevant, exclude, k, order=order, **kw)
        for order in tie_orders(scores)
    ]
    return {name: float(np.mean([r[name] for r in runs])) for name in names}


# --------------------------------------------------------------------------- random batches
@st.composite
def batches(draw, b=4, n=23, r=6, e=6, with_mask=False):
    """A batch with distinct relevant items per row (1..r), exclusions that may overlap them."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    if draw(st.booleans()):
        scores = rng.integers(-2, 3, size=(b, n)).astype(np.float32)  # many ties, zeros
        scores[rng.random((b, n)) < 0.2] *= -1.0  # and some -0.0
    else:
        scores = rng.normal(size=(b, n)).astype(np.float32)
    relevant = np.full((b, r), -1, np.int32)
    exclude = np.full((b, e), -1, np.int32)
    for row in range(b):
        nr = int(rng.integers(1, r + 1))
        perm = rng.permutation(n)
        relevant[row, :nr] = rng.permutation(perm[:nr])
        ne = int(rng.integers(0, e + 1))
        pool = perm[nr - 1 :] if rng.random() < 0.3 else perm[nr:]  # sometimes hits a relevant one
        exclude[row, :ne] = pool[:ne]
    mask = None
    if with_mask:
        mask = rng.random(n) < 0.6
    return scores, relevant, exclude, mask


def _check_against_reference(out, stats, scores, relevant, exclude, ks, mask=None):
    for row in range(scores.shape[0]):
        for k in ks:
            ref = reference_user(scores[row], relevant[row], exclude[row], k=k, mask=mask)
            for name in AT_K:
                np.testing.assert_allclose(
                    out[f"{name}@{k}"][row], ref[name], atol=1e-6, err_msg=name
                )
        np.testing.assert_allclose(out["mrr"][row], ref["mrr"], rtol=1e-6)
        np.testing.assert_allclose(out["auc"][row], ref["auc"], atol=1e-6)
        top = np.asarray(stats["topk_items"][row])
        kk = max(ks)
        assert (
            top[top >= 0].tolist()
            == reference_user(scores[row], relevant[row], exclude[row], k=kk, mask=mask)["topk"]
        )
        assert int(stats["num_candidates"][row]) == ref["num_candidates"]


@functools.cache
def _jitted(ks, block_size, with_mask, ties="index"):
    def f(scores, relevant, exclude, mask):
        stats = M.ranking_stats(
            scores,
            relevant,
            exclude,
            k=max(ks),
            candidate_mask=mask if with_mask else None,
            ties=ties,
            block_size=block_size,
        )
        out = M.metrics_from_stats(
            stats, ks=ks, metrics=("ndcg", "recall", "precision", "hit_rate", "map", "mrr", "auc")
        )
        return out, stats

    return jax.jit(f)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(with_mask=False))
def test_metrics_match_reference_with_ties_and_k_beyond_catalogue(batch):
    scores, relevant, exclude, _ = batch
    ks = (1, 5, 30)  # 30 > N = 23
    out, stats = _jitted(ks, 128, False)(scores, relevant, exclude, np.ones(1, bool))
    _check_against_reference(out, stats, scores, relevant, exclude, ks)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(n=64, r=7, e=9, with_mask=True))
def test_two_stage_top_k_and_candidate_mask_match_reference(batch):
    scores, relevant, exclude, mask = batch
    ks = (3, 5)  # 4 * 5 * block 2 <= 64: the block path runs
    out, stats = _jitted(ks, 2, True)(scores, relevant, exclude, mask)
    _check_against_reference(out, stats, scores, relevant, exclude, ks, mask=mask)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(n=40, r=9, e=5))
def test_collie_statistics_match_reference(batch):
    scores, relevant, exclude, _ = batch
    # On a 1/64 grid distinct scores have clearly distinct float32 sigmoids, so the numpy
    # reference sigmoid and XLA's (which may differ in the last bit) order them alike.
    scores = np.round(scores * 64) / 64
    f = _jitted_collie()
    out = f(scores, relevant, exclude)
    for row in range(scores.shape[0]):
        ref = reference_user(scores[row], relevant[row], k=4, collie=True)
        np.testing.assert_allclose(out["collie_map@4"][row], ref["map"], atol=1e-6)
        np.testing.assert_allclose(out["collie_mrr"][row], ref["mrr"], rtol=1e-6)
        np.testing.assert_allclose(out["collie_auc"][row], ref["auc"], atol=1e-6)
        filt = reference_user(scores[row], relevant[row], exclude[row], k=4)
        np.testing.assert_allclose(out["map@4"][row], filt["map"], atol=1e-6)


@functools.cache
def _jitted_collie():
    return jax.jit(
        functools.partial(
            M.ranking_metrics,
            ks=(4,),
            metrics=("map", "mrr"),
            collie=True,
            ties="index",
            block_size=2,
        )
    )


# --------------------------------------------------------------------------- Collie by hand
@functools.cache
def _rm(ks, metrics, collie=False):
    """``ranking_metrics`` jitted once per configuration (eager dispatch is far slower)."""
    return jax.jit(functools.partial(M.ranking_metrics, ks=ks, metrics=metrics, collie=collie))


def test_collie_hand_built_case():
    # 6 items; test items {1, 4}; training item 0 scores highest.
    scores = np.array([[0.9, 0.8, 0.1, 0.7, 0.6, 0.2]], np.float32)
    relevant = np.array([[1, 4]])
    exclude = np.array([[0]])
    out = _rm((3,), ("map", "mrr", "auc"), True)(scores, relevant, exclude)
    # Unfiltered order 0, 1, 3, 4, 5, 2: first hit at 2; AP@3 = (1/2) / min(3, 2).
    assert out["collie_map@3"][0] == pytest.approx(0.25)
    assert out["collie_mrr"][0] == pytest.approx(0.5)
    # sigmoid keeps the order: item 1 beats 2, 3, 5 (3 of 4 negatives), item 4 beats 2, 5.
    assert out["collie_auc"][0] == pytest.approx(5 / 8)
    # Filtered (item 0 removed): order 1, 3, 4, 5, 2: AP@3 = (1/1 + 2/3) / 2.
    assert out["map@3"][0] == pytest.approx((1 + 2 / 3) / 2)
    assert out["mrr"][0] == pytest.approx(1.0)
    assert out["auc"][0] == pytest.approx(5 / 6)


def test_collie_auc_uses_sigmoid_so_large_scores_tie():
    # sigmoid(20) and sigmoid(30) are both 1.0 in float32: Collie's AUC sees a tie.
    scores = np.array([[20.0, 30.0, 0.0]], np.float32)
    out = _rm((1,), ("auc",), True)(scores, np.array([[0]]))
    assert out["auc"][0] == pytest.approx(0.5)  # raw scores: below item 1, above item 2
    assert out["collie_auc"][0] == pytest.approx(0.75)  # (tie 0.5 + win 1) / 2


def test_map_divides_by_min_k_and_relevant_count():
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0, 0.5]], np.float32)
    relevant = np.array([[0, 1, 3, 4, 5]])  # five relevant, top two are hits
    out = _rm((2,), ("map",), True)(scores, relevant)
    assert out["map@2"][0] == pytest.approx(1.0)
    assert out["collie_map@2"][0] == pytest.approx(1.0)


def test_user_whose_every_item_is_relevant():
    scores = np.array([[0.3, 0.1, 0.2]], np.float32)
    out = _rm((2,), ("auc", "recall"), True)(scores, np.array([[0, 1, 2]]))
    assert out["auc"][0] == 0.5  # no negatives: defined as chance
    assert out["collie_auc"][0] == 0.0  # what torchmetrics' AUROC returns without negatives
    assert out["recall@2"][0] == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- small pieces
def test_ndcg_and_average_precision_by_hand():
    @jax.jit
    def pieces(hits, n, first_rank):
        return (
            M.ndcg_at_k(hits, n, 4),
            M.average_precision_at_k(hits, n, 4),
            M.precision_at_k(hits, 4),
            M.recall_at_k(hits, n, 2),
            M.hit_rate_at_k(hits, 1),
            M.reciprocal_rank(first_rank),
        )

    hits = jnp.array([[False, True, False, True]])
    ndcg, ap, precision, recall, hit_rate, rr = pieces(hits, jnp.array([3]), jnp.array([4, 0]))
    dcg = 1 / np.log2(3) + 1 / np.log2(5)
    idcg = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert float(ndcg[0]) == pytest.approx(dcg / idcg, rel=1e-6)
    assert float(ap[0]) == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert float(precision[0]) == 0.5
    assert float(recall[0]) == pytest.approx(1 / 3)
    assert float(hit_rate[0]) == 0.0
    assert rr.tolist() == [0.25, 0.0]


def test_rows_without_relevant_items_give_zeros():
    scores = np.random.default_rng(0).normal(size=(2, 8)).astype(np.float32)
    out = _rm((3,), ("ndcg", "recall", "precision", "hit_rate", "map", "mrr", "auc"), True)(
        scores, np.array([[-1, -1], [3, -1]])
    )
    for name, value in out.items():
        assert float(value[0]) == 0.0, name


def test_top_k_items_breaks_ties_by_index_and_treats_negative_zero_as_zero():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 3, size=(5, 400)).astype(np.float32)
    scores[:, 7] = -0.0
    scores[0] = 0.0
    scores[0, ::3] = -0.0
    f = jax.jit(lambda s: M.top_k_items(s, 12, block_size=8))
    values, ids = f(scores)
    for row in range(5):
        ref = sorted(range(400), key=lambda i: (-float(scores[row, i]), i))[:12]
        assert np.asarray(ids[row]).tolist() == ref
    assert np.asarray(ids[0]).tolist() == list(range(12))


def test_non_finite_scores_are_flagged_per_row():
    scores = np.zeros((3, 5), np.float32)
    scores[1, 2] = np.nan
    scores[2, 0] = -np.inf
    stats = jax.jit(functools.partial(M.ranking_stats, k=2))(scores, np.array([[0], [1], [2]]))
    assert np.asarray(stats["finite"]).tolist() == [True, False, False]


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(M.MetricsError, match="unknown metric"):
        M.ranking_metrics(np.zeros((1, 3)), np.array([[0]]), metrics=("ndgc",))
    with pytest.raises(M.MetricsError, match="positive ints"):
        M.ranking_metrics(np.zeros((1, 3)), np.array([[0]]), ks=(0,))
    with pytest.raises(M.MetricsError, match=r"relevant must be \(B, R\)"):
        M.ranking_stats(np.zeros((2, 3)), np.array([0, 1]), k=1)
    with pytest.raises(M.MetricsError, match="candidate_mask"):
        M.ranking_stats(np.zeros((1, 3)), np.array([[0]]), k=1, candidate_mask=np.ones(4, bool))
    with pytest.raises(M.MetricsError, match="ties must be"):
        M.ranking_stats(np.zeros((1, 3)), np.array([[0]]), k=1, ties="random")


def test_rating_metrics_by_hand_and_errors():
    out = M.rating_metrics(np.array([3.0, 4.0, 5.0]), np.array([4.0, 4.0, 3.0]))
    assert out["rmse"] == pytest.approx(np.sqrt(5 / 3))
    assert out["mae"] == pytest.approx(1.0)
    with pytest.raises(M.MetricsError, match="shape"):
        M.rating_metrics(np.zeros(2), np.zeros(3))
    with pytest.raises(M.MetricsError, match="nan at position 1"):
        M.rating_metrics(np.array([1.0, np.nan]), np.zeros(2))


def test_sigmoid_tie_bounds_are_the_exact_preimage_interval():
    t = np.array([[20.0, -110.0, 0.0, 0.5, 16.5, -3.0, 1e-8, np.inf]], np.float32)
    upper, lower = jax.jit(M._sigmoid_tie_bounds)(t)
    sigmoid = jax.jit(jax.nn.sigmoid)
    target = np.asarray(sigmoid(t[:, :-1]))
    up, lo = np.asarray(upper)[:, :-1], np.asarray(lower)[:, :-1]
    big = np.finfo(np.float32).max
    assert np.all(np.asarray(sigmoid(up)) == target) and np.all(np.asarray(sigmoid(lo)) == target)
    with np.errstate(over="ignore"):
        beyond_up = np.nextafter(up, np.float32(np.inf))
        beyond_lo = np.nextafter(lo, np.float32(-np.inf))
    assert np.all((np.asarray(sigmoid(beyond_up)) != target) | (up == big))
    assert np.all((np.asarray(sigmoid(beyond_lo)) != target) | (lo == -big))
    assert up[0, 0] == big and 16 < lo[0, 0] < 17  # sigmoid is 1.0 from about 16.6 on
    assert np.asarray(upper)[0, -1] == np.inf  # padding stays padding


def test_collie_auc_on_raw_scores_when_sigmoid_is_off():
    # Scores whose sigmoids all round to 1.0: with collie_sigmoid=False they are ranked as is.
    scores = np.array([[30.0, 20.0, 25.0, 18.0, 40.0], [1.0, 2.0, 2.0, 0.0, 3.0]], np.float32)
    relevant = np.array([[0, -1], [1, 3]])
    exclude = np.array([[4, -1], [2, -1]])
    f = jax.jit(
        functools.partial(
            M.ranking_metrics, ks=(2,), metrics=("auc",), collie=True, collie_sigmoid=False
        )
    )
    out = f(scores, relevant, exclude)
    # Row 0: 30 beats 20, 25, 18 and loses to 40 (a training item Collie keeps): 3/4; filtered
    # (40 removed): 1. Row 1: item 1 (2.0) beats item 0, ties item 2, loses to item 4; item 3
    # (0.0) loses to all three: 1.5 / 6; filtered (item 2 removed): 1 / 4.
    assert np.asarray(out["collie_auc"]).tolist() == pytest.approx([0.75, 1.5 / 6])
    assert np.asarray(out["auc"]).tolist() == pytest.approx([1.0, 1.0 / 4])


# --------------------------------------------------------------------------- expected ties
ALL = ("ndcg", "recall", "precision", "hit_rate", "map", "mrr", "auc", "popularity")


@functools.cache
def _expected_fn(ks, with_mask):
    def f(scores, relevant, exclude, mask, popularity):
        return M.ranking_metrics(
            scores,
            relevant,
            exclude,
            ks=ks,
            metrics=ALL,
            candidate_mask=mask if with_mask else None,
            collie=True,
            item_popularity=popularity,
            block_size=2,
        )

    return jax.jit(f)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(b=3, n=7, r=4, e=3, with_mask=True), st.booleans())
def test_expected_ties_equal_the_average_over_every_tie_order(batch, with_mask):
    # Both conventions, every metric, cut-offs below, at and beyond the catalogue, against the
    # reference averaged over all orders of the tied items.
    scores, relevant, exclude, mask = batch
    mask = mask if with_mask else None
    popularity = np.random.default_rng(int(scores.sum() * 7) % 100).random(7).astype(np.float32)
    ks = (1, 3, 9)
    out = _expected_fn(ks, with_mask)(
        scores, relevant, exclude, mask if with_mask else np.ones(1, bool), popularity
    )
    for row in range(scores.shape[0]):
        for k in ks:
            ref = expected_reference(
                scores[row], relevant[row], exclude[row], k, mask=mask, popularity=popularity
            )
            col = expected_reference(scores[row], relevant[row], (), k, mask=mask, collie=True)
            for name in ("ndcg", "recall", "precision", "hit_rate", "map", "popularity"):
                np.testing.assert_allclose(
                    out[f"{name}@{k}"][row], ref[name], atol=2e-6, err_msg=f"{name}@{k}"
                )
            np.testing.assert_allclose(out[f"collie_map@{k}"][row], col["map"], atol=2e-6)
        np.testing.assert_allclose(out["mrr"][row], ref["mrr"], atol=2e-6)
        np.testing.assert_allclose(out["auc"][row], ref["auc"], atol=2e-6)
        np.testing.assert_allclose(out["collie_mrr"][row], col["mrr"], atol=2e-6)
        np.testing.assert_allclose(out["collie_auc"][row], col["auc"], atol=2e-6)


def test_expected_ties_by_hand():
    # Row 0: all 6 items tied, item 2 relevant. Row 1: items 1 and 4 relevant, tied with 0 and
    # 5 at the top (score 1); items 2 and 3 below (score 0).
    scores = np.array([[0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 1, 1]], np.float32)
    relevant = np.array([[2, -1], [1, 4]])
    out = _rm((1, 3), ALL[:-1])(scores, relevant)
    disc = 1 / np.log2(np.arange(2, 5))
    # Row 0: each rank 1..6 equally likely.
    assert out["ndcg@3"][0] == pytest.approx(disc[:3].sum() / 6, rel=1e-6)
    assert out["hit_rate@3"][0] == pytest.approx(0.5)
    assert out["precision@3"][0] == pytest.approx(0.5 / 3)  # E[hits@3] = 3 / 6
    assert out["map@3"][0] == pytest.approx((1 + 1 / 2 + 1 / 3) / 6, rel=1e-6)
    assert out["mrr"][0] == pytest.approx(sum(1 / r for r in range(1, 7)) / 6, rel=1e-6)
    assert out["auc"][0] == pytest.approx(0.5)
    # Row 1: 2 relevant among 4 tied slots. P(first relevant at slot j) = C(3 - j, 1) / C(4, 2):
    # 3/6, 2/6, 1/6, so E[1 / rank] = 3/6 + (2/6) / 2 + (1/6) / 3 = 13/18; P(hit@1) = 1/2; the
    # top 3 miss both only if both are in slot 4: impossible, so hit_rate@3 = 1.
    assert out["mrr"][1] == pytest.approx(13 / 18, rel=1e-6)
    assert out["hit_rate@1"][1] == pytest.approx(0.5)
    assert out["hit_rate@3"][1] == pytest.approx(1.0)
    assert out["recall@3"][1] == pytest.approx(3 * (2 / 4) / 2)
    # AP@3: slot j holds a relevant item w.p. 1/2, with 1 + j/3 relevant items up to it.
    ap = sum(0.5 * (1 + j / 3) / (j + 1) for j in range(3)) / 2
    assert out["map@3"][1] == pytest.approx(ap, rel=1e-6)
    assert out["auc"][1] == pytest.approx(0.75)  # each beats 2 and 3, ties 0 and 5
    idcg = disc[0] + disc[1]
    assert out["ndcg@3"][1] == pytest.approx(0.5 * disc[:3].sum() / idcg, rel=1e-6)


def test_index_ties_depend_on_the_order_expected_ties_do_not():
    # One relevant item tied with 99 others: by index it is first or last; expected: between.
    scores = np.zeros((2, 100), np.float32)
    relevant = np.array([[0], [99]])
    ordered = jax.jit(functools.partial(M.ranking_metrics, ks=(10,), ties="index"))
    by_index = ordered(scores, relevant)
    assert np.asarray(by_index["ndcg@10"]).tolist() == pytest.approx([1.0, 0.0])
    expected = _rm((10,), ("ndcg", "mrr"))(scores, relevant)
    disc = 1 / np.log2(np.arange(2, 12))
    assert np.asarray(expected["ndcg@10"]).tolist() == pytest.approx([disc.sum() / 100] * 2)
    harmonic = sum(1 / r for r in range(1, 101)) / 100
    assert np.asarray(expected["mrr"]).tolist() == pytest.approx([harmonic] * 2, rel=1e-6)


def test_expected_reciprocal_rank_is_accurate_for_large_tie_groups():
    # (start, size, relevant) against a float64 sum; log-factorials reach ~1.8e5 here.
    from math import exp, lgamma

    cases = [(1, 20000, 1), (1, 20000, 2), (5, 15000, 7), (300, 19000, 40), (1, 20000, 1000)]
    start, size, rel = (jnp.array(c) for c in zip(*cases))
    got = jax.jit(M._expected_reciprocal_rank, static_argnums=3)(start, size, rel, 20000)

    def log_comb(n, k):
        return lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)

    for (a, g, p), value in zip(cases, np.asarray(got)):
        ref = sum(
            exp(log_comb(g - 1 - j, p - 1) - log_comb(g, p)) / (a + j) for j in range(g - p + 1)
        )
        assert value == pytest.approx(ref, rel=2e-6)
