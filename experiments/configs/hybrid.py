"""Hybrid model on MovieLens 100K: ID + genre + year + title + Freebase item towers, ID + demographics user towers.

The main job of hybridrec. Items are represented by the sum of an ID embedding and metadata
towers (genres, release year, TF-IDF bags of title words and of Freebase facts); users by an ID
embedding plus age, gender and occupation. ID dropout makes the metadata towers carry the signal
on their own, which is what lets the model score cold items.

Protocol: Collie's (ratings >= 4 are positives; 10% of each user's positives held out for
validation with seed 42: 49,426 / 5,949), metrics in both modes (filtered and Collie-compatible).

Command (from the repository root)::

    python -m experiments.run --config hybrid.py

Expected here (2-core CPU): about a minute; see the README's results table for the metrics.
Variants: ``hybrid.py:smoke`` (a few steps on tiny synthetic data, for tests).
"""

import ml_collections
from ml_collections.config_dict import placeholder


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.progress = True

    # Data
    config.data = dict(
        name="movielens-100k",
        path=None,  # a directory or zip of MovieLens 100K; None: cache, then download
        download=None,  # None: allowed unless HYBRIDREC_NO_DOWNLOAD=1
        implicit_threshold=4.0,  # ratings >= 4 are positives; None keeps explicit ratings
        max_lines=None,
        synthetic=dict(),
        files=dict(),
    )
    config.split = dict(name="collie", test_p=0.1, seed=42)

    # Features (fitted on the training entities only)
    config.features = dict(schema="movielens-100k", fields=None)

    # Model
    config.model = dict(
        name="hybrid",
        embedding_dim=32,
        combiner="sum",
        id_dropout=0.1,
        user_id_dropout=0.0,
        user_towers=dict(
            id=dict(tower="ids"),
            age=dict(tower="numeric", field="age"),
            gender=dict(tower="categorical", field="gender"),
            occupation=dict(tower="categorical", field="occupation"),
        ),
        item_towers=dict(
            id=dict(tower="ids"),
            genres=dict(tower="categorical", field="genres", pooling="mean"),
            year=dict(tower="numeric", field="release_year"),
            title=dict(tower="text", field="title"),
            freebase=dict(tower="text", field="freebase"),
        ),
    )

    # Training
    config.train = dict(
        loss="adaptive_hinge",
        loss_options=dict(),
        num_negatives=10,
        sampler="uniform_exact",
        alpha=0.75,
        batch_size=1024,
        num_epochs=20,
        steps_per_dispatch=64,
    )

    # Optimizer: groups follow variable types (hybridrec.optim)
    config.optimizer = dict(
        # sparse: "sgd" | "adagrad" | "lazy_adam" | True for row-sparse updates of large tables
        embeddings=dict(name="adam", learning_rate=1e-2, sparse=placeholder(str)),
        biases=dict(name="sgd", learning_rate=1e-2),
        dense=dict(name="adam", learning_rate=1e-3),
        schedule=dict(name="constant"),
        clip_norm=None,
        plateau=dict(metric="val/collie_map@10", mode="max", factor=0.1, patience=1),
    )

    # Evals
    config.eval = dict(
        every_epochs=1,
        ks=(10,),
        metrics=None,  # None: all ranking metrics
        mode="both",  # filtered and Collie-compatible
        segments=(),
        batch_size=1024,
        early_stopping=None,
        ratings=False,  # RMSE/MAE instead of ranking (explicit ratings)
        pair_auc=False,  # ROC-AUC / PR of held-out pairs vs. random pairs (item-pair task)
    )
    config.checkpoint = dict(every_epochs=5, max_to_keep=2)

    if arg == "smoke":
        smoke(config)
    elif arg:
        raise ValueError(f"unknown variant {arg!r} of hybrid.py; known: smoke")
    return config


def smoke(config: ml_collections.ConfigDict) -> None:
    """A few steps on tiny synthetic movies data: the same code path, seconds to run."""
    config.data.name = "synthetic"
    config.data.synthetic = dict(
        num_users=60, num_items=40, num_interactions=1200, flavour="movies", seed=0
    )
    config.data.implicit_threshold = None
    config.features.schema = "synthetic-movies"
    config.split = dict(name="stratified", test_p=0.2, seed=0)
    config.model.embedding_dim = 8
    config.train.num_epochs = 2
    config.train.batch_size = 128
    config.train.num_negatives = 3
    config.train.steps_per_dispatch = 4
    config.eval.batch_size = 64
    config.checkpoint.every_epochs = 1
    config.progress = False
