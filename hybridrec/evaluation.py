"""Full-ranking evaluation of a recommender over ``Interactions``, with per-user results.

``evaluate`` scores every item for batches of users (``score_fn``), ranks the users' held-out
items against the whole catalogue and returns named metrics plus the per-user values behind them,
so two models can be compared with a paired test. The metric definitions, the tie rule and the
Collie-compatible variants are stated in ``hybridrec.metrics``; this module decides *which* items
are relevant, which are filtered out and which users count.

Protocol
--------
Users.
  A user is evaluated if they have at least one interaction in ``test`` (Collie's user set too).
  Everyone else is skipped and counted: ``{split}/num_users_evaluated``,
  ``{split}/num_users_skipped`` (users of the ID space without test interactions).
Relevant items.
  A user's distinct items in ``test``, whatever their rating or weight (call
  ``Interactions.to_implicit`` first to keep only positives).
Candidates.
  All items by default; ``candidates=`` (item indices) restricts every ranking to those items in
  both conventions, e.g. cold items ranked among cold items only. Held-out items outside the
  candidates are ignored; a user with none among the candidates is not evaluated.
Ties.
  By default (``tie_break="expected"``) every metric is its expectation over uniformly random
  orders of tied scores (closed forms in ``hybridrec.metrics``), so a model that scores many
  items alike (IDs only on cold items, popularity counts) gets one fair number.
Modes.
  ``"filtered"`` (default): each user's items in ``train`` and in every ``exclude`` set (pass the
  validation interactions when testing) are removed from the ranking; a test item that also
  occurs there stays a candidate. ``"collie"``: nothing is removed; reports ``collie_map@k``,
  ``collie_mrr`` and ``collie_auc`` exactly as ShopRunner/collie's ``mapk``, ``mrr``, ``auc``.
  ``"both"``: all of the above from the same scores.
Segments.
  User segments select users from the overall per-user results: ``cold_users`` (no interactions
  in ``train``) and ``warm_users``. Item segments re-rank: for ``cold_items`` (items without
  training interactions), ``warm_items`` and any mask in ``item_segments`` (see
  ``popularity_buckets``), a user's relevant items are their test items inside the segment; their
  test items outside it are removed from the ranking (they are neither hits nor misses), and
  users without test items in the segment are skipped. The candidates are all (non-filtered)
  items by default (``item_segment_candidates="all"``: can the model surface cold items against
  the whole catalogue, which is how it would be used), or only the segment's items
  (``"segment"``: how well it orders cold items among themselves, the usual cold-start score in
  LightFM-style experiments). Collie metrics and coverage are reported for the whole
  population only, popularity also for user segments.
Names.
  ``{split}/{metric}@{k}`` (``val/ndcg@10``), ``{split}/mrr``, ``{split}/auc``,
  ``{split}/coverage@{k}`` (distinct recommended items / ``num_items``),
  ``{split}/popularity@{k}`` (mean training count of recommended items), ``{split}/collie_map@{k}``,
  ``{split}/collie_mrr``, ``{split}/collie_auc``, and ``{split}/{segment}/{metric}@{k}``.

Exclusions: filtered mode needs each user's training (and ``exclude``) items; ``build_exclusions``
builds that structure once with a sort (no ``np.unique`` hash of millions of pairs), and a
training run passes it to every evaluation (``exclusions=``), so repeated evaluations of a split
cost only the scoring.

Speed: the jitted kernel ranks ``chunk_size`` users at a time (a ``lax.map`` over chunks of a
``batch_size`` batch), so the score block of a chunk stays in cache while it is read a few times;
with ``traceable=True`` the scoring itself (e.g. ``U_b @ V.T``) runs inside the same jitted
function. Shapes are fixed per call (batches padded, relevant and excluded lists padded to the
largest user), so one evaluation compiles once and a second one with the same shapes not at all.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from hybridrec.data.interactions import Interactions, distinct_item_lists, pair_keys
from hybridrec.metrics import (
    check_metric_names,
    metrics_from_stats,
    ranking_stats,
)

Mode = Literal["filtered", "collie", "both"]
DEFAULT_METRICS = (
    "ndcg",
    "recall",
    "precision",
    "hit_rate",
    "map",
    "mrr",
    "auc",
    "coverage",
    "popularity",
)
USER_SEGMENTS = ("cold_users", "warm_users")
ITEM_SEGMENTS = ("cold_items", "warm_items")


class EvaluationError(ValueError):
    """Raised for bad evaluation inputs; the message says which argument and what is wrong."""


# --------------------------------------------------------------------------- results
@dataclasses.dataclass
class EvalResult:
    """Metrics of one evaluation and the per-user values behind them.

    Attributes:
      metrics: flat dict of named scalars, e.g. ``{"val/ndcg@10": 0.31, ...}``.
      per_user: metric name (as in ``metrics``) -> (U,) float per-user values, for every metric
        that is a mean over users.
      user_ids: metric name -> (U,) int user indices of ``per_user[name]``, ascending.
    """

    metrics: dict[str, float]
    per_user: dict[str, np.ndarray]
    user_ids: dict[str, np.ndarray]

    def values(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """``(user_ids, values)`` of one per-user metric; ``KeyError`` lists the known names."""
        if metric not in self.per_user:
            raise KeyError(f"no per-user values for {metric!r}; known: {sorted(self.per_user)}")
        return self.user_ids[metric], self.per_user[metric]

    def confidence_intervals(
        self, confidence: float = 0.95
    ) -> dict[str, tuple[float, float, float]]:
        """Metric name -> ``(mean, low, high)`` Student-t interval over users."""
        return {
            name: confidence_interval(values, confidence=confidence)
            for name, values in self.per_user.items()
        }


@dataclasses.dataclass(frozen=True)
class PairedTestResult:
    """Comparison of two models on the same users (``paired_test``).

    Attributes:
      metric: the metric compared.
      num_users: users evaluated by both models.
      mean_a, mean_b: the metric's mean for each model over those users.
      mean_difference: ``mean_b - mean_a``.
      ci_low, ci_high: bootstrap percentile interval of ``mean_difference``.
      t_statistic, p_value: paired t-test (``scipy.stats.ttest_rel``), two-sided.
    """

    metric: str
    num_users: int
    mean_a: float
    mean_b: float
    mean_difference: float
    ci_low: float
    ci_high: float
    t_statistic: float
    p_value: float


# --------------------------------------------------------------------------- per-user lists
def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an int64 array: sort plus a neighbour test (numpy's
    ``np.unique`` takes a hash path that is several times slower on millions of int64)."""
    keys = np.sort(keys)
    if len(keys) > 1:
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    return keys


