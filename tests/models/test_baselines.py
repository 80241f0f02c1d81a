"""Tests for hybridrec.models.baselines: popularity, item-kNN and EASE against brute-force
references, and a planted two-block structure that both neighbourhood models must recover."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from hybridrec.data.interactions import Interactions
from hybridrec.models import baselines
from hybridrec.models.baselines import EASE, BaselineError, ItemKNN, Popularity, get_baseline


def random_interactions(num_users=30, num_items=12, density=0.3, seed=0, weighted=False):
    """Random (user, item) pairs, each at most once; continuous weights if ``weighted``."""
    rng = np.random.default_rng(seed)
    dense = rng.random((num_users, num_items)) < density
    users, items = np.nonzero(dense)
    weights = rng.uniform(0.5, 3.0, len(users)) if weighted else None
    return Interactions.from_arrays(
        users, items, num_users=num_users, num_items=num_items, weights=weights
    )


PER_GROUP = 50


def planted(noise: int, seed: int = 0) -> tuple[Interactions, np.ndarray]:
    """Two user groups of PER_GROUP users: group 0 likes items 0..9, group 1 items 10..19. A user
    with activity a ~ U(0.2, 0.8) has each item of their block with probability a (at least
    one, never all ten), plus ``noise`` random items of the other block. Varying activity makes
    in-block items co-occur more than chance, as shared tastes do. Returns the interactions and
    each user's group."""
    rng = np.random.default_rng(seed)
    n = 2 * PER_GROUP
    block = np.repeat([0, 1], PER_GROUP)
    activity = rng.uniform(0.2, 0.8, n)
    own = rng.random((n, 10)) < activity[:, None]
    two = np.argsort(rng.random((n, 10)), axis=1)[:, :2]  # two distinct items per user
    own[np.arange(n), two[:, 0]] = True
    own[np.arange(n), two[:, 1]] = False
    dense = np.zeros((n, 20), bool)
    dense[block == 0, :10] = own[block == 0]
    dense[block == 1, 10:] = own[block == 1]
    for u in range(n):  # a loop over users building the fixture, not the model
        other = rng.choice(10, noise, replace=False) + 10 * (1 - block[u])
        dense[u, other] = True
    users, items = np.nonzero(dense)
    return Interactions.from_arrays(users, items, num_items=20), block


def binary_dense(train: Interactions) -> np.ndarray:
    x = train.csr.toarray()
    return (x > 0).astype(np.float64)


# ----------------------------------------------------------------------------- popularity
def test_popularity_ranks_by_train_counts():
    # Item 2 three times, item 0 twice, item 1 once, item 3 never.
    train = Interactions.from_arrays(
        np.array([0, 1, 2, 0, 1, 2]), np.array([2, 2, 2, 0, 0, 1]), num_users=4, num_items=4
    )
    scores = Popularity().fit(train).score(np.array([0, 3, 3]))
    assert scores.shape == (3, 4) and scores.dtype == np.float32
    np.testing.assert_array_equal(scores, np.tile([2.0, 1.0, 3.0, 0.0], (3, 1)))
    # Writable, independent rows (the evaluator may mask seen items in place).
    scores[0, 0] = -np.inf
    assert scores[1, 0] == 2.0
    # Weighted popularity sums interaction weights instead.
    w = train.replace(weights=np.array([1, 1, 1, 5, 5, 1], np.float32))
    np.testing.assert_array_equal(
        Popularity(weighted=True).fit(w).score(np.array([0]))[0], [10.0, 1.0, 3.0, 0.0]
    )


# ----------------------------------------------------------------------------- item-kNN
def knn_reference(x: np.ndarray, k: int, shrink: float = 0.0) -> np.ndarray:
    """Brute force: dense cosine (with shrinkage), zero diagonal, top-k per row."""
    norms = np.linalg.norm(x, axis=0)
    denom = np.outer(norms, norms) + shrink
    sims = np.divide(x.T @ x, denom, out=np.zeros((x.shape[1],) * 2), where=denom > 0)
    np.fill_diagonal(sims, 0.0)
    kept = np.zeros_like(sims)
    for i in range(len(sims)):  # small reference: rows one by one
        top = np.argsort(-sims[i], kind="stable")[:k]
        kept[i, top] = sims[i, top]
    return np.where(kept > 0, kept, 0.0)


