"""Benchmark and data-card report of the side-feature tables (``hybridrec.data.features``).

Times building the feature tables (fit the dataset's schema on every entity, then encode every
item and user) for MovieLens 100K and the synthetic flavours at 100k items, and their peak
memory; with ``--report`` prints, per dataset, the markdown table of feature fields, coverage
and vocabulary sizes that the data cards use.

Usage (from the repository root)::

    python benchmarks/bench_features.py                      # timings, all datasets
    python benchmarks/bench_features.py --report             # plus the coverage tables
    python benchmarks/bench_features.py --datasets movielens-100k --movielens-path DIR

Budgets (2-core CPU): MovieLens 100K under 5 s, synthetic 100k-item tables under 60 s.
Each dataset runs in a fresh subprocess so its peak RSS is its own. ``build`` is fit +
transform of every entity; ``peak traced`` is the largest memory that Python and numpy
allocated during a second, traced build (``tracemalloc``); ``peak RSS`` is the child process's
maximum resident set, including the dataset itself and the imported libraries.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc

BUDGETS_S = {"movielens-100k": 5.0, "synthetic": 60.0}
DATASETS = ("movielens-100k", "synthetic-movies", "synthetic-beer", "synthetic-products")


def _load(name: str, args: argparse.Namespace):
    """The dataset ``name``; synthetic flavours at ``args.synthetic_items`` items."""
    if name == "movielens-100k":
        from hybridrec.data.datasets.movielens import load_movielens_100k

        return load_movielens_100k(args.movielens_path)
    from hybridrec.data.datasets.synthetic import make_synthetic

    flavour = name.removeprefix("synthetic-")
    num_items = args.synthetic_items
    if flavour == "products":  # item-pair task: the users are the items
        return make_synthetic(
            num_items=num_items,
            num_interactions=2 * num_items,
            min_user_interactions=1,
            flavour=flavour,
            seed=0,
        )
    return make_synthetic(
        num_users=max(1, num_items // 10),
        num_items=num_items,
        num_interactions=2 * num_items,
        flavour=flavour,
        seed=0,
    )


def _build(dataset):
    """Fits the dataset's schema on all its entities and encodes them."""
    from hybridrec.data.features import FeatureEncoder
    from hybridrec.data.schemas import get_schema

    encoder = FeatureEncoder(get_schema(dataset.name)).fit_dataset(dataset)
    return encoder, encoder.transform_dataset(dataset)


def run_case(name: str, args: argparse.Namespace) -> dict:
    """Loads, builds (timed, then traced) and describes one dataset."""
    from hybridrec.data.features import coverage_table

    t0 = time.perf_counter()
    dataset = _load(name, args)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    encoder, features = _build(dataset)
    build_s = time.perf_counter() - t0
    tracemalloc.start()
    _build(dataset)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    nbytes = sum(a.nbytes for f in features.values() for a in f.arrays.values())
    return {
        "dataset": name,
        "num_items": dataset.interactions.num_items,
        "num_users": dataset.interactions.num_users,
        "load_s": load_s,
        "build_s": build_s,
        "peak_traced_mb": peak / 2**20,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10,
        "output_mb": nbytes / 2**20,
        "budget_s": BUDGETS_S["synthetic" if name.startswith("synthetic") else name],
        "table": coverage_table(encoder, features),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated names")
    parser.add_argument("--movielens-path", default=None, help="ml-100k folder (default: cache)")
    parser.add_argument("--synthetic-items", type=int, default=100_000)
    parser.add_argument("--report", action="store_true", help="print the coverage tables")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args(argv)

    if args.case:
        print(json.dumps(run_case(args.case, args)))
        return 0

    results = []
    for name in args.datasets.split(","):
        cmd = [sys.executable, __file__, "--case", name]
        cmd += ["--synthetic-items", str(args.synthetic_items)]
        if args.movielens_path:
            cmd += ["--movielens-path", args.movielens_path]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{name}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            return 1
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    print(
        "| dataset | items | users | load s | build s | budget s | peak traced MB | "
        "peak RSS MB | arrays MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    ok = True
    for r in results:
        within = r["build_s"] < r["budget_s"]
        ok &= within
        print(
            f"| {r['dataset']} | {r['num_items']:,} | {r['num_users']:,} | {r['load_s']:.2f} | "
            f"{r['build_s']:.2f} | {r['budget_s']:.0f} {'ok' if within else 'OVER'} | "
            f"{r['peak_traced_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['output_mb']:.1f} |"
        )
    if args.report:
        for r in results:
            print(f"\n### {r['dataset']} ({r['num_items']:,} items, {r['num_users']:,} users)\n")
            print(r["table"])
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
