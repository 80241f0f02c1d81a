"""Plots of runs and learned models, written as PNG files.

Every function takes plain numpy arrays (or logged records) and a path, draws with matplotlib's
Agg canvas on a fresh ``Figure`` (no ``pyplot``, so no global state, no display and no interference
with a caller's own backend), creates the parent directory, writes the PNG and returns its path.
Training writes these under ``<workdir>/plots/``.

- :func:`plot_learning_curves` / :func:`plot_run_comparison`: loss and validation metrics per step
  from ``metrics.jsonl`` records, for one run or several runs on shared axes.
- :func:`plot_roc_pr`: ROC and precision-recall curves with their chance lines.
- :func:`plot_item_embeddings`: the first two principal components of item vectors, annotated with
  titles (as in fastai's collaborative-filtering lesson).
- :func:`plot_item_biases`: items with the highest and lowest learned biases.
- :func:`plot_ablation`: grouped bars with confidence intervals for a cold-start ablation.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "EmbeddingProjection",
    "PlotInputError",
    "extreme_indices",
    "learning_curve",
    "plot_ablation",
    "plot_item_biases",
    "plot_item_embeddings",
    "plot_learning_curves",
    "plot_roc_pr",
    "plot_run_comparison",
    "read_records",
]

Records = Sequence[Mapping[str, Any]]
_DPI = 100
_MAX_LABEL_CHARS = 40


class PlotInputError(ValueError):
    """Raised when the data handed to a plot function is malformed (what and where is named)."""


# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------


def _save(fig: Figure, path: str | os.PathLike, dpi: int) -> str:
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    FigureCanvasAgg(fig)  # attaches the Agg canvas: PNG output without any GUI backend
    fig.savefig(path, dpi=dpi, format="png")
    return path


def _short(label: Any) -> str:
    text = str(label)
    return text if len(text) <= _MAX_LABEL_CHARS else text[: _MAX_LABEL_CHARS - 1] + "…"


def _as_labels(labels: Any, n: int, what: str) -> np.ndarray:
    labels = np.asarray(labels, dtype=object)
    if labels.ndim != 1 or len(labels) != n:
        raise PlotInputError(
            f"{what}: labels must have shape ({n},) to match the values, got {labels.shape}"
        )
    return labels


def _as_float(value: Any) -> float:
    # metrics.jsonl stores non-finite floats as the strings "nan"/"inf" (logging._jsonable).
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# ---------------------------------------------------------------------------------------------
# Learning curves
# ---------------------------------------------------------------------------------------------


def read_records(source: Records | str | os.PathLike) -> list[dict[str, Any]]:
    """Reads ``metrics.jsonl`` records from a run directory or file, or passes records through.

    A truncated last line (a run killed mid-write) is skipped; a malformed line elsewhere raises.

    Args:
      source: a run directory (containing ``metrics.jsonl``), a ``.jsonl`` file, or a sequence of
        ``{"step": int, tag: value, ...}`` mappings.

    Returns:
      The records as a list of dicts.
    """
    if not isinstance(source, (str, os.PathLike)):
        return [dict(r) for r in source]
    path = os.fspath(source)
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.jsonl")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no metrics.jsonl at {path}")
    with open(path) as f:
        lines = f.read().splitlines()
    records = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if lineno == len(lines):
                break  # partial last line of an interrupted run
            raise PlotInputError(f"{path}:{lineno}: not valid JSON ({e.msg})") from e
    return records


def learning_curve(records: Records, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The logged values of one tag against step, sorted by step.

    Args:
      records: ``metrics.jsonl`` records; those without ``metric`` are skipped.
      metric: a tag such as ``"train/loss"`` or ``"val/ndcg@10"``.

    Returns:
      ``(steps, values)``, both ``(T,)``, one entry per step (the latest logged when a resumed
      run logged a step twice); ``values`` is float64 with NaN for non-finite logs.
    """
    steps, values = [], []
    for i, record in enumerate(records):
        if metric not in record:
            continue
        if "step" not in record:
            raise PlotInputError(f"record {i} has {metric!r} but no 'step': {dict(record)}")
        steps.append(int(record["step"]))
        values.append(_as_float(record[metric]))
    steps_arr = np.asarray(steps, dtype=np.int64)
    order = np.argsort(steps_arr, kind="stable")
    steps_arr, values_arr = steps_arr[order], np.asarray(values, dtype=np.float64)[order]
    # A resumed run logs some steps again; the stable sort keeps file (= time) order within a
    # step, so keeping the last of each step keeps the latest value, as TensorBoard does.
    last = np.append(steps_arr[1:] != steps_arr[:-1], True) if steps_arr.size else np.zeros(0, bool)
    return steps_arr[last], values_arr[last]


