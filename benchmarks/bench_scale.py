"""Scale benchmark: hybridrec's real entry point beside LightFM and implicit on the same arrays.

Shapes (``--shape``), power-law synthetic positives generated here in numpy (seeded, a few
seconds; ``make_synthetic`` draws a choice among 32 exposed items per interaction and takes
~8 s per million rows, too slow at 50M):

- ``medium``: 100,000 users x 20,000 items x 5,000,000 positives;
- ``large``:  1,000,000 users x 100,000 items x 50,000,000 positives.

Data: every user gets ``--min-per-user`` positives, the rest go to users by a power law
(exponent 0.5); items follow a power law over popularity ranks (exponent 1.0). The planted
signal is a taste cluster per user: a ``--taste`` share of a user's positives comes from the
items of their cluster (itself a power law over that cluster's items), the rest from the whole
catalogue, so a factorization can beat popularity. Pairs are distinct. A random split holds out
``--eval-pairs`` pairs (``hybridrec.data.splits.random_split``, seed 0): the trainer makes the
same split from the same rows, and the peers train on its training part.

Systems, each in its own subprocess so that its peak RSS is its own:

- ``hybridrec``: ``hybridrec.train.train_and_evaluate`` with ``experiments/configs/mf.py`` as
  shipped but for the data (a parquet file read by the ``files`` dataset) and the dimension (32);
  10 exact negatives (``uniform_exact``) and the optimizer as shipped. Evaluation runs once, after
  the last epoch (filtered NDCG@10 / recall@10); the plateau schedule is off because it needs an
  evaluation every epoch.
- ``lightfm`` (when installed): WARP, dimension 32, 2 threads, one ``fit_partial`` per epoch.
- ``implicit`` (when installed): BPR (one sampled negative per positive), dimension 32, 2
  threads, ``OPENBLAS_NUM_THREADS=1``.

The peers' NDCG@10 comes from ``hybridrec.evaluation.evaluate`` on the same held-out pairs with
the same filtering. Printed per system: positives/s per epoch, one epoch's wall time, time
outside the epochs (the system's wall time minus its epochs: loading, splitting, building,
compiling, evaluating, saving), compile time (hybridrec), peak RSS, NDCG@10 after the epochs,
and each peer's speed and NDCG as a ratio to hybridrec's. A peer's time outside the epochs is
its own (reading the split, building its matrix); the evaluation by hybridrec's evaluator that
scores it is not counted there (``eval_s`` in the JSON line), whereas hybridrec's includes its
own evaluation, as a user of the trainer would see it.

    python benchmarks/bench_scale.py --shape medium --epochs 2      # ~5 min on 2 busy cores
    python benchmarks/bench_scale.py --shape small                  # a check, ~1-2 min
    python benchmarks/bench_scale.py --shape medium --systems hybridrec \
        --override '{"optimizer.embeddings.sparse": true}' --json-out results.json

The large shape is slow on a 2-core machine: ``--shape large --epochs 1 --systems
hybridrec,lightfm`` took 7.6 minutes on 2 busy cores (2026-12-04): data 24 s; hybridrec one
epoch 203 s (0.25M positives/s, row-wise Adagrad), 73 s outside it, 9.3 GB peak, NDCG@10 0.058;
LightFM WARP 129 s (0.39M/s), 4.4 GB, NDCG@10 0.066.

Peers: ``pip install -r benchmarks/requirements-peers.txt`` (see the notes at its top).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

SHAPES = {
    "small": (10_000, 2_000, 200_000),  # a check that everything runs, in about a minute
    "medium": (100_000, 20_000, 5_000_000),
    "large": (1_000_000, 100_000, 50_000_000),
}
SYSTEMS = ("hybridrec", "lightfm", "implicit")
DIM = 32
NUM_NEGATIVES = 10
THREADS = 2


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------- data
def _power_law(rng: np.random.Generator, n: int, size: int, exponent: float) -> np.ndarray:
    """``size`` ranks in ``0 .. n - 1`` with density ``(x + 1) ** -exponent``: inverse CDF."""
    u = rng.random(size)
    if abs(exponent - 1.0) < 1e-9:
        x = np.expm1(u * math.log1p(n))
    else:
        a = 1.0 - exponent
        x = (1.0 + u * ((n + 1.0) ** a - 1.0)) ** (1.0 / a) - 1.0
    return np.minimum(x.astype(np.int64), n - 1)


def make_positives(
    num_users: int,
    num_items: int,
    num_positives: int,
    *,
    seed: int = 0,
    user_exponent: float = 0.5,
    item_exponent: float = 1.0,
    num_clusters: int = 50,
    taste: float = 0.6,
    min_per_user: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Exactly ``num_positives`` distinct (user, item) pairs, in random order (see the docstring).

    Returns:
      (users, items), each (num_positives,) int32.
    """
    rng = np.random.default_rng(seed)
    user_perm = rng.permutation(num_users)  # activity rank -> user
    item_perm = rng.permutation(num_items)  # popularity rank -> item
    cluster = rng.integers(0, num_clusters, num_users)
    per_cluster = num_items // num_clusters
    keys = np.zeros(0, np.int64)
    draw = int(num_positives * 1.35)  # about a fifth of the draws repeat a pair
    while True:
        first = len(keys) == 0
        base = np.repeat(np.arange(num_users), min_per_user if first else 0)
        more = max(draw - len(base), 0)
        users = np.concatenate([base, user_perm[_power_law(rng, num_users, more, user_exponent)]])
        # Popularity rank r belongs to cluster r % num_clusters: a cluster's popular items are
        # popular overall, so the item marginal stays a power law.
        ranks = _power_law(rng, num_items, len(users), item_exponent)
        in_taste = rng.random(len(users)) < taste
        within = _power_law(rng, per_cluster, int(in_taste.sum()), item_exponent)
        ranks[in_taste] = within * num_clusters + cluster[users[in_taste]]
        items = item_perm[ranks]
        keys = np.concatenate([keys, users.astype(np.int64) * num_items + items])
        keys.sort()
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
        if len(keys) >= num_positives:
            break
        draw = int((num_positives - len(keys)) * 2) + 1000
    surplus = len(keys) - num_positives
    if surplus:
        drop = rng.choice(len(keys), surplus, replace=False)
        keys = np.delete(keys, drop)
    keys = keys[rng.permutation(len(keys))]
    return (keys // num_items).astype(np.int32), (keys % num_items).astype(np.int32)


def write_data(args: argparse.Namespace, workdir: str) -> dict:
    """Generates the positives, writes them (parquet for the trainer, .npy for the peers)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    num_users, num_items, num_positives = SHAPES[args.shape]
    t0 = time.perf_counter()
    users, items = make_positives(
        num_users, num_items, num_positives, seed=args.seed, taste=args.taste
    )
    gen_s = time.perf_counter() - t0
    user_counts = np.bincount(users, minlength=num_users)
    item_counts = np.bincount(items, minlength=num_items)
    # The files dataset maps raw IDs through their sorted unique values: the identity when
    # every ID occurs, which keeps the trainer's indices equal to these arrays' (checked here).
    if (user_counts == 0).any() or (item_counts == 0).any():
        raise SystemExit(
            f"{(user_counts == 0).sum()} users / {(item_counts == 0).sum()} items have no "
            "positive: raise --min-per-user"
        )
    t0 = time.perf_counter()
    path = os.path.join(workdir, "positives.parquet")
    pq.write_table(pa.table({"user_id": users, "item_id": items}), path)
    np.save(os.path.join(workdir, "users.npy"), users)
    np.save(os.path.join(workdir, "items.npy"), items)
    write_s = time.perf_counter() - t0
    return dict(
        path=path,
        num_users=num_users,
        num_items=num_items,
        num_positives=num_positives,
        generate_s=gen_s,
        write_s=write_s,
        max_user_positives=int(user_counts.max()),
        max_item_positives=int(item_counts.max()),
        parquet_mb=os.path.getsize(path) / 2**20,
    )


def load_split(workdir: str, shape: tuple[int, int, int], test_p: float):
    """The trainer's split, made the same way from the same rows: (train, test) Interactions."""
    from hybridrec import Interactions
    from hybridrec.data import splits

    num_users, num_items, _ = shape
    users = np.load(os.path.join(workdir, "users.npy"))
    items = np.load(os.path.join(workdir, "items.npy"))
    data = Interactions.from_arrays(users, items, num_users=num_users, num_items=num_items)
    split = splits.make_split(data, dict(name="random", test_p=test_p, seed=0))
    return split.train, split.test


def ndcg_at_10(score_fn, train, test) -> float:
    """hybridrec's evaluator, the trainer's settings: filtered full ranking, NDCG@10."""
    from hybridrec.evaluation import evaluate

    result = evaluate(
        score_fn, test, train=train, ks=(10,), metrics=("ndcg", "recall"), mode="filtered"
    )
    return float(result.metrics["val/ndcg@10"])


# ----------------------------------------------------------------------------- systems
def run_hybridrec(args: argparse.Namespace, info: dict) -> dict:
    from experiments.configs import mf
    from hybridrec.train import train_and_evaluate

    config = mf.get_config()
    config.progress = False
    config.plots = False
    # Data: the only data change; the split the peers are scored on.
    config.data.name = "files"
    config.data.implicit_threshold = None
    config.data.files = dict(interactions=info["path"], user_col="user_id", item_col="item_id")
    config.split = dict(name="random", test_p=info["test_p"], seed=0)
    # Model: the only other change.
    config.model.embedding_dim = DIM
    assert config.train.num_negatives == NUM_NEGATIVES, "mf.py's negatives changed"
    config.train.num_epochs = args.epochs
    apply_overrides(config, json.loads(args.override))  # e.g. {"train.batch_size": 4096}
    # Evals: once, after the last epoch (the plateau schedule would need one per epoch).
    config.optimizer.plateau = None
    config.eval.every_epochs = args.epochs
    config.eval.mode = "filtered"
    config.eval.ks = (10,)
    config.eval.metrics = ("ndcg", "recall")
    config.checkpoint.every_epochs = args.epochs

    with tempfile.TemporaryDirectory(prefix="bench_scale_run_", dir=args.tmp) as workdir:
        t0 = time.perf_counter()
        metrics = train_and_evaluate(config, workdir)
        wall = time.perf_counter() - t0
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            records = [json.loads(line) for line in f if line.strip()]
    epoch_s = [r["train/epoch_time_s"] for r in records if "train/epoch_time_s" in r]
    return dict(
        epoch_s=epoch_s,
        wall_s=wall,
        compile_s=metrics.get("train/compile_s"),
        ndcg_at_10=metrics.get("val/ndcg@10"),
        recall_at_10=metrics.get("val/recall@10"),
        config=f"mf.py, dim {DIM}, {config.train.num_negatives} {config.train.sampler} negatives, "
        f"batch {config.train.batch_size}, embeddings {_embeddings_optimizer(config, info)}",
    )


def apply_overrides(config, overrides: dict) -> None:
    """Sets ``{"section.key": value}`` entries on ``config`` in place (``--override`` here and in
    ``bench_hybrid.py``).

    Raises:
      SystemExit: a section or key the config does not have, with its name.
    """
    for dotted, value in overrides.items():
        *sections, name = dotted.split(".")
        target = config
        for part in sections:
            if part not in target:
                raise SystemExit(f"--override {dotted!r}: the config has no section {part!r}")
            target = target[part]
        if name not in target:
            raise SystemExit(f"--override {dotted!r}: the config has no key {name!r}")
        with target.ignore_type():  # e.g. a dict for a placeholder, an int for a float
            target[name] = value


def _embeddings_optimizer(config, info: dict) -> str:
    """What ``hybridrec.optim.build`` gives the ID tables at this shape, in words."""
    spec = config.optimizer.embeddings
    large = max(info["num_users"], info["num_items"]) >= (spec.get("sparse_above_rows") or 2**63)
    if large and spec.get("large_tables"):
        spec = spec.large_tables
        return f"{spec.get('sparse') or spec.name} lr {spec.learning_rate} (large tables)"
    sparse = spec.get("sparse") or large
    return f"{spec.name}{' (row-sparse)' if sparse else ''} lr {spec.learning_rate}"


def run_lightfm(args: argparse.Namespace, info: dict) -> dict:
    import scipy.sparse as sp
    from lightfm import LightFM

    t0 = time.perf_counter()
    train, test = load_split(args.tmp, SHAPES[args.shape], info["test_p"])
    matrix = sp.coo_matrix(
        (np.ones(len(train), np.float32), (train.user_ids, train.item_ids)),
        shape=(train.num_users, train.num_items),
    )
    model = LightFM(no_components=DIM, loss="warp", random_state=args.seed)
    epoch_s = []
    for _ in range(args.epochs):
        t = time.perf_counter()
        model.fit_partial(matrix, epochs=1, num_threads=THREADS)
        epoch_s.append(time.perf_counter() - t)
    users_emb, items_emb = model.user_embeddings, model.item_embeddings
    item_bias = model.item_biases

    def score_fn(user_ids):
        return users_emb[user_ids] @ items_emb.T + item_bias

    t_eval = time.perf_counter()
    ndcg = ndcg_at_10(score_fn, train, test)
    return dict(
        epoch_s=epoch_s,
        wall_s=t_eval - t0,
        eval_s=time.perf_counter() - t_eval,
        ndcg_at_10=ndcg,
        config=f"WARP, dim {DIM}, {THREADS} threads",
    )


def run_implicit(args: argparse.Namespace, info: dict) -> dict:
    import scipy.sparse as sp
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    t0 = time.perf_counter()
    train, test = load_split(args.tmp, SHAPES[args.shape], info["test_p"])
    matrix = sp.csr_matrix(
        (np.ones(len(train), np.float32), (train.user_ids, train.item_ids)),
        shape=(train.num_users, train.num_items),
    )
    model = BayesianPersonalizedRanking(
        factors=DIM, iterations=args.epochs, num_threads=THREADS, random_state=args.seed
    )
    stamps = [time.perf_counter()]
    model.fit(matrix, show_progress=False, callback=lambda *a: stamps.append(time.perf_counter()))
    epoch_s = list(np.diff(stamps))
    users_emb, items_emb = np.asarray(model.user_factors), np.asarray(model.item_factors)

    def score_fn(user_ids):
        return users_emb[user_ids] @ items_emb.T

    t_eval = time.perf_counter()
    ndcg = ndcg_at_10(score_fn, train, test)
    return dict(
        epoch_s=epoch_s,
        wall_s=t_eval - t0,
        eval_s=time.perf_counter() - t_eval,
        ndcg_at_10=ndcg,
        config=f"BPR (1 negative), dim {DIM}, {THREADS} threads",
    )


RUNNERS = {"hybridrec": run_hybridrec, "lightfm": run_lightfm, "implicit": run_implicit}


def installed(system: str) -> bool:
    if system == "hybridrec":
        return True
    import importlib.util

    return importlib.util.find_spec(system) is not None


# ----------------------------------------------------------------------------- driver
def run_system(system: str, args: argparse.Namespace, info: dict) -> dict:
    """Runs one system in a subprocess; returns its figures (or an ``error``)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", HYBRIDREC_NO_DOWNLOAD="1")
    cmd = [sys.executable, __file__, "--in-process", system, "--info", json.dumps(info)]
    cmd += sys.argv[1:]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    process_s = time.perf_counter() - start
    if proc.returncode != 0:
        return dict(system=system, error=(proc.stderr or proc.stdout)[-3000:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_s"] = process_s
    return result


def summarize(result: dict, num_train: int) -> dict:
    epochs = result["epoch_s"]
    result["positives_per_s"] = [num_train / s for s in epochs]
    result["epoch_s_median"] = float(np.median(epochs))
    result["outside_epochs_s"] = result["wall_s"] - float(np.sum(epochs))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=tuple(SHAPES), default="medium")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated")
    parser.add_argument("--eval-pairs", type=int, default=10_000, help="held-out pairs")
    parser.add_argument("--taste", type=float, default=0.6, help="share of in-cluster positives")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--override",
        default="{}",
        help="JSON of hybridrec config overrides, e.g. '{\"train.batch_size\": 4096}'",
    )
    parser.add_argument("--json-out", help="also write all figures to this JSON file")
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    parser.add_argument("--in-process", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--info", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.in_process:  # internal: one system, JSON on the last line of stdout
        start = time.perf_counter()
        result = RUNNERS[args.in_process](args, json.loads(args.info))
        result.update(system=args.in_process, peak_rss_mb=peak_rss_mb())
        result["in_process_s"] = time.perf_counter() - start
        print(json.dumps(result))
        return

    import jax

    device = f"jax {jax.__version__} on {jax.devices()[0].device_kind} ({jax.default_backend()})"
    print(f"{device}, {os.cpu_count()} CPUs; shape {args.shape} {SHAPES[args.shape]}", flush=True)
    systems = [s for s in args.systems.split(",") if s]
    missing = [s for s in systems if not installed(s)]
    systems = [s for s in systems if installed(s)]
    if missing:
        print(f"not installed, skipped: {', '.join(missing)} (benchmarks/requirements-peers.txt)")
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        args.tmp = tmp
        sys.argv += ["--tmp", tmp]
        info = write_data(args, tmp)
        info["test_p"] = args.eval_pairs / info["num_positives"]
        num_train = int((1.0 - info["test_p"]) * info["num_positives"])  # random_split's cut
        print(
            f"data: {info['num_positives']:,} positives ({num_train:,} train), generated in "
            f"{info['generate_s']:.1f} s, written in {info['write_s']:.1f} s "
            f"({info['parquet_mb']:.0f} MiB parquet); busiest user {info['max_user_positives']:,}"
            f", busiest item {info['max_item_positives']:,}",
            flush=True,
        )
        results = []
        for system in systems:
            load = os.getloadavg()
            result = run_system(system, args, info)
            result["load_before"] = [round(x, 2) for x in load]
            result["load_after"] = [round(x, 2) for x in os.getloadavg()]
            if "error" in result:
                print(f"{system}: failed\n{result['error']}", flush=True)
                continue
            results.append(summarize(result, num_train))
            print(json.dumps(result), flush=True)

    print(
        f"\n{device}; {args.shape}: {info['num_users']:,} users x {info['num_items']:,} items x "
        f"{info['num_positives']:,} positives; {args.epochs} epoch(s); NDCG@10 on "
        f"{args.eval_pairs:,} held-out pairs (filtered)"
    )
    header = (
        f"{'system':<10} {'positives/s per epoch':<26} {'epoch s':>8} {'outside s':>9} "
        f"{'compile s':>9} {'peak GB':>7} {'NDCG@10':>8} {'speed vs hr':>11} {'NDCG vs hr':>10}"
    )
    print(header)
    ref = next((r for r in results if r["system"] == "hybridrec"), None)
    for r in results:
        rates = ", ".join(f"{x / 1e6:.2f}M" for x in r["positives_per_s"])
        speed = ndcg_ratio = ""
        if ref is not None and r is not ref:
            speed = f"{np.median(r['positives_per_s']) / np.median(ref['positives_per_s']):.2f}x"
            if ref.get("ndcg_at_10"):
                ndcg_ratio = f"{r['ndcg_at_10'] / ref['ndcg_at_10']:.2f}x"
        compile_s = r.get("compile_s")
        print(
            f"{r['system']:<10} {rates:<26} {r['epoch_s_median']:>8.2f} "
            f"{r['outside_epochs_s']:>9.1f} {'' if compile_s is None else f'{compile_s:.1f}':>9} "
            f"{r['peak_rss_mb'] / 1024:>7.2f} {r['ndcg_at_10']:>8.4f} {speed:>11} {ndcg_ratio:>10}"
        )
    for r in results:
        print(f"  {r['system']}: {r['config']}; load {r['load_before']} -> {r['load_after']}")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(
                dict(device=device, shape=args.shape, info=info, results=results), f, indent=1
            )


if __name__ == "__main__":
    main()
