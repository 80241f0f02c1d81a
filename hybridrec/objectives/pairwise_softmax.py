"""Pairwise ranking plus a full softmax over the catalogue, on the same user encodings.

``L = L_pairwise(pos, K sampled negatives) + softmax_weight * L_softmax(pos | every item)``:
the pairwise loss named by ``config.train.loss`` (BPR, adaptive BPR, WARP, ...; negatives from
``config.train.sampler``, as ``hybridrec.objectives.pairwise``) sharpens the top of each
user's ranking, and the full softmax (``hybridrec.losses.full_softmax``, the multinomial
likelihood of Liang et al. 2018) makes every score a calibrated log-probability, which teaches
the item side a popularity prior. With metadata towers and ID dropout, that prior is carried by
the metadata (and its feature biases) too, which is what ranks *cold* items among themselves:
on MovieLens 100K's item-cold split, the pairwise loss alone ranked cold items mostly by
personal taste and left their metadata-predicted popularity unlearned (see
``experiments/configs/hybrid.py``'s tuning log).

The item table is encoded once per step (``training=True``: ID and field dropout apply), so the
softmax costs one (B, D) x (D, num_items) product and its gradient: for catalogues of a few
thousand items. Config (``config.train``)::

    objective="pairwise_softmax", loss="adaptive_bpr", softmax=dict(weight=1.0, temperature=1.0)
"""

from __future__ import annotations

import jax

from hybridrec import losses
from hybridrec.models.base import apply_y_range
from hybridrec.objectives import ObjectiveError, pairwise

DEFAULTS = dict(weight=1.0, temperature=1.0)


class Objective(pairwise.Objective):
    """``pairwise.Objective`` plus ``softmax.weight`` times the full softmax of the positives."""

    kinds = ("pairwise",)

    def __init__(self, config, num_items: int):
        super().__init__(config, num_items)
        given = dict(config.train.get("softmax") or {})
        unknown = sorted(set(given) - set(DEFAULTS))
        if unknown:
            raise ObjectiveError(
                f"config.train.softmax has unknown key(s) {unknown}; known: {sorted(DEFAULTS)}"
            )
        options = {**DEFAULTS, **given}
        self.softmax_weight = float(options["weight"])
        self.temperature = float(options["temperature"])
        if self.softmax_weight < 0 or self.temperature <= 0:
            raise ObjectiveError(
                f"config.train.softmax needs weight >= 0 and temperature > 0, got {options}"
            )

    def make_batch(self, batch, data, key):
        batch = super().make_batch(batch, data, key)
        batch["all_items"] = data["items"]  # the catalogue's entity table, (num_items,) rows
        return batch

    def loss(self, model, batch, key) -> jax.Array:
        B = batch["weights"].shape[0]
        u_key, i_key, s_key = jax.random.split(key, 3)
        y_range = getattr(model, "y_range", None)
        u = model.encode_users(batch["users"], training=True, key=u_key)
        # One encoding of the catalogue serves the positives, the negatives and the softmax;
        # the same key as the pairwise objective's, so an item is ID-dropped alike everywhere.
        v_all = model.encode_items(batch["all_items"], training=True, key=i_key)  # (N, ...)
        v_pos = jax.tree.map(lambda a: a[batch["item_ids"]], v_all)  # (B, ...)
        v_neg = jax.tree.map(lambda a: a[batch["neg_item_ids"]], v_all)  # (B, K, ...)
        pos = apply_y_range(model.score_encoded(u, v_pos, training=True, key=s_key), y_range)
        u_row = jax.tree.map(lambda a: a[:, None], u)  # (B, 1, ...)
        neg = apply_y_range(
            model.score_encoded(u_row, v_neg, training=True, key=s_key), y_range
        )  # (B, K)
        ranking = self.loss_fn(
            pos_scores=pos,
            neg_scores=neg.reshape(B, self.num_negatives),
            weights=batch["weights"],
            **self.loss_kwargs(batch),
            **self.options,
        )
        if self.softmax_weight == 0:
            return ranking
        scores = model.score_encoded(
            u_row, jax.tree.map(lambda a: a[None], v_all), training=True, key=s_key
        )  # (B, N)
        softmax = losses.full_softmax(
            scores=scores,
            pos_item_ids=batch["item_ids"],
            weights=batch["weights"],
            temperature=self.temperature,
        )
        return ranking + self.softmax_weight * softmax
