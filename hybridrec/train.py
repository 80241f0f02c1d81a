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
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from hybridrec import evaluation, objectives, optim, rundir, sharding
from hybridrec.checkpoint import Checkpointer
from hybridrec.data import history as history_lib
from hybridrec.data.interactions import Interactions
from hybridrec.data.sampling import NegativeSampler
from hybridrec.experiment import (
    BASELINES,
    ENTITIES_FILE,
    MODEL_FILE,
    ExperimentData,
    build_from_description,
    describe_model,
    display_names,
    fit_baseline,
    prepare_data,
    read_model_description,
    save_baseline,
    save_entities,
    save_model_description,
)
from hybridrec.logging import MetricWriter, flatten_config, write_plot_images
from hybridrec.metrics import MetricsError, check_metric_names
from hybridrec.optim import OptimizerConfigError, ReduceOnPlateau


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message names the epoch and step."""


# ------------------------------------------------------------------------------------ main
def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, *, new_run: bool = False
) -> dict[str, float]:
    """Trains ``config`` and evaluates it; returns the final metrics (also in metrics.json).

    Args:
      config: an experiment config (see ``experiments/configs/hybrid.py`` for every section).
      workdir: the run directory. If it holds a run of the same config, training resumes from
        its last checkpoint; if it holds a run of another config, nothing is touched and a
        ``RunDirError`` lists the differing keys (``hybridrec.rundir``).
      new_run: when ``workdir`` holds a run of another config, start a fresh run in a sibling
        directory (``<workdir>-2``, ...) instead of refusing.

    Returns:
      Flat ``{name: value}`` of the final metrics, e.g. ``val/ndcg@10``, ``val/collie_map@10``,
      ``train/loss``, ``train/samples_per_s``, ``wall_time_s``. ``run_experiment`` returns the
      run directory used as well (it differs from ``workdir`` with ``new_run``).

    Raises:
      Interrupted: Ctrl-C; the current epoch was finished and checkpointed first, so rerunning
        the same command resumes exactly.
    """
    return run_experiment(config, workdir, new_run=new_run).metrics


@dataclasses.dataclass
class Run:
    """A finished run: its directory and final metrics."""

    workdir: str
    metrics: dict[str, float]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run: the message says which epoch was checkpointed and how to resume."""


