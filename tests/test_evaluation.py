"""Tests of ``hybridrec.evaluation``: the protocol (users, filtering, Collie mode, segments) against
a brute-force per-user reference, the statistics helpers, the pair task and the JSON output."""

from __future__ import annotations

import functools
import itertools
import json
import types

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from hybridrec import Interactions, evaluation

# The brute-force references below order ties by item index; hybridrec's default, the expectation
# over tie orders, is tested against averages over every tie order further down.
E = types.SimpleNamespace(**vars(evaluation))
E.evaluate = functools.partial(evaluation.evaluate, tie_break="index")

NUM_USERS, NUM_ITEMS = 30, 25


# --------------------------------------------------------------------------- reference
def reference_user(scores, relevant, excluded, k, *, collie=False, candidates=None, order=None):
    """Brute-force metrics of one user (definitions in ``hybridrec.metrics``); ties are ordered
    by ``order[item]`` (default: item index)."""
    rel = sorted(relevant)
    order = np.arange(len(scores)) if order is None else order
    cand = set(range(len(scores))) if candidates is None else set(candidates)
    if not collie:
        cand -= set(excluded)
    cand |= set(rel)
    items = sorted(cand, key=lambda i: (-float(scores[i]), order[i]))
    rank = {i: p + 1 for p, i in enumerate(items)}
    ranks = sorted(rank[i] for i in rel)
    hits = [r for r in ranks if r <= k]
    values = np.asarray(scores, np.float32)
    if collie:
        values = (1 / (1 + np.exp(-values.astype(np.float64)))).astype(np.float32)
    negatives = [j for j in items if j not in rel]
    pairs = [
        1.0 if values[i] > values[j] else 0.5 if values[i] == values[j] else 0.0
        for i in rel
        for j in negatives
    ]
    return {
        "ndcg": sum(1 / np.log2(r + 1) for r in hits)
        / sum(1 / np.log2(j + 1) for j in range(1, min(len(rel), k) + 1)),
        "recall": len(hits) / len(rel),
        "precision": len(hits) / k,
        "hit_rate": float(bool(hits)),
        "map": sum((i + 1) / r for i, r in enumerate(hits)) / min(len(rel), k),
        "mrr": 1 / ranks[0],
        "auc": float(np.mean(pairs)) if pairs else (0.0 if collie else 0.5),
        "topk": items[:k],
    }


def _sets(inter: Interactions) -> list[set[int]]:
    out = [set() for _ in range(inter.num_users)]
    for u, i in zip(inter.user_ids.tolist(), inter.item_ids.tolist()):
        out[u].add(i)
    return out


@pytest.fixture(scope="module")
def data():
    """Random train/val/test with ties in the scores, cold users (0-4) and cold items (20-24)."""
    rng = np.random.default_rng(7)

    def draw(n, users, items):
        return Interactions.from_arrays(
            rng.choice(users, n), rng.choice(items, n), num_users=NUM_USERS, num_items=NUM_ITEMS
        )

    train = draw(250, np.arange(5, NUM_USERS), np.arange(20))
    val = draw(40, np.arange(NUM_USERS), np.arange(NUM_ITEMS))
    test = draw(50, np.arange(NUM_USERS - 3), np.arange(NUM_ITEMS))  # users 27-29: no test items
    scores = rng.integers(0, 6, size=(NUM_USERS, NUM_ITEMS)).astype(np.float32)
    return train, val, test, scores


