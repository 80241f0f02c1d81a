"""Tests for hybridrec.data.sampling against brute-force numpy references."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from hybridrec import Interactions
from hybridrec.data.sampling import (
    NegativeSampler,
    PositiveIndex,
    SamplingError,
    _mul_high,
    _quantise,
    uniform_below,
)


def _positive_sets(data: Interactions) -> list[set]:
    """Brute-force reference: each user's set of positive items."""
    sets = [set() for _ in range(data.num_users)]
    for u, i in zip(data.user_ids.tolist(), data.item_ids.tolist()):
        sets[u].add(i)
    return sets


def _from_sets(positives: list[list[int]], num_items: int) -> Interactions:
    users = np.concatenate([np.full(len(p), u) for u, p in enumerate(positives)] + [[]])
    items = np.concatenate([np.asarray(p) for p in positives] + [[]])
    return Interactions.from_arrays(
        users.astype(np.int32),
        items.astype(np.int32),
        num_users=len(positives),
        num_items=num_items,
    )


# The property tests use fixed shapes (16 items, 13 users, 91 distinct positives, K = 3) so that
# the jitted sampler compiles once for all examples: besides the drawn users, user 0 always has
# exactly K non-positive items left and "filler" users absorb the rest of the 91 positives.
NUM_ITEMS, K, NUM_DRAWN, NUM_FILLERS = 16, 3, 6, 6
CAPACITY = NUM_ITEMS - K  # the most positives a user may have with K negatives left


@st.composite
def _csr_cases(draw):
    """Random positive sets of 6 users: empty, random or as dense as K allows."""
    positives = []
    for _ in range(NUM_DRAWN):
        mode = draw(st.sampled_from(["random", "empty", "dense"]))
        if mode == "random":
            size = draw(st.integers(0, CAPACITY))
        else:
            size = 0 if mode == "empty" else CAPACITY
        positives.append(draw(st.permutations(range(NUM_ITEMS)))[:size])
    left = NUM_DRAWN * CAPACITY - sum(len(p) for p in positives)
    fillers = []
    for f in range(NUM_FILLERS):
        size = min(CAPACITY, left)
        left -= size
        fillers.append([(f + i) % NUM_ITEMS for i in range(size)])
    dense = list(range(NUM_ITEMS - K, 0, -1))[:CAPACITY]
    # Repeat some pairs: duplicates must not change anything.
    return [p + p[:1] for p in [dense, *positives, *fillers]]


@jax.jit
def _queries(index: PositiveIndex):
    """contains() for every (user, item) and nth_negative() for every rank below NUM_ITEMS."""
    users = jnp.arange(index.num_users, dtype=jnp.int32)
    items = jnp.broadcast_to(jnp.arange(NUM_ITEMS, dtype=jnp.int32), (len(users), NUM_ITEMS))
    return index.contains(users, items), index.nth_negative(users, items)


_SAMPLE = jax.jit(
    lambda sampler, key, user_ids, k: sampler.sample(key, user_ids, k), static_argnums=3
)


def _exact_sampler(data: Interactions, dense: bool) -> NegativeSampler:
    """The exact sampler with the dense rank-to-item table (``dense``) or the CSR bisection."""
    sampler = NegativeSampler.from_interactions(data, kind="uniform_exact")
    if not dense:
        index = PositiveIndex.from_interactions(data, dense_limit_bytes=0)
        sampler = sampler.replace(positives=index)
    assert (sampler.positives.negatives is not None) == dense
    return sampler


@pytest.mark.parametrize("dense", [True, False], ids=["dense-table", "bisection"])
@settings(max_examples=40, deadline=None)
@given(positives=_csr_cases(), seed=st.integers(0, 2**31 - 1))
def test_exact_negatives_are_never_positive_and_distinct(dense, positives, seed):
    data = _from_sets(positives, NUM_ITEMS)
    sampler = _exact_sampler(data, dense)
    assert sampler.positives.max_positives == CAPACITY and len(data.csr.data) == 91
    user_ids = jnp.tile(jnp.arange(data.num_users, dtype=jnp.int32), 8)
    negatives = np.asarray(_SAMPLE(sampler, jax.random.key(seed), user_ids, K))
    assert negatives.shape == (len(user_ids), K) and negatives.dtype == np.int32
    reference = _positive_sets(data)
    for u, row in zip(np.asarray(user_ids), negatives):
        assert len(set(row.tolist())) == K, f"duplicate negatives {row} for user {u}"
        assert not set(row.tolist()) & reference[u], f"positive sampled for user {u}: {row}"
        assert row.min() >= 0 and row.max() < NUM_ITEMS


