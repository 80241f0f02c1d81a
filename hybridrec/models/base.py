"""Shared pieces of the model contract: base classes, ID dropout, an MLP, and the registry helper.

Every recommender in ``hybridrec.models`` derives from ``Recommender`` and is written as three
methods (see ``hybridrec/models/__init__.py`` for the contract as users see it):

- ``encode_users(users) -> u`` and ``encode_items(items) -> v``: pytrees of arrays whose leading
  dimension is the batch (B for users, M for items);
- ``score_encoded(u, v) -> scores``: scores that **broadcast** over the leading dimensions, so the
  same code scores B pairs (``u`` and ``v`` with leading dim B) and a B x M grid (``u`` with
  leading dims (B, 1), ``v`` with (1, M)).

``score_pairs``, ``score_grid`` and ``score_all`` are derived from these once, here.
``FactorisedRecommender`` specialises the pattern for models whose score is ``<user_repr,
item_repr> + biases``: its ``score_grid`` (and so ``score_all`` and every loss over the whole
catalogue) is one matrix product instead of a broadcast.

Randomness (ID dropout, dropout) is driven by an explicit ``key`` argument, never by an
``nnx.Rngs`` stream mutated in the forward pass: the trainer runs models inside a pure
``jax.jit`` over ``nnx.split`` state, where Python-side state changes would be lost.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from hybridrec.data.sampling import hash_bits, round_keys

Batch = Mapping[str, jax.Array]

# Keys folded into the step key so each consumer of randomness draws independent numbers.
USER_KEY, ITEM_KEY, SCORE_KEY = 0, 1, 2


class ModelError(ValueError):
    """Raised for a bad model name, a bad option, or a bad input to a model."""


# ----------------------------------------------------------------------------------------------
# Small functions shared by models and towers


def known_mask(batch: Batch) -> jax.Array:
    """The batch's ``"known"`` mask, or ones when the batch has none.

    Args:
      batch: an entity batch with ``"ids"`` (B,) and optionally ``"known"`` (B,).

    Returns:
      (B,) float32: 1 for entities whose ID rows were trained, 0 for cold (or ID-dropped) ones.
    """
    if "known" in batch:
        return jnp.asarray(batch["known"], jnp.float32)
    return jnp.ones(jnp.shape(batch["ids"]), jnp.float32)


def id_keep_mask(ids: jax.Array, rate: float, key: jax.Array) -> jax.Array:
    """ID-dropout mask: which entities keep their ID embedding in this training step.

    Each entity's draw is a keyed hash of its ID (``hybridrec.data.sampling.hash_bits``), so an
    entity is dropped or kept *consistently* within a step (the same item in the positive and
    the negative batch, or in an in-batch ``score_all``, gets the same decision) and
    independently of the others; the same key always gives the same mask. The hash, not
    ``uniform(fold_in(key, id))``: on a CPU each ``jax.random`` draw vmapped over a batch is a
    threefry loop, and with ``hybrid.py``'s user field dropout those loops were ~1.2 ms of a
    ~4 ms training step (a ``jax.profiler`` trace of the trainer, 2026-12-07).

    Args:
      ids: (B,) int entity indices.
      rate: fraction of entities to drop, in [0, 1).
      key: a JAX PRNG key (raw ``uint32[2]`` or typed).

    Returns:
      (B,) float32, 0 for dropped entities and 1 for kept ones.
    """
    k0, k1 = round_keys(key)
    # The top 24 bits as a float in [0, 1): exact in float32, as jax.random.uniform's mantissa.
    draws = (hash_bits(k0, k1, ids) >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)
    return (draws >= rate).astype(jnp.float32)


def apply_y_range(scores: jax.Array, y_range: tuple[float, float] | None) -> jax.Array:
    """Squashes raw scores into ``y_range`` as fastai does: ``lo + (hi - lo) * sigmoid(scores)``.

    Args:
      scores: raw scores, any shape.
      y_range: ``(lo, hi)`` or None (scores returned unchanged).

    Returns:
      Scores of the same shape, in ``(lo, hi)`` when ``y_range`` is given.
    """
    if y_range is None:
        return scores
    lo, hi = y_range
    return lo + (hi - lo) * jax.nn.sigmoid(scores)


def check_y_range(y_range: Sequence[float] | None) -> tuple[float, float] | None:
    """Validates ``y_range`` and returns it as a tuple of floats (or None)."""
    if y_range is None:
        return None
    if len(y_range) != 2 or not float(y_range[0]) < float(y_range[1]):
        raise ModelError(f"y_range must be (lo, hi) with lo < hi, got {tuple(y_range)!r}")
    return (float(y_range[0]), float(y_range[1]))


def normal_table(rngs: nnx.Rngs, shape: tuple[int, ...], stddev: float) -> jax.Array:
    """A table initialised from N(0, stddev^2), the usual init for embedding tables."""
    return stddev * jax.random.normal(rngs.params(), shape, jnp.float32)


def dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Inverted dropout with an explicit key; identity when ``key`` is None or ``rate`` is 0."""
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def step_key(
    training: bool, key: jax.Array | None, rates: Sequence[float], where: str
) -> jax.Array | None:
    """The key to draw training-time randomness from, or None when nothing is random.

    Raises ``ModelError`` when training with a non-zero rate but no key.
    """
    if not training or not any(r > 0 for r in rates):
        return None
    if key is None:
        raise ModelError(
            f"{where}: training=True with dropout rates {tuple(rates)} needs a PRNG `key` argument"
        )
    return key


