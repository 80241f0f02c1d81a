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

**A popularity prior for entities without an ID** (a tower spec with ``prior=True``, or a dict
of overrides of the sibling's spec such as ``prior=dict(pooling="sum")``): a sibling tower of
width 1 whose outputs, summed over the towers, are the prior ``pi(metadata)``. Out of training
(``training=False``) it is added to the bias of every entity whose ``known`` is 0, a cold item;
in training it is never in the score, and the objective fits it alone (``config.train.prior``
of ``hybridrec.objectives.pairwise_softmax``: the item marginal's softmax, so that ``pi`` is
``log p(item | metadata)`` up to a constant). Feature biases (``bias=True``) cannot be that
prior: trained inside the score, what they would carry is learned by the towers' user-item
products as well, and on MovieLens 100K it was (the tuning log of
``experiments/configs/hybrid.py``). ``item_prior(items)`` returns ``pi`` and
``has_item_prior`` says whether there is one. With ``pooling="sum"`` over a bag field, an item's
prior adds a term per category (a film that is both a comedy and a romance gets both), where
``"mean"`` would average them; for MovieLens genres that was the better prior (cold NDCG@10
0.25 against 0.18 by a maximum-likelihood fit in numpy with either encoding).

**ID dropout** (``id_dropout`` for items, ``user_id_dropout`` for users): with
``training=True`` and a ``key``, each entity of the batch has its ``known`` flag set to 0 with
that probability, so its ID embedding and ID bias vanish for this step and the metadata towers
must carry the signal, as they will for a cold entity. The draw is a function of (key, entity
ID) (see ``hybridrec.models.base.id_keep_mask``): deterministic, jit-friendly, and the same
entity is dropped in the positive and the negative batch of a step when both calls get the same
key. Evaluation (``training=False``) never drops.

**Field dropout** (``field_dropout`` for items, ``user_field_dropout`` for users, or
``field_dropout=`` in one tower's spec to override its side's rate): in training, each metadata
field of each entity is, with that probability, replaced by *exactly the encoding of a missing
value* (``hybridrec.data.features``): a bag field (categorical, text, bucketized numeric)
becomes the single missing entry ``(id 1, weight 1)``, a dense numeric field ``[0, ..., 0, 1]``
(value 0, missing indicator 1). A dropped field and a truly missing one are then the same tower
input, so the towers' "missing" parameters (row 1 of a bag's table, the numeric indicator's
weights) are trained, and a new entity whose fields are missing at serving time is scored by
what training saw rather than by untrained weights (issue 11: on MovieLens 100K every user has
an age, a gender and an occupation, and a new user with every field ``None`` was scored above
any known user's top score). Measured with ``hybrid.py`` (seed 0, Collie split): without field
dropout such a user's top score was 9.96, above the top score of 99.5% of the known users, and
10.8% of the items got a score outside the range of the known users' scores for that item
(top 10 led by obscure films); with ``field_dropout=user_field_dropout=0.1`` the top score was
3.85 (above 15% of the users' top scores), every item's score within the known range, and the
top 10 the most liked films (Star Wars, Return of the Jedi, Contact, Fargo, ...). The serving
layer warns when a new entity misses a field that no training entity missed in a model trained
without field dropout on it. Towers on the same field are dropped together (a tower and its
``bias=True`` sibling); the ``history`` tower is not a metadata field (ID dropout removes it
with the ID).
Draws are per (entity ID, field), like ID dropout's, and independent of it. Which fields an
entity has is read from the encoded arrays (``field_present``).

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
from hybridrec.variables import Bias, Embedding, lookup

COMBINERS = ("sum", "concat_mlp", "gate")
GATES = ("softmax", "sigmoid")
DEFAULT_TOWERS = {"id": {"tower": "ids"}}
#: Encoding of a missing value (``hybridrec.data.features``): bag id 1 is the unknown/missing
#: bucket, with weight 1 in the first slot and padding (0) after it.
MISSING_ID = 1
#: Offset of field-dropout draws' keys, apart from ID dropout's ``fold_in(key, side)``.
FIELD_KEY = 1 << 20
#: Kinds of towers that are not metadata fields (no field dropout): IDs, and the user's history,
#: which is derived from the interactions and masked with the ID.
NOT_FIELDS = ("ids", "history")


def _field_keys(field: str) -> dict[str, str]:
    """The batch keys of a field's encodings: bag arrays and the dense array."""
    return {
        "ids": f"{field}/ids",
        "weights": f"{field}/weights",
        "lengths": f"{field}/lengths",
        "dense": field,
    }


def field_present(batch: Batch, field: str) -> jax.Array:
    """Whether each entity of a batch has a value for ``field``, read from its encoded arrays.

    A bag field is present when any slot holds a vocabulary entry (id >= 2): an entity that has
    only the unknown/missing entry (id 1) or padding is missing. A dense numeric field is present
    when its last column, the missing indicator, is 0.

    Args:
      batch: an entity batch with the field's arrays (``"{field}/ids"`` (B, W) or ``"{field}"``
        (B, d)).
      field: the field name.

    Returns:
      (B,) float32: 1 where present, 0 where missing.
    """
    keys = _field_keys(field)
    if keys["ids"] in batch:
        ids = jnp.asarray(batch[keys["ids"]])  # (B, W)
        return jnp.any(ids > MISSING_ID, axis=-1).astype(jnp.float32)
    if keys["dense"] in batch:
        x = jnp.asarray(batch[keys["dense"]], jnp.float32)  # (B, d)
        if x.ndim < 2 or x.shape[-1] < 2:
            raise ModelError(f"field {field!r}: a dense field of shape {x.shape} has no indicator")
        return (x[:, -1] == 0).astype(jnp.float32)
    raise ModelError(f"field {field!r}: the batch has no arrays for it; keys: {sorted(batch)}")


def as_missing(batch: Batch, field: str, drop: jax.Array) -> Batch:
    """The batch with ``field`` encoded as missing for the entities where ``drop`` is 1.

    Args:
      batch: an entity batch.
      field: the field name; every array of it in the batch is replaced (bag ids, weights and
        lengths, the dense array).
      drop: (B,) 0/1 mask of the entities whose field becomes missing.

    Returns:
      A new batch dict (the others' arrays unchanged).
    """
    keys = _field_keys(field)
    out = dict(batch)
    d = jnp.asarray(drop) > 0  # (B,)
    if keys["ids"] in batch:
        ids = jnp.asarray(batch[keys["ids"]])  # (B, W)
        first = jnp.arange(ids.shape[-1]) == 0  # (W,)
        out[keys["ids"]] = jnp.where(d[:, None], jnp.where(first, MISSING_ID, 0), ids).astype(
            ids.dtype
        )
        if keys["weights"] in batch:
            w = jnp.asarray(batch[keys["weights"]])  # (B, W)
            out[keys["weights"]] = jnp.where(d[:, None], first.astype(w.dtype), w)
        if keys["lengths"] in batch:
            lengths = jnp.asarray(batch[keys["lengths"]])  # (B,)
            out[keys["lengths"]] = jnp.where(d, 1, lengths).astype(lengths.dtype)
    if keys["dense"] in batch:
        x = jnp.asarray(batch[keys["dense"]])  # (B, d)
        last = jnp.arange(x.shape[-1]) == x.shape[-1] - 1  # (d,) the missing indicator
        out[keys["dense"]] = jnp.where(d[:, None], last.astype(x.dtype), x)
    return out


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
      field_dropout: training-time rate at which each metadata field of an entity is replaced
        by its missing encoding; a tower spec's own ``field_dropout`` overrides it for its field.
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
        field_dropout: float = 0.0,
    ):
        if combiner not in COMBINERS:
            raise ModelError(f"unknown combiner {combiner!r}; use one of {COMBINERS}")
        if gate not in GATES:
            raise ModelError(f"unknown gate {gate!r}; use one of {GATES}")
        if not towers:
            raise ModelError(f"{side}_towers is empty: a side needs at least one tower")
        _check_rate(f"{side} field_dropout", field_dropout)
        built, biases, reads = {}, {}, ["ids", "known"]
        priors, prior_args = {}, {}
        # field -> (rate, tower names, the keys its towers read), for field dropout.
        fields: dict[str, tuple[float, list[str], set[str]]] = {}
        for name, spec in towers.items():
            where = f"{side}_towers[{name!r}]"
            spec = dict(spec)
            kind = spec.pop("tower", None)
            if kind is None:
                raise ModelError(f"{where}: spec {spec} has no 'tower' key (e.g. tower='ids')")
            own_rate = spec.pop("field_dropout", None)
            with_bias = bool(spec.pop("bias", False))
            # prior=True, or a dict of overrides of the prior sibling's spec (pooling="sum").
            prior_spec = spec.pop("prior", False)
            prior_overrides = dict(prior_spec) if isinstance(prior_spec, Mapping) else {}
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
                if prior_spec:
                    if kind in NOT_FIELDS or "field" not in spec:
                        raise ModelError("prior=True needs a metadata tower (with a field)")
                    # Built after every other tower, so that adding a prior leaves the other
                    # towers' initial values as they were.
                    prior_args[name] = (kind, context, {**spec, **prior_overrides})
            except (towers_lib.TowerError, ModelError) as exc:
                raise ModelError(f"{where} (tower {kind!r}): {exc}") from exc
            reads += [k for k in built[name].reads if k not in reads]
            field = spec.get("field")
            if (
                field is None
                or kind in NOT_FIELDS
                or getattr(built[name], "kind", "") in NOT_FIELDS
            ):
                if own_rate is not None:
                    raise ModelError(
                        f"{where}: field_dropout is for metadata towers (with a field); a "
                        f"{kind!r} tower has none (ID dropout drops IDs and history)"
                    )
                continue
            rate = field_dropout if own_rate is None else float(own_rate)
            _check_rate(f"{where} field_dropout", rate)
            if field in fields and own_rate is not None and fields[field][0] != rate:
                raise ModelError(
                    f"{where}: field_dropout={rate} for field {field!r}, but towers "
                    f"{fields[field][1]} on the same field drop it at {fields[field][0]}; "
                    "towers on one field are dropped together"
                )
            prev_rate, names_on_field, keys = fields.get(field, (rate, [], set()))
            keys.update(built[name].reads)
            if name in biases:
                keys.update(biases[name].reads)
            fields[field] = (
                rate if own_rate is not None else prev_rate,
                [*names_on_field, name],
                keys,
            )
        for name, (kind, context, spec) in prior_args.items():
            try:
                priors[name] = towers_lib.build(
                    kind, context=context, output_dim=1, rngs=rngs, **spec
                )
            except (towers_lib.TowerError, ModelError) as exc:
                raise ModelError(f"{side}_towers[{name!r}] prior (tower {kind!r}): {exc}") from exc
            fields[spec["field"]][2].update(priors[name].reads)
        field_rates = {}
        for field, (rate, names_on_field, keys) in fields.items():
            if rate <= 0:
                continue
            encodings = set(_field_keys(field).values())
            odd = sorted(k for k in keys if k not in encodings and k not in ("ids", "known"))
            if odd:
                raise ModelError(
                    f"{side} field_dropout on field {field!r}: towers {names_on_field} read "
                    f"{odd}, whose missing encoding is unknown (a bag field has "
                    f"'{field}/ids' and '{field}/weights', a numeric one '{field}')"
                )
            info = features_info.get(field) if features_info else None
            dim = towers_lib.as_field_info(info, field).dim if info is not None else None
            if field in keys and dim is not None and dim < 2:
                raise ModelError(
                    f"{side} field_dropout on field {field!r}: its dense array has {dim} "
                    "column(s) and no missing-indicator column to set"
                )
            field_rates[field] = float(rate)
        # ((field, rate), ...) in name order: static, hashable, and the draws' order.
        self.field_rates = tuple(sorted(field_rates.items()))
        self.names = tuple(built)
        self.bias_names = tuple(biases)
        self.towers = nnx.Dict(built)
        self.bias_towers = nnx.Dict(biases)
        self.prior_names = tuple(priors)
        self.prior_towers = nnx.Dict(priors)
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

    def drop_fields(self, batch: Batch, key: jax.Array) -> Batch:
        """The batch with each field of ``field_rates`` encoded as missing for a random share of
        the entities (draws per (key, field, entity ID), see ``id_keep_mask``)."""
        for j, (field, rate) in enumerate(self.field_rates):
            keep = id_keep_mask(batch["ids"], rate, jax.random.fold_in(key, FIELD_KEY + j))
            batch = as_missing(batch, field, 1.0 - keep)
        return batch

    def prior(self, batch: Batch) -> jax.Array:
        """The popularity prior (B,): the sum of the ``prior=True`` towers' outputs."""
        out = jnp.zeros(jnp.shape(batch["ids"]), jnp.float32)
        for n in self.prior_names:
            out = out + self.prior_towers[n](batch)[:, 0]
        return out

    def __call__(self, batch: Batch, training: bool = False) -> tuple[jax.Array, jax.Array]:
        """Returns the representation (B, D) and the bias (B,) of the batch's entities; out of
        training, an entity without a known ID has the popularity prior in its bias."""
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
            bias = bias + lookup(self.id_bias, batch["ids"]) * known_mask(batch)
        for n in self.bias_names:
            bias = bias + self.bias_towers[n](batch)[:, 0]
        if self.prior_names and not training:
            bias = bias + (1.0 - known_mask(batch)) * self.prior(batch)
        return rep, bias


def _check_rate(name: str, rate: float) -> None:
    if not 0.0 <= float(rate) < 1.0:
        raise ModelError(f"{name} must be in [0, 1), got {rate}")


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
      field_dropout: fraction of the items whose metadata field (each field independently) is
        replaced by its missing encoding per training step (see the module docstring).
      user_field_dropout: the same for users.
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
        field_dropout: float = 0.0,
        user_field_dropout: float = 0.0,
        user_bias: bool = True,
        item_bias: bool = True,
        y_range: Sequence[float] | None = None,
    ):
        for name, rate in (("id_dropout", id_dropout), ("user_id_dropout", user_id_dropout)):
            _check_rate(name, rate)
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
            field_dropout=float(user_field_dropout),
            **common,
        )
        self.items = EntityEncoder(
            side="item",
            num_entities=num_items,
            features_info=item_features_info,
            towers=DEFAULT_TOWERS if item_towers is None else item_towers,
            id_bias=item_bias,
            field_dropout=float(field_dropout),
            **common,
        )
        self.id_dropout = float(id_dropout)
        self.user_id_dropout = float(user_id_dropout)
        self.y_range = check_y_range(y_range)
        self.user_reads = self.users.reads
        self.item_reads = self.items.reads

    @staticmethod
    def _drop(
        encoder: EntityEncoder, batch: Batch, rate: float, training: bool, key, side: int
    ) -> Batch:
        """The batch with ``known`` zeroed for ID-dropped entities and dropped fields encoded as
        missing (training with a key only)."""
        rates = (rate, *(r for _, r in encoder.field_rates))
        key = step_key(training, key, rates, "hybrid model ID/field dropout")
        if key is None:
            return batch
        side_key = jax.random.fold_in(key, side)
        if rate > 0:
            keep = id_keep_mask(batch["ids"], rate, side_key)  # (B,)
            batch = {**batch, "known": known_mask(batch) * keep}
        return encoder.drop_fields(batch, side_key)

    def encode_users(self, users: Batch, *, training: bool = False, key=None):
        """User representations and biases: ((B, D), (B,))."""
        return self.users(
            self._drop(self.users, users, self.user_id_dropout, training, key, USER_KEY),
            training=training,
        )

    def encode_items(self, items: Batch, *, training: bool = False, key=None):
        """Item representations and biases: ((M, D), (M,))."""
        return self.items(
            self._drop(self.items, items, self.id_dropout, training, key, ITEM_KEY),
            training=training,
        )

    @property
    def has_item_prior(self) -> bool:
        """Whether the item side has ``prior=True`` towers (which the objective must train)."""
        return bool(self.items.prior_names)

    def item_prior_l2(self) -> jax.Array:
        """The sum of squares of the item prior's parameters (a scalar; 0 without a prior)."""
        variables = jax.tree.leaves(
            nnx.state(self.items.prior_towers, nnx.Param),
            is_leaf=lambda x: isinstance(x, nnx.Variable),
        )
        total = jnp.zeros(())
        for var in variables:
            # Every row, read through ``lookup``: under row-sparse training a table is a
            # ``RowView`` that can only be read by rows (the penalty then updates all of them).
            value = var.get_value()
            if isinstance(var, Embedding | Bias):
                value = lookup(var, jnp.arange(value.shape[0]))
            total = total + jnp.sum(jnp.square(value))
        return total

    def item_prior(self, items: Batch, *, training: bool = False, key=None) -> jax.Array:
        """The items' popularity prior from metadata (M,) (field dropout applies in training)."""
        return self.items.prior(self._drop(self.items, items, 0.0, training, key, ITEM_KEY))


Model = HybridModel
