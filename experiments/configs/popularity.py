"""Popularity baseline: every user gets the items with the most training interactions.

The sanity floor of every ranking table (Cremonesi, Koren & Turrin, RecSys 2010). Fitted in
numpy by the trainer (no training loop, no checkpoint), evaluated with the same full-ranking
code and protocol as ``mf.py`` (Collie's: ratings >= 4, per-user 10% validation with seed 42).

Command (from the repository root)::

    python -m experiments.run --config popularity.py

Expected here (2-core CPU, load ~2; 3-5x longer on a busy machine): about 4 s for the command
(2 s inside ``train_and_evaluate``). Measured: val/collie_map@10 0.0337, collie_auc 0.7864,
ndcg@10 0.1108 (filtered).
Variants: ``smoke`` (tiny synthetic data, for tests).
"""

import ml_collections

from experiments.configs import _variants, mf


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = _variants.variants(arg, (), "popularity.py")
    config = mf.get_config()

    # Model: a non-neural baseline (hybridrec.models.baselines), fitted by the trainer
    config.model = ml_collections.ConfigDict(dict(name="popularity", weighted=False))

    if "smoke" in variants:
        _variants.smoke(config, features=False)
    return config
