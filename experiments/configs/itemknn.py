"""Item-based k-nearest-neighbours (cosine, k=100) on MovieLens 100K.

Deshpande & Karypis, "Item-based top-N recommendation algorithms", ACM TOIS 2004: each item
keeps its 100 most similar items by cosine similarity of their user columns, and a user scores
an item by summing its similarities to the user's items. Fitted in numpy by the trainer (no
training loop, no checkpoint); evaluated like ``mf.py`` (Collie's protocol).

Command (from the repository root)::

    python -m experiments.run --config itemknn.py

Expected here (2-core CPU, load ~2; 3-5x longer on a busy machine): about 4 s for the command
(2 s inside ``train_and_evaluate``). Measured: val/collie_map@10 0.0619, collie_auc 0.8930,
ndcg@10 0.1948 (filtered).
Variants: ``smoke`` (tiny synthetic data, for tests).
"""

import ml_collections

from experiments.configs import _variants, mf


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = _variants.variants(arg, (), "itemknn.py")
    config = mf.get_config()

    # Model: a non-neural baseline (hybridrec.models.baselines), fitted by the trainer
    config.model = ml_collections.ConfigDict(dict(name="itemknn", k=100, shrink=0.0))

    if "smoke" in variants:
        _variants.smoke(config, features=False)
        config.model.k = 10
    return config
