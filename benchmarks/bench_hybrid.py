"""The hybrid model on MovieLens 100K beside LightFM's hybrid model: time and quality, per seed.

For each seed, in this one process and on the same split (``hybrid.py``'s protocol: ratings >= 4,
Collie's per-user 10% validation split):

- ``hybridrec``: ``experiments/configs/hybrid.py`` as shipped (ID + genre, year and title towers
  for items; ID, demographics and the history tower for users), trained by
  ``hybridrec.train.train_and_evaluate``. Reported: the epochs' time (``train/epoch_time_s``
  summed), the whole run's wall time (loading, compiling, evaluating every epoch, saving), the
  training samples per second of epoch time, compile time.
- ``lightfm``: LightFM WARP with identity features plus the same item fields as the config's
  towers (``experiments.cold_start.fit_lightfm``: dimension 64, 30 epochs, 2 threads). Reported:
  its ``fit`` time and positives per second over its epochs.

Both are scored by hybridrec's evaluator (filtered full ranking, expected ties): NDCG@10,
Recall@10, AUC. The last lines give the means over seeds, the ratios, and paired t-tests over
the (seed, user) pairs. Peak RSS is the process's (both systems run in it).

    python benchmarks/bench_hybrid.py                 # 3 seeds, ~3 min on 2 quiet cores
    python benchmarks/bench_hybrid.py --seeds 5 --config hybrid.py:no_history
    python benchmarks/bench_hybrid.py --seeds 5 --ease   # and EASE, paired against hybridrec
    python benchmarks/bench_hybrid.py --seeds 5 --config beer_hybrid.py --ease --ease-l2 100
    python benchmarks/bench_hybrid.py --seeds 5 --ease --ease-l2 200 --override \
        '{"data.name": "synthetic", "features.schema": "synthetic-movies",
          "data.synthetic": {"flavour": "movies", "num_users": 943, "num_items": 1682,
                             "num_interactions": 100000, "explicit": true, "seed": 0},
          "split": {"name": "stratified", "test_p": 0.1, "seed": 42, "force_split": true}}'

``--override`` (JSON, dotted keys) changes the config of every system alike: hybridrec's, the
data LightFM reads, and the data and split EASE is fitted on. The last command is ``hybrid.py``
on synthetic movies of MovieLens 100K's size (the generator's planted signal, the same fields).

LightFM: ``pip install -r benchmarks/requirements-peers.txt`` (see the notes at its top).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

METRICS = ("ndcg@10", "recall@10", "auc")
# Collie's conventions (training items count against the model), printed for hybridrec.
COLLIE_METRICS = ("collie_map@10", "collie_mrr", "collie_auc")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_hybridrec(config, workdir: str) -> dict:
    from hybridrec.train import train_and_evaluate

    t0 = time.perf_counter()
    metrics = train_and_evaluate(config, workdir)
    wall = time.perf_counter() - t0
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    epoch_s = sum(r["train/epoch_time_s"] for r in records if "train/epoch_time_s" in r)
    per_user = np.load(os.path.join(workdir, "per_user.npz"))
    return dict(
        train_s=epoch_s,
        wall_s=wall,
        compile_s=metrics.get("train/compile_s"),
        samples_per_s=metrics.get("train/samples_per_s"),
        **{m: metrics[f"val/{m}"] for m in METRICS},
        **{m: metrics[f"val/{m}"] for m in COLLIE_METRICS if f"val/{m}" in metrics},
        per_user={
            m: dict(zip(per_user[f"val/{m}:user_ids"].tolist(), per_user[f"val/{m}"].tolist()))
            for m in METRICS
        },
    )


def run_lightfm(config, seed: int, threads: int) -> dict:
    from experiments.cold_start import LIGHTFM_EPOCHS, _item_fields, fit_lightfm
    from hybridrec import evaluation
    from hybridrec.experiment import prepare_data

    data = prepare_data(config)  # the same split as the trainer's (same config and seed)
    t0 = time.perf_counter()
    score_fn, facts = fit_lightfm(data, _item_fields(config), seed=seed, num_threads=threads)
    wall = time.perf_counter() - t0
    result = evaluation.evaluate(
        score_fn,
        data.eval_splits["val"],
        train=data.train,
        ks=(10,),
        metrics=("ndcg", "recall", "auc"),
        mode="filtered",
        split_name="val",
    )
    per_user = {}
    for m in METRICS:
        ids, values = result.values(f"val/{m}")
        per_user[m] = dict(zip(ids.tolist(), values.tolist()))
    return dict(
        train_s=facts["fit_s"],
        wall_s=wall,
        samples_per_s=len(data.train) * LIGHTFM_EPOCHS / facts["fit_s"],
        **{m: result.metrics[f"val/{m}"] for m in METRICS},
        per_user=per_user,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="hybrid.py", help="config NAME[.py][:arg]")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="LightFM's threads")
    parser.add_argument(
        "--ease",
        action="store_true",
        help="also fit ease.py on the config's data and split and test hybridrec against it",
    )
    parser.add_argument(
        "--override",
        default="{}",
        help="JSON of config overrides for hybridrec, LightFM's data and EASE's data, e.g. "
        '\'{"data.name": "synthetic", "features.schema": "synthetic-movies"}\'',
    )
    parser.add_argument(
        "--ease-l2",
        type=float,
        help="EASE's l2 (default: ease.py's 500, chosen on MovieLens; 100 on the synthetic beer)",
    )
    args = parser.parse_args()
    overrides = json.loads(args.override)

    from benchmarks.bench_scale import apply_overrides
    from experiments.cold_start import load_config

    rows: dict[str, list[dict]] = {"hybridrec": [], "lightfm": []}
    try:
        import lightfm  # noqa: F401

        have_lightfm = True
    except ImportError:
        have_lightfm = False
        print("lightfm is not installed: hybridrec rows only (benchmarks/requirements-peers.txt)")
    header = (
        f"{'system':10} {'seed':>4} {'train s':>8} {'wall s':>7} {'samples/s':>10} "
        + " ".join(f"{m:>9}" for m in METRICS)
    )
    print(header)
    for seed in range(args.seeds):
        config = load_config(args.config)
        apply_overrides(config, overrides)
        config.seed = seed
        config.progress = False
        config.plots = False
        with tempfile.TemporaryDirectory(prefix="bench_hybrid_") as workdir:
            rows["hybridrec"].append(run_hybridrec(config, workdir))
        if have_lightfm:
            rows["lightfm"].append(run_lightfm(config, seed, args.threads))
        for system in rows:
            if len(rows[system]) > seed:
                r = rows[system][seed]
                print(
                    f"{system:10} {seed:4d} {r['train_s']:8.1f} {r['wall_s']:7.1f} "
                    f"{r['samples_per_s']:10,.0f} " + " ".join(f"{r[m]:9.4f}" for m in METRICS),
                    flush=True,
                )
    print(f"\nmeans over {args.seeds} seeds (peak RSS of this process {peak_rss_mb():,.0f} MB)")
    means = {
        s: {k: float(np.mean([r[k] for r in rs])) for k in ("train_s", "wall_s", *METRICS)}
        for s, rs in rows.items()
        if rs
    }
    for system, m in means.items():
        print(
            f"{system:10} train {m['train_s']:.1f} s, wall {m['wall_s']:.1f} s, "
            + ", ".join(f"{k} {m[k]:.4f}" for k in METRICS)
        )
    collie = [k for k in COLLIE_METRICS if all(k in r for r in rows["hybridrec"])]
    if collie:
        print(
            "hybridrec  Collie-compatible: "
            + ", ".join(f"{k} {np.mean([r[k] for r in rows['hybridrec']]):.4f}" for k in collie)
        )
    if args.ease:
        # EASE on the same data and split (deterministic: one fit serves every seed's pairs).
        # ease.py's l2 (500) was chosen on MovieLens; elsewhere give --ease-l2.
        config = load_config("ease.py")
        benchmarked = load_config(args.config)
        apply_overrides(benchmarked, overrides)
        config.data, config.split = benchmarked.data, benchmarked.split
        if args.ease_l2 is not None:
            config.model.l2 = args.ease_l2
        config.seed, config.progress, config.plots = 0, False, False
        with tempfile.TemporaryDirectory(prefix="bench_hybrid_ease_") as workdir:
            ease = run_hybridrec(config, workdir)
        print(f"ease (l2 {config.model.l2:g}) " + ", ".join(f"{k} {ease[k]:.4f}" for k in METRICS))
        _paired(rows["hybridrec"], [ease] * len(rows["hybridrec"]), "ease")
    if have_lightfm:
        print(
            f"hybridrec / lightfm: train time x{means['hybridrec']['train_s'] / means['lightfm']['train_s']:.2f}, "
            f"wall x{means['hybridrec']['wall_s'] / means['lightfm']['wall_s']:.2f}"
        )
        _paired(rows["hybridrec"], rows["lightfm"], "lightfm")


def _paired(ours_rows: list[dict], their_rows: list[dict], name: str) -> None:
    """Prints hybridrec minus ``name`` per metric, with a paired t-test over (seed, user)."""
    from scipy import stats

    for m in METRICS:
        a, b = [], []
        for ours, theirs in zip(ours_rows, their_rows):
            common = sorted(set(ours["per_user"][m]) & set(theirs["per_user"][m]))
            a += [ours["per_user"][m][u] for u in common]
            b += [theirs["per_user"][m][u] for u in common]
        t = stats.ttest_rel(a, b)
        print(
            f"  {m}: hybridrec - {name} = {np.mean(a) - np.mean(b):+.4f} "
            f"(paired t over {len(a)} (seed, user) pairs, p = {t.pvalue:.2g})"
        )


if __name__ == "__main__":
    main()