def _default_curve_metrics(histories: Sequence[Records]) -> list[str]:
    """``train/loss`` first, then every tag that is not another ``train/*`` diagnostic."""
    tags: set[str] = set()
    for records in histories:
        for record in records:
            tags.update(k for k in record if k not in ("step", "time"))
    evals = sorted(t for t in tags if not t.startswith("train/"))
    return (["train/loss"] if "train/loss" in tags else []) + evals


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _curves_figure(
    histories: Mapping[str, Records],
    metrics: Sequence[str] | None,
    figsize: tuple[float, float] | None,
    dpi: int,
) -> Figure:
    if not histories:
        raise PlotInputError("no runs to plot")
    metrics = list(metrics) if metrics is not None else _default_curve_metrics(histories.values())
    present = [m for m in metrics if any(learning_curve(r, m)[0].size for r in histories.values())]
    if not present:
        tags = sorted(_default_curve_metrics(histories.values()))
        raise PlotInputError(
            f"none of the metrics {metrics} was logged; logged tags: {tags or 'none'}"
        )
    rows, cols = _grid(len(present))
    fig = Figure(figsize=figsize or (4.5 * cols, 3.2 * rows), dpi=dpi, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, metric in zip(axes, present):
        for name, records in histories.items():
            steps, values = learning_curve(records, metric)
            if steps.size:
                # A single evaluation would be an invisible line: always mark points when sparse.
                marker = "o" if steps.size <= 30 else None
                ax.plot(steps, values, marker=marker, markersize=3, label=name)
        ax.set_title(metric)
        ax.set_xlabel("step")
        ax.set_ylabel(metric.rsplit("/", 1)[-1])
        ax.grid(True, alpha=0.3)
        if len(histories) > 1:
            ax.legend(fontsize="small")
    for ax in axes[len(present) :]:
        ax.set_visible(False)
    return fig


def plot_learning_curves(
    records: Records | str | os.PathLike,
    path: str | os.PathLike,
    metrics: Sequence[str] | None = None,
    *,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: int = _DPI,
) -> str:
    """Plots ``train/loss`` and each validation metric against step, one subplot per tag.

    Args:
      records: ``metrics.jsonl`` records (``{"step": 120, "train/loss": 0.41, ...}``), or a run
        directory / jsonl file to read them from.
      path: the PNG to write.
      metrics: the tags to plot, in order; default ``train/loss`` then every logged tag that is not
        a ``train/*`` diagnostic (``val/*``, ``test/*``, ``cold_items/*``...). Tags never logged
        are skipped; if none was logged, raises :class:`PlotInputError`.
      title: figure title (default: the run directory's name when reading a directory).
      figsize: inches; default 4.5 x 3.2 per subplot, up to 3 subplots per row.
      dpi: pixels per inch of the PNG.

    Returns:
      ``path``.
    """
    if title is None and isinstance(records, (str, os.PathLike)):
        title = os.path.basename(os.path.normpath(os.fspath(records)))
    fig = _curves_figure({"run": read_records(records)}, metrics, figsize, dpi)
    if title:
        fig.suptitle(title)
    return _save(fig, path, dpi)


def plot_run_comparison(
    histories: Mapping[str, Records | str | os.PathLike],
    path: str | os.PathLike,
    metrics: Sequence[str] | None = None,
    *,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: int = _DPI,
) -> str:
    """Plots the learning curves of several runs on shared axes, one subplot per tag.

    Args:
      histories: run name -> records (or a run directory / jsonl file to read them from).
      path: the PNG to write.
      metrics: as in :func:`plot_learning_curves`.
      title: optional figure title.
      figsize: inches; default 4.5 x 3.2 per subplot, up to 3 subplots per row.
      dpi: pixels per inch of the PNG.

    Returns:
      ``path``.
    """
    loaded = {str(name): read_records(source) for name, source in histories.items()}
    fig = _curves_figure(loaded, metrics, figsize, dpi)
    if title:
        fig.suptitle(title)
    return _save(fig, path, dpi)


# ---------------------------------------------------------------------------------------------
# ROC / precision-recall
# ---------------------------------------------------------------------------------------------


def _check_curve(curve: Mapping[str, Any], name: str) -> dict[str, Any]:
    required = ("fpr", "tpr", "precision", "recall")
    missing = [k for k in required if k not in curve]
    if missing:
        raise PlotInputError(f"curve {name!r} is missing {missing}; it has {sorted(curve)}")
    out = {k: np.asarray(curve[k], dtype=np.float64) for k in required}
    for x, y in (("fpr", "tpr"), ("recall", "precision")):
        if out[x].ndim != 1 or out[x].shape != out[y].shape:
            raise PlotInputError(
                f"curve {name!r}: {x} {out[x].shape} and {y} {out[y].shape} must be 1-D and "
                "of the same length"
            )
    for k in required:
        v = out[k]
        if v.size == 0 or not np.all(np.isfinite(v)) or v.min() < 0 or v.max() > 1:
            raise PlotInputError(f"curve {name!r}: {k} must be non-empty and within [0, 1]")
    for k in ("auc", "average_precision", "prevalence"):
        if curve.get(k) is not None:
            out[k] = float(curve[k])
    if "prevalence" not in out:
        # sklearn's precision_recall_curve ends at the lowest threshold, where everything is
        # predicted positive (recall 1): the precision there is the positive rate.
        at_max_recall = out["recall"] == out["recall"].max()
        out["prevalence"] = float(out["precision"][at_max_recall].min())
    return out


def plot_roc_pr(
    curves: Mapping[str, Any],
    path: str | os.PathLike,
    *,
    title: str | None = None,
    figsize: tuple[float, float] = (10.0, 4.5),
    dpi: int = _DPI,
) -> str:
    """Plots ROC (left) and precision-recall (right) curves with their chance lines.

    The ROC chance line is the diagonal; the precision-recall one is the horizontal line at the
    positive rate (what a random scorer achieves).

    Args:
      curves: one curve ``{"fpr", "tpr", "precision", "recall"}`` (1-D arrays, e.g. from
        ``sklearn.metrics.roc_curve`` and ``precision_recall_curve``) with optional scalars
        ``"auc"``, ``"average_precision"`` and ``"prevalence"`` (positive rate; default: the lowest
        precision at the highest recall, which is the positive rate for sklearn's curves); or a
        mapping name -> such a curve to overlay several (e.g. ``{"warm": ..., "cold": ...}``).
      path: the PNG to write.
      title: optional figure title.
      figsize: inches.
      dpi: pixels per inch of the PNG.

    Returns:
      ``path``.
    """
    named = {"model": curves} if "fpr" in curves else dict(curves)
    if not named:
        raise PlotInputError("no curves to plot")
    checked = {str(n): _check_curve(c, str(n)) for n, c in named.items()}
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    roc_ax, pr_ax = fig.subplots(1, 2)
    roc_ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance (AUC 0.5)")
    for name, c in checked.items():
        auc = f" (AUC {c['auc']:.3f})" if "auc" in c else ""
        ap = f" (AP {c['average_precision']:.3f})" if "average_precision" in c else ""
        line = roc_ax.plot(c["fpr"], c["tpr"], label=f"{name}{auc}")[0]
        pr_ax.plot(c["recall"], c["precision"], color=line.get_color(), label=f"{name}{ap}")
        pr_ax.axhline(
            c["prevalence"],
            linestyle="--",
            color=line.get_color() if len(checked) > 1 else "grey",
            alpha=0.6,
            label=f"chance {name} ({c['prevalence']:.3f})" if len(checked) > 1 else "chance",
        )
    roc_ax.set(title="ROC", xlabel="false positive rate", ylabel="true positive rate")
    pr_ax.set(title="Precision-recall", xlabel="recall", ylabel="precision")
    for ax in (roc_ax, pr_ax):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", loc="best")
    if title:
        fig.suptitle(title)
    return _save(fig, path, dpi)


# ---------------------------------------------------------------------------------------------
# Item embeddings and biases
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddingProjection:
    """What :func:`plot_item_embeddings` drew.

    Attributes:
      path: the PNG written.
      coords: ``(N, 2)`` the items' coordinates on the first two principal components.
      components: ``(2, D)`` the principal axes (unit rows), as ``sklearn.decomposition.PCA``.
      explained_variance_ratio: ``(2,)`` share of the variance on each axis.
      mean: ``(D,)`` the mean vector subtracted before projecting.
      labelled: ``(L,)`` indices of the items annotated with their labels.
    """

    path: str
    coords: np.ndarray
    components: np.ndarray
    explained_variance_ratio: np.ndarray
    mean: np.ndarray
    labelled: np.ndarray


def _embedding_label_indices(
    coords: np.ndarray, popularity: np.ndarray | None, num_labels: int
) -> np.ndarray:
    n = len(coords)
    num_labels = min(num_labels, n)
    if num_labels <= 0:
        return np.zeros(0, dtype=np.int64)
    if popularity is not None:
        # Most popular first; stable sort so ties keep item order and tests are deterministic.
        return np.argsort(-popularity, kind="stable")[:num_labels]
    # Without popularity, the extremes of each axis (the items that define the axis, which is
    # what fastai's lesson reads off): alternate max/min of PC1 and PC2 until num_labels chosen.
    orders = [
        np.argsort(-coords[:, 0], kind="stable"),
        np.argsort(coords[:, 0], kind="stable"),
        np.argsort(-coords[:, 1], kind="stable"),
        np.argsort(coords[:, 1], kind="stable"),
    ]
    chosen: list[int] = []
    seen: set[int] = set()
    rank = 0
    while len(chosen) < num_labels:
        for order in orders:
            i = int(order[rank])
            if i not in seen and len(chosen) < num_labels:
                seen.add(i)
                chosen.append(i)
        rank += 1
    return np.asarray(chosen, dtype=np.int64)


def plot_item_embeddings(
    vectors: np.ndarray,
    labels: Sequence[str] | np.ndarray,
    path: str | os.PathLike,
    *,
    popularity: np.ndarray | None = None,
    num_labels: int = 40,
    title: str | None = "Item embeddings: first two principal components",
    figsize: tuple[float, float] = (10.0, 8.0),
    dpi: int = _DPI,
) -> EmbeddingProjection:
    """Projects item vectors onto their first two principal components and annotates items.

    Args:
      vectors: ``(N, D)`` item embeddings (``N >= 2``, ``D >= 2``, finite).
      labels: ``(N,)`` item titles.
      path: the PNG to write.
      popularity: optional ``(N,)`` interaction counts; when given, points are coloured by
        ``log1p(popularity)`` and the ``num_labels`` most popular items are annotated; otherwise
        the items at the extremes of each component are.
      num_labels: how many items to annotate.
      title: figure title.
      figsize: inches.
      dpi: pixels per inch of the PNG.

    Returns:
      An :class:`EmbeddingProjection` with the path, coordinates, components, explained variance
      ratio, mean and annotated indices.
    """
    from sklearn.decomposition import PCA  # deferred: sklearn is slow to import

    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] < 2 or vectors.shape[1] < 2:
        raise PlotInputError(f"vectors must be (N, D) with N >= 2 and D >= 2, got {vectors.shape}")
    if not np.all(np.isfinite(vectors)):
        bad = np.flatnonzero(~np.all(np.isfinite(vectors), axis=1))
        raise PlotInputError(f"vectors have non-finite values in rows {bad[:10].tolist()}")
    n = vectors.shape[0]
    labels = _as_labels(labels, n, "plot_item_embeddings")
    if popularity is not None:
        popularity = np.asarray(popularity, dtype=np.float64)
        if popularity.shape != (n,):
            raise PlotInputError(f"popularity must have shape ({n},), got {popularity.shape}")
    if num_labels < 0:
        raise PlotInputError(f"num_labels must be >= 0, got {num_labels}")

    # Exact (full SVD) solver: deterministic, and item tables this size are small.
    pca = PCA(n_components=2, svd_solver="full").fit(vectors)
    coords = pca.transform(vectors)  # (N, 2)
    chosen = _embedding_label_indices(coords, popularity, num_labels)

    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    ax = fig.subplots()
    color = np.log1p(popularity) if popularity is not None else None
    points = ax.scatter(
        coords[:, 0],
        coords[:, 1],
        c=color,
        s=8,
        alpha=0.5,
        cmap="viridis" if color is not None else None,
        linewidths=0,
    )
    if popularity is not None:
        fig.colorbar(points, ax=ax, label="log(1 + interactions)")
    ax.scatter(coords[chosen, 0], coords[chosen, 1], s=14, color="crimson")
    for i in chosen:
        ax.annotate(
            _short(labels[i]),
            (coords[i, 0], coords[i, 1]),
            xytext=(3, 3),
            textcoords="offset points",
            fontsize=7,
        )
    ratio = pca.explained_variance_ratio_
    ax.set_xlabel(f"PC1 ({100 * ratio[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * ratio[1]:.1f}% of variance)")
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    written = _save(fig, path, dpi)
    return EmbeddingProjection(
        path=written,
        coords=coords,
        components=pca.components_.copy(),
        explained_variance_ratio=ratio.copy(),
        mean=pca.mean_.copy(),
        labelled=chosen,
    )