def run_experiment(
    config: ml_collections.ConfigDict, workdir: str, *, new_run: bool = False
) -> Run:
    """``train_and_evaluate`` that also returns the run directory it used (see there)."""
    start_time = time.time()
    enable_compilation_cache()
    if (config.get("mesh") or {}).get("distributed"):
        sharding.initialize_distributed()
    if not sharding.is_primary():
        return _run_other_process(config, start_time=start_time)
    # ---- workdir: compared with the stored run before anything is written
    workdir, fresh = rundir.open_run(workdir, config.to_dict(), new_run=new_run)
    # A resume on changed input files is refused here, before the run is marked running.
    input_sha256 = rundir.check_inputs(workdir, config.data.to_dict(), fresh=fresh)
    rundir.set_status(workdir, "running")
    if jax.process_count() > 1:
        sharding.share_run_dir(workdir, fresh)  # the other processes wait for it
    ckpt = writer = None
    interrupt = _DeferredInterrupt()
    try:
        with interrupt:
            ckpt = Checkpointer(workdir, max_to_keep=config.checkpoint.max_to_keep)
            _truncate_jsonl(os.path.join(workdir, "metrics.jsonl"), ckpt.latest_step() or 0)
            writer = MetricWriter(workdir)
            metrics = _train_and_evaluate(
                config, workdir, fresh, input_sha256, ckpt, writer, start_time, interrupt
            )
    except KeyboardInterrupt as exc:
        rundir.set_status(workdir, "interrupted", error=str(exc) or "KeyboardInterrupt")
        raise
    except BaseException as exc:
        rundir.set_status(workdir, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        # Also on errors: event files flushed, checkpoint threads joined.
        if writer is not None:
            writer.close()
        if ckpt is not None:
            ckpt.close()
    rundir.set_status(workdir, "completed")
    return Run(workdir=workdir, metrics=metrics)


def _run_other_process(config: ml_collections.ConfigDict, *, start_time: float) -> Run:
    """Process 1, 2, ... of a multi-process run: trains in lockstep, writes nothing of the run.

    Process 0 opens (or resumes) the run directory and tells the others where it is; every
    process then loads the same data and runs the same steps on its share of the devices.
    Orbax writes the checkpoints from all processes together (each its own shards); logs,
    metrics and every other file of the run are process 0's, so the others write theirs to a
    scratch directory that is removed at the end.
    """
    workdir, fresh = sharding.share_run_dir()
    scratch = tempfile.mkdtemp(prefix=f"hybridrec-process{jax.process_index()}-")
    ckpt = Checkpointer(workdir, max_to_keep=config.checkpoint.max_to_keep)
    writer = MetricWriter(scratch)
    try:
        metrics = _train_and_evaluate(
            config, scratch, fresh, {}, ckpt, writer, start_time, _DeferredInterrupt()
        )
    finally:
        writer.close()
        ckpt.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return Run(workdir=workdir, metrics=metrics)


# XLA:CPU hands reductions to YNNPACK by default; on the training step's small ones (the
# (B, K, D) -> (B, K) scores of sampled negatives and their gradients) its own loops were ~15%
# faster for the whole MF step at 100k users x 20k items (benchmarks/bench_step.py --flags).
# Dots stay with YNNPACK.
_CPU_STEP_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


def _compile_step(lowered):
    """Compiles the training chunk, with ``_CPU_STEP_OPTIONS`` on a CPU backend that has them."""
    if jax.default_backend() == "cpu":
        try:
            return lowered.compile(compiler_options=_CPU_STEP_OPTIONS)
        except jax.errors.JaxRuntimeError:  # an XLA without the option: compile as is
            pass
    return lowered.compile()


def enable_compilation_cache() -> str | None:
    """Turns on JAX's persistent compilation cache, unless it is configured already.

    A rerun of a config (another seed, a resume) then loads its compiled step instead of
    compiling it again (~5 s of a smoke run, more for the hybrid model). The directory is
    ``$HYBRIDREC_COMPILATION_CACHE``, else ``~/.cache/hybridrec/jax``; set the variable to
    ``off`` to disable. Returns the directory in use (None when off).
    """
    configured = jax.config.jax_compilation_cache_dir
    if configured:
        return configured
    where = os.environ.get("HYBRIDREC_COMPILATION_CACHE")
    if where == "off":
        return None
    where = where or os.path.join(os.path.expanduser("~"), ".cache", "hybridrec", "jax")
    os.makedirs(where, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", where)
    # Recommender steps compile in about a second: cache those too.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return where


class _DeferredInterrupt:
    """Turns the first Ctrl-C into a request the loop honours at the end of the epoch.

    The loop then saves a checkpoint and raises ``Interrupted``, so no finished epoch is lost
    and compilation is never torn down half-way (an interrupt inside XLA's compiler once ended in
    a segmentation fault). A second Ctrl-C interrupts at once. Only the main thread can own
    signal handlers; elsewhere (a notebook's worker thread) this does nothing.
    """

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\nCtrl-C: finishing this epoch and saving a checkpoint (Ctrl-C again to stop now)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def _train_and_evaluate(
    config, workdir, fresh, input_sha256, ckpt, writer, start_time, interrupt
) -> dict[str, float]:
    resume_epoch = ckpt.latest_step() or 0
    ec = config.eval
    if ec.get("metrics"):
        # A misspelt or missing plug-in metric fails now, not after the first epoch.
        try:
            check_metric_names(tuple(ec.metrics), tuple(ec.ks))
        except MetricsError as err:
            raise ValueError(f"config.eval.metrics: {err}") from None

    user_weighting = config.train.get("user_weighting") or 0.0
    if (
        isinstance(user_weighting, bool)
        or not isinstance(user_weighting, int | float)
        or not (0 <= user_weighting < float("inf"))
    ):
        raise ValueError(
            f"config.train.user_weighting must be a number >= 0 (the exponent of the users' "
            f"positive counts in the training weights), got {user_weighting!r}"
        )
    history_path = history_lib.check_path(config.features.get("history_path"))

    # ---- data, features and provenance
    data = prepare_data(config)
    # The splits hold every interaction the run reads: the dataset's own copy of all of them
    # (0.4 GB at 50M) is let go; its ID maps, metadata and info stay.
    data = dataclasses.replace(data, dataset=data.dataset.without_interactions())
    train = data.train
    num_items = train.num_items
    counts = dict(
        users=train.num_users,
        items=num_items,
        train=len(train),
        **{name: len(split) for name, split in data.eval_splits.items()},
    )
    record = rundir.record_provenance(
        workdir,
        fresh=fresh,
        input_sha256=input_sha256,
        dataset_info=data.dataset.info,
        counts=counts,
        notes=data.notes,
    )
    print(rundir.summary(record), flush=True)
    _write_hparams(writer, config)
    if not os.path.exists(os.path.join(workdir, ENTITIES_FILE)):
        save_entities(workdir, data)
    if config.model.name in BASELINES:
        final = _fit_baseline(config, data, writer, workdir)
        final["wall_time_s"] = time.time() - start_time
        evaluation.write_metrics_json(workdir, final)
        return final
    # Written once (a fresh run, or a resume of a run that failed before writing them): a
    # rerun never rewrites what an existing checkpoint was trained with.
    mesh = sharding.make_mesh(config.get("mesh"))
    if os.path.exists(os.path.join(workdir, MODEL_FILE)):
        # A resume builds exactly the model its checkpoint holds (ID spaces padded for the
        # mesh it started on included).
        description = read_model_description(workdir)
    else:
        description = describe_model(
            config,
            data,
            num_users=sharding.padded(train.num_users, mesh),
            num_items=sharding.padded(num_items, mesh),
        )
        save_model_description(workdir, description)
    placement = sharding.Placement(
        mesh, row_counts=(description["num_users"], description["num_items"])
    )
    if data.encoder is not None and not os.path.isdir(os.path.join(workdir, "features")):
        data.encoder.save(os.path.join(workdir, "features"))
    user_table = jax.tree.map(jnp.asarray, data.user_table)
    item_table = jax.tree.map(jnp.asarray, data.item_table)

    # ---- model, optimizer, sampler
    model = build_from_description(description)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tc = config.train
    batch_size = int(tc.batch_size)
    placement.check_batch(batch_size)
    num_batches = max(math.ceil(len(train) / batch_size), 1)
    per_dispatch = max(min(int(tc.steps_per_dispatch), num_batches), 1)
    num_chunks = math.ceil(num_batches / per_dispatch)
    total_steps = num_batches * int(tc.num_epochs)
    if num_batches < _FEW_STEPS:
        # 4,400 beer reviews at batch 1024 made 3 steps an epoch and a model below chance.
        warnings.warn(
            f"only {num_batches} optimizer step(s) an epoch ({len(train):,} training "
            f"interactions at config.train.batch_size={batch_size}): the model may barely "
            "learn; lower the batch size or raise config.train.num_epochs",
            stacklevel=2,
        )
    # Dense optax groups, or with optimizer.embeddings.sparse row-sparse updates of the embedding
    # tables (gradients of the looked-up rows only); one interface, so the step does not branch.
    opt = optim.build(config.optimizer, params, total_steps)
    opt_state = opt.init(params)
    plateau = _watcher(ReduceOnPlateau, config.optimizer.get("plateau"))
    stopper = _watcher(_EarlyStopping, config.eval.get("early_stopping"))
    # How a batch is assembled and scored: hybridrec.objectives (pairwise, sampled softmax, ...).
    objective = objectives.build(config, num_items=num_items)
    loss_kind = objective.kind
    if hasattr(objective, "check_items"):
        objective.check_items(item_table.keys())
    sampler = NegativeSampler.from_interactions(train, kind=tc.sampler, alpha=tc.get("alpha", 0.75))
    if objective.needs_ratings and train.ratings is None:
        raise ValueError(
            f"loss {tc.loss!r} needs explicit ratings; set config.data.implicit_threshold=None"
        )
    # The per-positive arrays a step gathers from. Weights only when they are not all 1 and
    # ratings only for an objective that reads them: at 50M positives each is 0.2 GB.
    # device_put shares the (aligned) host arrays' memory on a CPU: no second copy of them.
    positives = dict(
        user_ids=jax.device_put(train.user_ids), item_ids=jax.device_put(train.item_ids)
    )
    if user_weighting or train.weights is not None:
        # config.train.user_weighting: each user's share of the loss moved toward equal.
        positives["weights"] = jnp.asarray(train.user_balanced_weights(float(user_weighting)))
    if objective.needs_ratings:
        positives["ratings"] = jnp.asarray(train.ratings)
    base_key = jax.random.key(int(config.seed))

    # Row-sharded ID tables and their optimizer state; identity on one device.
    params, opt_state = placement.put_state(params), placement.put_state(opt_state)

    # ---- restore
    history: dict[str, Any] = {}
    if resume_epoch:
        params, opt_state, host = ckpt.restore(params=params, opt_state=opt_state)
        _load_host_state(host, plateau, stopper, history)
        print(f"resumed from epoch {resume_epoch} in {workdir}", flush=True)

    # ---- the jitted chunk of steps
    # Large arrays (interactions, feature tables, the sampler) are arguments, not closure
    # constants, so they are not baked into the compiled program.
    # Only the arrays the model reads are gathered per step (a feature the model does not use,
    # or a wide history, would otherwise be copied for every batch).
    user_keys = {"ids", "known", *model.user_reads}
    item_keys = {"ids", "known", *model.item_reads}
    item_keys |= objective.item_keys
    extra = {}
    if history_lib.IDS in user_keys and history_lib.IDS in data.user_table:
        # The history pooled per row of the batch, or for all users once a step when the table
        # has fewer slots (small data: hybridrec.data.history.choose_path).
        ids = np.asarray(data.user_table[history_lib.IDS])
        if history_lib.choose_path(history_path, ids, batch_size) == "all_users":
            extra[history_lib.ALL_USERS] = jax.tree.map(
                jnp.asarray,
                history_lib.all_users_arrays(ids, data.user_table[history_lib.WEIGHTS]),
            )
    device_data = placement.replicate(
        dict(
            positives=positives,
            users={k: v for k, v in user_table.items() if k in user_keys},
            items={k: v for k, v in item_table.items() if k in item_keys},
            sampler=sampler,
            key=base_key,
            **extra,
        )
    )

    def one_step(carry, xs, dd):
        params, opt_state = carry
        rows = xs["rows"]  # (B,) positions into the training arrays; -1 marks padding
        valid = rows >= 0
        rows = jnp.where(valid, rows, 0)
        batch = {k: v[rows] for k, v in dd["positives"].items()}
        batch["weights"] = (
            batch["weights"] * valid if "weights" in batch else valid.astype(jnp.float32)
        )
        neg_key, model_key = jax.random.split(xs["key"])
        batch = objective.make_batch(batch, dd, neg_key)
        loss_fn = objective.loss  # (model, batch, key) -> scalar
        args = (batch, model_key)
        loss, grads = opt.value_and_grad(loss_fn, graphdef, params, rest, *args)
        params, opt_state = opt.apply(params, opt_state, grads)
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

    if placement.mesh is None:
        run_chunk = jax.jit(run_chunk, donate_argnums=(0, 1))
    else:
        # Pinned output shardings: the state keeps its row sharding from chunk to chunk.
        run_chunk = jax.jit(
            run_chunk,
            donate_argnums=(0, 1),
            out_shardings=(
                placement.state_shardings(params),
                placement.state_shardings(opt_state),
                None,
            ),
        )

    padded_rows = num_chunks * per_dispatch * batch_size

    def epoch_rows(epoch: int) -> np.ndarray:
        """(num_chunks, per_dispatch, B) int32 shuffled training rows of an epoch, -1 = padding.

        Shuffled on the host: numpy permutes MovieLens' 49k rows in ~0.5 ms, while
        ``jax.random.permutation`` (sort-based) took ~15 ms on this CPU, a third of an epoch.
        """
        rng = np.random.default_rng([int(config.seed) & 0xFFFFFFFF, epoch])
        rows = np.full(padded_rows, -1, np.int32)
        # Shuffled in place: the permutation ``rng.permutation(len(train))`` gives, without its
        # int64 copy (0.4 GB at 50M positives).
        rows[: len(train)] = np.arange(len(train), dtype=np.int32)
        rng.shuffle(rows[: len(train)])
        return rows.reshape(num_chunks, per_dispatch, batch_size)

    # Compile ahead of time, so the compile cost is measured apart from training throughput.
    if config.get("progress", True):
        print("compiling the training step ...", end="", flush=True)
    t0 = time.time()
    run_chunk = run_chunk.lower(
        params,
        opt_state,
        placement.put_rows(np.zeros((per_dispatch, batch_size), np.int32)),  # shapes only
        np.int32(0),
        np.int32(0),
        device_data,
    )
    run_chunk = _compile_step(run_chunk)
    compile_s = time.time() - t0
    if config.get("progress", True):
        print(f" {compile_s:.1f} s", flush=True)

    # ---- evaluation
    ec = config.eval
    score_fn = _make_score_fn(graphdef)
    score_pairs = _make_pair_scorer(graphdef)
    exclude_for: dict[str, list[Interactions]] = {
        "val": [],
        "test": list(data.eval_splits.values())[:-1],
    }
    segments = tuple(ec.get("segments") or ())
    # Built once per run, so each evaluation costs only the scoring.
    exclusions_for = {
        name: evaluation.build_exclusions(train, exclude_for.get(name, []))
        for name in data.eval_splits
    }
    candidates = eval_candidates(ec.get("candidates"), train)

    per_user: dict[str, np.ndarray] = {}
    pair_curves: dict[str, Any] = {}

    def run_eval(params, split_name: str) -> dict[str, float]:
        test = data.eval_splits[split_name]
        # Several processes: every process scores with the whole (replicated) tables.
        params = placement.gather(params)
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
            exclusions=exclusions_for[split_name],
            candidates=candidates,
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
        if interrupt.requested:  # Ctrl-C before the first epoch (while compiling, say)
            raise Interrupted(f"interrupted before epoch {epoch + 1}; {workdir} is unchanged")
        t0 = time.time()
        rows = epoch_rows(epoch)
        epoch_losses = []
        for c in range(num_chunks):
            params, opt_state, chunk_losses = run_chunk(
                params,
                opt_state,
                placement.put_rows(rows[c]),
                np.int32(epoch),
                np.int32(c),
                device_data,
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
            or interrupt.requested
        ):
            ckpt.save(
                epoch + 1,
                params=params,
                opt_state=opt_state,
                host=_host_state(plateau, stopper, history),
            )
        epochs_done = epoch + 1
        if interrupt.requested:
            raise Interrupted(
                f"interrupted after epoch {epochs_done} of {int(tc.num_epochs)}; checkpoint "
                f"saved in {workdir}: rerun the same command to resume"
            )

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
    if loss_kind != "pointwise_rating" and not ec.get("ratings"):
        final.update(_reference_metrics(config, data, exclusions_for))
    if per_user:
        np.savez(os.path.join(workdir, "per_user.npz"), **per_user)
    if config.get("plots", True):
        _write_plots(
            workdir, graphdef, placement.gather(params), rest, item_table, data, pair_curves
        )
        # The same pictures in TensorBoard's Images tab.
        write_plot_images(writer, os.path.join(workdir, "plots"), epochs_done)
    test_scalars = {k: v for k, v in final.items() if k.startswith("test/")}
    if test_scalars:
        writer.write_scalars(epochs_done, test_scalars)
    evaluation.write_metrics_json(workdir, final)
    return final


# Fewer optimizer steps an epoch than this gets a warning.
_FEW_STEPS = 5
_SHOWN = ("train/loss", "val/ndcg@10", "val/recall@10", "val/collie_map@10", "val/rmse")


def _make_score_fn(graphdef):
    """A traceable full-catalogue scorer for ``evaluation.evaluate``; built once per run."""

    def score_fn(score_params, user_ids):
        params, rest, user_table, item_table = score_params
        model = nnx.merge(graphdef, params, rest)
        return model.score_all(objectives.gather(user_table, user_ids), item_table)

    return score_fn


def _make_pair_scorer(graphdef):
    """A batched (user, item) pair scorer, compiled once per run.

    The feature tables are arguments, not closure constants, so they are not baked into the
    compiled program; batches are padded to one size so nothing retraces.
    """

    @jax.jit
    def score(params, rest, user_table, item_table, users, items):
        model = nnx.merge(graphdef, params, rest)
        return model.score_pairs(
            objectives.gather(user_table, users), objectives.gather(item_table, items)
        )

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


def eval_candidates(name: str | None, train: Interactions) -> np.ndarray | None:
    """The items ranked in evaluation: None (the catalogue), or ``"cold_items"`` (items with no
    training interaction, ranked among themselves, as a new-item shelf would be)."""
    if name is None:
        return None
    if name == "cold_items":
        cold = np.flatnonzero(train.item_counts() == 0)
        if not len(cold):
            raise ValueError(
                "config.eval.candidates='cold_items' but every item has training interactions; "
                "use a cold-start split (config.split.name='cold_items')"
            )
        return cold
    raise ValueError(f"config.eval.candidates={name!r}: known values are None and 'cold_items'")


def _write_hparams(writer: MetricWriter, config: ml_collections.ConfigDict) -> None:
    """The run's config as TensorBoard hparams (file lists left out), baselines included."""
    writer.write_hparams(
        {
            k: v
            for k, v in flatten_config(config.to_dict()).items()
            if not k.startswith("data.files")
        },
        metric_tags=[f"val/{m}" for m in ("ndcg@10", "recall@10", "collie_map@10", "collie_auc")],
    )


def _fit_baseline(
    config, data: ExperimentData, writer: MetricWriter, workdir: str
) -> dict[str, float]:
    """Fits a non-neural baseline (popularity, item-kNN, EASE), evaluates it like a model and
    saves it (``baseline.npz``), so ``hybridrec.load`` serves it like any run."""
    t0 = time.time()
    baseline = fit_baseline(config, data)
    final: dict[str, float] = {"train/fit_s": time.time() - t0}
    save_baseline(workdir, baseline)
    metrics, per_user = _evaluate_baseline(baseline, data, config.eval)
    final.update(metrics)
    writer.write_scalars(0, final)
    if per_user:
        np.savez(os.path.join(workdir, "per_user.npz"), **per_user)
    return final


def _evaluate_baseline(
    baseline, data: ExperimentData, ec, exclusions: Mapping[str, Any] | None = None
) -> tuple[dict, dict]:
    """Metrics and per-user values of a fitted baseline on every evaluation split.

    ``exclusions``: per split, ``evaluation.build_exclusions`` made already (the trainer's), so
    that millions of training pairs are not sorted again for the reference baselines.
    """
    exclude: list[Interactions] = []
    metrics: dict[str, float] = {}
    per_user: dict[str, np.ndarray] = {}
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
            candidates=eval_candidates(ec.get("candidates"), data.train),
            exclusions=(exclusions or {}).get(split_name),
        )
        metrics.update(result.metrics)
        exclude.append(test)
        for name, values in result.per_user.items():
            per_user[name] = values
            per_user[f"{name}:user_ids"] = result.user_ids[name]
    return metrics, per_user


def _reference_metrics(
    config, data: ExperimentData, exclusions: Mapping[str, Any] | None = None
) -> dict[str, float]:
    """``popularity/<split>/<metric>``: the baselines named in ``config.eval.reference``,
    evaluated on the same splits, so every run shows what it must beat."""
    from hybridrec.models.baselines import get_baseline

    out = {}
    for name in config.eval.get("reference") or ():
        baseline = get_baseline(name).fit(data.train)
        metrics, _ = _evaluate_baseline(baseline, data, config.eval, exclusions)
        out.update({f"{name}/{k}": v for k, v in metrics.items() if "num_users" not in k})
    return out


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
    names = display_names(data.dataset.item_metadata)
    if names is None:
        names = np.asarray(data.train.item_map.raw_ids).astype(str)
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
    """A tqdm bar on a terminal; one plain line per epoch when the output is a file or pipe
    (a bar's carriage returns make log files unreadable); nothing with ``progress=False``."""
    if not config.get("progress", True):
        return iterable
    if not sys.stderr.isatty():
        return _EpochLines(iterable, total)
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, initial=initial, desc="epochs", unit="epoch", leave=True)