class MLP(nnx.Module):
    """Dense layers with an activation between them (and optionally after the last).

    ``__call__`` takes the input as one array or as several *parts* whose concatenation along
    the last axis is the input. With parts, the first layer is computed as a sum of per-part
    products, which broadcasts: parts of shapes (B, 1, Du) and (1, M, Di) give (B, M, H) without
    ever materialising the (B, M, Du + Di) concatenation (this is how ``score_all`` of the MLP
    models scores a grid).

    Args:
      dims: layer widths ``(in, hidden..., out)``; ``in`` is the total width of the parts.
      rngs: ``nnx.Rngs`` with a ``params`` stream.
      activation: name of a ``jax.nn`` function.
      final_activation: whether the activation also follows the last layer.
      dropout: dropout rate before each layer (training only, needs a key).
    """

    def __init__(
        self,
        dims: Sequence[int],
        *,
        rngs: nnx.Rngs,
        activation: str = "relu",
        final_activation: bool = False,
        dropout: float = 0.0,
    ):
        dims = tuple(int(d) for d in dims)
        if len(dims) < 2 or min(dims) < 1:
            raise ModelError(f"MLP needs at least (in, out) positive widths, got {dims}")
        if not callable(getattr(jax.nn, activation, None)):
            raise ModelError(f"unknown activation {activation!r}: use a jax.nn function name")
        self.dims = dims
        self.activation = activation
        self.final_activation = final_activation
        self.dropout = float(dropout)
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(dims[:-1], dims[1:], strict=True)]
        )

    def __call__(self, *parts: jax.Array, key: jax.Array | None = None) -> jax.Array:
        """Applies the MLP.

        Args:
          *parts: arrays (..., D_k) with broadcastable leading dims and sum(D_k) == dims[0].
          key: dropout key (None: no dropout).

        Returns:
          (..., dims[-1]) with the broadcast leading dims of the parts.
        """
        widths = [p.shape[-1] for p in parts]
        if sum(widths) != self.dims[0]:
            raise ModelError(f"MLP expects input width {self.dims[0]}, got parts of {widths}")
        act = getattr(jax.nn, self.activation)
        first = self.layers[0]
        kernel = first.kernel[...]  # (sum D_k, H)
        x, start = first.bias[...], 0
        for k, (part, width) in enumerate(zip(parts, widths, strict=True)):
            part = dropout(part, self.dropout, None if key is None else jax.random.fold_in(key, k))
            x = x + part @ kernel[start : start + width]
            start += width
        for i, layer in enumerate(self.layers[1:], start=1):
            x = act(x)
            x = dropout(x, self.dropout, None if key is None else jax.random.fold_in(key, 100 + i))
            x = layer(x)
        return act(x) if self.final_activation else x