@pytest.mark.parametrize("limit", [2**20, 0], ids=["dense-table", "bisection"])
@settings(max_examples=40, deadline=None)
@given(positives=_csr_cases())
def test_positive_index_queries_match_brute_force(limit, positives):
    data = _from_sets(positives, NUM_ITEMS)
    index = PositiveIndex.from_interactions(data, dense_limit_bytes=limit)
    assert (index.negatives is not None) == (limit > 0)
    contains, nth = map(np.asarray, _queries(index))
    for u, reference in enumerate(_positive_sets(data)):
        expected = [i in reference for i in range(NUM_ITEMS)]
        np.testing.assert_array_equal(contains[u], expected)
        allowed = [i for i in range(NUM_ITEMS) if i not in reference]
        np.testing.assert_array_equal(nth[u, : len(allowed)], allowed)


def _assert_deterministic(sampler, user_ids, k, negatives, key=0):
    """The same key gives the same draws (jitted), another key different ones."""
    again = _SAMPLE(sampler, jax.random.key(key), user_ids, k)
    np.testing.assert_array_equal(again, negatives)
    assert not np.array_equal(_SAMPLE(sampler, jax.random.key(key + 100), user_ids, k), negatives)


@pytest.mark.parametrize("dense", [True, False], ids=["dense-table", "bisection"])
def test_exact_sampling_is_uniform_over_allowed_items_and_subsets(dense):
    num_items = 12
    positives = [[0, 3, 4, 5, 9, 11]]  # allowed: 1, 2, 6, 7, 8, 10
    allowed = [1, 2, 6, 7, 8, 10]
    sampler = _exact_sampler(_from_sets(positives, num_items), dense)
    draws = 30_000
    user_ids = jnp.zeros(draws, jnp.int32)
    negatives = np.asarray(_SAMPLE(sampler, jax.random.key(0), user_ids, 2))
    _assert_deterministic(sampler, user_ids, 2, negatives)
    # Each column on its own is uniform over the allowed items.
    for column in negatives.T:
        counts = np.bincount(column, minlength=num_items)
        assert counts[[i for i in range(num_items) if i not in allowed]].sum() == 0
        assert stats.chisquare(counts[allowed]).pvalue > 1e-3
    # Every unordered pair of allowed items is equally likely (a uniform 2-subset).
    pairs = {p: i for i, p in enumerate(itertools.combinations(allowed, 2))}
    codes = [pairs[tuple(sorted(row))] for row in negatives.tolist()]
    assert stats.chisquare(np.bincount(codes, minlength=len(pairs))).pvalue > 1e-3


def test_mul_high_is_the_exact_high_word_of_the_64_bit_product():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2**32, 100_000, dtype=np.uint64)
    n = rng.integers(1, 2**31, 100_000, dtype=np.uint64)
    edges = np.array([0, 1, 2**16 - 1, 2**16, 2**31 - 1, 2**32 - 1], np.uint64)
    x = np.concatenate([x, np.repeat(edges, len(edges))])
    n = np.concatenate([n, np.tile(np.maximum(edges, 1) & np.uint64(2**31 - 1), len(edges))])
    got = np.asarray(_mul_high(jnp.asarray(x.astype(np.uint32)), jnp.asarray(n.astype(np.uint32))))
    np.testing.assert_array_equal(got.astype(np.uint64), (x * n) >> np.uint64(32))


def test_uniform_below_is_uniform_per_row_bound():
    upper = jnp.array([[1], [7], [1682]], jnp.int32)
    draws = np.asarray(uniform_below(jax.random.key(3), (3, 60_000), upper))
    assert draws.dtype == np.int32 and (draws[0] == 0).all()
    for row, n in zip(draws[1:], (7, 1682)):
        assert row.min() == 0 and row.max() == n - 1
        assert stats.chisquare(np.bincount(row, minlength=n)).pvalue > 1e-3


