"""Hybrid model: user and item representations built from any set of towers.

Each side (users, items) has a dict of towers, ``name -> dict(tower=<tower module>, field=...,
**tower options)``; their (B, D) outputs are combined into the side's representation by

- ``"sum"``: ``r = sum_t out_t``;
- ``"concat_mlp"``: ``r = MLP([out_1, ..., out_T])`` (hidden widths ``combiner_hidden``); towers
  may then have their own ``output_dim``;
- ``"gate"``: ``r = sum_t g_t out_t`` with ``g = softmax(W [out_1, ..., out_T] + c)`` per entity
  (``gate="sigmoid"``: independent gates), so the model can learn to lean on metadata when the
  ID tower is silent (a cold or ID-dropped entity).

The score is ``<r_u, r_i> + b_u + b_i`` where each side's bias is the sum of an ID bias (a
``Bias`` table masked by ``known``; ``user_bias`` / ``item_bias``) and feature biases: a tower
spec with ``bias=True`` gets a sibling tower of the same kind with ``output_dim=1``.

**ID dropout** (``id_dropout`` for items, ``user_id_dropout`` for users): with
``training=True`` and a ``key``, each entity of the batch has its ``known`` flag set to 0 with
that probability, so its ID embedding and ID bias vanish for this step and the metadata towers
must carry the signal, as they will for a cold entity. The draw is a function of (key, entity
ID) (see ``hybridrec.models.base.id_keep_mask``): deterministic, jit-friendly, and the same
entity is dropped in the positive and the negative batch of a step when both calls get the same
key. Evaluation (``training=False``) never drops.

**LightFM** (Kula, "Metadata Embeddings for User and Item Cold-start Recommendations", 2015)
is this config: representations are sums of feature embeddings with the identity feature
included, and biases are sums of feature biases::

    build("hybrid", context=..., combiner="sum", user_bias=True, item_bias=True,
          user_towers={"id": {"tower": "ids"}},
          item_towers={"id": {"tower": "ids"},
                       "genre": {"tower": "categorical", "field": "genres",
                                 "pooling": "sum", "bias": True}})

giving ``score = p_u . (q_i + sum_g w_g e_g) + b_u + b_i + sum_g w_g beta_g``. LightFM's
``Dataset`` by default also normalises each item's row of feature weights (identity included)
to sum to 1, which couples the towers; fit LightFM with ``normalize=False`` for the exact
equivalent, or use ``pooling="mean"`` on the metadata towers for a close one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from hybridrec import towers as towers_lib
from hybridrec.models.base import (
    ITEM_KEY,
    MLP,
    USER_KEY,
    Batch,
    FactorisedRecommender,
    ModelError,
    check_y_range,
    id_keep_mask,
    known_mask,
    step_key,
)
from hybridrec.variables import Bias

COMBINERS = ("sum", "concat_mlp", "gate")
GATES = ("softmax", "sigmoid")
DEFAULT_TOWERS = {"id": {"tower": "ids"}}


def _field_info(features_info: Mapping[str, Any] | None, field: str, where: str) -> Any:
    """Looks up one field's metadata, naming the fields that exist when it is missing."""
    if features_info is None or field not in features_info:
        known = sorted(features_info) if features_info else []
        raise ModelError(f"{where}: no features for field {field!r}; fields available: {known}")
    return features_info[field]


