"""Where the training step's time goes at scale: the trainer's step, piece by piece.

Builds the pieces ``hybridrec.train`` builds (``mf`` model, pairwise objective with ``mf.py``'s
loss, ``optim.build``, ``NegativeSampler``) on ``bench_scale``'s synthetic shape, and times
jitted, buffer-donating ``lax.scan`` chunks of ``--steps`` steps of:

- ``sample``: the negative sampler alone (the user IDs of random training rows);
- ``step``: the whole step (gathers, sampling, loss, row gradients, optimizer update), compiled
  as the trainer compiles it, for each ``--optimizers`` choice of the embeddings' optimizer and
  each ``--samplers`` kind; ``--flags`` adds variants compiled with other XLA options, timed in
  turn with the trainer's (paired, so that a busy machine slows all alike).

Each figure is the median of ``--repeats`` timed calls after a warm-up call; positives/s is
``steps * batch / time``. For a per-operation profile, wrap the timed calls in
``jax.profiler.trace(dir, create_perfetto_trace=True)`` and sum the events by name.

    python benchmarks/bench_step.py --shape medium
    python benchmarks/bench_step.py --optimizers rowwise_adagrad,lazy_adam,sgd \
        --samplers uniform_exact,uniform
    python benchmarks/bench_step.py --all-negative-rows   # the adaptive loss's hardest-row path
    python benchmarks/bench_step.py --flags \
        xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE

Measured on a 2-core CPU shared with other jobs (load 1-3), medium shape, batch 1024 x 10
negatives, dimension 32 (2026-12-04): the exact sampler took 1.4 ms a step by binary search and
0.4-0.6 ms by rejection with the hash table (``uniform`` sampling: 0.03 ms); the whole step with
row-wise Adagrad ~2.1 ms against ~2.5 ms with XLA's default YNNPACK reductions, lazy Adam ~3.2 ms
and SGD ~1.7 ms. Batch size barely moved positives/s (512: -16%, 2048: +7%, 4096: +8%, at the same
NDCG@10 after 2 epochs), nor did 256 steps per dispatch instead of 64 (+2%). Scoring the K
negatives without gradients and training on the hardest one only (the pairwise objective with
an adaptive loss, 2026-12-05, load ~2.4): 1.70 ms a step against 2.43 ms.

This script's step is not the whole story: on 2026-12-07 a profile of it (``jax.profiler``
events summed by name) put a quarter of the step in one loop fusion, the K negatives' rows
gathered, multiplied with the user's row, summed and arg-maxed (0.38 of 1.51 ms). Writing
``score_encoded`` as an einsum (a batched dot) took this script's step from 1.79-1.89 to
1.54-1.61 ms (two paired runs), but the trainer's epochs in ``bench_scale.py --systems
hybridrec`` did not move (0.36-0.63M/s against 0.47-0.75M/s over five paired runs), so it was
not kept: time a change in ``bench_scale.py`` before believing this script.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_scale import SHAPES, make_positives  # noqa: E402
from experiments.configs import mf  # noqa: E402
from hybridrec import Interactions, models, objectives, optim  # noqa: E402
from hybridrec.data.sampling import NegativeSampler  # noqa: E402
from hybridrec.train import _compile_step  # noqa: E402

# --optimizers: the embeddings' optimizer ("default": the config's; "dense": no row-sparse).
OPTIMIZERS = {
    "lazy_adam": dict(name="adam", sparse="lazy_adam"),
    "adagrad": dict(name="adagrad", sparse="adagrad"),
    "adagrad_dup": dict(name="adagrad", sparse="adagrad", sum_duplicates=False),
    "rowwise_adagrad": dict(name="adagrad", sparse="rowwise_adagrad"),
    "sgd": dict(name="sgd", sparse="sgd"),
}


def build(args, users, items, num_users, num_items, sampler_kind, optimizer):
    config = mf.get_config()
    config.model.embedding_dim = args.dim
    config.train.batch_size = args.batch_size
    config.train.sampler = sampler_kind
    opt_config = config.optimizer.to_dict()
    if optimizer == "dense":
        opt_config["embeddings"]["sparse_above_rows"] = 0
    elif optimizer != "default":
        opt_config["embeddings"].update(OPTIMIZERS[optimizer])
    train = Interactions.from_arrays(users, items, num_users=num_users, num_items=num_items)
    model = models.build(
        "mf",
        context=dict(num_users=num_users, num_items=num_items, rngs=nnx.Rngs(params=0)),
        embedding_dim=args.dim,
    )
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    opt = optim.build(opt_config, params, 10_000)
    opt_state = opt.init(params)
    objective = objectives.build(config, num_items=num_items)
    t0 = time.perf_counter()
    sampler = NegativeSampler.from_interactions(train, kind=sampler_kind)
    build_s = time.perf_counter() - t0
    ids = lambda n: {"ids": jnp.arange(n, dtype=jnp.int32), "known": jnp.ones(n, bool)}  # noqa: E731
    dd = dict(
        positives=dict(
            user_ids=jnp.asarray(users),
            item_ids=jnp.asarray(items),
            weights=jnp.ones(len(users), jnp.float32),
        ),
        users=ids(num_users),
        items=ids(num_items),
        sampler=sampler,
    )

    def make_chunk_step(objective):
        @functools.partial(jax.jit, donate_argnums=(0, 1))
        def chunk_step(params, opt_state, rows, key, dd):
            def one_step(carry, x):
                params, opt_state = carry
                batch = {k: v[x["rows"]] for k, v in dd["positives"].items()}
                neg_key, model_key = jax.random.split(x["key"])
                batch = objective.make_batch(batch, dd, neg_key)
                loss, grads = opt.value_and_grad(
                    objective.loss, graphdef, params, rest, batch, model_key
                )
                params, opt_state = opt.apply(params, opt_state, grads)
                return (params, opt_state), loss

            xs = dict(rows=rows, key=jax.random.split(key, rows.shape[0]))
            (params, opt_state), losses = jax.lax.scan(one_step, (params, opt_state), xs)
            return params, opt_state, losses

        return chunk_step

    chunk_step = make_chunk_step(objective)
    # The adaptive loss's step with every negative scored with gradients (the objective's
    # hardest-row path off), for --all-negative-rows.
    plain = objectives.build(config, num_items=num_items)
    plain.hardest_rows = False
    chunk_step_all_rows = make_chunk_step(plain)

    @jax.jit
    def chunk_sample(rows, key, dd):
        def body(acc, x):
            users = dd["positives"]["user_ids"][x["rows"]]
            neg = dd["sampler"].sample(x["key"], users, args.num_negatives)
            return acc + jnp.sum(neg), None

        xs = dict(rows=rows, key=jax.random.split(key, rows.shape[0]))
        return jax.lax.scan(body, jnp.zeros((), jnp.int32), xs)[0]

    return params, opt_state, dd, chunk_step, chunk_step_all_rows, chunk_sample, build_s


def timed(fns: dict, repeats: int) -> dict:
    """Median seconds of each zero-argument function, the functions called in turn (paired)."""
    times = {name: [] for name in fns}
    for _ in range(repeats + 1):  # the first round warms up
        for name, fn in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t[1:])) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=tuple(SHAPES), default="medium")
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--num-negatives", type=int, default=10)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--optimizers",
        default="default",
        help="comma-separated: " + ", ".join(["default", "dense", *OPTIMIZERS]),
    )
    parser.add_argument("--samplers", default="uniform_exact")
    parser.add_argument("--no-step", action="store_true")
    parser.add_argument(
        "--flags",
        nargs="*",
        default=[],
        metavar="OPTION=VALUE",
        help="also time the step compiled with these XLA options (one variant each; an empty "
        "VALUE clears an option), interleaved with the trainer's own compilation",
    )
    parser.add_argument(
        "--all-negative-rows",
        action="store_true",
        help="also time the step with every negative scored with gradients (the pairwise "
        "objective's hardest-row path off)",
    )
    args = parser.parse_args()
    num_users, num_items, num_positives = SHAPES[args.shape]
    users, items = make_positives(num_users, num_items, num_positives)
    rng = np.random.default_rng(0)
    print(f"{args.shape}: {num_users} x {num_items} x {num_positives}, batch {args.batch_size}")
    for sampler_kind in args.samplers.split(","):
        for optimizer in args.optimizers.split(","):
            params, opt_state, dd, chunk_step, chunk_step_all_rows, chunk_sample, build_s = build(
                args, users, items, num_users, num_items, sampler_kind, optimizer
            )
            rows = jnp.asarray(
                rng.integers(0, num_positives, (args.steps, args.batch_size)).astype(np.int32)
            )
            key = jax.random.key(0)
            per = args.steps * args.batch_size
            sample = functools.partial(chunk_sample, rows, key, dd)
            s = timed({"sample": sample}, args.repeats)["sample"]
            print(
                f"{sampler_kind:<14} {optimizer:<16} build {build_s:5.2f} s  "
                f"sample {s / args.steps * 1e3:6.2f} ms/step",
                flush=True,
            )
            if args.no_step:
                continue
            lowered = chunk_step.lower(params, opt_state, rows, key, dd)
            compiled = {"trainer": _compile_step(lowered)}
            if args.all_negative_rows:
                compiled["all negative rows"] = _compile_step(
                    chunk_step_all_rows.lower(params, opt_state, rows, key, dd)
                )
            for flag in args.flags:
                option, value = flag.split("=", 1)
                value = {"true": True, "false": False}.get(value.lower(), value)
                compiled[flag] = lowered.compile(compiler_options={option: value})
            fns = {}
            for name, step in compiled.items():
                # Its own copy of the state: the step donates (consumes) its inputs.
                state = jax.tree.map(jnp.copy, [params, opt_state])

                def run(step=step, state=state, batch=(rows, key, dd)):
                    state[0], state[1], losses = step(state[0], state[1], *batch)
                    return losses

                fns[name] = run
            for name, t in timed(fns, args.repeats).items():
                print(
                    f"  step ({name}) {t / args.steps * 1e3:6.2f} ms  {per / t / 1e6:5.2f}M pos/s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
