"""The training loop: ``train_and_evaluate(config, workdir) -> dict`` of final metrics.

One readable function, in phases (big_vision style): workdir and logging, data, features, model
and optimizer, restore, the jitted step, evaluation, and the loop.

Why it looks the way it does:
- Recommender steps are tiny (~1 ms), so Python dispatch would dominate. The step is a pure
  ``jax.jit`` function over ``nnx.split`` state (``nnx.jit`` walks the object graph on every call;
  NOTES.md), it runs ``steps_per_dispatch`` batches per call with ``lax.scan``, and params and
  optimizer state are donated so XLA updates them in place.
- Nothing crosses from host to device per batch: the training interactions, the feature tables and
  the negative sampler live on the device, and negatives are sampled inside the step. Per chunk,
  only the chunk's shuffled row positions travel (4 bytes a row); the shuffle is a numpy
  permutation seeded by (seed, epoch), much cheaper than XLA's sort-based one on a CPU.
- Every random draw is a function of (seed, epoch, batch), so a run restored from a checkpoint
  takes exactly the same path as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from hybridrec import evaluation, losses, models, sparse
from hybridrec.checkpoint import Checkpointer
from hybridrec.data import history as history_lib
from hybridrec.data import splits
from hybridrec.data.datasets import Dataset, load_dataset
from hybridrec.data.features import EntityFeatures, FeatureEncoder
from hybridrec.data.interactions import Interactions
from hybridrec.data.sampling import NegativeSampler
from hybridrec.data.schemas import get_schema
from hybridrec.logging import MetricWriter, flatten_config, write_json
from hybridrec.models.base import apply_y_range
from hybridrec.optim import OptimizerConfigError, ReduceOnPlateau, build_optimizer

BASELINES = ("popularity", "itemknn", "ease")


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message names the epoch and step."""


# ------------------------------------------------------------------------------------ data
@dataclasses.dataclass
class ExperimentData:
    """What the loop needs from the data: the split, the feature tables and the encoder.

    Attributes:
      dataset: the loaded dataset.
      train: training interactions.
      eval_splits: ``{"val": ..., "test": ...}`` held-out interactions to evaluate on (in order).
      cold_items / cold_users: indices held out of training by a cold-start split, or None.
      encoder: the feature encoder fitted on the training entities (None without features).
      user_table / item_table: per-entity arrays (leading dim num_users / num_items): ``ids``,
        ``known`` (1 if the entity occurs in training) and the encoded feature fields.
    """

    dataset: Dataset
    train: Interactions
    eval_splits: dict[str, Interactions]
    cold_items: np.ndarray | None
    cold_users: np.ndarray | None
    encoder: FeatureEncoder | None
    user_features: EntityFeatures | None
    item_features: EntityFeatures | None
    user_table: dict[str, np.ndarray]
    item_table: dict[str, np.ndarray]


def _entity_table(num: int, counts: np.ndarray, features: EntityFeatures | None) -> dict:
    table = {"ids": np.arange(num, dtype=np.int32), "known": (counts > 0).astype(np.float32)}
    if features is not None:
        table.update({k: np.asarray(v) for k, v in features.arrays.items()})
    return table


def prepare_data(config: ml_collections.ConfigDict) -> ExperimentData:
    """Loads the dataset, splits it and encodes side features fitted on the training entities."""
    dataset = load_dataset(config.data)
    interactions = dataset.interactions
    threshold = config.data.get("implicit_threshold")
    if threshold is not None:
        # Keep the ratings' rows that pass; the split column (if any) follows the same rows.
        keep = interactions.ratings >= threshold
        if dataset.split is not None:
            dataset = dataclasses.replace(dataset, split=dataset.split[keep])
        interactions = interactions.subset(keep).replace(ratings=None)
    split_cfg = dict(config.split)
    if split_cfg.get("name") == "column":
        if dataset.split is None:
            raise ValueError("config.split.name='column' needs a dataset with a split column")
        split_cfg["labels"] = dataset.split
    split = splits.make_split(interactions, split_cfg)
    eval_splits = (
        {"val": split.test} if split.val is None else {"val": split.val, "test": split.test}
    )

    encoder = user_features = item_features = None
    schema_name = config.features.get("schema")
    if schema_name:
        schema = get_schema(schema_name)
        fields = config.features.get("fields")
        if fields:
            schema = schema.select(list(fields))
        encoder = FeatureEncoder(schema).fit_dataset(dataset, split.train)
        encoded = encoder.transform_dataset(dataset)
        item_features, user_features = encoded.get("item"), encoded.get("user")
    user_table = _entity_table(interactions.num_users, split.train.user_counts(), user_features)
    if config.features.get("user_history"):
        # Each user's training items, for the ``history`` tower (hybridrec.data.history).
        user_table.update(
            history_lib.history_arrays(
                split.train, config.features.get("history_max_items"), seed=int(config.seed)
            )
        )
    item_table = _entity_table(interactions.num_items, split.train.item_counts(), item_features)
    return ExperimentData(
        dataset=dataset,
        train=split.train,
        eval_splits=eval_splits,
        cold_items=split.cold_items,
        cold_users=split.cold_users,
        encoder=encoder,
        user_features=user_features,
        item_features=item_features,
        user_table=user_table,
        item_table=item_table,
    )


