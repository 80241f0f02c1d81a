"""Negative sampling inside the jitted training step.

A ``NegativeSampler`` is built once on the host from the training interactions and passed into
``jax.jit`` as an argument (it is a pytree); ``sampler.sample(key, user_ids, num_negatives)`` is
then a pure JAX function, so a training step draws its negatives on the device with no host round
trip per batch:

    sampler = NegativeSampler.from_interactions(train, kind="uniform_exact")

    @jax.jit
    def step(state, sampler, key, user_ids, item_ids):
        neg_item_ids = sampler.sample(key, user_ids, 10)         # (B, 10) int32
        ...

Kinds:
  ``"uniform_exact"``: uniform over the items the user has *not* interacted with, K distinct per
    row. Exact by construction, not by rejection: K distinct *ranks* in ``0 .. m_u - 1`` (``m_u`` =
    the user's number of non-positive items) are drawn without replacement, and each rank ``r`` is
    mapped to the ``r``-th non-positive item by one gather from a dense (users, items) rank-to-item
    table when it fits in 64 MB (MovieLens 100K: 3 MB), else by a binary search over the user's
    sorted positives (a fixed ``ceil(log2(max_positives + 1))`` bisection steps of ``lax`` ops).
    Ranks come from one 32-bit random word each (``uniform_below``). So a negative is
    never a positive and never repeated within a row, for every user, including users who have
    interacted with all but K items: there is no redraw loop whose bound could run out. A user
    with fewer than K non-positive items makes ``sample`` raise (on the host, while tracing),
    naming the user.
  ``"uniform"``: uniform over all items (one word each, mapped as in ``uniform_below``), no check
    (may return positives and repeats).
  ``"popularity"``: item ``i`` with probability proportional to ``count_i ** alpha`` (word2vec's
    0.75 by default), no check. ``log_probs`` holds log Q for the sampled-softmax correction.

``PositiveIndex`` is the device-side CSR of each user's positives with vectorised membership
(``contains``) and rank-to-item (``nth_negative``) queries.

Random bits: every kind draws its 32-bit words from ``random_bits``, a counter-based hash of
(key, position) rather than ``jax.random.bits``. The key is the step's (the trainer derives a new
one for every step, so the step is part of it), read once per call with ``jax.random.key_data``
and mixed into two 32-bit round keys; word ``c`` of the output is then two keyed rounds of
MurmurHash3's 32-bit finalizer applied to ``c``: about a dozen uint32 operations per word, fused
by XLA into one loop. On a 2-core CPU that made
~300M words/s against ~20M/s for threefry, which had been more than half of a matrix-factorization
step at 100k users x 20k items with 10 negatives (see ``benchmarks/bench_sampling.py``). The
words are not for cryptography; ``tests/data/test_sampling.py`` checks their uniformity,
the independence of neighbouring positions and of neighbouring keys, and determinism per key.
"""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import lax

from hybridrec.data.interactions import Interactions, InteractionsError

__all__ = [
    "NegativeSampler",
    "PositiveIndex",
    "SamplingError",
    "SamplerKind",
    "hash_bits",
    "random_bits",
    "round_keys",
    "uniform_below",
]

SamplerKind = Literal["uniform_exact", "uniform", "popularity"]
KINDS = ("uniform_exact", "uniform", "popularity")

# Popularity sampling draws 31 random bits and searches an integer CDF that sums to 2**31, so
# probabilities are resolved to ~5e-10 (a float32 CDF over 1e5+ items would lose ~1e-7).
_CDF_TOTAL = 2**31
# The largest dense rank-to-item table PositiveIndex builds (see its ``negatives`` field).
DENSE_LIMIT_BYTES = 64 * 2**20


class SamplingError(InteractionsError):
    """Raised for a sampler that cannot be built or cannot draw what is asked (a ``ValueError``)."""


