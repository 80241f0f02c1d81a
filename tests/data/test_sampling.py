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
from hybridrec.data import sampling
from hybridrec.data.sampling import (
    NegativeSampler,
    PositiveIndex,
    SamplingError,
    _mul_high,
    _quantise,
    hash_bits,
    random_bits,
    round_keys,
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
    return (
        index.contains(users, items),
        index.contains_by_bisection(users, items),
        index.nth_negative(users, items),
    )


_SAMPLE = jax.jit(
    lambda sampler, key, user_ids, k: sampler.sample(key, user_ids, k), static_argnums=3
)


# The exact sampler's paths: the dense rank-to-item table (small data); without it, rejection
# with the hash table's membership test (the default on large data), rejection limited to one
# redraw round so that most rows of dense users finish on the rank path, and the rank path
# alone (binary search over the user's sorted positives).
EXACT_PATHS = ["dense-table", "rejection", "rejection-1-round", "bisection"]
_ROUNDS = {"rejection": 16, "rejection-1-round": 1, "bisection": 0}


def _exact_sampler(data: Interactions, path: str) -> NegativeSampler:
    """The exact sampler on one of ``EXACT_PATHS``."""
    sampler = NegativeSampler.from_interactions(data, kind="uniform_exact")
    if path != "dense-table":
        index = PositiveIndex.from_interactions(data, dense_limit_bytes=0)
        sampler = sampler.replace(positives=index, rejection_rounds=_ROUNDS[path])
    assert (sampler.positives.negatives is not None) == (path == "dense-table")
    return sampler


@pytest.mark.parametrize("path", EXACT_PATHS)
@settings(max_examples=40, deadline=None)
@given(positives=_csr_cases(), seed=st.integers(0, 2**31 - 1))
def test_exact_negatives_are_never_positive_and_distinct(path, positives, seed):
    data = _from_sets(positives, NUM_ITEMS)
    sampler = _exact_sampler(data, path)
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
    contains, bisection, nth = map(np.asarray, _queries(index))
    for u, reference in enumerate(_positive_sets(data)):
        expected = [i in reference for i in range(NUM_ITEMS)]
        np.testing.assert_array_equal(contains[u], expected)
        np.testing.assert_array_equal(bisection[u], expected)
        allowed = [i for i in range(NUM_ITEMS) if i not in reference]
        np.testing.assert_array_equal(nth[u, : len(allowed)], allowed)


@pytest.mark.parametrize(
    "window, num_items", [(sampling.HASH_WINDOW, 5000), (2, 5000), (1, 5000), (8, 40_000)]
)
def test_hash_table_membership_matches_brute_force_on_power_law_data(
    window, num_items, monkeypatch
):
    """Every positive is found and nothing else, also when narrow windows force larger regions
    (and with int32 slots, for item IDs beyond int16)."""
    monkeypatch.setattr(sampling, "HASH_WINDOW", window)
    rng = np.random.default_rng(window)
    num_users = 300
    sizes = np.minimum((rng.pareto(1.0, num_users) * 20).astype(int), 4000)
    positives = [rng.choice(num_items, size, replace=False).tolist() for size in sizes]
    data = _from_sets(positives, num_items)
    index = PositiveIndex.from_interactions(data, dense_limit_bytes=0)
    slots = np.asarray(index.hash_slots)
    assert slots.dtype == (np.int16 if num_items < 2**15 else np.int32)
    assert (slots >= 0).sum() == len(np.unique(data.user_ids * num_items + data.item_ids))
    users = jnp.asarray(np.repeat(np.arange(num_users), 64).astype(np.int32))
    queries = rng.integers(0, num_items, (len(users), 4)).astype(np.int32)
    # Half of the queries are positives of their user.
    for row, u in enumerate(np.asarray(users)):
        if positives[u]:
            queries[row, :2] = rng.choice(positives[u], 2)
    found = np.asarray(jax.jit(PositiveIndex.contains)(index, users, jnp.asarray(queries)))
    sets = _positive_sets(data)
    expected = [[q in sets[u] for q in row] for u, row in zip(np.asarray(users), queries)]
    np.testing.assert_array_equal(found, expected)
    assert found.any() and not found.all()


def test_hash_table_built_in_groups_is_exact(monkeypatch):
    """Users are placed in groups of about ``_HASH_GROUP`` positives (to bound the build's memory):
    with groups of a few users, every positive is still found and nothing else, and each user's
    region and placement are those of the build in one group."""
    rng = np.random.default_rng(11)
    num_users, num_items = 200, 3000
    sizes = np.minimum((rng.pareto(1.0, num_users) * 10).astype(int), 2000)
    positives = [rng.choice(num_items, size, replace=False).tolist() for size in sizes]
    data = _from_sets(positives, num_items)
    whole = PositiveIndex.from_interactions(data, dense_limit_bytes=0)
    monkeypatch.setattr(sampling, "_HASH_GROUP", 50)
    grouped = PositiveIndex.from_interactions(data, dense_limit_bytes=0)
    users = np.repeat(np.arange(num_users), 10).astype(np.int32)  # each user asks every item
    queries = np.tile(np.arange(num_items, dtype=np.int32).reshape(10, -1), (num_users, 1))
    found = np.asarray(jax.jit(PositiveIndex.contains)(grouped, jnp.asarray(users), queries))
    sets = _positive_sets(data)
    expected = [[q in sets[u] for q in row] for u, row in zip(users, queries)]
    np.testing.assert_array_equal(found, expected)
    # The same regions, laid end to end in the same order, holding the same items (items with
    # equal home slots may be placed in either order).
    np.testing.assert_array_equal(grouped.hash_sizes, whole.hash_sizes)
    np.testing.assert_array_equal(grouped.hash_starts, whole.hash_starts)
    a, b = np.asarray(grouped.hash_slots), np.asarray(whole.hash_slots)
    starts = np.asarray(whole.hash_starts).tolist() + [len(b)]
    for u in range(num_users):
        region = slice(starts[u], starts[u + 1])
        assert sorted(a[region]) == sorted(b[region])


def _assert_deterministic(sampler, user_ids, k, negatives, key=0):
    """The same key gives the same draws (jitted), another key different ones."""
    again = _SAMPLE(sampler, jax.random.key(key), user_ids, k)
    np.testing.assert_array_equal(again, negatives)
    assert not np.array_equal(_SAMPLE(sampler, jax.random.key(key + 100), user_ids, k), negatives)


@pytest.mark.parametrize("path", EXACT_PATHS)
def test_exact_sampling_is_uniform_over_allowed_items_and_subsets(path):
    num_items = 12
    positives = [[0, 3, 4, 5, 9, 11]]  # allowed: 1, 2, 6, 7, 8, 10
    allowed = [1, 2, 6, 7, 8, 10]
    sampler = _exact_sampler(_from_sets(positives, num_items), path)
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


# ----------------------------------------------------------------------------- random bits
def _fmix32_reference(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer in numpy uint64 arithmetic, masked to 32 bits."""
    x = x.astype(np.uint64)
    mask = np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x85EBCA6B)) & mask
    x ^= x >> np.uint64(13)
    x = (x * np.uint64(0xC2B2AE35)) & mask
    return x ^ (x >> np.uint64(16))


def _random_bits_reference(key_words: np.ndarray, size: int) -> np.ndarray:
    """The documented stream ``fmix(fmix(c * G ^ k0) + k1)``, round keys from every key word."""
    mask = np.uint64(0xFFFFFFFF)
    k0, k1 = np.uint64(0x3C6EF372), np.uint64(0xA54FF53A)
    for w in key_words.astype(np.uint64):
        k0 = _fmix32_reference(np.array(k0 ^ w))
        k1 = _fmix32_reference(np.array((k1 + w) & mask))
    c = np.arange(size, dtype=np.uint64)
    x = _fmix32_reference(((c * np.uint64(0x9E3779B9)) & mask) ^ k0)
    return _fmix32_reference((x + k1) & mask).astype(np.uint32)


def _bit_matrix(words: np.ndarray) -> np.ndarray:
    """(N,) uint32 -> (N, 32) 0/1 bits."""
    return (words[:, None] >> np.arange(32, dtype=np.uint32)) & 1


def _raw_key(*words: int) -> jax.Array:
    return jax.random.wrap_key_data(jnp.asarray(words, jnp.uint32))


@pytest.mark.parametrize("impl", ["threefry2x32", "rbg"])
def test_random_bits_match_the_documented_hash_and_are_deterministic(impl):
    key = jax.random.key(12345, impl=impl)
    words = np.asarray(random_bits(key, (64, 10)))
    assert words.dtype == np.uint32 and words.shape == (64, 10)
    reference = _random_bits_reference(np.asarray(jax.random.key_data(key)), 640)
    np.testing.assert_array_equal(words.ravel(), reference)
    # The same key, jitted or not, gives the same words; a word depends on its flat position only.
    jitted = jax.jit(random_bits, static_argnums=1)
    np.testing.assert_array_equal(np.asarray(jitted(key, (64, 10))), words)
    np.testing.assert_array_equal(np.asarray(random_bits(key, (320,))), words.ravel()[:320])
    # Another key, or a key split from this one, gives other words.
    for other in (jax.random.key(12346, impl=impl), jax.random.split(key)[1]):
        assert np.mean(np.asarray(random_bits(other, (64, 10))) == words) < 0.01


def test_random_bits_are_uniform_over_buckets_and_bits():
    n = 2**20
    words = np.asarray(random_bits(jax.random.key(7), (n,)))
    for shift in (0, 8, 16, 24):  # every byte of the word is uniform over 256 values
        byte = (words >> np.uint32(shift)) & 0xFF
        assert stats.chisquare(np.bincount(byte, minlength=256)).pvalue > 1e-4, shift
    # Each bit is 1 half the time, within 5 standard deviations.
    ones = _bit_matrix(words).sum(axis=0)
    assert np.all(np.abs(ones - n / 2) < 5 * np.sqrt(n / 4)), ones
    # The mapped ranks of uniform_below are uniform too (a bound that is not a power of two).
    ranks = np.asarray(uniform_below(jax.random.key(8), (n,), jnp.int32(1000)))
    assert stats.chisquare(np.bincount(ranks, minlength=1000)).pvalue > 1e-4


def test_a_key_of_zeros_gives_uniform_distinct_words():
    """A key of all-zero words (``jax.random.key(0)``) must not be a degenerate fixed point."""
    n = 2**18
    words = np.asarray(random_bits(_raw_key(0, 0), (n,)))
    assert len(np.unique(words)) == n  # a bijection of the counter for a fixed key
    assert stats.chisquare(np.bincount(words >> np.uint32(24), minlength=256)).pvalue > 1e-4


# Lags: the next slot of a row, the next row at K = 10, the next row at K = 1 and B = 1024.
@pytest.mark.parametrize("lag", [1, 10, 1024])
def test_words_at_neighbouring_positions_are_independent(lag):
    n = 2**20
    words = np.asarray(random_bits(jax.random.key(11), (n + lag,)))
    a, b = words[:n], words[lag:]
    # Pair buckets: the top 4 bits and the low 4 bits of neighbours, 16 x 16 cells each.
    for shift in (28, 0):
        cells = ((a >> np.uint32(shift)) & 15) * 16 + ((b >> np.uint32(shift)) & 15)
        assert stats.chisquare(np.bincount(cells, minlength=256)).pvalue > 1e-4, shift
    # No linear correlation between the words as numbers in [0, 1).
    r = np.corrcoef(a / 2.0**32, b / 2.0**32)[0, 1]
    assert abs(r) < 5 / np.sqrt(n), r


def test_neighbouring_keys_give_independent_streams():
    """Keys whose data differ by one in a word (the worst case for a weak hash) are unrelated."""
    n = 2**18
    for words_a, words_b in [((0, 5), (0, 6)), ((5, 0), (6, 0)), ((0, 0), (1, 0))]:
        a = np.asarray(random_bits(_raw_key(*words_a), (n,)))
        b = np.asarray(random_bits(_raw_key(*words_b), (n,)))
        assert np.mean(a == b) < 1e-3
        cells = (a >> np.uint32(28)) * 16 + (b >> np.uint32(28))
        assert stats.chisquare(np.bincount(cells, minlength=256)).pvalue > 1e-4
        r = np.corrcoef(a / 2.0**32, b / 2.0**32)[0, 1]
        assert abs(r) < 5 / np.sqrt(n), r
        # Nor is one a shifted copy of the other (a key difference acting as a counter offset):
        # two independent sets of 2**18 words share n**2 / 2**32 = 16 values on average.
        assert len(np.intersect1d(a, b)) < 64


def test_flipping_one_counter_bit_flips_each_output_bit_half_the_time():
    """Strict avalanche: for every (input bit, output bit) pair the flip rate is about 1/2."""
    k0, k1 = round_keys(jax.random.key(3))
    rng = np.random.default_rng(0)
    counters = rng.integers(0, 2**32, 4096, dtype=np.uint64).astype(np.uint32)
    base = np.asarray(hash_bits(k0, k1, jnp.asarray(counters)))
    rates = np.empty((32, 32))
    for bit in range(32):
        flipped = np.asarray(hash_bits(k0, k1, jnp.asarray(counters ^ np.uint32(1 << bit))))
        rates[bit] = _bit_matrix(base ^ flipped).mean(axis=0)
    # One rate's standard deviation is 0.5 / 64 = 0.008; 0.45 .. 0.55 is six of them.
    assert rates.min() > 0.45 and rates.max() < 0.55, (rates.min(), rates.max())


def test_random_bits_rejects_batched_keys():
    with pytest.raises(SamplingError, match="single PRNG key"):
        random_bits(jax.random.split(jax.random.key(0), 2), (4,))
