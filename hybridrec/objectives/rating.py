"""Rating regression: each observed (user, item) pair's score against its rating (MSE).

Explicit-feedback training (fastai's collab protocol); needs ratings
(``config.data.implicit_threshold=None``). No negatives are drawn.
"""

from __future__ import annotations

import jax

from hybridrec.models.base import apply_y_range
from hybridrec.objectives import Objective as _Base


class Objective(_Base):
    kinds = ("pointwise_rating",)

    def loss(self, model, batch, key):
        u_key, i_key, s_key = jax.random.split(key, 3)
        u = model.encode_users(batch["users"], training=True, key=u_key)
        v = model.encode_items(batch["pos_items"], training=True, key=i_key)
        scores = apply_y_range(
            model.score_encoded(u, v, training=True, key=s_key), getattr(model, "y_range", None)
        )
        return self.loss_fn(
            scores=scores, ratings=batch["ratings"], weights=batch["weights"], **self.options
        )
