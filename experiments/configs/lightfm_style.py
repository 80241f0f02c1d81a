"""LightFM on MovieLens 100K: identity + genre features with feature biases, WARP loss.

Kula, "Metadata Embeddings for User and Item Cold-start Recommendations" (2015): an item is the
sum of the embeddings of its features, the identity feature included, and its bias the sum of
their biases; a user is their identity embedding (the hybrid model with ``combiner="sum"``, see
the LightFM docstring in ``hybridrec/models/hybrid.py``):
``score = p_u . (q_i + sum_g e_g) + b_u + b_i + sum_g beta_g``. Trained as LightFM trains
(``loss="warp"``): WARP over up to 10 sampled negatives (LightFM's ``max_sampled=10``) with its
``log`` rank weight, Adagrad at 0.05 on every group and a constant learning rate, batches
of 64, 30 components, no ID dropout.
Protocol: Collie's (ratings >= 4, per-user 10% validation with seed 42), as ``mf.py``.

Command (from the repository root)::

    python -m experiments.run --config lightfm_style.py

Expected here (2-core CPU, load ~2; 3-5x longer on a busy machine): about 22 s for the command
(17 s inside ``train_and_evaluate``). Measured (seed 0): val/collie_map@10 0.0496,
collie_auc 0.9136, ndcg@10 0.2227 (filtered).
Variants: ``smoke`` (tiny synthetic movies data, for tests).
"""

import ml_collections

from experiments.configs import _variants, hybrid


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = _variants.variants(arg, (), "lightfm_style.py")
    config = hybrid.get_config()
    _variants.untuned_hybrid_training(config)

    # Features: genres only
    config.features.fields = ("genres",)

    # Model: sums of feature embeddings and feature biases
    config.model = ml_collections.ConfigDict(
        dict(
            name="hybrid",
            embedding_dim=30,
            combiner="sum",
            user_bias=True,
            item_bias=True,
            id_dropout=0.0,
            user_towers=dict(id=dict(tower="ids")),
            item_towers=dict(
                id=dict(tower="ids"),
                genres=dict(tower="categorical", field="genres", pooling="sum", bias=True),
            ),
        )
    )

    # Training: WARP, LightFM's log rank weight, 10 trials
    config.train.loss = "warp"
    config.train.loss_options = dict(rank_weight="log", max_weight=10.0)
    config.train.num_negatives = 10
    config.train.sampler = "uniform"
    # LightFM updates after every example; small batches keep Adagrad's steps many and large
    # (batch 1024: collie_map@10 0.021 after 20 epochs; batch 64: 0.048).
    config.train.batch_size = 64

    # Optimizer: Adagrad everywhere, as LightFM
    adagrad = dict(name="adagrad", learning_rate=0.05)
    config.optimizer.embeddings = dict(adagrad, sparse=False, sparse_above_rows=50_000)
    config.optimizer.biases = dict(adagrad)
    config.optimizer.dense = dict(adagrad)
    config.optimizer.plateau = None  # LightFM keeps its learning rate

    if "smoke" in variants:
        _variants.smoke(config)
    return config