def _count_leq(
    sorted_values: jax.Array, lo: jax.Array, hi: jax.Array, targets: jax.Array, num_steps: int
) -> jax.Array:
    """For each target, how many of ``sorted_values[lo:hi]`` are ``<= target``.

    A vectorised bisection with a fixed number of steps: ``num_steps >= ceil(log2(hi - lo + 1))``
    for every segment empties every search interval.

    Args:
      sorted_values: (nnz,) int32, sorted within each segment, at least one element.
      lo, hi: segment bounds, broadcastable to ``targets``.
      targets: (...) int32 values to locate.
      num_steps: static number of bisection steps.

    Returns:
      (...) int32 counts in ``[0, hi - lo]``.
    """
    lo = jnp.broadcast_to(lo, targets.shape)
    hi = jnp.broadcast_to(hi, targets.shape)
    start = lo
    last = sorted_values.shape[0] - 1

    def step(_, bounds):
        lo, hi = bounds
        active = lo < hi
        mid = lo + (hi - lo) // 2  # no int32 overflow for large nnz
        # Empty intervals read a clipped, unused position instead of out of bounds.
        right = active & (sorted_values[jnp.clip(mid, 0, last)] <= targets)
        return jnp.where(right, mid + 1, lo), jnp.where(active & ~right, mid, hi)

    lo, _ = lax.fori_loop(0, num_steps, step, (lo, hi))
    return lo - start


