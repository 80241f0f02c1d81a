"""History tower: a user as the pooled embeddings of the items they interacted with in training.

SVD++'s implicit-feedback term (Koren 2008) and asymmetric factorisation (Paterek 2007) inside a
hybrid model: ``sum_{j in N(u)} y_j / sqrt(|N(u)|)`` over the user's training items ``N(u)``,
with ``y`` an item table of its own (not the item ID tower's). It reads the ``history`` field
that the trainer builds from the training split when ``config.features.user_history=True``
(``hybridrec.data.history``; the trainer also removes the positive item from its user's history
in training). A user with no history gets the zero vector::

    config.features.user_history = True
    config.model.user_towers.history = dict(tower="history", field="history")

It is the categorical embedding bag with ``sqrtn`` pooling by default; ``pooling="mean"`` or
``"sum"`` also work. Like the ID tower, it is derived from the user's interactions, so it is
masked by ``known``: ID dropout (``user_id_dropout``) removes a user's history together with
their ID row, as a cold user has neither, and the other user towers learn to stand in for both.
An optional ``"history/known"`` flag overrides ``known`` (serving sets it for a new user who
names items: a history without an ID row).
(Without it, the user-cold ablation of ``experiments.cold_start`` trained every user with a
history and scored cold users, whose history is empty, worse than IDs alone: NDCG@10 0.30 vs
0.40.)
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from hybridrec.towers.categorical import CategoricalTower, example_bag
from hybridrec.variables import lookup


class HistoryTower(CategoricalTower):
    """Pooled embeddings of a user's training items (see the module docstring).

    Args:
      field: ``"history"`` (batch keys ``"history/ids"``, ``"history/weights"``).
      features_info: the field's metadata; ``vocab_size`` = number of items + 1 (padding).
      output_dim: embedding width D.
      rngs: ``nnx.Rngs`` with a ``params`` stream.
      pooling: ``"sqrtn"`` (default, as SVD++), ``"mean"`` or ``"sum"``.
      init_stddev: the table is initialised from N(0, init_stddev^2); row 0 (padding) is zero.
    """

    kind = "history"
    default_pooling = "sqrtn"

    def __call__(self, batch: Mapping[str, jax.Array]) -> jax.Array:
        """Returns (B, D): the pooled history, zero for rows whose ``"{field}/known"`` (if the
        batch has it, else ``known``) is 0.

        The batch holds either each row's slots, ``"{field}/ids"`` and ``"{field}/weights"``
        (B, W), or, in training on the ``all_users`` path (``hybridrec.data.history``), every
        user's history and each row's user and target item (``_pool_all_users``)."""
        if f"{self.field}/all_ids" in batch:
            pooled = self._pool_all_users(batch)
        else:
            pooled = super().__call__(batch)
        mask = batch.get(f"{self.field}/known", batch.get("known"))
        if mask is None:
            return pooled
        return pooled * jnp.asarray(mask, pooled.dtype)[:, None]

    def _pool_all_users(self, batch: Mapping[str, jax.Array]) -> jax.Array:
        """(B, D): every user's history pooled once, then each row's user minus its target.

        ``sum_{j in N(u) - {i}} w_j y_j = S_u - w_i y_i`` with ``S_u`` the user's whole sum
        (one segment sum over the N history slots of all users) and ``w_i`` the target's weight
        in the history (0 if absent); the norm likewise (``sum w^2 - w_i^2`` for ``sqrtn``).
        The same vectors and gradients as the per-row slots with the target masked, for N
        table rows a step instead of B x W.
        """
        f = self.field
        sum_w = batch[f"{f}/sum_weights"]  # (U,)
        rows = lookup(self.table, batch[f"{f}/all_ids"]) * batch[f"{f}/all_weights"][:, None]
        sums = jax.ops.segment_sum(
            rows, batch[f"{f}/all_rows"], num_segments=sum_w.shape[0], indices_are_sorted=True
        )  # (U, D)
        user_rows = batch[f"{f}/user_rows"]  # (B,)
        target_w = batch[f"{f}/target_weights"]  # (B,)
        target = lookup(self.table, batch[f"{f}/target_ids"]) * target_w[:, None]
        pooled = sums[user_rows] - target  # (B, D)
        if self.pooling == "sum":
            return pooled
        if self.pooling == "mean":
            norm = sum_w[user_rows] - target_w
        else:  # sqrtn
            squares = batch[f"{f}/sum_squared_weights"][user_rows] - target_w**2
            norm = jnp.sqrt(jnp.maximum(squares, 0.0))
        # Float rounding can leave a tiny norm where the target was the only item; the sum is
        # then ~0 too, as on the per-row path (a bag with no slot gives zeros).
        return pooled / jnp.where(norm > 1e-6, norm, 1.0)[:, None]


Tower = HistoryTower


def example(batch_size: int, rng: np.random.Generator) -> tuple[dict, dict]:
    """Constructor arguments and a matching batch for the contract test."""
    info = dict(kind="history", vocab_size=21, width=6)  # 20 items + padding
    kwargs = dict(field="history", features_info=info, output_dim=8)
    ids, weights = example_bag(batch_size, rng, vocab_size=21, width=6, tfidf=False)
    return kwargs, {"history/ids": ids, "history/weights": weights}