def _gather(table: Mapping[str, jax.Array], ids: jax.Array) -> dict[str, jax.Array]:
    """Rows ``ids`` (any shape) of every array of an entity table."""
    return {k: v[ids] for k, v in table.items()}


# ------------------------------------------------------------------------------------ model
def build_model(config: ml_collections.ConfigDict, data: ExperimentData) -> models.Recommender:
    """Builds ``config.model`` for the data's ID spaces and feature fields."""
    options = dict(config.model)
    name = options.pop("name")
    user_info = dict(data.user_features.fields) if data.user_features is not None else {}
    if history_lib.IDS in data.user_table:
        width = data.user_table[history_lib.IDS].shape[1]
        user_info[history_lib.FIELD] = history_lib.field_info(data.train.num_items, width)
    context = dict(
        num_users=data.train.num_users,
        num_items=data.train.num_items,
        rngs=nnx.Rngs(params=config.seed),
        user_features_info=user_info,
        item_features_info=data.item_features.fields if data.item_features is not None else {},
    )
    return models.build(name, context=context, **options)


def make_loss_fn(config: ml_collections.ConfigDict, num_items: int):
    """The per-batch loss: model, batch -> scalar, dispatching on the loss kind."""
    name = config.train.loss
    loss = losses.get_loss(name)
    options = dict(config.train.get("loss_options") or {})
    num_negatives = int(config.train.num_negatives)
    if loss.needs_num_items:
        options["num_items"] = num_items
    credit = config.train.get("metadata_credit")
    if credit and not getattr(loss, "supports_metadata", False):
        raise ValueError(f"loss {name!r} does not support config.train.metadata_credit")

    def loss_fn(model, users, pos_items, neg_items, batch, sampler, key):
        # users, pos_items: entity batches (B,); neg_items: entity batch of (B * K,) rows.
        B = batch["weights"].shape[0]
        u_key, i_key, s_key = jax.random.split(key, 3)
        u = model.encode_users(users, training=True, key=u_key)
        if loss.kind == "full_softmax":
            v_all = model.encode_items(neg_items, training=True, key=i_key)  # the whole catalogue
            scores = model.score_encoded(
                jax.tree.map(lambda a: a[:, None], u),
                jax.tree.map(lambda a: a[None], v_all),
                training=True,
                key=s_key,
            )  # (B, num_items)
            return loss(
                scores=scores, pos_item_ids=batch["item_ids"], weights=batch["weights"], **options
            )
        v_pos = model.encode_items(pos_items, training=True, key=i_key)
        # score_pairs / score_all apply y_range; train on the same scores the model is judged by.
        y_range = getattr(model, "y_range", None)
        pos_scores = apply_y_range(model.score_encoded(u, v_pos, training=True, key=s_key), y_range)
        if loss.kind == "pointwise_rating":
            return loss(
                scores=pos_scores, ratings=batch["ratings"], weights=batch["weights"], **options
            )
        v_neg = model.encode_items(neg_items, training=True, key=i_key)
        v_neg = jax.tree.map(lambda a: a.reshape(B, num_negatives, *a.shape[1:]), v_neg)
        neg_scores = apply_y_range(
            model.score_encoded(
                jax.tree.map(lambda a: a[:, None], u), v_neg, training=True, key=s_key
            ),
            y_range,
        )  # (B, K)
        kwargs = dict(pos_scores=pos_scores, neg_scores=neg_scores, weights=batch["weights"])
        if "pos_meta" in batch:
            kwargs.update(
                pos_meta=batch["pos_meta"],
                neg_meta=batch["neg_meta"],
                metadata_weights=credit["weight"],
            )
        if loss.kind == "sampled_softmax":
            neg_ids = batch["neg_item_ids"]
            kwargs.update(
                pos_log_q=sampler.log_q(batch["item_ids"], batch["user_ids"]),
                neg_log_q=sampler.log_q(neg_ids, batch["user_ids"]),
                pos_item_ids=batch["item_ids"],
                neg_item_ids=neg_ids,
            )
        return loss(**kwargs, **options)

    return loss_fn, loss.kind


