"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019) on MovieLens 100K.

A closed-form item-item model, ``B = I - P diag(1/diag(P))`` with ``P = (X^T X + l2 I)^-1`` on
the binary user-item matrix; often the strongest simple baseline for top-N ranking. Fitted in
numpy by the trainer (no training loop, no checkpoint); evaluated like ``mf.py`` (Collie's
protocol: ratings >= 4, per-user 10% validation with seed 42).

Command (from the repository root)::

    python -m experiments.run --config ease.py
    python -m experiments.run --config ease.py --config.model.l2=200

Expected here (2-core CPU, load ~2; 3-5x longer on a busy machine): about 4 s for the command
(2 s inside ``train_and_evaluate``). Measured (l2 500): val/collie_map@10 0.0626, collie_auc
0.9142, ndcg@10 0.2637 (filtered): the best warm ranking of the MovieLens 100K configs here.
Variants: ``smoke`` (tiny synthetic data, for tests).
"""

import ml_collections

from experiments.configs import _variants, mf


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = _variants.variants(arg, (), "ease.py")
    config = mf.get_config()

    # Model: a non-neural baseline (hybridrec.models.baselines), fitted by the trainer
    config.model = ml_collections.ConfigDict(dict(name="ease", l2=500.0))

    if "smoke" in variants:
        _variants.smoke(config, features=False)
        config.model.l2 = 10.0
    return config