@pytest.mark.parametrize("k", [3, 11, 50])
@pytest.mark.parametrize("block_size", [None, 4])
def test_itemknn_equals_brute_force_cosine(k, block_size):
    # Continuous weights (binary=False) make similarity ties, hence the top-k set, unambiguous.
    train = random_interactions(weighted=True, seed=1)
    x = train.csr.toarray().astype(np.float64)
    model = ItemKNN(k=k, binary=False, block_size=block_size).fit(train)
    ref = knn_reference(x, k)
    np.testing.assert_allclose(model.similarity.toarray(), ref, rtol=1e-5, atol=1e-6)
    users = np.array([0, 5, 29, 5])
    np.testing.assert_allclose(model.score(users), x[users] @ ref, rtol=1e-4, atol=1e-5)
    assert (model.similarity.getnnz(axis=1) <= k).all()


def test_itemknn_binary_with_shrinkage():
    train = random_interactions(weighted=True, seed=2)
    x = binary_dense(train)  # binary=True (default) ignores the weights
    model = ItemKNN(k=100, shrink=2.0).fit(train)
    ref = knn_reference(x, 100, shrink=2.0)
    np.testing.assert_allclose(model.similarity.toarray(), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.score(np.arange(30)), x @ ref, rtol=1e-4, atol=1e-5)


def test_itemknn_item_without_interactions():
    # Item 3 has no interactions: zero similarity everywhere, no NaN.
    train = Interactions.from_arrays(
        np.array([0, 0, 1, 1]), np.array([0, 1, 1, 2]), num_users=2, num_items=4
    )
    model = ItemKNN(k=2).fit(train)
    sims = model.similarity.toarray()
    assert np.isfinite(sims).all() and not sims[3].any() and not sims[:, 3].any()
    assert np.isfinite(model.score(np.array([0, 1]))).all()


# ----------------------------------------------------------------------------- EASE
def ease_reference(x: np.ndarray, l2: float) -> np.ndarray:
    """Steck (2019), naively: P = (X^T X + l2 I)^-1, B = I - P diag(1 / diag(P))."""
    p = np.linalg.inv(x.T @ x + l2 * np.eye(x.shape[1]))
    return np.eye(x.shape[1]) - p @ np.diag(1.0 / np.diag(p))


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-5), ("float32", 1e-3)])
def test_ease_equals_closed_form(dtype, rtol):
    train = random_interactions(num_users=40, num_items=15, seed=3)
    x = binary_dense(train)
    model = EASE(l2=10.0, dtype=dtype).fit(train)
    ref = ease_reference(x, 10.0)
    assert np.abs(np.diag(ref)).max() < 1e-10  # the closed form has a zero diagonal ...
    np.testing.assert_array_equal(np.diag(model.item_weights), 0.0)  # ... and so does EASE
    np.testing.assert_allclose(model.item_weights, ref, rtol=rtol, atol=rtol * 1e-2)
    users = np.array([3, 0, 39])
    np.testing.assert_allclose(model.score(users), x[users] @ ref, rtol=rtol, atol=rtol * 1e-2)


def test_ease_blocked_computation(monkeypatch):
    # Tiny blocks: the Gram matrix is filled 2 columns at a time and the inverse mirrored in
    # blocks of 4 rows; the result must not change.
    train = random_interactions(num_users=40, num_items=15, seed=6)
    expected = EASE(l2=3.0).fit(train).item_weights
    monkeypatch.setattr(baselines, "_GRAM_BLOCK_ELEMENTS", 30)
    monkeypatch.setattr(baselines, "_MIRROR_BLOCK", 4)
    blocked = EASE(l2=3.0).fit(train).item_weights
    np.testing.assert_allclose(blocked, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        blocked, ease_reference(binary_dense(train), 3.0), rtol=1e-4, atol=1e-6
    )


def test_ease_refuses_large_catalogues():
    train = random_interactions(num_items=12)
    with pytest.raises(BaselineError, match=r"12 items exceed max_items=10.*GiB"):
        EASE(max_items=10).fit(train)
    with pytest.raises(BaselineError, match="l2 must be > 0"):
        EASE(l2=0.0)


