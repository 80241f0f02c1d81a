"""Full softmax: each positive against the whole catalogue (no sampling).

Exact but costs ``B x num_items`` scores a step: for catalogues of a few thousand items.
"""

from __future__ import annotations

import jax

from hybridrec.objectives import Objective as _Base


class Objective(_Base):
    kinds = ("full_softmax",)

    def make_batch(self, batch, data, key):
        batch = super().make_batch(batch, data, key)
        batch["all_items"] = data["items"]  # the catalogue's entity table, (num_items,) rows
        return batch

    def loss(self, model, batch, key):
        u_key, i_key, s_key = jax.random.split(key, 3)
        u = model.encode_users(batch["users"], training=True, key=u_key)
        v_all = model.encode_items(batch["all_items"], training=True, key=i_key)
        scores = model.score_grid(u, v_all, training=True, key=s_key)  # (B, num_items)
        return self.loss_fn(
            scores=scores, pos_item_ids=batch["item_ids"], weights=batch["weights"], **self.options
        )
