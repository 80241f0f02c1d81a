"""Benchmark of full-ranking evaluation (``hybridrec.evaluation.evaluate``).

Two workloads on synthetic data from a random factor model (user and item factors of
``--dim`` dimensions, scores ``U_b @ V.T`` computed per batch inside the jitted kernel):

* large: ``--num-users`` x ``--num-items`` (default 100k x 100k), ~10 test items and ~20
  training items (filtered out) per user, metrics NDCG@10, Recall@10, MAP@10, MRR, AUC; then the
  same without AUC (the fast path), and in ``mode="both"`` (filtered plus Collie's metrics).
* MovieLens-100K-sized: 943 users x 1682 items, ~6k test interactions, ~80k training ones; timed
  after compilation.
* ``--scale-5m``: the training-time shape of issue 10, 100k users x 20k items x 5M positives with
  power-law item popularity: one evaluation of 2,000 held-out pairs and one of a 10% split
  (500k pairs), each with the 4.5M training pairs filtered out, twice (the second call is what each
  epoch's evaluation costs during training), plus the cost of building the exclusion structure
  once (``evaluation.build_exclusions``) and evaluating with it.

Prints wall and CPU time (first call, which includes compilation, and for the main runs a second
call), users per second and peak resident memory. The CPU time is what to compare when other
processes share the machine. Run from the repository root::

    python benchmarks/bench_eval.py                 # full benchmark (~4 minutes on 2 cores)
    python benchmarks/bench_eval.py --num-users 10000 --skip-variants
    python benchmarks/bench_eval.py --scale-5m          # only the 100k x 20k x 5M case
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

from hybridrec import evaluation
from hybridrec.data.interactions import Interactions
from hybridrec.evaluation import evaluate


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far, in GB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def synthetic(num_users: int, num_items: int, dim: int, n_test: int, n_train: int, seed: int = 0):
    """Random item factors; train and test items drawn uniformly (repeats are rare and harmless).

    Each user's factor is the mean of their test items' factors plus noise, a planted signal that
    makes the metrics clearly better than chance (a sanity check at full scale).
    """
    rng = np.random.default_rng(seed)
    item_factors = rng.normal(size=(num_items, dim)).astype(np.float32)
    test_items = rng.integers(0, num_items, (num_users, n_test))
    noise = 0.1 * rng.normal(size=(num_users, dim)).astype(np.float32)
    user_factors = item_factors[test_items].mean(1) + noise
    test = Interactions.from_arrays(
        np.repeat(np.arange(num_users), n_test),
        test_items.ravel(),
        num_users=num_users,
        num_items=num_items,
    )
    train = Interactions.from_arrays(
        np.repeat(np.arange(num_users), n_train),
        rng.integers(0, num_items, num_users * n_train),
        num_users=num_users,
        num_items=num_items,
    )
    return (jnp.asarray(user_factors), jnp.asarray(item_factors)), train, test


def score_fn(params, user_ids):
    """Dot-product scores of every item for a batch of users: (B,) -> (B, num_items)."""
    user_factors, item_factors = params
    return user_factors[user_ids] @ item_factors.T


def cpu_seconds() -> float:
    """User plus system CPU time of this process (robust to other processes sharing the CPU)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(label: str, num_users: int, repeat: bool, **kwargs):
    """Runs ``evaluate`` (twice if ``repeat``); prints wall and CPU time, users/s, peak memory."""
    parts = []
    for name in ("first call", "compiled") if repeat else ("first call",):
        t0, c0 = time.perf_counter(), cpu_seconds()
        result = evaluate(score_fn, traceable=True, **kwargs)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        parts.append(
            f"{name} {wall:7.3f} s wall / {cpu:7.3f} s CPU ({num_users / wall:8.0f} users/s)"
        )
    print(f"{label:44s} " + " | ".join(parts) + f" | peak RSS {peak_rss_gb():.2f} GB", flush=True)
    return result


