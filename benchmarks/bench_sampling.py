"""Throughput of the in-jit negative samplers on synthetic power-law data.

Generates interactions with Zipf-like user activity and item popularity (default: 10M
interactions, 1M users, 100k items), builds each sampler once on the host, then draws
``--num-negatives`` negatives for batches of ``--batch-size`` users, ``--chunks`` batches per
jitted call (a ``lax.scan``), as a training step would. Users of a batch are the users of random
interactions, so heavy users come up as often as in training.

Prints, per sampler kind: host build time, compile time, steady-state negatives per second, wall
time, process CPU time (all threads; less sensitive than wall time to other load on the machine)
and peak resident memory so far (``ru_maxrss``). First, the random-bit sources alone on the same
(batch, negatives) shape: ``jax.random.bits`` (threefry) against the samplers' counter-based hash
(``hybridrec.data.sampling.random_bits``).

    python benchmarks/bench_sampling.py            # full size, about a minute or two on 2 cores
    python benchmarks/bench_sampling.py --small    # a few seconds
"""

from __future__ import annotations

import argparse
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

from hybridrec import Interactions
from hybridrec.data.sampling import NegativeSampler, random_bits


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def zipf_ids(rng: np.random.Generator, n: int, size: int, exponent: float) -> np.ndarray:
    """``size`` draws from ``0 .. n - 1`` with P(k) proportional to (k + 1) ** -exponent, shuffled."""
    weights = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(weights)
    ids = np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right")
    return rng.permutation(n)[np.minimum(ids, n - 1)].astype(np.int32)


def make_data(args: argparse.Namespace) -> Interactions:
    rng = np.random.default_rng(args.seed)
    users = zipf_ids(rng, args.num_users, args.num_interactions, args.user_exponent)
    items = zipf_ids(rng, args.num_items, args.num_interactions, args.item_exponent)
    return Interactions.from_arrays(
        users, items, num_users=args.num_users, num_items=args.num_items
    )


def bench_bits(args: argparse.Namespace) -> None:
    """32-bit words per second of each random-bit source, one (batch, K) draw per scan step."""
    shape = (args.batch_size, args.num_negatives)
    sources = {
        "jax.random.bits": lambda key: jax.random.bits(key, shape, jnp.uint32),
        "random_bits": lambda key: random_bits(key, shape),
    }
    for name, source in sources.items():

        @jax.jit
        def draw(key: jax.Array, source=source) -> jax.Array:
            def step(key, _):
                key, sub = jax.random.split(key)
                return key, source(sub).sum(dtype=jnp.uint32)  # keeps the words from being elided

            return jax.lax.scan(step, key, None, length=args.chunks)[1]

        key = jax.random.key(args.seed)
        draw(key).block_until_ready()
        reps = max(1, args.num_batches // args.chunks)
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(reps):
            out = draw(jax.random.fold_in(key, i))
        out.block_until_ready()
        wall_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        words = reps * args.chunks * shape[0] * shape[1]
        print(
            f"{name:>16}: {words / wall_s / 1e6:7.1f} M words/s  wall {wall_s:6.2f} s for "
            f"{words / 1e6:.1f} M  (CPU {cpu_s:6.2f} s)"
        )


def bench_kind(
    kind: str, data: Interactions, batches: np.ndarray, args: argparse.Namespace
) -> None:
    t0 = time.perf_counter()
    sampler = NegativeSampler.from_interactions(data, kind=kind, alpha=0.75)
    jax.block_until_ready(sampler)
    build_s = time.perf_counter() - t0

    @jax.jit
    def draw(sampler: NegativeSampler, key: jax.Array, user_ids: jax.Array) -> jax.Array:
        """(C, B) users -> (C, B, K) negatives, one scan step per batch."""

        def step(key, users):
            key, sub = jax.random.split(key)
            return key, sampler.sample(sub, users, args.num_negatives)

        _, negatives = jax.lax.scan(step, key, user_ids)
        return negatives

    calls = batches.reshape(-1, args.chunks, args.batch_size)
    key = jax.random.key(args.seed)
    t0 = time.perf_counter()
    draw(sampler, key, calls[0]).block_until_ready()
    compile_s = time.perf_counter() - t0

    t0, c0 = time.perf_counter(), time.process_time()
    for i, users in enumerate(calls):
        out = draw(sampler, jax.random.fold_in(key, i), users)
    out.block_until_ready()
    wall_s = time.perf_counter() - t0
    cpu_s = time.process_time() - c0
    num_negatives = calls.size * args.num_negatives
    extra = ""
    if kind == "uniform_exact":
        pos = sampler.positives
        extra = f"  (max positives {pos.max_positives}, {pos.num_steps} bisection steps)"
    print(
        f"{kind:>14}: build {build_s:6.2f} s  compile {compile_s:5.2f} s  "
        f"{num_negatives / wall_s / 1e6:7.1f} M negatives/s  wall {wall_s:6.2f} s for "
        f"{num_negatives / 1e6:.1f} M  (CPU {cpu_s:6.2f} s)  peak RSS {peak_rss_mb():6.0f} MiB{extra}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="100k interactions, quick run")
    parser.add_argument("--num-interactions", type=int, default=10_000_000)
    parser.add_argument("--num-users", type=int, default=1_000_000)
    parser.add_argument("--num-items", type=int, default=100_000)
    parser.add_argument("--user-exponent", type=float, default=0.6, help="Zipf exponent, users")
    parser.add_argument("--item-exponent", type=float, default=1.0, help="Zipf exponent, items")
    parser.add_argument("--num-negatives", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--chunks", type=int, default=16, help="batches per jitted call")
    parser.add_argument("--num-batches", type=int, default=256, help="timed batches per kind")
    parser.add_argument("--kinds", default="uniform_exact,uniform,popularity")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.small:
        args.num_interactions, args.num_users, args.num_items = 100_000, 10_000, 5_000
        args.num_batches, args.chunks = 32, 8
    args.num_batches = max(args.chunks, args.num_batches // args.chunks * args.chunks)

    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; {vars(args)}")
    t0 = time.perf_counter()
    data = make_data(args)
    rng = np.random.default_rng(args.seed + 1)
    rows = rng.integers(0, len(data), args.num_batches * args.batch_size)
    batches = jnp.asarray(data.user_ids[rows])
    keys = np.sort(data.user_ids.astype(np.int64) * data.num_items + data.item_ids)
    distinct = int(np.count_nonzero(keys[1:] != keys[:-1])) + 1
    print(
        f"data: {len(data):,} interactions ({distinct:,} distinct pairs), {data.num_users:,} users, "
        f"{data.num_items:,} items, generated in {time.perf_counter() - t0:.1f} s; "
        f"peak RSS {peak_rss_mb():.0f} MiB"
    )
    bench_bits(args)
    for kind in args.kinds.split(","):
        bench_kind(kind, data, batches, args)


if __name__ == "__main__":
    main()
