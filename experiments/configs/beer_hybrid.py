"""Hybrid model on beer reviews: ID + style + brewery + ABV + name item towers.

Items (beers) are the sum of an ID embedding and four metadata towers read from the
BeerAdvocate columns (schema ``beer-advocate`` in ``hybridrec/data/schemas.py``): ``beer_style``
(categorical), ``brewery`` (categorical over ``brewery_id``; breweries of a single training beer
share the unknown bucket), ``beer_abv`` (numeric, standardized, with a missing indicator) and
``beer_name`` (TF-IDF bag of name words). Users have no metadata there: an ID tower only. ID
dropout 0.1 on items, adaptive hinge over 10 negatives, reviews with an overall score >= 4 are
positives, per-user 10% validation (seed 42); otherwise ``hybrid.py``.

By default it runs on the synthetic beer flavour (``make_synthetic(flavour="beer")``: the same
columns, 2,000 users, 1,500 beers, ratings in half steps with BeerAdvocate's histogram), since
BeerAdvocate cannot be downloaded here. For the real file (Kaggle's ``beer_reviews.csv``, 1.5M
reviews; see ``data_cards/beer_advocate.md``)::

    python -m experiments.run --config beer_hybrid.py \
        --config.data.name=beer-advocate --config.data.path=beer_reviews.csv

Command (from the repository root)::

    python -m experiments.run --config beer_hybrid.py

Expected here (2-core CPU, load ~2; 3-5x longer on a busy machine): about 20 s for the command
on the synthetic data (15 s inside ``train_and_evaluate``). Measured (seed 0):
val/collie_map@10 0.0425, collie_auc 0.8643, ndcg@10 0.1633 (filtered). ``:cold``:
val/cold_items/auc 0.7131, cold_items/ndcg@10 0.0006 (cold beers ranked against the whole warm
catalogue).
Variants: ``cold`` (10% of the beers held out of training, val/cold_items metrics),
``smoke`` (tiny synthetic beer data, for tests).
"""

import ml_collections
from ml_collections import config_dict

from experiments.configs import _variants, hybrid


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = _variants.variants(arg, ("cold",), "beer_hybrid.py")
    config = hybrid.get_config()
    _variants.untuned_hybrid_training(config)

    # Data: synthetic beer by default; --config.data.name=beer-advocate --config.data.path=...
    config.data.name = "synthetic"
    config.data.path = config_dict.placeholder(str)
    config.data.synthetic = dict(
        flavour="beer",
        num_users=2000,
        num_items=1500,
        num_interactions=80_000,
        explicit=True,
        seed=0,
    )
    config.data.implicit_threshold = 4.0  # review_overall >= 4
    # Users with a single positive review stay whole in training (force_split).
    config.split = dict(name="stratified", test_p=0.1, seed=42, force_split=True)
    if "cold" in variants:
        config.split = dict(name="cold_items", test_p=0.1, seed=42)
        config.eval.segments = ("cold_items",)

    # Features: the BeerAdvocate columns (the synthetic flavour has the same ones)
    config.features.schema = "beer-advocate"

    # Model
    config.model.user_towers = dict(id=dict(tower="ids"))
    config.model.item_towers = dict(
        id=dict(tower="ids"),
        style=dict(tower="categorical", field="beer_style"),
        brewery=dict(tower="categorical", field="brewery"),
        abv=dict(tower="numeric", field="beer_abv"),
        name=dict(tower="text", field="beer_name"),
    )

    if "smoke" in variants:
        _variants.smoke(config, flavour="beer", explicit=True)
        config.data.implicit_threshold = 3.0
        config.features.schema = "beer-advocate"
    return config