# ----------------------------------------------------------------------------------------------
# Base classes


class Recommender(nnx.Module):
    """Base class of all models; see the module docstring and ``hybridrec.models``.

    Subclasses set ``user_reads`` / ``item_reads`` (batch keys they read; ``"known"`` is always
    optional) and ``y_range``, and implement ``encode_users``, ``encode_items`` and
    ``score_encoded``.
    """

    factorised: bool = False
    user_reads: tuple[str, ...] = ("ids",)
    item_reads: tuple[str, ...] = ("ids",)
    y_range: tuple[float, float] | None = None

    def encode_users(self, users: Batch, *, training: bool = False, key=None) -> Any:
        """Per-user encodings: a pytree of arrays with leading dim B."""
        raise NotImplementedError

    def encode_items(self, items: Batch, *, training: bool = False, key=None) -> Any:
        """Per-item encodings: a pytree of arrays with leading dim M."""
        raise NotImplementedError

    def score_encoded(self, u: Any, v: Any, *, training: bool = False, key=None) -> jax.Array:
        """Raw scores (before ``y_range``), broadcasting over the leading dims of ``u`` and ``v``."""
        raise NotImplementedError

    def score_pairs(
        self, users: Batch, items: Batch, *, training: bool = False, key: jax.Array | None = None
    ) -> jax.Array:
        """Scores user i with item i.

        Args:
          users: user batch, ``"ids"`` (B,) plus optional ``"known"`` (B,) and feature keys.
          items: item batch with the same B.
          training: enables training-time randomness (ID dropout, dropout).
          key: PRNG key for that randomness; the same key gives the same result.

        Returns:
          (B,) float32 scores.
        """
        u = self.encode_users(users, training=training, key=key)
        v = self.encode_items(items, training=training, key=key)
        return apply_y_range(self.score_encoded(u, v, training=training, key=key), self.y_range)

    def score_all(
        self, users: Batch, items: Batch, *, training: bool = False, key: jax.Array | None = None
    ) -> jax.Array:
        """Scores every user of ``users`` against every item of ``items``.

        The default broadcasts the encodings to a (B, M) grid and runs ``score_encoded`` on it:
        O(B * M) work per layer of the pair scorer (for the MLP models, memory B * M * hidden),
        so the evaluator passes the catalogue in chunks of items.

        Args:
          users: user batch with leading dim B.
          items: item batch with leading dim M.
          training: as in ``score_pairs``.
          key: as in ``score_pairs``.

        Returns:
          (B, M) float32 scores; ``score_all(u, i)[a, b] == score_pairs`` of pair (a, b).
        """
        u = self.encode_users(users, training=training, key=key)
        v = self.encode_items(items, training=training, key=key)
        return apply_y_range(self.score_grid(u, v, training=training, key=key), self.y_range)

    def score_grid(self, u: Any, v: Any, *, training: bool = False, key=None) -> jax.Array:
        """Raw (B, M) scores of every encoded user against every encoded item.

        What a loss over the whole catalogue (a full softmax) needs from the encodings. The
        default runs ``score_encoded`` on the (B, 1) x (1, M) broadcast; ``FactorisedRecommender``
        makes it one matrix product.

        Args:
          u: user encodings (``encode_users``), leading dim B.
          v: item encodings (``encode_items``), leading dim M.
          training, key: as in ``score_encoded``.

        Returns:
          (B, M) float32 scores before ``y_range``.
        """
        u = jax.tree.map(lambda x: x[:, None], u)  # (B, 1, ...)
        v = jax.tree.map(lambda x: x[None, :], v)  # (1, M, ...)
        return self.score_encoded(u, v, training=training, key=key)


