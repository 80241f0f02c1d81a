"""Compares finished (or interrupted) runs side by side.

Usage (from the repository root)::

    python -m experiments.compare runs/mf runs/hybrid
    python -m experiments.compare runs/ --metrics val/ndcg@10,val/collie_map@10 \
        --out compare.md --plot curves.png

Each RUN_DIR is a run directory written by the training loop (``config.json``, ``metrics.json``,
``metrics.jsonl``, ``events.out.tfevents.*``) or a parent directory, in which case every directory
below it holding ``metrics.json``, ``metrics.jsonl`` or an events file is a run. The table has one
row per run (named by its directory), the chosen metrics, the wall time, and the config values that
differ between the runs (found by flattening the configs, so nothing has to be named). It is
printed as markdown; ``--out X.md`` also writes ``X.md`` and ``X.csv``; ``--plot`` draws the
learning curves of all runs on shared axes, one subplot per metric.

A run without ``metrics.json`` (interrupted) is still compared: its last logged values come from
``metrics.jsonl`` (flushed at every logging call, so it is the most complete record of a killed
run), or from the TensorBoard event files when there is no jsonl; the ``status`` column then
says at which step it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hybridrec.logging import flatten_config
from hybridrec.plots import learning_curve, plot_run_comparison, read_records

__all__ = [
    "RunNotFoundError",
    "compare_runs",
    "differing_config_keys",
    "find_runs",
    "is_run_dir",
    "load_run",
    "load_runs",
    "main",
    "read_events",
    "runs_table",
    "to_markdown",
]

WALL_TIME = "wall_time_s"
# Flattened config keys whose last part names a location: they differ between any two runs and
# say nothing about the experiment.
_LOCATION_SUFFIXES = ("workdir", "_dir", "_path")
# Substrings of metric names where lower is better (for bolding the best value).
_LOWER_IS_BETTER = ("loss", "error", "rmse", "mse", "mae", "time")
# Progress counters a metrics file may carry: not metrics, left out of the default columns.
_COUNTERS = ("step", "time", "epoch")


class RunNotFoundError(ValueError):
    """Raised when a path given as a run holds no run (or does not exist)."""


# ---------------------------------------------------------------------------------------------
# Finding and reading runs
# ---------------------------------------------------------------------------------------------


def _event_files(path: str) -> list[str]:
    return sorted(f for f in os.listdir(path) if "tfevents" in f)


def is_run_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a run: ``metrics.json``, ``metrics.jsonl`` or an events file."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return False
    names = os.listdir(path)
    return any(n in ("metrics.json", "metrics.jsonl") or "tfevents" in n for n in names)


def find_runs(path: str | os.PathLike) -> list[tuple[str, str]]:
    """The runs at or below ``path``.

    Args:
      path: a run directory, or a directory with runs somewhere below it (a run's own
        subdirectories, such as ``checkpoints/``, are not searched).

    Returns:
      ``[(name, run_dir), ...]`` sorted by name; the name is the run directory's base name when
      ``path`` is a run, else its path relative to ``path`` (``"ablation/seed0"``).

    Raises:
      RunNotFoundError: ``path`` does not exist, is not a directory, or holds no run.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise RunNotFoundError(f"{path}: no such directory")
    if not os.path.isdir(path):
        raise RunNotFoundError(f"{path}: not a directory (expected a run directory or a parent)")
    if is_run_dir(path):
        return [(os.path.basename(os.path.abspath(path)), path)]
    runs = []
    for root, subdirs, _ in os.walk(path):
        subdirs.sort()
        if root != path and is_run_dir(root):
            runs.append((os.path.relpath(root, path), root))
            subdirs.clear()  # do not look for runs inside a run (checkpoints/, plots/)
    if not runs:
        raise RunNotFoundError(
            f"{path}: no run here or below (a run directory holds metrics.json, metrics.jsonl "
            "or an events.out.tfevents.* file)"
        )
    return sorted(runs)


def _numeric_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_numeric_metrics(value, f"{name}/"))
        elif isinstance(value, bool) or value is None:
            continue
        else:
            try:
                # non-finite values are stored as the strings "nan"/"inf" (logging._jsonable)
                out[name] = float(value)
            except (TypeError, ValueError):
                continue  # a string such as a best checkpoint's name: not a metric
    return out


