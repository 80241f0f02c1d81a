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
    row (an ordered sample without replacement: the row is a uniform K-subset and each column on
    its own is uniform over the user's non-positive items), for every user, including users who
    have interacted with all but K items. Two exact paths:

    - small data (a dense (users, items) rank-to-item table fits in 64 MB; MovieLens 100K: 3 MB):
      K distinct *ranks* in ``0 .. m_u - 1`` (``m_u`` = the user's number of non-positive items)
      are drawn without replacement (one 32-bit word each, ``uniform_below``) and each is mapped
      to its item by one gather from the table;
    - otherwise, rejection (``_rejection_sample``): each lane draws uniform items and keeps the
      first that is not a positive (one read of ``HASH_WINDOW`` contiguous slots of the user's
      open-addressing region in ``PositiveIndex``) and not an earlier lane's item. Rounds
      repeat for the unsettled rows only; after ``REJECTION_ROUNDS`` rounds the rows still
      unsettled (users whose positives are most of the catalogue) take the rank path, with ranks
      mapped by a binary search over the user's sorted positives, under ``lax.cond``, so the
      common step never pays for it. At 100k users x 20k items x 5M positives this took
      ~0.4 ms per batch of 1024 x 10 against ~1.4 ms for the binary search of every rank.

    Keeping the K negatives of a row distinct costs one (B, K, K) comparison per round, a small
    part of a round (the hash-table read dominates), so the guarantee is kept: a repeated
    negative would score the same item twice in a row's loss. A user with fewer than K
    non-positive items makes ``sample`` raise (on the host, while tracing), naming the user.
  ``"uniform"``: uniform over all items (one word each, mapped as in ``uniform_below``), no check
    (may return positives and repeats).
  ``"popularity"``: item ``i`` with probability proportional to ``count_i ** alpha`` (word2vec's
    0.75 by default), no check. ``log_probs`` holds log Q for the sampled-softmax correction.

``PositiveIndex`` is the device-side CSR of each user's positives, plus an open-addressing hash
table of them, with vectorised membership (``contains``: one window of the hash table) and
rank-to-item (``nth_negative``) queries.

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

from hybridrec.data.interactions import Interactions, InteractionsError, aligned_empty

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
# Slots a membership query reads in PositiveIndex's hash table. With regions of twice the user's
# positives, the 5M-positive power-law table placed all but 27k of its items within 4 slots of
# home (users of the others get larger regions: 2.4 slots per positive in all); a window of 4
# sampled ~15% faster than one of 8 (2.1 slots per positive), one of 2 needed 9 slots per positive.
HASH_WINDOW = 4
# Home slots per positive in a user's hash region (load factor 1/2) before any enlargement.
_HASH_SLOTS_PER_POSITIVE = 2
# Redraw rounds of the rejection sampler before the exact rank path (``NegativeSampler``).
REJECTION_ROUNDS = 16
# Rows the rejection sampler's later rounds redraw at a time, at least (``_rejection_sample``):
# at 100k x 20k x 5M, about 40 of 1024 rows are left after the first round.
_COMPACT_ROWS = 64


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
      hash_starts: (num_users,) int32 start of each user's region of ``hash_slots``.
      hash_sizes: (num_users,) uint32 number of home slots ``R_u`` of each region.
      hash_slots: (total,) int16 (item IDs below 2**15) or int32 open-addressing table of each
        user's positives, -1 = empty:
        item ``i`` of user ``u`` lies within ``HASH_WINDOW`` slots of its home slot
        ``hash_starts[u] + floor(h(u, i) * R_u / 2**32)``, so ``contains`` reads one small
        contiguous window per query instead of bisecting (see ``_hash_table``).
      num_items: size of the item ID space (static).
      num_steps: bisection steps, ``ceil(log2(max_positives + 1))`` (static).
      max_positives: the largest number of positives of one user (static).
      densest_user: raw ID of that user, for error messages (static).
    """

    indptr: jax.Array
    indices: jax.Array
    offsets: jax.Array
    negatives: jax.Array | None
    hash_starts: jax.Array
    hash_sizes: jax.Array
    hash_slots: jax.Array
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
        if len(interactions) >= 2**31 - 1:
            raise SamplingError(
                f"PositiveIndex: {len(interactions)} positives do not fit int32 offsets"
            )
        # Each user's distinct items, ascending (the CSR layout), shared with the evaluator's
        # exclusions; built from the ID arrays, so a pair with zero weight is still a positive.
        indptr, items = interactions.item_lists
        counts = np.diff(indptr)
        # offsets[k] = items[k] - (k - indptr[user]): the item minus its rank within its user.
        # Per user, so no (P,) array of users is made (memory: hybridrec.data.interactions).
        offsets = aligned_empty(len(items) + 1, np.int32)
        offsets[:-1] = items
        offsets[:-1] -= np.arange(len(items), dtype=np.int32)
        offsets[:-1] += np.repeat(indptr[:-1].astype(np.int32), counts)
        sentinel = np.iinfo(np.int32).max
        offsets[-1] = sentinel
        densest = int(np.argmax(counts)) if num_users else 0
        max_positives = int(counts.max()) if num_users else 0
        raw = interactions.user_map.to_raw(densest) if num_users else ""
        raw = raw.item() if isinstance(raw, np.generic) else raw
        negatives = _negatives_table(indptr, items, num_items, dense_limit_bytes)
        hash_starts, hash_sizes, hash_slots = _hash_table(indptr, items, num_items)
        indices = aligned_empty(len(items) + 1, np.int32)
        indices[:-1] = items
        indices[-1] = sentinel
        # device_put, not jnp.asarray: on a CPU the device arrays then share these aligned host
        # arrays' memory (hybridrec.data.interactions.aligned) instead of copying them.
        return cls(
            indptr=jax.device_put(indptr.astype(np.int32)),
            indices=jax.device_put(indices),
            offsets=jax.device_put(offsets),
            negatives=None if negatives is None else jax.device_put(negatives),
            hash_starts=jax.device_put(hash_starts),
            hash_sizes=jax.device_put(hash_sizes),
            hash_slots=jax.device_put(hash_slots),
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
        return self.in_window(self.home_slots(user_ids, item_ids), item_ids)

    def home_slots(self, user_ids: jax.Array, item_ids: jax.Array) -> jax.Array:
        """(B, ...) int32 home slot in ``hash_slots`` of each (user, item) (see ``contains``)."""
        extra = (1,) * (item_ids.ndim - 1)
        starts = self.hash_starts[user_ids].reshape(user_ids.shape + extra)
        sizes = self.hash_sizes[user_ids].reshape(user_ids.shape + extra)
        users = jnp.broadcast_to(user_ids.reshape(user_ids.shape + extra), item_ids.shape)
        return starts + _mul_high(_slot_hash(users, item_ids), sizes).astype(jnp.int32)

    def in_window(self, home: jax.Array, item_ids: jax.Array) -> jax.Array:
        """(B, ...) bool: whether each item is in the ``HASH_WINDOW`` slots from its home slot."""
        # One gather of a contiguous slice per query (indexing by home + arange(W) made XLA
        # compute each slot's index, and anything fused into it, W times).
        window = jax.vmap(
            lambda start: lax.dynamic_slice_in_dim(self.hash_slots, start, HASH_WINDOW)
        )(home.reshape(-1)).reshape(item_ids.shape + (HASH_WINDOW,))
        return jnp.any(window.astype(item_ids.dtype) == item_ids[..., None], axis=-1)

    def contains_by_bisection(self, user_ids: jax.Array, item_ids: jax.Array) -> jax.Array:
        """``contains`` by a binary search of the user's sorted positives (a reference)."""
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


def _hash_table(indptr: np.ndarray, items: np.ndarray, num_items: int) -> tuple[np.ndarray, ...]:
    """Each user's positives in an open-addressing region of their own; see ``PositiveIndex``.

    User ``u`` with ``d`` positives gets ``R_u = max(1, 2 d)`` home slots plus ``HASH_WINDOW - 1``
    overflow slots, so a window starting at any home slot stays inside the region. An item's
    home slot is ``floor(h(u, i) * R_u / 2**32)`` (``_slot_hash``). Placement is linear probing
    in the order of home slots, which in a sorted array is a cumulative maximum
    (``slot_k = k + max_{j <= k}(home_j - j)``) and minimises the largest displacement; a user
    whose items do not all land within ``HASH_WINDOW`` slots of home gets a region twice as
    large, and that user's items are placed again (a few thousand users of 100k, two or three
    times, on power-law data; 0.6 s for 5M positives).

    Args:
      indptr: (num_users + 1,) int64 CSR row pointers; items: (nnz,) int32.
      num_items: size of the item ID space.

    Returns:
      ``(starts (num_users,) int32, sizes (num_users,) uint32, slots (total,))``, slots int16
      when every item ID fits, else int32.

    Users are placed in groups of about ``_HASH_GROUP`` positives: a region depends only on its
    user's items, so the groups are independent, and the build's temporaries (~40 bytes a
    positive) stay at ~0.2 GB, where at 50M positives they had reached 2 GB at once.
    """
    num_users = len(indptr) - 1
    sizes = np.empty(num_users, np.int64)
    offsets = np.empty(len(items), np.int32)  # each item's slot within its user's region
    groups = []
    first = 0
    while first < num_users:
        # Users first .. last - 1: about _HASH_GROUP positives, and at least one user.
        last = int(np.searchsorted(indptr, indptr[first] + _HASH_GROUP, side="right")) - 1
        last = min(max(last, first + 1), num_users)
        lo, hi = int(indptr[first]), int(indptr[last])
        sizes[first:last], offsets[lo:hi] = _place(
            indptr[first : last + 1] - lo, items[lo:hi], first
        )
        groups.append((first, last, lo, hi))
        first = last
    layout = np.zeros(num_users + 1, np.int64)
    np.cumsum(sizes + HASH_WINDOW - 1, out=layout[1:])
    if layout[-1] >= 2**31 - 1:
        raise SamplingError(f"PositiveIndex: a hash table of {layout[-1]} slots needs int64")
    # int16 where item IDs fit: half the memory read per query (the table is far larger than
    # the caches; ~10% off the sampler at 20k items).
    dtype = np.int16 if num_items <= np.iinfo(np.int16).max else np.int32
    table = aligned_empty(int(layout[-1]), dtype)
    table.fill(-1)
    for first, last, lo, hi in groups:
        table[np.repeat(layout[first:last], np.diff(indptr[first : last + 1])) + offsets[lo:hi]] = (
            items[lo:hi]
        )
    return layout[:-1].astype(np.int32), sizes.astype(np.uint32), table


# Positives placed at a time by ``_hash_table``.
_HASH_GROUP = 1 << 22


def _place(indptr: np.ndarray, items: np.ndarray, first_user: int) -> tuple[np.ndarray, ...]:
    """Region sizes and slots of one group of users (``_hash_table``).

    Args:
      indptr: (n + 1,) int64 row pointers of users ``first_user .. first_user + n - 1``, from 0.
      items: (indptr[-1],) int32 their items.
      first_user: the group's first user index (the hash reads the global user index).

    Returns:
      ``(sizes (n,) int64, offsets (len(items),) int32)``: each user's number of home slots and
      each item's slot within its user's region.
    """
    num_users = len(indptr) - 1
    counts = np.diff(indptr)
    # int32 per positive (uint32 hashes; int64 only for slot positions).
    users = np.repeat(np.arange(num_users, dtype=np.int32), counts)
    hashes = _slot_hash_np(users + np.int32(first_user), items)  # uint32
    sizes = np.maximum(1, _HASH_SLOTS_PER_POSITIVE * counts).astype(np.int64)
    offsets = np.zeros(len(items), np.int32)
    # The items (re)placed this round: all, then the grown users'.
    todo = np.arange(len(items), dtype=np.int32)
    for _ in range(40):  # sizes only grow; 32-bit hashes of distinct items separate by 2**32
        # Lay the regions of the users placed this round end to end and probe linearly in the
        # order of home slots: slot_k = k + max_{j <= k}(home_j - j), one cumulative maximum.
        # A region's items pass its end only when displaced too far, which grows that user, so
        # the maximum carried over from the previous region never decides a kept placement.
        todo_users = users[todo]
        lengths = sizes + HASH_WINDOW - 1
        layout = np.zeros(num_users + 1, np.int64)
        np.cumsum(lengths, out=layout[1:])
        home = hashes[todo].astype(np.uint64)
        home *= sizes[todo_users].astype(np.uint64)
        home >>= np.uint64(32)
        home = home.view(np.int64)  # < 2**32 after the shift: the same values
        home += layout[todo_users]
        del todo_users
        order = np.argsort(home)  # ties (equal home slots) may come in any order
        ordered = home[order]
        del home
        # slot = rank + max-accumulate(ordered - rank), in place
        rank = np.arange(len(ordered), dtype=np.int64)
        slot = ordered - rank
        np.maximum.accumulate(slot, out=slot)
        slot += rank
        del rank
        placed = todo[order]
        del order
        placed_users = users[placed]
        offsets[placed] = slot - layout[placed_users]
        grow = np.unique(placed_users[slot - ordered >= HASH_WINDOW])
        del placed, placed_users, slot, ordered
        if not len(grow):
            return sizes, offsets
        sizes[grow] *= 2
        regrown = np.zeros(num_users, bool)
        regrown[grow] = True
        todo = np.flatnonzero(regrown[users])
    raise SamplingError("PositiveIndex: could not place the positives in the hash table")


def _slot_hash_np(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """numpy twin of ``_slot_hash`` (the host builds the table the device queries)."""
    x = items.astype(np.uint32) * np.uint32(_GOLDEN)
    x ^= users.astype(np.uint32) * np.uint32(_USER_MIX)
    for shift, mult in zip((16, 13), _FMIX_MULTIPLIERS):
        x ^= x >> np.uint32(shift)
        x *= np.uint32(mult)
    return x ^ (x >> np.uint32(16))


def _slot_hash(users: jax.Array, items: jax.Array) -> jax.Array:
    """uint32 hash ``fmix32(i * G ^ u * C)`` of (user, item) pairs: their hash-table home slots."""
    x = items.astype(jnp.uint32) * jnp.uint32(_GOLDEN)
    return _fmix32(x ^ users.astype(jnp.uint32) * jnp.uint32(_USER_MIX))


# MurmurHash3's 32-bit finalizer (Appleby): multipliers and shifts chosen for full avalanche.
_FMIX_MULTIPLIERS = (0x85EBCA6B, 0xC2B2AE35)
# 2**32 / golden ratio, odd: spreads consecutive counters over all 32 bits before the first round.
_GOLDEN = 0x9E3779B9
# An odd constant (xxHash's PRIME32_3) mixing the user into the hash table's slot hash.
_USER_MIX = 0xC2B2AE3D
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


def _rejection_sample(key, positives, user_ids, num_negatives, max_rounds, by_rank):
    """Exact negatives by rejection: K distinct non-positive items per row, uniformly.

    Lane ``j`` of a row reads its own stream of uniform candidates (one 32-bit word each, a
    fresh counter range per round) and keeps the first that is neither a positive of the user
    (``PositiveIndex.contains``, one window of the hash table) nor equal to the value of an
    earlier lane of the row: the definition of an ordered sample without replacement, so the
    row is a uniform K-subset and each lane is uniform over the user's non-positive items. Lanes
    move in parallel: a lane redraws when its candidate is a positive or equals the value of an
    earlier lane that is *settled* (every lane up to it is valid, so that value is final); a
    lane that only clashes with an unsettled lane waits. The first unsettled lane always
    redraws, so each round settles at least one more lane per unfinished row.

    Rounds continue while a row is unsettled, at most ``max_rounds`` times; the rows still
    unsettled then (users whose positives are most of the catalogue) take ``by_rank(key)``, the
    exact rank path, under ``lax.cond``, so the common step never pays for it. Which path a row
    takes does not depend on which non-positive items it drew (relabelling them maps one run of
    the rounds onto another), so the mixture is exactly uniform too.

    Args:
      key: a PRNG key; positives: the ``PositiveIndex``; user_ids: (B,) int32.
      num_negatives: K; max_rounds: redraw rounds before the rank path.
      by_rank: ``key -> (B, K)`` exact negatives by rank.

    Returns:
      (B, K) int32.
    """
    batch = user_ids.shape[0]
    size = batch * num_negatives
    if (max_rounds + 2) * size > 2**32:  # counters of rounds 0 .. max_rounds + 1
        raise SamplingError(f"rejection sampling of {size} negatives needs fewer rounds")
    k0, k1 = round_keys(key)
    num_items = jnp.uint32(positives.num_items)
    lanes = jnp.arange(num_negatives, dtype=jnp.uint32)
    lane_ids = jnp.arange(num_negatives, dtype=jnp.int32)
    earlier = jnp.tril(jnp.ones((num_negatives, num_negatives), bool), -1)  # [j, i]: i < j
    compact = min(max(_COMPACT_ROWS, batch // 16), batch)

    def draw(round_, rows, candidates, redraw):
        """New candidates where ``redraw`` (rows: (R,) row numbers), the old ones elsewhere."""
        counters = (round_ * size).astype(jnp.uint32) + (
            rows.astype(jnp.uint32)[:, None] * num_negatives + lanes
        )
        fresh = _mul_high(hash_bits(k0, k1, counters), num_items).astype(jnp.int32)
        return jnp.where(redraw, fresh, candidates)

    def settle(users, candidates, home=None):
        """(settled, redraw), each (R, K) bool, for rows of users (R,) and candidates (R, K)."""
        if home is None:
            home = positives.home_slots(users, candidates)
        is_positive = positives.in_window(home, candidates)
        same = (candidates[:, :, None] == candidates[:, None, :]) & earlier  # (R, K, K)
        valid = ~is_positive & ~jnp.any(same, axis=2)
        # Settled: every lane up to this one is valid (a min, not a cumprod: XLA:CPU's
        # reduce-window for a cumulative product was a visible part of a round).
        first_invalid = jnp.min(jnp.where(valid, num_negatives, lane_ids), axis=1, keepdims=True)
        settled = lane_ids < first_invalid
        redraw = is_positive | jnp.any(same & settled[:, None, :], axis=2)
        return settled, redraw

    # Phase 1, every row, while more than `compact` rows are unsettled (usually once). Each
    # round judges the candidates it receives and draws the next ones (and their home slots)
    # at its end, so that they are loop variables, i.e. buffers: computed in the same fusion as
    # their uses, their hashes would be recomputed for each slot of the window and each of the
    # K * K comparisons (3x slower on a CPU).
    all_rows = jnp.arange(batch, dtype=jnp.int32)

    def full_round(carry):
        round_, candidates, home, _ = carry
        settled, redraw = settle(user_ids, candidates, home)
        candidates = draw(round_ + 1, all_rows, candidates, redraw)
        home = jnp.where(redraw, positives.home_slots(user_ids, candidates), home)
        return round_ + 1, candidates, home, jnp.all(settled, axis=1)

    def many_left(carry):
        round_, *_, done = carry
        return (round_ <= max_rounds) & (jnp.sum(~done) > compact)

    zero = jnp.zeros((), jnp.int32)
    first = draw(zero, all_rows, jnp.zeros((batch, num_negatives), jnp.int32), True)
    init = (zero, first, positives.home_slots(user_ids, first), jnp.zeros((batch,), bool))
    round_, candidates, _, done = lax.while_loop(many_left, full_round, init)
    carry = (round_, candidates, done)

    # Phase 2: only the unsettled rows (at most `compact` a round), gathered and written back.
    def compact_round(carry):
        round_, candidates, done = carry
        rows = jnp.nonzero(~done, size=compact, fill_value=batch)[0]  # (R,); batch = none
        sub = candidates.at[rows].get(mode="clip")
        settled, redraw = settle(user_ids.at[rows].get(mode="clip"), sub)
        sub = draw(round_ + 1, rows, sub, redraw)
        candidates = candidates.at[rows].set(sub, mode="drop")
        done = done.at[rows].set(jnp.all(settled, axis=1), mode="drop")
        return round_ + 1, candidates, done

    def any_left(carry):
        round_, _, done = carry
        return (round_ <= max_rounds) & ~jnp.all(done)

    _, candidates, done = lax.while_loop(any_left, compact_round, carry)
    done = done[:, None]
    return lax.cond(
        jnp.all(done),
        lambda: candidates,
        lambda: jnp.where(done, candidates, by_rank(jax.random.fold_in(key, 1))),
    )


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
      rejection_rounds: ``uniform_exact`` without the dense rank-to-item table: rounds of
        rejection sampling before the rows still unsettled take the exact rank path (static;
        0: always the rank path).
    """

    positives: PositiveIndex | None
    cdf: jax.Array | None
    log_probs: jax.Array
    kind: str = struct.field(pytree_node=False)
    num_items: int = struct.field(pytree_node=False)
    alpha: float = struct.field(pytree_node=False, default=0.75)
    rejection_rounds: int = struct.field(pytree_node=False, default=REJECTION_ROUNDS)

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

        def by_rank(key):
            ranks = _distinct_ranks(key, num_allowed, int(num_negatives))  # (B, K)
            return pos.nth_negative(user_ids, ranks)

        if pos.negatives is not None or self.rejection_rounds < 1:
            return by_rank(key)
        return _rejection_sample(
            key, pos, user_ids, int(num_negatives), self.rejection_rounds, by_rank
        )

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