class _EpochLines:
    """``tqdm``'s interface as used by the loop, printing ``epoch 3/20 loss=... ndcg@10=...``."""

    def __init__(self, iterable, total: int):
        self.iterable, self.total = iterable, total
        self.t0 = time.time()

    def set_postfix(self, values):
        self._postfix = values

    def __iter__(self):
        for epoch in self.iterable:
            self._postfix = {}
            yield epoch
            shown = " ".join(f"{k}={v}" for k, v in self._postfix.items())
            elapsed = time.time() - self.t0
            print(f"epoch {epoch + 1}/{self.total} {shown} ({elapsed:.1f} s)", file=sys.stderr)


def print_metrics_table(metrics: Mapping[str, float]) -> None:
    """Prints the final metrics as an aligned table, with reference baselines in columns.

    ``popularity/val/ndcg@10`` is shown in a ``popularity`` column beside ``val/ndcg@10``.
    """
    references = sorted(
        {k.split("/", 1)[0] for k in metrics if k.split("/", 1)[0] in _REFERENCE_NAMES}
    )
    own = {k: v for k, v in metrics.items() if k.split("/", 1)[0] not in references}
    width = max((len(k) for k in own), default=10)

    def fmt(value):
        return f"{value:.4f}" if isinstance(value, float) else f"{value}"

    header = f"{'metric':<{width}}  {'value':>9}" + "".join(f"  {r:>10}" for r in references)
    print(f"\n{header}")
    print("-" * len(header))
    for key in sorted(own):
        line = f"{key:<{width}}  {fmt(own[key]):>9}"
        for ref in references:
            line += f"  {fmt(metrics[f'{ref}/{key}']) if f'{ref}/{key}' in metrics else '':>10}"
        print(line)


# Baselines that ``config.eval.reference`` may name (their metrics get a column of their own).
_REFERENCE_NAMES = ("popularity", "itemknn", "ease")
