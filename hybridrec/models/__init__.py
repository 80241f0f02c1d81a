"""Recommender models (Flax NNX), found by module name like the towers.

The model contract
------------------
A model module ``hybridrec/models/<name>.py`` (or a dotted path to your own) has a ``Model``
class, an ``nnx.Module`` deriving from ``hybridrec.models.base.Recommender``, constructed with
keyword arguments. It may name these *context* arguments, filled in by ``build`` from the data
(a model names only what it needs): ``num_users``, ``num_items``, ``rngs`` (``nnx.Rngs`` with a
``params`` stream), ``user_features_info`` / ``item_features_info`` (field name -> metadata, see
``hybridrec.towers.FieldInfo``); everything else comes from the config, and an option the model
does not accept is an error.

Inputs are *entity batches*: dicts of arrays gathered per batch by the trainer from device
arrays, ``{"ids": (B,) int32, "known": (B,) float32 (optional), "<field>/ids": (B, W), ...}``.
``known`` is 1 for entities seen in training and 0 for cold ones; every ID embedding and ID bias
is multiplied by it, so a cold entity's score does not depend on its (untrained) ID rows.
``model.user_reads`` / ``model.item_reads`` list the keys each side reads.

Every model has

- ``score_pairs(users, items, *, training=False, key=None) -> (B,)``: user i with item i;
- ``score_all(users, items, *, training=False, key=None) -> (B, M)``: every user against every
  item of ``items`` (the evaluator passes the catalogue in chunks). Factorised models compute
  ``user_repr @ item_repr.T + biases``; the MLP models (``ncf``, ``mlp``) broadcast their pair
  scorer over the (B, M) grid, O(B * M * hidden) time and memory;
- ``encode_users`` / ``encode_items`` / ``score_encoded``: the pieces both are built from (see
  ``hybridrec.models.base``), e.g. to encode the users of a batch once for many item chunks.

Factorised models (``model.factorised``: ``mf``, ``two_tower``, ``hybrid``) also expose
``user_repr(users) -> (B, D)``, ``item_repr(items) -> (M, D)``, ``user_bias(users) -> (B,)`` and
``item_bias(items) -> (M,)`` for similar-item search and export.

Randomness: ``training=True`` turns on ID dropout and dropout, drawn from the explicit ``key``
(a JAX PRNG key); the same key gives the same result, and ``training=False`` ignores the key.
Nothing changes Python-side state in the forward pass, so models run inside a pure ``jax.jit``
over ``nnx.split`` state. Scores are raw (logits), except with ``y_range=(lo, hi)``, which maps
them to ``lo + (hi - lo) * sigmoid(score)`` (fastai's ``sigmoid_range``) for explicit ratings.

Variable types: ID and feature tables are ``hybridrec.variables.Embedding``, per-entity biases
``hybridrec.variables.Bias``, dense layers plain ``nnx.Param``; optimizer groups follow them.
Read both kinds of table through ``hybridrec.variables.lookup(table, ids)``: with large tables
the trainer updates only the looked-up rows (of the ``Embedding`` tables, and of the ``Bias``
tables when the biases train by plain SGD), and a read other than through ``lookup`` is then
refused with a message saying so.

Models: ``mf`` (matrix factorization with biases), ``ncf`` (NeuMF), ``mlp`` (fastai's
EmbeddingNN), ``two_tower`` (MLP towers over IDs and features), ``hybrid`` (any set of towers per
side, combined by sum, concat + MLP, or a gate; LightFM is a ``hybrid`` config).
"""

from __future__ import annotations

import pkgutil
from typing import Any

from hybridrec.models.base import (
    FactorisedRecommender,
    ModelError,
    Recommender,
    construct,
    load_plugin,
)

__all__ = [
    "FactorisedRecommender",
    "ModelError",
    "Recommender",
    "available_models",
    "build",
    "load",
]

# Modules in this package that are not ``Model`` modules: shared code, and the non-neural
# baselines (fitted in numpy, built with ``hybridrec.models.baselines.get_baseline``).
_NOT_MODELS = {"base", "baselines"}


def available_models() -> list[str]:
    """Names of the modules in ``hybridrec/models`` (listed without importing them)."""
    return sorted(
        m.name
        for m in pkgutil.iter_modules(__path__)
        if not m.name.startswith("_") and m.name not in _NOT_MODELS
    )


def load(name: str):
    """The ``Model`` class of model ``name`` (a module here, or a dotted path to your own).

    Raises:
      ModelError: unknown name; the message lists the models that exist.
    """
    return load_plugin(
        __name__, name, "Model", what="model", available=available_models(), error=ModelError
    )


def build(name: str, *, context: dict[str, Any] | None = None, **options: Any) -> Recommender:
    """Builds model ``name``.

    Args:
      name: ``"mf"``, ``"ncf"``, ``"mlp"``, ``"two_tower"``, ``"hybrid"`` or a dotted path.
      context: passed only where the constructor names them: ``num_users``, ``num_items``,
        ``rngs``, ``user_features_info``, ``item_features_info``.
      **options: the model's config options (always passed; unknown ones are an error).

    Returns:
      The model.

    Example::

        model = build("hybrid", context=dict(num_users=943, num_items=1682, rngs=nnx.Rngs(0),
                      item_features_info=encoder_info), embedding_dim=32, item_towers=...)
    """
    cls = load(name)
    return construct(
        cls, context=context, options=options, what=f"model {name!r}", error=ModelError
    )
