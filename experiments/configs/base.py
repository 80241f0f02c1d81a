"""The untuned protocol every shipped config starts from: data, split, evaluation, logging.

MovieLens 100K under Collie's protocol (ratings >= 4 are positives; 10% of each user's positives
held out for validation with seed 42), full-ranking metrics in both modes (filtered and
Collie-compatible), checkpoints every 5 epochs, every device JAX sees. The model and its training
are textbook defaults, not tuned for anything: matrix factorization (dimension 32) with BPR on
one uniform negative, Adam on embeddings and SGD on biases at constant rates, 10 epochs.

Experiment configs derive from it and say what they change, instead of undoing another
experiment's tuning: ``hybrid.py`` (the tuned hybrid model), ``mf.py`` (Collie's MF setup), and
the configs derived from those.

Command::

    python -m experiments.run --config base.py

Expected here (2-core CPU): about 17 s. Measured (seed 0, validation): filtered ndcg@10 0.1932,
auc 0.9278; collie_map@10 0.0390, collie_auc 0.9108 (popularity: 0.1109, 0.8776; 0.0337,
0.7864). What the tuned configs add to it is in the README's results table.

Variants: ``base.py:smoke`` (a few steps on tiny synthetic data, for tests).
"""

import ml_collections
from ml_collections.config_dict import placeholder


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.progress = True
    config.plots = True  # learning curves, item embeddings and biases under <workdir>/plots

    # Data
    config.data = dict(
        name="movielens-100k",
        path=placeholder(str),  # a directory or zip of MovieLens 100K; None: cache, then download
        download=placeholder(bool),  # None: allowed unless HYBRIDREC_NO_DOWNLOAD=1
        implicit_threshold=4.0,  # ratings >= 4 are positives; None keeps explicit ratings
        max_lines=placeholder(int),
        synthetic=dict(),
        files=dict(),
        options=dict(),  # keyword arguments of your own loader (name="my_pkg.data.load_mine")
    )
    config.split = dict(name="collie", test_p=0.1, seed=42)

    # Features (fitted on the training entities only)
    config.features = dict(
        schema="movielens-100k",
        # None: every field of the schema. A tuple selects schema fields by name; a dict
        # declares fields over the data's own columns (hybridrec.data.features.FieldSpec):
        # fields=dict(genres=dict(kind="categorical", column="genre", multi_valued=True)),
        # and a declared field of a schema field's name replaces it.
        fields=None,
        # Each user's training items as a feature, for the history tower (hybridrec.data.history)
        user_history=False,
        # None: all (MovieLens 100K: at most 340 a user). Cap it on larger data: every step
        # gathers (batch_size, width) history slots, and width is the busiest user's count.
        history_max_items=placeholder(int),
        # How training pools the histories: "batch" (each row's slots), "all_users" (every user's
        # once a step, minus each row's target), "auto": all_users while the table has at most
        # half of batch_size x width slots (hybridrec.data.history.choose_path).
        history_path="auto",
    )

    # Model: plain matrix factorization with biases (hybridrec.models; a config replaces it)
    config.model = dict(name="mf", embedding_dim=32)

    # Training
    config.train = dict(
        # How batches are built and scored (hybridrec.objectives); None: the loss's own kind.
        objective=placeholder(str),
        loss="bpr",
        loss_options=dict(),
        num_negatives=1,
        sampler="uniform_exact",
        alpha=0.75,
        batch_size=1024,
        num_epochs=10,
        steps_per_dispatch=64,
        # Each positive weighs n_u ** -user_weighting (n_u: its user's training positives),
        # rescaled to the same total: 0 weighs every positive alike, so the heaviest users
        # dominate the loss; 1 gives every user the same total weight
        # (Interactions.user_balanced_weights).
        user_weighting=0.0,
    )

    # Optimizer: groups follow variable types (hybridrec.optim)
    config.optimizer = dict(
        # sparse=True: row-sparse updates of the ID tables, the row-sparse counterpart of name
        # (sgd -> sgd, adagrad -> adagrad, adam/adamw -> lazy Adam; hybridrec.optim.build);
        # chosen by itself once a table has sparse_above_rows rows (dense is faster below), and
        # then with the large_tables optimizer (None: the counterpart of name): row-wise Adagrad
        # (one accumulator per row, no deduplication of the batch's IDs), which at 100k users x
        # 20k items ran the MF step ~1.3x faster than lazy Adam and reached a higher NDCG@10 after 2
        # epochs (0.113 vs 0.087; benchmarks/bench_scale.py). MovieLens-sized tables stay dense.
        embeddings=dict(
            name="adam",
            learning_rate=1e-2,
            sparse=False,
            sparse_above_rows=50_000,
            large_tables=dict(name="adagrad", sparse="rowwise_adagrad", learning_rate=0.1),
        ),
        # Plain SGD: beside row-sparse embeddings the bias rows are updated as rows too (exactly
        # dense SGD; sparse=False keeps them dense, hybridrec.optim.build_row_sparse).
        biases=dict(name="sgd", learning_rate=1e-2),
        dense=dict(name="adam", learning_rate=1e-3),
        schedule=dict(name="constant"),
        clip_norm=placeholder(float),
        # Reduce-on-plateau, off while metric is None (e.g. "val/collie_map@10").
        plateau=dict(metric=placeholder(str), mode="max", factor=0.1, patience=1),
    )

    # Evals
    config.eval = dict(
        every_epochs=1,
        ks=(10,),
        metrics=placeholder(tuple),  # None: all ranking metrics
        mode="both",  # filtered and Collie-compatible
        segments=(),
        batch_size=1024,
        # Off while metric is None (e.g. "val/ndcg@10"); patience counts evaluations.
        early_stopping=dict(metric=placeholder(str), mode="max", patience=3),
        ratings=False,  # RMSE/MAE instead of ranking (explicit ratings)
        pair_auc=False,  # ROC-AUC / PR of held-out pairs vs. random pairs (item-pair task)
        # Items ranked: None = the catalogue; "cold_items" = items without training
        # interactions, among themselves (with config.split.name="cold_items")
        candidates=placeholder(str),
        # Baselines evaluated beside the model on the same splits (popularity/val/ndcg@10, ...)
        reference=("popularity",),
    )
    config.checkpoint = dict(every_epochs=5, max_to_keep=2)

    # Devices (hybridrec.sharding): -1 = every device JAX sees; ID tables sharded by rows,
    # batches split across devices. distributed=True: jax.distributed.initialize() first.
    config.mesh = dict(num_devices=-1, distributed=False)

    if arg == "smoke":
        smoke(config)
    elif arg:
        raise ValueError(f"unknown variant {arg!r} of base.py; known: smoke")
    return config


def smoke(config: ml_collections.ConfigDict) -> None:
    """A few steps on tiny synthetic movies data, the same code path: about 15 s on 2 CPU cores
    with the compilation cache warm (the second run of a config), 35 s cold."""
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
