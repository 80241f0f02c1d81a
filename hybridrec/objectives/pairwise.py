"""Pairwise objective: each positive against K sampled negatives (BPR, hinge, adaptive, WARP).

``make_batch`` draws ``config.train.num_negatives`` negatives per positive from the run's sampler
(``config.train.sampler``) and, with ``config.train.metadata_credit``, the first category of the
positive and of each negative (Collie's partial credit). ``loss`` scores positives ``(B,)`` and
negatives ``(B, K)`` and calls the pairwise loss.

With a loss that reads only each row's hardest negative (``hardest_only``: adaptive BPR and
hinge), the K negatives are scored by ``hybridrec.variables.no_grad(model)`` and only the chosen
one is encoded again with gradients. The loss and its gradients are those of scoring all K with
gradients (the others' gradients are zero), but the backward pass and the row-sparse update
touch B rows instead of B * K: at 100k users x 20k items, K = 10, the MF step took 1.70 ms
against 2.43 ms (``python benchmarks/bench_step.py --all-negative-rows``, timed in turn). ID and field dropout decide per entity and step, so the chosen
negative is encoded again exactly as it was scored; a tower with positional dropout (an MLP's
``dropout``) draws its mask again for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from hybridrec.models.base import apply_y_range
from hybridrec.objectives import Objective as _Base
from hybridrec.objectives import ObjectiveError, gather
from hybridrec.variables import no_grad


class Objective(_Base):
    kinds = ("pairwise",)

    def __init__(self, config, num_items: int):
        super().__init__(config, num_items)
        tc = config.train
        self.num_negatives = int(tc.num_negatives)
        # Score the K negatives without gradients and train on the chosen one (module docstring).
        self.hardest_rows = getattr(self.loss_fn, "hardest_only", False) and self.num_negatives > 1
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
        u, pos, i_key, s_key = self._positives(model, batch, key)
        neg = self._neg_scores(model, u, batch["neg_items"], i_key, s_key)
        return pos, apply_y_range(neg, getattr(model, "y_range", None))

    def _positives(self, model, batch, key):
        """``(u, pos_scores (B,), item key, score key)``: the users' encodings and the
        positives' scores (with ``y_range``: train on the scores the model is judged by)."""
        u_key, i_key, s_key = jax.random.split(key, 3)
        u = model.encode_users(batch["users"], training=True, key=u_key)
        v_pos = model.encode_items(batch["pos_items"], training=True, key=i_key)
        pos = model.score_encoded(u, v_pos, training=True, key=s_key)
        return u, apply_y_range(pos, getattr(model, "y_range", None)), i_key, s_key

    def _neg_scores(self, model, u, neg_items, i_key, s_key) -> jax.Array:
        """(B, K) raw scores of the (B * K,) negative rows ``neg_items`` for the users ``u``."""
        v_neg = model.encode_items(neg_items, training=True, key=i_key)
        v_neg = jax.tree.map(lambda a: a.reshape(-1, self.num_negatives, *a.shape[1:]), v_neg)
        return model.score_encoded(
            jax.tree.map(lambda a: a[:, None], u), v_neg, training=True, key=s_key
        )

    def _hardest_scores(self, model, batch, key):
        """``(pos (B,), hardest negative's score (B, 1), its column (B,))``: the K negatives
        scored without gradients, the hardest encoded again with them."""
        u, pos, i_key, s_key = self._positives(model, batch, key)
        competing = self._neg_scores(
            no_grad(model), jax.lax.stop_gradient(u), batch["neg_items"], i_key, s_key
        )  # (B, K)
        column = jnp.argmax(competing, axis=1)  # y_range is monotone: the same argmax
        rows = jnp.arange(column.shape[0]) * self.num_negatives + column  # (B,) of the B * K
        chosen = jax.tree.map(lambda a: a[rows], batch["neg_items"])
        v_neg = model.encode_items(chosen, training=True, key=i_key)
        neg = model.score_encoded(u, v_neg, training=True, key=s_key)
        return pos, apply_y_range(neg, getattr(model, "y_range", None))[:, None], column

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
        if not self.hardest_rows:
            pos_scores, neg_scores = self.scores(model, batch, key)
            kwargs = self.loss_kwargs(batch)
        else:
            pos_scores, neg_scores, column = self._hardest_scores(model, batch, key)
            kwargs = self.loss_kwargs(batch)
            if "neg_meta" in kwargs:  # the chosen negative's partial credit
                kwargs["neg_meta"] = jnp.take_along_axis(kwargs["neg_meta"], column[:, None], 1)
        return self.loss_fn(
            pos_scores=pos_scores,
            neg_scores=neg_scores,
            weights=batch["weights"],
            **kwargs,
            **self.options,
        )