# ------------------------------------------------------------------------------------ main
def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
    """Trains ``config`` and evaluates it; returns the final metrics (also in metrics.json).

    Args:
      config: an experiment config (see ``experiments/configs/hybrid.py`` for every section).
      workdir: the run directory. If it holds a checkpoint, training resumes from it.

    Returns:
      Flat ``{name: value}`` of the final metrics, e.g. ``val/ndcg@10``, ``val/collie_map@10``,
      ``train/loss``, ``train/samples_per_s``, ``wall_time_s``.
    """
    start_time = time.time()
    # ---- workdir and logging
    os.makedirs(workdir, exist_ok=True)
    write_json(os.path.join(workdir, "config.json"), config.to_dict())
    ckpt = Checkpointer(workdir, max_to_keep=config.checkpoint.max_to_keep)
    _truncate_jsonl(os.path.join(workdir, "metrics.jsonl"), ckpt.latest_step() or 0)
    writer = MetricWriter(workdir)
    try:
        return _train_and_evaluate(config, workdir, ckpt, writer, start_time)
    finally:
        # Also on errors: event files flushed, checkpoint threads joined.
        writer.close()
        ckpt.close()


def _train_and_evaluate(config, workdir, ckpt, writer, start_time) -> dict[str, float]:
    resume_epoch = ckpt.latest_step() or 0

    # ---- data and features
    data = prepare_data(config)
    train = data.train
    num_items = train.num_items
    if config.model.name in BASELINES:
        final = _fit_baseline(config, data, writer, workdir)
        final["wall_time_s"] = time.time() - start_time
        _save_entities(workdir, data)
        evaluation.write_metrics_json(workdir, final)
        return final
    if data.encoder is not None:
        data.encoder.save(os.path.join(workdir, "features"))
    user_table = jax.tree.map(jnp.asarray, data.user_table)
    item_table = jax.tree.map(jnp.asarray, data.item_table)

    # ---- model, optimizer, sampler
    model = build_model(config, data)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tc = config.train
    batch_size = int(tc.batch_size)
    num_batches = max(math.ceil(len(train) / batch_size), 1)
    per_dispatch = max(min(int(tc.steps_per_dispatch), num_batches), 1)
    num_chunks = math.ceil(num_batches / per_dispatch)
    total_steps = num_batches * int(tc.num_epochs)
    use_sparse = sparse.enabled(config.optimizer)
    if use_sparse:
        # Row-sparse updates of embedding tables (hybridrec.sparse): gradients of the rows looked
        # up in the batch only, never a dense (num_rows, dim) gradient.
        opt = sparse.build(config.optimizer, params, total_steps)
        opt_state = opt.init(params)
    else:
        opt = build_optimizer(config.optimizer, params, total_steps)
        opt_state = opt.tx.init(params)
    plateau = _watcher(ReduceOnPlateau, config.optimizer.get("plateau"))
    stopper = _watcher(_EarlyStopping, config.eval.get("early_stopping"))
    loss_fn, loss_kind = make_loss_fn(config, num_items)
    needs_negatives = loss_kind in ("pairwise", "sampled_softmax")
    credit_field = (tc.get("metadata_credit") or {}).get("field")
    if credit_field and f"{credit_field}/ids" not in item_table:
        raise ValueError(
            f"config.train.metadata_credit.field={credit_field!r} is not a categorical item "
            f"feature; item features are {sorted(k for k in item_table if k.endswith('/ids'))}"
        )
    sampler = NegativeSampler.from_interactions(train, kind=tc.sampler, alpha=tc.get("alpha", 0.75))
    num_negatives = int(tc.num_negatives)
    if loss_kind == "pointwise_rating" and train.ratings is None:
        raise ValueError(
            f"loss {tc.loss!r} needs explicit ratings; set config.data.implicit_threshold=None"
        )
    positives = dict(
        user_ids=jnp.asarray(train.user_ids),
        item_ids=jnp.asarray(train.item_ids),
        weights=jnp.asarray(train.interaction_weights),
        ratings=jnp.asarray(
            train.ratings if train.ratings is not None else np.zeros(len(train), np.float32)
        ),
    )
    base_key = jax.random.key(int(config.seed))

    # ---- restore
    history: dict[str, Any] = {}
    if resume_epoch:
        restored, host = ckpt.restore(dict(params=params, opt_state=opt_state))
        params, opt_state = restored["params"], restored["opt_state"]
        _load_host_state(host, plateau, stopper, history)
        print(f"resumed from epoch {resume_epoch} in {workdir}", flush=True)

    # ---- the jitted chunk of steps
    # Large arrays (interactions, feature tables, the sampler) are arguments, not closure
    # constants, so they are not baked into the compiled program.
    # Only the arrays the model reads are gathered per step (a feature the model does not use,
    # or a wide history, would otherwise be copied for every batch).
    user_keys = {"ids", "known", *model.user_reads}
    item_keys = {"ids", "known", *model.item_reads}
    if credit_field:
        item_keys.add(f"{credit_field}/ids")
    device_data = dict(
        positives=positives,
        users={k: v for k, v in user_table.items() if k in user_keys},
        items={k: v for k, v in item_table.items() if k in item_keys},
        sampler=sampler,
        key=base_key,
    )

    def one_step(carry, xs, dd):
        params, opt_state = carry
        rows = xs["rows"]  # (B,) positions into the training arrays; -1 marks padding
        valid = rows >= 0
        rows = jnp.where(valid, rows, 0)
        batch = {k: v[rows] for k, v in dd["positives"].items()}
        batch["weights"] = batch["weights"] * valid
        neg_key, model_key = jax.random.split(xs["key"])
        users = _gather(dd["users"], batch["user_ids"])
        if history_lib.IDS in users:
            # Leave-one-out history: predict the positive from the user's other items.
            users = history_lib.mask_target(users, batch["item_ids"])
        pos_items = _gather(dd["items"], batch["item_ids"])
        if loss_kind == "full_softmax":
            neg_items = dd["items"]
        elif needs_negatives:
            neg_ids = dd["sampler"].sample(neg_key, batch["user_ids"], num_negatives)  # (B, K)
            batch["neg_item_ids"] = neg_ids
            neg_items = _gather(dd["items"], neg_ids.reshape(-1))
            if credit_field:
                # Collie's partial credit: a negative sharing the positive's (first) category.
                first = dd["items"][f"{credit_field}/ids"][:, 0]
                batch["pos_meta"] = first[batch["item_ids"]]
                batch["neg_meta"] = first[neg_ids]
        else:
            neg_items = None

        args = (users, pos_items, neg_items, batch, dd["sampler"], model_key)
        if use_sparse:
            loss, grads = sparse.value_and_grad(loss_fn, graphdef, params, rest, *args)
            params, opt_state = opt.step(params, opt_state, grads)
            return (params, opt_state), loss

        def objective(p):
            return loss_fn(nnx.merge(graphdef, p, rest), *args)

        loss, grads = jax.value_and_grad(objective)(params)
        updates, opt_state = opt.tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, opt_state), loss

    ragged = num_chunks * per_dispatch > num_batches

    def run_chunk(params, opt_state, rows, epoch, chunk, dd):
        """``rows``: (per_dispatch, B) positions into the training arrays, -1 = padding."""
        # One key per step, derived on the device from (seed, epoch, chunk): no key arrays to
        # build and transfer per epoch.
        chunk_key = jax.random.fold_in(jax.random.fold_in(dd["key"], epoch), chunk)
        step_index = chunk * per_dispatch + jnp.arange(per_dispatch)
        xs = dict(
            rows=rows,
            key=jax.random.split(chunk_key, per_dispatch),
            has_batch=step_index < num_batches,
        )

        def step(carry, x):
            if not ragged:
                return one_step(carry, x, dd)
            # A chunk may end with empty batches (when the epoch's batches do not divide evenly
            # into chunks); cond skips them without compiling a second, shorter chunk.
            return jax.lax.cond(
                x["has_batch"],
                lambda c: one_step(c, x, dd),
                lambda c: (c, jnp.zeros((), jnp.float32)),
                carry,
            )

        (params, opt_state), chunk_losses = jax.lax.scan(step, (params, opt_state), xs)
        return params, opt_state, chunk_losses

    run_chunk = jax.jit(run_chunk, donate_argnums=(0, 1))

    padded_rows = num_chunks * per_dispatch * batch_size

    def epoch_rows(epoch: int) -> np.ndarray:
        """(num_chunks, per_dispatch, B) int32 shuffled training rows of an epoch, -1 = padding.

        Shuffled on the host: numpy permutes MovieLens' 49k rows in ~0.5 ms, while
        ``jax.random.permutation`` (sort-based) took ~15 ms on this CPU, a third of an epoch.
        """
        rng = np.random.default_rng([int(config.seed) & 0xFFFFFFFF, epoch])
        rows = np.full(padded_rows, -1, np.int32)
        rows[: len(train)] = rng.permutation(len(train))
        return rows.reshape(num_chunks, per_dispatch, batch_size)

    # Compile ahead of time, so the compile cost is measured apart from training throughput.
    t0 = time.time()
    run_chunk = run_chunk.lower(
        params, opt_state, epoch_rows(resume_epoch)[0], np.int32(0), np.int32(0), device_data
    ).compile()
    compile_s = time.time() - t0

    # ---- evaluation
    ec = config.eval
    score_fn = _make_score_fn(graphdef)
    score_pairs = _make_pair_scorer(graphdef)
    exclude_for: dict[str, list[Interactions]] = {
        "val": [],
        "test": list(data.eval_splits.values())[:-1],
    }
    segments = tuple(ec.get("segments") or ())

    per_user: dict[str, np.ndarray] = {}
    pair_curves: dict[str, Any] = {}

    def run_eval(params, split_name: str) -> dict[str, float]:
        test = data.eval_splits[split_name]
        if loss_kind == "pointwise_rating" or ec.get("ratings"):
            return evaluation.evaluate_ratings(
                lambda u, i: score_pairs(params, rest, user_table, item_table, u, i),
                test,
                split_name=split_name,
            )
        result = evaluation.evaluate(
            score_fn,
            test,
            train=train,
            exclude=exclude_for.get(split_name, []),
            ks=tuple(ec.ks),
            metrics=tuple(ec.metrics) if ec.get("metrics") else evaluation.DEFAULT_METRICS,
            mode=ec.mode,
            split_name=split_name,
            segments=segments,
            batch_size=int(ec.batch_size),
            traceable=True,
            score_params=(params, rest, user_table, item_table),
        )
        if ec.get("pair_auc"):
            if train.user_map != train.item_map:
                raise ValueError(
                    "config.eval.pair_auc is for item-pair datasets (users and items are the same "
                    "products, e.g. amazon-products or synthetic flavour 'products')"
                )
            pairs = np.stack([test.user_ids, test.item_ids], axis=1)
            pair_result = evaluation.pair_auc(
                lambda a, b: score_pairs(params, rest, user_table, item_table, a, b),
                pairs,
                num_items,
                seed=int(config.seed),
            )
            result.metrics.update(pair_result.metrics(split_name))
            pair_curves[split_name] = pair_result
        # Per-user values of the latest evaluation of each split, for paired tests between runs.
        for name, values in result.per_user.items():
            per_user[name] = values
            per_user[f"{name}:user_ids"] = result.user_ids[name]
        return dict(result.metrics)

    # ---- hyperparameters
    writer.write_hparams(
        {
            k: v
            for k, v in flatten_config(config.to_dict()).items()
            if not k.startswith("data.files")
        },
        metric_tags=[f"val/{m}" for m in ("ndcg@10", "recall@10", "collie_map@10", "collie_auc")],
    )

    # ---- the loop
    metrics: dict[str, float] = dict(history.get("last_metrics", {}))
    epochs_done = resume_epoch
    samples = 0
    train_time = 0.0
    progress = _progress(
        range(resume_epoch, int(tc.num_epochs)),
        total=int(tc.num_epochs),
        initial=resume_epoch,
        config=config,
    )
    if resume_epoch == 0 and loss_kind != "pointwise_rating":
        # The untrained model, so learning curves start at step 0, and so a misspelt plateau or
        # early-stopping metric fails now rather than after the first epoch.
        initial = run_eval(params, "val")
        for watcher, error in ((plateau, OptimizerConfigError), (stopper, ValueError)):
            if watcher is not None and watcher.metric not in initial:
                raise error(
                    f"{type(watcher).__name__.lstrip('_')} metric {watcher.metric!r} is not among "
                    f"the evaluation metrics: {sorted(initial)}"
                )
        writer.write_scalars(0, initial)
    for epoch in progress:
        if stopper is not None and stopper.stopped:
            break
        t0 = time.time()
        rows = epoch_rows(epoch)
        epoch_losses = []
        for c in range(num_chunks):
            params, opt_state, chunk_losses = run_chunk(
                params, opt_state, rows[c], np.int32(epoch), np.int32(c), device_data
            )
            epoch_losses.append(chunk_losses)
        chunk_losses = np.concatenate([np.asarray(x) for x in epoch_losses])[:num_batches]
        train_time += time.time() - t0
        samples += len(train)
        if not np.all(np.isfinite(chunk_losses)):
            bad = int(np.flatnonzero(~np.isfinite(chunk_losses))[0])
            raise TrainingError(
                f"non-finite loss {chunk_losses[bad]} at epoch {epoch + 1}, step {bad + 1} of "
                f"{num_batches} (global step {epoch * num_batches + bad + 1}); lower the learning "
                "rate, clip gradients (config.optimizer.clip_norm) or check the data"
            )
        scalars = {
            "train/loss": float(chunk_losses.mean()),
            "train/lr_scale": float(opt.lr_scale(opt_state)),
            "train/epoch_time_s": time.time() - t0,
        }
        last = epoch + 1 == int(tc.num_epochs)
        if (epoch + 1) % int(ec.every_epochs) == 0 or last:
            scalars.update(run_eval(params, "val"))
            if plateau is not None:
                opt_state = opt.set_lr_scale(opt_state, plateau.update(scalars))
            if stopper is not None:
                stopper.update(scalars, epoch + 1)
        writer.write_scalars(epoch + 1, scalars)
        metrics.update(scalars)
        history["last_metrics"] = {k: float(v) for k, v in metrics.items()}
        if hasattr(progress, "set_postfix"):
            progress.set_postfix(
                {k.split("/", 1)[1]: f"{v:.4f}" for k, v in scalars.items() if k in _SHOWN}
            )
        if (
            (epoch + 1) % int(config.checkpoint.every_epochs) == 0
            or last
            or (stopper and stopper.stopped)
        ):
            ckpt.save(
                epoch + 1,
                dict(params=params, opt_state=opt_state),
                host=_host_state(plateau, stopper, history),
            )
        epochs_done = epoch + 1

    # ---- final evaluation
    final = {k: v for k, v in metrics.items() if k.startswith(("train/loss", "val/"))}
    if "val/num_users_evaluated" not in final and loss_kind != "pointwise_rating":
        final.update(run_eval(params, "val"))
    if "test" in data.eval_splits:
        final.update(run_eval(params, "test"))
    final["train/epochs"] = float(epochs_done)
    if train_time > 0:
        final["train/samples_per_s"] = samples / train_time
    final["train/compile_s"] = compile_s
    final["wall_time_s"] = time.time() - start_time
    if per_user:
        np.savez_compressed(os.path.join(workdir, "per_user.npz"), **per_user)
    _save_entities(workdir, data)
    if config.get("plots", True):
        _write_plots(workdir, graphdef, params, rest, item_table, data, pair_curves)
    test_scalars = {k: v for k, v in final.items() if k.startswith("test/")}
    if test_scalars:
        writer.write_scalars(epochs_done, test_scalars)
    evaluation.write_metrics_json(workdir, final)
    return final