@struct.dataclass
class PositiveIndex:
    """Each user's positive items as a device-side CSR, with vectorised queries.

    Attributes:
      indptr: (num_users + 1,) int32; user ``u``'s positives are ``indices[indptr[u]:indptr[u+1]]``.
      indices: (nnz + 1,) int32 item indices, sorted and unique within each user; a trailing
        sentinel keeps the array non-empty.
      offsets: (nnz + 1,) int32; ``offsets[k] = indices[k] - (k - indptr[u])``, the number of the
        user's non-positive items below ``indices[k]`` (non-decreasing within a user).
      negatives: (num_users, width) int16 or int32 table, ``negatives[u, r]`` = the ``r``-th
        non-positive item of user ``u`` (entries past the user's count are unused), or None.
        Built when it fits ``dense_limit_bytes``: one gather then replaces the bisection of
        ``nth_negative`` (on MovieLens 100K, 3 MB, and sampling twice as fast).
      num_items: size of the item ID space (static).
      num_steps: bisection steps, ``ceil(log2(max_positives + 1))`` (static).
      max_positives: the largest number of positives of one user (static).
      densest_user: raw ID of that user, for error messages (static).
    """

    indptr: jax.Array
    indices: jax.Array
    offsets: jax.Array
    negatives: jax.Array | None
    num_items: int = struct.field(pytree_node=False)
    num_steps: int = struct.field(pytree_node=False)
    max_positives: int = struct.field(pytree_node=False)
    densest_user: str = struct.field(pytree_node=False)

    @classmethod
    def from_interactions(
        cls, interactions: Interactions, dense_limit_bytes: int = DENSE_LIMIT_BYTES
    ) -> PositiveIndex:
        """Builds the index from (training) interactions; repeated pairs count once.

        Args:
          interactions: (N,) interactions; every (user, item) pair present is a positive,
            whatever its weight.
          dense_limit_bytes: the largest ``negatives`` table to build (0: never).

        Returns:
          The index, on the default device.
        """
        num_users, num_items = interactions.num_users, interactions.num_items
        if num_items >= 2**31 - 1:
            raise SamplingError(f"PositiveIndex: {num_items} items do not fit int32 indices")
        # Unique (user, item) keys in sorted order are exactly the CSR layout. Built from the ID
        # arrays rather than ``interactions.csr`` so a pair with zero weight is still a positive.
        keys = np.sort(interactions.user_ids.astype(np.int64) * num_items + interactions.item_ids)
        # sort + mask rather than np.unique, whose hash-based path took 9 s on 10M keys.
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys
        if len(keys) >= 2**31 - 1:
            raise SamplingError(f"PositiveIndex: {len(keys)} positives do not fit int32 offsets")
        users = (keys // max(num_items, 1)).astype(np.int64)
        items = (keys % max(num_items, 1)).astype(np.int32)
        counts = np.bincount(users, minlength=num_users)
        indptr = np.zeros(num_users + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        within = np.arange(len(keys)) - indptr[users]
        offsets = (items - within).astype(np.int32)
        sentinel = np.array([np.iinfo(np.int32).max], np.int32)
        densest = int(np.argmax(counts)) if num_users else 0
        max_positives = int(counts.max()) if num_users else 0
        raw = interactions.user_map.to_raw(densest) if num_users else ""
        raw = raw.item() if isinstance(raw, np.generic) else raw
        negatives = _negatives_table(indptr, items, num_items, dense_limit_bytes)
        return cls(
            indptr=jnp.asarray(indptr.astype(np.int32)),
            indices=jnp.asarray(np.concatenate([items, sentinel])),
            offsets=jnp.asarray(np.concatenate([offsets, sentinel])),
            negatives=None if negatives is None else jnp.asarray(negatives),
            num_items=int(num_items),
            num_steps=max_positives.bit_length(),  # == ceil(log2(max_positives + 1))
            max_positives=max_positives,
            densest_user=repr(raw),
        )

    @property
    def num_users(self) -> int:
        return self.indptr.shape[0] - 1

    def num_positives(self, user_ids: jax.Array) -> jax.Array:
        """(B,) int32 number of positives of each user."""
        return self.indptr[user_ids + 1] - self.indptr[user_ids]

    def contains(self, user_ids: jax.Array, item_ids: jax.Array) -> jax.Array:
        """Whether each item is a positive of its user.

        Args:
          user_ids: (B,) int32 user indices.
          item_ids: (B, ...) int32 item indices.

        Returns:
          (B, ...) bool.
        """
        extra = (1,) * (item_ids.ndim - 1)
        lo = self.indptr[user_ids].reshape(user_ids.shape + extra)
        hi = self.indptr[user_ids + 1].reshape(user_ids.shape + extra)
        below = _count_leq(self.indices, lo, hi, item_ids, self.num_steps)
        last = jnp.clip(lo + below - 1, 0, self.indices.shape[0] - 1)
        return (below > 0) & (self.indices[last] == item_ids)

    def nth_negative(self, user_ids: jax.Array, ranks: jax.Array) -> jax.Array:
        """The ``rank``-th (0-based) item that is not a positive of the user.

        If the user's sorted positives are ``p_0 < p_1 < ...``, the answer is ``rank + j`` with
        ``j = #{k : p_k - k <= rank}``: the positives below it.

        Args:
          user_ids: (B,) int32 user indices.
          ranks: (B, ...) int32 ranks in ``[0, num_items - num_positives(user))``.

        Returns:
          (B, ...) int32 item indices, never positives of their user, strictly increasing in rank.
        """
        if self.negatives is not None:
            rows = user_ids.reshape(user_ids.shape + (1,) * (ranks.ndim - 1))
            return self.negatives[rows, ranks].astype(jnp.int32)
        extra = (1,) * (ranks.ndim - 1)
        lo = self.indptr[user_ids].reshape(user_ids.shape + extra)
        hi = self.indptr[user_ids + 1].reshape(user_ids.shape + extra)
        return ranks + _count_leq(self.offsets, lo, hi, ranks, self.num_steps)


def _negatives_table(
    indptr: np.ndarray, items: np.ndarray, num_items: int, limit_bytes: int
) -> np.ndarray | None:
    """``table[u, r]``: the ``r``-th item that is not a positive of ``u``; None if over the limit.

    Args:
      indptr: (num_users + 1,) int64 CSR row pointers; items: (nnz,) sorted within each user.
    """
    num_users = len(indptr) - 1
    counts = np.diff(indptr)
    width = num_items - (int(counts.min()) if num_users else 0)
    dtype = np.int16 if num_items <= np.iinfo(np.int16).max else np.int32
    if num_users * width * np.dtype(dtype).itemsize > limit_bytes or width == 0:
        return None
    table = np.empty((num_users, width), dtype)
    rows_per_block = max(1, 2**22 // max(num_items, 1))  # bounds the (rows, num_items) scratch
    for start in range(0, num_users, rows_per_block):
        stop = min(start + rows_per_block, num_users)
        is_positive = np.zeros((stop - start, num_items), bool)
        block_users = np.repeat(np.arange(stop - start), counts[start:stop])
        is_positive[block_users, items[indptr[start] : indptr[stop]]] = True
        # A stable sort of the flags puts each row's non-positive items first, in item order.
        order = np.argsort(is_positive, axis=1, kind="stable")
        table[start:stop] = order[:, :width]
    return table


# MurmurHash3's 32-bit finalizer (Appleby): multipliers and shifts chosen for full avalanche.
_FMIX_MULTIPLIERS = (0x85EBCA6B, 0xC2B2AE35)
# 2**32 / golden ratio, odd: spreads consecutive counters over all 32 bits before the first round.
_GOLDEN = 0x9E3779B9
# Arbitrary distinct constants: the two round keys differ, and a key of zeros is no fixed point.
_KEY_SALTS = (0x3C6EF372, 0xA54FF53A)


def _fmix32(x: jax.Array) -> jax.Array:
    """MurmurHash3's finalizer: a bijection of uint32 in which every input bit flips each output
    bit with probability close to 1/2."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(_FMIX_MULTIPLIERS[0])
    x = x ^ (x >> 13)
    x = x * jnp.uint32(_FMIX_MULTIPLIERS[1])
    return x ^ (x >> 16)


def round_keys(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Two uint32 round keys for ``hash_bits``, each depending on every word of a PRNG key.

    Args:
      key: a scalar ``jax.random`` key (typed, any implementation) or a legacy uint32 key array.

    Returns:
      Two uint32 scalars.
    """
    words = jnp.asarray(jax.random.key_data(key), jnp.uint32)
    if words.ndim != 1:
        raise SamplingError(f"expected a single PRNG key, got key data of shape {words.shape}")
    k0, k1 = jnp.uint32(_KEY_SALTS[0]), jnp.uint32(_KEY_SALTS[1])
    for i in range(words.shape[0]):  # 2 words (threefry) or 4 (rbg): unrolled scalar ops
        k0 = _fmix32(k0 ^ words[i])
        k1 = _fmix32(k1 + words[i])
    return k0, k1


def hash_bits(k0: jax.Array, k1: jax.Array, counters: jax.Array) -> jax.Array:
    """32-bit words from a keyed integer hash of counters: ``fmix(fmix(c * G ^ k0) + k1)``.

    For fixed round keys this is a bijection of the counter (every step is), so distinct
    counters never collide; distinct keys give unrelated streams.

    Args:
      k0, k1: uint32 round keys (``round_keys``).
      counters: uint32 array, e.g. the flat position of each output.

    Returns:
      uint32 array of the counters' shape.
    """
    x = counters.astype(jnp.uint32) * jnp.uint32(_GOLDEN)
    x = _fmix32(x ^ k0)
    return _fmix32(x + k1)


def random_bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Uniform uint32 words for ``shape``: ``hash_bits`` of the key and each flat position.

    The counterpart of ``jax.random.bits(key, shape, jnp.uint32)``, about 15x cheaper on a CPU.
    Deterministic for a key; a new key (``jax.random.split`` / ``fold_in``) per call or step gives
    new words.

    Args:
      key: a scalar PRNG key.
      shape: output shape, at most 2**32 elements.

    Returns:
      ``shape`` uint32.
    """
    shape = tuple(int(n) for n in shape)
    size = math.prod(shape)
    if size > 2**32:
        raise SamplingError(f"random_bits: {size} words exceed the 2**32 counters of one key")
    k0, k1 = round_keys(key)
    counters = lax.iota(jnp.uint32, size).reshape(shape)
    return hash_bits(k0, k1, counters)


def _mul_high(x: jax.Array, n: jax.Array) -> jax.Array:
    """``floor(x * n / 2**32)`` for uint32 ``x`` and ``n``, exactly, without 64-bit integers.

    The 64-bit product is assembled from 16-bit halves (JAX runs with 32-bit integers by default).
    """
    mask = jnp.uint32(0xFFFF)
    x_hi, x_lo = x >> 16, x & mask
    n_hi, n_lo = n >> 16, n & mask
    cross_1, cross_2 = x_hi * n_lo, x_lo * n_hi  # each < 2**32
    middle = ((x_lo * n_lo) >> 16) + (cross_1 & mask) + (cross_2 & mask)  # < 3 * 2**16
    return x_hi * n_hi + (cross_1 >> 16) + (cross_2 >> 16) + (middle >> 16)


def uniform_below(key: jax.Array, shape: tuple[int, ...], upper: jax.Array) -> jax.Array:
    """Integers uniform in ``[0, upper)`` from one 32-bit word each (Lemire's multiply-shift).

    ``jax.random.randint`` draws two words per value to shrink its bias; one word from
    ``random_bits`` mapped by ``floor(bits * upper / 2**32)`` costs a fraction of that (random
    bits were the largest part of sampling on a CPU). Each value then has probability
    ``c / 2**32`` with ``c`` the floor or ceiling of ``2**32 / upper``: within ``upper / 2**32``
    of uniform, relatively (2e-5 for 100k items), far below what any test of a recommender can
    see.

    Args:
      key: a PRNG key.
      shape: output shape.
      upper: int32 upper bounds (each in ``[1, 2**31)``), broadcastable to ``shape``.

    Returns:
      ``shape`` int32 values, ``0 <= value < upper``.
    """
    bits = random_bits(key, shape)
    upper = jnp.broadcast_to(jnp.asarray(upper, jnp.int32), shape).astype(jnp.uint32)
    return _mul_high(bits, upper).astype(jnp.int32)


def _distinct_ranks(key: jax.Array, num_allowed: jax.Array, num_negatives: int) -> jax.Array:
    """Uniform random draws without replacement from ``0 .. num_allowed - 1``, per row.

    Slot ``s`` draws ``r`` uniformly from the ``m - s`` ranks not taken by slots ``< s`` and maps it
    to the ``r``-th untaken rank with the same counting rule as ``PositiveIndex.nth_negative``,
    over the taken ranks kept sorted. So the row is an ordered sample without replacement: the set
    is a uniform K-subset and each column on its own is uniform. O(K) vector ops per slot, no sort.

    Args:
      key: a PRNG key.
      num_allowed: (B,) int32, each ``>= num_negatives``.
      num_negatives: static K.

    Returns:
      (B, K) int32 distinct ranks per row.
    """
    batch = num_allowed.shape[0]
    slots = jnp.arange(num_negatives, dtype=jnp.int32)
    draws = uniform_below(key, (batch, num_negatives), num_allowed[:, None] - slots)
    # Taken ranks sorted ascending; unused slots hold a sentinel above every rank.
    sentinel = jnp.iinfo(jnp.int32).max - num_negatives

    def step(s, carry):
        taken, out = carry
        r = lax.dynamic_index_in_dim(draws, s, axis=1, keepdims=False)  # (B,)
        # The r-th rank not in ``taken``: r + #{k : taken[k] - k <= r}.
        rank = r + jnp.sum(taken - slots <= r[:, None], axis=1, dtype=jnp.int32)
        # Insert it into the sorted row: shift the larger entries one slot right.
        larger = taken > rank[:, None]
        shifted = jnp.concatenate([taken[:, :1], taken[:, :-1]], axis=1)
        was_larger = jnp.concatenate([jnp.zeros_like(larger[:, :1]), larger[:, :-1]], axis=1)
        taken = jnp.where(was_larger, shifted, jnp.where(larger, rank[:, None], taken))
        out = lax.dynamic_update_index_in_dim(out, rank, s, axis=1)
        return taken, out

    init = (
        jnp.full((batch, num_negatives), sentinel, jnp.int32),
        jnp.zeros((batch, num_negatives), jnp.int32),
    )
    _, ranks = lax.fori_loop(0, num_negatives, step, init)
    return ranks


@struct.dataclass
class NegativeSampler:
    """Draws negative items per user inside jit; build it with ``from_interactions``.

    Attributes:
      positives: the users' positives (``uniform_exact``), else None.
      cdf: (num_items,) uint32 cumulative quantised popularity weights summing to 2**31
        (``popularity``), else None.
      log_probs: (num_items,) float32 log Q(item) of one draw: ``log p_i`` for popularity
        (``-inf`` for items never seen), ``-log(num_items)`` for the uniform kinds.
      kind: ``"uniform_exact"``, ``"uniform"`` or ``"popularity"`` (static).
      num_items: size of the item ID space (static).
      alpha: popularity exponent (static).
    """

    positives: PositiveIndex | None
    cdf: jax.Array | None
    log_probs: jax.Array
    kind: str = struct.field(pytree_node=False)
    num_items: int = struct.field(pytree_node=False)
    alpha: float = struct.field(pytree_node=False, default=0.75)

    @classmethod
    def from_interactions(
        cls, interactions: Interactions, kind: SamplerKind = "uniform_exact", alpha: float = 0.75
    ) -> NegativeSampler:
        """Builds a sampler on the host from the training interactions.

        Args:
          interactions: (N,) training interactions: the positives to avoid (``uniform_exact``)
            or the item counts (``popularity``).
          kind: ``"uniform_exact"``, ``"uniform"`` or ``"popularity"``.
          alpha: popularity exponent, ``p_i ∝ count_i ** alpha``.

        Returns:
          The sampler (a pytree: pass it to jitted functions as an argument).

        Raises:
          SamplingError: unknown kind, no items, or popularity sampling with no interactions.
        """
        if kind not in KINDS:
            raise SamplingError(f"unknown negative sampler kind {kind!r}; choose one of {KINDS}")
        if not isinstance(interactions, Interactions):
            raise SamplingError(
                f"NegativeSampler.from_interactions needs an Interactions, got "
                f"{type(interactions).__name__}"
            )
        num_items = interactions.num_items
        if num_items == 0:
            raise SamplingError("NegativeSampler: the item ID space is empty")
        uniform_log_q = np.full(num_items, -np.log(num_items), np.float32)
        if kind == "uniform":
            return cls(None, None, jnp.asarray(uniform_log_q), kind, num_items, float(alpha))
        if kind == "uniform_exact":
            positives = PositiveIndex.from_interactions(interactions)
            return cls(positives, None, jnp.asarray(uniform_log_q), kind, num_items, float(alpha))
        if not np.isfinite(alpha) or alpha < 0:
            raise SamplingError(f"NegativeSampler: alpha must be a finite number >= 0, got {alpha}")
        counts = interactions.item_counts().astype(np.float64)
        if counts.sum() == 0:
            raise SamplingError("NegativeSampler: popularity sampling needs interactions; got none")
        # Items never seen get weight 0 even for alpha == 0 (0 ** 0 would be 1).
        weights = np.where(counts > 0, counts**alpha, 0.0)
        probs = weights / weights.sum()
        cdf = np.cumsum(_quantise(probs, _CDF_TOTAL)).astype(np.uint32)
        with np.errstate(divide="ignore"):
            log_probs = np.log(probs).astype(np.float32)
        return cls(None, jnp.asarray(cdf), jnp.asarray(log_probs), kind, num_items, float(alpha))

    def sample(self, key: jax.Array, user_ids: jax.Array, num_negatives: int) -> jax.Array:
        """Draws negatives for each user; pure and deterministic given ``key``.

        Args:
          key: a ``jax.random`` key.
          user_ids: (B,) int32 user indices (in range; not checked under jit).
          num_negatives: K, a static Python int.

        Returns:
          (B, K) int32 item indices. For ``uniform_exact``: never a positive of the row's user, and
          distinct within a row.

        Raises:
          SamplingError: (at trace time) K < 1, or for ``uniform_exact`` some user has fewer than K
            items that are not positives.
        """
        if isinstance(num_negatives, bool) or not isinstance(num_negatives, int | np.integer):
            raise SamplingError(f"num_negatives must be a static Python int, got {num_negatives!r}")
        if num_negatives < 1:
            raise SamplingError(f"num_negatives must be >= 1, got {num_negatives}")
        user_ids = jnp.asarray(user_ids, jnp.int32)
        if user_ids.ndim != 1:
            raise SamplingError(f"user_ids must have shape (B,), got {user_ids.shape}")
        shape = (user_ids.shape[0], int(num_negatives))
        if self.kind == "uniform":
            return uniform_below(key, shape, self.num_items)
        if self.kind == "popularity":
            bits = random_bits(key, shape) >> 1  # uniform in [0, 2**31)
            return jnp.searchsorted(self.cdf, bits, side="right").astype(jnp.int32)
        pos = self.positives
        fewest = self.num_items - pos.max_positives
        if num_negatives > fewest:
            raise SamplingError(
                f"exact negative sampling of {num_negatives} distinct negatives is impossible: "
                f"user {pos.densest_user} has {pos.max_positives} positives of {self.num_items} "
                f"items, leaving {fewest}. Lower num_negatives, drop such users, or use kind="
                "'uniform'"
            )
        num_allowed = self.num_items - pos.num_positives(user_ids)  # (B,)
        ranks = _distinct_ranks(key, num_allowed, int(num_negatives))  # (B, K)
        return pos.nth_negative(user_ids, ranks)

    def log_q(self, item_ids: jax.Array, user_ids: jax.Array | None = None) -> jax.Array:
        """Log-probability of drawing each item in one draw, for the sampled-softmax correction.

        Args:
          item_ids: (B, ...) int32 item indices.
          user_ids: (B,) int32, optional. For ``uniform_exact`` it makes the answer exact,
            ``-log(num_items - num_positives(user))``; without it, ``-log(num_items)``.

        Returns:
          (B, ...) float32.
        """
        item_ids = jnp.asarray(item_ids)
        if self.kind == "uniform_exact" and user_ids is not None:
            allowed = self.num_items - self.positives.num_positives(jnp.asarray(user_ids))
            shape = allowed.shape + (1,) * (item_ids.ndim - 1)
            return jnp.broadcast_to(
                -jnp.log(allowed.astype(jnp.float32)).reshape(shape), item_ids.shape
            )
        return self.log_probs[item_ids]


def _quantise(probs: np.ndarray, total: int) -> np.ndarray:
    """Integer weights summing to ``total``, proportional to ``probs``, nonzero where probs is.

    Largest-remainder rounding; an item with a tiny but nonzero probability keeps one unit.
    """
    exact = probs * total
    units = np.floor(exact).astype(np.int64)
    units[(probs > 0) & (units == 0)] = 1
    deficit = total - int(units.sum())
    if deficit > 0:
        units[np.argsort(units - exact, kind="stable")[:deficit]] += 1
    elif deficit < 0:
        units[np.argsort(-units, kind="stable")[:-deficit]] -= 1
    return units
