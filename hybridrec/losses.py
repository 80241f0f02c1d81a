"""Loss functions for implicit and explicit feedback, looked up by name from a config.

Every loss is a plain JAX function with keyword-only arguments, e.g.
``bpr(*, pos_scores, neg_scores, weights=None)``, that returns a scalar (or per-example values
with ``reduction="none"``). All of them are jit-friendly: shapes are checked in Python at trace
time, nothing branches on array values, and there are no Python loops over the batch.

Kinds (``LOSS_KINDS[name]``, also ``get_loss(name).kind``) tell the trainer which arguments to pass:

``"pairwise"``
  ``pos_scores`` (B,) and ``neg_scores`` (B, K) (a (B,) array is read as K = 1). Optional:
  ``weights`` (B,), ``neg_mask`` (B, K) (False marks a sampled negative to ignore, e.g. an
  accidental hit on one of the user's positives), and, for the losses with
  ``supports_metadata`` (all but ``bce``), Collie's metadata partial credit ``pos_meta`` /
  ``neg_meta`` / ``metadata_weights`` (see ``metadata_match``). Losses with
  ``needs_num_items`` (WARP) also need ``num_items``. Names: ``bce``, ``bpr``, ``hinge``,
  ``adaptive_bpr``, ``adaptive_hinge``, ``blended_bpr``, ``warp`` and the Collie-compatible
  ``collie_bpr``, ``collie_hinge``, ``collie_adaptive_bpr``, ``collie_adaptive_hinge``,
  ``collie_warp``.
``"sampled_softmax"``
  The pairwise arguments plus the log sampling probabilities ``pos_log_q`` (B,) and
  ``neg_log_q`` (B, K) and, to drop accidental hits, ``pos_item_ids`` (B,) with
  ``neg_item_ids`` (B, K). Name: ``sampled_softmax``.
``"full_softmax"``
  ``scores`` (B, num_items) for the whole catalogue and ``pos_item_ids`` (B,). Name:
  ``full_softmax``.
``"pointwise_rating"``
  ``scores`` (B,) and explicit ``ratings`` (B,). Name: ``mse``.

Reduction: ``"mean"`` (default) is the weighted mean over the batch, ``sum_b w_b l_b / sum_b w_b``,
so a weight of 0 removes an example and a weight of 2 counts it twice; ``"sum"`` is
``sum_b w_b l_b``; ``"none"`` returns the (B,) values ``w_b l_b`` (``l_b`` when ``weights`` is
None). Collie-compatible losses reduce the same way, over Collie's per-example value ``l + l^2``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal

import jax
import jax.numpy as jnp

Reduction = Literal["mean", "sum", "none"]
ArrayLike = Any  # jax.Array, np.ndarray or a Python number
MetaLike = ArrayLike | Mapping[str, ArrayLike] | None

_EULER_GAMMA = 0.5772156649015329


class LossError(ValueError):
    """Raised for an unknown loss name or arguments of the wrong shape; the message names them."""


# ---------------------------------------------------------------------------------- registry
_LOSSES: dict[str, Callable[..., jax.Array]] = {}
_KINDS: dict[str, str] = {}

#: name -> kind ("pairwise", "sampled_softmax", "full_softmax", "pointwise_rating"), read-only.
LOSS_KINDS: Mapping[str, str] = MappingProxyType(_KINDS)
#: name -> loss function, read-only.
LOSSES: Mapping[str, Callable[..., jax.Array]] = MappingProxyType(_LOSSES)


def _register(name: str, kind: str, needs_num_items: bool = False, hardest_only: bool = False):
    """Adds a loss to the registry and tags it with ``kind``, ``needs_num_items`` and
    ``hardest_only`` (a pairwise loss that reads only each row's highest-scoring negative, so
    that an objective may score the others without gradients: ``hybridrec.objectives.pairwise``).
    """

    def deco(fn):
        fn.kind = kind
        fn.needs_num_items = needs_num_items
        fn.hardest_only = hardest_only
        fn.supports_metadata = "pos_meta" in inspect.signature(fn).parameters
        _LOSSES[name] = fn
        _KINDS[name] = kind
        return fn

    return deco


#: The public decorator for a researcher's own loss, e.g. in ``my_pkg/losses.py``:
#: ``@register("focal_bpr", kind="pairwise")`` then ``config.train.loss = "my_pkg.losses.focal_bpr"``
#: (the dotted path imports the module; the decorator tags the function with its kind).
register = _register


def get_loss(name: str) -> Callable[..., jax.Array]:
    """Returns the loss function registered under ``name``.

    The function carries four attributes: ``kind`` (which arguments it takes, see the module
    docstring), ``needs_num_items`` (True for WARP), ``supports_metadata`` (whether it takes
    Collie's partial credit ``pos_meta`` / ``neg_meta`` / ``metadata_weights``) and
    ``hardest_only`` (True for the adaptive losses: only the highest-scoring unmasked negative
    of a row enters the loss).

    Raises:
      LossError: for an unknown name, listing the known ones.
    """
    from hybridrec.plugins import resolve

    loss = resolve(name, _LOSSES, what="loss", error=LossError)
    if not hasattr(loss, "kind"):
        raise LossError(
            f"loss {name!r} has no `kind`: decorate your own loss with "
            "hybridrec.losses.register(name, kind=...) so the trainer knows its arguments"
        )
    return loss


# ---------------------------------------------------------------------------------- helpers
def _float(x: ArrayLike) -> jax.Array:
    """As a JAX float array (ints and Python numbers become float32)."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def _check_pos_neg(
    name: str, pos_scores: ArrayLike, neg_scores: ArrayLike
) -> tuple[jax.Array, jax.Array]:
    """Validates (B,) positives and (B, K) negatives; a (B,) negative array becomes (B, 1)."""
    pos = _float(pos_scores)
    neg = _float(neg_scores)
    if pos.ndim != 1:
        raise LossError(f"{name}: pos_scores must have shape (B,), got {pos.shape}")
    if neg.ndim == 1:
        neg = neg[:, None]
    if neg.ndim != 2 or neg.shape[0] != pos.shape[0]:
        raise LossError(
            f"{name}: neg_scores must have shape (B, K) = ({pos.shape[0]}, K) to match "
            f"pos_scores {pos.shape}, got {jnp.shape(neg_scores)}"
        )
    if neg.shape[1] == 0:
        raise LossError(f"{name}: neg_scores has no negatives (K = 0)")
    return pos, neg


