"""Compares finished runs: one table per dataset and split, best values marked, learning curves.

Usage (from the repository root)::

    python -m experiments.compare runs/                 # compact tables + curves_*.png
    python -m experiments.compare runs/mf runs/hybrid --all --no-plot
    python -m experiments.compare runs/ --metrics val/ndcg@10,val/collie_map@10 \
        --out report/compare.md                         # also report/compare.csv, curves there

Each RUN_DIR is a run directory written by the training loop (``config.json``, ``metrics.json``,
``metrics.jsonl``, ``status.json``, ``events.out.tfevents.*``) or a parent directory, in which
case every directory below it holding one of those files is a run.

- **Which runs.** A run is shown when its ``status.json`` says ``completed``, or when it has no
  ``status.json`` but a ``metrics.json`` (runs from before statuses were kept). Every other run is
  listed under "Skipped" with the reason (failed with its error, interrupted, still running or
  killed, unfinished). ``--partial`` also shows interrupted and unfinished runs from their last
  logged values (``metrics.jsonl``, else the TensorBoard events); failed runs never.
- **Groups.** Runs are grouped by dataset and split, read from ``config.json``: ``data.name``
  with the other ``data.*`` settings that change the data (synthetic sizes, a file's name,
  ``implicit_threshold``, ``max_lines``; not where MovieLens is stored), and the ``split``
  section. Each group gets its own table and curves; runs of different groups are never ranked
  against each other.
- **Directions.** Higher is better for ndcg, map, recall, precision, mrr, auc, hit rate and
  throughput (``*_per_s``); lower for rmse, mae, mse, losses, times (``*_s``, ``time``, compile)
  and peak memory. The best value of a column is bold; columns of unknown direction (counters,
  ``lr_scale``) are not marked. Losses are compared only between runs of the same ``train.loss``
  (and ``train.loss_options``): with several in a group, the loss column and the loss curves
  are split by it.
- **Columns.** By default a compact table: ``model.name``, up to four key metrics (ndcg@10,
  collie_map@10, recall@10, collie_auc, auc, rmse, mae; of ``test/`` when the split has a test
  set, else ``val/``), wall time, and the config keys that differ when there are at most three.
  ``--all`` shows every metric and every differing config key. Rows are sorted best first by
  the first metric column.
- **Curves.** Learning curves (the loss and the key metrics against step) are drawn by default,
  one PNG per group (``curves_<dataset>_<split>.png``, in ``--plot-dir``, default the ``--out``
  file's directory, else ``compare_plots/``); ``--no-plot`` skips them.

The markdown is printed; ``--out X.md`` also writes it to ``X.md`` and every column of every
group, with ``dataset`` and ``split`` columns, to ``X.csv``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hybridrec.logging import STATUS_FILE, flatten_config, read_status
from hybridrec.plots import learning_curve, plot_run_comparison, read_records

__all__ = [
    "Comparison",
    "RunNotFoundError",
    "compare_runs",
    "dataset_and_split",
    "differing_config_keys",
    "find_runs",
    "group_runs",
    "is_run_dir",
    "key_metrics",
    "load_run",
    "load_runs",
    "main",
    "metric_direction",
    "plot_groups",
    "read_events",
    "report_markdown",
    "runs_table",
    "select_runs",
    "skip_reason",
    "to_markdown",
]

WALL_TIME = "wall_time_s"
MODEL_KEY = "model.name"
LOSS_KEY = "train.loss"
# Flattened config keys whose last part names a location: they differ between any two runs and
# say nothing about the experiment.
_LOCATION_SUFFIXES = ("workdir", "_dir", "_path")
# Config keys that change how a run is shown, never what it computes.
_DISPLAY_KEYS = ("progress", "data.download")
# Progress counters a metrics file may carry: not metrics, left out of the default columns.
_COUNTERS = ("step", "time", "epoch")
# The compact table's metrics, most important first (after the eval split's prefix).
KEY_METRICS = ("ndcg@10", "collie_map@10", "recall@10", "collie_auc", "auc", "rmse", "mae")
_MAX_KEY_METRICS = 4
# The compact table shows the differing config keys only when there are at most this many.
_MAX_CONFIG_COLUMNS = 3
# Name tokens (of a metric's last path part, "@k" dropped, split at "_", "-", ".") that say
# which way is better.
_HIGHER_TOKENS = frozenset(
    {"ndcg", "map", "recall", "precision", "mrr", "auc", "hit", "hr", "hitrate", "f1", "accuracy"}
)
_LOWER_TOKENS = frozenset(
    {"rmse", "mae", "mse", "loss", "error", "time", "compile", "peak", "memory", "s", "ms"}
)
_DATASET_ALIASES = {
    "ml-100k": "movielens-100k",
    "movielens": "movielens-100k",
    "beer": "beer-advocate",
    "amazon": "amazon-products",
}
# Datasets whose data.path only says where a copy of the same data lives.
_FIXED_DATASETS = ("movielens-100k",)


class RunNotFoundError(ValueError):
    """Raised when a path given as a run holds no run (or does not exist)."""


# ---------------------------------------------------------------------------------------------
# Finding and reading runs
# ---------------------------------------------------------------------------------------------


def _event_files(path: str) -> list[str]:
    return sorted(f for f in os.listdir(path) if "tfevents" in f)


def is_run_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a run: ``metrics.json``, ``metrics.jsonl``, ``status.json`` or an
    events file."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return False
    names = os.listdir(path)
    markers = ("metrics.json", "metrics.jsonl", STATUS_FILE)
    return any(n in markers or "tfevents" in n for n in names)


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
            f"{path}: no run here or below (a run directory holds metrics.json, metrics.jsonl, "
            "status.json or an events.out.tfevents.* file)"
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


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def dataset_and_split(flat_config: Mapping[str, Any]) -> tuple[str, str]:
    """The dataset and split a run was evaluated on, as labels; equal labels = comparable runs.

    Args:
      flat_config: the run's flattened config (``{"data.name": ..., "split.name": ...}``).

    Returns:
      ``(dataset, split)``, e.g. ``("movielens-100k (implicit_threshold=4)",
      "collie (seed=42, test_p=0.1)")``. The dataset is ``data.name`` (aliases resolved) with
      every other set ``data.*`` value except ``download`` (and ``path`` for MovieLens, which only
      says where the copy is), file paths shortened to their base name; the split is
      ``split.name`` with the other ``split.*`` values. Without them: ``"unknown dataset"`` /
      ``"unknown split"``.
    """
    name = flat_config.get("data.name")
    if name is None:
        dataset = "unknown dataset"
    else:
        dataset = _DATASET_ALIASES.get(str(name), str(name))
        extras = []
        for key in sorted(flat_config):
            value = flat_config[key]
            if not key.startswith("data.") or value is None or key in _DISPLAY_KEYS:
                continue
            sub = key[len("data.") :]
            if sub == "name" or (sub == "path" and dataset in _FIXED_DATASETS):
                continue
            sub = re.sub(r"^(synthetic|files)\.", "", sub)
            if isinstance(value, str) and ("/" in value or os.sep in value):
                value = os.path.basename(value.rstrip("/" + os.sep))
            extras.append(f"{sub}={_fmt(value)}")
        if extras:
            dataset += f" ({', '.join(extras)})"
    split_name = flat_config.get("split.name")
    split_extras = [
        f"{key[len('split.') :]}={_fmt(flat_config[key])}"
        for key in sorted(flat_config)
        if key.startswith("split.") and key != "split.name" and flat_config[key] is not None
    ]
    if split_name is None and not split_extras:
        split = "unknown split"
    else:
        split = str(split_name or "?") + (f" ({', '.join(split_extras)})" if split_extras else "")
    return dataset, split


def _loss_label(flat_config: Mapping[str, Any]) -> str | None:
    """``train.loss`` with its options (``"warp (max_weight=10, rank_weight=log)"``), or None."""
    loss = flat_config.get(LOSS_KEY)
    if loss is None:
        return None
    prefix = "train.loss_options."
    options = [
        f"{k[len(prefix) :]}={_fmt(v)}"
        for k, v in sorted(flat_config.items())
        if k.startswith(prefix) and v is not None
    ]
    return str(loss) + (f" ({', '.join(options)})" if options else "")


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
      ``status`` (``status.json`` as read by ``hybridrec.logging.read_status``; None if absent),
      ``metrics`` (``{tag: float}``: ``metrics.json``, or the last logged values of an unfinished
      run), ``wall_time_s`` (float; NaN if unknown; for an unfinished run, the span of its logs),
      ``history`` (``metrics.jsonl`` records, or the same form rebuilt from the events),
      ``complete`` (bool: ``metrics.json`` exists), ``last_step`` (int or None),
      ``source`` (where ``metrics`` came from: ``"metrics.json"``, ``"metrics.jsonl"``,
      ``"events"`` or ``"none"``), ``dataset`` and ``split`` (labels, see
      :func:`dataset_and_split`) and ``loss`` (``train.loss`` with its options, or None).

    Raises:
      RunNotFoundError: ``run_dir`` is not a run directory, or one of its JSON files is broken.
    """
    path = os.fspath(run_dir)
    if not is_run_dir(path):
        raise RunNotFoundError(
            f"{path}: not a run directory (no metrics.json, metrics.jsonl, status.json or "
            "events file)"
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
    _learn_plugin_directions(flat_config)

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
    dataset, split = dataset_and_split(flat_config)
    return {
        "name": name or os.path.basename(os.path.abspath(path)),
        "path": path,
        "config": dict(config),
        "flat_config": flat_config,
        "status": read_status(path),
        "metrics": metrics,
        WALL_TIME: wall_time,
        "history": history,
        "complete": complete,
        "last_step": max(steps) if steps else None,
        "source": source,
        "dataset": dataset,
        "split": split,
        "loss": _loss_label(flat_config),
    }


def load_runs(paths: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """Loads every run at or below each path (see :func:`find_runs`), each once.

    Names that collide (``a/mf`` and ``b/mf``) are replaced by the runs' paths. Every run is
    loaded, whatever its status (see :func:`select_runs`).

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


def _one_line(text: Any, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def skip_reason(run: Mapping[str, Any], *, partial: bool = False) -> str | None:
    """Why ``run`` is left out of the comparison, or None when it is shown.

    Shown: ``status.json`` says ``completed``, or there is no ``status.json`` and there is a
    ``metrics.json`` (an older run). With ``partial``, also interrupted, running (or killed)
    and unfinished runs, from their last logged values. Failed runs are never shown.

    Args:
      run: a :func:`load_run` dict.
      partial: show unfinished runs too.
    """
    status = run.get("status")
    if status is None:
        if run["complete"] or partial:
            return None
        return "unfinished: no metrics.json and no status.json (--partial shows it)"
    state = status.get("state")
    error = status.get("error")
    detail = f": {_one_line(error)}" if error else ""
    if state == "completed":
        return None
    if state == "failed":
        return f"failed{detail}"
    if partial and (run["history"] or run["complete"]):
        return None
    hint = " (--partial shows it)" if run["history"] or run["complete"] else ""
    if state == "running":
        return f"running, or killed (status.json says running){hint}"
    return f"{state}{detail}{hint}"


def select_runs(
    runs: Sequence[Mapping[str, Any]], *, partial: bool = False
) -> tuple[list[Mapping[str, Any]], list[tuple[str, str]]]:
    """Splits runs into those shown and those skipped (see :func:`skip_reason`).

    Returns:
      ``(shown, skipped)``; ``skipped`` is ``[(run name, reason), ...]``.
    """
    shown, skipped = [], []
    for run in runs:
        reason = skip_reason(run, partial=partial)
        if reason is None:
            shown.append(run)
        else:
            skipped.append((run["name"], reason))
    return shown, skipped


def group_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Runs by dataset and split: ``{"<dataset>, split <split>": [run, ...]}``.

    Groups are in order of their first run; runs keep their order.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for run in runs:
        groups.setdefault(_group_label(run), []).append(run)
    return groups


def _group_label(run: Mapping[str, Any]) -> str:
    return f"{run['dataset']}, split {run['split']}"


# ---------------------------------------------------------------------------------------------
# Metric directions and the table
# ---------------------------------------------------------------------------------------------


def _name_tokens(metric: str) -> list[str]:
    last = metric.rsplit("/", 1)[-1].lower()
    last = re.sub(r"@\d+$", "", last)
    return [t for t in re.split(r"[^a-z0-9]+", last) if t]


# Directions of plug-in metrics (``hybridrec.metrics.Metric.higher_is_better``), by reported
# name, learnt from the ``eval.metrics`` of the runs loaded.
_PLUGIN_DIRECTIONS: dict[str, str] = {}


def _learn_plugin_directions(flat_config: Mapping[str, Any]) -> None:
    from hybridrec import metrics as metrics_lib

    names = flat_config.get("eval.metrics") or ()
    if isinstance(names, str):
        names = (names,)
    for name in names:
        if not isinstance(name, str) or name in metrics_lib.RANKING_METRICS or name == "coverage":
            continue
        try:
            metric = metrics_lib.resolve_metric(name)
        except Exception:  # noqa: BLE001 - a plug-in not importable here: direction unknown
            continue
        _PLUGIN_DIRECTIONS[metric.name] = "max" if metric.higher_is_better else "min"


def metric_direction(metric: str) -> str | None:
    """``"max"`` when higher is better, ``"min"`` when lower is, None when unknown.

    Read from the name's last part (``val/collie_map@10`` -> ``collie_map``): ranking and
    classification metrics and throughput (``samples_per_s``) are ``"max"``; errors, losses,
    times (``time``, ``*_s``, ``compile``) and memory are ``"min"``; counters and settings
    (``epochs``, ``lr_scale``, ``num_users_evaluated``) are None.
    """
    plugin = re.sub(r"@\d+$", "", metric.rsplit("/", 1)[-1])
    if plugin in _PLUGIN_DIRECTIONS:
        return _PLUGIN_DIRECTIONS[plugin]
    tokens = _name_tokens(metric)
    if "per" in tokens[:-1]:
        return "max"  # a rate: samples_per_s
    if any(t in _HIGHER_TOKENS for t in tokens):
        return "max"
    if any(t in _LOWER_TOKENS for t in tokens):
        return "min"
    return None


def _is_loss(metric: str) -> bool:
    return "loss" in _name_tokens(metric)


def differing_config_keys(flat_configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The flattened config keys whose values are not the same in every run.

    A key missing from some runs counts as differing (a ``None`` value counts as missing). Keys
    naming locations (``workdir``, ``*_dir``, ``*_path``) or only the display (``progress``)
    are left out.

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
    out = []
    for key in keys:
        if key.rsplit(".", 1)[-1].endswith(_LOCATION_SUFFIXES) or key in _DISPLAY_KEYS:
            continue
        if len({_comparable(flat.get(key)) for flat in flat_configs}) > 1:
            out.append(key)
    return out


def _comparable(value: Any) -> str:
    # 32 from config.json and 32.0 from TensorBoard hparams are the same setting.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, sort_keys=True, default=str)


def _all_metrics(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    names: set[str] = set()
    for run in runs:
        names.update(n for n in run["metrics"] if n not in _COUNTERS)
    evals = sorted(n for n in names if not n.startswith("train/"))
    return evals + sorted(n for n in names if n.startswith("train/"))


def key_metrics(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The compact table's metrics for runs of one group (at most four).

    The first of :data:`KEY_METRICS` that the runs have, under ``test/`` when some run has a
    ``test/`` metric (the split has a test set), else ``val/``; failing those, the first
    evaluation metrics of known direction in name order.
    """
    names = set(_all_metrics(runs))
    prefix = "test/" if any(n.startswith("test/") for n in names) else "val/"
    chosen = [prefix + m for m in KEY_METRICS if prefix + m in names]
    if not chosen:
        chosen = [
            n for n in _all_metrics(runs) if not n.startswith("train/") and metric_direction(n)
        ]
    return chosen[:_MAX_KEY_METRICS]


def _sort_key(values: pd.Series, direction: str | None) -> pd.Series:
    # Best first; NaN (a run without the metric) last.
    if direction == "max":
        return (-values).fillna(np.inf)
    return values.fillna(np.inf)


def runs_table(
    runs: Sequence[Mapping[str, Any]],
    metrics: Sequence[str] | None = None,
    *,
    config_keys: Sequence[str] | None = None,
    all_columns: bool = False,
) -> pd.DataFrame:
    """The table of one group's runs (one dataset and split).

    Args:
      runs: :func:`load_run` dicts of one group (see :func:`group_runs`).
      metrics: the metric columns, in order; metrics no run of the group has are dropped.
        Default: :func:`key_metrics`, or with ``all_columns`` every metric (evaluation metrics
        first, then ``train/*``; not ``step``/``epoch``).
      config_keys: the config columns after ``model.name``. Default: the keys that differ
        (:func:`differing_config_keys`); without ``all_columns`` only when there are at most
        three. ``train.loss`` is added when a loss column is shown and the runs differ in it.
      all_columns: every metric and every differing config key.

    Returns:
      A DataFrame indexed by run name (index name ``"run"``), sorted best first by the first
      metric column: ``model.name``, the metric columns (float), ``wall_time_s``, the config
      columns, plus ``status`` (``"complete"`` or ``"partial (step N)"``) when some run has no
      ``metrics.json``. ``df.attrs`` holds ``"metrics"``, ``"config_keys"``, ``"losses"`` (each
      row's loss label, for comparing loss columns), ``"hidden_config_keys"`` (differing keys
      not shown), ``"dataset"`` and ``"split"``.

    Raises:
      RunNotFoundError: no runs.
      ValueError: runs of different datasets or splits.
    """
    if not runs:
        raise RunNotFoundError("no runs to compare")
    labels = {_group_label(r) for r in runs}
    if len(labels) > 1:
        raise ValueError(
            "runs of different datasets or splits are not compared in one table; "
            f"group them first (group_runs): {sorted(labels)}"
        )
    available = _all_metrics(runs)
    if metrics is None:
        metrics = available if all_columns else key_metrics(runs)
    metrics = [m for m in metrics if m in available]
    flats = [r["flat_config"] for r in runs]
    differing = differing_config_keys(flats)
    if config_keys is None:
        shown = [k for k in differing if k != MODEL_KEY]
        if not all_columns and len(shown) > _MAX_CONFIG_COLUMNS:
            shown = []
        config_keys = shown
    config_keys = [k for k in config_keys if k != MODEL_KEY]
    losses = [r["loss"] for r in runs]
    if any(_is_loss(m) for m in metrics) and len(set(losses)) > 1 and LOSS_KEY not in config_keys:
        config_keys = [LOSS_KEY, *config_keys]
    rows = []
    for run in runs:
        row: dict[str, Any] = {MODEL_KEY: run["flat_config"].get(MODEL_KEY)}
        row.update({m: run["metrics"].get(m, math.nan) for m in metrics})
        row[WALL_TIME] = run[WALL_TIME]
        for key in config_keys:
            row[key] = run["flat_config"].get(key)
        rows.append(row)
    df = pd.DataFrame(rows, index=pd.Index([r["name"] for r in runs], name="run"))
    df = df[[MODEL_KEY, *metrics, WALL_TIME, *config_keys]]
    df[WALL_TIME] = df[WALL_TIME].astype(np.float64)
    if not all(r["complete"] for r in runs):
        df["status"] = [
            "complete" if r["complete"] else f"partial (step {r['last_step']})" for r in runs
        ]
    df["_loss"] = losses
    if metrics:
        order = _sort_key(df[metrics[0]].astype(np.float64), metric_direction(metrics[0]))
        df = df.iloc[np.argsort(order.to_numpy(), kind="stable")]
    losses = df.pop("_loss").tolist()
    df.attrs.update(
        metrics=list(metrics),
        config_keys=list(config_keys),
        losses=losses,
        hidden_config_keys=[k for k in differing if k not in config_keys and k != MODEL_KEY],
        dataset=runs[0]["dataset"],
        split=runs[0]["split"],
    )
    return df


# ---------------------------------------------------------------------------------------------
# Comparing and formatting
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Comparison:
    """Runs compared group by group.

    Attributes:
      tables: group label (``"<dataset>, split <split>"``) -> :func:`runs_table` table.
      groups: group label -> the group's runs (:func:`load_run` dicts).
      skipped: ``[(run name, reason), ...]`` of the runs not shown.
    """

    tables: dict[str, pd.DataFrame]
    groups: dict[str, list[Mapping[str, Any]]]
    skipped: list[tuple[str, str]]

    def to_frame(self) -> pd.DataFrame:
        """Every group's table in one frame, with ``dataset`` and ``split`` columns first."""
        frames = []
        for df in self.tables.values():
            frame = df.copy()
            frame.insert(0, "split", df.attrs["split"])
            frame.insert(0, "dataset", df.attrs["dataset"])
            frames.append(frame)
        if not frames:
            return pd.DataFrame(index=pd.Index([], name="run"))
        return pd.concat(frames)


def compare_runs(
    dirs: Sequence[str | os.PathLike],
    metrics: Sequence[str] | None = None,
    *,
    all_columns: bool = False,
    partial: bool = False,
) -> Comparison:
    """Loads runs (or parents of runs), keeps those to show, and builds one table per group.

    Args:
      dirs: run directories and/or parent directories.
      metrics: metric columns for every group (see :func:`runs_table`); each must be in some
        shown run.
      all_columns: every metric and differing config key instead of the compact table.
      partial: also show unfinished runs (see :func:`skip_reason`).

    Returns:
      A :class:`Comparison`; its ``tables`` is empty when every run was skipped.

    Raises:
      RunNotFoundError: a path with no run.
      KeyError: a requested metric no shown run has (the message lists those that exist).
    """
    shown, skipped = select_runs(load_runs(dirs), partial=partial)
    if metrics is not None:
        available = _all_metrics(shown)
        unknown = [m for m in metrics if m not in available]
        if unknown:
            raise KeyError(
                f"metrics {unknown} are in no run; available: {', '.join(available) or 'none'}"
            )
    groups = group_runs(shown)
    tables = {
        label: runs_table(runs, metrics, all_columns=all_columns) for label, runs in groups.items()
    }
    return Comparison(tables=tables, groups=groups, skipped=skipped)


def _cell(value: Any, decimals: int | None) -> str:
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return "—"
    if isinstance(value, (float, np.floating)):
        # Metrics get fixed decimals so a column lines up; config values (a learning rate of
        # 3e-05) keep their significant digits.
        return f"{value:.{decimals}f}" if decimals is not None else f"{value:g}"
    return str(value).replace("|", "\\|")


def _best_rows(df: pd.DataFrame, col: str, losses: Sequence[Any]) -> set[int]:
    """Positions of the best value of ``col``: per loss for loss columns, else overall."""
    direction = metric_direction(col)
    if direction is None:
        return set()
    values = df[col].to_numpy(np.float64)
    # Loss values are only comparable between runs of the same loss function.
    subsets = {}
    for i, loss in enumerate(losses if _is_loss(col) else [None] * len(df)):
        subsets.setdefault(json.dumps(loss, default=str), []).append(i)
    best = set()
    for rows in subsets.values():
        finite = [i for i in rows if np.isfinite(values[i])]
        if len(finite) < 2:
            continue
        chosen = [values[i] for i in finite]
        target = min(chosen) if direction == "min" else max(chosen)
        if min(chosen) != max(chosen):
            best.update(i for i in finite if values[i] == target)
    return best


def to_markdown(df: pd.DataFrame, *, decimals: int = 4) -> str:
    """Formats one group's table as markdown, the best values in bold.

    Args:
      df: a :func:`runs_table` table. Columns in ``df.attrs["metrics"]`` and ``wall_time_s``
        get their best value bold when :func:`metric_direction` knows the direction and the
        values differ; loss columns are compared only between rows of the same loss
        (``df.attrs["losses"]``, else a ``train.loss`` column), and rows of unfinished runs
        (a ``status`` other than ``complete``) are never marked.
      decimals: decimals of metric values (wall time is shown with one).

    Returns:
      The markdown text, ending with a newline.
    """
    metric_cols = [c for c in df.attrs.get("metrics", []) if c in df.columns]
    losses = df.attrs.get("losses")
    if losses is None:
        losses = df[LOSS_KEY].tolist() if LOSS_KEY in df.columns else [None] * len(df)
    marked = metric_cols + ([WALL_TIME] if WALL_TIME in df.columns else [])
    # An unfinished run's values (a time from the span of its logs, the loss of an early
    # epoch) are not results: only finished runs can be best.
    finished = (
        df["status"].astype(str).str.startswith("complete").to_numpy()
        if "status" in df.columns
        else np.ones(len(df), bool)
    )
    done = np.flatnonzero(finished)
    done_losses = [losses[i] for i in done]
    best = {
        col: {int(done[i]) for i in _best_rows(df.iloc[done], col, done_losses)} for col in marked
    }
    numeric = set(marked)
    header = [df.index.name or "run", *map(str, df.columns)]
    lines = [
        "| " + " | ".join(h.replace("|", "\\|") for h in header) + " |",
        "|" + "|".join([":---"] + ["---:" if c in numeric else ":---" for c in df.columns]) + "|",
    ]
    for pos, (name, row) in enumerate(df.iterrows()):
        cells = [str(name).replace("|", "\\|")]
        for col in df.columns:
            digits = 1 if col == WALL_TIME else decimals if col in numeric else None
            text = _cell(row[col], digits)
            if pos in best.get(col, ()):
                text = f"**{text}**"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report_markdown(
    comparison: Comparison, *, plots: Mapping[str, str] | None = None, decimals: int = 4
) -> str:
    """The whole report: a section per group (table, hidden-column note, curves), then skips.

    Args:
      comparison: from :func:`compare_runs`.
      plots: group label -> the path to show for its learning curves (from :func:`plot_groups`).
      decimals: as in :func:`to_markdown`.
    """
    parts = []
    for label, df in comparison.tables.items():
        n = len(df)
        runs = f"{n} run{'s' if n != 1 else ''}"
        section = f"## {label}\n\n{runs}\n\n{to_markdown(df, decimals=decimals)}"
        hidden = df.attrs.get("hidden_config_keys", [])
        if hidden:
            section += (
                f"\n{len(hidden)} more config key{'s differ' if len(hidden) > 1 else ' differs'}"
                " between these runs (--all shows them).\n"
            )
        if plots and label in plots:
            section += f"\n![learning curves]({plots[label]})\n"
        parts.append(section)
    if not comparison.tables:
        parts.append("No run to compare.\n")
    if comparison.skipped:
        n = len(comparison.skipped)
        lines = [f"Skipped {n} run{'s' if n != 1 else ''}:"]
        lines += [f"- {name}: {reason}" for name, reason in comparison.skipped]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# Learning curves
# ---------------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.@-]+", "_", text).strip("_") or "runs"


def _group_histories(
    runs: Sequence[Mapping[str, Any]], metrics: Sequence[str]
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Histories and curve metrics of one group, ``train/loss`` split by loss function."""
    losses = [r["loss"] for r in runs]
    split_loss = len(set(losses)) > 1
    histories: dict[str, list[dict[str, Any]]] = {}
    loss_tags: dict[str, None] = {}
    for run, loss in zip(runs, losses):
        records = [dict(r) for r in run["history"]]
        if split_loss:
            # Each loss function gets its own axes: their values are on different scales.
            tag = f"train/loss [{loss or 'unknown'}]"
            for record in records:
                if "train/loss" in record:
                    record[tag] = record.pop("train/loss")
            loss_tags[tag] = None
        histories[run["name"]] = records
    wanted = list(loss_tags) if split_loss else ["train/loss"]
    wanted += [m for m in metrics if m not in wanted and not _is_loss(m)]
    present = [m for m in wanted if any(learning_curve(h, m)[0].size for h in histories.values())]
    return histories, present


def plot_groups(
    comparison: Comparison, out_dir: str | os.PathLike
) -> tuple[dict[str, str], list[str]]:
    """Draws each group's learning curves (its loss and key metrics) into one PNG.

    Args:
      comparison: from :func:`compare_runs`.
      out_dir: directory of the PNGs (created), named ``curves_<dataset>_<split>.png`` (with
        ``-2``, ``-3`` when two groups' names would collide).

    Returns:
      ``(paths, notes)``: group label -> PNG path, and a note for each group without curves.
    """
    out_dir = os.fspath(out_dir)
    paths: dict[str, str] = {}
    notes: list[str] = []
    used: set[str] = set()
    for label, df in comparison.tables.items():
        runs = comparison.groups[label]
        histories, metrics = _group_histories(runs, df.attrs["metrics"])
        if not metrics:
            notes.append(f"{label}: no learning curves logged")
            continue
        name_parts = [df.attrs["dataset"].split(" ")[0], df.attrs["split"].split(" ")[0]]
        stem = base = "curves_" + _slug("_".join(name_parts))
        k = 1
        while stem in used:
            k += 1
            stem = f"{base}-{k}"
        used.add(stem)
        path = os.path.join(out_dir, f"{stem}.png")
        paths[label] = plot_run_comparison(histories, path, metrics, title=label)
    return paths, notes


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 on a bad argument or missing run)."""
    parser = argparse.ArgumentParser(
        prog="python -m experiments.compare",
        description="Compare finished runs: one table per dataset and split (best values bold), "
        "and their learning curves.",
        allow_abbrev=False,
    )
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories or parents")
    parser.add_argument(
        "--metrics",
        default=None,
        help="comma-separated metric tags, e.g. val/ndcg@10,val/collie_map@10 (default: the "
        "key metrics; with --all every metric)",
    )
    parser.add_argument(
        "--all", action="store_true", help="every metric and every differing config key"
    )
    parser.add_argument(
        "--partial",
        action="store_true",
        help="also show interrupted and unfinished runs (their last logged values)",
    )
    parser.add_argument(
        "--out", default=None, help="write the report to this .md file and every column to a .csv"
    )
    parser.add_argument(
        "--plot-dir",
        default=None,
        help="directory of the learning-curve PNGs (default: the --out file's directory, else "
        "compare_plots)",
    )
    parser.add_argument("--no-plot", action="store_true", help="do not draw learning curves")
    args = parser.parse_args(argv)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None

    try:
        comparison = compare_runs(args.runs, metrics, all_columns=args.all, partial=args.partial)
    except (RunNotFoundError, KeyError) as e:
        parser.error(e.args[0] if e.args else str(e))

    stem = os.path.splitext(args.out)[0] if args.out else None
    plots: dict[str, str] = {}
    if not args.no_plot and comparison.tables:
        if args.plot_dir is not None:
            plot_dir = args.plot_dir
        elif stem is not None:
            plot_dir = os.path.dirname(stem) or "."
        else:
            plot_dir = "compare_plots"
        paths, notes = plot_groups(comparison, plot_dir)
        # Shown relative to the report's directory (the md file links them) or the cwd.
        base = (os.path.dirname(stem) or ".") if stem is not None else "."
        plots = {label: os.path.relpath(p, base) for label, p in paths.items()}
        for note in notes:
            print(note, file=sys.stderr)
        for path in paths.values():
            print(f"wrote {path}", file=sys.stderr)
    text = report_markdown(comparison, plots=plots)
    sys.stdout.write(text)
    if stem is not None:
        if os.path.dirname(stem):
            os.makedirs(os.path.dirname(stem), exist_ok=True)
        with open(f"{stem}.md", "w") as f:
            f.write(text)
        # The csv has every column of every group, whatever the printed table shows.
        full = {
            label: runs_table(runs, metrics, all_columns=True)
            for label, runs in comparison.groups.items()
        }
        Comparison(full, comparison.groups, comparison.skipped).to_frame().to_csv(f"{stem}.csv")
        print(f"wrote {stem}.md and {stem}.csv", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
