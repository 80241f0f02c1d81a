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

    objective="pairwise_softmax", loss="adaptive_bpr", softmax=dict(weight=1.0, temperature=1.0),
    prior=dict(weight=0.0, l2=0.0)

**A popularity prior for cold items** (``prior.weight`` > 0, for a model whose item towers have
``prior=True`` siblings: ``hybridrec.models.hybrid``): the term

    prior.weight * (-sum_b w_b log softmax_T(pi)[i_b] / sum_b w_b + mean_T(pi)^2
                    + prior.l2 * ||theta_pi||^2)

fits the items' prior ``pi = pi(metadata; theta_pi)`` to the item marginal of the positives
``i_b`` by maximum likelihood, a multinomial regression of item choice on metadata:
``pi(i) = log p(i | metadata)`` up to a constant, which the squared mean pins at 0. The softmax
and the mean run over the training items ``T`` only (``known`` = 1): a cold item could not have
been chosen, and as a negative it would teach the prior that cold items' metadata is unpopular.
``prior.l2`` is a ridge penalty on the prior's parameters per positive, so that where metadata
says nothing about popularity the prior stays near 0 (on the synthetic beer data, where
popularity is drawn apart from metadata, the unpenalised prior memorised the breweries and cost
cold AUC 0.015). The term is the only one that trains the prior, and the model adds the prior
to the score of items without a known ID out of training only, so the rest of the model trains
exactly as without it.

Why a separate prior: among MovieLens 100K's cold items a popularity ranking predicted from
genres and year is the strongest signal there is, but the feature biases (``bias=True``),
trained inside the score, do not learn it (their score alone ranked cold items at NDCG@10
0.05: the towers' user-item products carry the popularity instead), and a prior inside the
training score, even with its gradients stopped, was compensated by those products (cold
NDCG@10 0.13 either way). Added to the trained model's score of cold items only, the fitted
prior raised cold NDCG@10 by 0.03-0.12 on every seed (``experiments/configs/hybrid.py``'s
tuning log).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from hybridrec import losses
from hybridrec.models.base import apply_y_range, known_mask
from hybridrec.objectives import ObjectiveError, pairwise

DEFAULTS = dict(weight=1.0, temperature=1.0)
PRIOR_DEFAULTS = dict(weight=0.0, l2=0.0)


def _options(config, section: str, defaults: dict) -> dict:
    """``config.train.<section>`` over ``defaults``; raises on a key that is not among them."""
    given = dict(config.train.get(section) or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ObjectiveError(
            f"config.train.{section} has unknown key(s) {unknown}; known: {sorted(defaults)}"
        )
    return {**defaults, **given}


class Objective(pairwise.Objective):
    """``pairwise.Objective`` plus ``softmax.weight`` times the full softmax of the positives."""

    kinds = ("pairwise",)

    def __init__(self, config, num_items: int):
        super().__init__(config, num_items)
        options = _options(config, "softmax", DEFAULTS)
        self.softmax_weight = float(options["weight"])
        self.temperature = float(options["temperature"])
        if self.softmax_weight < 0 or self.temperature <= 0:
            raise ObjectiveError(
                f"config.train.softmax needs weight >= 0 and temperature > 0, got {options}"
            )
        prior = _options(config, "prior", PRIOR_DEFAULTS)
        self.prior_weight, self.prior_l2 = float(prior["weight"]), float(prior["l2"])
        if self.prior_weight < 0 or self.prior_l2 < 0:
            raise ObjectiveError(f"config.train.prior needs weight, l2 >= 0, got {prior}")

    def make_batch(self, batch, data, key):
        batch = super().make_batch(batch, data, key)
        batch["all_items"] = data["items"]  # the catalogue's entity table, (num_items,) rows
        return batch

    def loss(self, model, batch, key) -> jax.Array:
        # The prior term trains the model's prior=True towers; a model without them (an
        # ablation with the ID tower alone) has nothing for it to train.
        has_prior = bool(getattr(model, "has_item_prior", False))
        if has_prior and self.prior_weight == 0:
            raise ObjectiveError(
                "the model's item towers have prior=True siblings but config.train.prior.weight "
                "is 0: the prior would stay untrained"
            )
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
        total = ranking
        if self.softmax_weight > 0:
            scores = model.score_grid(u, v_all, training=True, key=s_key)  # (B, N)
            softmax = losses.full_softmax(
                scores=scores,
                pos_item_ids=batch["item_ids"],
                weights=batch["weights"],
                temperature=self.temperature,
            )
            total = total + self.softmax_weight * softmax
        if has_prior:
            prior = model.item_prior(batch["all_items"], training=True, key=i_key)  # (N,)
            # Over the training items only: an item without training interactions (a cold one)
            # could not have been chosen, and as a softmax negative it would teach the prior
            # that the metadata of cold items is unpopular.
            known = known_mask(batch["all_items"]) > 0  # (N,)
            log_p = jnp.where(known, prior, -1e9)
            # -log softmax(pi)[i_b], weighted as full_softmax weights; the softmax does not
            # depend on the row, so its normaliser is computed once, not B times.
            nll = jax.nn.logsumexp(log_p) - log_p[batch["item_ids"]]  # (B,)
            weights = batch["weights"]
            total_weight = jnp.sum(weights)
            marginal = jnp.where(
                total_weight > 0,
                jnp.sum(weights * nll) / jnp.where(total_weight > 0, total_weight, 1.0),
                0.0,
            )
            centre = jnp.sum(jnp.where(known, prior, 0.0)) / jnp.maximum(jnp.sum(known), 1)
            penalty = centre**2 + self.prior_l2 * model.item_prior_l2()
            total = total + self.prior_weight * (marginal + penalty)
        return total