def _check_like(name: str, arg: str, value: ArrayLike | None, shape: tuple[int, ...]):
    """Checks an optional array argument against ``shape``; returns it as a JAX array or None."""
    if value is None:
        return None
    value = jnp.asarray(value)
    if value.ndim == 1 and len(shape) == 2 and shape[1] == 1:
        value = value[:, None]
    if value.shape != shape:
        raise LossError(f"{name}: {arg} must have shape {shape}, got {value.shape}")
    return value


def _neg_mask(name: str, neg_mask: ArrayLike | None, shape: tuple[int, int]) -> jax.Array:
    """(B, K) bool mask of the negatives that count; all True when none is given."""
    mask = _check_like(name, "neg_mask", neg_mask, shape)
    return jnp.ones(shape, bool) if mask is None else mask.astype(bool)


def _reduce(name: str, per_example: jax.Array, weights: ArrayLike | None, reduction: str):
    """Applies per-example ``weights`` (B,) and the reduction; see the module docstring."""
    if reduction not in ("mean", "sum", "none"):
        raise LossError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    w = _check_like(name, "weights", weights, per_example.shape)
    if w is None:
        if reduction == "none":
            return per_example
        return per_example.sum() if reduction == "sum" else per_example.mean()
    w = _float(w)
    weighted = per_example * w
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return weighted.sum()
    total = w.sum()
    # All-zero weights give 0, not NaN (e.g. a padded batch); the inner where keeps grads finite.
    return jnp.where(total > 0, weighted.sum() / jnp.where(total > 0, total, 1.0), 0.0)


def _masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean over axis 1 of the entries where ``mask`` holds; 0 for a row with none."""
    count = mask.sum(axis=1)
    total = jnp.where(mask, values, 0.0).sum(axis=1)
    return total / jnp.maximum(count, 1)


def _hardest(neg: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Index (B,) of the highest-scoring valid negative per row, and whether a row has one."""
    lowest = jnp.finfo(neg.dtype).min
    idx = jnp.argmax(jnp.where(mask, neg, lowest), axis=1)
    return idx, mask.any(axis=1)


def _take(x: jax.Array | float, idx: jax.Array) -> jax.Array | float:
    """Picks column ``idx[b]`` of row ``b`` of a (B, K) array (a scalar passes through)."""
    if isinstance(x, float) or jnp.ndim(x) == 0:
        return x
    return jnp.take_along_axis(x, idx[:, None], axis=1)[:, 0]


def _as_fields(meta: MetaLike) -> dict[str, jax.Array]:
    """A dict field -> array; a bare array becomes the single unnamed field ""."""
    if isinstance(meta, Mapping):
        return {k: jnp.asarray(v) for k, v in meta.items()}
    return {"": jnp.asarray(meta)}


def metadata_match(
    *,
    pos_meta: ArrayLike | Mapping[str, ArrayLike],
    neg_meta: ArrayLike | Mapping[str, ArrayLike],
    metadata_weights: float | Mapping[str, float],
) -> jax.Array:
    """Collie's metadata match fraction between each positive and its negatives.

    ``match[b, k] = sum_f metadata_weights[f] * [pos_meta[f][b] == neg_meta[f][b, k]]``: how much
    partial credit a negative earns by sharing the positive's category (genre, beer style,
    brand...). Collie (ShopRunner, ``collie.loss.metadata_utils.ideal_difference_from_metadata``)
    then uses ``1 - match`` as the "ideal difference" between the positive and negative scores
    instead of 1, so a negative of the same genre is penalised less. E.g. with weights
    ``{"genre": 0.3, "director": 0.2}`` a negative with the same genre and director is a 50%
    match, one with only the same genre a 30% match.

    Here the categories are gathered by the caller (``item_category[item_ids]``), which keeps this
    jit-friendly. A negative category ID means "missing" and never matches.

    Args:
      pos_meta: (B,) integer category of each positive item, or a dict field -> (B,).
      neg_meta: (B, K) (or (B,) for K = 1) categories of the negatives, or a dict with the same
        fields as ``pos_meta``.
      metadata_weights: the weight of a match, or a dict field -> weight. Python numbers, summing
        to at most 1 (as Collie requires; traced weights are accepted but cannot be checked).

    Returns:
      (B, K) float32 match fraction in [0, 1].

    Raises:
      LossError: if the weights sum above 1, the fields differ, or the shapes do not match.
    """
    name = "metadata_match"
    if isinstance(metadata_weights, Mapping):
        weights = dict(metadata_weights)
        if not isinstance(pos_meta, Mapping) or not isinstance(neg_meta, Mapping):
            raise LossError(
                f"{name}: metadata_weights is a dict {sorted(weights)}, so pos_meta and neg_meta "
                "must be dicts with the same fields"
            )
    else:
        weights = {"": metadata_weights}
    if not weights:
        raise LossError(f"{name}: metadata_weights is empty")
    pos_fields = _as_fields(pos_meta)
    neg_fields = _as_fields(neg_meta)
    if set(pos_fields) != set(weights) or set(neg_fields) != set(weights):
        raise LossError(
            f"{name}: fields differ: metadata_weights {sorted(weights)}, pos_meta "
            f"{sorted(pos_fields)}, neg_meta {sorted(neg_fields)}"
        )
    try:
        total = sum(float(w) for w in weights.values())
    except (TypeError, jax.errors.ConcretizationTypeError):
        total = None  # traced weights: cannot check here
    if total is not None and total > 1 + 1e-6:
        raise LossError(f"{name}: sum of metadata weights is {total:g}, must be <= 1")
    match = None
    for field, w in weights.items():
        pos, neg = pos_fields[field], neg_fields[field]
        label = f"[{field!r}]" if field else ""
        if pos.ndim != 1:
            raise LossError(f"{name}: pos_meta{label} must have shape (B,), got {pos.shape}")
        if neg.ndim == 1:
            neg = neg[:, None]
        if neg.ndim != 2 or neg.shape[0] != pos.shape[0]:
            raise LossError(
                f"{name}: neg_meta{label} must have shape ({pos.shape[0]}, K), got {neg.shape}"
            )
        same = (pos[:, None] == neg) & (pos[:, None] >= 0)
        term = same.astype(jnp.float32) * w
        match = term if match is None else match + term
    return match


