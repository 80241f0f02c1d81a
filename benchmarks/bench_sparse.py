"""Dense vs row-sparse embedding updates on large tables (CPU).

Part 1, one table: a 1M x 64 ``Embedding``, batches of 4096 (user, positive, 10 negatives) rows
of that table (49,152 lookups per step, Zipf-distributed so popular rows repeat), BPR loss.
Compares dense ``optax.adam`` and ``optax.sgd`` (gradient w.r.t. the whole table, buffers
donated) with ``hybridrec.sparse``'s row-sparse SGD, Adagrad and lazy Adam (gradient w.r.t. the
gathered rows, through ``hybridrec.optim.build`` with ``embeddings.sparse``).

Part 2, matrix factorisation (``hybridrec.models.mf``) on synthetic data: 1M users x 100k items,
5M Zipf-distributed interactions on the device, batch 4096 with 10 uniform negatives sampled
inside the jitted step, BPR. Both through ``hybridrec.optim.build`` and its one interface
(``value_and_grad``, ``apply``): dense (Adam or SGD for embeddings, SGD for biases) and
row-sparse, the same with ``optimizer.embeddings.sparse=True`` (lazy Adam / SGD). Biases stay
dense in both.

Each variant runs in its own subprocess so that its peak resident memory (``ru_maxrss``) is its
own. Prints ms/step, samples/s (a sample is a user with one positive and its negatives), compile
time, timed wall time, process CPU time (all threads; less sensitive than wall time to other
load on the machine) and peak memory.

    python benchmarks/bench_sparse.py            # both parts, ~3 minutes on 2 cores
    python benchmarks/bench_sparse.py --small    # a few seconds (100k rows)
    python benchmarks/bench_sparse.py --part table --steps 50
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from hybridrec import optim, sparse
from hybridrec.losses import bpr
from hybridrec.variables import Embedding, lookup

TABLE_VARIANTS = ("dense_adam", "dense_sgd", "sparse_sgd", "sparse_adagrad", "sparse_lazy_adam")
MF_VARIANTS = ("dense_adam", "sparse_lazy_adam", "dense_sgd", "sparse_sgd")


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def zipf_ids(rng: np.random.Generator, n: int, size: int, exponent: float = 1.0) -> np.ndarray:
    """``size`` draws from ``0 .. n - 1`` with P(k) proportional to (k + 1) ** -exponent, shuffled."""
    cdf = np.cumsum(np.arange(1, n + 1, dtype=np.float64) ** -exponent)
    ids = np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right")
    return rng.permutation(n)[np.minimum(ids, n - 1)].astype(np.int32)


def _time_steps(step, carry, batches, steps: int) -> dict:
    """Compiles on the first call, then times ``steps`` calls of ``carry = step(*carry, batch)``."""
    start = time.perf_counter()
    carry = jax.block_until_ready(step(*carry, batches[0]))
    compile_s = time.perf_counter() - start
    carry = jax.block_until_ready(step(*carry, batches[1 % len(batches)]))
    wall, cpu = time.perf_counter(), time.process_time()
    for k in range(steps):
        carry = step(*carry, batches[k % len(batches)])
    jax.block_until_ready(carry)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return dict(compile_s=compile_s, wall_s=wall, cpu_s=cpu, ms_per_step=1e3 * wall / steps)


# ----------------------------------------------------------------------------------------------
# Part 1: one large table


class _Table(nnx.Module):
    def __init__(self, num_rows: int, dim: int):
        self.table = Embedding(0.1 * jax.random.normal(jax.random.key(0), (num_rows, dim)))


def _table_loss(rows: jax.Array) -> jax.Array:
    """BPR from (B, 2 + K, D) rows: user, positive, negatives."""
    scores = jnp.einsum("bd,bkd->bk", rows[:, 0], rows[:, 1:])  # (B, 1 + K)
    return bpr(pos_scores=scores[:, 0], neg_scores=scores[:, 1:])


def run_table(variant: str, args) -> dict:
    rng = np.random.default_rng(0)
    shape = (args.batch_size, 2 + args.num_negatives)
    batches = [
        jnp.asarray(zipf_ids(rng, args.num_rows, int(np.prod(shape))).reshape(shape))
        for _ in range(4)
    ]
    model = _Table(args.num_rows, args.dim)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    kind, name = variant.split("_", 1)
    if kind == "dense":
        tx = {"adam": optax.adam(1e-3), "sgd": optax.sgd(0.1)}[name]
        table = params["table"][...]

        @functools.partial(jax.jit, donate_argnums=(0, 1))
        def step(table, opt_state, ids):
            grad = jax.grad(lambda t: _table_loss(t[ids]))(table)  # (num_rows, D)
            updates, opt_state = tx.update(grad, opt_state, table)
            return optax.apply_updates(table, updates), opt_state

        carry = (table, tx.init(table))
    else:
        lr = {"sgd": 0.1, "adagrad": 0.1, "lazy_adam": 1e-3}[name]
        config = dict(embeddings=dict(learning_rate=lr, sparse=name))
        opt = optim.build(config, params, total_steps=args.steps)

        def loss_fn(model, ids):
            return _table_loss(lookup(model.table, ids))

        @functools.partial(jax.jit, donate_argnums=(0, 1))
        def step(params, opt_state, ids):
            _, grads = opt.value_and_grad(loss_fn, graphdef, params, rest, ids)
            return opt.apply(params, opt_state, grads)

        carry = (params, opt.init(params))
    del model, params
    return _time_steps(step, carry, batches, args.steps)


# ----------------------------------------------------------------------------------------------
# Part 2: matrix factorisation


def _mf_class():
    """``MatrixFactorization``, made to read its tables through ``lookup`` if it does not yet."""
    from hybridrec.models.base import known_mask
    from hybridrec.models.mf import MatrixFactorization

    probe = MatrixFactorization(num_users=3, num_items=3, rngs=nnx.Rngs(0), embedding_dim=2)
    graphdef, params, rest = nnx.split(probe, nnx.Param, ...)
    ids = jnp.arange(3)
    try:
        sparse.value_and_grad(
            lambda m: m.score_pairs({"ids": ids}, {"ids": ids}).sum(), graphdef, params, rest
        )
        return MatrixFactorization, False
    except sparse.SparseError:
        pass

    class LookupMF(MatrixFactorization):
        @staticmethod
        def _encode(batch, table, bias):
            known = known_mask(batch)  # (B,)
            ids = batch["ids"]
            repr_ = lookup(table, ids) * known[:, None]  # (B, D)
            b = bias[...][ids] * known if bias is not None else jnp.zeros_like(known)  # (B,)
            return repr_, b

    return LookupMF, True


def _mf_loss(model, users, pos, neg):
    """BPR on (B,) users, (B,) positives and (B, K) negatives."""
    batch_size, k = neg.shape
    u = model.encode_users({"ids": users})  # ((B, D), (B,))
    p = model.encode_items({"ids": pos})
    n = model.encode_items({"ids": neg.reshape(-1)})  # ((B K, D), (B K,))
    pos_scores = model.score_encoded(u, p)  # (B,)
    n = jax.tree.map(lambda x: x.reshape(batch_size, k, *x.shape[1:]), n)
    u = jax.tree.map(lambda x: x[:, None], u)
    neg_scores = model.score_encoded(u, n)  # (B, K)
    return bpr(pos_scores=pos_scores, neg_scores=neg_scores)


def run_mf(variant: str, args) -> dict:
    rng = np.random.default_rng(0)
    users = jnp.asarray(zipf_ids(rng, args.num_users, args.num_interactions, 0.8))
    items = jnp.asarray(zipf_ids(rng, args.num_items, args.num_interactions, 1.0))
    cls, patched = _mf_class()
    model = cls(
        num_users=args.num_users, num_items=args.num_items, rngs=nnx.Rngs(0), embedding_dim=args.dim
    )
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    del model
    kind, name = variant.split("_", 1)
    embeddings = (
        dict(name="adam", learning_rate=1e-3)
        if "adam" in name
        else dict(name="sgd", learning_rate=0.05)
    )
    config = dict(embeddings=embeddings, biases=dict(name="sgd", learning_rate=0.01))

    def sample(key):
        k1, k2 = jax.random.split(key)
        rows = jax.random.randint(k1, (args.batch_size,), 0, users.shape[0])
        neg = jax.random.randint(k2, (args.batch_size, args.num_negatives), 0, args.num_items)
        return users[rows], items[rows], neg

    config["embeddings"]["sparse"] = kind == "sparse"
    opt = optim.build(config, params, total_steps=args.steps)

    # One step for both kinds: the optimizer decides how gradients are taken and applied.
    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, opt_state, key):
        _, grads = opt.value_and_grad(_mf_loss, graphdef, params, rest, *sample(key))
        return opt.apply(params, opt_state, grads)

    carry = (params, opt.init(params))
    keys = list(jax.random.split(jax.random.key(1), 8))
    result = _time_steps(step, carry, keys, args.steps)
    result["mf_patched_to_lookup"] = patched
    return result


# ----------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("table", "mf", "both"), default="both")
    parser.add_argument("--small", action="store_true", help="100k-row tables, for a smoke run")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--num-negatives", type=int, default=10)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--num-rows", type=int, default=1_000_000)
    parser.add_argument("--num-users", type=int, default=1_000_000)
    parser.add_argument("--num-items", type=int, default=100_000)
    parser.add_argument("--num-interactions", type=int, default=5_000_000)
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one, print JSON
    args = parser.parse_args()
    if args.small:
        args.num_rows, args.num_users, args.num_items = 100_000, 100_000, 10_000
        args.num_interactions, args.steps = 500_000, min(args.steps, 5)

    if args.variant:
        part, variant = args.variant.split(":")
        result = (run_table if part == "table" else run_mf)(variant, args)
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return

    forwarded = [a for a in sys.argv[1:] if not a.startswith("--part")]
    forwarded = [a for a in forwarded if a not in ("table", "mf", "both")]
    parts = ("table", "mf") if args.part == "both" else (args.part,)
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}, batch {args.batch_size}, "
        f"{args.num_negatives} negatives, dim {args.dim}, {args.steps} timed steps"
    )
    for part in parts:
        if part == "table":
            print(
                f"\n# One {args.num_rows:,} x {args.dim} table, "
                f"{args.batch_size * (2 + args.num_negatives):,} lookups/step"
            )
            variants = TABLE_VARIANTS
        else:
            print(
                f"\n# Matrix factorisation, {args.num_users:,} users x {args.num_items:,} items, "
                f"{args.num_interactions:,} interactions"
            )
            variants = MF_VARIANTS
        print(
            f"{'variant':<18}{'ms/step':>9}{'cpu ms/step':>12}{'samples/s':>11}"
            f"{'compile s':>10}{'wall s':>8}{'cpu s':>8}{'peak MiB':>10}"
        )
        for variant in variants:
            out = subprocess.run(
                [sys.executable, __file__, *forwarded, "--variant", f"{part}:{variant}"],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                print(f"{variant:<18} FAILED\n{out.stderr[-2000:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{variant:<18}{r['ms_per_step']:>9.1f}{1e3 * r['cpu_s'] / args.steps:>12.1f}"
                f"{args.batch_size / r['ms_per_step'] * 1e3:>11,.0f}{r['compile_s']:>10.1f}"
                f"{r['wall_s']:>8.1f}{r['cpu_s']:>8.1f}{r['peak_rss_mb']:>10,.0f}"
                + ("  (mf patched to use lookup)" if r.get("mf_patched_to_lookup") else "")
            )


if __name__ == "__main__":
    main()