class FactorisedRecommender(Recommender):
    """A model whose score is ``<user_repr, item_repr> + user_bias + item_bias``.

    Subclasses implement ``encode_users`` / ``encode_items`` returning ``(repr, bias)`` with
    shapes ((B, D), (B,)). ``user_repr`` / ``item_repr`` expose the vectors for similar-item
    search and export; ``score_grid`` / ``score_all`` are a single (B, D) x (D, M) product.
    """

    factorised = True

    def score_encoded(self, u, v, *, training: bool = False, key=None) -> jax.Array:
        """``sum(u_repr * v_repr, -1) + u_bias + v_bias``, broadcasting leading dims."""
        (u_repr, u_bias), (v_repr, v_bias) = u, v
        return jnp.sum(u_repr * v_repr, axis=-1) + u_bias + v_bias

    def score_grid(self, u, v, *, training: bool = False, key=None) -> jax.Array:
        """(B, M) scores as ``user_repr @ item_repr.T + biases`` (see ``Recommender.score_grid``).

        One matrix product: the broadcast ``sum(u * v, -1)`` of ``score_encoded`` on a grid ran
        the full softmax of MovieLens 100K (B 1024 x 1,682 items x D 16, forward and backward)
        ~60x slower on a CPU (209 ms against 3.2 ms a step), because XLA does not turn a
        broadcast multiply-and-sum into a dot.
        """
        (u_repr, u_bias), (v_repr, v_bias) = u, v
        return u_repr @ v_repr.T + u_bias[:, None] + v_bias[None, :]  # (B, M)

    def user_repr(self, users: Batch) -> jax.Array:
        """(B, D) user vectors (evaluation mode)."""
        return self.encode_users(users)[0]

    def item_repr(self, items: Batch) -> jax.Array:
        """(M, D) item vectors (evaluation mode)."""
        return self.encode_items(items)[0]

    def user_bias(self, users: Batch) -> jax.Array:
        """(B,) user biases (evaluation mode; zeros when the model has none)."""
        return self.encode_users(users)[1]

    def item_bias(self, items: Batch) -> jax.Array:
        """(M,) item biases (evaluation mode; zeros when the model has none)."""
        return self.encode_items(items)[1]


# ----------------------------------------------------------------------------------------------
# Registry helpers (used by hybridrec.models.build and hybridrec.towers.build)


def load_plugin(
    package: str, name: str, attr: str, *, what: str, available: Sequence[str], error: type
) -> Any:
    """``hybridrec.plugins.load_module_attr``; kept here for the towers' and models' imports."""
    from hybridrec.plugins import load_module_attr

    return load_module_attr(package, name, attr, what=what, available=available, error=error)


def construct(
    cls: Callable,
    *,
    context: Mapping[str, Any] | None,
    options: Mapping[str, Any],
    what: str,
    error: type,
) -> Any:
    """Calls ``cls(**context_it_accepts, **options)`` with readable errors.

    ``context`` holds what the caller knows about the setting (``num_entities``,
    ``features_info``, ...); each entry is passed only if the constructor accepts it, so a model
    or tower declares what it needs just by naming it. ``options`` (from the config) are always
    passed, and an option the constructor does not accept is an error (a misspelt key must not
    be silently ignored).
    """
    # For classes, read ``__init__``: metaclasses such as nnx's hide it behind ``(*args, **kw)``.
    if isinstance(cls, type):
        params = dict(inspect.signature(cls.__init__).parameters)
        params.pop(next(iter(params)), None)  # self
    else:
        params = dict(inspect.signature(cls).parameters)
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    if not var_kw:
        unknown = sorted(k for k in options if k not in params)
        if unknown:
            raise error(f"{what} got unknown option(s) {unknown}; it accepts {sorted(named)}")
    kwargs = {k: v for k, v in (context or {}).items() if var_kw or k in params}
    kwargs.update(options)
    missing = [
        n
        for n, p in params.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        and n not in kwargs
    ]
    if missing:
        raise error(f"{what} needs argument(s) {missing}")
    return cls(**kwargs)
