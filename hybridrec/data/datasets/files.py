"""Your own data from files: interactions plus optional item and user feature tables.

A researcher's dataset, or another library's exact split, runs without code::

    config.data.name = "files"
    config.data.files = dict(interactions="my/ratings.csv", user_col="user", item_col="movie",
                             rating_col="stars", split_col="fold",
                             item_features="my/movies.csv", item_id_col="movie",
                             list_columns=("genres",))

CSV, TSV (``.tsv``/``.tab``), Parquet and gzip-compressed CSV are read by extension. The item and
user ID spaces are those of the interactions; a feature table must have exactly one row for each
of those IDs (extra rows, e.g. products with no interactions, are dropped and reported).

What the loader refuses (``FilesError``, a ``DataError``, naming the file, the line or row, the
column and the value): a missing, empty, folder or looping-link path; a truncated or corrupt gzip;
a last line cut short; missing or non-numeric IDs, ratings, weights or timestamps; non-integer
numeric IDs (``12.5``); negative weights; fractional timestamps; empty split labels; duplicate or
missing feature rows. What it accepts and reports (a ``DataWarning`` and a sentence in
``info["warnings"]``): a Latin-1 file (read as Latin-1 when not valid UTF-8), whole-number float
IDs (read as integers), repeated (user, item) pairs (kept, or merged by ``duplicates``; the
number with conflicting ratings is counted), feature rows without interactions (dropped).
Users or items only in validation/test of a split column are reported by
``splits.split_from_column`` (its ``unseen`` argument).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hybridrec.data.datasets import _cache
from hybridrec.data.datasets._base import DataError, Dataset
from hybridrec.data.interactions import IdMap, Interactions, InteractionsError


class FilesError(DataError):
    """A data file that cannot be used as given; the message names the file and the column."""


_TEXT_EXTENSIONS = (".tsv", ".tab", ".inter")


def _is_parquet(path: str) -> bool:
    return path.lower().removesuffix(".gz").endswith((".parquet", ".pq"))


def _describe_row(path: str, row: int | None) -> str:
    """``path:LINE`` for a CSV data row (line 1 is the header), ``path (row N)`` for Parquet."""
    if row is None:
        return path
    if _is_parquet(path):
        return f"{path} (row {row})"
    # Exact unless a quoted field above spans several lines.
    return f"{path}:{row + 2}"


def read_table(
    path: str | os.PathLike, info: dict | None = None, id_columns: Sequence[str] = ()
) -> pd.DataFrame:
    """Reads a CSV / TSV / Parquet file chosen by its extension (``.gz``: gzip-compressed).

    Text is read as strict UTF-8, else as Latin-1 (reported in ``info``). Every failure is a
    ``FilesError`` naming the file: absent, a folder, a symlink loop, empty, a truncated or
    corrupt gzip, no columns, a last line cut short. In CSV, ``id_columns`` are read as text
    first, so IDs like ``007`` are not turned into the number 7 (see ``_text_ids``).
    """
    path = os.fspath(path)
    try:
        _cache.check_file(path, "table")
    except DataError as err:
        if not os.path.lexists(path):
            raise FilesError(f"no such file: {path}") from None
        raise FilesError(str(err)) from None
    lower = path.lower().removesuffix(".gz")
    if _is_parquet(path):
        try:
            table = pd.read_parquet(path)
            _release_arrow_memory()
            return table
        except Exception as err:  # noqa: BLE001 -- pyarrow raises many types; all mean "bad file"
            raise FilesError(
                f"{path}: cannot be read as Parquet ({type(err).__name__}: {err})"
            ) from None
    sep = "\t" if lower.endswith(_TEXT_EXTENSIONS) else ","
    try:
        encoding = _cache.detect_encoding(path)
    except DataError as err:
        raise FilesError(str(err)) from None
    if info is not None:
        info.setdefault("encodings", {})[os.path.basename(path)] = encoding
        if not encoding.startswith("utf-8"):
            _cache.report(info, f"{path}: not valid UTF-8; read as {encoding}")
    try:
        table = _cache.read_csv_strict(
            path, encoding, sep=sep, keep_default_na=True, dtype={c: str for c in id_columns}
        )
    except pd.errors.EmptyDataError:
        raise FilesError(f"{path}: holds no header and no data (only blank lines?)") from None
    except pd.errors.ParserError as err:
        text = str(err).replace("Error tokenizing data. C error: ", "").strip()
        raise FilesError(f"{path}: cannot be read as a table: {text}") from None
    except DataError as err:
        raise FilesError(str(err)) from None
    except (ValueError, *_cache.READ_ERRORS) as err:
        raise FilesError(str(_cache.read_error(path, err, encoding))) from None
    try:
        _cache.check_last_line(path, sep, len(table.columns), encoding)
    except DataError as err:
        raise FilesError(str(err)) from None
    for col in id_columns:
        if col in table.columns and table[col].notna().all():
            table[col] = _text_ids(table[col])
    return table


def _release_arrow_memory() -> None:
    """Hands back the memory pyarrow's allocator kept from reading a Parquet file.

    The DataFrame owns copies of the columns; what pyarrow's pool (mimalloc or jemalloc) holds
    after the read is free space it keeps for later, which stays resident for the whole run.
    """
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except Exception:  # noqa: BLE001 -- an optional saving; older pyarrow lacks the call
        pass


_INTEGER_TEXT = r"-?[1-9][0-9]*|0"


def _text_ids(ids: pd.Series) -> pd.Series:
    """IDs read as text: int64 when every one is written as a plain integer; floats when every
    one is a number (then ``_whole_id_column`` decides); else the strings as they are.

    So ``7``/``42`` are the integers 7 and 42, ``12.0``/``12.5`` are numbers (the latter
    refused), and ``007``/``u1`` stay text: reading ``007`` as 7 would merge it with user ``7``.
    """
    text = ids.astype(str).str.strip()
    if text.str.fullmatch(_INTEGER_TEXT).all():
        return pd.Series(text.astype(np.int64).to_numpy(), index=ids.index, name=ids.name)
    numbers = pd.to_numeric(text, errors="coerce")
    leading_zero = text.str.match(r"-?0[0-9]").any()
    finite = np.isfinite(numbers.to_numpy(np.float64, na_value=np.nan)).all()
    if finite and not leading_zero:
        return pd.Series(numbers.to_numpy(np.float64), index=ids.index, name=ids.name)
    return pd.Series(text.to_numpy(dtype=object), index=ids.index, name=ids.name, dtype=object)


def _whole_id_column(table: pd.DataFrame, col: str, path: str, info: dict, what: str) -> None:
    """A float ID column must hold whole numbers; it is converted to int64 (and reported)."""
    values = table[col]
    if values.dtype.kind != "f" or values.isna().any():
        return  # missing IDs are reported by the caller, with their row
    raw = values.to_numpy()
    frac = ~np.isfinite(raw) | (raw != np.round(raw))
    if frac.any():
        row = int(np.flatnonzero(frac)[0])
        raise FilesError(
            f"{_describe_row(path, row)}: column {col!r} holds the non-integer {what} ID "
            f"{float(raw[row])!r}; an ID column of numbers must hold whole numbers"
        )
    table[col] = raw.astype(np.int64)
    _cache.report(
        info,
        f"{path}: column {col!r} holds whole numbers stored as floats; read as integer {what} IDs",
    )


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
    path = os.fspath(path)
    id_col = id_col or read_table(path, info).columns[0]
    table = read_table(path, None, id_columns=(id_col,))
    if id_col not in table.columns:
        raise FilesError(f"{path}: no ID column {id_col!r}; columns are {list(table.columns)}")
    ids = table[id_col]
    if ids.isna().any():
        row = int(np.flatnonzero(ids.isna().to_numpy())[0])
        raise FilesError(
            f"{_describe_row(path, row)}: column {id_col!r} has a missing {entity} ID at data "
            f"row {row}"
        )
    _whole_id_column(table, id_col, path, info, entity)
    ids = table[id_col]
    dup = ids.duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise FilesError(
            f"{_describe_row(path, row)}: {entity} ID {ids.tolist()[row]!r} appears twice "
            f"(again at data row {row})"
        )
    positions = id_map.to_index(ids.to_numpy(), allow_unknown=True)
    known = positions >= 0
    num_extra = int((~known).sum())
    info[f"{entity}_feature_rows_without_interactions"] = num_extra
    if num_extra:
        examples = ids[~known].tolist()[:3]
        _cache.report(
            info,
            f"{path}: {num_extra} {entity} row(s) have no interactions and were dropped, e.g. "
            f"{entity} IDs {examples}",
        )
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
    # Where the table came from, for messages about its values downstream (feature encoding).
    table.attrs["source"] = path
    return table


def _py(value: object) -> object:
    """A numpy scalar as the Python value it holds, so messages read ``'u1'``, not ``np.str_``."""
    return value.item() if isinstance(value, np.generic) else value


def _report_unseen(
    inter: Interactions, split: np.ndarray, split_col: str, path: str, info: dict
) -> None:
    """Reports users and items whose rows are all outside ``train`` in the split column.

    They are cold in that split: nothing of theirs is trained. ``split_from_column`` decides
    what to do with them (its ``unseen``: warn, refuse, or accept as a cold-start split).
    """
    train = split == "train"
    for entity, ids, size, id_map in (
        ("user", inter.user_ids, inter.num_users, inter.user_map),
        ("item", inter.item_ids, inter.num_items, inter.item_map),
    ):
        in_train = np.bincount(ids[train], minlength=size) > 0
        unseen = np.flatnonzero(~in_train & (np.bincount(ids, minlength=size) > 0))
        info[f"num_{entity}s_without_training_rows"] = len(unseen)
        if len(unseen):
            row = int(np.flatnonzero(np.isin(ids, unseen))[0])
            examples = [_py(v) for v in id_map.to_raw(unseen[:3])]
            _cache.report(
                info,
                f"{_describe_row(path, row)}: {len(unseen)} {entity}(s) have no row labelled "
                f"'train' in column {split_col!r}, e.g. {examples}; they are cold in this split "
                "(config.split.unseen='error' refuses them, 'cold' accepts them silently)",
            )


def _report_duplicates(
    inter: Interactions, policy: str, rating_col: str | None, path: str, info: dict
) -> None:
    """Counts repeated (user, item) pairs; with ``duplicates="keep"`` says they are kept.

    Repeated pairs with different ratings (two ratings of one movie by one user) are conflicting:
    kept as they are, both rows count in training and evaluation.
    """
    key = inter.user_ids.astype(np.int64) * max(inter.num_items, 1) + inter.item_ids
    # Sorting the keys (values, not an argsort) takes about a second for 50M rows, a tenth of a
    # hash-based pandas ``duplicated``; the rows of repeated pairs are looked up only if any.
    sorted_keys = np.sort(key)
    same = sorted_keys[1:] == sorted_keys[:-1]
    repeated_keys = np.unique(sorted_keys[1:][same])
    del sorted_keys, same
    info["num_duplicate_pairs"] = len(repeated_keys)
    if not len(repeated_keys):
        return
    repeated = np.isin(key, repeated_keys)
    conflicting = 0
    if inter.ratings is not None:
        frame = pd.DataFrame({"key": key[repeated], "r": inter.ratings[repeated]})
        conflicting = int((frame.groupby("key")["r"].nunique() > 1).sum())
    info["num_conflicting_duplicate_pairs"] = conflicting
    if policy == "keep":
        row = int(np.flatnonzero(repeated)[0])
        user = _py(inter.user_map.to_raw(inter.user_ids[row]))
        item = _py(inter.item_map.to_raw(inter.item_ids[row]))
        what = f" ({conflicting} with conflicting {rating_col!r} values)" if conflicting else ""
        _cache.report(
            info,
            f"{_describe_row(path, row)}: {info['num_duplicate_pairs']} (user, item) pair(s) "
            f"occur in several rows{what}, e.g. ({user!r}, {item!r}); all rows are kept "
            "(duplicates='keep'); pass duplicates='last', 'first', 'max' or 'sum' to merge them, "
            "or 'error' to refuse them",
        )


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
    info: dict = {"path": os.path.abspath(path)}
    table = read_table(path, info, id_columns=(user_col, item_col))
    if split_col is not None and split_col not in table.columns:
        raise FilesError(
            f"{path}: no split column {split_col!r}; columns are {list(table.columns)}"
        )
    for col in (user_col, item_col):
        if col in table.columns:
            _whole_id_column(table, col, path, info, "user" if col == user_col else "item")
    try:
        inter = Interactions.from_dataframe(
            table,
            user_col=user_col,
            item_col=item_col,
            rating_col=rating_col,
            weight_col=weight_col,
            timestamp_col=timestamp_col,
        )
    except InteractionsError as err:
        raise FilesError(f"{_describe_row(path, err.row)}: {err}") from None
    split = None
    if split_col is not None:
        labels = table[split_col]
        if labels.isna().any():
            row = int(np.flatnonzero(labels.isna().to_numpy())[0])
            raise FilesError(
                f"{_describe_row(path, row)}: column {split_col!r} has an empty split label; "
                "every row needs train, val or test"
            )
        split = labels.astype(str).str.strip().to_numpy(dtype=object)
        _report_unseen(inter, split, split_col, path, info)
    _report_duplicates(inter, duplicates, rating_col, path, info)
    if duplicates != "keep":
        if split is not None:
            raise FilesError(
                f"{path}: a split column cannot be combined with duplicates={duplicates!r}"
            )
        before = len(inter)
        try:
            inter = inter.deduplicate(duplicates)  # type: ignore[arg-type]
        except InteractionsError as err:
            raise FilesError(f"{path}: {err}") from None
        if before != len(inter):
            _cache.report(
                info,
                f"{path}: {before - len(inter)} repeated (user, item) row(s) merged by "
                f"duplicates={duplicates!r}",
                num_duplicate_rows_removed=before - len(inter),
            )
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