def test_filtered_and_collie_metrics_match_reference(data):
    train, val, test, scores = data
    calls = []

    def score_fn(user_ids):
        calls.append(len(user_ids))
        return scores[user_ids]

    ks = (3, 30)  # 30 > NUM_ITEMS
    result = E.evaluate(
        score_fn,
        test,
        train=train,
        exclude=[val],
        ks=ks,
        mode="both",
        batch_size=7,
        split_name="test",
    )
    assert set(calls) == {7}  # the last batch is padded to a fixed shape

    tr, va, te = _sets(train), _sets(val), _sets(test)
    users = [u for u in range(NUM_USERS) if te[u]]
    m = result.metrics
    assert m["test/num_users_evaluated"] == len(users)
    assert m["test/num_users_skipped"] == NUM_USERS - len(users)
    popularity = train.item_counts()
    for k in ks:
        refs = {u: reference_user(scores[u], te[u], (tr[u] | va[u]) - te[u], k) for u in users}
        collie = {u: reference_user(scores[u], te[u], (), k, collie=True) for u in users}
        for name in ("ndcg", "recall", "precision", "hit_rate", "map"):
            ids, values = result.values(f"test/{name}@{k}")
            assert ids.tolist() == users
            np.testing.assert_allclose(
                values, [refs[u][name] for u in users], atol=1e-6, err_msg=name
            )
        np.testing.assert_allclose(
            m[f"test/collie_map@{k}"], np.mean([collie[u]["map"] for u in users]), atol=1e-6
        )
        seen = {i for u in users for i in refs[u]["topk"]}
        assert m[f"test/coverage@{k}"] == pytest.approx(len(seen) / NUM_ITEMS)
        pops = [np.mean([popularity[i] for i in refs[u]["topk"]]) for u in users]
        np.testing.assert_allclose(result.per_user[f"test/popularity@{k}"], pops, rtol=1e-6)
    np.testing.assert_allclose(
        result.per_user["test/mrr"], [refs[u]["mrr"] for u in users], rtol=1e-6
    )
    np.testing.assert_allclose(
        result.per_user["test/auc"], [refs[u]["auc"] for u in users], atol=1e-6
    )
    np.testing.assert_allclose(
        result.per_user["test/collie_mrr"], [collie[u]["mrr"] for u in users], rtol=1e-6
    )
    np.testing.assert_allclose(
        result.per_user["test/collie_auc"], [collie[u]["auc"] for u in users], atol=1e-6
    )
    assert m["test/ndcg@3"] == pytest.approx(result.per_user["test/ndcg@3"].mean())


def test_segments_match_reference(data):
    train, _, test, scores = data
    buckets = E.popularity_buckets(train.item_counts(), num_buckets=2)
    kw = dict(
        train=train,
        ks=(3,),
        metrics=("ndcg", "recall", "mrr", "auc"),
        segments=("cold_users", "warm_users", "cold_items", "warm_items"),
        item_segments=buckets,
        chunk_size=2,
    )
    result = E.evaluate(lambda u: scores[u], test, **kw)
    only = E.evaluate(lambda u: scores[u], test, item_segment_candidates="segment", **kw)

    tr, te = _sets(train), _sets(test)
    counts = train.item_counts()
    users = [u for u in range(NUM_USERS) if te[u]]
    overall = {u: reference_user(scores[u], te[u], tr[u] - te[u], 3) for u in users}
    cold_users = [u for u in users if not tr[u]]
    assert result.metrics["val/cold_users/num_users_evaluated"] == len(cold_users) > 0
    assert result.metrics["val/cold_users/ndcg@3"] == pytest.approx(
        np.mean([overall[u]["ndcg"] for u in cold_users])
    )
    warm_users = [u for u in users if tr[u]]
    assert result.metrics["val/warm_users/mrr"] == pytest.approx(
        np.mean([overall[u]["mrr"] for u in warm_users])
    )

    segment_items = {
        "cold_items": set(np.flatnonzero(counts == 0).tolist()),
        "warm_items": set(np.flatnonzero(counts > 0).tolist()),
        **{name: set(np.flatnonzero(mask).tolist()) for name, mask in buckets.items()},
    }
    assert segment_items["cold_items"] == set(range(20, 25))
    for name, items in segment_items.items():
        seg_users = [u for u in users if te[u] & items]
        assert result.metrics[f"val/{name}/num_users_evaluated"] == len(seg_users)
        for res, candidates in ((result, None), (only, items)):
            refs = [
                reference_user(
                    scores[u],
                    te[u] & items,
                    (tr[u] | te[u]) - (te[u] & items),
                    3,
                    candidates=candidates,
                )
                for u in seg_users
            ]
            ids, values = res.values(f"val/{name}/ndcg@3")
            assert ids.tolist() == seg_users
            np.testing.assert_allclose(values, [r["ndcg"] for r in refs], atol=1e-6, err_msg=name)
            np.testing.assert_allclose(
                res.per_user[f"val/{name}/auc"], [r["auc"] for r in refs], atol=1e-6
            )


