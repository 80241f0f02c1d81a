"""Related-product pairs (the Amazon item-to-item task) with graded labels and popularity negatives.

"Users" are query products and items the products related to them (``hybridrec.data.datasets.
amazon``): a pair's interaction weight grades it, 1.2 bought together, 1.0 also bought, 0.5 also
viewed (summed over the relationships linking the pair), and the trainer uses it as the
per-example loss weight. Negatives are drawn by popularity (count^0.75) and the loss is a
sampled softmax with the log-Q correction, so the popularity of the negatives does not bias the
scores. Items: ID + TF-IDF title/description words + brand + categories + log price towers;
query products have only an ID tower (the trainer encodes no user-side features for this task).
Evaluation: full ranking of the related products per query, plus ``val/pair_auc`` and
``val/pair_average_precision``: held-out pairs against as many random pairs, as in Eugene Yan's
product-pair baseline, with ROC / PR curves under ``plots/``.

Split: 10% of the undirected pairs (seed 42; ``splits.item_pair_split``). Both directions of a
pair are stored, and both go to the same side: a row-level split would leave the mirror (b, a)
of a held-out (a, b) in training. The ``cold`` variant holds out 10% of the products as items
instead (every row *to* a held-out product; their own query rows stay in training, since query
products have only an ID tower), scored from metadata only.

By default it runs on the synthetic products flavour (same columns; 3,000 products); for a real
McAuley metadata file::

    python -m experiments.run --config item_pairs.py \
        --config.data.name=amazon-products --config.data.path=meta_X.json.gz

Command (from the repository root)::

    python -m experiments.run --config item_pairs.py

Expected here (2-core CPU, load ~2; 3-5x longer on a busy machine): about 29 s for the command
on the synthetic data (23 s inside ``train_and_evaluate``). Measured (seed 0, 5 epochs):
val/pair_auc 0.8202, pair_average_precision 0.8109, ndcg@10 0.0949, auc 0.8355 (filtered);
``:bpr`` pair_auc 0.8075, ndcg@10 0.0455; ``:cold`` pair_auc 0.7673, cold_items/auc 0.7644.
Variants: ``bpr`` (BPR over the popularity negatives instead of the sampled softmax), ``cold``,
``smoke`` (tiny synthetic products, for tests).
"""

import ml_collections
from ml_collections import config_dict

from experiments.configs import _variants, hybrid


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = _variants.variants(arg, ("bpr", "cold"), "item_pairs.py")
    config = hybrid.get_config()
    _variants.untuned_hybrid_training(config)

    # Data: synthetic products by default; --config.data.name=amazon-products --config.data.path=
    config.data.name = "synthetic"
    config.data.path = config_dict.placeholder(str)
    config.data.max_lines = config_dict.placeholder(int)
    config.data.synthetic = dict(
        flavour="products", num_items=3000, num_interactions=40_000, seed=0
    )
    config.data.implicit_threshold = None  # graded weights, no ratings
    config.split = dict(name="item_pairs", test_p=0.1, seed=42)
    if "cold" in variants:
        config.split = dict(name="cold_items", test_p=0.1, seed=42)
        config.eval.segments = ("cold_items",)

    # Features: the Amazon product columns (the synthetic flavour has the same ones)
    config.features.schema = "amazon-products"

    # Model
    config.model.user_towers = dict(id=dict(tower="ids"))
    config.model.item_towers = dict(
        id=dict(tower="ids"),
        text=dict(tower="text", field="text"),
        brand=dict(tower="categorical", field="brand"),
        categories=dict(tower="categorical", field="categories", pooling="mean"),
        price=dict(tower="numeric", field="price"),
    )

    # Training: popularity negatives, softmax with log-Q (or BPR), weights = graded labels
    config.train.sampler = "popularity"
    config.train.alpha = 0.75
    config.train.loss = "bpr" if "bpr" in variants else "sampled_softmax"
    config.train.num_negatives = 20
    # Held-out pairs peak early (pair AUC at epoch 4-5, ranking at 2-3), then the ID
    # embeddings overfit the training pairs.
    config.train.num_epochs = 5

    # Optimizer: reduce on a plateau of the pair AUC
    config.optimizer.plateau.metric = "val/pair_auc"

    # Evals: ranking metrics of the filtered protocol (Collie's unfiltered ones cost an extra
    # pass over 3,000 queries x 3,000 products per evaluation) and the pair AUC
    config.eval.mode = "filtered"
    config.eval.pair_auc = True

    if "smoke" in variants:
        _variants.smoke(config, flavour="products")
        config.features.schema = "amazon-products"
        config.split = dict(name="item_pairs", test_p=0.2, seed=0)
    return config