_SHOWN = ("train/loss", "val/ndcg@10", "val/recall@10", "val/collie_map@10", "val/rmse")


def _make_score_fn(graphdef):
    """A traceable full-catalogue scorer for ``evaluation.evaluate``; built once per run."""

    def score_fn(score_params, user_ids):
        params, rest, user_table, item_table = score_params
        model = nnx.merge(graphdef, params, rest)
        return model.score_all(_gather(user_table, user_ids), item_table)

    return score_fn


def _make_pair_scorer(graphdef):
    """A batched (user, item) pair scorer, compiled once per run.

    The feature tables are arguments, not closure constants, so they are not baked into the
    compiled program; batches are padded to one size so nothing retraces.
    """

    @jax.jit
    def score(params, rest, user_table, item_table, users, items):
        model = nnx.merge(graphdef, params, rest)
        return model.score_pairs(_gather(user_table, users), _gather(item_table, items))

    def score_pairs(params, rest, user_table, item_table, user_ids, item_ids) -> np.ndarray:
        out = []
        step = 8192
        for start in range(0, len(user_ids), step):
            u = np.asarray(user_ids[start : start + step], np.int32)
            i = np.asarray(item_ids[start : start + step], np.int32)
            pad = step - len(u)
            u, i = np.pad(u, (0, pad)), np.pad(i, (0, pad))
            out.append(np.asarray(score(params, rest, user_table, item_table, u, i))[: step - pad])
        return np.concatenate(out)

    return score_pairs


