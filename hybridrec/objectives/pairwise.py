"""Pairwise objective: each positive against K sampled negatives (BPR, hinge, adaptive, WARP).

``make_batch`` draws ``config.train.num_negatives`` negatives per positive from the run's sampler
(``config.train.sampler``) and, with ``config.train.metadata_credit``, the first category of the
positive and of each negative (Collie's partial credit). ``loss`` scores positives ``(B,)`` and
negatives ``(B, K)`` and calls the pairwise loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax

from hybridrec.models.base import apply_y_range
from hybridrec.objectives import Objective as _Base
from hybridrec.objectives import ObjectiveError, gather


class Objective(_Base):
    kinds = ("pairwise",)

    def __init__(self, config, num_items: int):
        super().__init__(config, num_items)
        tc = config.train
        self.num_negatives = int(tc.num_negatives)
        credit = tc.get("metadata_credit") or {}
        self.credit_field = credit.get("field")
        self.credit_weight = credit.get("weight")
        if self.credit_field:
            if not getattr(self.loss_fn, "supports_metadata", False):
                raise ObjectiveError(
                    f"loss {tc.loss!r} does not support config.train.metadata_credit"
                )
            self.item_keys.add(f"{self.credit_field}/ids")

    def check_items(self, item_table_keys) -> None:
        """Raises if the partial-credit field is not a categorical item feature."""
        if self.credit_field and f"{self.credit_field}/ids" not in item_table_keys:
            raise ObjectiveError(
                f"config.train.metadata_credit.field={self.credit_field!r} is not a categorical "
                f"item feature; item features are "
                f"{sorted(k for k in item_table_keys if k.endswith('/ids'))}"
            )

    def make_batch(self, batch: dict, data: Mapping[str, Any], key: jax.Array) -> dict:
        batch = super().make_batch(batch, data, key)
        neg_ids = data["sampler"].sample(key, batch["user_ids"], self.num_negatives)  # (B, K)
        batch["neg_item_ids"] = neg_ids
        batch["neg_items"] = gather(data["items"], neg_ids.reshape(-1))  # (B * K,) rows
        if self.credit_field:
            # Collie's partial credit: a negative sharing the positive's (first) category.
            first = data["items"][f"{self.credit_field}/ids"][:, 0]
            batch["pos_meta"] = first[batch["item_ids"]]
            batch["neg_meta"] = first[neg_ids]
        return batch

    def scores(self, model, batch, key) -> tuple[jax.Array, jax.Array]:
        """``(pos_scores (B,), neg_scores (B, K))`` on the scale the model is judged by."""
        B = batch["weights"].shape[0]
        u_key, i_key, s_key = jax.random.split(key, 3)
        u = model.encode_users(batch["users"], training=True, key=u_key)
        v_pos = model.encode_items(batch["pos_items"], training=True, key=i_key)
        # score_pairs / score_all apply y_range; train on the same scores.
        y_range = getattr(model, "y_range", None)
        pos = apply_y_range(model.score_encoded(u, v_pos, training=True, key=s_key), y_range)
        v_neg = model.encode_items(batch["neg_items"], training=True, key=i_key)
        v_neg = jax.tree.map(lambda a: a.reshape(B, self.num_negatives, *a.shape[1:]), v_neg)
        neg = model.score_encoded(
            jax.tree.map(lambda a: a[:, None], u), v_neg, training=True, key=s_key
        )
        return pos, apply_y_range(neg, y_range)

    def loss_kwargs(self, batch) -> dict:
        """What the loss reads besides the scores and weights."""
        if not self.credit_field:
            return {}
        return dict(
            pos_meta=batch["pos_meta"],
            neg_meta=batch["neg_meta"],
            metadata_weights=self.credit_weight,
        )

    def loss(self, model, batch, key) -> jax.Array:
        pos_scores, neg_scores = self.scores(model, batch, key)
        return self.loss_fn(
            pos_scores=pos_scores,
            neg_scores=neg_scores,
            weights=batch["weights"],
            **self.loss_kwargs(batch),
            **self.options,
        )
