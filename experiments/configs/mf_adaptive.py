"""Matrix factorization with an adaptive loss over more negatives (adaptive BPR by default).

The adaptive losses (Collie's ``adaptive_bpr`` / ``adaptive_hinge``; the idea of Weston et al.'s
WARP and of Rendle & Freudenthaler, "Improving Pairwise Learning for Item Recommendation from
Implicit Feedback", WSDM 2014) score K sampled negatives per positive and keep only the hardest
one, so more negatives mean harder ones. Everything else is ``mf.py`` (Collie's MovieLens 100K
protocol: ratings >= 4 are positives, per-user 10% validation with seed 42, embedding dimension
10, Adam on embeddings and SGD on biases, reduce-on-plateau, 10 epochs) with adaptive BPR
over 10 negatives instead of adaptive hinge (``:many``: 25 negatives).

Command (from the repository root)::

    python -m experiments.run --config mf_adaptive.py
    python -m experiments.run --config mf_adaptive.py:hinge     # adaptive hinge instead
    python -m experiments.run --config mf_adaptive.py:many      # 25 negatives

Expected here (2-core CPU, load ~2; 3-5x longer on a busy machine): about 15 s for the command
(10 s inside ``train_and_evaluate``). Measured (seed 0, filtered ndcg@10):
adaptive BPR val/collie_map@10 0.0493, collie_auc 0.8994, ndcg@10 0.2289;
``:hinge`` (the same as ``mf.py``) val/collie_map@10 0.0525, collie_auc 0.9034, ndcg@10 0.2260;
``:many`` (adaptive BPR, 25 negatives) val/collie_map@10 0.0439, collie_auc 0.8250, ndcg@10
0.2005: the hardest of 25 uniform negatives is too often an unobserved positive here.
Variants: ``hinge`` (adaptive hinge), ``many`` (25 negatives), ``smoke`` (tiny synthetic data,
for tests); combine them with a comma, e.g. ``mf_adaptive.py:hinge,many``.
"""

import ml_collections

from experiments.configs import _variants, mf


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = _variants.variants(arg, ("hinge", "many"), "mf_adaptive.py")
    config = mf.get_config()

    # Training: the hardest of 10 (or 25) negatives per positive
    config.train.loss = "adaptive_hinge" if "hinge" in variants else "adaptive_bpr"
    config.train.num_negatives = 25 if "many" in variants else 10

    if "smoke" in variants:
        _variants.smoke(config, features=False)
    return config
