"""Matrix factorization trained by Collie's "two optimizers": Adam on embeddings, SGD on biases.

Collie (ShopRunner/collie) steps the embedding tables with (sparse) Adam and the per-user and
per-item biases with plain SGD at their own learning rate (``bias_optimizer="sgd"``,
``bias_lr``). Biases are a handful of scalars per entity that every positive and every negative
touches; Adam's per-parameter normalisation moves them as fast as the embeddings, while SGD lets
the gradient's size set the pace. Here the groups follow the variable types
(``hybridrec.variables.Embedding`` / ``Bias``, see ``hybridrec.optim``), so the config just names
one optimizer per group: Adam (lr 1e-2) for ``embeddings`` and SGD (lr 1e-1) for ``biases``.
The rest is ``mf.py`` (Collie's MovieLens 100K protocol).

Command (from the repository root)::

    python -m experiments.run --config mf_two_optimizers.py
    python -m experiments.run --config mf_two_optimizers.py:single   # one Adam for everything

Expected here (2-core CPU, load ~2; 3-5x longer on a busy machine): about 13 s for the command
(8 s inside ``train_and_evaluate``). Measured (seed 0):
two optimizers val/collie_map@10 0.0499, collie_auc 0.9023, ndcg@10 0.2253;
``:single`` (Adam lr 1e-2 on biases too) val/collie_map@10 0.0507, collie_auc 0.9021, ndcg@10
0.2245; ``mf.py`` (SGD lr 1e-2 on biases) 0.0525, 0.9034, 0.2260.
Variants: ``single``, ``smoke`` (tiny synthetic data, for tests).
"""

import ml_collections

from experiments.configs import _variants, mf


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = _variants.variants(arg, ("single",), "mf_two_optimizers.py")
    config = mf.get_config()

    # Optimizer: one per variable type, each with its own learning rate
    config.optimizer.embeddings = dict(
        name="adam", learning_rate=1e-2, sparse=False, sparse_above_rows=50_000
    )
    config.optimizer.biases = dict(name="sgd", learning_rate=1e-1)
    if "single" in variants:
        config.optimizer.biases = dict(name="adam", learning_rate=1e-2)

    if "smoke" in variants:
        _variants.smoke(config, features=False)
    return config