def _fit_baseline(
    config, data: ExperimentData, writer: MetricWriter, workdir: str
) -> dict[str, float]:
    """Fits a non-neural baseline (popularity, item-kNN, EASE) and evaluates it like a model."""
    from hybridrec.models.baselines import get_baseline

    options = dict(config.model)
    name = options.pop("name")
    t0 = time.time()
    baseline = get_baseline(name, **options).fit(data.train)
    final: dict[str, float] = {"train/fit_s": time.time() - t0}
    exclude: list[Interactions] = []
    per_user: dict[str, np.ndarray] = {}
    ec = config.eval
    for split_name, test in data.eval_splits.items():
        result = evaluation.evaluate(
            baseline.score,
            test,
            train=data.train,
            exclude=exclude,
            ks=tuple(ec.ks),
            metrics=tuple(ec.metrics) if ec.get("metrics") else evaluation.DEFAULT_METRICS,
            mode=ec.mode,
            split_name=split_name,
            segments=tuple(ec.get("segments") or ()),
            batch_size=int(ec.batch_size),
        )
        final.update(result.metrics)
        exclude.append(test)
        for name, values in result.per_user.items():
            per_user[name] = values
            per_user[f"{name}:user_ids"] = result.user_ids[name]
    writer.write_scalars(0, final)
    if per_user:
        np.savez_compressed(os.path.join(workdir, "per_user.npz"), **per_user)
    return final