# ----------------------------------------------------------------------------- planted structure
def in_block_wins(scores: np.ndarray, train: Interactions, block: np.ndarray, strict: bool):
    """Per user, the fraction of (unseen in-block, out-of-block) item pairs ranked correctly;
    with ``strict``, whether every unseen in-block item beats every out-of-block item."""
    seen = train.csr.toarray() > 0
    item_block = np.arange(20) // 10
    out = []
    for u in range(len(block)):  # per-user check
        inside = scores[u, (item_block == block[u]) & ~seen[u]]
        outside = scores[u, (item_block != block[u]) & ~seen[u]]
        if strict:
            out.append(inside.min() > outside.max())
        else:
            out.append((inside[:, None] > outside[None, :]).mean())
    return np.array(out)


@pytest.mark.parametrize("name,kwargs", [("itemknn", {"k": 10}), ("ease", {"l2": 200.0})])
@pytest.mark.parametrize("seed", [0, 1])
def test_recovers_planted_blocks(name, kwargs, seed):
    # Without noise: every unseen in-block item outranks every out-of-block item, for every user.
    train, block = planted(noise=0, seed=seed)
    scores = get_baseline(name, **kwargs).fit(train).score(np.arange(len(block)))
    assert in_block_wins(scores, train, block, strict=True).all()
    # With one cross-block item per user the signal still dominates: unseen in-block items beat
    # unseen out-of-block ones in at least 90% of pairs (measured 0.95-0.99 over 8 seeds).
    train, block = planted(noise=1, seed=seed)
    scores = get_baseline(name, **kwargs).fit(train).score(np.arange(len(block)))
    assert in_block_wins(scores, train, block, strict=False).mean() > 0.9


def test_popularity_cannot_see_planted_blocks():
    # Negative control for the test above: one ranking for everyone is right for about half
    # of the pairs only.
    train, block = planted(noise=1)
    scores = get_baseline("popularity").fit(train).score(np.arange(len(block)))
    assert 0.25 < in_block_wins(scores, train, block, strict=False).mean() < 0.75


# ----------------------------------------------------------------------------- interface
def test_score_with_other_history():
    train = random_interactions(seed=4)
    history = random_interactions(seed=5)  # e.g. train + validation at test time
    model = ItemKNN(k=5).fit(train)
    users = np.array([1, 2])
    expected = binary_dense(history)[users] @ model.similarity.toarray()
    np.testing.assert_allclose(model.score(users, history=history), expected, rtol=1e-5)
    np.testing.assert_allclose(
        model.score(users, history=sp.csr_matrix(binary_dense(history))), expected, rtol=1e-5
    )
    # A fitted baseline is itself a score_fn.
    np.testing.assert_array_equal(model(users), model.score(users))


def test_history_matrix_is_binary_and_shares_the_training_lists():
    """Repeated pairs count once; without weights the history reads ``train.item_lists`` (no
    copy of the pairs); with weights, a pair of weight 0 is not history (as before)."""
    users, items = np.array([0, 0, 1, 2, 2, 2]), np.array([3, 3, 1, 0, 2, 0])
    train = Interactions.from_arrays(users, items, num_users=4, num_items=5)
    model = ItemKNN(k=2).fit(train)
    expected = np.zeros((4, 5))
    expected[users, items] = 1.0
    np.testing.assert_array_equal(model._history.toarray(), expected)
    assert np.shares_memory(model._history.indices, train.item_lists[1])
    weighted = Interactions.from_arrays(
        users, items, num_users=4, num_items=5, weights=[1.0, 1.0, 0.0, 2.0, 1.0, 0.5]
    )
    expected[1, 1] = 0.0
    np.testing.assert_array_equal(ItemKNN(k=2).fit(weighted)._history.toarray(), expected)


def test_errors():
    train = random_interactions()
    with pytest.raises(BaselineError, match=r"unknown baseline 'knn'.*itemknn"):
        get_baseline("knn")
    with pytest.raises(BaselineError, match="bad arguments for baseline 'ease'"):
        get_baseline("ease", lambda_=3.0)
    with pytest.raises(BaselineError, match="call fit"):
        get_baseline("popularity").score(np.array([0]))
    model = get_baseline("itemknn", k=3).fit(train)
    with pytest.raises(BaselineError, match=r"user index out of range \[0, 30\): 0\.\.30"):
        model.score(np.array([0, 30]))
    with pytest.raises(BaselineError, match="1-D integer array"):
        model.score(np.array([0.5]))
    with pytest.raises(BaselineError, match="expects Interactions"):
        get_baseline("ease").fit(np.zeros((3, 3)))
    with pytest.raises(BaselineError, match="k must be >= 1"):
        ItemKNN(k=0)