def test_popularity_frequencies_follow_count_power_alpha():
    rng = np.random.default_rng(0)
    num_items = 30
    counts = rng.integers(1, 60, num_items)
    counts[[4, 17]] = 0  # never-seen items are never drawn
    items = np.repeat(np.arange(num_items), counts)
    data = Interactions.from_arrays(np.zeros(len(items), np.int32), items, num_items=num_items)
    sampler = NegativeSampler.from_interactions(data, kind="popularity", alpha=0.75)
    expected = counts**0.75 / (counts**0.75).sum()
    np.testing.assert_allclose(np.exp(np.asarray(sampler.log_probs)), expected, rtol=1e-5)
    assert np.isneginf(np.asarray(sampler.log_probs)[[4, 17]]).all()
    user_ids = jnp.zeros(20_000, jnp.int32)
    negatives = np.asarray(_SAMPLE(sampler, jax.random.key(1), user_ids, 10))
    _assert_deterministic(sampler, user_ids, 10, negatives, key=1)
    freq = np.bincount(negatives.ravel(), minlength=num_items)
    assert freq[[4, 17]].sum() == 0
    seen = counts > 0
    assert stats.chisquare(freq[seen], expected[seen] * freq.sum()).pvalue > 1e-3
    np.testing.assert_allclose(freq / freq.sum(), expected, atol=3e-3)
    log_q = np.asarray(sampler.log_q(jnp.asarray(negatives[:2])))
    np.testing.assert_allclose(log_q, np.log(expected[negatives[:2]]), rtol=1e-5)


def test_uniform_approximate_covers_all_items_uniformly():
    data = _from_sets([[0, 1, 2], [5]], 8)
    sampler = NegativeSampler.from_interactions(data, kind="uniform")
    user_ids = jnp.zeros(10_000, jnp.int32)
    negatives = np.asarray(_SAMPLE(sampler, jax.random.key(2), user_ids, 4))
    _assert_deterministic(sampler, user_ids, 4, negatives, key=2)
    counts = np.bincount(negatives.ravel(), minlength=8)
    assert len(counts) == 8 and stats.chisquare(counts).pvalue > 1e-3
    np.testing.assert_allclose(np.asarray(sampler.log_probs), -np.log(8), rtol=1e-6)


def test_sampler_is_a_pytree_with_static_configuration():
    data = _from_sets([[0, 1], [2]], 6)
    sampler = NegativeSampler.from_interactions(data)
    leaves = jax.tree_util.tree_leaves(sampler)
    assert all(isinstance(leaf, jax.Array) for leaf in leaves)
    restored = jax.tree_util.tree_map(lambda x: x, sampler)
    assert restored.kind == "uniform_exact" and restored.positives.num_steps == 2


def test_exact_log_q_with_users_is_per_user():
    sampler = NegativeSampler.from_interactions(_from_sets([[0, 1, 2], []], 8))
    log_q = np.asarray(sampler.log_q(jnp.zeros((2, 3), jnp.int32), jnp.array([0, 1])))
    np.testing.assert_allclose(log_q, np.log([[1 / 5] * 3, [1 / 8] * 3]), rtol=1e-6)


def test_quantised_popularity_weights_sum_exactly_and_keep_support():
    probs = np.array([0.5, 1e-12, 0.0, 0.5 - 1e-12])
    units = _quantise(probs, 2**31)
    assert units.sum() == 2**31 and units[1] == 1 and units[2] == 0


def test_sampling_errors():
    data = _from_sets([[0, 1, 2, 3], [1]], 6)  # user 0 has only 2 non-positive items
    sampler = NegativeSampler.from_interactions(data)
    with pytest.raises(SamplingError, match="user 0 has 4 positives of 6 items, leaving 2"):
        sampler.sample(jax.random.key(0), jnp.array([1]), 3)
    with pytest.raises(SamplingError, match="num_negatives must be >= 1"):
        sampler.sample(jax.random.key(0), jnp.array([1]), 0)
    with pytest.raises(SamplingError, match="unknown negative sampler kind"):
        NegativeSampler.from_interactions(data, kind="hard")
    with pytest.raises(SamplingError, match="shape \\(B,\\)"):
        sampler.sample(jax.random.key(0), jnp.zeros((2, 2), jnp.int32), 1)
    assert issubclass(SamplingError, ValueError)
