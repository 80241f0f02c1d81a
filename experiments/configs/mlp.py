"""fastai's ``EmbeddingNN`` (an MLP over concatenated user and item embeddings) on explicit ratings.

fastbook chapter 8's neural collaborative filtering: ``collab_learner(dls, use_nn=True,
y_range=(0, 5.5), layers=[100, 50])`` on MovieLens 100K, under the protocol of
``explicit_mf.py`` (random 20% of the ratings held out, MSE, AdamW with weight decay 0.1,
one-cycle at 5e-3, 5 epochs, batch 64; RMSE / MAE reported; ``y_range`` as
``explicit_mf.Y_RANGE``). fastai reports a validation MSE of
about 0.87 for it (worse than the dot product, 0.82). Without fastai's BatchNorm layers (see
``hybridrec.models.mlp``).

Command (from the repository root)::

    python -m experiments.run --config mlp.py
    python -m experiments.run --config mlp.py:implicit   # ranking, Collie's protocol (as mf.py)

Expected here (2-core CPU, load ~2; 3-5x longer on a busy machine): about 9 s for the command
(5 s inside ``train_and_evaluate``). Measured (seed 0, y_range (0, 5.5)): val/rmse 0.9331,
val/mae 0.7299 (val MSE 0.871). ``:implicit``: about 28 s; val/collie_map@10 0.0343,
collie_auc 0.8918, ndcg@10 0.2024.
Variants: ``implicit`` (ratings >= 4 as positives, adaptive hinge, ranking metrics),
``smoke`` (tiny synthetic data, for tests).
"""

import ml_collections

from experiments.configs import _variants, explicit_mf, mf


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = _variants.variants(arg, ("implicit",), "mlp.py")
    config = mf.get_config() if "implicit" in variants else explicit_mf.get_config()

    # Model: fastai's EmbeddingNN with layers=[100, 50]
    config.model = ml_collections.ConfigDict(
        dict(
            name="mlp",
            embedding_dim=64,
            hidden_dims=(100, 50),
            embedding_dropout=0.0,
            dropout=0.0,
            y_range=None if "implicit" in variants else explicit_mf.Y_RANGE,
        )
    )
    if "implicit" in variants:
        config.optimizer.dense = dict(name="adam", learning_rate=1e-3)

    if "smoke" in variants:
        _variants.smoke(config, features=False, explicit="implicit" not in variants)
        if "implicit" not in variants:
            config.split = dict(name="random", test_p=0.2, seed=0)
    return config