def _credit(
    name: str, pos_meta: MetaLike, neg_meta: MetaLike, metadata_weights: Any, shape: tuple
) -> jax.Array | float:
    """(B, K) match fraction, or 0.0 when no metadata is given."""
    given = [x is not None for x in (pos_meta, neg_meta, metadata_weights)]
    if not any(given) or (isinstance(metadata_weights, Mapping) and not metadata_weights):
        return 0.0  # no metadata (Collie treats empty dicts the same way)
    if not all(given):
        raise LossError(f"{name}: pass all of pos_meta, neg_meta and metadata_weights, or none")
    match = metadata_match(pos_meta=pos_meta, neg_meta=neg_meta, metadata_weights=metadata_weights)
    if match.shape != shape:
        raise LossError(f"{name}: metadata gives shape {match.shape}, neg_scores {shape}")
    return match


def _harmonic(n: jax.Array) -> jax.Array:
    """H(n) = sum_{i=1..n} 1/i for integer-valued n >= 1, in closed form: psi(n + 1) + gamma."""
    return jax.scipy.special.digamma(n + 1.0) + _EULER_GAMMA


# ---------------------------------------------------------------------------------- pointwise
@_register("bce", kind="pairwise")
def bce(
    *,
    pos_scores: ArrayLike,
    neg_scores: ArrayLike,
    weights: ArrayLike | None = None,
    neg_mask: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    """Pointwise binary cross-entropy on logits: positives are label 1, negatives label 0.

    ``l_b = softplus(-pos_b) + mean_k softplus(neg_bk)``, i.e. ``-log sigmoid(pos) -
    mean_k log(1 - sigmoid(neg_k))``, computed with ``softplus`` so that large logits neither
    overflow nor lose precision. Averaging over the K negatives keeps one positive and its
    negatives on an equal footing whatever K is (as the implicit-feedback pointwise loss of
    Spotlight, which averages a positive and a negative term). Reference: the log loss with
    sampled negatives of He et al. (2017), "Neural Collaborative Filtering", WWW, eq. 7.

    Args:
      pos_scores: (B,) logits of the positive items.
      neg_scores: (B, K) logits of the sampled negatives.
      weights: optional (B,) per-example weights.
      neg_mask: optional (B, K) bool, False for negatives to ignore.
      reduction: "mean" (weighted), "sum" or "none".

    Returns:
      A scalar, or (B,) with ``reduction="none"``.
    """
    name = "bce"
    pos, neg = _check_pos_neg(name, pos_scores, neg_scores)
    mask = _neg_mask(name, neg_mask, neg.shape)
    per = jax.nn.softplus(-pos) + _masked_mean(jax.nn.softplus(neg), mask)
    return _reduce(name, per, weights, reduction)


@_register("mse", kind="pointwise_rating")
def mse(
    *,
    scores: ArrayLike,
    ratings: ArrayLike,
    weights: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    """Squared error for explicit ratings: ``l_b = (scores_b - ratings_b)^2``.

    The loss of rating-prediction matrix factorisation (Koren, Bell & Volinsky, 2009, "Matrix
    Factorization Techniques for Recommender Systems").

    Args:
      scores: (B,) predicted ratings.
      ratings: (B,) observed ratings.
      weights: optional (B,) per-example weights.
      reduction: "mean" (weighted), "sum" or "none".

    Returns:
      A scalar, or (B,) with ``reduction="none"``.
    """
    name = "mse"
    s = _float(scores)
    r = _float(ratings)
    if s.ndim != 1 or r.shape != s.shape:
        raise LossError(
            f"{name}: scores and ratings must both be (B,), got {s.shape} and {r.shape}"
        )
    return _reduce(name, jnp.square(s - r), weights, reduction)


# ---------------------------------------------------------------------------------- pairwise
def _bpr_pair(diff: jax.Array, match: jax.Array | float) -> jax.Array:
    """-log sigmoid(diff), or the soft-label version when a negative earns partial credit."""
    target = 1.0 - match
    return target * jax.nn.softplus(-diff) + (1.0 - target) * jax.nn.softplus(diff)


@_register("bpr", kind="pairwise")
def bpr(
    *,
    pos_scores: ArrayLike,
    neg_scores: ArrayLike,
    weights: ArrayLike | None = None,
    neg_mask: ArrayLike | None = None,
    pos_meta: MetaLike = None,
    neg_meta: MetaLike = None,
    metadata_weights: float | Mapping[str, float] | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    """Bayesian Personalised Ranking: ``l_b = mean_k -log sigmoid(pos_b - neg_bk)``.

    Rendle, Freudenthaler, Gantner & Schmidt-Thieme (2009), "BPR: Bayesian Personalized Ranking
    from Implicit Feedback", UAI. Computed as ``softplus(neg - pos)``, which is stable.

    With metadata partial credit (``match``, see ``metadata_match``) the pair becomes a
    cross-entropy with the soft target ``y = 1 - match``:
    ``-y log sigmoid(d) - (1 - y) log sigmoid(-d)``, minimised at ``sigmoid(d) = y`` — the same
    point where Collie's ``ideal_difference - sigmoid(d)`` vanishes. Without metadata ``y = 1``
    and this is plain BPR.

    Args:
      pos_scores: (B,) scores of the positive items.
      neg_scores: (B, K) scores of the sampled negatives.
      weights: optional (B,) per-example weights.
      neg_mask: optional (B, K) bool, False for negatives to ignore.
      pos_meta, neg_meta, metadata_weights: optional partial credit, see ``metadata_match``.
      reduction: "mean" (weighted), "sum" or "none".

    Returns:
      A scalar, or (B,) with ``reduction="none"``.
    """
    name = "bpr"
    pos, neg = _check_pos_neg(name, pos_scores, neg_scores)
    mask = _neg_mask(name, neg_mask, neg.shape)
    match = _credit(name, pos_meta, neg_meta, metadata_weights, neg.shape)
    per = _masked_mean(_bpr_pair(pos[:, None] - neg, match), mask)
    return _reduce(name, per, weights, reduction)


@_register("hinge", kind="pairwise")
def hinge(
    *,
    pos_scores: ArrayLike,
    neg_scores: ArrayLike,
    weights: ArrayLike | None = None,
    neg_mask: ArrayLike | None = None,
    margin: float = 1.0,
    pos_meta: MetaLike = None,
    neg_meta: MetaLike = None,
    metadata_weights: float | Mapping[str, float] | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    """Pairwise hinge: ``l_b = mean_k max(0, m_bk - pos_b + neg_bk)``.

    The margin ranking loss (e.g. Weston et al. 2011; Spotlight's ``hinge_loss``). The margin
    is ``m_bk = margin * (1 - match_bk)`` with metadata partial credit (Collie's ideal
    difference), else ``margin``.

    Args:
      pos_scores: (B,) scores of the positive items.
      neg_scores: (B, K) scores of the sampled negatives.
      weights: optional (B,) per-example weights.
      neg_mask: optional (B, K) bool, False for negatives to ignore.
      margin: the score gap a positive should keep over a negative.
      pos_meta, neg_meta, metadata_weights: optional partial credit, see ``metadata_match``.
      reduction: "mean" (weighted), "sum" or "none".

    Returns:
      A scalar, or (B,) with ``reduction="none"``.
    """
    name = "hinge"
    pos, neg = _check_pos_neg(name, pos_scores, neg_scores)
    mask = _neg_mask(name, neg_mask, neg.shape)
    match = _credit(name, pos_meta, neg_meta, metadata_weights, neg.shape)
    pair = jax.nn.relu(margin * (1.0 - match) - pos[:, None] + neg)
    return _reduce(name, _masked_mean(pair, mask), weights, reduction)


def _adaptive(name, pos_scores, neg_scores, neg_mask, pos_meta, neg_meta, metadata_weights):
    """Positive, hardest valid negative, its match fraction and whether a row has a negative."""
    pos, neg = _check_pos_neg(name, pos_scores, neg_scores)
    mask = _neg_mask(name, neg_mask, neg.shape)
    match = _credit(name, pos_meta, neg_meta, metadata_weights, neg.shape)
    idx, has_neg = _hardest(neg, mask)
    return pos, _take(neg, idx), _take(match, idx), has_neg


@_register("adaptive_bpr", kind="pairwise", hardest_only=True)
def adaptive_bpr(
    *,
    pos_scores: ArrayLike,
    neg_scores: ArrayLike,
    weights: ArrayLike | None = None,
    neg_mask: ArrayLike | None = None,
    pos_meta: MetaLike = None,
    neg_meta: MetaLike = None,
    metadata_weights: float | Mapping[str, float] | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    """BPR against the hardest of K negatives: ``l_b = -log sigmoid(pos_b - max_k neg_bk)``.

    The "adaptive" losses of Spotlight (Kula) and Collie approximate WARP (Weston, Bengio &
    Usunier 2011, "WSABIE") by training on the highest-scoring sampled negative. Partial credit
    (if given) is that of the chosen negative, as in ``bpr``. A row whose negatives are all
    masked contributes 0.

    Args:
      pos_scores: (B,) scores of the positive items.
      neg_scores: (B, K) scores of the sampled negatives.
      weights: optional (B,) per-example weights.
      neg_mask: optional (B, K) bool, False for negatives to ignore.
      pos_meta, neg_meta, metadata_weights: optional partial credit, see ``metadata_match``.
      reduction: "mean" (weighted), "sum" or "none".

    Returns:
      A scalar, or (B,) with ``reduction="none"``.
    """
    name = "adaptive_bpr"
    pos, neg, match, has_neg = _adaptive(
        name, pos_scores, neg_scores, neg_mask, pos_meta, neg_meta, metadata_weights
    )
    per = jnp.where(has_neg, _bpr_pair(pos - neg, match), 0.0)
    return _reduce(name, per, weights, reduction)


@_register("adaptive_hinge", kind="pairwise", hardest_only=True)
def adaptive_hinge(
    *,
    pos_scores: ArrayLike,
    neg_scores: ArrayLike,
    weights: ArrayLike | None = None,
    neg_mask: ArrayLike | None = None,
    margin: float = 1.0,
    pos_meta: MetaLike = None,
    neg_meta: MetaLike = None,
    metadata_weights: float | Mapping[str, float] | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    """Hinge against the hardest of K negatives: ``l_b = max(0, m - pos_b + max_k neg_bk)``.

    Spotlight's ``adaptive_hinge_loss`` (Kula), a WARP-inspired approximation (Weston et al.
    2011). The margin ``m`` is ``margin * (1 - match)`` of the chosen negative with metadata
    partial credit. A row whose negatives are all masked contributes 0.

    Args:
      pos_scores: (B,) scores of the positive items.
      neg_scores: (B, K) scores of the sampled negatives.
      weights: optional (B,) per-example weights.
      neg_mask: optional (B, K) bool, False for negatives to ignore.
      margin: the score gap a positive should keep over a negative.
      pos_meta, neg_meta, metadata_weights: optional partial credit, see ``metadata_match``.
      reduction: "mean" (weighted), "sum" or "none".

    Returns:
      A scalar, or (B,) with ``reduction="none"``.
    """
    name = "adaptive_hinge"
    pos, neg, match, has_neg = _adaptive(
        name, pos_scores, neg_scores, neg_mask, pos_meta, neg_meta, metadata_weights
    )
    per = jnp.where(has_neg, jax.nn.relu(margin * (1.0 - match) - pos + neg), 0.0)
    return _reduce(name, per, weights, reduction)


@_register("blended_bpr", kind="pairwise")
def blended_bpr(
    *,
    pos_scores: ArrayLike,
    neg_scores: ArrayLike,
    weights: ArrayLike | None = None,
    neg_mask: ArrayLike | None = None,
    mean_weight: float = 0.5,
    pos_meta: MetaLike = None,
    neg_meta: MetaLike = None,
    metadata_weights: float | Mapping[str, float] | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    """Adaptive BPR plus ``mean_weight`` times plain BPR over all K negatives:
    ``l_b = -log sigmoid(pos_b - max_k neg_bk) + w * mean_k -log sigmoid(pos_b - neg_bk)``.

    The two terms pull in different directions. The hardest negative (``adaptive_bpr``) trains
    the top of the list, what NDCG@10 reads; but alone, and more so the more negatives it
    chooses from, it neglects the many easy pairs and lowers AUC. The mean over the K uniform
    negatives (``bpr``) is an unbiased surrogate of AUC. On MovieLens 100K (``hybrid.py``'s
    tuning log, against the hardest of 5): the hardest of 8 alone gained NDCG@10 +0.0079 and
    lost AUC -0.0023; blended over 10 with ``w = 1.0`` gained +0.0083 at AUC +0.0003. ``w = 0``
    is ``adaptive_bpr``; as ``w`` grows it tends to ``bpr``. Every negative gets a gradient (from the mean term), so an objective scores all K
    with gradients (this loss is not ``hardest_only``). Partial credit, if given, applies to
    both terms as in ``bpr`` and ``adaptive_bpr``; a row whose negatives are all masked
    contributes 0.

    Args:
      pos_scores: (B,) scores of the positive items.
      neg_scores: (B, K) scores of the sampled negatives.
      weights: optional (B,) per-example weights.
      neg_mask: optional (B, K) bool, False for negatives to ignore.
      mean_weight: ``w`` >= 0, the weight of the mean term.
      pos_meta, neg_meta, metadata_weights: optional partial credit, see ``metadata_match``.
      reduction: "mean" (weighted), "sum" or "none".

    Returns:
      A scalar, or (B,) with ``reduction="none"``.
    """
    name = "blended_bpr"
    if not isinstance(mean_weight, jax.Array) and not mean_weight >= 0:
        raise LossError(f"{name}: mean_weight must be >= 0, got {mean_weight!r}")
    pos, neg = _check_pos_neg(name, pos_scores, neg_scores)
    mask = _neg_mask(name, neg_mask, neg.shape)
    match = _credit(name, pos_meta, neg_meta, metadata_weights, neg.shape)
    idx, has_neg = _hardest(neg, mask)
    hardest = jnp.where(has_neg, _bpr_pair(pos - _take(neg, idx), _take(match, idx)), 0.0)
    mean = _masked_mean(_bpr_pair(pos[:, None] - neg, match), mask)
    return _reduce(name, hardest + mean_weight * mean, weights, reduction)


def _first_violation(pos, neg, mask, margin_pair):
    """Index of the first valid negative with ``neg > pos - margin``, its 1-based trial count.

    Returns (idx (B,), trials (B,) float, found (B,) bool). Masked negatives are skipped and do
    not count as trials, as LightFM resamples a negative that turns out to be a positive.
    """
    violating = mask & (neg > pos[:, None] - margin_pair)  # (B, K)
    found = violating.any(axis=1)
    idx = jnp.argmax(violating, axis=1)  # first True (0 when none; guarded by `found`)
    trials = _take(jnp.cumsum(mask, axis=1), idx).astype(neg.dtype)
    # Rows without a violation are zeroed by the caller with `where`; keeping their trial count
    # >= 1 keeps the unused branch finite, so its zero gradient does not become 0 * inf = NaN.
    return idx, jnp.maximum(trials, 1.0), found


@_register("warp", kind="pairwise", needs_num_items=True)
def warp(
    *,
    pos_scores: ArrayLike,
    neg_scores: ArrayLike,
    num_items: int | ArrayLike,
    weights: ArrayLike | None = None,
    neg_mask: ArrayLike | None = None,
    margin: float = 1.0,
    rank_weight: Literal["harmonic", "log"] = "harmonic",
    max_weight: float | None = None,
    pos_meta: MetaLike = None,
    neg_meta: MetaLike = None,
    metadata_weights: float | Mapping[str, float] | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    """WARP, Weighted Approximate-Rank Pairwise loss, vectorised over K sampled negatives.

    Weston, Bengio & Usunier (2011), "WSABIE: Scaling Up To Large Vocabulary Image Annotation",
    IJCAI, as implemented by LightFM. The K negatives play the role of the sequential trials:
    ``N_b`` is the (1-based) position of the first negative that violates the margin,
    ``neg > pos - m``. The rank of the positive is estimated as
    ``rank_b = max(1, floor((num_items - 1) / N_b))`` and

        ``l_b = L(rank_b) * (m - pos_b + neg_{b, N_b})``,  0 if no negative violates,

    with ``L(r) = sum_{i=1..r} 1/i`` (``rank_weight="harmonic"``, Weston's choice) or
    ``L(r) = log r`` (``rank_weight="log"``: what LightFM's code uses; add ``max_weight=10`` for
    its clip). The harmonic sum is ``log r + 0.577...`` for large r, so the two differ mostly
    for small ranks: a violation at rank 1 weighs 1 with "harmonic" and 0 with "log". ``L`` is
    a constant for the gradient, which flows through the hinge only.
    Masked negatives are skipped and do not count as trials (LightFM resamples accidental
    positives). With metadata partial credit, ``m = margin * (1 - match)`` per pair.

    Args:
      pos_scores: (B,) scores of the positive items.
      neg_scores: (B, K) scores of the sampled negatives, in sampling order.
      num_items: number of items in the catalogue.
      weights: optional (B,) per-example weights.
      neg_mask: optional (B, K) bool, False for negatives to ignore.
      margin: the score gap a positive should keep over a negative.
      rank_weight: "harmonic" or "log", see above.
      max_weight: optional upper bound on ``L(rank)``.
      pos_meta, neg_meta, metadata_weights: optional partial credit, see ``metadata_match``.
      reduction: "mean" (weighted), "sum" or "none".

    Returns:
      A scalar, or (B,) with ``reduction="none"``.
    """
    name = "warp"
    if rank_weight not in ("harmonic", "log"):
        raise LossError(f"{name}: rank_weight must be 'harmonic' or 'log', got {rank_weight!r}")
    pos, neg = _check_pos_neg(name, pos_scores, neg_scores)
    mask = _neg_mask(name, neg_mask, neg.shape)
    match = _credit(name, pos_meta, neg_meta, metadata_weights, neg.shape)
    margin_pair = margin * (1.0 - match)
    idx, trials, found = _first_violation(pos, neg, mask, margin_pair)
    rank = jnp.maximum(1.0, jnp.floor((jnp.asarray(num_items, neg.dtype) - 1.0) / trials))
    w_rank = _harmonic(rank) if rank_weight == "harmonic" else jnp.log(rank)
    if max_weight is not None:
        w_rank = jnp.minimum(w_rank, max_weight)
    hinge_first = _take(margin_pair, idx) - pos + _take(neg, idx)
    per = jnp.where(found, jax.lax.stop_gradient(w_rank) * hinge_first, 0.0)
    return _reduce(name, per, weights, reduction)


# ---------------------------------------------------------------------------------- softmax
@_register("sampled_softmax", kind="sampled_softmax")
def sampled_softmax(
    *,
    pos_scores: ArrayLike,
    neg_scores: ArrayLike,
    pos_log_q: ArrayLike | None = None,
    neg_log_q: ArrayLike | None = None,
    neg_mask: ArrayLike | None = None,
    pos_item_ids: ArrayLike | None = None,
    neg_item_ids: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    temperature: float = 1.0,
    reduction: Reduction = "mean",
) -> jax.Array:
    """Sampled softmax cross-entropy with the log-Q correction.

    ``z = [pos_b / T - log Q(pos_b), neg_bk / T - log Q(neg_bk)]`` and
    ``l_b = logsumexp_k(z) - z_0``: the softmax over the catalogue estimated on K sampled
    negatives. Subtracting the log sampling probability ``log Q`` removes the bias of
    non-uniform (e.g. popularity) sampling: Bengio & Senecal (2008), "Adaptive Importance
    Sampling to Accelerate Training of a Neural Probabilistic Language Model"; Yi et al. (2019),
    "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item Recommendations", RecSys,
    which also corrects the positive's logit (in-batch negatives). With uniform Q the correction
    is a constant shift and changes nothing. Temperature is applied before the correction, as in
    TensorFlow Recommenders.

    Accidental hits (a sampled negative that is the positive itself, or another positive of the
    user) are removed from the softmax by ``neg_mask`` and, when both are given, by comparing
    ``neg_item_ids`` with ``pos_item_ids``. For in-batch negatives pass the (B, B) score matrix
    as ``neg_scores`` and the batch's item IDs, broadcast, as ``neg_item_ids``: the diagonal
    (and any duplicate of the positive) is then dropped.

    Args:
      pos_scores: (B,) scores of the positive items.
      neg_scores: (B, K) scores of the sampled negatives.
      pos_log_q: optional (B,) log sampling probability of each positive item.
      neg_log_q: optional (B, K) log sampling probability of each negative, or (K,) when the
        same K negatives are shared by the whole batch.
      neg_mask: optional (B, K) bool, False for negatives to leave out.
      pos_item_ids: optional (B,) item IDs of the positives.
      neg_item_ids: optional (B, K) item IDs of the negatives (with ``pos_item_ids``).
      weights: optional (B,) per-example weights.
      temperature: divides the scores.
      reduction: "mean" (weighted), "sum" or "none".

    Returns:
      A scalar, or (B,) with ``reduction="none"``.
    """
    name = "sampled_softmax"
    pos, neg = _check_pos_neg(name, pos_scores, neg_scores)
    b, k = neg.shape
    mask = _neg_mask(name, neg_mask, neg.shape)
    if (pos_item_ids is None) != (neg_item_ids is None):
        raise LossError(f"{name}: pass both pos_item_ids and neg_item_ids, or neither")
    if pos_item_ids is not None:
        pid = _check_like(name, "pos_item_ids", pos_item_ids, (b,))
        nid = _check_like(name, "neg_item_ids", neg_item_ids, (b, k))
        mask = mask & (nid != pid[:, None])
    pos_logit = pos / temperature
    neg_logit = neg / temperature
    if pos_log_q is not None:
        pos_logit = pos_logit - _float(_check_like(name, "pos_log_q", pos_log_q, (b,)))
    if neg_log_q is not None:
        q = _float(neg_log_q)
        if q.ndim == 1:  # one set of K negatives shared by the whole batch
            if q.shape != (k,):
                raise LossError(f"{name}: a 1-D neg_log_q must have shape ({k},), got {q.shape}")
            q = jnp.broadcast_to(q, (b, k))
        neg_logit = neg_logit - _check_like(name, "neg_log_q", q, (b, k))
    # Masked logits go to -inf: exp(-inf) = 0 exactly, and the positive keeps every row finite.
    logits = jnp.concatenate([pos_logit[:, None], jnp.where(mask, neg_logit, -jnp.inf)], axis=1)
    per = jax.nn.logsumexp(logits, axis=1) - pos_logit
    return _reduce(name, per, weights, reduction)


@_register("full_softmax", kind="full_softmax")
def full_softmax(
    *,
    scores: ArrayLike,
    pos_item_ids: ArrayLike,
    weights: ArrayLike | None = None,
    item_mask: ArrayLike | None = None,
    temperature: float = 1.0,
    reduction: Reduction = "mean",
) -> jax.Array:
    """Softmax cross-entropy over the whole catalogue: ``l_b = -log_softmax(scores_b / T)[pos_b]``.

    The multinomial likelihood of Covington, Adams & Sargin (2016), "Deep Neural Networks for
    YouTube Recommendations", and Liang et al. (2018), "Variational Autoencoders for
    Collaborative Filtering", used where the catalogue fits in one (B, num_items) matrix.

    Args:
      scores: (B, num_items) scores of every item.
      pos_item_ids: (B,) index of the positive item of each row. Out-of-range indices cannot be
        checked inside jit (JAX clamps them); the caller guarantees ``0 <= id < num_items``.
      weights: optional (B,) per-example weights.
      item_mask: optional (B, num_items) or (num_items,) bool, False for items to leave out of
        the normaliser (e.g. the user's other positives); the positive itself always stays.
      temperature: divides the scores.
      reduction: "mean" (weighted), "sum" or "none".

    Returns:
      A scalar, or (B,) with ``reduction="none"``.
    """
    name = "full_softmax"
    s = _float(scores)
    if s.ndim != 2:
        raise LossError(f"{name}: scores must have shape (B, num_items), got {s.shape}")
    b, n = s.shape
    pid = _check_like(name, "pos_item_ids", pos_item_ids, (b,))
    if not jnp.issubdtype(pid.dtype, jnp.integer):
        raise LossError(f"{name}: pos_item_ids must be integers, got {pid.dtype}")
    logits = s / temperature
    pos_logit = _take(logits, pid)
    if item_mask is not None:
        m = jnp.asarray(item_mask).astype(bool)
        m = jnp.broadcast_to(m, (b, n)) if m.shape == (n,) else m
        m = _check_like(name, "item_mask", m, (b, n))
        m = m | (jnp.arange(n)[None, :] == pid[:, None])
        logits = jnp.where(m, logits, -jnp.inf)
    per = jax.nn.logsumexp(logits, axis=1) - pos_logit
    return _reduce(name, per, weights, reduction)


# ---------------------------------------------------------------------------------- Collie
# Collie (ShopRunner/collie, collie/loss/*.py) defines its pairwise losses on an "ideal
# difference" d* = 1 - match (1 without metadata) and reduces every per-pair loss l as
# (sum l + sum l^2) / B. These variants reproduce its numbers; two differences of form only:
# negatives are (B, K) here (Collie: (K, B)), and per-example weights replace Collie's `mask`
# (Collie keeps masked rows in the denominator B; a weighted mean leaves them out).


def _collie_value(pair: jax.Array) -> jax.Array:
    """Collie's per-pair value l + l^2 (its reduction is the mean of this over the batch)."""
    return pair + jnp.square(pair)


@_register("collie_bpr", kind="pairwise")
def collie_bpr(
    *,
    pos_scores: ArrayLike,
    neg_scores: ArrayLike,
    weights: ArrayLike | None = None,
    neg_mask: ArrayLike | None = None,
    pos_meta: MetaLike = None,
    neg_meta: MetaLike = None,
    metadata_weights: float | Mapping[str, float] | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    """Collie's modified BPR: ``l = d* - sigmoid(pos - neg)``, value ``l + l^2``.

    ``d* = 1 - match`` is Collie's ideal difference (1 without metadata). With K > 1 the value
    is averaged over the negatives; with K = 1 the mean over the batch equals Collie's
    ``bpr_loss``. E.g. pos 3, neg 1.5: ``l = 1 - sigmoid(1.5) = 0.18243``, value 0.2157. Note that
    with partial credit ``l`` can be negative (Collie does not clip it). Collie cites Rendle et al.
    (2009); the form follows Spotlight's / torchmf's ``1 - sigmoid`` BPR.

    Args:
      pos_scores: (B,) scores of the positive items.
      neg_scores: (B, K) scores of the sampled negatives.
      weights: optional (B,) per-example weights.
      neg_mask: optional (B, K) bool, False for negatives to ignore.
      pos_meta, neg_meta, metadata_weights: optional partial credit, see ``metadata_match``.
      reduction: "mean" (weighted), "sum" or "none".

    Returns:
      A scalar, or (B,) with ``reduction="none"``.
    """
    name = "collie_bpr"
    pos, neg = _check_pos_neg(name, pos_scores, neg_scores)
    mask = _neg_mask(name, neg_mask, neg.shape)
    match = _credit(name, pos_meta, neg_meta, metadata_weights, neg.shape)
    pair = (1.0 - match) - jax.nn.sigmoid(pos[:, None] - neg)
    return _reduce(name, _masked_mean(_collie_value(pair), mask), weights, reduction)


@_register("collie_hinge", kind="pairwise")
def collie_hinge(
    *,
    pos_scores: ArrayLike,
    neg_scores: ArrayLike,
    weights: ArrayLike | None = None,
    neg_mask: ArrayLike | None = None,
    pos_meta: MetaLike = None,
    neg_meta: MetaLike = None,
    metadata_weights: float | Mapping[str, float] | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    """Collie's hinge: ``l = max(0, d* - (pos - neg))``, value ``l + l^2``.

    E.g. pos 1.5, neg 3: ``l = 1 + 1.5 = 2.5``, value 8.75. Averaged over K negatives.

    Args:
      pos_scores: (B,) scores of the positive items.
      neg_scores: (B, K) scores of the sampled negatives.
      weights: optional (B,) per-example weights.
      neg_mask: optional (B, K) bool, False for negatives to ignore.
      pos_meta, neg_meta, metadata_weights: optional partial credit, see ``metadata_match``.
      reduction: "mean" (weighted), "sum" or "none".

    Returns:
      A scalar, or (B,) with ``reduction="none"``.
    """
    name = "collie_hinge"
    pos, neg = _check_pos_neg(name, pos_scores, neg_scores)
    mask = _neg_mask(name, neg_mask, neg.shape)
    match = _credit(name, pos_meta, neg_meta, metadata_weights, neg.shape)
    pair = jax.nn.relu((1.0 - match) - (pos[:, None] - neg))
    return _reduce(name, _masked_mean(_collie_value(pair), mask), weights, reduction)


@_register("collie_adaptive_bpr", kind="pairwise", hardest_only=True)
def collie_adaptive_bpr(
    *,
    pos_scores: ArrayLike,
    neg_scores: ArrayLike,
    weights: ArrayLike | None = None,
    neg_mask: ArrayLike | None = None,
    pos_meta: MetaLike = None,
    neg_meta: MetaLike = None,
    metadata_weights: float | Mapping[str, float] | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    """Collie's adaptive BPR: ``collie_bpr`` against the highest-scoring of K negatives.

    E.g. pos 1.5, negatives [1, 4, 1.49]: ``l = 1 - sigmoid(-2.5) = 0.92414``, value 1.7782.

    Args:
      pos_scores: (B,) scores of the positive items.
      neg_scores: (B, K) scores of the sampled negatives.
      weights: optional (B,) per-example weights.
      neg_mask: optional (B, K) bool, False for negatives to ignore.
      pos_meta, neg_meta, metadata_weights: optional partial credit, see ``metadata_match``.
      reduction: "mean" (weighted), "sum" or "none".

    Returns:
      A scalar, or (B,) with ``reduction="none"``.
    """
    name = "collie_adaptive_bpr"
    pos, neg, match, has_neg = _adaptive(
        name, pos_scores, neg_scores, neg_mask, pos_meta, neg_meta, metadata_weights
    )
    pair = (1.0 - match) - jax.nn.sigmoid(pos - neg)
    return _reduce(name, jnp.where(has_neg, _collie_value(pair), 0.0), weights, reduction)


@_register("collie_adaptive_hinge", kind="pairwise", hardest_only=True)
def collie_adaptive_hinge(
    *,
    pos_scores: ArrayLike,
    neg_scores: ArrayLike,
    weights: ArrayLike | None = None,
    neg_mask: ArrayLike | None = None,
    pos_meta: MetaLike = None,
    neg_meta: MetaLike = None,
    metadata_weights: float | Mapping[str, float] | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    """Collie's adaptive hinge: ``collie_hinge`` against the highest-scoring of K negatives.

    E.g. pos 1.5, negatives [1, 4, 1.49]: ``l = 1 - (1.5 - 4) = 3.5``, value 15.75.

    Args:
      pos_scores: (B,) scores of the positive items.
      neg_scores: (B, K) scores of the sampled negatives.
      weights: optional (B,) per-example weights.
      neg_mask: optional (B, K) bool, False for negatives to ignore.
      pos_meta, neg_meta, metadata_weights: optional partial credit, see ``metadata_match``.
      reduction: "mean" (weighted), "sum" or "none".

    Returns:
      A scalar, or (B,) with ``reduction="none"``.
    """
    name = "collie_adaptive_hinge"
    pos, neg, match, has_neg = _adaptive(
        name, pos_scores, neg_scores, neg_mask, pos_meta, neg_meta, metadata_weights
    )
    pair = jax.nn.relu((1.0 - match) - (pos - neg))
    return _reduce(name, jnp.where(has_neg, _collie_value(pair), 0.0), weights, reduction)


@_register("collie_warp", kind="pairwise", needs_num_items=True)
def collie_warp(
    *,
    pos_scores: ArrayLike,
    neg_scores: ArrayLike,
    num_items: int | ArrayLike,
    weights: ArrayLike | None = None,
    neg_mask: ArrayLike | None = None,
    pos_meta: MetaLike = None,
    neg_meta: MetaLike = None,
    metadata_weights: float | Mapping[str, float] | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    """Collie's modified WARP: ``l = log(num_items / N) * (d* - pos + neg_N)``, value ``l + l^2``.

    ``N`` is the 1-based position of the first negative with ``d* - pos + neg > 0``; 0 if none.
    Collie deliberately departs from Weston et al. (2011) / LightFM (see ``warp``): the rank
    weight is ``log(num_items / N)``, with neither the floor nor ``num_items - 1``, so that a
    violation found on the last trial is still penalised. (For ``num_items < N`` the weight is
    negative, as in Collie.) E.g. pos 1.5, negatives [2, 3, 2.5], num_items 3: ``N = 1``,
    ``l = log 3 * 1.5 = 1.64792``, value 4.3636.

    Args:
      pos_scores: (B,) scores of the positive items.
      neg_scores: (B, K) scores of the sampled negatives, in sampling order.
      num_items: number of items in the catalogue.
      weights: optional (B,) per-example weights.
      neg_mask: optional (B, K) bool, False for negatives to skip (not counted as trials).
      pos_meta, neg_meta, metadata_weights: optional partial credit, see ``metadata_match``.
      reduction: "mean" (weighted), "sum" or "none".

    Returns:
      A scalar, or (B,) with ``reduction="none"``.
    """
    name = "collie_warp"
    pos, neg = _check_pos_neg(name, pos_scores, neg_scores)
    mask = _neg_mask(name, neg_mask, neg.shape)
    match = _credit(name, pos_meta, neg_meta, metadata_weights, neg.shape)
    ideal = 1.0 - match
    idx, trials, found = _first_violation(pos, neg, mask, ideal)
    w_rank = jnp.log(jnp.asarray(num_items, neg.dtype) / trials)
    pair = jnp.where(found, w_rank * (_take(ideal, idx) - pos + _take(neg, idx)), 0.0)
    return _reduce(name, _collie_value(pair), weights, reduction)


__all__ = [
    "LOSSES",
    "LOSS_KINDS",
    "LossError",
    "adaptive_bpr",
    "adaptive_hinge",
    "bce",
    "bpr",
    "collie_adaptive_bpr",
    "collie_adaptive_hinge",
    "collie_bpr",
    "collie_hinge",
    "collie_warp",
    "full_softmax",
    "get_loss",
    "hinge",
    "metadata_match",
    "mse",
    "sampled_softmax",
    "warp",
]
