"""Full-ranking metrics on one batch of users, as pure JAX functions.

Everything here works on a *batch*: a ``(B, N)`` score matrix for ``B`` users over the whole
catalogue of ``N`` items, the users' relevant (held-out) items as a ``(B, R)`` array of item
indices padded with ``-1``, and optionally the items to remove from each user's ranking as a
``(B, E)`` array padded with ``-1``. Nothing is sampled (Krichene & Rendle, "On Sampled Metrics
for Item Recommendation", KDD 2020): every metric ranks the relevant items against every
candidate item. The functions are pure and jit-compatible; ``hybridrec.evaluation`` batches users,
builds the padded arrays from ``Interactions`` and jits them.

Definitions (one user; ``T`` = relevant items, ``n = |T|``; ``C`` = candidate items)
-------------------------------------------------------------------------------------
Candidates.
  ``C`` = all items, minus the ``exclude`` items (filtered mode: the user's training items, and
  validation items when testing), minus items outside ``candidate_mask`` if one is given.
  Relevant items are always candidates, even if they also appear in ``exclude`` (an item
  consumed again at test time is a legitimate target).
Ties (``ties="expected"``, the default).
  Candidates are ranked by score, descending. Candidates with equal scores (a *tie group*; ``-0.0``
  equals ``0.0``) have no order of their own, so every metric is reported as its expectation
  over uniformly random orders within each tie group: a model that scores every cold item alike
  gets one number, not one per arbitrary order (with an item-index order, NDCG@10 of such a
  model on MovieLens cold items ranged from 0.015 to 0.084). The expectations are exact:
  a group ranked from ``a`` to ``a + g - 1`` holding ``p`` relevant items puts a relevant item
  at each of its slots with probability ``p / g``, which gives hits@k, Precision, Recall and
  NDCG by linearity; AP uses ``E[1{relevant at slot j} * hits@rank] = (p / g) * (before + 1 +
  j (p - 1) / (g - 1))`` (``before`` relevant items above the group, ``j`` the 0-based slot);
  HitRate@k is ``1 - C(g - m, p) / C(g, p)`` for the group holding rank k, of which ``m`` slots
  are in the top k (1 if a relevant item ranks above it); the expected reciprocal rank of the
  group holding the best relevant score is ``sum_j P(J = j) / (a + j)`` with
  ``P(J = j) = C(g - 1 - j, p - 1) / C(g, p)`` (a short closed form only for ``p = 1``; the sum
  has at most ``N`` terms and runs only when such a tie occurs); AUC counts a tie one half,
  which is its expectation; popularity@k is the expected mean popularity of the top k. Each
  is an expectation per user and per metric (a mean over users stays one by linearity).
  Scores must be finite (``finite`` flags rows that are not; the evaluation raises).
Ties (``ties="index"``).
  Equal scores are ordered by column index, ascending: the order ``jax.lax.top_k`` returns,
  so the metrics are those of one fixed list (``hybridrec.evaluation`` maps columns to a seeded
  random item order or to item order; ``evaluate(tie_break=...)``). The definitions below are
  for such a list; the default reports their expectations.
  ``topk_items`` is always the index-ordered list (for coverage and display).
``rank(i)``.
  1-based position of relevant item ``i`` in that ordering of ``C``.
``hits@k``.
  ``|{i in T : rank(i) <= k}|``; the top-k list has ``min(k, |C|)`` items, so ``k`` larger than
  the catalogue is allowed.
HitRate@k.
  ``1[hits@k > 0]``.
Precision@k.
  ``hits@k / k`` (always divided by ``k``, also when fewer than ``k`` candidates exist).
Recall@k.
  ``hits@k / n``.
NDCG@k.
  Binary gains, ``DCG@k = sum_{i in T, rank(i) <= k} 1 / log2(rank(i) + 1)`` divided by the
  ideal ``IDCG@k = sum_{j=1}^{min(n, k)} 1 / log2(j + 1)``.
MAP@k.
  ``AP@k = sum_{i in T, rank(i) <= k} precision@rank(i) / min(n, k)``, where
  ``precision@r = hits@r / r``; MAP@k is its mean over users. This is Collie's ``mapk`` (and
  the usual ``apk`` of the Kaggle ``ml_metrics`` package).
MRR.
  ``1 / min_{i in T} rank(i)``: the reciprocal rank of the first relevant item, no cut-off.
  (Spotlight averages ``1 / rank(i)`` over all of a user's test items instead; that is a
  different number.)
AUC.
  ``(1 / (n m)) sum_{i in T} sum_{j in C \\ T} (1[s_i > s_j] + 0.5 * 1[s_i == s_j])`` with
  ``m = |C \\ T|``; ``0.5`` when ``m = 0``.

Collie mode (``collie=True``), exactly ShopRunner/collie's ``collie.metrics.mapk``, ``mrr`` and
``auc``: the same definitions with *nothing* excluded (``C`` = all items, training items stay
in the ranking and are counted as negatives); ``collie_map@k`` divides by ``min(k, n)``;
``collie_mrr`` is the reciprocal rank of the first hit in the full ranking; ``collie_auc`` is
torchmetrics' ROC AUC of ``sigmoid(scores)`` against the test items, i.e. the AUC above computed
on ``sigmoid(s)`` in float32 (so very large scores, whose sigmoids round to the same float,
tie), and ``0`` for a user with no negative items (what torchmetrics returns). The user set is
Collie's too: users with at least one test item. With a ``candidate_mask`` Collie mode ranks the
mask's items (and the relevant ones), nothing else excluded. Known differences, all in corner
cases: Collie leaves the order of tied scores to ``torch.topk`` (here ties follow the rule
above, by default their expectation); XLA's float32 sigmoid may differ from PyTorch's in the
last bit and flushes values below about ``-87`` to 0; Collie raises for ``k`` larger than the
catalogue.

Cost: the scores are read a few times per batch. The top-k list is found by a two-stage exact
top-k (block maxima, then top-k inside the ``k`` best blocks), which is several times faster
than ``jax.lax.top_k`` over a long row on CPU. AUC needs, for every relevant item, how many
candidates score above it: ``O(B * N * R)`` comparisons, done as an elementwise accumulation
over chunks of 4 relevant items (a loop whose trip count follows the batch's largest ``n``).
Collie's sigmoid AUC needs no sigmoid per item: the scores whose sigmoid rounds to
``sigmoid(s_i)`` form an interval, found by bisection for each relevant item, and the same
comparison pass counts against its ends. Expected ties cost one counting pass (the sizes of
the tie groups at the best relevant score and at the end of each list, packed as 8-bit fields
of one integer) and small (B, K, K) and (B, K, R) comparisons, about as much as the index
tie-break's first-rank pass; the expected reciprocal rank adds a (B, N) pass only for batches
where the best relevant item is tied with a non-relevant one, and expected popularity one
only where the list's last tie group goes on past its end.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# Relevant items compared per pass of the AUC accumulation (the loop body is unrolled); 4 was
# fastest on a 2-core CPU (16 made XLA's loop an order of magnitude slower).
_AUC_CHUNK = 4

RANKING_METRICS = ("ndcg", "recall", "precision", "hit_rate", "map", "mrr", "auc", "popularity")
"""Per-user ranking metrics ``ranking_metrics`` can compute. ``coverage`` is not per-user; the
evaluation derives it from ``topk_items``."""


Ties = Literal["expected", "index"]


class MetricsError(ValueError):
    """Raised for malformed metric inputs (shapes, unknown metric names, bad ``k``)."""


# --------------------------------------------------------------------------- your own metrics
class TopK(NamedTuple):
    """What a metric plug-in reads: one batch of users' top-k lists.

    Attributes:
      relevance: (B, k) float32, the probability that position ``j`` (0-based) of the list holds
        a relevant item. Under ``ties="expected"`` a position inside a tie group of ``g``
        candidates holding ``p`` relevant ones has ``p / g``; under ``ties="index"`` it is 0 or 1.
      num_relevant: (B,) int32 ``n``, the user's relevant items (0 for padding rows).
      num_candidates: (B,) int32 ``|C|``, the items the user's ranking ran over.
      items: (B, k) int32 item indices of the list in index tie order, ``-1`` past its end
        (a list is shorter than ``k`` when fewer candidates exist; its missing positions have
        relevance 0).
      k: the cut-off.
    """

    relevance: jax.Array
    num_relevant: jax.Array
    num_candidates: jax.Array
    items: jax.Array
    k: int


@dataclasses.dataclass(frozen=True)
class Metric:
    """A per-user ranking metric of the top-k list, written by a researcher.

    ``fn(top: TopK) -> (B,)`` must be a pure JAX function (it runs inside the jitted evaluation);
    the evaluation reports it as ``{name}@{k}`` for every cut-off, averaged over users, with
    per-user values (for confidence intervals and paired tests) like the built-in metrics.

    Ties: a metric that is linear in the per-position relevance indicators (DCG with another
    discount, precision-like counts, rank-biased precision) gets its exact expectation over tie
    orders from ``relevance``, like the built-in metrics. For any other function, ``relevance``
    holds the marginals only; evaluate with ``tie_break="random"`` (or ``"index"``) to score one
    definite list instead.

    Name one in a config by a dotted path to an instance or to a plain function
    (``config.eval.metrics = ("ndcg", "auc", "my_pkg.metrics.rbp")``), or ``register`` it.

    Attributes:
      name: the reported name (``rbp`` -> ``val/rbp@10``).
      fn: ``TopK -> (B,) float``.
      higher_is_better: its direction, for ``experiments.compare`` and early stopping.
    """

    name: str
    fn: Callable[[TopK], jax.Array]
    higher_is_better: bool = True


_REGISTRY: dict[str, Metric] = {}


def register(metric: Metric | Callable[[TopK], jax.Array], name: str | None = None) -> Metric:
    """Makes ``metric`` (a ``Metric`` or a plain ``TopK -> (B,)`` function) known by its name."""
    metric = _as_metric(metric, name)
    if metric.name in RANKING_METRICS or metric.name == "coverage":
        raise MetricsError(f"metric name {metric.name!r} is a built-in metric's")
    _REGISTRY[metric.name] = metric
    return metric


def _as_metric(obj: Any, name: str | None) -> Metric:
    if isinstance(obj, Metric):
        return obj if name is None else dataclasses.replace(obj, name=name)
    if callable(obj):
        return Metric(name=name or getattr(obj, "__name__", "metric"), fn=obj)
    raise MetricsError(f"a metric must be a hybridrec.metrics.Metric or a function, got {obj!r}")


def resolve_metric(name: str) -> Metric:
    """The plug-in metric ``name`` names: a registered name or a dotted path.

    Raises:
      MetricsError: for a name that is neither, listing the metrics that exist.
    """
    from hybridrec import plugins  # no import cycle: plugins imports nothing of ours

    obj = plugins.resolve(
        name,
        _REGISTRY,
        what="metric",
        error=MetricsError,
        extra_names=(*RANKING_METRICS, "coverage"),
    )
    # A function is reported by the last part of its path; a Metric by its own name.
    return _as_metric(obj, None if isinstance(obj, Metric) else name.rpartition(".")[2])


def metric_label(name: str) -> str:
    """The reported name of metric ``name`` (``"my_pkg.metrics.rbp"`` -> ``"rbp"``)."""
    if name in RANKING_METRICS or name == "coverage":
        return name
    return resolve_metric(name).name


# --------------------------------------------------------------------------- top-k
def top_k_items(scores: jax.Array, k: int, *, block_size: int = 128) -> tuple[jax.Array, jax.Array]:
    """Exact top-k of each row, ties broken by lower index (``jax.lax.top_k``'s order).

    For long rows it first takes the maximum of each block of ``block_size`` consecutive items,
    picks the ``k`` best blocks (every top-k item lies in one of them: a block holding a top-k
    item whose maximum is not among the ``k`` best would leave ``k`` better items elsewhere),
    and runs ``jax.lax.top_k`` on those ``k * block_size`` candidates plus the items of the last,
    partial block only.

    Args:
      scores: (B, N) float scores; ``-inf`` marks items that are not candidates.
      k: list length, ``1 <= k <= N``.
      block_size: items per block; 0 disables the two-stage search.

    Returns:
      ``(values, indices)``, both (B, k), best first.
    """
    b, n = scores.shape
    if not 1 <= k <= n:
        raise MetricsError(f"top_k_items needs 1 <= k <= N, got k={k} for N={n}")
    if block_size <= 0 or 4 * k * block_size > n:
        return jax.lax.top_k(_canonical_zero(scores), k)
    num_blocks, tail = divmod(n, block_size)
    # Slices and reshapes, not a padded copy: XLA fuses them into the block-max reduction.
    blocks = scores[:, : num_blocks * block_size].reshape(b, num_blocks, block_size)
    _, best_blocks = jax.lax.top_k(_canonical_zero(blocks.max(-1)), k)  # (B, k)
    # Gather the chosen blocks in item order (the tail comes last), so lax.top_k's positional
    # tie-break is by item index.
    best_blocks = jnp.sort(best_blocks, axis=1)
    cand = jnp.take_along_axis(blocks, best_blocks[:, :, None], axis=1).reshape(b, k * block_size)
    cand_ids = (best_blocks[:, :, None] * block_size + jnp.arange(block_size)).reshape(b, -1)
    if tail:
        cand = jnp.concatenate([cand, scores[:, n - tail :]], axis=1)
        cand_ids = jnp.concatenate(
            [cand_ids, jnp.broadcast_to(jnp.arange(n - tail, n), (b, tail))], axis=1
        )
    values, pos = jax.lax.top_k(_canonical_zero(cand), k)
    return values, jnp.take_along_axis(cand_ids, pos, axis=1)


def _canonical_zero(x: jax.Array) -> jax.Array:
    """Maps -0.0 to 0.0: ``lax.top_k`` and ``lax.sort`` order floats totally (-0.0 < 0.0),
    but the ranking treats them as equal scores, tied and ordered by item index."""
    return jnp.where(x == 0, jnp.zeros_like(x), x)


# --------------------------------------------------------------------------- AUC counts
def _pairs_above_twice(
    values: jax.Array,
    upper: jax.Array,
    lower: jax.Array,
    num_relevant: jax.Array,
    block_size: int,
) -> jax.Array:
    """``sum_j sum_m (1[v_j > upper_m] + 1[v_j >= lower_m])`` per row, as float32.

    With ``upper = lower = t`` (a relevant item's score) each candidate above ``t`` adds 2 and
    each tie 1. Collie's sigmoid AUC passes the interval ``[lower, upper]`` of raw scores whose
    sigmoid rounds to the same float as ``sigmoid(t)`` (``_sigmoid_tie_bounds``).

    Args:
      values: (B, N) candidate scores; non-candidates are ``-inf`` and count nothing.
      upper, lower: (B, R) per relevant item, valid slots first, invalid slots ``+inf``.
      num_relevant: (B,) valid slots per row; the loop runs ``ceil(max / _AUC_CHUNK)`` times.
      block_size: the item axis is summed in blocks of this size (exact in int32), then the
        block sums are added as high and low 16-bit halves, so the total cannot overflow int32.

    Returns:
      (B,) float32.
    """
    b, n = values.shape
    r = upper.shape[1]
    r_pad = -(-r // _AUC_CHUNK) * _AUC_CHUNK
    upper = jnp.pad(upper, ((0, 0), (0, r_pad - r)), constant_values=jnp.inf)
    lower = jnp.pad(lower, ((0, 0), (0, r_pad - r)), constant_values=jnp.inf)
    num_chunks = (jnp.max(num_relevant) + _AUC_CHUNK - 1) // _AUC_CHUNK

    def body(c, acc):
        hi = jax.lax.dynamic_slice_in_dim(upper, c * _AUC_CHUNK, _AUC_CHUNK, axis=1)
        lo = jax.lax.dynamic_slice_in_dim(lower, c * _AUC_CHUNK, _AUC_CHUNK, axis=1)
        # An explicit unrolled accumulation into a (B, N) array: XLA:CPU vectorises this
        # elementwise chain well, unlike a broadcast (B, R, N) compare-and-reduce.
        for m in range(_AUC_CHUNK):
            above = (values > hi[:, m : m + 1]).astype(jnp.int32)
            acc = acc + above + (values >= lo[:, m : m + 1]).astype(jnp.int32)
        return acc

    acc = jax.lax.fori_loop(0, num_chunks, body, jnp.zeros((b, n), jnp.int32))
    block_size = block_size if block_size > 0 else 128
    num_blocks, tail = divmod(n, block_size)
    # Block sums are exact in int32 (each <= 2 * R * block_size); the last block may be short.
    block_sums = acc[:, : num_blocks * block_size].reshape(b, num_blocks, block_size).sum(-1)
    if tail:
        block_sums = jnp.concatenate([block_sums, acc[:, n - tail :].sum(-1, keepdims=True)], 1)
    high = (block_sums >> 16).sum(-1).astype(jnp.float32)
    low = (block_sums & 0xFFFF).sum(-1).astype(jnp.float32)
    return high * 65536.0 + low


def _float_key(x: jax.Array) -> jax.Array:
    """int32 keys ordered like the float32 values (for finite values; -0.0 just below 0.0)."""
    bits = jax.lax.bitcast_convert_type(x, jnp.int32)
    return jnp.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


def _key_float(key: jax.Array) -> jax.Array:
    """Inverse of ``_float_key``."""
    return jax.lax.bitcast_convert_type(jnp.where(key < 0, key ^ 0x7FFFFFFF, key), jnp.float32)


def _sigmoid_tie_bounds(t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The interval ``[lower, upper]`` of finite float32 x with ``sigmoid(x) == sigmoid(t)``.

    Sigmoid is non-decreasing, so the scores whose float32 sigmoid equals ``sigmoid(t)`` form an
    interval; both ends are found by bisection over the ordered float keys (32 steps on the
    small (B, R) array), which spares evaluating a sigmoid per (user, item).
    ``+inf`` entries (padding) stay ``+inf``.

    Args:
      t: (B, R) float32 scores.

    Returns:
      ``(upper, lower)``, both (B, R) float32.
    """
    finite = jnp.isfinite(t)
    t0 = jnp.where(finite, t, 0.0)
    target = jax.nn.sigmoid(t0)
    big = jnp.float32(np.finfo(np.float32).max)
    # Both searches at once: row 0 looks upwards, row 1 downwards. Invariant: sigmoid(inside)
    # == target, and the end of the interval lies between inside and outside.
    inside = jnp.stack([t0, t0])
    outside = jnp.stack([jnp.full_like(t0, big), jnp.full_like(t0, -big)])
    done = jax.nn.sigmoid(outside) == target  # the interval reaches the largest float

    def body(_, keys):
        inside_k, outside_k = keys
        mid = (inside_k >> 1) + (outside_k >> 1) + (inside_k & outside_k & 1)  # no overflow
        same = jax.nn.sigmoid(_key_float(mid)) == target
        return jnp.where(same, mid, inside_k), jnp.where(same, outside_k, mid)

    inside_k, _ = jax.lax.fori_loop(0, 33, body, (_float_key(inside), _float_key(outside)))
    ends = jnp.where(done, outside, _key_float(inside_k))
    return jnp.where(finite, ends[0], jnp.inf), jnp.where(finite, ends[1], jnp.inf)


def _auc_from_counts(
    twice_above: jax.Array, num_relevant: jax.Array, num_negatives: jax.Array, empty_value: float
) -> jax.Array:
    """AUC per row from ``_pairs_above_twice`` over all candidates (relevant ones included)."""
    nr = num_relevant.astype(jnp.float32)
    # Relevant-vs-relevant pairs (self pairs included) always add exactly n^2: each unordered
    # pair contributes 2 (above twice, or a tie once each way) and each self pair 1.
    wrong_twice = twice_above - nr * nr
    denom = 2.0 * nr * num_negatives.astype(jnp.float32)
    auc = 1.0 - wrong_twice / jnp.maximum(denom, 1.0)
    auc = jnp.where(num_negatives > 0, auc, empty_value)
    return jnp.where(num_relevant > 0, auc, 0.0)


# --------------------------------------------------------------------------- tie groups
@functools.lru_cache(maxsize=8)
def _log_factorials(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``log(m!)`` for ``m = 0..n`` as float32 ``(hi, lo)`` with ``hi + lo`` the float64 value.

    ``log(m!)`` reaches ~1.8e5 at ``m = 2e4``, where a float32 is only good to ~0.01; the
    differences the expected reciprocal rank needs (``log(m! / (m - q)!)``, a few tens) are
    exact in the ``hi`` parts (Sterbenz) and the ``lo`` parts carry the rest.
    """
    lf = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))])
    hi = lf.astype(np.float32)
    return hi, (lf - hi).astype(np.float32)


def _log_falling_ratio(
    hi: jax.Array, lo: jax.Array, m: jax.Array, q: jax.Array, g: jax.Array, p: jax.Array
) -> jax.Array:
    """``log((m! / (m - q)!) / (g! / (g - p)!))`` from the ``_log_factorials`` table.

    The ``hi`` differences are exact and of similar size, so they are subtracted before the
    ``lo`` corrections are added: no rounding at the size of the two logs (thousands for
    hundreds of tied relevant items).
    """
    return ((hi[m] - hi[m - q]) - (hi[g] - hi[g - p])) + ((lo[m] - lo[m - q]) - (lo[g] - lo[g - p]))


def _expected_reciprocal_rank(
    start: jax.Array, size: jax.Array, rel: jax.Array, width: int
) -> jax.Array:
    """``E[1 / (start + J)]`` where ``J`` is the first of ``rel`` relevant slots among ``size``.

    The relevant item ranked first lies in the tie group ranked from ``start`` on, of ``size``
    candidates of which ``rel`` are relevant; over uniformly random orders of the group,
    ``P(J = j) = C(size - 1 - j, rel - 1) / C(size, rel)`` for ``j = 0..size - rel``. Only
    ``rel = 1`` has a short closed form (harmonic numbers), so the sum runs over the (B, N)
    slots, and only for batches where some row has such a tie (``1 / start`` otherwise); the
    log-binomials come from a float64 log-factorial table split into two float32 parts.

    Args:
      start, size, rel: (B,) int32; ``rel = 0`` marks rows without relevant items (result 0).
      width: static bound on ``size`` (the number of items).

    Returns:
      (B,) float32.
    """
    start_f = start.astype(jnp.float32)
    plain = jnp.where(rel > 0, 1.0 / jnp.maximum(start_f, 1.0), 0.0)
    tied = (rel > 0) & (size > rel)

    def exact():
        hi_np, lo_np = _log_factorials(width)
        hi, lo = jnp.asarray(hi_np), jnp.asarray(lo_np)
        g = jnp.clip(size, 1, width)[:, None]
        p = jnp.clip(rel, 1, g[:, 0])[:, None]
        j = jnp.arange(width, dtype=jnp.int32)[None, :]
        ok = j <= g - p
        m = jnp.where(ok, g - 1 - j, p - 1)
        # log P(J = j) = log C(g - 1 - j, p - 1) - log C(g, p)
        #              = log((g-1-j)! / (g-p-j)!) - log(g! / (g-p)!) + log(p)
        log_p = _log_falling_ratio(hi, lo, m, p - 1, g, p) + jnp.log(p.astype(jnp.float32))
        terms = jnp.where(ok, jnp.exp(log_p) / (start_f[:, None] + j), 0.0)
        return jnp.where(tied, terms.sum(-1), plain)

    return jax.lax.cond(tied.any(), exact, lambda: plain)


def _row_counts(masks: Sequence[jax.Array], block: int = 255) -> list[jax.Array]:
    """Per-row counts of up to four (B, N) boolean masks in a single pass over the items.

    XLA:CPU runs separate row reductions of the same scores as separate passes (three cost
    about four times one). Here the masks share one uint32 as 8-bit fields, summed exactly in
    blocks of ``block <= 255`` items, and the (B, N / block) block sums are then split apart.

    Returns:
      A list of (B,) int32 counts, one per mask.
    """
    if not 1 <= len(masks) <= 4 or not 1 <= block <= 255:
        raise MetricsError(f"_row_counts takes 1 to 4 masks and block <= 255, got {len(masks)}")
    b, n = masks[0].shape
    packed = masks[0].astype(jnp.uint32)
    for i, mask in enumerate(masks[1:], 1):
        packed = packed | (mask.astype(jnp.uint32) << (8 * i))
    num_blocks, tail = divmod(n, block)
    parts = []
    if num_blocks:
        head = packed[:, : num_blocks * block].reshape(b, num_blocks, block)
        parts.append(head.sum(-1, dtype=jnp.uint32))
    if tail:
        parts.append(packed[:, n - tail :].sum(-1, keepdims=True, dtype=jnp.uint32))
    sums = jnp.concatenate(parts, 1) if len(parts) > 1 else parts[0]
    return [((sums >> (8 * i)) & 255).astype(jnp.int32).sum(-1) for i in range(len(masks))]


def _tie_groups(
    values: jax.Array,
    valid: jax.Array,
    pos_scores: jax.Array,
    rel_valid: jax.Array,
    num_relevant: jax.Array,
    last_size: jax.Array,
) -> dict[str, jax.Array]:
    """The tie group behind each position of a ranked list (see "Ties" in the module docstring).

    The list holds every candidate scoring above its last value, so a group that ends inside it
    is complete; only the group of the last position may go on past the end, and ``last_size``
    says how large it is.

    Args:
      values: (B, K) scores of the list, best first, ``-0.0`` mapped to ``0.0``.
      valid: (B, K) bool, False past the end of a short list.
      pos_scores, rel_valid: (B, R) the relevant items' scores and valid slots.
      num_relevant: (B,) int32.
      last_size: (B,) int32 candidates scoring exactly ``values[:, -1]``.

    Returns:
      (B, K) int32 arrays: ``tie_start`` (1-based rank of the group's first slot), ``tie_size``,
      ``tie_relevant`` (relevant items in the group), ``rel_before`` (relevant items ranked
      above the group), and ``tie_same`` (B, K, K) bool (positions q in the group of p), for the
      expected popularity. Past the end of a list: a group of one non-relevant slot with every
      relevant item above it.
    """
    b, k = values.shape
    vp, vq = values[:, :, None], values[:, None, :]
    start = 1 + ((vq > vp) & valid[:, None, :]).sum(-1, dtype=jnp.int32)
    same = (vq == vp) & valid[:, None, :] & valid[:, :, None]
    in_list = same.sum(-1, dtype=jnp.int32)
    last = same[:, :, -1]  # positions in the last position's group
    size = in_list + jnp.where(last, (last_size - in_list[:, -1])[:, None], 0)
    rel = (rel_valid[:, None, :] & (pos_scores[:, None, :] == vp)).sum(-1, dtype=jnp.int32)
    before = (rel_valid[:, None, :] & (pos_scores[:, None, :] > vp)).sum(-1, dtype=jnp.int32)
    position = jnp.broadcast_to(jnp.arange(1, k + 1, dtype=jnp.int32), (b, k))
    return {
        "tie_start": jnp.where(valid, start, position),
        "tie_size": jnp.where(valid, size, 1),
        "tie_relevant": jnp.where(valid, rel, 0),
        "rel_before": jnp.where(valid, before, num_relevant[:, None]),
        "tie_same": same,
        "tie_last": last,
    }


def _ordered_groups(hits: jax.Array) -> dict[str, jax.Array]:
    """``_tie_groups`` of a list whose ties are already ordered: every position its own group."""
    b, k = hits.shape
    h = hits.astype(jnp.int32)
    return {
        "tie_start": jnp.broadcast_to(jnp.arange(1, k + 1, dtype=jnp.int32), (b, k)),
        "tie_size": jnp.ones((b, k), jnp.int32),
        "tie_relevant": h,
        "rel_before": jnp.cumsum(h, -1) - h,
    }


# --------------------------------------------------------------------------- batch statistics
def ranking_stats(
    scores: jax.Array,
    relevant: jax.Array,
    exclude: jax.Array | None = None,
    *,
    k: int,
    candidate_mask: jax.Array | None = None,
    with_auc: bool = True,
    collie: bool = False,
    collie_sigmoid: bool = True,
    ties: Ties = "expected",
    item_popularity: jax.Array | None = None,
    block_size: int = 128,
) -> dict[str, jax.Array]:
    """Per-user ranking statistics for one batch: tie groups of the top-k lists, reciprocal
    ranks and AUCs, from which ``metrics_from_stats`` computes every metric.

    See the module docstring for the candidate set, the tie rule and the definitions.

    Args:
      scores: (B, N) scores of every item for each user (any float dtype; compared in float32).
      relevant: (B, R) int relevant item indices, distinct within a row, padded with ``-1``.
      exclude: (B, E) int item indices to remove from the ranking, distinct within a row, padded
        with ``-1``, or None. An excluded item that is also relevant stays a candidate.
      k: length of the top-k list to return (clipped to ``N``).
      candidate_mask: (N,) bool, True for items that may be ranked at all (e.g. cold items
        only), or None for all items. With ``collie`` the unfiltered ranking is over these items
        too.
      with_auc: compute the filtered ``auc`` (the costly part: ``O(B * N * R)``).
      collie: also compute Collie's unfiltered statistics (``collie_*`` keys).
      collie_sigmoid: Collie's AUC is computed on ``sigmoid(scores)``, as Collie does (one more
        pass over the scores). False ranks raw scores: the same value unless sigmoid rounds
        distinct scores to the same float, and nearly free when ``with_auc`` is set.
      ties: ``"expected"``: metrics are expectations over uniformly random orders of tied
        scores; ``"index"``: ties are ordered by column index (see the module docstring).
      item_popularity: (N,) float; when given, ``topk_popularity`` is returned.
      block_size: block size of the two-stage top-k and of the exact AUC sums.

    Returns:
      A dict of arrays:
      ``num_relevant`` (B,) int32; ``num_candidates`` (B,) int32 (``|C|``);
      ``topk_items`` (B, K) int32 item indices in index tie order, best first, ``-1`` past the
      end of a short list, with ``K = min(k, N)``; ``topk_hits`` (B, K) bool; the tie groups of
      the list's positions ``tie_start``, ``tie_size``, ``tie_relevant``, ``rel_before`` (B, K)
      int32 (with ``ties="index"`` every position is its own group); ``reciprocal_rank`` (B,)
      float32 (expected under ``"expected"``; 0 for rows without relevant items);
      ``first_rank`` (B,) int32 with ``ties="index"`` only; ``finite`` (B,) bool, False where a
      row has a NaN or infinite score; ``topk_popularity`` (B, K) float32 expected popularity
      of the item at each position if ``item_popularity``; ``auc`` (B,) float32 if
      ``with_auc``; and with ``collie``: ``collie_tie_start``, ``collie_tie_size``,
      ``collie_tie_relevant``, ``collie_rel_before`` (B, K), ``collie_topk_hits`` (B, K) bool,
      ``collie_reciprocal_rank`` (B,) float32, ``collie_auc`` (B,) float32 (and
      ``collie_first_rank`` with ``ties="index"``).
    """
    scores = jnp.asarray(scores)
    if scores.ndim != 2:
        raise MetricsError(f"scores must be (B, N), got shape {scores.shape}")
    b, n = scores.shape
    relevant = jnp.asarray(relevant, jnp.int32)
    if relevant.ndim != 2 or relevant.shape[0] != b:
        raise MetricsError(f"relevant must be (B, R) = ({b}, R), got shape {relevant.shape}")
    if ties not in ("expected", "index"):
        raise MetricsError(f"ties must be 'expected' or 'index', got {ties!r}")
    expected = ties == "expected"
    kk = min(int(k), n)
    if kk < 1:
        raise MetricsError(f"k must be >= 1, got {k}")

    scores = scores.astype(jnp.float32)
    # A row sum is finite iff every score is (inf and NaN propagate) unless it overflows, so
    # the exact per-row test only runs when some sum is not finite.
    row_sums = scores.sum(-1)
    finite = jax.lax.cond(
        jnp.isfinite(row_sums).all(),
        lambda: jnp.ones(b, bool),
        lambda: jnp.isfinite(scores).all(-1),
    )
    rows = jnp.arange(b)[:, None]

    rel_valid = relevant >= 0
    num_relevant = rel_valid.sum(-1, dtype=jnp.int32)
    has_rel = num_relevant > 0
    rel_ids = jnp.where(rel_valid, relevant, 0)
    pos_scores = jnp.take_along_axis(scores, rel_ids, axis=1)  # (B, R)
    # The first relevant item in the ranking: highest score, then (index ties) lowest index.
    best_score = jnp.where(rel_valid, pos_scores, -jnp.inf).max(-1)
    best_item = jnp.where(rel_valid & (pos_scores == best_score[:, None]), rel_ids, n).min(-1)
    best_tied = (rel_valid & (pos_scores == best_score[:, None])).sum(-1, dtype=jnp.int32)
    drop_rel = jnp.where(rel_valid, rel_ids, n)  # index n is out of range: scatter drops it

    rel_or_none = jnp.where(rel_valid, relevant, -1)
    # |C| is counted from the small index arrays rather than with a pass over (B, N).
    num_candidates = jnp.full((b,), n, jnp.int32)
    num_unfiltered = num_candidates  # Collie's candidates: the mask's items and the relevant
    filtered = scores
    if candidate_mask is not None:
        candidate_mask = jnp.asarray(candidate_mask, bool)
        if candidate_mask.shape != (n,):
            raise MetricsError(f"candidate_mask must be ({n},), got shape {candidate_mask.shape}")
        filtered = jnp.where(candidate_mask[None, :], filtered, -jnp.inf)
        rel_outside = rel_valid & ~candidate_mask[rel_ids]
        num_candidates = candidate_mask.sum(dtype=jnp.int32) + rel_outside.sum(-1, dtype=jnp.int32)
        num_unfiltered = num_candidates
    if exclude is not None:
        exclude = jnp.asarray(exclude, jnp.int32)
        if exclude.ndim != 2 or exclude.shape[0] != b:
            raise MetricsError(f"exclude must be (B, E) = ({b}, E), got shape {exclude.shape}")
        excl_valid = exclude >= 0
        filtered = filtered.at[rows, jnp.where(excl_valid, exclude, n)].set(-jnp.inf, mode="drop")
    if exclude is not None or candidate_mask is not None:
        filtered = filtered.at[rows, drop_rel].set(pos_scores, mode="drop")
    if exclude is not None:
        # Excluded items that were candidates: valid, not relevant (a relevant item's finite
        # score was restored above), inside the mask. A (B, E) gather, not a (B, E, R)
        # comparison: heavy users exclude thousands of items.
        excl_ids = jnp.where(excl_valid, exclude, 0)
        removed = excl_valid & (jnp.take_along_axis(filtered, excl_ids, 1) == -jnp.inf)
        if candidate_mask is not None:
            removed = removed & candidate_mask[excl_ids]
        num_candidates = num_candidates - removed.sum(-1, dtype=jnp.int32)

    # The barrier keeps XLA from rewriting later slices of the list (its last value, in a pass
    # over the scores) into slices of the sort inside top_k: XLA:CPU then no longer recognises
    # its top-k pattern and sorts whole rows (measured 10-100x slower).
    top_values, top_ids = top_k_items(filtered, kk, block_size=block_size)
    if jax.device_count() == 1:
        # XLA's SPMD partitioner (several devices, hybridrec.sharding) cannot partition a barrier
        # over a tuple (a check failure in jax 0.10), and it is a CPU speed fix only.
        top_values, top_ids = jax.lax.optimization_barrier((top_values, top_ids))
    top_valid = top_values > -jnp.inf
    topk_hits = top_valid & (top_ids[:, :, None] == rel_or_none[:, None, :]).any(-1)
    out = {
        "num_relevant": num_relevant,
        "num_candidates": num_candidates,
        "topk_items": jnp.where(top_valid, top_ids, -1),
        "topk_hits": topk_hits,
        "finite": finite,
    }
    pop = None if item_popularity is None else jnp.asarray(item_popularity, jnp.float32)

    if collie:
        if exclude is None:
            excl_ids = jnp.zeros((b, 0), jnp.int32)
            excl_scores = jnp.zeros((b, 0), jnp.float32)
            excl_valid = jnp.zeros((b, 0), bool)
        else:
            # An excluded item that is also relevant is already among the candidates.
            excl_valid = removed
            excl_ids = jnp.where(excl_valid, exclude, n)
            excl_scores = jnp.where(
                excl_valid,
                jnp.take_along_axis(scores, jnp.where(excl_valid, exclude, 0), 1),
                -jnp.inf,
            )
        # The unfiltered top-k lies in (filtered top-k) + (excluded items): merge and re-sort
        # by (score desc, index asc) instead of a second pass over all items.
        merged_v = jnp.concatenate([jnp.where(top_valid, top_values, -jnp.inf), excl_scores], 1)
        merged_i = jnp.concatenate([jnp.where(top_valid, top_ids, n), excl_ids], 1)
        neg_v, merged_i = jax.lax.sort(
            (_canonical_zero(-merged_v), merged_i), dimension=1, num_keys=2
        )
        c_valid = neg_v[:, :kk] < jnp.inf
        c_ids = merged_i[:, :kk]
        c_hits = c_valid & (c_ids[:, :, None] == rel_or_none[:, None, :]).any(-1)
        c_values = jnp.where(c_valid, -neg_v[:, :kk], -jnp.inf)
        out["collie_topk_hits"] = c_hits

    if expected:
        # One pass over the scores counts, per row, the candidates above and level with the
        # best relevant score (its tie group) and level with the last value of each list.
        last_value = top_values[:, -1]
        masks = [
            filtered > best_score[:, None],
            filtered == best_score[:, None],
            filtered == last_value[:, None],
        ]
        if collie:
            masks.append(filtered == c_values[:, -1:])
        counts = _row_counts(masks)
        above, level, last_size = counts[:3]
        groups = _tie_groups(top_values, top_valid, pos_scores, rel_valid, num_relevant, last_size)
        same, last = groups.pop("tie_same"), groups.pop("tie_last")
        if pop is not None:
            list_pop = jnp.where(top_valid, pop[jnp.where(top_valid, top_ids, 0)], 0.0)
            group_pop = (same * list_pop[:, None, :]).sum(-1)  # (B, K)
            # The last group's items past the end of the list: one more pass, and only when
            # that group does go on past the end in some row.
            beyond = last[:, -1] & (last_size > same[:, -1].sum(-1))
            last_pop = jax.lax.cond(
                beyond.any(),
                lambda: jnp.where(filtered == last_value[:, None], pop[None, :], 0.0).sum(-1),
                lambda: group_pop[:, -1],
            )
            group_pop = group_pop + jnp.where(last, (last_pop - group_pop[:, -1])[:, None], 0.0)
            out["topk_popularity"] = jnp.where(
                top_valid, group_pop / groups["tie_size"].astype(jnp.float32), 0.0
            )
    else:
        item_idx = jnp.arange(n, dtype=jnp.int32)
        ahead = (filtered > best_score[:, None]) | (
            (filtered == best_score[:, None]) & (item_idx[None, :] < best_item[:, None])
        )
        first_rank = jnp.where(has_rel, 1 + ahead.sum(-1, dtype=jnp.int32), 0)
        out["first_rank"] = first_rank
        groups = _ordered_groups(topk_hits)
        if pop is not None:
            out["topk_popularity"] = jnp.where(
                top_valid, pop[jnp.where(top_valid, top_ids, 0)], 0.0
            )
    out.update(groups)

    # Relevant scores with the valid slots first (the AUC loop stops after the last valid one).
    valid_first = jnp.argsort(~rel_valid, axis=1, stable=True)
    thresholds = jnp.take_along_axis(jnp.where(rel_valid, pos_scores, jnp.inf), valid_first, 1)
    if with_auc:
        twice = _pairs_above_twice(filtered, thresholds, thresholds, num_relevant, block_size)
        out["auc"] = _auc_from_counts(twice, num_relevant, num_candidates - num_relevant, 0.5)

    rr_start = [above + 1] if expected else []
    rr_size = [level] if expected else []
    if collie:
        if expected:
            c_last = c_values[:, -1]
            c_last_size = counts[3] + (excl_valid & (excl_scores == c_last[:, None])).sum(
                -1, dtype=jnp.int32
            )
            c_groups = _tie_groups(
                c_values, c_valid, pos_scores, rel_valid, num_relevant, c_last_size
            )
            del c_groups["tie_same"], c_groups["tie_last"]
            excl_above = (excl_valid & (excl_scores > best_score[:, None])).sum(-1)
            excl_level = (excl_valid & (excl_scores == best_score[:, None])).sum(-1)
            rr_start.append(above + 1 + excl_above.astype(jnp.int32))
            rr_size.append(level + excl_level.astype(jnp.int32))
        else:
            c_groups = _ordered_groups(c_hits)
            excl_ahead = excl_valid & (
                (excl_scores > best_score[:, None])
                | ((excl_scores == best_score[:, None]) & (excl_ids < best_item[:, None]))
            )
            collie_first = jnp.where(has_rel, first_rank + excl_ahead.sum(-1, dtype=jnp.int32), 0)
            out["collie_first_rank"] = collie_first
            out["collie_reciprocal_rank"] = reciprocal_rank(collie_first)
        out.update({f"collie_{name}": value for name, value in c_groups.items()})
        # Unfiltered counts = counts over the filtered candidates + the excluded items' share.
        if collie_sigmoid:
            upper, lower = _sigmoid_tie_bounds(thresholds)
            twice_c = _pairs_above_twice(filtered, upper, lower, num_relevant, block_size)
        else:
            upper = lower = thresholds
            if not with_auc:
                twice = _pairs_above_twice(filtered, upper, lower, num_relevant, block_size)
            twice_c = twice
        excl_share = (excl_scores[:, :, None] > upper[:, None, :]).sum((1, 2)) + (
            excl_scores[:, :, None] >= lower[:, None, :]
        ).sum((1, 2))
        twice_c = twice_c + excl_share.astype(jnp.float32)
        out["collie_auc"] = _auc_from_counts(
            twice_c, num_relevant, num_unfiltered - num_relevant, 0.0
        )

    if expected:
        # Filtered and Collie rows in one call: a single (conditional) pass for both.
        rel_at_best = jnp.where(has_rel, best_tied, 0)
        rr = _expected_reciprocal_rank(
            jnp.concatenate(rr_start),
            jnp.concatenate(rr_size),
            jnp.tile(rel_at_best, len(rr_start)),
            n,
        )
        out["reciprocal_rank"] = rr[:b]
        if collie:
            out["collie_reciprocal_rank"] = rr[b:]
    else:
        out["reciprocal_rank"] = reciprocal_rank(first_rank)
    return out


# --------------------------------------------------------------------------- metrics from stats
def _discounts(k: int) -> jax.Array:
    """(k,) float32 ``1 / log2(position + 1)`` for positions 1..k."""
    return 1.0 / jnp.log2(jnp.arange(2, k + 2, dtype=jnp.float32))


def _hits_at(topk_hits: jax.Array, k: int) -> jax.Array:
    """(B, min(k, K)) float32 hit indicators of the first k positions."""
    return topk_hits[:, :k].astype(jnp.float32)


def hit_rate_at_k(topk_hits: jax.Array, k: int) -> jax.Array:
    """HitRate@k per user: 1 if a relevant item is in the top k.

    Args:
      topk_hits: (B, K) bool, True where position p of the ranked list is relevant.
      k: cut-off.

    Returns:
      (B,) float32.
    """
    return _hits_at(topk_hits, k).max(-1, initial=0.0)


def precision_at_k(topk_hits: jax.Array, k: int) -> jax.Array:
    """Precision@k per user: ``hits@k / k``. Args as ``hit_rate_at_k``; returns (B,) float32."""
    return _hits_at(topk_hits, k).sum(-1) / k


def recall_at_k(topk_hits: jax.Array, num_relevant: jax.Array, k: int) -> jax.Array:
    """Recall@k per user: ``hits@k / n``; 0 where ``n = 0``.

    Args:
      topk_hits: (B, K) bool.
      num_relevant: (B,) int relevant items per user.
      k: cut-off.

    Returns:
      (B,) float32.
    """
    n = num_relevant.astype(jnp.float32)
    return jnp.where(n > 0, _hits_at(topk_hits, k).sum(-1) / jnp.maximum(n, 1.0), 0.0)


def ndcg_at_k(topk_hits: jax.Array, num_relevant: jax.Array, k: int) -> jax.Array:
    """NDCG@k per user with binary gains; 0 where ``n = 0``.

    Args:
      topk_hits: (B, K) bool.
      num_relevant: (B,) int.
      k: cut-off.

    Returns:
      (B,) float32 ``DCG@k / IDCG@k``.
    """
    hits = _hits_at(topk_hits, k)
    disc = _discounts(k)
    dcg = (hits * disc[: hits.shape[1]]).sum(-1)
    ideal_cum = jnp.concatenate([jnp.zeros(1), jnp.cumsum(disc)])  # (k + 1,)
    idcg = ideal_cum[jnp.clip(num_relevant, 0, k)]
    return jnp.where(idcg > 0, dcg / jnp.maximum(idcg, 1e-30), 0.0)


def average_precision_at_k(topk_hits: jax.Array, num_relevant: jax.Array, k: int) -> jax.Array:
    """AP@k per user: ``sum_{relevant p <= k} precision@p / min(n, k)``; 0 where ``n = 0``.

    Args:
      topk_hits: (B, K) bool.
      num_relevant: (B,) int.
      k: cut-off.

    Returns:
      (B,) float32.
    """
    hits = _hits_at(topk_hits, k)
    positions = jnp.arange(1, hits.shape[1] + 1, dtype=jnp.float32)
    precisions = jnp.cumsum(hits, -1) / positions
    denom = jnp.minimum(num_relevant, k).astype(jnp.float32)
    return jnp.where(denom > 0, (hits * precisions).sum(-1) / jnp.maximum(denom, 1.0), 0.0)


def reciprocal_rank(first_rank: jax.Array) -> jax.Array:
    """``1 / first_rank`` per user; 0 where ``first_rank`` is 0 (no relevant item).

    Args:
      first_rank: (B,) int 1-based rank of the first relevant item.

    Returns:
      (B,) float32.
    """
    r = first_rank.astype(jnp.float32)
    return jnp.where(r > 0, 1.0 / jnp.maximum(r, 1.0), 0.0)


def mean_popularity_at_k(topk_items: jax.Array, item_popularity: jax.Array, k: int) -> jax.Array:
    """Mean popularity of the (up to k) recommended items per user; 0 for an empty list.

    Args:
      topk_items: (B, K) int item indices, ``-1`` past the end of the list.
      item_popularity: (N,) float, e.g. training interaction counts.
      k: cut-off.

    Returns:
      (B,) float32.
    """
    items = topk_items[:, :k]
    valid = items >= 0
    pop = jnp.where(valid, item_popularity[jnp.where(valid, items, 0)], 0.0)
    count = valid.sum(-1)
    return jnp.where(count > 0, pop.sum(-1) / jnp.maximum(count, 1), 0.0)


def _slot_relevance(stats: dict[str, jax.Array], k: int, prefix: str = "") -> jax.Array:
    """(B, k) probability that each position of the top k holds a relevant item (``p / g``)."""
    size = stats[f"{prefix}tie_size"][:, :k].astype(jnp.float32)
    rel = stats[f"{prefix}tie_relevant"][:, :k].astype(jnp.float32)
    return rel / jnp.maximum(size, 1.0)


def _expected_at_k(stats: dict[str, jax.Array], k: int, prefix: str = "") -> dict[str, jax.Array]:
    """Expected hits, DCG, AP sum and hit probability of the top k from the list's tie groups.

    A position in a group of ``g`` candidates holding ``p`` relevant ones is relevant with
    probability ``p / g``; summed, that gives the expected hits and DCG. For AP,
    ``E[1{relevant at r} * hits@r] = (p / g) * (before + 1 + j * (p - 1) / (g - 1))`` for the
    group's ``j``-th slot (0-based), ``before`` relevant items ranking above the group. The top k
    miss every relevant item iff none ranks above the group of position k and its first ``m``
    slots hold none: ``C(g - m, p) / C(g, p) = prod_{t < m} (g - p - t) / (g - t)``.

    Returns:
      (B,) float32 ``hits``, ``dcg``, ``ap_sum`` (``sum_r E[1{rel at r} * hits@r] / r``) and
      ``hit`` (the probability that the top k hold a relevant item).
    """
    start = stats[f"{prefix}tie_start"][:, :k]
    size = stats[f"{prefix}tie_size"][:, :k].astype(jnp.float32)
    rel = stats[f"{prefix}tie_relevant"][:, :k].astype(jnp.float32)
    before = stats[f"{prefix}rel_before"][:, :k]
    kk = start.shape[1]
    position = jnp.arange(1, kk + 1, dtype=jnp.int32)
    prob = _slot_relevance(stats, k, prefix)  # (B, k)
    slot = (position - start).astype(jnp.float32)  # 0-based slot in the group
    ap_terms = prob * (
        before.astype(jnp.float32) + 1.0 + slot * (rel - 1.0) / jnp.maximum(size - 1.0, 1.0)
    )
    disc = _discounts(kk)
    # The group of position k (the list's last position when k > K).
    g, p, m = size[:, -1:], rel[:, -1:], (kk + 1 - start[:, -1:]).astype(jnp.float32)
    t = jnp.arange(kk, dtype=jnp.float32)[None, :]
    factors = jnp.where(t < m, jnp.maximum(g - p - t, 0.0) / jnp.maximum(g - t, 1.0), 1.0)
    miss = jnp.prod(factors, -1)
    hit = jnp.where(before[:, -1] > 0, 1.0, 1.0 - miss)
    return {
        "hits": prob.sum(-1),
        "dcg": (prob * disc).sum(-1),
        "ap_sum": (ap_terms / position.astype(jnp.float32)).sum(-1),
        "hit": jnp.where(stats["num_relevant"] > 0, hit, 0.0),
    }


def metrics_from_stats(
    stats: dict[str, jax.Array],
    *,
    ks: Sequence[int],
    metrics: Sequence[str],
) -> dict[str, jax.Array]:
    """Per-user metric arrays named ``ndcg@10``, ``mrr``, ``collie_map@10``... from ``ranking_stats``.

    The same formulas serve both tie rules: with ``ties="index"`` every position of the list is
    a tie group of its own and the expectations are the plain values.

    Args:
      stats: the output of ``ranking_stats``.
      ks: cut-offs for the ``@k`` metrics, each ``<= k`` given to ``ranking_stats`` (or any
        value when that ``k`` was clipped to ``N``).
      metrics: names from ``RANKING_METRICS`` or plug-in metrics (``resolve_metric``), reported
        as ``{Metric.name}@{k}``; ``auc`` needs ``stats["auc"]``, ``popularity``
        needs ``stats["topk_popularity"]`` (``ranking_stats(..., item_popularity=...)``).

    Returns:
      A dict of (B,) float32 arrays. With collie stats present it also holds
      ``collie_map@k`` for every k, ``collie_mrr`` and ``collie_auc``.
    """
    n = stats["num_relevant"]
    nf = n.astype(jnp.float32)
    has_rel = n > 0
    out: dict[str, jax.Array] = {}
    for k in ks:
        e = _expected_at_k(stats, k)
        for name in metrics:
            if name == "ndcg":
                disc = _discounts(k)
                ideal_cum = jnp.concatenate([jnp.zeros(1), jnp.cumsum(disc)])  # (k + 1,)
                idcg = ideal_cum[jnp.clip(n, 0, k)]
                out[f"ndcg@{k}"] = jnp.where(idcg > 0, e["dcg"] / jnp.maximum(idcg, 1e-30), 0.0)
            elif name == "recall":
                out[f"recall@{k}"] = jnp.where(has_rel, e["hits"] / jnp.maximum(nf, 1.0), 0.0)
            elif name == "precision":
                out[f"precision@{k}"] = e["hits"] / k
            elif name == "hit_rate":
                out[f"hit_rate@{k}"] = e["hit"]
            elif name == "map":
                out[f"map@{k}"] = _ap_from_sum(e["ap_sum"], n, k)
            elif name == "popularity":
                if "topk_popularity" not in stats:
                    raise MetricsError("metric 'popularity' needs item_popularity")
                pop = stats["topk_popularity"][:, :k]
                count = (stats["topk_items"][:, :k] >= 0).sum(-1)
                out[f"popularity@{k}"] = jnp.where(
                    count > 0, pop.sum(-1) / jnp.maximum(count, 1), 0.0
                )
            elif name not in RANKING_METRICS:
                metric = resolve_metric(name)
                # Always (B, k): a list shorter than k (k beyond the catalogue) is padded with
                # positions that hold nothing.
                relevance = _slot_relevance(stats, k)
                items = stats["topk_items"][:, :k]
                pad = int(k) - relevance.shape[1]
                if pad > 0:
                    relevance = jnp.pad(relevance, ((0, 0), (0, pad)))
                    items = jnp.pad(items, ((0, 0), (0, pad)), constant_values=-1)
                top = TopK(
                    relevance=relevance,
                    num_relevant=n,
                    num_candidates=stats["num_candidates"],
                    items=items,
                    k=int(k),
                )
                value = jnp.asarray(metric.fn(top), jnp.float32)
                if value.shape != n.shape:
                    raise MetricsError(
                        f"metric {name!r} must return one value per user, shape {n.shape}; "
                        f"got {value.shape}"
                    )
                out[f"{metric.name}@{k}"] = value
        if "collie_tie_start" in stats:
            c = _expected_at_k(stats, k, "collie_")
            out[f"collie_map@{k}"] = _ap_from_sum(c["ap_sum"], n, k)
    if "mrr" in metrics:
        out["mrr"] = stats["reciprocal_rank"]
    if "auc" in metrics:
        if "auc" not in stats:
            raise MetricsError("metric 'auc' needs ranking_stats(..., with_auc=True)")
        out["auc"] = stats["auc"]
    if "collie_reciprocal_rank" in stats:
        out["collie_mrr"] = stats["collie_reciprocal_rank"]
        out["collie_auc"] = stats["collie_auc"]
    return out


def _ap_from_sum(ap_sum: jax.Array, num_relevant: jax.Array, k: int) -> jax.Array:
    """AP@k from ``sum_r E[1{rel at r} * hits@r] / r``: divided by ``min(n, k)``."""
    denom = jnp.minimum(num_relevant, k).astype(jnp.float32)
    return jnp.where(denom > 0, ap_sum / jnp.maximum(denom, 1.0), 0.0)


def check_metric_names(metrics: Sequence[str], ks: Sequence[int]) -> None:
    """Raises ``MetricsError`` for unknown metric names or non-positive cut-offs.

    A name that is not built in must resolve to a plug-in (``resolve_metric``), and two metrics
    may not report under the same name.
    """
    labels: dict[str, str] = {}
    for m in metrics:
        label = metric_label(m)  # raises for an unknown name, listing the known ones
        if label in labels and labels[label] != m:
            raise MetricsError(f"metrics {labels[label]!r} and {m!r} both report as {label!r}")
        labels[label] = m
    bad = [k for k in ks if not isinstance(k, (int, np.integer)) or k < 1]
    if bad or not len(ks):
        raise MetricsError(f"ks must be a non-empty list of positive ints, got {list(ks)}")


def ranking_metrics(
    scores: jax.Array,
    relevant: jax.Array,
    exclude: jax.Array | None = None,
    *,
    ks: Sequence[int] = (10,),
    metrics: Sequence[str] = ("ndcg", "recall", "precision", "hit_rate", "map", "mrr", "auc"),
    candidate_mask: jax.Array | None = None,
    collie: bool = False,
    collie_sigmoid: bool = True,
    ties: Ties = "expected",
    item_popularity: jax.Array | None = None,
    block_size: int = 128,
) -> dict[str, jax.Array]:
    """Per-user ranking metrics for one batch (``ranking_stats`` then ``metrics_from_stats``).

    Jit it with the keyword arguments bound, e.g.
    ``jax.jit(functools.partial(ranking_metrics, ks=(5, 10)))``.

    Args:
      scores: (B, N) float scores.
      relevant: (B, R) int relevant items, padded with ``-1``.
      exclude: (B, E) int items removed from the ranking, padded with ``-1``, or None.
      ks: cut-offs.
      metrics: names from ``RANKING_METRICS`` or plug-in metrics (``Metric``).
      candidate_mask: (N,) bool items allowed in the ranking, or None.
      collie: also return ``collie_map@k``, ``collie_mrr``, ``collie_auc``.
      collie_sigmoid: see ``ranking_stats``.
      ties: ``"expected"`` (default) or ``"index"``; see ``ranking_stats``.
      item_popularity: (N,) float, for ``popularity``.
      block_size: see ``ranking_stats``.

    Returns:
      A dict of (B,) float32 arrays; rows without relevant items hold 0 (callers skip them).
    """
    check_metric_names(metrics, ks)
    stats = ranking_stats(
        scores,
        relevant,
        exclude,
        k=max(ks),
        candidate_mask=candidate_mask,
        with_auc="auc" in metrics,
        collie=collie,
        collie_sigmoid=collie_sigmoid,
        ties=ties,
        item_popularity=item_popularity if "popularity" in metrics else None,
        block_size=block_size,
    )
    return metrics_from_stats(stats, ks=ks, metrics=metrics)


# --------------------------------------------------------------------------- explicit ratings
def rating_metrics(predictions: np.ndarray, ratings: np.ndarray) -> dict[str, float]:
    """Root mean squared error and mean absolute error of rating predictions.

    ``rmse = sqrt(mean((p - r)^2))``, ``mae = mean(|p - r|)``, computed in float64.

    Args:
      predictions: (M,) predicted ratings.
      ratings: (M,) true ratings.

    Returns:
      ``{"rmse": float, "mae": float}``.

    Raises:
      MetricsError: for mismatched shapes, no ratings, or non-finite values.
    """
    p = np.asarray(predictions, np.float64).reshape(-1)
    r = np.asarray(ratings, np.float64).reshape(-1)
    if p.shape != r.shape:
        raise MetricsError(f"predictions have shape {p.shape} but ratings have shape {r.shape}")
    if p.size == 0:
        raise MetricsError("rating_metrics needs at least one rating")
    for name, a in (("predictions", p), ("ratings", r)):
        if not np.all(np.isfinite(a)):
            row = int(np.flatnonzero(~np.isfinite(a))[0])
            raise MetricsError(f"{name} holds {a[row]} at position {row}")
    err = p - r
    return {"rmse": float(math.sqrt(np.mean(err * err))), "mae": float(np.mean(np.abs(err)))}
