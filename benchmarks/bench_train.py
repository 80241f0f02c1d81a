"""Training-loop throughput: samples per second and compile time of ``train_and_evaluate``.

Cases (each in its own subprocess, so that its peak resident memory is its own):

- ``ml100k``: matrix factorization, dimension 32, adaptive hinge over 10 negatives, batch 1024,
  on MovieLens 100K under ``mf.py``'s protocol (ratings >= 4, Collie's split: 49,426 training
  positives per epoch), negatives from ``mf.py``'s sampler (``uniform_exact``: never one of the
  user's positives). Targets on a 2-core CPU: at least 1M positive samples per second after
  compilation, compilation under 10 s.
- ``ml100k-uniform``: the same with plain uniform negatives (``train.sampler="uniform"``, which
  may draw a positive), to show what exact sampling costs.
- ``synthetic-dense``: the same model on synthetic data with 1M users and 100k items (a random
  split; ``--synthetic-interactions`` positives), dense Adam on the embedding tables: every step
  reads and writes all 1.1M rows and both Adam moments.
- ``synthetic-sparse``: the same with row-sparse updates (``optimizer.embeddings.sparse=True``,
  ``hybridrec.sparse``: lazy Adam on the rows of the batch only; biases stay dense SGD).

The real loop reports ``train/samples_per_s`` (training positives per second of epoch time:
the host shuffle, the jitted chunks of steps and the loss transfer, evaluation excluded) and
``train/compile_s`` (ahead-of-time compilation of the chunk of steps;
the evaluation kernel compiles later and is not included). Evaluation runs only after the last
epoch. Every figure is printed with the load average (1, 5, 15 min) before and after the case:
on a shared machine, a load above the number of cores means the timings are pessimistic.

    python benchmarks/bench_train.py                       # all cases, a few minutes
    python benchmarks/bench_train.py --case ml100k --epochs 30
    python benchmarks/bench_train.py --case synthetic-sparse --synthetic-interactions 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

CASES = ("ml100k", "ml100k-uniform", "synthetic-dense", "synthetic-sparse")


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def base_config(args):
    """``mf.py`` with the benchmark's sizes, evaluation only after the last epoch."""
    from experiments.configs import mf

    config = mf.get_config()
    config.progress = False
    config.plots = False
    config.model.embedding_dim = args.dim
    config.train.num_negatives = args.num_negatives
    config.train.batch_size = args.batch_size
    config.optimizer.plateau = None  # it would need an evaluation every epoch
    config.eval.mode = "filtered"
    config.eval.ks = (10,)
    config.eval.metrics = ("ndcg", "recall")
    return config


def case_config(case: str, args):
    config = base_config(args)
    if case.startswith("ml100k"):
        config.train.num_epochs = args.epochs
        if case == "ml100k-uniform":
            config.train.sampler = "uniform"
    else:
        config.data.name = "synthetic"
        config.data.implicit_threshold = None
        config.data.synthetic = dict(
            num_users=1_000_000,
            num_items=100_000,
            num_interactions=args.synthetic_interactions,
            min_user_interactions=0,  # the default (5 each) would need 5M interactions
            flavour="plain",
            seed=0,
        )
        # A few thousand held-out pairs: full-ranking 1M users over 100k items would dominate.
        config.split = dict(name="random", test_p=2000 / args.synthetic_interactions, seed=0)
        config.train.num_epochs = args.synthetic_epochs
        if case == "synthetic-sparse":
            config.optimizer.embeddings = dict(name="adam", learning_rate=1e-2, sparse=True)
    config.eval.every_epochs = config.train.num_epochs
    config.checkpoint.every_epochs = config.train.num_epochs
    return config


def run_loop(config) -> dict:
    """The real training loop in a temporary run directory."""
    import numpy as np

    from hybridrec.train import train_and_evaluate

    with tempfile.TemporaryDirectory(prefix="bench_train_") as workdir:
        start = time.perf_counter()
        metrics = train_and_evaluate(config, workdir)
        wall = time.perf_counter() - start
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            records = [json.loads(line) for line in f if line.strip()]
    epoch_times = [r["train/epoch_time_s"] for r in records if "train/epoch_time_s" in r]
    mean_rate = metrics["train/samples_per_s"]
    return dict(
        samples_per_s=mean_rate,
        # The fastest epoch: less sensitive to other jobs' bursts than the mean.
        best_epoch_samples_per_s=mean_rate * np.mean(epoch_times) / min(epoch_times),
        compile_s=metrics["train/compile_s"],
        wall_s=wall,
        epochs=metrics["train/epochs"],
        ndcg_at_10=metrics.get("val/ndcg@10"),
    )


def run_case(case: str, args) -> dict:
    """Runs one case in this process and returns its figures."""
    os.environ.setdefault("HYBRIDREC_NO_DOWNLOAD", "1")
    load_before = os.getloadavg()
    config = case_config(case, args)
    result = run_loop(config)
    result.update(
        case=case,
        batch_size=args.batch_size,
        ms_per_step=1e3 * args.batch_size / result["samples_per_s"],
        peak_rss_mb=peak_rss_mb(),
        load_before=[round(x, 2) for x in load_before],
        load_after=[round(x, 2) for x in os.getloadavg()],
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=(*CASES, "all"), default="all")
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--num-negatives", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=30, help="MovieLens epochs")
    parser.add_argument("--synthetic-interactions", type=int, default=200_000)
    parser.add_argument("--synthetic-epochs", type=int, default=1)
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.in_process:  # internal: one case, JSON on the last line of stdout
        print(json.dumps(run_case(args.case, args)))
        return

    import jax

    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs; MF dim "
        f"{args.dim}, {args.num_negatives} negatives, batch {args.batch_size}",
        flush=True,
    )
    forwarded = [a for a in sys.argv[1:] if not a.startswith("--case")]
    forwarded = [a for a in forwarded if a not in (*CASES, "all")]
    header = (
        f"{'case':<18} {'samples/s':>11} {'best epoch':>11} {'ms/step':>8} {'compile s':>9} "
        f"{'wall s':>7} {'peak MiB':>8}  load before -> after (1/5/15 min)"
    )
    rows = []
    for case in CASES if args.case == "all" else (args.case,):
        proc = subprocess.run(
            [sys.executable, __file__, "--case", case, "--in-process", *forwarded],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(f"{case}: failed\n{proc.stderr[-3000:]}", flush=True)
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(
            f"{case:<18} {result['samples_per_s']:>11,.0f} "
            f"{result['best_epoch_samples_per_s']:>11,.0f} {result['ms_per_step']:>8.2f} "
            f"{result['compile_s']:>9.2f} {result['wall_s']:>7.1f} {result['peak_rss_mb']:>8.0f}  "
            f"{result['load_before']} -> {result['load_after']}"
        )
        print(json.dumps(result), flush=True)
    print("\n" + header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