def _read_json(path: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise RunNotFoundError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from e


def read_events(run_dir: str | os.PathLike) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Reads scalars and hparams from the TensorBoard event files directly in ``run_dir``.

    Uses tensorboard's ``EventAccumulator`` (no TensorFlow), which reads every events file of the
    directory in order and, like TensorBoard, drops values logged past a step that a resumed
    run later went back to.

    Args:
      run_dir: a directory containing ``events.out.tfevents.*`` files.

    Returns:
      ``(records, hparams)``: records in the ``metrics.jsonl`` form, one per step
      (``{"step": int, "time": float, tag: value, ...}``) sorted by step, and the flat hparams of
      the HParams tab (``{}`` when none were logged).
    """
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.plugins.hparams import metadata as hparams_metadata
    from tensorboard.util import tensor_util

    acc = ea.EventAccumulator(os.fspath(run_dir), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    by_step: dict[int, dict[str, Any]] = {}

    def add(step: int, wall_time: float, tag: str, value: float) -> None:
        record = by_step.setdefault(int(step), {"step": int(step), "time": wall_time})
        record["time"] = max(record["time"], wall_time)
        record[tag] = float(value)

    tags = acc.Tags()
    for tag in tags.get(ea.SCALARS, []):
        for event in acc.Scalars(tag):
            add(event.step, event.wall_time, tag, event.value)
    # Writers using the TF2 summary API store scalars as tensors of the scalars plugin.
    for tag in tags.get(ea.TENSORS, []):
        if acc.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
            continue
        for event in acc.Tensors(tag):
            add(event.step, event.wall_time, tag, tensor_util.make_ndarray(event.tensor_proto))

    hparams: dict[str, Any] = {}
    # Event files written without hparams (another tool's, or a run killed before it logged
    # them) have no hparams plugin at all, and EventAccumulator raises KeyError for it.
    try:
        content = acc.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    except KeyError:
        content = {}
    if hparams_metadata.SESSION_START_INFO_TAG in content:
        info = hparams_metadata.parse_session_start_info_plugin_data(
            content[hparams_metadata.SESSION_START_INFO_TAG]
        )
        for name, value in info.hparams.items():
            kind = value.WhichOneof("kind")
            hparams[name] = getattr(value, kind) if kind else None
    return [by_step[s] for s in sorted(by_step)], hparams


def _last_values(history: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    # File order is time order: the last record holding a tag is its most recent value.
    out: dict[str, float] = {}
    for record in history:
        out.update(_numeric_metrics({k: v for k, v in record.items() if k not in ("step", "time")}))
    return out


def load_run(run_dir: str | os.PathLike, name: str | None = None) -> dict[str, Any]:
    """Reads one run directory.

    Args:
      run_dir: a directory written by the training loop.
      name: the run's name (default: the directory's base name).

    Returns:
      A dict with
      ``name`` (str), ``path`` (str),
      ``config`` (nested dict from ``config.json``; ``{}`` if absent),
      ``flat_config`` (``{"model.embedding_dim": 32, ...}``; from the events' hparams when there
      is no ``config.json``),
      ``metrics`` (``{tag: float}``: ``metrics.json``, or the last logged values of an interrupted
      run), ``wall_time_s`` (float; NaN if unknown; for an interrupted run, the span of its logs),
      ``history`` (``metrics.jsonl`` records, or the same form rebuilt from the events),
      ``complete`` (bool: ``metrics.json`` exists), ``last_step`` (int or None),
      ``source`` (where ``metrics`` came from: ``"metrics.json"``, ``"metrics.jsonl"``,
      ``"events"`` or ``"none"``).

    Raises:
      RunNotFoundError: ``run_dir`` is not a run directory, or one of its JSON files is broken.
    """
    path = os.fspath(run_dir)
    if not is_run_dir(path):
        raise RunNotFoundError(
            f"{path}: not a run directory (no metrics.json, metrics.jsonl or events file)"
        )
    hparams: dict[str, Any] = {}
    jsonl = os.path.join(path, "metrics.jsonl")
    if os.path.exists(jsonl):
        history, history_source = read_records(jsonl), "metrics.jsonl"
    elif _event_files(path):
        history, hparams = read_events(path)
        history_source = "events"
    else:
        history, history_source = [], "none"

    config_path = os.path.join(path, "config.json")
    config = _read_json(config_path) if os.path.exists(config_path) else {}
    if config and not isinstance(config, Mapping):
        raise RunNotFoundError(
            f"{config_path}: expected a JSON object, got {type(config).__name__}"
        )
    if not config and not hparams and history_source != "events" and _event_files(path):
        hparams = read_events(path)[1]
    flat_config = flatten_config(config) if config else dict(hparams)

    metrics_path = os.path.join(path, "metrics.json")
    complete = os.path.exists(metrics_path)
    if complete:
        raw = _read_json(metrics_path)
        if not isinstance(raw, Mapping):
            raise RunNotFoundError(
                f"{metrics_path}: expected a JSON object, got {type(raw).__name__}"
            )
        metrics, source = _numeric_metrics(raw), "metrics.json"
    else:
        metrics, source = _last_values(history), history_source

    steps = [int(r["step"]) for r in history if "step" in r]
    times = [float(r["time"]) for r in history if "time" in r]
    wall_time = metrics.pop(WALL_TIME, math.nan)
    if math.isnan(wall_time) and len(times) >= 2:
        wall_time = max(times) - min(times)  # underestimates: startup before the first log
    return {
        "name": name or os.path.basename(os.path.abspath(path)),
        "path": path,
        "config": dict(config),
        "flat_config": flat_config,
        "metrics": metrics,
        WALL_TIME: wall_time,
        "history": history,
        "complete": complete,
        "last_step": max(steps) if steps else None,
        "source": source,
    }


def load_runs(paths: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """Loads every run at or below each path (see :func:`find_runs`), each once.

    Names that collide (``a/mf`` and ``b/mf``) are replaced by the runs' paths.

    Args:
      paths: run directories and/or parent directories.

    Returns:
      The runs as :func:`load_run` dicts, in the order given (runs under a parent sorted).
    """
    if not paths:
        raise RunNotFoundError("no run directories given")
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for p in paths:
        for name, run_dir in find_runs(p):
            key = os.path.realpath(run_dir)
            if key not in seen:
                seen.add(key)
                found.append((name, run_dir))
    names = [n for n, _ in found]
    dupes = {n for n in names if names.count(n) > 1}
    return [load_run(d, name=os.path.normpath(d) if n in dupes else n) for n, d in found]


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


def _comparable(value: Any) -> str:
    # 32 from config.json and 32.0 from TensorBoard hparams are the same setting.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, sort_keys=True, default=str)


def differing_config_keys(flat_configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The flattened config keys whose values are not the same in every run.

    A key missing from some runs counts as differing. Keys naming locations (``workdir``,
    ``*_dir``, ``*_path``) are left out.

    Args:
      flat_configs: one flat ``{"model.embedding_dim": 32, ...}`` per run.

    Returns:
      The keys in order of first appearance.
    """
    if len(flat_configs) < 2:
        return []
    keys: dict[str, None] = {}
    for flat in flat_configs:
        keys.update(dict.fromkeys(flat))
    missing = object()
    out = []
    for key in keys:
        if key.rsplit(".", 1)[-1].endswith(_LOCATION_SUFFIXES):
            continue
        values = {_comparable(flat[key]) if key in flat else id(missing) for flat in flat_configs}
        if len(values) > 1:
            out.append(key)
    return out


