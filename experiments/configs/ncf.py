"""NeuMF (He et al., "Neural Collaborative Filtering", WWW 2017) on MovieLens 100K.

GMF (16 predictive factors) fused with an MLP tower (64 -> 32 -> 16) by one linear layer,
trained as in the paper: binary cross-entropy (``bce``) on each positive and 4 uniformly
sampled negatives, Adam at lr 1e-3, batch 256. Under Collie's protocol (ratings >= 4 are
positives, per-user 10% validation with seed 42), with the same metrics as ``mf.py``.

``score_all`` runs the MLP over every (user, item) pair of the catalogue (O(users x items x 64)),
so evaluation costs more than for the factorised models.

Command (from the repository root)::

    python -m experiments.run --config ncf.py

Expected here (2-core CPU, load ~2; 3-5x longer on a busy machine): about 27 s for the command
(23 s inside ``train_and_evaluate``). Measured (seed 0, 20 epochs): val/collie_map@10 0.0394,
collie_auc 0.8882, ndcg@10 0.1771 (filtered); seeds 1, 2: ndcg@10 0.1791, 0.1689.
Variants: ``smoke`` (tiny synthetic data, for tests).
"""

import ml_collections

from experiments.configs import _variants, mf


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = _variants.variants(arg, (), "ncf.py")
    config = mf.get_config()

    # Model
    config.model = ml_collections.ConfigDict(
        dict(name="ncf", embedding_dim=16, mlp_dims=(64, 32, 16), dropout=0.0)
    )

    # Training: the paper's log loss over 4 negatives per positive
    config.train.loss = "bce"
    config.train.num_negatives = 4
    config.train.batch_size = 256
    config.train.num_epochs = 20

    # Optimizer: Adam everywhere (the paper has no bias tables; the MLP is "dense")
    config.optimizer.embeddings = dict(
        name="adam", learning_rate=1e-3, sparse=False, sparse_above_rows=50_000
    )
    config.optimizer.dense = dict(name="adam", learning_rate=1e-3)
    # The paper's constant learning rate. NeuMF spends its first 3-5 epochs near a popularity
    # ranking, and Collie's reduce-on-plateau (patience 1, inherited from mf.py) cut the rate
    # there at some seeds and stalled it at NDCG@10 0.107.
    config.optimizer.plateau = None

    if "smoke" in variants:
        _variants.smoke(config, features=False)
    return config
