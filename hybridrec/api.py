"""Training from DataFrames in a notebook: ``hybridrec.fit``.

LightFM, implicit and fastai train from in-memory data; so does ``fit``::

    import hybridrec
    model = hybridrec.fit(
        ratings_df,                                  # user_id, item_id[, rating, timestamp]
        item_features=movies_df,                     # item_id, genres ("Action|Comedy"), year
        fields=dict(
            genres=dict(kind="categorical", multi_valued=True),
            year=dict(kind="numeric", num_buckets=10),
        ),
        rating_col="rating", implicit_threshold=4.0,
        overrides={"train.num_epochs": 10},
    )
    model.metrics["val/ndcg@10"]
    model.recommend("u42", k=10)

It is the same run as the command line's, not a second code path: the tables are written as
Parquet under ``<workdir>/inputs/`` and the run reads them through the ``files`` dataset, so the
same validation applies, the run directory is complete (``hybridrec.load(model.workdir)``
returns an equal model later) and its provenance hashes the very inputs it was trained on.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import ml_collections
import pandas as pd

from hybridrec.serving import TrainedModel

__all__ = ["fit", "get_config"]

_TOWER_OF_KIND = {"categorical": "categorical", "numeric": "numeric", "text": "text"}


def get_config(name: str = "hybrid.py", arg: str | None = None) -> ml_collections.ConfigDict:
    """A shipped config (``experiments/configs/<name>``) by file name, e.g. ``"mf.py"``."""
    module = name.removesuffix(".py")
    try:
        return importlib.import_module(f"experiments.configs.{module}").get_config(arg)
    except ModuleNotFoundError:
        here = os.path.join(os.path.dirname(os.path.dirname(__file__)), "experiments", "configs")
        known = (
            sorted(f for f in os.listdir(here) if f.endswith(".py") and not f.startswith("_"))
            if os.path.isdir(here)
            else []
        )
        raise ValueError(f"no shipped config {name!r}; known: {known}") from None


def fit(
    interactions: pd.DataFrame,
    *,
    item_features: pd.DataFrame | None = None,
    user_features: pd.DataFrame | None = None,
    fields: Mapping[str, Mapping[str, Any]] | None = None,
    config: ml_collections.ConfigDict | str | None = None,
    overrides: Mapping[str, Any] | None = None,
    workdir: str | os.PathLike | None = None,
    user_col: str = "user_id",
    item_col: str = "item_id",
    rating_col: str | None = None,
    weight_col: str | None = None,
    timestamp_col: str | None = None,
    split_col: str | None = None,
    implicit_threshold: float | None = None,
    item_id_col: str | None = None,
    user_id_col: str | None = None,
) -> TrainedModel:
    """Trains a model on DataFrames and returns it, as ``hybridrec.load`` would.

    Args:
      interactions: one row per interaction, with ``user_col`` and ``item_col`` (any hashable
        IDs) and optionally rating, weight, timestamp and split columns.
      item_features / user_features: one row per item / user, keyed by ``item_id_col`` /
        ``user_id_col`` (default: the same name as in ``interactions``, else the first column).
      fields: side features over those tables, ``{name: FieldSpec options}`` (``kind``
        "categorical" / "numeric" / "text", ``entity`` "item" (default) or "user", ``column``
        (default the name), ``multi_valued``, ``separator``, ...); each gets a tower of its kind
        beside the ID tower. Without fields the model reads IDs only.
      config: a ``ConfigDict`` or a shipped config's file name; default ``"hybrid.py"`` with
        ``fields``, ``"mf.py"`` without. Its data section is replaced by the DataFrames.
      overrides: dotted keys to change, e.g. ``{"train.num_epochs": 5, "seed": 1}``.
      workdir: the run directory; default a new temporary directory.
      user_col, item_col, rating_col, weight_col, timestamp_col: columns of ``interactions``.
      split_col: a column of ``train``/``val``/``test`` labels: your own split.
      implicit_threshold: with ``rating_col``, keep ratings >= this as positives (implicit
        training); None trains on every row.
      item_id_col, user_id_col: ID columns of the feature tables.

    Returns:
      The ``TrainedModel`` (``.metrics`` holds the run's final metrics, ``.workdir`` its
      directory).
    """
    if not isinstance(interactions, pd.DataFrame):
        raise TypeError(
            f"interactions must be a pandas DataFrame, got {type(interactions).__name__}"
        )
    if config is None:
        config = "hybrid.py" if fields else "mf.py"
    if isinstance(config, str):
        config = get_config(config)
    config = ml_collections.ConfigDict(config.to_dict())  # a copy; the caller's stays as it was
    workdir = os.fspath(workdir) if workdir is not None else tempfile.mkdtemp(prefix="hybridrec-")
    inputs = os.path.join(workdir, "inputs")
    os.makedirs(inputs, exist_ok=True)

    files: dict[str, Any] = dict(
        interactions=_write(interactions, inputs, "interactions"),
        user_col=user_col,
        item_col=item_col,
        rating_col=rating_col,
        weight_col=weight_col,
        timestamp_col=timestamp_col,
        split_col=split_col,
    )
    for entity, table, id_col in (
        ("item", item_features, item_id_col),
        ("user", user_features, user_id_col),
    ):
        if table is None:
            continue
        files[f"{entity}_features"] = _write(table, inputs, f"{entity}_features")
        default = item_col if entity == "item" else user_col
        files[f"{entity}_id_col"] = id_col or (default if default in table.columns else None)
    config.data = dict(
        name="files",
        files={k: v for k, v in files.items() if v is not None},
        implicit_threshold=implicit_threshold if rating_col else None,
    )
    if split_col:
        config.split = dict(name="column")
    config.features.schema = None
    config.features.fields = dict(fields) if fields else None
    overrides = dict(overrides or {})
    for key, value in overrides.items():
        _set(config, key, value)
    if config.model.name == "hybrid":
        # One tower per declared field, beside the ID tower, unless the overrides name towers.
        history = bool(config.features.get("user_history"))
        if "model.user_towers" not in overrides:
            config.model.user_towers = _towers(fields, "user", history)
        if "model.item_towers" not in overrides:
            config.model.item_towers = _towers(fields, "item", False)
    elif fields:
        raise ValueError(
            f"model {config.model.name!r} reads no side features; pass config='hybrid.py' (or a "
            "config of a model with towers) to use fields"
        )

    from hybridrec import serving
    from hybridrec.train import run_experiment

    run = run_experiment(config, os.path.join(workdir, "run"))
    model = serving.load(run.workdir)
    model.metrics = run.metrics
    return model


def _write(table: pd.DataFrame, directory: str, name: str) -> str:
    path = os.path.join(directory, f"{name}.parquet")
    table.to_parquet(path, index=False)
    return path


def _towers(fields, entity: str, history: bool) -> dict[str, dict[str, Any]]:
    towers: dict[str, dict[str, Any]] = {"id": dict(tower="ids")}
    for name, spec in (fields or {}).items():
        if spec.get("entity", "item") == entity:
            kind = spec.get("kind", "categorical")
            towers[name] = dict(tower=_TOWER_OF_KIND.get(kind, kind), field=name)
    if history:
        towers["history"] = dict(tower="history", field="history")
    return towers


def _set(config: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = config
    for i, part in enumerate(parents):
        if part not in node:
            raise KeyError(f"override {dotted!r}: no key {'.'.join(parents[: i + 1])!r}")
        node = node[part]
    if leaf not in node:
        raise KeyError(f"override {dotted!r}: no key {dotted!r}; keys there: {sorted(node)}")
    node[leaf] = value
