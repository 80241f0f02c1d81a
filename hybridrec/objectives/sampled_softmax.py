"""Sampled softmax with log-Q correction: the positive among K sampled negatives.

The negatives are drawn as for the pairwise objective; ``make_batch`` adds the sampler's
log-probabilities of the positive and of each negative (``pos_log_q``, ``neg_log_q``), which the
``sampled_softmax`` loss subtracts from the logits (Bengio & Senecal 2008; Yi et al. 2019) so
that popular negatives are not over-penalised.
"""

from __future__ import annotations

from hybridrec.objectives import pairwise


class Objective(pairwise.Objective):
    kinds = ("sampled_softmax",)

    def make_batch(self, batch, data, key):
        batch = super().make_batch(batch, data, key)
        sampler = data["sampler"]
        batch["pos_log_q"] = sampler.log_q(batch["item_ids"], batch["user_ids"])
        batch["neg_log_q"] = sampler.log_q(batch["neg_item_ids"], batch["user_ids"])
        return batch

    def loss_kwargs(self, batch) -> dict:
        return dict(
            super().loss_kwargs(batch),
            pos_log_q=batch["pos_log_q"],
            neg_log_q=batch["neg_log_q"],
            pos_item_ids=batch["item_ids"],
            neg_item_ids=batch["neg_item_ids"],
        )