def _watcher(cls, options):
    """``cls(**options)``, or None when ``options`` is None or its ``metric`` is unset.

    The configs keep the watchers' fields with ``metric=None`` (off), so that a run can switch
    one on from the command line (``--config.eval.early_stopping.metric=val/ndcg@10``).
    """
    if not options or options.get("metric") is None:
        return None
    return cls(**options)


@dataclasses.dataclass
class _EarlyStopping:
    """Stops when ``metric`` has not improved for ``patience`` evaluations."""

    metric: str = "val/ndcg@10"
    patience: int = 3
    mode: str = "max"
    best: float = float("nan")
    best_epoch: int = 0
    bad_evals: int = 0
    stopped: bool = False

    def update(self, metrics: Mapping[str, float], epoch: int) -> None:
        if self.metric not in metrics:
            raise ValueError(
                f"early-stopping metric {self.metric!r} is not among the evaluation metrics "
                f"{sorted(metrics)}"
            )
        value = float(metrics[self.metric])
        better = math.isnan(self.best) or (
            value > self.best if self.mode == "max" else value < self.best
        )
        if better:
            self.best, self.best_epoch, self.bad_evals = value, epoch, 0
        else:
            self.bad_evals += 1
            self.stopped = self.bad_evals >= self.patience


def _host_state(plateau, stopper, history) -> dict[str, Any]:
    """Host-side trainer state (JSON), saved in the checkpoint beside the arrays."""
    state: dict[str, Any] = {"history": history}
    if plateau is not None:
        state["plateau"] = plateau.state_dict()
    if stopper is not None:
        state["stopper"] = {
            k: getattr(stopper, k) for k in ("best", "best_epoch", "bad_evals", "stopped")
        }
    return json.loads(json.dumps(state))