def _default_metrics(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    names: set[str] = set()
    for run in runs:
        names.update(n for n in run["metrics"] if n not in _COUNTERS)
    evals = sorted(n for n in names if not n.startswith("train/"))
    return evals + sorted(n for n in names if n.startswith("train/"))


def runs_table(
    runs: Sequence[Mapping[str, Any]],
    metrics: Sequence[str] | None = None,
    *,
    config_keys: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Builds the side-by-side table from loaded runs.

    Args:
      runs: :func:`load_run` dicts.
      metrics: the metric columns, in order; default every metric of any run (evaluation metrics
        first, then ``train/*``; not ``step``/``epoch``). A metric no run has raises, listing those that exist; one that
        only some runs have is NaN for the others.
      config_keys: the config columns; default :func:`differing_config_keys`.

    Returns:
      A DataFrame indexed by run name (index name ``"run"``): the metric columns (float),
      ``wall_time_s``, then the config columns, plus ``status`` (``"complete"`` or
      ``"partial (step N)"``) when some run has no ``metrics.json``. ``df.attrs`` holds
      ``"metrics"`` and ``"config_keys"``.
    """
    if not runs:
        raise RunNotFoundError("no runs to compare")
    available = _default_metrics(runs)
    metrics = list(metrics) if metrics is not None else available
    unknown = [m for m in metrics if not any(m in r["metrics"] for r in runs)]
    if unknown:
        raise KeyError(
            f"metrics {unknown} are in no run; available: {', '.join(available) or 'none'}"
        )
    if config_keys is None:
        config_keys = differing_config_keys([r["flat_config"] for r in runs])
    rows = []
    for run in runs:
        row: dict[str, Any] = {m: run["metrics"].get(m, math.nan) for m in metrics}
        row[WALL_TIME] = run[WALL_TIME]
        for key in config_keys:
            row[key] = run["flat_config"].get(key)
        rows.append(row)
    df = pd.DataFrame(rows, index=pd.Index([r["name"] for r in runs], name="run"))
    df = df[[*metrics, WALL_TIME, *config_keys]]
    if not all(r["complete"] for r in runs):
        df["status"] = [
            "complete" if r["complete"] else f"partial (step {r['last_step']})" for r in runs
        ]
    df.attrs["metrics"] = list(metrics)
    df.attrs["config_keys"] = list(config_keys)
    return df


def compare_runs(
    dirs: Sequence[str | os.PathLike],
    metrics: Sequence[str] | None = None,
    *,
    config_keys: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Loads runs (or parents of runs) and builds the side-by-side table.

    Args:
      dirs: run directories and/or parent directories.
      metrics: metric columns (see :func:`runs_table`).
      config_keys: config columns; default the keys that differ between the runs.

    Returns:
      The table of :func:`runs_table`.
    """
    return runs_table(load_runs(dirs), metrics, config_keys=config_keys)


def _lower_is_better(metric: str) -> bool:
    return any(s in metric.rsplit("/", 1)[-1].lower() for s in _LOWER_IS_BETTER)


def _cell(value: Any, decimals: int | None) -> str:
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return "—"
    if isinstance(value, (float, np.floating)):
        # Metrics get fixed decimals so a column lines up; config values (a learning rate of
        # 3e-05) keep their significant digits.
        return f"{value:.{decimals}f}" if decimals is not None else f"{value:g}"
    return str(value).replace("|", "\\|")


def to_markdown(df: pd.DataFrame, *, decimals: int = 4) -> str:
    """Formats a :func:`runs_table` table as a markdown table, the best metric values in bold.

    Args:
      df: the table; ``df.attrs["metrics"]`` names the columns where a best value is marked
        (highest, or lowest for names containing loss / error / rmse / mse / mae / time).
      decimals: decimals of metric values (wall time is shown with one).

    Returns:
      The markdown text, ending with a newline.
    """
    metric_cols = set(df.attrs.get("metrics", []))
    header = [df.index.name or "run", *map(str, df.columns)]
    best: dict[str, float] = {}
    for col in metric_cols:
        values = df[col].to_numpy(np.float64)
        finite = values[np.isfinite(values)]
        if len(df) > 1 and finite.size and finite.min() != finite.max():
            best[col] = finite.min() if _lower_is_better(col) else finite.max()
    lines = [
        "| " + " | ".join(h.replace("|", "\\|") for h in header) + " |",
        "|"
        + "|".join(
            [":---"]
            + ["---:" if c in metric_cols or c == WALL_TIME else ":---" for c in df.columns]
        )
        + "|",
    ]
    for name, row in df.iterrows():
        cells = [str(name).replace("|", "\\|")]
        for col in df.columns:
            value = row[col]
            text = _cell(value, 1 if col == WALL_TIME else decimals if col in metric_cols else None)
            if col in best and value == best[col]:
                text = f"**{text}**"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _curve_metrics(runs: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> list[str]:
    wanted = [] if "train/loss" in metrics else ["train/loss"]
    wanted += list(metrics)
    return [m for m in wanted if any(learning_curve(r["history"], m)[0].size for r in runs)]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 on a bad argument or missing run)."""
    parser = argparse.ArgumentParser(
        prog="python -m experiments.compare",
        description="Compare runs side by side: final metrics, wall time and the config values "
        "that differ.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories or parents")
    parser.add_argument(
        "--metrics",
        default=None,
        help="comma-separated metric tags, e.g. val/ndcg@10,val/collie_map@10 (default: all)",
    )
    parser.add_argument(
        "--out", default=None, help="write the table to this .md file and a .csv beside it"
    )
    parser.add_argument("--plot", default=None, help="write the runs' learning curves to this PNG")
    args = parser.parse_args(argv)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None

    try:
        runs = load_runs(args.runs)
        table = runs_table(runs, metrics)
    except (RunNotFoundError, KeyError) as e:
        parser.error(e.args[0] if e.args else str(e))
    text = to_markdown(table)
    sys.stdout.write(text)
    if args.out:
        stem = os.path.splitext(args.out)[0]
        if os.path.dirname(stem):
            os.makedirs(os.path.dirname(stem), exist_ok=True)
        with open(f"{stem}.md", "w") as f:
            f.write(text)
        table.to_csv(f"{stem}.csv")
        print(f"wrote {stem}.md and {stem}.csv", file=sys.stderr)
    if args.plot:
        curve_metrics = _curve_metrics(runs, table.attrs["metrics"])
        if not curve_metrics:
            parser.error("--plot: none of the chosen metrics was logged during training")
        plot_run_comparison({r["name"]: r["history"] for r in runs}, args.plot, curve_metrics)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