class EntityEncoder(nnx.Module):
    """One side of a hybrid model: towers, their combiner, and the side's bias.

    Args:
      side: ``"user"`` or ``"item"`` (for error messages).
      num_entities: number of users or items (ID tables).
      features_info: field name -> metadata for this side's features (None: no features).
      towers: tower name -> spec ``dict(tower=..., field=..., output_dim=..., bias=..., **opts)``.
      embedding_dim: D, the width of the representation.
      combiner: ``"sum"``, ``"concat_mlp"`` or ``"gate"``.
      combiner_hidden: hidden widths of the ``concat_mlp`` MLP.
      gate: ``"softmax"`` or ``"sigmoid"`` (``combiner="gate"`` only).
      id_bias: learn a ``Bias`` per entity (masked by ``known``).
      rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    def __init__(
        self,
        *,
        side: str,
        num_entities: int,
        features_info: Mapping[str, Any] | None,
        towers: Mapping[str, Mapping[str, Any]],
        embedding_dim: int,
        combiner: str,
        combiner_hidden: Sequence[int],
        gate: str,
        id_bias: bool,
        rngs: nnx.Rngs,
    ):
        if combiner not in COMBINERS:
            raise ModelError(f"unknown combiner {combiner!r}; use one of {COMBINERS}")
        if gate not in GATES:
            raise ModelError(f"unknown gate {gate!r}; use one of {GATES}")
        if not towers:
            raise ModelError(f"{side}_towers is empty: a side needs at least one tower")
        built, biases, reads = {}, {}, ["ids", "known"]
        for name, spec in towers.items():
            where = f"{side}_towers[{name!r}]"
            spec = dict(spec)
            kind = spec.pop("tower", None)
            if kind is None:
                raise ModelError(f"{where}: spec {spec} has no 'tower' key (e.g. tower='ids')")
            with_bias = bool(spec.pop("bias", False))
            output_dim = int(spec.pop("output_dim", embedding_dim))
            if combiner != "concat_mlp" and output_dim != embedding_dim:
                raise ModelError(
                    f"{where}: output_dim={output_dim} differs from embedding_dim="
                    f"{embedding_dim}; only combiner='concat_mlp' allows that"
                )
            context: dict[str, Any] = {"num_entities": num_entities}
            if "field" in spec:
                context["features_info"] = _field_info(features_info, spec["field"], where)
            try:
                built[name] = towers_lib.build(
                    kind, context=context, output_dim=output_dim, rngs=rngs, **spec
                )
                if with_bias:
                    if kind == "ids":
                        raise ModelError(
                            "bias=True on an ids tower: use user_bias/item_bias (a Bias table)"
                        )
                    biases[name] = towers_lib.build(
                        kind, context=context, output_dim=1, rngs=rngs, **spec
                    )
            except (towers_lib.TowerError, ModelError) as exc:
                raise ModelError(f"{where} (tower {kind!r}): {exc}") from exc
            reads += [k for k in built[name].reads if k not in reads]
        self.names = tuple(built)
        self.bias_names = tuple(biases)
        self.towers = nnx.Dict(built)
        self.bias_towers = nnx.Dict(biases)
        self.combiner = combiner
        self.gate_kind = gate
        widths = [built[n].output_dim for n in self.names]
        if combiner == "concat_mlp":
            self.mixer = MLP((sum(widths), *combiner_hidden, embedding_dim), rngs=rngs)
        elif combiner == "gate":
            self.mixer = MLP((sum(widths), len(widths)), rngs=rngs)
        else:
            self.mixer = None
        self.id_bias = Bias(jnp.zeros((num_entities,))) if id_bias else None
        self.reads = tuple(reads)
        self.output_dim = embedding_dim

    def __call__(self, batch: Batch) -> tuple[jax.Array, jax.Array]:
        """Returns the representation (B, D) and the bias (B,) of the batch's entities."""
        outs = [self.towers[n](batch) for n in self.names]  # T x (B, D_t)
        if self.combiner == "sum":
            rep = sum(outs[1:], outs[0])
        elif self.combiner == "concat_mlp":
            rep = self.mixer(*outs)
        else:
            logits = self.mixer(*outs)  # (B, T)
            if self.gate_kind == "softmax":
                gates = jax.nn.softmax(logits, axis=-1)
            else:
                gates = jax.nn.sigmoid(logits)
            rep = jnp.einsum("bt,tbd->bd", gates, jnp.stack(outs))
        bias = jnp.zeros(rep.shape[:1], rep.dtype)  # (B,)
        if self.id_bias is not None:
            bias = bias + self.id_bias[...][batch["ids"]] * known_mask(batch)
        for n in self.bias_names:
            bias = bias + self.bias_towers[n](batch)[:, 0]
        return rep, bias