def test_traceable_score_fn_with_params_matches_eager(data):
    train, _, test, scores = data
    rng = np.random.default_rng(0)
    user_factors = rng.normal(size=(NUM_USERS, 4)).astype(np.float32)
    item_factors = rng.normal(size=(NUM_ITEMS, 4)).astype(np.float32)

    def traced(params, user_ids):
        return params[0][user_ids] @ params[1].T

    kw = dict(train=train, ks=(5,), metrics=("ndcg", "map", "mrr", "auc"), batch_size=8)
    a = E.evaluate(traced, test, traceable=True, score_params=(user_factors, item_factors), **kw)
    b = E.evaluate(lambda u: user_factors[u] @ item_factors.T, test, **kw)
    assert a.metrics.keys() == b.metrics.keys()
    for name in a.metrics:
        assert a.metrics[name] == pytest.approx(b.metrics[name], abs=1e-6), name


def test_host_scores_come_in_bounded_batches(data, monkeypatch):
    # A score_fn that is not traceable returns (batch, num_items) host arrays: the evaluator
    # asks for at most _HOST_SCORES_BYTES of them at a time and keeps one batch in flight, and
    # the metrics do not depend on how the users were batched.
    train, _, test, scores = data
    kw = dict(train=train, ks=(5,), metrics=("ndcg", "recall", "auc"), batch_size=64)
    whole = E.evaluate(lambda u: scores[u], test, **kw)
    monkeypatch.setattr(evaluation, "_HOST_SCORES_BYTES", 4 * NUM_ITEMS * 5)  # 5 users
    asked = []

    def score_fn(user_ids):
        asked.append(len(user_ids))
        return scores[user_ids]

    capped = E.evaluate(score_fn, test, **kw)
    # Caps below 16 users are raised to 16; then the largest power of two that fits.
    assert set(asked) == {16}
    assert len(asked) == -(-int(whole.metrics["val/num_users_evaluated"]) // 16)
    for name in whole.per_user:
        np.testing.assert_array_equal(capped.per_user[name], whole.per_user[name], err_msg=name)


def test_collie_mode_hand_built():
    # User 0: test items {1, 4}, training item 0 scores highest (scores as in test_metrics).
    # User 1: test item {2}, ranked third of six. User 2 has no test items.
    train = Interactions.from_arrays(np.array([0, 1]), np.array([0, 5]), num_users=3, num_items=6)
    test = Interactions.from_arrays(
        np.array([0, 0, 1]), np.array([1, 4, 2]), num_users=3, num_items=6
    )
    scores = np.array(
        [[0.9, 0.8, 0.1, 0.7, 0.6, 0.2], [0.1, 0.2, 0.5, 0.3, 0.0, 0.9], [0.0] * 6], np.float32
    )
    result = E.evaluate(lambda u: scores[u], test, train=train, ks=(3,), mode="collie")
    m = result.metrics
    assert set(m) == {
        "val/num_users_evaluated",
        "val/num_users_skipped",
        "val/collie_map@3",
        "val/collie_mrr",
        "val/collie_auc",
    }
    assert m["val/num_users_evaluated"] == 2 and m["val/num_users_skipped"] == 1
    # User 0: AP@3 = (1/2) / 2, RR = 1/2, AUC = 5/8. User 1: order 5, 2, ...: AP@3 = (1/2) / 1,
    # RR = 1/2, AUC = 4/5 (item 2 beats 0, 1, 3, 4; loses to 5, a training item Collie keeps).
    assert m["val/collie_map@3"] == pytest.approx((0.25 + 0.5) / 2)
    assert m["val/collie_mrr"] == pytest.approx(0.5)
    assert m["val/collie_auc"] == pytest.approx((5 / 8 + 4 / 5) / 2)


def test_evaluation_errors(data):
    train, val, test, scores = data
    with pytest.raises(E.EvaluationError, match=r"must return \(4, num_items=25\)"):
        E.evaluate(lambda u: scores[u][:, :3], test, batch_size=4)
    with pytest.raises(E.EvaluationError, match=r"must return \(B, num_items=25\) scores"):
        E.evaluate(lambda u: jnp.zeros((u.shape[0], 3)), test, traceable=True)
    bad = scores.copy()
    bad[3, 2] = np.nan
    with pytest.raises(E.EvaluationError, match="NaN or infinite scores for user index 3"):
        E.evaluate(
            lambda u: bad[u],
            test,
            ks=(3,),
            metrics=("ndcg", "recall", "mrr", "auc"),
            train=train,
            batch_size=7,
        )
    with pytest.raises(E.EvaluationError, match="unknown metric"):
        E.evaluate(lambda u: scores[u], test, metrics=("ndgc",))
    with pytest.raises(E.EvaluationError, match="unknown segment"):
        E.evaluate(lambda u: scores[u], test, train=train, segments=("cold",))
    with pytest.raises(E.EvaluationError, match="need train="):
        E.evaluate(lambda u: scores[u], test, segments=("cold_items",))
    with pytest.raises(E.EvaluationError, match="mode must be"):
        E.evaluate(lambda u: scores[u], test, mode="lightfm")
    other = Interactions.from_arrays(
        np.array([0]), np.array([0]), num_users=NUM_USERS, num_items=NUM_ITEMS + 1
    )
    with pytest.raises(E.EvaluationError, match="different ID spaces"):
        E.evaluate(lambda u: scores[u], test, train=other)
    with pytest.raises(E.EvaluationError, match=r"item_segments\['x'\] must be a \(25,\) bool"):
        E.evaluate(lambda u: scores[u], test, item_segments={"x": np.ones(3, bool)})
    empty = test.subset(np.zeros(len(test), bool))
    with pytest.raises(E.EvaluationError, match="no user to evaluate"):
        E.evaluate(lambda u: scores[u], empty)


# --------------------------------------------------------------------------- statistics
def _result(values: np.ndarray, name="test/ndcg@10", ids=None) -> E.EvalResult:
    ids = np.arange(len(values)) if ids is None else ids
    return E.EvalResult(
        metrics={name: float(values.mean())}, per_user={name: values}, user_ids={name: ids}
    )


def test_paired_test_detects_planted_improvement():
    rng = np.random.default_rng(0)
    a = rng.random(400)
    b = a + 0.05 + rng.normal(scale=0.05, size=400)
    out = E.paired_test(_result(a), _result(b), "test/ndcg@10", seed=1)
    assert out.num_users == 400
    assert out.mean_difference == pytest.approx((b - a).mean())
    assert 0 < out.ci_low < out.mean_difference < out.ci_high
    t, p = scipy.stats.ttest_rel(b, a)
    assert out.t_statistic == pytest.approx(t) and out.p_value == pytest.approx(p) and p < 1e-10
    # No difference at all: p = 1; users are aligned by id, not by position.
    same = E.paired_test(
        _result(a), _result(a[::-1].copy(), ids=np.arange(400)[::-1].copy()), "test/ndcg@10"
    )
    assert same.mean_difference == 0.0 and same.p_value == 1.0
    with pytest.raises(E.EvaluationError, match="at least 2 users"):
        E.paired_test(_result(a[:2]), _result(a[:2], ids=np.array([5, 6])), "test/ndcg@10")
    with pytest.raises(KeyError, match="known"):
        E.paired_test(_result(a), _result(b), "test/mrr")


def test_confidence_interval_t_and_bootstrap():
    rng = np.random.default_rng(1)
    v = rng.random(200)
    mean, low, high = E.confidence_interval(v, confidence=0.9)
    lo_ref, hi_ref = scipy.stats.t.interval(0.9, len(v) - 1, loc=v.mean(), scale=scipy.stats.sem(v))
    assert (mean, low, high) == pytest.approx((v.mean(), lo_ref, hi_ref))
    _, blo, bhi = E.confidence_interval(v, method="bootstrap", num_bootstrap=3000)
    assert blo < mean < bhi and bhi - blo == pytest.approx(
        hi_ref * 0 + (high - low) / 0.9 * 0.9, rel=0.2
    )
    assert E.confidence_interval(np.array([0.3])) == (0.3, 0.3, 0.3)
    result = _result(v)
    assert result.confidence_intervals(0.9)["test/ndcg@10"] == pytest.approx((mean, low, high))


def test_write_metrics_json_round_trip(tmp_path):
    path = E.write_metrics_json(
        tmp_path / "run",
        {"val/ndcg@10": np.float32(0.25), "val/num_users_evaluated": 943, "val/auc": float("nan")},
    )
    assert path == tmp_path / "run" / "metrics.json"
    loaded = json.loads(path.read_text())
    assert loaded == {"val/auc": None, "val/ndcg@10": 0.25, "val/num_users_evaluated": 943}
    assert list(loaded) == sorted(loaded)
    with pytest.raises(E.EvaluationError, match="not a scalar"):
        E.write_metrics_json(tmp_path, {"x": [1, 2]})


# --------------------------------------------------------------------------- other tasks
def test_pair_auc_perfect_and_uninformative_scorers():
    rng = np.random.default_rng(2)
    num_items = 50
    positives = np.stack([rng.integers(0, 25, 60), rng.integers(25, 50, 60)], 1)
    related = set(map(tuple, positives.tolist()))
    perfect = E.pair_auc(
        lambda a, b: np.array([float((x, y) in related) for x, y in zip(a, b)]),
        positives,
        num_items,
        seed=3,
    )
    assert perfect.auc == 1.0 and perfect.average_precision == 1.0
    assert perfect.metrics("test") == {"test/pair_auc": 1.0, "test/pair_average_precision": 1.0}
    neg = perfect.negative_pairs
    assert len(neg) == 60 and np.all(neg[:, 0] != neg[:, 1])
    assert not related & set(map(tuple, neg.tolist())) and not related & set(
        map(tuple, neg[:, ::-1].tolist())
    )
    assert perfect.labels.sum() == 60 and len(perfect.scores) == 120
    assert perfect.fpr[0] == 0 and perfect.tpr[-1] == 1 and perfect.recall[0] == 1
    constant = E.pair_auc(lambda a, b: np.zeros(len(a)), positives, num_items)
    assert constant.auc == 0.5
    with pytest.raises(E.EvaluationError, match="outside"):
        E.pair_auc(lambda a, b: np.zeros(len(a)), positives + 40, num_items)


def test_evaluate_ratings_and_popularity_buckets():
    test = Interactions.from_arrays(
        np.array([0, 1, 1]),
        np.array([0, 1, 2]),
        num_users=2,
        num_items=3,
        ratings=np.array([4.0, 2.0, 5.0]),
    )
    out = E.evaluate_ratings(
        lambda u, i: np.array([3.0, 2.0, 5.0])[: len(u)], test, split_name="test"
    )
    assert out == {"test/rmse": pytest.approx(np.sqrt(1 / 3)), "test/mae": pytest.approx(1 / 3)}
    buckets = E.popularity_buckets(np.array([0, 5, 1, 3, 3, 0, 9]), num_buckets=2)
    assert np.flatnonzero(buckets["pop_1"]).tolist() == [1, 3, 6]
    assert np.flatnonzero(buckets["pop_2"]).tolist() == [2, 4]


def test_tie_breaks_on_a_scorer_that_ties_every_item():
    # Each user's relevant items are the lowest indices, so index order ranks them first (NDCG
    # 1); the random tie order ranks them where the seeded permutation of the items puts them;
    # the default reports the expectation over all orders.
    num_users, num_items = 64, 200
    users = np.repeat(np.arange(num_users), 2)
    items = np.tile([0, 1], num_users)
    test = Interactions.from_arrays(users, items, num_users=num_users, num_items=num_items)
    flat = lambda u: np.zeros((len(u), num_items), np.float32)  # noqa: E731
    names = ("ndcg", "auc", "mrr", "hit_rate")
    by_index = evaluation.evaluate(flat, test, tie_break="index", metrics=names)
    assert by_index.metrics["val/ndcg@10"] == pytest.approx(1.0)
    idcg = 1 + 1 / np.log2(3)
    for seed in (0, 1):
        random = evaluation.evaluate(flat, test, metrics=names, seed=seed, tie_break="random")
        position = np.argsort(np.random.default_rng(seed).permutation(num_items))
        ranks = np.sort(position[[0, 1]]) + 1  # 1-based ranks of the two relevant items
        dcg = sum(1 / np.log2(r + 1) for r in ranks if r <= 10)
        assert random.metrics["val/ndcg@10"] == pytest.approx(dcg / idcg)
        assert random.metrics["val/mrr"] == pytest.approx(1 / ranks[0])
        assert random.metrics["val/auc"] == by_index.metrics["val/auc"] == pytest.approx(0.5)
    expected = evaluation.evaluate(flat, test, metrics=names)
    disc = 1 / np.log2(np.arange(2, 12))
    assert expected.metrics["val/ndcg@10"] == pytest.approx(2 / 200 * disc.sum() / idcg, rel=1e-5)
    # The first of 2 relevant items among 200 slots is at slot j w.p. (199 - j) / C(200, 2).
    mrr = sum((199 - j) / 19900 / (1 + j) for j in range(199))
    assert expected.metrics["val/mrr"] == pytest.approx(mrr, rel=1e-5)
    assert expected.metrics["val/hit_rate@10"] == pytest.approx(1 - (190 * 189) / (200 * 199))
    assert expected.metrics["val/auc"] == pytest.approx(0.5)


# --------------------------------------------------------------------------- expected ties
def _all_tie_orders(scores, items):
    """Every order of ``items`` that keeps scores descending, as (num_items,) rank arrays."""
    groups = [[i for i in items if scores[i] == v] for v in sorted({scores[i] for i in items})]
    for perms in itertools.product(*(itertools.permutations(g) for g in groups)):
        order = np.zeros(len(scores), np.int64)
        for perm in perms:
            order[list(perm)] = np.arange(len(perm))
        yield order


def test_expected_ties_with_candidates_match_the_average_over_tie_orders():
    # Few candidates and few score values, so every order of the tied candidates can be
    # enumerated; filtered and Collie conventions, every per-user metric.
    rng = np.random.default_rng(11)
    num_users, num_items = 6, 12
    cand = np.array([1, 2, 4, 5, 7, 8, 10])
    test = Interactions.from_arrays(
        rng.integers(0, num_users, 20),
        rng.integers(0, num_items, 20),
        num_users=num_users,
        num_items=num_items,
    )
    train = Interactions.from_arrays(
        rng.integers(0, num_users, 20),
        rng.integers(0, num_items, 20),
        num_users=num_users,
        num_items=num_items,
    )
    scores = rng.integers(0, 3, size=(num_users, num_items)).astype(np.float32)
    ks = (2, 5)
    result = evaluation.evaluate(
        lambda u: scores[u],
        test,
        train=train,
        ks=ks,
        mode="both",
        candidates=cand,
        metrics=("ndcg", "recall", "precision", "hit_rate", "map", "mrr", "auc"),
    )
    tr, te = _sets(train), _sets(test)
    users = [u for u in range(num_users) if te[u] & set(cand.tolist())]
    assert result.metrics["val/num_users_evaluated"] == len(users)
    for pos, u in enumerate(users):
        rel = te[u] & set(cand.tolist())
        for k in ks:
            for collie in (False, True):
                runs = [
                    reference_user(
                        scores[u],
                        rel,
                        tr[u] - rel,
                        k,
                        collie=collie,
                        candidates=cand,
                        order=order,
                    )
                    for order in _all_tie_orders(scores[u], cand.tolist())
                ]
                ref = {n: np.mean([r[n] for r in runs]) for n in ("map", "mrr", "auc")}
                if collie:
                    assert result.values("val/collie_mrr")[0][pos] == u
                    for name in ("mrr", "auc"):
                        got = result.per_user[f"val/collie_{name}"][pos]
                        assert got == pytest.approx(ref[name], abs=1e-6), (u, name)
                    got = result.per_user[f"val/collie_map@{k}"][pos]
                    assert got == pytest.approx(ref["map"], abs=1e-6)
                    continue
                for name in ("ndcg", "recall", "precision", "hit_rate", "map"):
                    value = np.mean([r[name] for r in runs])
                    got = result.per_user[f"val/{name}@{k}"][pos]
                    assert got == pytest.approx(value, abs=1e-6), (u, name, k)
                for name in ("mrr", "auc"):
                    assert result.per_user[f"val/{name}"][pos] == pytest.approx(ref[name], abs=1e-6)


# --------------------------------------------------------------------------- candidates
def test_candidates_match_reference_in_both_conventions_and_segments(data):
    train, val, test, scores = data
    cand = np.array([0, 2, 3, 5, 8, 9, 11, 13, 14, 17, 19, 20, 21, 23])
    candidates = set(cand.tolist())
    result = E.evaluate(
        lambda u: scores[u],
        test,
        train=train,
        exclude=[val],
        ks=(3,),
        mode="both",
        candidates=cand,
        segments=("cold_items",),
        item_segment_candidates="segment",
        metrics=("ndcg", "recall", "map", "mrr", "auc"),
    )
    tr, va, te = _sets(train), _sets(val), _sets(test)
    users = [u for u in range(NUM_USERS) if te[u] & candidates]
    assert 0 < len(users) < len([u for u in range(NUM_USERS) if te[u]])  # some drop out
    assert result.metrics["val/num_users_evaluated"] == len(users)
    for pos, u in enumerate(users):
        rel = te[u] & candidates
        ref = reference_user(scores[u], rel, (tr[u] | va[u]) - rel, 3, candidates=candidates)
        col = reference_user(scores[u], rel, (), 3, collie=True, candidates=candidates)
        assert result.user_ids["val/ndcg@3"][pos] == u
        for name in ("ndcg", "recall", "map"):
            assert result.per_user[f"val/{name}@3"][pos] == pytest.approx(ref[name], abs=1e-6)
        for name in ("mrr", "auc"):
            assert result.per_user[f"val/{name}"][pos] == pytest.approx(ref[name], abs=1e-6)
            assert result.per_user[f"val/collie_{name}"][pos] == pytest.approx(col[name], abs=1e-6)
        assert result.per_user["val/collie_map@3"][pos] == pytest.approx(col["map"], abs=1e-6)
    # Cold items among the cold candidates only.
    cold = set(range(20, 25)) & candidates
    seg_users = [u for u in users if te[u] & cold]
    ids, values = result.values("val/cold_items/ndcg@3")
    assert ids.tolist() == seg_users and seg_users
    for u, value in zip(seg_users, values):
        rel = te[u] & cold
        ref = reference_user(scores[u], rel, (tr[u] | va[u] | te[u]) - rel, 3, candidates=cold)
        assert value == pytest.approx(ref["ndcg"], abs=1e-6)
    with pytest.raises(E.EvaluationError, match="outside"):
        E.evaluate(lambda u: scores[u], test, candidates=np.array([0, NUM_ITEMS]))
    with pytest.raises(E.EvaluationError, match="no interactions among the candidates"):
        E.evaluate(lambda u: scores[u], test.subset(test.item_ids > 0), candidates=np.array([0]))


# --------------------------------------------------------------------------- exclusions
def test_exclusions_built_once_give_the_same_results(data, monkeypatch):
    train, val, test, scores = data
    kw = dict(train=train, exclude=[val], ks=(3,), mode="both", segments=("cold_items",))
    direct = evaluation.evaluate(lambda u: scores[u], test, **kw)
    excl = evaluation.build_exclusions(train, [val])
    pairs = set(zip(train.user_ids.tolist(), train.item_ids.tolist())) | set(
        zip(val.user_ids.tolist(), val.item_ids.tolist())
    )
    assert len(excl) == len(pairs)
    for u in range(NUM_USERS):
        items = excl.indices[excl.indptr[u] : excl.indptr[u + 1]].tolist()
        assert items == sorted(i for v, i in pairs if v == u)

    def fail(*args, **kwargs):
        raise AssertionError("evaluate rebuilt the exclusions")

    monkeypatch.setattr(evaluation, "build_exclusions", fail)
    reused = evaluation.evaluate(lambda u: scores[u], test, exclusions=excl, **kw)
    assert reused.metrics == direct.metrics
    with pytest.raises(E.EvaluationError, match="same splits"):
        evaluation.evaluate(lambda u: scores[u], test, train=train, exclusions=excl)


def test_exclusions_of_train_alone_share_its_item_lists(data):
    """The training run's exclusions are ``train.item_lists`` themselves (no second copy of
    millions of pairs), and their ``keys`` are the sorted pair keys."""
    train = data[0]
    excl = evaluation.build_exclusions(train)
    assert excl.indptr is train.item_lists[0] and excl.indices is train.item_lists[1]
    expected = np.unique(train.user_ids.astype(np.int64) * train.num_items + train.item_ids)
    np.testing.assert_array_equal(excl.keys, expected)
    assert len(excl) == len(expected)


def test_sort_based_set_helpers_match_numpy():
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 1000, 3000).astype(np.int64)
    assert evaluation._sorted_unique(keys).tolist() == np.unique(keys).tolist()
    base = evaluation._sorted_unique(keys[:1500])
    assert evaluation._isin_sorted(base, keys).tolist() == np.isin(keys, base).tolist()
    assert not evaluation._isin_sorted(base[:0], keys).any()
