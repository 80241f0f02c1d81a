"""Categorical fields: one label (a beer style) or several (a genre list) per entity.

Values are mapped through a vocabulary of the values that occur in at least ``min_count``
training entities; anything else (and a missing value) is the unknown bucket, id 1. Output: a
bag ``"{name}/ids"`` (n, W), ``"{name}/weights"`` (1.0 per value), ``"{name}/lengths"``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from hybridrec.data.fields._base import (
    FIRST_VALUE_ID,
    UNKNOWN_ID,
    FeatureError,
    FieldEncoder,
    FieldExample,
    check_width,
    first_bad,
    is_missing_scalar,
    pack_bag,
    row_desc,
)


def _is_label(v: Any) -> bool:
    return isinstance(v, (str, int, np.integer, bool, np.bool_))


def _labels_to_str(values: np.ndarray) -> np.ndarray:
    """Stringifies categorical values; integer-valued floats become "3", not "3.0"."""
    if values.dtype.kind == "f":
        values = values.astype(np.int64)
    return values.astype(str).astype(object)


class Encoder(FieldEncoder):
    """Vocabulary of a categorical field (single- or multi-valued).

    Options:
      multi_valued: each entity holds a list of values (Python list / tuple / array, or a
        string split on ``separator``).
      separator: how a multi-valued string is split (``"Action|Comedy"``); None keeps the
        string as one value.
      min_count: values occurring in fewer training entities map to the unknown bucket.
      max_vocab: keep at most this many values (the most frequent).
      width: bag width ``W``. Default: 1 for a single-valued field, else the most distinct
        values of a training entity, at most ``max_width`` (excess entries are dropped and
        counted as ``truncated``).
      max_width: cap on the default width.
    """

    def __init__(
        self,
        *,
        name: str,
        entity: str,
        columns: tuple[str, ...],
        kind: str,
        multi_valued: bool = False,
        separator: str | None = "|",
        min_count: int = 1,
        max_vocab: int | None = None,
        width: int | None = None,
        max_width: int = 256,
    ):
        super().__init__(name=name, entity=entity, columns=columns, kind=kind)
        where = self.spec_where
        if int(min_count) < 1:
            raise FeatureError(f"{where}: min_count must be >= 1, got {min_count}")
        if max_vocab is not None and max_vocab < 1:
            raise FeatureError(f"{where}: max_vocab must be >= 1 or None, got {max_vocab}")
        check_width(where, width, max_width)
        self.multi_valued = bool(multi_valued)
        self.separator = separator
        self.min_count = int(min_count)
        self.max_vocab = max_vocab
        self.spec_width = width
        self.max_width = int(max_width)
        self.vocabulary: list[str] = []
        self.counts = np.zeros(0, np.int64)
        self.width = 0
        self._index = pd.Index([], dtype=object)

    # ------------------------------------------------------------------ reading values
    def _single_labels(self, series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """(n,) object array of string values and (n,) bool missing mask."""
        n = len(series)
        missing = series.isna().to_numpy(dtype=bool).copy()
        present = series[~missing]
        inferred = pd.api.types.infer_dtype(present, skipna=True)
        if inferred in ("floating", "mixed-integer-float"):
            raw = pd.to_numeric(present, errors="coerce").to_numpy(dtype=np.float64)
            bad = np.isnan(raw) | (raw != np.round(raw))
            if bad.any():
                row = int(np.flatnonzero(~missing)[np.argmax(bad)])
                raise FeatureError(
                    f"{self.where()}: {row_desc(series.index, row)} holds "
                    f"{series.iloc[row]!r}; a categorical value must be a string or an integer"
                )
            strings = _labels_to_str(raw)
        elif inferred in ("string", "integer", "boolean", "empty", "categorical"):
            strings = _labels_to_str(present.to_numpy())
        else:
            vals = present.to_numpy(dtype=object)
            bad = first_bad(vals, _is_label)
            if bad >= 0:
                row = int(np.flatnonzero(~missing)[bad])
                kind = "a list" if isinstance(vals[bad], (list, tuple, np.ndarray)) else "a value"
                hint = " (set multi_valued=True for lists)" if kind == "a list" else ""
                raise FeatureError(
                    f"{self.where()}: {row_desc(series.index, row)} holds {kind} of type "
                    f"{type(vals[bad]).__name__}: {vals[bad]!r}; a single-valued categorical "
                    f"field takes a string, an integer or None{hint}"
                )
            strings = np.array([str(v) for v in vals], dtype=object)
        # Stripped as multi-valued values are, so "ale " and "ale" are one category.
        strings = pd.Series(strings, dtype=object).str.strip().to_numpy(dtype=object)
        out = np.empty(n, dtype=object)
        out[~missing] = strings
        # An empty string is a missing value, not a category of its own.
        empty = np.zeros(n, dtype=bool)
        empty[~missing] = strings == ""
        missing |= empty
        out[missing] = None
        return out, missing

    def _multi_labels(self, series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """Flattened values: (rows (m,) int64, values (m,) object str)."""
        sep = self.separator

        def as_list(v):
            if isinstance(v, (list, tuple)):
                return v
            if isinstance(v, np.ndarray):
                return v.tolist()
            if isinstance(v, str):
                return v.split(sep) if sep is not None else [v]
            if is_missing_scalar(v):
                return ()
            raise TypeError

        values = series.to_numpy(dtype=object)
        lists = []
        # One Python call per entity (not per interaction): lists of strings have no vectorised
        # form.
        for i, v in enumerate(values):
            try:
                lists.append(as_list(v))
            except TypeError:
                raise FeatureError(
                    f"{self.where()}: {row_desc(series.index, i)} holds {type(v).__name__} "
                    f"{v!r}; a multi-valued categorical field takes a list of strings, a string "
                    f"separated by {sep!r}, [] or None"
                ) from None
        lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        flat = np.fromiter(
            itertools.chain.from_iterable(lists), dtype=object, count=int(lengths.sum())
        )
        rows = np.repeat(np.arange(len(values), dtype=np.int64), lengths)
        inferred = pd.api.types.infer_dtype(flat, skipna=False)
        if inferred not in ("string", "integer", "empty"):
            bad = first_bad(flat, lambda v: isinstance(v, (str, int, np.integer)))
            if bad >= 0:
                raise FeatureError(
                    f"{self.where()}: {row_desc(series.index, int(rows[bad]))} holds the element "
                    f"{flat[bad]!r} of type {type(flat[bad]).__name__}; list elements must be "
                    "strings"
                )
        strings = pd.Series(flat, dtype=object).astype(str).str.strip().to_numpy(dtype=object)
        keep = strings != ""
        return rows[keep], strings[keep]

    def _entries(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, values) of every value, and the (n,) missing mask."""
        series = frame[self.column]
        n = len(series)
        if self.multi_valued:
            rows, values = self._multi_labels(series)
            missing = np.bincount(rows, minlength=n) == 0
        else:
            labels, missing = self._single_labels(series)
            rows = np.flatnonzero(~missing)
            values = labels[rows]
        return rows, values, missing

    # ------------------------------------------------------------------ the contract
    def fit(self, frame: pd.DataFrame, interactions: Any = None) -> dict[str, Any]:
        """Learns the vocabulary from the training rows; returns their transform stats."""
        rows, values, _ = self._entries(frame)
        pairs = pd.DataFrame({"row": rows, "value": values}).drop_duplicates()
        counts = pairs["value"].value_counts()  # number of training entities per value
        counts = counts[counts >= self.min_count]
        if self.max_vocab is not None and len(counts) > self.max_vocab:
            order = np.lexsort((counts.index.to_numpy(dtype=str), -counts.to_numpy()))
            counts = counts.iloc[order[: self.max_vocab]]
        if len(counts) == 0:
            raise FeatureError(
                f"{self.where()}: empty vocabulary: no value occurs in at least "
                f"min_count={self.min_count} of the {len(frame)} training {self.entity}s "
                f"({len(pairs)} values in all)"
            )
        counts = counts.sort_index()
        self.vocabulary = [str(v) for v in counts.index]
        self.counts = counts.to_numpy(dtype=np.int64)
        self._index = pd.Index(self.vocabulary, dtype=object)
        if self.spec_width is not None:
            self.width = int(self.spec_width)
        elif not self.multi_valued:
            self.width = 1
        else:  # the widest training entity (distinct values, plus the unknown marker)
            dedup_rows, _ = self._dedup_ids(rows, values)
            widest = int(np.bincount(dedup_rows, minlength=len(frame)).max(initial=1))
            self.width = min(max(1, widest), self.max_width)
        return self.transform(frame)[1]

    def _dedup_ids(self, rows: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Maps values to ids; one entry per (entity, id), known values first, first-seen order."""
        found = self._index.get_indexer(values) if len(values) else np.zeros(0, np.int64)
        ids = np.where(found >= 0, found + FIRST_VALUE_ID, UNKNOWN_ID).astype(np.int64)
        key = rows * (len(self.vocabulary) + FIRST_VALUE_ID) + ids
        _, first = np.unique(key, return_index=True)
        order = np.lexsort((first, ids[first] == UNKNOWN_ID, rows[first]))
        keep = first[order]
        return rows[keep], ids[keep]

    def transform(self, frame: pd.DataFrame) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The bag arrays of ``frame``'s rows, and counts of missing / unknown / truncated."""
        n = len(frame)
        rows, values, missing = self._entries(frame)
        found = self._index.get_indexer(values) if len(values) else np.zeros(0, np.int64)
        unknown = found < 0
        dedup_rows, ids = self._dedup_ids(rows, values)
        out_ids, out_w, lengths, fits = pack_bag(
            dedup_rows, ids, np.ones(len(ids), np.float32), n, self.width
        )
        unknown_values = pd.Series(values[unknown]).value_counts()
        stats = {
            "missing": int(missing.sum()),
            "unknown": int(unknown.sum()),
            "unknown_entities": int(len(np.unique(rows[unknown]))),
            "unknown_examples": [str(v) for v in unknown_values.index[:5]],
            "truncated": int(len(np.unique(dedup_rows[~fits]))),
            "mean_length": float(np.bincount(dedup_rows, minlength=n).mean()) if n else 0.0,
        }
        return self.bag_arrays(out_ids, out_w, lengths), stats

    def info(self):
        """Bag of width W over the vocabulary plus padding and unknown."""
        return self.field_info(vocab_size=len(self.vocabulary) + FIRST_VALUE_ID, width=self.width)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Vocabulary and width (JSON); per-value training counts (array)."""
        return {"vocabulary": self.vocabulary, "width": self.width}, {"counts": self.counts}

    def load_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        """Inverse of ``state``."""
        self.vocabulary = [str(v) for v in state["vocabulary"]]
        self.width = int(state["width"])
        self.counts = np.asarray(arrays["counts"], np.int64)
        self._index = pd.Index(self.vocabulary, dtype=object)

    def describe(self, stats: Mapping[str, Any], n: int) -> tuple[str, str, list[str]]:
        """Coverage-table cells: kind label, vocabulary size, notes."""
        notes = [f"min_count {self.min_count}"]
        if self.multi_valued:
            notes.append(f"mean {stats['mean_length']:.2f} values")
        if stats["unknown"]:
            notes.append(f"{stats['unknown']:,} values outside vocab")
        label = "categorical (multi)" if self.multi_valued else "categorical"
        return label, f"{len(self.vocabulary):,}", notes


def example(rng: np.random.Generator) -> FieldExample:
    """A multi-valued genre list with a rare value, an unseen value and missing rows."""
    genres = ["Action", "Comedy", "Drama", "Horror"]
    train = pd.DataFrame(
        {"genres": [list(rng.choice(genres, size=rng.integers(1, 3))) for _ in range(12)]},
        index=pd.Index([f"i{k}" for k in range(12)]),
    )
    train.iloc[0, 0] = ["Action", "Comedy", "Drama", "Horror"]  # every value seen; W = 4
    test = pd.DataFrame(
        {"genres": [["Comedy", "Action"], "Drama|Western", None, [], "Western"]},
        index=pd.Index(["n0", "n1", "n2", "n3", "n4"]),
    )
    # Vocabulary (sorted): Action 2, Comedy 3, Drama 4, Horror 5.
    expected = {
        0: {"f/ids": [3, 2, 0, 0], "f/weights": [1, 1, 0, 0], "f/lengths": 2},
        1: {"f/ids": [4, 1, 0, 0], "f/lengths": 2},
        2: {"f/ids": [1, 0, 0, 0], "f/weights": [1, 0, 0, 0]},
    }
    return FieldExample(
        options=dict(column="genres", multi_valued=True),
        train=train,
        test=test,
        missing=[2, 3],
        unseen=[1, 4],
        expected=expected,
    )