def _load_host_state(state, plateau, stopper, history) -> None:
    history.update(state.get("history", {}))
    if plateau is not None and "plateau" in state:
        plateau.load_state_dict(state["plateau"])
    if stopper is not None and "stopper" in state:
        for key, value in state["stopper"].items():
            setattr(stopper, key, value)


def _truncate_jsonl(path: str, last_step: int) -> None:
    """On resume, drops log records of epochs after the checkpoint (they will be redone)."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        keep = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= last_step]
    with open(path, "w") as f:
        f.writelines(keep)


def _raw(ids: np.ndarray) -> np.ndarray:
    return ids.astype(str) if ids.dtype == object else ids


def _display_names(metadata) -> np.ndarray | None:
    """A human-readable name per entity (title, beer name), when the metadata has one."""
    if metadata is None:
        return None
    for column in ("title", "movie_title", "beer_name", "name"):
        if column in metadata.columns:
            return metadata[column].fillna("").astype(str).to_numpy(dtype=str)
    return None


def _save_entities(workdir: str, data: ExperimentData) -> None:
    """``entities.npz``: raw IDs, names, the ``known`` masks and every entity's feature arrays.

    With ``features/`` (the fitted encoder) and the checkpoint, this is all ``hybridrec.load``
    needs: no dataset is read again to recommend, and a new item is encoded from raw metadata.
    """
    arrays = {
        "user_raw_ids": _raw(data.train.user_map.raw_ids),
        "item_raw_ids": _raw(data.train.item_map.raw_ids),
        "user_known": data.user_table["known"],
        "item_known": data.item_table["known"],
        "item_counts": data.train.item_counts(),
        # The training interactions, so recommendations can exclude what a user has seen.
        "train_user_ids": data.train.user_ids,
        "train_item_ids": data.train.item_ids,
    }
    for side, table in (("user", data.user_table), ("item", data.item_table)):
        for key, value in table.items():
            if key not in ("ids", "known"):
                arrays[f"{side}:{key}"] = value
    for side, metadata in (
        ("user", data.dataset.user_metadata),
        ("item", data.dataset.item_metadata),
    ):
        names = _display_names(metadata)
        if names is not None:
            arrays[f"{side}_names"] = names
    np.savez_compressed(os.path.join(workdir, "entities.npz"), **arrays)


def _write_plots(workdir, graphdef, params, rest, item_table, data, pair_curves) -> None:
    """Learning curves, ROC/PR for pair tasks, item embeddings (PCA) and item biases."""
    from hybridrec import plots

    out = os.path.join(workdir, "plots")
    for split_name, result in pair_curves.items():
        curve = dict(
            fpr=result.fpr,
            tpr=result.tpr,
            precision=result.precision,
            recall=result.recall,
            auc=result.auc,
            average_precision=result.average_precision,
        )
        plots.plot_roc_pr(curve, os.path.join(out, f"{split_name}_roc_pr.png"))
    try:
        plots.plot_learning_curves(workdir, os.path.join(out, "learning_curves.png"))
    except ValueError:
        pass  # nothing logged yet (e.g. zero epochs)
    model = nnx.merge(graphdef, params, rest)
    if not getattr(model, "factorised", False):
        return
    names = _display_names(data.dataset.item_metadata)
    if names is None:
        names = _raw(data.train.item_map.raw_ids).astype(str)
    known = data.item_table["known"] > 0
    counts = data.train.item_counts()
    items = jax.tree.map(jnp.asarray, item_table)
    vectors = np.asarray(model.item_repr(items))[known]
    biases = np.asarray(model.item_bias(items))[known]
    if vectors.shape[0] >= 3 and vectors.shape[1] >= 2:
        plots.plot_item_embeddings(
            vectors,
            names[known],
            os.path.join(out, "item_embeddings.png"),
            popularity=counts[known],
        )
    if np.any(biases != 0):
        plots.plot_item_biases(biases, names[known], os.path.join(out, "item_biases.png"))


def _progress(iterable, *, total: int, initial: int, config):
    if not config.get("progress", True):
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, initial=initial, desc="epochs", unit="epoch", leave=True)


def print_metrics_table(metrics: Mapping[str, float]) -> None:
    """Prints the final metrics as an aligned two-column table."""
    width = max((len(k) for k in metrics), default=10)
    print(f"\n{'metric':<{width}}  value")
    print(f"{'-' * width}  ---------")
    for key in sorted(metrics):
        value = metrics[key]
        print(
            f"{key:<{width}}  {value:.4f}"
            if isinstance(value, float)
            else f"{key:<{width}}  {value}"
        )