def _isin_sorted(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(len(keys),) bool: which ``keys`` occur in ``sorted_keys`` (sorted, distinct)."""
    if not len(sorted_keys):
        return np.zeros(len(keys), bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys


def _lists_from_keys(
    keys: np.ndarray, num_users: int, num_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """CSR structure ``(indptr (U + 1,), indices)`` from sorted unique ``user * N + item`` keys.

    Built from the pairs rather than ``Interactions.csr`` so that an interaction whose weight is 0
    still counts as present.
    """
    users = keys // num_items
    indptr = np.zeros(num_users + 1, np.int64)
    np.cumsum(np.bincount(users, minlength=num_users), out=indptr[1:])
    return indptr, (keys % num_items).astype(np.int32)


def _pair_keys(inter: Interactions) -> np.ndarray:
    """Sorted unique ``user * num_items + item`` keys of the interactions (int64)."""
    return _sorted_unique(pair_keys(inter.user_ids, inter.item_ids, inter.num_items))


@dataclasses.dataclass(frozen=True, eq=False)
class Exclusions:
    """The items filtered out of each user's ranking, built once per run (``build_exclusions``).

    Filtered evaluation removes every user's training items (and those of any ``exclude``
    split) from their ranking. Building that per-user structure from millions of pairs costs a
    sort; a training run evaluates the same split every epoch, so it builds it once and passes
    it as ``evaluate(..., exclusions=...)``, leaving each evaluation only the scoring.

    Attributes:
      num_users, num_items: the ID space.
      indptr: (num_users + 1,) int64; user ``u``'s items are ``indices[indptr[u]:indptr[u + 1]]``.
      indices: (P,) int32 item indices, ascending within each user.
      source_sizes: interactions in each source (``train`` first, then ``exclude``), checked
        against the splits ``evaluate`` is given.
    """

    num_users: int
    num_items: int
    indptr: np.ndarray
    indices: np.ndarray
    source_sizes: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.indices)

    @functools.cached_property
    def keys(self) -> np.ndarray:
        """(P,) int64 sorted ``user * num_items + item`` of the excluded pairs; made on first
        use (only item segments read it), not by ``build_exclusions``: at 50M pairs it is 0.4 GB."""
        users = np.repeat(np.arange(self.num_users, dtype=np.int64), np.diff(self.indptr))
        users *= self.num_items
        users += self.indices
        return users


def build_exclusions(
    train: Interactions | None, exclude: Sequence[Interactions] = ()
) -> Exclusions:
    """The exclusion structure of ``train`` plus the ``exclude`` splits, for ``evaluate``.

    Args:
      train: the training interactions (or None: only ``exclude``).
      exclude: more splits to filter out (e.g. the validation split when testing).

    Returns:
      An ``Exclusions``. With ``train`` alone, its arrays are ``train.item_lists`` (shared with
      the negative sampler, no copy); otherwise about 4 bytes per distinct pair, built with 8
      more (~0.5 s for 5M pairs on one core).

    Raises:
      EvaluationError: for no source at all, or sources in different ID spaces.
    """
    sources = ([train] if train is not None else []) + list(exclude)
    if not sources:
        raise EvaluationError("build_exclusions needs train or at least one exclude split")
    for i, src in enumerate(sources):
        if not isinstance(src, Interactions):
            raise EvaluationError(
                f"build_exclusions takes Interactions, got {type(src).__name__} (source {i})"
            )
        _check_space(f"source {i}", src, sources[0])
    num_users, num_items = sources[0].num_users, sources[0].num_items
    if len(sources) == 1:
        indptr, indices = sources[0].item_lists
    else:
        indptr, indices = distinct_item_lists(
            np.concatenate([s.user_ids for s in sources]),
            np.concatenate([s.item_ids for s in sources]),
            num_users,
            num_items,
        )
    return Exclusions(
        num_users=num_users,
        num_items=num_items,
        indptr=indptr,
        indices=indices,
        source_sizes=tuple(len(s) for s in sources),
    )


def _padded(indptr: np.ndarray, indices: np.ndarray, users: np.ndarray, width: int) -> np.ndarray:
    """(len(users), width) int32 item lists of ``users``, padded with -1 (no Python loop)."""
    starts, counts = indptr[users], indptr[users + 1] - indptr[users]
    out = np.full((len(users), max(width, 1)), -1, np.int32)
    total = int(counts.sum())
    if total:
        row = np.repeat(np.arange(len(users)), counts)
        offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        out[row, offsets] = indices[np.repeat(starts, counts) + offsets]
    return out


# --------------------------------------------------------------------------- jitted kernel
@functools.lru_cache(maxsize=64)
def _kernel(
    score_fn: Callable | None,
    *,
    with_params: bool,
    num_items: int,
    chunk_size: int,
    k: int,
    ks: tuple[int, ...],
    metrics: tuple[str, ...],
    collie: bool,
    collie_sigmoid: bool,
    ties: str,
    reorder: bool,
    has_exclude: bool,
    has_mask: bool,
    want_items: bool,
):
    """A jitted ``(params, user_ids | scores, relevant, exclude, mask, popularity) -> dict``.

    With ``score_fn`` the scores are computed inside (``score_fn(user_ids)`` or
    ``score_fn(params, user_ids)``); without it the batch's (B, N) scores are passed in.
    Both map over chunks of ``chunk_size`` users so that each chunk's scores stay in cache.
    With ``reorder`` the columns are permuted by ``order`` first (the tie order of the lists).
    """
    ranking = tuple(m for m in metrics if m != "coverage")  # built-in and plug-in metrics

    def one_chunk(params, inputs, relevant, exclude, mask, popularity, order):
        if score_fn is None:
            scores = inputs
        else:
            scores = score_fn(params, inputs) if with_params else score_fn(inputs)
            if getattr(scores, "shape", None) != (inputs.shape[0], num_items):
                raise EvaluationError(
                    f"score_fn must return (B, num_items={num_items}) scores for (B,) user_ids, "
                    f"got shape {getattr(scores, 'shape', None)} for B={inputs.shape[0]}"
                )
        # Columns in tie-break order: ties go to the earlier column. The caller has mapped the
        # relevant/excluded items, the candidate mask and the popularity to the same order.
        if reorder:
            scores = jnp.take(scores, order, axis=1)
        stats = ranking_stats(
            scores,
            relevant,
            exclude if has_exclude else None,
            k=k,
            candidate_mask=mask if has_mask else None,
            with_auc="auc" in ranking,
            collie=collie,
            collie_sigmoid=collie_sigmoid,
            ties=ties,
            item_popularity=popularity if "popularity" in ranking else None,
        )
        out = metrics_from_stats(stats, ks=ks, metrics=ranking)
        out["num_relevant"] = stats["num_relevant"]
        out["finite"] = stats["finite"]
        if want_items:
            items = stats["topk_items"]
            out["topk_items"] = jnp.where(items >= 0, order[items], -1) if reorder else items
        return out

    def run(params, inputs, relevant, exclude, mask, popularity, order):
        b = relevant.shape[0]
        c = chunk_size

        def split(x):
            return x.reshape((b // c, c) + x.shape[1:])

        def body(xs):
            return one_chunk(params, xs[0], xs[1], xs[2], mask, popularity, order)

        out = jax.lax.map(body, (split(inputs), split(relevant), split(exclude)))
        return jax.tree.map(lambda x: x.reshape((b,) + x.shape[2:]), out)

    return jax.jit(run)


def _bucket(n: int) -> int:
    """The next power of two >= ``n``, at least 8."""
    return max(8, 1 << max(0, int(n) - 1).bit_length())


def _choose_chunk(batch_size: int, num_items: int, chunk_size: int | None) -> int:
    """Users per in-cache chunk: about 8 MB of float32 scores, a divisor of ``batch_size``."""
    if chunk_size is None:
        chunk_size = max(1, min(batch_size, (1 << 21) // max(num_items, 1)))
    chunk_size = max(1, min(int(chunk_size), batch_size))
    while batch_size % chunk_size:
        chunk_size -= 1
    return chunk_size


#: Batches of users ranked at once (dispatched, not yet fetched) by ``_rank_users``.
_IN_FLIGHT = 1
#: The most bytes of one batch's scores from a score_fn that is not traceable: such scores are
#: a (batch, num_items) float32 array on the host, then on the device. Batches of 1024 users
#: at 20k items (82 MB each) were a run's peak memory, from the popularity reference; at
#: MovieLens's 1,682 items the cap is above any usual batch size, so nothing changes there.
_HOST_SCORES_BYTES = 16 * 2**20


def _rank_users(
    score_fn: Callable,
    users: np.ndarray,
    rel: tuple[np.ndarray, np.ndarray],
    excl: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    num_items: int,
    ks: tuple[int, ...],
    metrics: tuple[str, ...],
    collie: bool,
    collie_sigmoid: bool,
    candidate_mask: np.ndarray | None,
    popularity: np.ndarray | None,
    batch_size: int,
    chunk_size: int | None,
    traceable: bool,
    score_params: Any,
    ties: str,
    tie_order: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """Runs the kernel over ``users`` in batches; returns per-user arrays in ``users`` order.

    ``excl`` holds CSR parts ``(indptr, indices)`` whose rows are disjoint per user; a user's
    excluded items are the union of their rows. ``tie_order`` (or None: item order) permutes
    the columns before ranking.
    """
    if not traceable:
        fits = max(_HOST_SCORES_BYTES // (4 * max(num_items, 1)), 16)
        batch_size = min(batch_size, 1 << (fits.bit_length() - 1))  # a power of two
    reorder = tie_order is not None
    if reorder:
        # position[i] is item i's column after reordering by ``tie_order``.
        position = np.empty(num_items, np.int32)
        position[tie_order] = np.arange(num_items, dtype=np.int32)
    else:
        tie_order = np.arange(num_items, dtype=np.int32)

    def to_positions(lists: np.ndarray) -> np.ndarray:
        if not reorder:
            return lists
        return np.where(lists >= 0, position[np.maximum(lists, 0)], -1).astype(np.int32)

    n_rel = rel[0][users + 1] - rel[0][users]
    # Users with similar numbers of relevant items share a batch, so the AUC loop (whose trip
    # count follows the batch's largest list) does little padded work.
    order = np.argsort(n_rel, kind="stable")
    sorted_users = users[order]
    # Shapes are rounded up to powers of two so that segments and later evaluations of similar
    # data reuse the compiled kernel.
    width_r = _bucket(int(n_rel.max()) if len(users) else 1)
    widths = [int((ip[users + 1] - ip[users]).max()) if len(users) else 0 for ip, _ in excl]
    width_e = _bucket(sum(widths))
    chunk = _choose_chunk(batch_size, num_items, chunk_size)
    k = max(ks)
    want_items = "coverage" in metrics
    kernel = _kernel(
        score_fn if traceable else None,
        with_params=score_params is not None,
        num_items=num_items,
        chunk_size=chunk,
        k=k,
        ks=ks,
        metrics=metrics,
        collie=collie,
        collie_sigmoid=collie_sigmoid,
        ties=ties,
        reorder=reorder,
        has_exclude=bool(excl),
        has_mask=candidate_mask is not None,
        want_items=want_items,
    )
    mask = jnp.asarray(
        candidate_mask[tie_order] if candidate_mask is not None else np.ones(1, bool)
    )
    pop = np.asarray(popularity if popularity is not None else np.zeros(num_items))
    pop = jnp.asarray(pop[tie_order], jnp.float32)
    tie_columns = jnp.asarray(tie_order, jnp.int32)

    fetched: dict[str, list[np.ndarray]] = {}

    def fetch(batch, real, out) -> None:
        host = jax.device_get(out)
        bad = ~host["finite"][:real]
        if bad.any():
            raise EvaluationError(
                f"score_fn returned NaN or infinite scores for user index {int(batch[np.argmax(bad)])} "
                f"({int(bad.sum())} users in this batch); scores must be finite"
            )
        for name, value in host.items():
            fetched.setdefault(name, []).append(np.asarray(value)[:real])

    pending = []
    for start in range(0, len(sorted_users), batch_size):
        batch = sorted_users[start : start + batch_size]
        real = len(batch)
        # Pad with the last user so shapes stay fixed; padded rows are dropped below.
        batch_p = np.concatenate([batch, np.full(batch_size - real, batch[-1])]).astype(np.int32)
        relevant = _padded(*rel, batch_p, width_r)
        relevant[real:] = -1
        exclude = np.full((batch_size, width_e), -1, np.int32)
        col = 0
        for (indptr, indices), width in zip(excl, widths):
            if width:
                exclude[:, col : col + width] = _padded(indptr, indices, batch_p, width)
            col += width
        if traceable:
            inputs = jnp.asarray(batch_p)
        else:
            inputs = score_fn(batch_p)
            shape = getattr(inputs, "shape", None)
            if shape != (batch_size, num_items):
                raise EvaluationError(
                    f"score_fn(user_ids) must return ({batch_size}, num_items={num_items}) scores "
                    f"for {batch_size} user_ids, got shape {shape}"
                )
        out = kernel(
            score_params,
            inputs,
            to_positions(relevant),
            to_positions(exclude),
            mask,
            pop,
            tie_columns,
        )
        # Dispatch is asynchronous, so the next batch is prepared on the host while this one
        # runs; but at most _IN_FLIGHT batches wait unfetched, since each holds its inputs
        # (for a score_fn that is not traceable, a (batch_size, num_items) array on the host
        # and on the device: 82 MB each at 20k items). Queuing every batch of 100k users had
        # added 0.75 GB to a run's peak memory.
        pending.append((batch, real, out))
        if len(pending) > _IN_FLIGHT:
            fetch(*pending.pop(0))
    for entry in pending:
        fetch(*entry)
    result = {name: np.concatenate(parts) for name, parts in fetched.items()}
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return {name: value[inverse] for name, value in result.items()}


# --------------------------------------------------------------------------- evaluate
def _check_space(name: str, inter: Interactions, test: Interactions) -> None:
    if not isinstance(inter, Interactions):
        raise EvaluationError(f"{name} must be an Interactions, got {type(inter).__name__}")
    if inter.user_map != test.user_map or inter.item_map != test.item_map:
        raise EvaluationError(
            f"{name} and test live in different ID spaces ({inter.num_users}x{inter.num_items} vs "
            f"{test.num_users}x{test.num_items}); split them from the same Interactions"
        )


def popularity_buckets(item_counts: np.ndarray, num_buckets: int = 3) -> dict[str, np.ndarray]:
    """Item segments by training popularity, for ``evaluate(item_segments=...)``.

    Items with at least one training interaction, ordered by count (descending, ties by index),
    are cut into ``num_buckets`` groups of (nearly) equal numbers of items: ``pop_1`` holds the
    most popular items, ``pop_{num_buckets}`` the least popular warm ones. Cold items (count 0)
    belong to no bucket; they are the ``cold_items`` segment.

    Args:
      item_counts: (N,) training interactions per item (``train.item_counts()``).
      num_buckets: number of groups.

    Returns:
      ``{"pop_1": (N,) bool, ...}``.
    """
    counts = np.asarray(item_counts)
    if num_buckets < 1:
        raise EvaluationError(f"num_buckets must be >= 1, got {num_buckets}")
    warm = np.flatnonzero(counts > 0)
    ordered = warm[np.lexsort((warm, -counts[warm]))]
    out = {}
    for i, part in enumerate(np.array_split(ordered, num_buckets)):
        mask = np.zeros(len(counts), bool)
        mask[part] = True
        out[f"pop_{i + 1}"] = mask
    return out


def evaluate(
    score_fn: Callable,
    test: Interactions,
    *,
    train: Interactions | None = None,
    exclude: Sequence[Interactions] = (),
    ks: Sequence[int] = (10,),
    metrics: Sequence[str] = DEFAULT_METRICS,
    mode: Mode = "filtered",
    split_name: str = "val",
    segments: Sequence[str] = (),
    item_segments: Mapping[str, np.ndarray] | None = None,
    item_segment_candidates: Literal["all", "segment"] = "all",
    item_popularity: np.ndarray | None = None,
    batch_size: int = 1024,
    chunk_size: int | None = None,
    traceable: bool = False,
    score_params: Any = None,
    collie_sigmoid: bool = True,
    tie_break: Literal["expected", "random", "index"] = "expected",
    seed: int = 0,
    candidates: np.ndarray | None = None,
    exclusions: Exclusions | None = None,
) -> EvalResult:
    """Evaluates a recommender by full ranking over all items.

    Args:
      score_fn: scores every item for a batch of users. By default it is called eagerly as
        ``score_fn(user_ids)`` with an int32 (B,) numpy array and must return (B, num_items)
        scores (numpy or JAX). With ``traceable=True`` it is called inside the jitted kernel,
        as ``score_fn(user_ids)`` or ``score_fn(score_params, user_ids)`` when ``score_params``
        is given (pass a model's state there and keep ``score_fn`` the same object between
        calls, so the compiled kernel is reused).
      test: the held-out interactions; every user with at least one is evaluated.
      train: training interactions: filtered out of the ranking (filtered mode) and used for
        cold-start segments and item popularity.
      exclude: more interactions to filter out (e.g. validation when testing).
      ks: cut-offs for the ``@k`` metrics.
      metrics: names from ``DEFAULT_METRICS`` (ranking metrics plus ``coverage``), or plug-in
        metrics by registered name or dotted path (``hybridrec.metrics.Metric``);
        ``popularity`` is skipped when there is neither ``train`` nor ``item_popularity``.
      mode: ``"filtered"``, ``"collie"`` or ``"both"`` (see the module docstring).
      split_name: prefix of every metric name.
      segments: any of ``cold_users``, ``warm_users``, ``cold_items``, ``warm_items`` (all need
        ``train``) and the names in ``item_segments``.
      item_segments: extra item segments, name -> (num_items,) bool mask (e.g.
        ``popularity_buckets(train.item_counts())``); all are evaluated.
      item_segment_candidates: rank item-segment relevant items among ``"all"`` candidates or
        among the segment's items only (``"segment"``).
      item_popularity: (num_items,) popularity for ``popularity@k``; default the training counts.
      batch_size: users per call of ``score_fn`` and of the kernel.
      chunk_size: users ranked together inside the kernel; default about 8 MB of scores.
      traceable: see ``score_fn``.
      score_params: parameters passed to a traceable ``score_fn``.
      collie_sigmoid: ``collie_auc`` on ``sigmoid(scores)`` as Collie computes it.
      tie_break: how tied scores count. ``"expected"`` (default): every metric is its
        expectation over uniformly random orders of each user's tied items (see
        ``hybridrec.metrics``), so a model that ties many items is measured by one number, not
        by an arbitrary order; coverage@k, which is not a mean over users, is that of the lists
        a seeded random tie order gives. ``"random"``: ties are ordered by a permutation of the
        items seeded by ``seed`` (one draw of the above). ``"index"``: lower item index first.
        AUC counts ties as 1/2 in every case.
      seed: seed of the random tie order.
      candidates: (C,) int item indices that may be ranked, or None for all items. Items
        outside are never ranked, in both conventions (e.g. cold items among cold items only);
        held-out items outside the candidates are ignored, and users with no held-out item
        among them are not evaluated. Item segments rank within the candidates too.
      exclusions: ``build_exclusions(train, exclude)`` built once, e.g. per training run: used
        instead of building the same structure from ``train`` and ``exclude`` on every call
        (which must still be passed for segments and popularity; their sizes are checked).

    Returns:
      An ``EvalResult``.

    Raises:
      EvaluationError: for unknown names, mismatched ID spaces, wrong score shapes, non-finite
        scores, or a test set without users.
    """
    # ---- check the arguments
    if not isinstance(test, Interactions):
        raise EvaluationError(f"test must be an Interactions, got {type(test).__name__}")
    ks = tuple(int(k) if isinstance(k, (int, np.integer)) else k for k in ks)
    metrics = tuple(metrics)
    try:
        check_metric_names(metrics, ks)
    except ValueError as err:
        raise EvaluationError(str(err)) from None
    if mode not in ("filtered", "collie", "both"):
        raise EvaluationError(f"mode must be 'filtered', 'collie' or 'both', got {mode!r}")
    if item_segment_candidates not in ("all", "segment"):
        raise EvaluationError(
            f"item_segment_candidates must be 'all' or 'segment', got {item_segment_candidates!r}"
        )
    if batch_size < 1:
        raise EvaluationError(f"batch_size must be >= 1, got {batch_size}")
    if train is not None:
        _check_space("train", train, test)
    exclude = list(exclude)
    for i, ex in enumerate(exclude):
        _check_space(f"exclude[{i}]", ex, test)
    item_segments = dict(item_segments or {})
    known = set(USER_SEGMENTS) | set(ITEM_SEGMENTS) | set(item_segments)
    unknown = [s for s in segments if s not in known]
    if unknown:
        raise EvaluationError(f"unknown segment(s) {unknown}; choose from {sorted(known)}")
    wanted_segments = list(dict.fromkeys(list(segments) + list(item_segments)))
    if train is None and any(s in USER_SEGMENTS or s in ITEM_SEGMENTS for s in wanted_segments):
        raise EvaluationError(f"segments {list(segments)} need train= to tell cold from warm")
    for name, seg in item_segments.items():
        seg = np.asarray(seg)
        if seg.shape != (test.num_items,) or seg.dtype != bool:
            raise EvaluationError(
                f"item_segments[{name!r}] must be a ({test.num_items},) bool mask, "
                f"got {seg.dtype} {seg.shape}"
            )
    num_items = test.num_items
    if item_popularity is not None:
        item_popularity = np.asarray(item_popularity, np.float32)
        if item_popularity.shape != (num_items,):
            raise EvaluationError(
                f"item_popularity must have shape ({num_items},), got {item_popularity.shape}"
            )
    elif train is not None:
        item_popularity = train.item_counts().astype(np.float32)
    if "popularity" in metrics and item_popularity is None:
        metrics = tuple(m for m in metrics if m != "popularity")  # nothing to measure it against

    if tie_break not in ("expected", "random", "index"):
        raise EvaluationError(
            f"tie_break must be 'expected', 'random' or 'index', got {tie_break!r}"
        )
    cand_mask = None
    if candidates is not None:
        cand = np.asarray(candidates)
        if cand.ndim != 1 or cand.dtype.kind not in "iu":
            raise EvaluationError(
                f"candidates must be a 1-D array of item indices, got {cand.dtype} {cand.shape}"
            )
        if len(cand) and (cand.min() < 0 or cand.max() >= num_items):
            raise EvaluationError(
                f"candidates hold item index {int(cand.min() if cand.min() < 0 else cand.max())} "
                f"outside [0, {num_items})"
            )
        cand_mask = np.zeros(num_items, bool)
        cand_mask[cand] = True

    # ---- relevant and excluded items per user
    test_keys = _pair_keys(test)
    if cand_mask is not None:
        # Held-out items outside the candidates cannot be ranked: they are ignored.
        test_keys = test_keys[cand_mask[test_keys % num_items]]
    rel = _lists_from_keys(test_keys, test.num_users, num_items)
    users = np.flatnonzero(np.diff(rel[0]) > 0).astype(np.int64)
    if len(users) == 0:
        where = " among the candidates" if cand_mask is not None else ""
        raise EvaluationError(f"test has no interactions{where}, so there is no user to evaluate")
    filtered = mode in ("filtered", "both")
    collie = mode in ("collie", "both")
    # One batch shape for the whole call (segments too), so the kernel compiles once.
    batch_size = min(batch_size, _bucket(len(users)))
    sizes = tuple(len(x) for x in ([train] if train is not None else []) + exclude)
    if exclusions is not None:
        if not isinstance(exclusions, Exclusions):
            raise EvaluationError(
                f"exclusions must come from build_exclusions, got {type(exclusions).__name__}"
            )
        if (exclusions.num_users, exclusions.num_items) != (test.num_users, num_items):
            raise EvaluationError(
                f"exclusions were built for {exclusions.num_users}x{exclusions.num_items} "
                f"users x items, test has {test.num_users}x{num_items}"
            )
        if sizes and sizes != exclusions.source_sizes:
            raise EvaluationError(
                f"exclusions were built from splits of sizes {exclusions.source_sizes}, but "
                f"train and exclude have sizes {sizes}; build them from the same splits"
            )
    elif filtered and sizes:
        exclusions = build_exclusions(train, exclude)
    base_excl: list[tuple[np.ndarray, np.ndarray]] = []
    if filtered and exclusions is not None and len(exclusions):
        base_excl = [(exclusions.indptr, exclusions.indices)]

    # Under "expected" the metrics do not depend on the column order; the seeded permutation
    # still orders the lists behind coverage@k. "random" ranks by that permutation, "index" by
    # item index (lower first).
    want_lists = "coverage" in metrics and filtered
    tie_order = None
    if tie_break == "random" or (tie_break == "expected" and want_lists):
        tie_order = np.random.default_rng(seed).permutation(num_items).astype(np.int32)
    ties = "expected" if tie_break == "expected" else "index"

    def run(rel_lists, excl_parts, users_, *, metrics_, collie_, mask):
        return _rank_users(
            score_fn,
            users_,
            rel_lists,
            excl_parts,
            num_items=num_items,
            ks=ks,
            metrics=metrics_,
            collie=collie_,
            collie_sigmoid=collie_sigmoid,
            candidate_mask=mask,
            popularity=item_popularity if "popularity" in metrics_ else None,
            batch_size=batch_size,
            chunk_size=chunk_size,
            traceable=traceable,
            score_params=score_params,
            ties=ties,
            tie_order=tie_order,
        )

    run_metrics = metrics if filtered else ()
    per_user_raw = run(rel, base_excl, users, metrics_=run_metrics, collie_=collie, mask=cand_mask)

    # ---- collect
    prefix = f"{split_name}/"
    out_metrics: dict[str, float] = {
        f"{prefix}num_users_evaluated": float(len(users)),
        f"{prefix}num_users_skipped": float(test.num_users - len(users)),
    }
    per_user: dict[str, np.ndarray] = {}
    user_ids: dict[str, np.ndarray] = {}

    def record(seg_prefix: str, values: dict[str, np.ndarray], ids: np.ndarray) -> None:
        for name, arr in values.items():
            if name in ("num_relevant", "finite", "topk_items"):
                continue
            full = f"{seg_prefix}{name}"
            per_user[full] = arr.astype(np.float64)
            user_ids[full] = ids
            out_metrics[full] = float(np.mean(arr)) if len(arr) else math.nan

    record(prefix, per_user_raw, users)
    if "coverage" in metrics and filtered:
        items = per_user_raw["topk_items"]
        for k in ks:
            top = items[:, :k]
            seen = np.bincount(top[top >= 0].ravel(), minlength=num_items) > 0
            out_metrics[f"{prefix}coverage@{k}"] = int(seen.sum()) / num_items

    # ---- segments
    # Segments run the same metric set as the whole population (same compiled kernel); their
    # coverage and popularity are not reported.
    seg_skip = ("popularity", "coverage")
    if train is not None and wanted_segments:
        train_user_counts = train.user_counts()
        item_counts = train.item_counts()
    for seg in wanted_segments:
        seg_prefix = f"{prefix}{seg}/"
        if seg in USER_SEGMENTS:
            cold = train_user_counts[users] == 0
            keep = cold if seg == "cold_users" else ~cold
            out_metrics[f"{seg_prefix}num_users_evaluated"] = float(keep.sum())
            if keep.any():
                sub = {n: v[keep] for n, v in per_user_raw.items() if not n.startswith("collie")}
                record(seg_prefix, sub, users[keep])
            continue
        if seg == "cold_items":
            seg_mask = item_counts == 0
        elif seg == "warm_items":
            seg_mask = item_counts > 0
        else:
            seg_mask = np.asarray(item_segments[seg], bool)
        in_seg = seg_mask[test_keys % num_items]
        seg_rel = _lists_from_keys(test_keys[in_seg], test.num_users, num_items)
        seg_users = np.flatnonzero(np.diff(seg_rel[0]) > 0).astype(np.int64)
        out_metrics[f"{seg_prefix}num_users_evaluated"] = float(len(seg_users))
        if not len(seg_users) or not filtered:
            continue
        # The user's other test items are neither hits nor misses here: remove them (those
        # already excluded stay in the base lists only, so every row stays distinct).
        others = test_keys[~in_seg]
        if base_excl:
            others = others[~_isin_sorted(exclusions.keys, others)]
        seg_excl = base_excl + (
            [_lists_from_keys(others, test.num_users, num_items)] if len(others) else []
        )
        mask = cand_mask
        if item_segment_candidates == "segment":
            mask = seg_mask if mask is None else mask & seg_mask
        values = run(seg_rel, seg_excl, seg_users, metrics_=run_metrics, collie_=False, mask=mask)
        values = {n: v for n, v in values.items() if not n.startswith(seg_skip)}
        record(seg_prefix, values, seg_users)
    return EvalResult(metrics=out_metrics, per_user=per_user, user_ids=user_ids)


# --------------------------------------------------------------------------- explicit ratings
def evaluate_ratings(
    predict_fn: Callable[[np.ndarray, np.ndarray], Any],
    test: Interactions,
    *,
    split_name: str = "val",
    batch_size: int = 65536,
) -> dict[str, float]:
    """RMSE and MAE of rating predictions on ``test`` (which must have ratings).

    Args:
      predict_fn: ``predict_fn(user_ids (M,), item_ids (M,)) -> (M,)`` predicted ratings.
      test: interactions with ``ratings``.
      split_name: metric name prefix.
      batch_size: interactions per call of ``predict_fn``.

    Returns:
      ``{"{split}/rmse": ..., "{split}/mae": ...}``.
    """
    from hybridrec.metrics import rating_metrics

    if test.ratings is None:
        raise EvaluationError("evaluate_ratings needs test interactions with ratings")
    preds = []
    for start in range(0, len(test), batch_size):
        sl = slice(start, start + batch_size)
        p = np.asarray(predict_fn(test.user_ids[sl], test.item_ids[sl]), np.float64).reshape(-1)
        if len(p) != len(test.user_ids[sl]):
            raise EvaluationError(
                f"predict_fn returned {len(p)} predictions for {len(test.user_ids[sl])} pairs"
            )
        preds.append(p)
    out = rating_metrics(np.concatenate(preds), test.ratings)
    return {f"{split_name}/{k}": v for k, v in out.items()}


# --------------------------------------------------------------------------- item-pair task
@dataclasses.dataclass(frozen=True)
class PairEvalResult:
    """ROC and precision-recall evaluation of the item-pair task (``pair_auc``).

    Attributes:
      auc: ROC AUC (``sklearn.metrics.roc_auc_score``).
      average_precision: area under the precision-recall curve (``average_precision_score``).
      fpr, tpr, roc_thresholds: the ROC curve (``roc_curve``), for plotting.
      precision, recall, pr_thresholds: the precision-recall curve (``precision_recall_curve``).
      labels: (2P,) 1 for positive pairs, 0 for the sampled negatives.
      scores: (2P,) the model's scores of those pairs.
      negative_pairs: (P, 2) the sampled negative pairs.
    """

    auc: float
    average_precision: float
    fpr: np.ndarray
    tpr: np.ndarray
    roc_thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    pr_thresholds: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    negative_pairs: np.ndarray

    def metrics(self, split_name: str = "test") -> dict[str, float]:
        """``{split}/pair_auc`` and ``{split}/pair_average_precision``."""
        return {
            f"{split_name}/pair_auc": self.auc,
            f"{split_name}/pair_average_precision": self.average_precision,
        }


def sample_negative_pairs(
    positive_pairs: np.ndarray, num_items: int, num_pairs: int, seed: int = 0
) -> np.ndarray:
    """Uniformly drawn item pairs that are neither self-pairs nor positive pairs.

    Both items are drawn uniformly from ``[0, num_items)``; draws that hit a positive pair (in
    either order) or pair an item with itself are drawn again (vectorised rejection).

    Args:
      positive_pairs: (P, 2) int item indices.
      num_items: catalogue size.
      num_pairs: how many negatives.
      seed: random seed.

    Returns:
      (num_pairs, 2) int64.
    """
    pos = np.asarray(positive_pairs, np.int64)
    known = np.union1d(pos[:, 0] * num_items + pos[:, 1], pos[:, 1] * num_items + pos[:, 0])
    possible = num_items * (num_items - 1) - len(known)
    if possible < num_pairs:
        raise EvaluationError(
            f"cannot draw {num_pairs} negative pairs: only {possible} non-positive pairs exist"
        )
    rng = np.random.default_rng(seed)
    out = rng.integers(0, num_items, size=(num_pairs, 2))
    bad = (out[:, 0] == out[:, 1]) | np.isin(out[:, 0] * num_items + out[:, 1], known)
    while bad.any():
        out[bad] = rng.integers(0, num_items, size=(int(bad.sum()), 2))
        bad = (out[:, 0] == out[:, 1]) | np.isin(out[:, 0] * num_items + out[:, 1], known)
    return out


def pair_auc(
    score_pairs_fn: Callable[[np.ndarray, np.ndarray], Any],
    positive_pairs: np.ndarray,
    num_items: int,
    seed: int = 0,
) -> PairEvalResult:
    """ROC AUC and precision-recall curve of the item-pair task.

    As in Eugene Yan's product-pair baseline, the positive pairs (e.g. "also bought") are scored
    against an equal number of uniformly drawn negative pairs (``sample_negative_pairs``), and
    the pairs are treated as one binary classification problem.

    Args:
      score_pairs_fn: ``score_pairs_fn(left_ids (M,), right_ids (M,)) -> (M,)`` scores.
      positive_pairs: (P, 2) int item indices of related items.
      num_items: catalogue size.
      seed: seed of the negative sampler.

    Returns:
      A ``PairEvalResult``.
    """
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    pos = np.asarray(positive_pairs)
    if pos.ndim != 2 or pos.shape[1] != 2 or len(pos) == 0:
        raise EvaluationError(
            f"positive_pairs must be a non-empty (P, 2) array, got shape {pos.shape}"
        )
    if pos.min() < 0 or pos.max() >= num_items:
        raise EvaluationError(
            f"positive_pairs hold item index {int(pos.min()) if pos.min() < 0 else int(pos.max())} "
            f"outside [0, {num_items})"
        )
    neg = sample_negative_pairs(pos, num_items, len(pos), seed)
    pairs = np.concatenate([pos.astype(np.int64), neg])
    scores = np.asarray(score_pairs_fn(pairs[:, 0], pairs[:, 1]), np.float64).reshape(-1)
    if len(scores) != len(pairs):
        raise EvaluationError(
            f"score_pairs_fn returned {len(scores)} scores for {len(pairs)} pairs"
        )
    if not np.all(np.isfinite(scores)):
        raise EvaluationError("score_pairs_fn returned NaN or infinite scores")
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))]).astype(np.int8)
    fpr, tpr, roc_t = roc_curve(labels, scores)
    precision, recall, pr_t = precision_recall_curve(labels, scores)
    return PairEvalResult(
        auc=float(roc_auc_score(labels, scores)),
        average_precision=float(average_precision_score(labels, scores)),
        fpr=fpr,
        tpr=tpr,
        roc_thresholds=roc_t,
        precision=precision,
        recall=recall,
        pr_thresholds=pr_t,
        labels=labels,
        scores=scores,
        negative_pairs=neg,
    )


# --------------------------------------------------------------------------- statistics
def confidence_interval(
    values: np.ndarray,
    *,
    confidence: float = 0.95,
    method: Literal["t", "bootstrap"] = "t",
    num_bootstrap: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of per-user values with a confidence interval.

    Args:
      values: (U,) per-user metric values.
      confidence: coverage of the interval.
      method: ``"t"``: mean +- Student-t quantile * standard error; ``"bootstrap"``: percentile
        interval of the mean over ``num_bootstrap`` resamples of users.
      num_bootstrap: bootstrap resamples.
      seed: bootstrap seed.

    Returns:
      ``(mean, low, high)``; the interval is ``(mean, mean)`` for fewer than two values.
    """
    from scipy import stats

    v = np.asarray(values, np.float64).reshape(-1)
    if v.size == 0:
        raise EvaluationError("confidence_interval needs at least one value")
    mean = float(v.mean())
    if v.size < 2:
        return mean, mean, mean
    if method == "t":
        sem = v.std(ddof=1) / math.sqrt(v.size)
        half = float(stats.t.ppf(0.5 + confidence / 2, v.size - 1) * sem)
        return mean, mean - half, mean + half
    if method == "bootstrap":
        means = _bootstrap_means(v, num_bootstrap, seed)
        alpha = (1 - confidence) / 2
        return mean, float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))
    raise EvaluationError(f"method must be 't' or 'bootstrap', got {method!r}")