def extreme_indices(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``k`` largest and ``k`` smallest values, disjoint.

    Ties keep index order. When ``2k > N`` the top takes ``min(k, N)`` items and the bottom the
    rest (at most ``k``), so no item appears twice.

    Args:
      values: ``(N,)`` finite scores, e.g. learned item biases.
      k: how many from each end (``>= 1``).

    Returns:
      ``(top, bottom)``: ``top`` in descending order of value, ``bottom`` in ascending order.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise PlotInputError(f"values must be a non-empty 1-D array, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        bad = np.flatnonzero(~np.isfinite(values))
        raise PlotInputError(f"values are not finite at indices {bad[:10].tolist()}")
    if k < 1:
        raise PlotInputError(f"k must be >= 1, got {k}")
    n = values.size
    top = np.argsort(-values, kind="stable")[: min(k, n)]
    num_bottom = min(k, n - top.size)
    bottom = np.argsort(values, kind="stable")[:num_bottom] if num_bottom else top[:0]
    return top, bottom


def _biases_figure(
    biases: np.ndarray,
    labels: np.ndarray,
    k: int,
    title: str | None,
    figsize: tuple[float, float] | None,
    dpi: int,
) -> Figure:
    top, bottom = extreme_indices(biases, k)
    size = figsize or (11.0, max(3.0, 0.28 * max(top.size, bottom.size) + 1.2))
    fig = Figure(figsize=size, dpi=dpi, layout="constrained")
    axes = fig.subplots(1, 2 if bottom.size else 1, squeeze=False).ravel()
    panels = [(axes[0], top, f"Highest bias (top {top.size})", "tab:green")]
    if bottom.size:
        panels.append((axes[1], bottom, f"Lowest bias (bottom {bottom.size})", "tab:red"))
    for ax, idx, panel_title, color in panels:
        y = np.arange(idx.size)
        ax.barh(y, biases[idx], color=color)
        ax.set_yticks(y, [_short(labels[i]) for i in idx], fontsize=8)
        ax.invert_yaxis()  # most extreme item at the top
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_title(panel_title)
        ax.set_xlabel("learned bias")
        ax.grid(True, axis="x", alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def plot_item_biases(
    biases: np.ndarray,
    labels: Sequence[str] | np.ndarray,
    path: str | os.PathLike,
    k: int = 15,
    *,
    title: str | None = "Items ranked by learned bias",
    figsize: tuple[float, float] | None = None,
    dpi: int = _DPI,
) -> str:
    """Horizontal bars of the ``k`` items with the highest and the ``k`` with the lowest bias.

    Args:
      biases: ``(N,)`` learned per-item biases.
      labels: ``(N,)`` item titles.
      path: the PNG to write.
      k: items per side (see :func:`extreme_indices` for ``2k > N``).
      title: figure title.
      figsize: inches; default 11 wide, tall enough for ``k`` rows.
      dpi: pixels per inch of the PNG.

    Returns:
      ``path``.
    """
    biases = np.asarray(biases, dtype=np.float64)
    if biases.ndim != 1:
        raise PlotInputError(f"biases must be 1-D (N,), got shape {biases.shape}")
    labels = _as_labels(labels, biases.size, "plot_item_biases")
    return _save(_biases_figure(biases, labels, k, title, figsize, dpi), path, dpi)


# ---------------------------------------------------------------------------------------------
# Ablation
# ---------------------------------------------------------------------------------------------


def _ablation_figure(
    table: pd.DataFrame,
    *,
    metric: str | None,
    group: str,
    hue: str,
    mean: str,
    ci_low: str,
    ci_high: str,
    ci_level: float | None,
    title: str | None,
    figsize: tuple[float, float] | None,
    dpi: int,
) -> Figure:
    if not isinstance(table, pd.DataFrame):
        raise PlotInputError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    df = table.reset_index() if any(n in (group, hue) for n in table.index.names) else table
    if "metric" in df.columns:
        metrics = list(pd.unique(df["metric"]))
        if metric is None and len(metrics) == 1:
            metric = str(metrics[0])
        if metric not in metrics:
            raise PlotInputError(f"metric {metric!r} is not in the table's metrics {metrics}")
        df = df[df["metric"] == metric]
    has_ci = ci_low in df.columns or ci_high in df.columns
    needed = [group, hue, mean] + ([ci_low, ci_high] if has_ci else [])
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise PlotInputError(
            f"ablation table lacks {missing} (as columns or index levels); it has "
            f"columns {list(df.columns)}"
        )
    if df.empty:
        raise PlotInputError("ablation table has no rows")
    duplicated = df.duplicated([group, hue])
    if duplicated.any():
        row = df[duplicated].iloc[0]
        raise PlotInputError(
            f"ablation table has several rows for {group}={row[group]!r}, {hue}={row[hue]!r}"
        )
    values = df[[mean] + ([ci_low, ci_high] if has_ci else [])].astype(np.float64)
    if has_ci:
        bad = (values[ci_low] > values[mean]) | (values[mean] > values[ci_high])
        if bad.any():
            row = df[bad].iloc[0]
            raise PlotInputError(
                f"ablation row {group}={row[group]!r}, {hue}={row[hue]!r}: need "
                f"{ci_low} <= {mean} <= {ci_high}, got {row[ci_low]}, {row[mean]}, {row[ci_high]}"
            )

    groups = list(pd.unique(df[group]))  # keep the table's order: it is usually meaningful
    hues = list(pd.unique(df[hue]))
    width = 0.8 / len(hues)
    fig = Figure(
        figsize=figsize or (max(5.0, 1.1 * len(groups) * max(1, len(hues) / 2) + 2), 4.5),
        dpi=dpi,
        layout="constrained",
    )
    ax = fig.subplots()
    x = np.arange(len(groups))
    for j, h in enumerate(hues):
        sub = df[df[hue] == h].set_index(group).reindex(groups)  # NaN where a combination is absent
        heights = sub[mean].to_numpy(np.float64)  # (G,)
        yerr = None
        if has_ci:
            yerr = np.stack(
                [
                    heights - sub[ci_low].to_numpy(np.float64),
                    sub[ci_high].to_numpy(np.float64) - heights,
                ]
            )  # (2, G): distances below and above the mean, as errorbar expects
        ax.bar(
            x - 0.4 + width * (j + 0.5),
            heights,
            width,
            yerr=yerr,
            capsize=3,
            label=str(h),
        )
    ax.set_xticks(
        x,
        [_short(g) for g in groups],
        rotation=20 if len(groups) > 4 else 0,
        ha="right" if len(groups) > 4 else "center",
    )
    ax.set_xlabel(group)
    ax.set_ylabel(metric or mean)
    ax.legend(title=hue, fontsize="small")
    ax.grid(True, axis="y", alpha=0.3)
    if title is None:
        level = f"{ci_level:.0%} " if ci_level is not None else ""
        title = f"Ablation: {metric or mean}" + (f" ({level}CI)" if has_ci else "")
    ax.set_title(title)
    return fig


def plot_ablation(
    table: pd.DataFrame,
    path: str | os.PathLike,
    metric: str | None = None,
    *,
    group: str = "towers",
    hue: str = "segment",
    mean: str = "mean",
    ci_low: str = "ci_low",
    ci_high: str = "ci_high",
    ci_level: float | None = 0.95,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: int = _DPI,
) -> str:
    """Grouped bars with confidence-interval error bars, e.g. a cold-start ablation.

    One group of bars per value of ``group`` (tower subset), one bar per value of ``hue``
    (segment: warm / cold users or items), height ``mean``, error bar ``[ci_low, ci_high]``.

    Args:
      table: one row per (group, hue) with columns ``mean``, ``ci_low``, ``ci_high``; ``group``
        and ``hue`` may be columns or index levels. A long table with a ``metric`` column is
        filtered to ``metric``. Without the CI columns no error bars are drawn. Missing
        combinations leave a gap.
      path: the PNG to write.
      metric: the metric plotted (y label; selects rows when the table has a ``metric`` column).
      group: column of the x-axis groups.
      hue: column of the bars within a group.
      mean, ci_low, ci_high: column names of the estimate and its interval.
      ci_level: the interval's confidence level, for the default title (None: not stated).
      title: figure title (default ``"Ablation: <metric> (95% CI)"``).
      figsize: inches.
      dpi: pixels per inch of the PNG.

    Returns:
      ``path``.
    """
    fig = _ablation_figure(
        table,
        metric=metric,
        group=group,
        hue=hue,
        mean=mean,
        ci_low=ci_low,
        ci_high=ci_high,
        ci_level=ci_level,
        title=title,
        figsize=figsize,
        dpi=dpi,
    )
    return _save(fig, path, dpi)