def power_law_pairs(num_users: int, num_items: int, num_pairs: int, seed: int = 0):
    """About ``num_pairs`` distinct (user, item) pairs: item popularity follows a ``1 / rank`` law
    (a few very popular items, a long tail), user activity a milder ``rank ** -0.7`` law with at
    least 5 and at most 2,000 interactions per user."""
    rng = np.random.default_rng(seed)
    weights = rng.permutation(np.arange(1, num_users + 1) ** -0.7)
    per_user = np.clip(5 + weights / weights.sum() * (num_pairs - 5 * num_users), 5, 2000)
    cdf = np.cumsum(1.0 / np.arange(1, num_items + 1))
    item_of_rank = rng.permutation(num_items)
    keys = np.zeros(0, np.int64)
    for scale in (1.3, 0.3, 0.1, 0.1):  # popular items repeat: top up until num_pairs are distinct
        counts = np.round(per_user * scale).astype(np.int64)
        rank = np.searchsorted(cdf / cdf[-1], rng.random(int(counts.sum())))
        new = np.repeat(np.arange(num_users, dtype=np.int64), counts) * num_items
        keys = np.sort(np.concatenate([keys, new + item_of_rank[np.minimum(rank, num_items - 1)]]))
        keys = keys[np.concatenate([[True], np.diff(keys) > 0])]  # distinct, sort-based
        if len(keys) >= num_pairs:
            break
    keys = rng.permutation(keys)[:num_pairs]
    return (keys // num_items).astype(np.int32), (keys % num_items).astype(np.int32)


def scale_5m(args) -> None:
    """100k x 20k x 5M: the evaluation cost a training run pays per epoch (issue 10)."""
    nu, ni, npairs = 100_000, 20_000, 5_000_000
    t0 = time.perf_counter()
    users, items = power_law_pairs(nu, ni, npairs, seed=2)
    rng = np.random.default_rng(3)
    is_val = rng.random(len(users)) < 0.1

    def inter(rows):
        return Interactions.from_arrays(users[rows], items[rows], num_users=nu, num_items=ni)

    train, val = inter(~is_val), inter(is_val)
    small = val.subset(rng.permutation(len(val))[:2000])
    f = np.random.default_rng(4)
    params = (
        jnp.asarray(f.normal(size=(nu, args.dim)).astype(np.float32)),
        jnp.asarray(f.normal(size=(ni, args.dim)).astype(np.float32)),
    )
    print(
        f"scale-5m: {nu} users x {ni} items, {len(train)} train, {len(val)} val (10%), "
        f"{len(small)} held-out pairs (built in {time.perf_counter() - t0:.1f} s), "
        f"peak RSS {peak_rss_gb():.2f} GB",
        flush=True,
    )
    common = dict(train=train, ks=(10,), batch_size=args.batch_size)
    n_small = len(np.unique(small.user_ids))
    timed(
        "2,000 held-out pairs, default metrics",
        n_small,
        True,
        test=small,
        score_params=params,
        **common,
    )
    # Popularity scores: many items share a count, so the tie groups are large.
    counts = jnp.asarray(train.item_counts().astype(np.float32))[:, None]
    tied = (jnp.ones((nu, 1), jnp.float32), counts)
    timed(
        "2,000 pairs, popularity scores (ties)",
        n_small,
        True,
        test=small,
        score_params=tied,
        **common,
    )
    if hasattr(evaluation, "build_exclusions"):
        t0, c0 = time.perf_counter(), cpu_seconds()
        excl = evaluation.build_exclusions(train)
        print(
            f"build_exclusions(train): {time.perf_counter() - t0:.3f} s wall / "
            f"{cpu_seconds() - c0:.3f} s CPU, once per run",
            flush=True,
        )
        common["exclusions"] = excl
        timed(
            "2,000 pairs, exclusions built once",
            n_small,
            True,
            test=small,
            score_params=params,
            **common,
        )
    if not args.skip_split:
        timed("10% split, default metrics", nu, False, test=val, score_params=params, **common)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-users", type=int, default=100_000)
    parser.add_argument("--num-items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--skip-variants", action="store_true", help="only the main large run")
    parser.add_argument("--skip-large", action="store_true", help="only the MovieLens-sized run")
    parser.add_argument("--scale-5m", action="store_true", help="only the 100k x 20k x 5M case")
    parser.add_argument(
        "--skip-split", action="store_true", help="--scale-5m without the 10%% split (minutes)"
    )
    args = parser.parse_args()
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.1f} (other processes slow the wall times)"
    )

    if args.scale_5m:
        scale_5m(args)
        return
    # ---- MovieLens-100K-sized
    params, train, test = synthetic(943, 1682, args.dim, n_test=6, n_train=85, seed=1)
    print(f"movielens-sized: {len(test)} test, {len(train)} train interactions")
    res = timed(
        "ml100k-sized, 7 metrics + coverage, filtered",
        test.num_users,
        repeat=True,
        test=test,
        train=train,
        ks=(10,),
        score_params=params,
    )
    print("   ", {k: round(v, 4) for k, v in res.metrics.items()})

    if args.skip_large:
        return
    # ---- large
    t0 = time.perf_counter()
    params, train, test = synthetic(args.num_users, args.num_items, args.dim, n_test=10, n_train=20)
    print(
        f"large: {args.num_users} users x {args.num_items} items, {len(test)} test and "
        f"{len(train)} train interactions (built in {time.perf_counter() - t0:.1f} s)"
    )
    common = dict(
        test=test,
        train=train,
        ks=(10,),
        score_params=params,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
    )
    res = timed(
        "NDCG/Recall/MAP@10, MRR, AUC (filtered)",
        args.num_users,
        repeat=True,
        metrics=("ndcg", "recall", "map", "mrr", "auc"),
        **common,
    )
    print("   ", {k: round(v, 5) for k, v in res.metrics.items()})
    if args.skip_variants:
        return
    timed(
        "fast path: NDCG/Recall/MAP@10, MRR (no AUC)",
        args.num_users,
        repeat=False,
        metrics=("ndcg", "recall", "map", "mrr"),
        **common,
    )
    timed(
        "mode=both: + collie_map@10/mrr/auc",
        args.num_users,
        repeat=False,
        metrics=("ndcg", "recall", "map", "mrr", "auc"),
        mode="both",
        **common,
    )
    timed(
        "mode=both, collie_sigmoid=False",
        args.num_users,
        repeat=False,
        metrics=("ndcg", "recall", "map", "mrr", "auc"),
        mode="both",
        collie_sigmoid=False,
        **common,
    )


if __name__ == "__main__":
    main()