def _bootstrap_means(v: np.ndarray, num_bootstrap: int, seed: int) -> np.ndarray:
    """(num_bootstrap,) means of resamples (with replacement) of ``v``, in memory-bounded chunks."""
    rng = np.random.default_rng(seed)
    per_chunk = max(1, (1 << 23) // v.size)
    means = []
    for start in range(0, num_bootstrap, per_chunk):
        m = min(per_chunk, num_bootstrap - start)
        means.append(v[rng.integers(0, v.size, size=(m, v.size))].mean(1))
    return np.concatenate(means)


def paired_test(
    result_a: EvalResult,
    result_b: EvalResult,
    metric: str,
    *,
    confidence: float = 0.95,
    num_bootstrap: int = 2000,
    seed: int = 0,
) -> PairedTestResult:
    """Compares two models on one metric over the users both evaluated.

    Args:
      result_a, result_b: evaluations of two models on the same test set.
      metric: a per-user metric name, e.g. ``"test/ndcg@10"``.
      confidence: coverage of the bootstrap interval of the mean difference.
      num_bootstrap: bootstrap resamples of users.
      seed: bootstrap seed.

    Returns:
      A ``PairedTestResult`` (difference is b minus a).
    """
    from scipy import stats

    ids_a, va = result_a.values(metric)
    ids_b, vb = result_b.values(metric)
    common, ia, ib = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
    if len(common) < 2:
        raise EvaluationError(
            f"paired_test needs at least 2 users evaluated by both models for {metric!r}, "
            f"got {len(common)}"
        )
    a, b = va[ia], vb[ib]
    diff = b - a
    means = _bootstrap_means(diff, num_bootstrap, seed)
    alpha = (1 - confidence) / 2
    if np.all(diff == diff[0]):
        t_stat, p_value = (0.0, 1.0) if diff[0] == 0 else (math.copysign(math.inf, diff[0]), 0.0)
    else:
        t_stat, p_value = stats.ttest_rel(b, a)
    return PairedTestResult(
        metric=metric,
        num_users=len(common),
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        mean_difference=float(diff.mean()),
        ci_low=float(np.quantile(means, alpha)),
        ci_high=float(np.quantile(means, 1 - alpha)),
        t_statistic=float(t_stat),
        p_value=float(p_value),
    )


# --------------------------------------------------------------------------- output
def write_metrics_json(workdir: str | os.PathLike, metrics: Mapping[str, Any]) -> Path:
    """Writes ``<workdir>/metrics.json`` (sorted keys; NaN and infinities as null), atomically.

    Args:
      workdir: run directory, created if missing.
      metrics: flat name -> scalar mapping (numpy and JAX scalars are converted).

    Returns:
      The path written.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    clean: dict[str, Any] = {}
    for name, value in metrics.items():
        if isinstance(value, (bool, np.bool_)):
            clean[str(name)] = bool(value)
            continue
        try:
            v = float(np.asarray(value))
        except (TypeError, ValueError):
            raise EvaluationError(f"metric {name!r} is not a scalar: {value!r}") from None
        if isinstance(value, (int, np.integer)):
            clean[str(name)] = int(value)
        else:
            clean[str(name)] = v if math.isfinite(v) else None
    path = workdir / "metrics.json"
    fd, tmp = tempfile.mkstemp(dir=workdir, prefix=".metrics.", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(clean, f, indent=2, sort_keys=True)
        f.write("\n")
    # mkstemp creates the file 0600; a run's results are for every reader of the directory,
    # like the other run files (the umask decides, as for open()).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
    return path