class HybridModel(FactorisedRecommender):
    """Factorised model whose user and item representations come from towers.

    Args:
      num_users: number of users.
      num_items: number of items.
      rngs: ``nnx.Rngs`` with a ``params`` stream.
      user_features_info: field name -> metadata of user features (None: no user features).
      item_features_info: field name -> metadata of item features.
      embedding_dim: D, the representation width.
      user_towers: name -> tower spec (default: an ID tower, ``{"id": {"tower": "ids"}}``).
      item_towers: name -> tower spec (default: an ID tower).
      combiner: ``"sum"``, ``"concat_mlp"`` or ``"gate"`` (both sides).
      combiner_hidden: hidden widths of the ``concat_mlp`` MLP.
      gate: ``"softmax"`` or ``"sigmoid"`` for ``combiner="gate"``.
      id_dropout: fraction of items whose ID is dropped per training step.
      user_id_dropout: the same for users.
      user_bias: learn a per-user ID bias.
      item_bias: learn a per-item ID bias.
      y_range: ``(lo, hi)`` to squash scores for rating prediction; None for ranking.
    """

    def __init__(
        self,
        *,
        num_users: int,
        num_items: int,
        rngs: nnx.Rngs,
        user_features_info: Mapping[str, Any] | None = None,
        item_features_info: Mapping[str, Any] | None = None,
        embedding_dim: int = 32,
        user_towers: Mapping[str, Mapping[str, Any]] | None = None,
        item_towers: Mapping[str, Mapping[str, Any]] | None = None,
        combiner: str = "sum",
        combiner_hidden: Sequence[int] = (64,),
        gate: str = "softmax",
        id_dropout: float = 0.0,
        user_id_dropout: float = 0.0,
        user_bias: bool = True,
        item_bias: bool = True,
        y_range: Sequence[float] | None = None,
    ):
        for name, rate in (("id_dropout", id_dropout), ("user_id_dropout", user_id_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ModelError(f"{name} must be in [0, 1), got {rate}")
        common = dict(
            embedding_dim=embedding_dim,
            combiner=combiner,
            combiner_hidden=tuple(combiner_hidden),
            gate=gate,
            rngs=rngs,
        )
        self.users = EntityEncoder(
            side="user",
            num_entities=num_users,
            features_info=user_features_info,
            towers=DEFAULT_TOWERS if user_towers is None else user_towers,
            id_bias=user_bias,
            **common,
        )
        self.items = EntityEncoder(
            side="item",
            num_entities=num_items,
            features_info=item_features_info,
            towers=DEFAULT_TOWERS if item_towers is None else item_towers,
            id_bias=item_bias,
            **common,
        )
        self.id_dropout = float(id_dropout)
        self.user_id_dropout = float(user_id_dropout)
        self.y_range = check_y_range(y_range)
        self.user_reads = self.users.reads
        self.item_reads = self.items.reads

    @staticmethod
    def _drop_ids(batch: Batch, rate: float, training: bool, key, side: int) -> Batch:
        """The batch with ``known`` zeroed for ID-dropped entities (training with a key only)."""
        key = step_key(training, key, (rate,), "hybrid model ID dropout")
        if key is None:
            return batch
        keep = id_keep_mask(batch["ids"], rate, jax.random.fold_in(key, side))  # (B,)
        return {**batch, "known": known_mask(batch) * keep}

    def encode_users(self, users: Batch, *, training: bool = False, key=None):
        """User representations and biases: ((B, D), (B,))."""
        return self.users(self._drop_ids(users, self.user_id_dropout, training, key, USER_KEY))

    def encode_items(self, items: Batch, *, training: bool = False, key=None):
        """Item representations and biases: ((M, D), (M,))."""
        return self.items(self._drop_ids(items, self.id_dropout, training, key, ITEM_KEY))


Model = HybridModel
