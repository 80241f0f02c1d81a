"""Your own data from files: interactions plus optional item and user feature tables.

A researcher's dataset, or another library's exact split, runs without code::

    config.data.name = "files"
    config.data.files = dict(interactions="my/ratings.csv", user_col="user", item_col="movie",
                             rating_col="stars", split_col="fold",
                             item_features="my/movies.csv", item_id_col="movie",
                             list_columns=("genres",))

CSV, TSV (``.tsv``/``.tab``), Parquet and gzip-compressed CSV are read by extension. The item and
user ID spaces are those of the interactions; a feature table must have exactly one row for each
of those IDs (extra rows, e.g. products with no interactions, are dropped and counted).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hybridrec.data.datasets._base import Dataset
from hybridrec.data.interactions import IdMap, Interactions


class FilesError(ValueError):
    """A data file that cannot be used as given; the message names the file and the column."""


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Reads a CSV / TSV / Parquet file chosen by its extension."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FilesError(f"no such file: {path}")
    lower = path.lower().removesuffix(".gz")
    try:
        if lower.endswith(".parquet") or lower.endswith(".pq"):
            return pd.read_parquet(path)
        sep = "\t" if lower.endswith((".tsv", ".tab", ".inter")) else ","
        return pd.read_csv(path, sep=sep, keep_default_na=True)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise FilesError(f"{path}: cannot be read as a table: {err}") from None


def _metadata(
    path: str | None,
    id_col: str | None,
    id_map: IdMap,
    entity: str,
    list_columns: Sequence[str],
    list_separator: str,
    info: dict,
) -> pd.DataFrame | None:
    if not path:
        return None
    table = read_table(path)
    id_col = id_col or table.columns[0]
    if id_col not in table.columns:
        raise FilesError(f"{path}: no ID column {id_col!r}; columns are {list(table.columns)}")
    ids = table[id_col]
    if ids.isna().any():
        row = int(np.flatnonzero(ids.isna().to_numpy())[0])
        raise FilesError(f"{path}: column {id_col!r} has a missing {entity} ID at data row {row}")
    dup = ids.duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise FilesError(
            f"{path}: {entity} ID {ids.tolist()[row]!r} appears twice (again at data row {row})"
        )
    positions = id_map.to_index(ids.to_numpy(), allow_unknown=True)
    known = positions >= 0
    info[f"{entity}_feature_rows_without_interactions"] = int((~known).sum())
    table = table[known].set_index(id_col)
    missing = np.setdiff1d(np.arange(len(id_map)), positions[known])
    if len(missing):
        example = id_map.to_raw(missing[:3]).tolist()
        raise FilesError(
            f"{path}: {len(missing)} {entity}s of the interactions have no row here, e.g. {example}"
        )
    table = table.iloc[np.argsort(positions[known], kind="stable")]
    table.index = pd.Index(id_map.raw_ids, name=f"{entity}_id")
    for col in list_columns:
        if col in table.columns:
            table[col] = [
                []
                if not isinstance(v, str) or not v
                else [x.strip() for x in v.split(list_separator) if x.strip()]
                for v in table[col]
            ]
    return table


def load_files(
    interactions: str | os.PathLike,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    rating_col: str | None = None,
    weight_col: str | None = None,
    timestamp_col: str | None = None,
    split_col: str | None = None,
    duplicates: str = "keep",
    item_features: str | None = None,
    item_id_col: str | None = None,
    user_features: str | None = None,
    user_id_col: str | None = None,
    list_columns: Sequence[str] = (),
    list_separator: str = "|",
    name: str = "files",
) -> Dataset:
    """Loads interactions (and optional feature tables) from files.

    Args:
      interactions: path of the interactions table, one row per interaction.
      user_col, item_col, rating_col, weight_col, timestamp_col: its columns.
      split_col: optional column of split labels (``train``/``val``/``test``), for
        ``config.split.name = "column"`` (bring-your-own split).
      duplicates: policy for repeated (user, item) pairs (see ``Interactions.deduplicate``).
      item_features, user_features: optional paths of feature tables, one row per ID.
      item_id_col, user_id_col: their ID columns (default: the first column).
      list_columns: feature columns holding multi-valued text like ``Action|Comedy``.
      list_separator: the separator in those columns.
      name: the dataset's name.

    Returns:
      A ``Dataset``; ``dataset.split`` holds the split labels when ``split_col`` is given.
    """
    path = os.fspath(interactions)
    table = read_table(path)
    if split_col is not None and split_col not in table.columns:
        raise FilesError(
            f"{path}: no split column {split_col!r}; columns are {list(table.columns)}"
        )
    try:
        inter = Interactions.from_dataframe(
            table,
            user_col=user_col,
            item_col=item_col,
            rating_col=rating_col,
            weight_col=weight_col,
            timestamp_col=timestamp_col,
        )
    except ValueError as err:
        raise FilesError(f"{path}: {err}") from None
    split = None
    if split_col is not None:
        split = table[split_col].astype(str).to_numpy()
    if duplicates != "keep":
        if split is not None:
            raise FilesError(
                f"{path}: a split column cannot be combined with duplicates={duplicates!r}"
            )
        inter = inter.deduplicate(duplicates)
    info: dict = {"path": os.path.abspath(path)}
    items = _metadata(
        item_features, item_id_col, inter.item_map, "item", list_columns, list_separator, info
    )
    users = _metadata(
        user_features, user_id_col, inter.user_map, "user", list_columns, list_separator, info
    )
    return Dataset(
        name=name,
        interactions=inter,
        item_metadata=items,
        user_metadata=users,
        split=split,
        info=info,
    )
