"""The one data class for user-item interactions: ``Interactions``.

An ``Interactions`` holds parallel arrays (one entry per interaction) of contiguous user and item
indices, optional ratings, weights and timestamps, and the two ``IdMap`` objects that translate
between raw IDs (as they appear in the source file: strings or ints) and those indices. Every
split, sampler, model and metric in hybridrec takes or returns one, and all subsets of a dataset
share the ID space of the whole, so an index means the same user or item everywhere.

Nothing here loops over interactions in Python: building, de-duplicating, filtering and the CSR
view are all vectorised numpy / pandas / scipy operations.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

DuplicatePolicy = Literal["keep", "error", "first", "last", "max", "sum"]


class DataError(ValueError):
    """Bad input data; the message names the file (when there is one), the line or column, and the
    bad value.

    The base of every data error in hybridrec: ``InteractionsError`` (and ``SplitError``) here,
    and every dataset loader's error (``DataFormatError``, ``MissingDataFileError``,
    ``BeerReviewsError``, ``FilesError``, ``AmazonMetadataError``), so ``except DataError``
    catches all of them and nothing else. Defined here, the lowest module of ``hybridrec.data``,
    so that both the data class and the loaders can share it without an import cycle.
    """


class InteractionsError(DataError):
    """Raised for malformed interaction data; the message names the column and an example row.

    Attributes:
      column: the offending column (e.g. ``"weights"`` or a DataFrame column name), or None.
      row: the 0-based position of the first offending row, or None.
      value: the offending value of that row, or None.
    """

    def __init__(
        self, message: str, *, column: str | None = None, row: int | None = None, value: Any = None
    ):
        super().__init__(message)
        self.column, self.row, self.value = column, row, value


def _py(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, so messages read ``5``, not ``np.int64(5)``."""
    return value.item() if isinstance(value, np.generic) else value


def _example(df: pd.DataFrame, mask: np.ndarray) -> str:
    """Formats the first row of ``df`` where ``mask`` holds, for error messages."""
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return ""
    row = df.iloc[int(idx[0])]
    return f" (first at row {int(idx[0])}: {row.to_dict()}; {len(idx)} rows in all)"


def _whole_ids(df: pd.DataFrame, col: str) -> np.ndarray:
    """The raw IDs of column ``col``; a float column must hold whole numbers and becomes int64.

    A float ID column comes from a file whose integer IDs passed through a float type (Parquet
    written from pandas with NaN, a CSV with ``12.0``); ``12.5`` there is a corrupt ID, not a new
    user, so it raises instead of joining the ID space.
    """
    raw = df[col].to_numpy()
    if raw.dtype.kind != "f":
        return raw
    frac = ~np.isfinite(raw) | (raw != np.round(raw))
    if frac.any():
        row = int(np.flatnonzero(frac)[0])
        raise InteractionsError(
            f"column '{col}' holds the non-integer ID {_py(raw[row])!r}; a float ID column must "
            f"hold whole numbers{_example(df, frac)}",
            column=col,
            row=row,
            value=_py(raw[row]),
        )
    return raw.astype(np.int64)


@dataclasses.dataclass(frozen=True, eq=False)
class IdMap:
    """Two-way map between raw IDs and contiguous indices ``0 .. len - 1``.

    Attributes:
      raw_ids: (n,) array; ``raw_ids[i]`` is the raw ID of index ``i``. Ints stay ints, anything
        else is kept as Python objects (strings).
      name: what the IDs are ("user" or "item"), used in error messages.
    """

    raw_ids: np.ndarray
    name: str = "id"

    def __post_init__(self):
        raw = np.asarray(self.raw_ids)
        if raw.ndim != 1:
            raise InteractionsError(
                f"{self.name} IdMap needs a 1-D array of raw IDs, got shape {raw.shape}"
            )
        object.__setattr__(self, "raw_ids", raw)
        if len(pd.unique(raw)) != len(raw):
            dup = pd.Series(raw)[pd.Series(raw).duplicated()].iloc[0]
            raise InteractionsError(f"{self.name} IdMap has duplicate raw ID {_py(dup)!r}")

    @classmethod
    def from_values(cls, values: Sequence[Any] | np.ndarray, name: str = "id") -> IdMap:
        """Builds a map over the sorted unique values (sorted, so indices are reproducible)."""
        uniq = pd.unique(pd.Series(values))
        try:
            uniq = np.sort(np.asarray(uniq))
        except TypeError:  # mixed types: keep first-seen order
            uniq = np.asarray(uniq, dtype=object)
        if uniq.dtype.kind not in "iu":
            uniq = uniq.astype(object)
        return cls(uniq, name=name)

    @classmethod
    def identity(cls, n: int, name: str = "id") -> IdMap:
        """A map whose raw IDs are the indices themselves."""
        return cls(np.arange(n, dtype=np.int64), name=name)

    def __len__(self) -> int:
        return len(self.raw_ids)

    @functools.cached_property
    def _index(self) -> pd.Index:
        return pd.Index(self.raw_ids)

    def to_index(self, raw: Any, *, allow_unknown: bool = False) -> np.ndarray:
        """Maps raw IDs to indices.

        Args:
          raw: a raw ID or an array-like of them, shape (n,).
          allow_unknown: if True, unknown IDs map to -1 instead of raising.

        Returns:
          int64 array of shape (n,) (or a scalar array for a scalar input).
        """
        scalar = np.isscalar(raw) or isinstance(raw, str)
        values = np.asarray([raw] if scalar else raw)
        if values.dtype.kind not in "iubf" and self.raw_ids.dtype.kind in "iu":
            # Raw IDs read as text (e.g. "42" from a CSV) still match integer IDs, but only when
            # the text is exactly an integer: "12.5" must not become user 12.
            numbers = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
            exact = np.isfinite(numbers) & (numbers == np.round(numbers))
            if exact.all() and len(values):
                values = numbers.astype(np.int64)
            elif exact.any():
                converted = np.full(len(values), -1, np.int64)
                converted[exact] = numbers[exact].astype(np.int64)
                idx = self._index.get_indexer(converted)
                idx[~exact] = -1
                return self._checked(idx, values, allow_unknown, scalar)
        # Float values match integer IDs only when whole (pandas compares numerically).
        idx = self._index.get_indexer(values)
        return self._checked(idx, values, allow_unknown, scalar)

    def _checked(
        self, idx: np.ndarray, values: np.ndarray, allow_unknown: bool, scalar: bool
    ) -> np.ndarray:
        if not allow_unknown and (idx < 0).any():
            bad = values[idx < 0]
            raise KeyError(
                f"unknown {self.name} ID {_py(bad[0])!r} ({len(bad)} unknown of {len(values)}); "
                f"known {self.name} IDs look like {self.raw_ids[:3].tolist()}"
            )
        return idx[0] if scalar else idx

    def to_raw(self, indices: np.ndarray | int) -> np.ndarray:
        """Maps indices back to raw IDs; shape follows ``indices``."""
        indices = np.asarray(indices)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(
                f"{self.name} index out of range [0, {len(self)}): {indices.min()}..{indices.max()}"
            )
        return self.raw_ids[indices]

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, IdMap)
            and len(self) == len(other)
            and bool(np.all(self.raw_ids == other.raw_ids))
        )

    __hash__ = None  # type: ignore[assignment]


@dataclasses.dataclass(frozen=True, eq=False)
class Interactions:
    """User-item interactions in one shared ID space.

    Attributes:
      user_ids: (N,) int32 user indices in ``[0, num_users)``.
      item_ids: (N,) int32 item indices in ``[0, num_items)``.
      ratings: (N,) float32 explicit ratings, or None for implicit data.
      weights: (N,) float32 per-interaction weights (e.g. graded labels), or None (all 1).
      timestamps: (N,) int64 timestamps, or None.
      user_map: raw user IDs <-> indices; ``len(user_map) == num_users``.
      item_map: raw item IDs <-> indices; ``len(item_map) == num_items``.

    ``num_users`` and ``num_items`` are the size of the ID space, which may be larger than the set of
    users and items that occur here (a split keeps the ID space of the whole dataset).
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    user_map: IdMap
    item_map: IdMap
    ratings: np.ndarray | None = None
    weights: np.ndarray | None = None
    timestamps: np.ndarray | None = None

    def __post_init__(self):
        def arr(name, dtype):
            value = getattr(self, name)
            if value is None:
                return None
            a = np.asarray(value)
            if a.ndim != 1:
                raise InteractionsError(f"column '{name}' must be 1-D, got shape {a.shape}")
            if dtype is np.int32 and a.size and a.dtype.kind == "f":
                if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
                    bad = np.flatnonzero(~np.isfinite(a) | (a != np.round(a)))[0]
                    raise InteractionsError(
                        f"column '{name}' holds a non-integer index {_py(a[bad])!r} at row {bad}"
                    )
            elif dtype is np.int32 and a.size and a.dtype.kind not in "iu":
                raise InteractionsError(
                    f"column '{name}' must hold integer indices, got dtype {a.dtype}"
                )
            elif dtype is np.int64 and a.size and a.dtype.kind == "f":
                # Beyond +-2**63 the cast to int64 would wrap around silently.
                frac = ~np.isfinite(a) | (a != np.round(a)) | (np.abs(a) >= 2.0**63)
                if frac.any():
                    bad = int(np.flatnonzero(frac)[0])
                    raise InteractionsError(
                        f"column '{name}' holds {_py(a[bad])!r} at row {bad}; timestamps must "
                        "be whole numbers within int64's range (e.g. Unix seconds)",
                        column=name,
                        row=bad,
                        value=_py(a[bad]),
                    )
            object.__setattr__(self, name, aligned(a.astype(dtype, copy=False)))
            return a

        # Range checks run on the values as given: a cast to int32 would wrap 2**32 + 1 to 1.
        with np.errstate(over="ignore", invalid="ignore"):
            given = {name: arr(name, np.int32) for name in ("user_ids", "item_ids")}
            given.update({name: arr(name, np.float32) for name in ("ratings", "weights")})
        arr("timestamps", np.int64)
        n = len(self.user_ids)
        for name in ("item_ids", "ratings", "weights", "timestamps"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise InteractionsError(
                    f"mismatched lengths: user_ids has {n} rows but {name} has {len(value)}"
                )
        for name, ids, size in (
            ("user_ids", np.asarray(given["user_ids"]), self.num_users),
            ("item_ids", np.asarray(given["item_ids"]), self.num_items),
        ):
            if n == 0:
                continue
            if ids.min() < 0:
                row = int(np.argmin(ids))
                raise InteractionsError(
                    f"column '{name}' holds a negative index {ids[row]} at row {row}"
                )
            if ids.max() >= size:
                row = int(np.argmax(ids))
                raise InteractionsError(
                    f"column '{name}' holds index {ids[row]} at row {row}, but the ID space has only "
                    f"{size} {name.split('_')[0]}s (indices 0..{size - 1})"
                )
        for name in ("ratings", "weights"):
            value = getattr(self, name)
            if value is not None and not np.all(np.isfinite(value)):
                row = int(np.flatnonzero(~np.isfinite(value))[0])
                original = _py(np.asarray(given[name])[row])
                beyond = " (beyond float32's range)" if np.isfinite(np.float64(original)) else ""
                raise InteractionsError(
                    f"column '{name}' holds {original} at row {row}{beyond}",
                    column=name,
                    row=row,
                    value=original,
                )
        if self.weights is not None and len(self.weights) and self.weights.min() < 0:
            row = int(np.argmin(self.weights))
            raise InteractionsError(
                f"column 'weights' holds the negative weight {_py(self.weights[row])} at row "
                f"{row}; weights must be >= 0",
                column="weights",
                row=row,
                value=_py(self.weights[row]),
            )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        user_ids: np.ndarray,
        item_ids: np.ndarray,
        *,
        num_users: int | None = None,
        num_items: int | None = None,
        ratings: np.ndarray | None = None,
        weights: np.ndarray | None = None,
        timestamps: np.ndarray | None = None,
    ) -> Interactions:
        """Builds from index arrays whose raw IDs are the indices themselves.

        Args:
          user_ids, item_ids: (N,) non-negative integer indices.
          num_users, num_items: size of the ID spaces; default max index + 1.
        """
        user_ids = np.asarray(user_ids)
        item_ids = np.asarray(item_ids)
        if len(user_ids) != len(item_ids):
            raise InteractionsError(
                f"mismatched lengths: user_ids has {len(user_ids)} rows but item_ids has {len(item_ids)}"
            )
        if num_users is None:
            num_users = int(user_ids.max()) + 1 if len(user_ids) else 0
        if num_items is None:
            num_items = int(item_ids.max()) + 1 if len(item_ids) else 0
        return cls(
            user_ids=user_ids,
            item_ids=item_ids,
            user_map=IdMap.identity(num_users, "user"),
            item_map=IdMap.identity(num_items, "item"),
            ratings=ratings,
            weights=weights,
            timestamps=timestamps,
        )

    @classmethod
    def from_dataframe(
        cls,
        df: pd.DataFrame,
        *,
        user_col: str = "user_id",
        item_col: str = "item_id",
        rating_col: str | None = None,
        weight_col: str | None = None,
        timestamp_col: str | None = None,
        user_map: IdMap | None = None,
        item_map: IdMap | None = None,
        allow_unknown: bool = False,
        duplicates: DuplicatePolicy = "keep",
    ) -> Interactions:
        """Builds interactions from a DataFrame of raw IDs.

        Args:
          df: one row per interaction.
          user_col, item_col: columns of raw user and item IDs (any hashable values).
          rating_col, weight_col, timestamp_col: optional numeric columns.
          user_map, item_map: existing ID maps to reuse (e.g. a test file mapped into the ID space
            of training). Default: built from the sorted unique IDs of ``df``.
          allow_unknown: with given maps, drop rows whose IDs the maps do not know instead of
            raising.
          duplicates: what to do with repeated (user, item) pairs; see ``deduplicate``.

        A float ID column (integer IDs that passed through a float type) must hold whole numbers
        and is read as int64; timestamps must be whole numbers; weights must be >= 0.

        Raises:
          InteractionsError: naming the column and an example row (and carrying ``column``,
            ``row``, ``value``), for missing columns, empty data, missing or non-integer float
            IDs, NaN / non-numeric ratings, weights or timestamps, negative weights, fractional
            timestamps, or unknown IDs.
        """
        if not isinstance(df, pd.DataFrame):
            raise InteractionsError(f"expected a pandas DataFrame, got {type(df).__name__}")
        wanted = [c for c in (user_col, item_col, rating_col, weight_col, timestamp_col) if c]
        missing = [c for c in wanted if c not in df.columns]
        if missing:
            raise InteractionsError(
                f"missing column(s) {missing}; the DataFrame has columns {list(df.columns)}"
            )
        if len(df) == 0:
            raise InteractionsError("no interactions: the DataFrame is empty")
        df = df.reset_index(drop=True)
        raw_ids = {}
        for col in (user_col, item_col):
            null = df[col].isna().to_numpy()
            if null.any():
                row = int(np.flatnonzero(null)[0])
                raise InteractionsError(
                    f"column '{col}' has missing IDs{_example(df, null)}", column=col, row=row
                )
            raw_ids[col] = _whole_ids(df, col)
        numeric: dict[str, np.ndarray | None] = {}
        for key, col in (
            ("ratings", rating_col),
            ("weights", weight_col),
            ("timestamps", timestamp_col),
        ):
            if col is None:
                numeric[key] = None
                continue
            values = pd.to_numeric(df[col], errors="coerce")
            bad = values.isna().to_numpy() | ~np.isfinite(
                values.to_numpy(dtype=np.float64, na_value=np.nan)
            )
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise InteractionsError(
                    f"column '{col}' has missing or non-numeric values{_example(df, bad)}",
                    column=col,
                    row=row,
                    value=_py(df[col].iloc[row]),
                )
            numeric[key] = values.to_numpy()
            if key == "weights" and (numeric[key] < 0).any():
                neg = numeric[key] < 0
                row = int(np.flatnonzero(neg)[0])
                raise InteractionsError(
                    f"column '{col}' holds the negative weight {_py(numeric[key][row])!r}; "
                    f"weights must be >= 0{_example(df, neg)}",
                    column=col,
                    row=row,
                    value=_py(numeric[key][row]),
                )
        if numeric["timestamps"] is not None:
            ts = numeric["timestamps"].astype(np.float64)
            frac = (ts != np.round(ts)) | (np.abs(ts) >= 2.0**63)
            if frac.any():
                row = int(np.flatnonzero(frac)[0])
                raise InteractionsError(
                    f"column '{timestamp_col}' holds the timestamp "
                    f"{_py(df[timestamp_col].iloc[row])!r}; timestamps must be whole numbers "
                    f"within int64's range{_example(df, frac)}",
                    column=timestamp_col,
                    row=row,
                    value=_py(df[timestamp_col].iloc[row]),
                )
            numeric["timestamps"] = numeric["timestamps"].astype(np.int64)

        maps = {}
        indices = {}
        for key, col, given in (("user", user_col, user_map), ("item", item_col, item_map)):
            raw = raw_ids[col]
            m = given if given is not None else IdMap.from_values(raw, name=key)
            idx = m.to_index(raw, allow_unknown=True)
            maps[key], indices[key] = m, idx
        unknown = (indices["user"] < 0) | (indices["item"] < 0)
        if unknown.any():
            if not allow_unknown:
                col = user_col if (indices["user"] < 0).any() else item_col
                row = int(np.flatnonzero(unknown)[0])
                raise InteractionsError(
                    f"column '{col}' holds IDs unknown to the given ID map{_example(df, unknown)}; "
                    "pass allow_unknown=True to drop such rows",
                    column=col,
                    row=row,
                    value=_py(df[col].iloc[row]),
                )
            keep = ~unknown
            indices = {k: v[keep] for k, v in indices.items()}
            numeric = {k: (None if v is None else v[keep]) for k, v in numeric.items()}
        out = cls(
            user_ids=indices["user"],
            item_ids=indices["item"],
            user_map=maps["user"],
            item_map=maps["item"],
            **numeric,
        )
        return out.deduplicate(duplicates)

    # ------------------------------------------------------------------ basic views
    @property
    def num_users(self) -> int:
        return len(self.user_map)

    @property
    def num_items(self) -> int:
        return len(self.item_map)

    def __len__(self) -> int:
        return len(self.user_ids)

    def __repr__(self) -> str:
        cols = [c for c in ("ratings", "weights", "timestamps") if getattr(self, c) is not None]
        return (
            f"Interactions({len(self)} interactions, {self.num_users} users, {self.num_items} items"
            + (f", with {', '.join(cols)}" if cols else "")
            + ")"
        )

    @property
    def is_explicit(self) -> bool:
        return self.ratings is not None

    @property
    def interaction_weights(self) -> np.ndarray:
        """(N,) float32 weights, ones where none are given."""
        if self.weights is None:
            return np.ones(len(self), np.float32)
        return self.weights

    def user_balanced_weights(self, exponent: float) -> np.ndarray:
        """(N,) float32 training weights that move each user's share of the loss toward equal.

        Each interaction's weight (``interaction_weights``) times ``n_u ** -exponent``, where
        ``n_u`` is the number of interactions of its user, rescaled so that the weights sum to
        what they summed to before (the loss's scale, and so the learning rate, unchanged).
        ``exponent=0`` returns ``interaction_weights``; ``1`` gives every user the same total
        weight (a user-level average, as an autoencoder trained a user at a time has); between
        the two, heavy users still count more, but less than in proportion to their activity.

        Args:
          exponent: >= 0.

        Returns:
          (N,) float32.

        Raises:
          InteractionsError: a negative or non-finite exponent.
        """
        exponent = float(exponent)
        if not np.isfinite(exponent) or exponent < 0:
            raise InteractionsError(
                f"user_balanced_weights: the exponent must be a finite number >= 0, got {exponent}"
            )
        weights = self.interaction_weights
        if exponent == 0 or len(self) == 0:
            return weights
        counts = np.bincount(self.user_ids, minlength=self.num_users).astype(np.float64)
        scaled = weights * counts[self.user_ids] ** -exponent
        total = float(scaled.sum())
        if total <= 0:  # every weight is zero: nothing to rescale
            return weights
        return (scaled * (float(weights.sum()) / total)).astype(np.float32)

    def replace(self, **changes: Any) -> Interactions:
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    def subset(self, rows: np.ndarray) -> Interactions:
        """The interactions at ``rows`` (a boolean mask or integer positions), same ID space."""
        rows = np.asarray(rows)

        def take(a):
            return None if a is None else a[rows]

        return Interactions(
            user_ids=self.user_ids[rows],
            item_ids=self.item_ids[rows],
            user_map=self.user_map,
            item_map=self.item_map,
            ratings=take(self.ratings),
            weights=take(self.weights),
            timestamps=take(self.timestamps),
        )

    def concatenate(self, other: Interactions) -> Interactions:
        """All interactions of ``self`` then ``other``; both must share the ID space."""
        self._check_same_space(other)

        def cat(a, b):
            if a is None and b is None:
                return None
            if a is None or b is None:
                raise InteractionsError(
                    "cannot concatenate interactions with and without the same columns"
                )
            return np.concatenate([a, b])

        return Interactions(
            user_ids=np.concatenate([self.user_ids, other.user_ids]),
            item_ids=np.concatenate([self.item_ids, other.item_ids]),
            user_map=self.user_map,
            item_map=self.item_map,
            ratings=cat(self.ratings, other.ratings),
            weights=cat(self.weights, other.weights),
            timestamps=cat(self.timestamps, other.timestamps),
        )

    def _check_same_space(self, other: Interactions) -> None:
        if self.user_map != other.user_map or self.item_map != other.item_map:
            raise InteractionsError(
                "interactions live in different ID spaces "
                f"({self.num_users}x{self.num_items} vs {other.num_users}x{other.num_items}); "
                "build them from the same user_map / item_map"
            )

    def to_dataframe(self, raw_ids: bool = True) -> pd.DataFrame:
        """One row per interaction: user_id, item_id (raw by default) and the optional columns."""
        data: dict[str, np.ndarray] = {
            "user_id": self.user_map.to_raw(self.user_ids) if raw_ids else self.user_ids,
            "item_id": self.item_map.to_raw(self.item_ids) if raw_ids else self.item_ids,
        }
        for name in ("ratings", "weights", "timestamps"):
            value = getattr(self, name)
            if value is not None:
                data[name[:-1]] = value
        return pd.DataFrame(data)

    # ------------------------------------------------------------------ per-user access
    @functools.cached_property
    def csr(self) -> sp.csr_matrix:
        """(num_users, num_items) CSR matrix of interaction weights, items sorted within each row.

        Duplicate pairs are summed. ``csr.indptr[u]:csr.indptr[u + 1]`` slices user ``u``'s items.
        """
        mat = sp.csr_matrix(
            (self.interaction_weights, (self.user_ids, self.item_ids)),
            shape=(self.num_users, self.num_items),
        )
        mat.sum_duplicates()
        mat.sort_indices()
        return mat

    @functools.cached_property
    def item_lists(self) -> tuple[np.ndarray, np.ndarray]:
        """Each user's distinct items, ascending: ``(indptr (num_users + 1,) int64, items (P,)
        int32)``; user ``u``'s items are ``items[indptr[u]:indptr[u + 1]]``.

        Every pair present counts once, whatever its weight (a pair of weight 0 is still there,
        unlike in ``csr``). Cached and read-only: the training run's negative sampler and its
        evaluator's exclusions share this one copy (``distinct_item_lists``).
        """
        return distinct_item_lists(self.user_ids, self.item_ids, self.num_users, self.num_items)

    def user_counts(self) -> np.ndarray:
        """(num_users,) number of interactions per user."""
        return np.bincount(self.user_ids, minlength=self.num_users)

    def item_counts(self) -> np.ndarray:
        """(num_items,) number of interactions per item (its popularity)."""
        return np.bincount(self.item_ids, minlength=self.num_items)

    # ------------------------------------------------------------------ transforms
    def to_implicit(self, threshold: float, keep_ratings: bool = False) -> Interactions:
        """Keeps interactions with ``rating >= threshold`` as implicit positives.

        Args:
          threshold: the smallest rating that counts as positive (4 for MovieLens, as in Collie).
          keep_ratings: keep the ratings column (e.g. to weight positives by rating).
        """
        if self.ratings is None:
            raise InteractionsError("to_implicit needs ratings, but these interactions have none")
        out = self.subset(self.ratings >= threshold)
        return out if keep_ratings else out.replace(ratings=None)

    def deduplicate(self, policy: DuplicatePolicy = "last") -> Interactions:
        """Resolves repeated (user, item) pairs.

        Policies:
          ``keep``: leave duplicates as they are. ``error``: raise, naming a repeated pair.
          ``first`` / ``last``: keep the earliest / latest row (by timestamp when there are
          timestamps, else by position). ``max``: keep the row with the highest rating (then the
          latest). ``sum``: one row per pair whose weight is the sum of the weights (ratings and
          timestamps: the maximum).

        The result is ordered by first occurrence of each pair.
        """
        if policy == "keep" or len(self) == 0:
            return self
        key = self.user_ids.astype(np.int64) * self.num_items + self.item_ids
        dup = pd.Series(key).duplicated(keep=False).to_numpy()
        if not dup.any():
            return self
        if policy == "error":
            row = int(np.flatnonzero(dup)[0])
            raw_u = _py(self.user_map.to_raw(self.user_ids[row]))
            raw_i = _py(self.item_map.to_raw(self.item_ids[row]))
            raise InteractionsError(
                f"duplicate (user, item) pair ({raw_u!r}, {raw_i!r}) first at row {row}; "
                f"{int(dup.sum())} rows share a pair. Choose a duplicates policy: first, last, max or sum"
            )
        pos = np.arange(len(self))
        if policy == "sum":
            frame = pd.DataFrame({"key": key, "pos": pos, "w": self.interaction_weights})
            agg = {"pos": "min", "w": "sum"}
            if self.ratings is not None:
                frame["r"] = self.ratings
                agg["r"] = "max"
            if self.timestamps is not None:
                frame["t"] = self.timestamps
                agg["t"] = "max"
            g = frame.groupby("key", sort=False).agg(agg).sort_values("pos")
            rows = g["pos"].to_numpy()
            return Interactions(
                user_ids=self.user_ids[rows],
                item_ids=self.item_ids[rows],
                user_map=self.user_map,
                item_map=self.item_map,
                ratings=None if self.ratings is None else g["r"].to_numpy(),
                weights=g["w"].to_numpy(),
                timestamps=None if self.timestamps is None else g["t"].to_numpy(),
            )
        time = self.timestamps if self.timestamps is not None else pos
        if policy == "first":
            order = np.lexsort((pos, time, key))  # earliest first within each key
        elif policy == "last":
            order = np.lexsort((-pos, -time, key))
        elif policy == "max":
            if self.ratings is None:
                raise InteractionsError(
                    "duplicates='max' keeps the highest rating, but there are no ratings"
                )
            order = np.lexsort((-pos, -time, -self.ratings, key))
        else:
            raise InteractionsError(
                f"unknown duplicates policy {policy!r}; choose keep, error, first, last, max or sum"
            )
        sorted_key = key[order]
        first = np.ones(len(order), bool)
        first[1:] = sorted_key[1:] != sorted_key[:-1]
        rows = np.sort(order[first])
        return self.subset(rows)

    def filter_min_count(
        self, min_user_count: int = 1, min_item_count: int = 1, iterate: bool = False
    ) -> Interactions:
        """Drops users and items with too few interactions.

        Args:
          min_user_count, min_item_count: the smallest count to keep.
          iterate: if False, one pass (counts taken once on the input). If True, repeat until
            every user and item meets its minimum (the iterated k-core).

        Returns:
          Interactions in the *same* ID space (call ``compact`` to re-index).
        """
        keep = np.ones(len(self), bool)
        while True:
            u = np.bincount(self.user_ids[keep], minlength=self.num_users)
            i = np.bincount(self.item_ids[keep], minlength=self.num_items)
            new_keep = (
                keep & (u[self.user_ids] >= min_user_count) & (i[self.item_ids] >= min_item_count)
            )
            changed = new_keep.sum() != keep.sum()
            keep = new_keep
            if not iterate or not changed:
                break
        return self.subset(keep)

    def compact(self) -> Interactions:
        """Re-indexes to the users and items that occur, keeping their raw IDs."""
        users = np.unique(self.user_ids)
        items = np.unique(self.item_ids)
        user_lookup = np.full(self.num_users, -1, np.int64)
        user_lookup[users] = np.arange(len(users))
        item_lookup = np.full(self.num_items, -1, np.int64)
        item_lookup[items] = np.arange(len(items))
        return Interactions(
            user_ids=user_lookup[self.user_ids],
            item_ids=item_lookup[self.item_ids],
            user_map=IdMap(self.user_map.raw_ids[users], "user"),
            item_map=IdMap(self.item_map.raw_ids[items], "item"),
            ratings=self.ratings,
            weights=self.weights,
            timestamps=self.timestamps,
        )


# XLA:CPU lets a device array share a host array's memory (``jax.device_put``, no copy) when it
# starts on a 64-byte boundary; numpy aligns large arrays to 16 bytes only. Arrays of at least
# _ALIGN_MIN_BYTES are placed on that boundary, so that at 50M positives the training arrays
# and the sampler's index are not held twice (on the host and again on the "device").
_ALIGN = 64
_ALIGN_MIN_BYTES = 1 << 20


def aligned_empty(shape: int | tuple[int, ...], dtype: Any) -> np.ndarray:
    """``np.empty(shape, dtype)`` starting on a 64-byte boundary (see ``aligned``)."""
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, int | np.integer) else tuple(shape)
    size = int(np.prod(shape, dtype=np.int64))
    if size * dtype.itemsize < _ALIGN_MIN_BYTES or _ALIGN % dtype.itemsize:
        return np.empty(shape, dtype)
    # A buffer of the same dtype, a few elements longer (numpy starts it on 16 bytes): a view
    # of nearly its whole base, which scipy.sparse keeps as it is (it copies a view of a base
    # twice its size or more).
    buffer = np.empty(size + _ALIGN // dtype.itemsize, dtype)
    start = (-buffer.ctypes.data % _ALIGN) // dtype.itemsize
    return buffer[start : start + size].reshape(shape)


def aligned(array: np.ndarray) -> np.ndarray:
    """``array``, or a C-contiguous copy of it on a 64-byte boundary when it is large (1 MiB or
    more) and not already there: ``jax.device_put`` then shares its memory on a CPU."""
    if array.nbytes < _ALIGN_MIN_BYTES or (
        array.flags.c_contiguous and array.ctypes.data % _ALIGN == 0
    ):
        return array
    out = aligned_empty(array.shape, array.dtype)
    out[...] = array
    return out


# Rows of keys converted at a time: bounds the int64 temporaries of the conversion to ~64 MB.
_CHUNK_ROWS = 1 << 22


def pair_keys(user_ids: np.ndarray, item_ids: np.ndarray, num_items: int) -> np.ndarray:
    """(N,) int64 ``user * num_items + item``: one number per (user, item) pair, ordered by user
    then item (built in place: one (N,) int64 array)."""
    keys = np.asarray(user_ids).astype(np.int64)
    keys *= max(num_items, 1)
    keys += item_ids
    return keys


def distinct_item_lists(
    user_ids: np.ndarray, item_ids: np.ndarray, num_users: int, num_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's distinct items, ascending, from parallel ID arrays (``Interactions.item_lists``).

    Args:
      user_ids, item_ids: (N,) int indices in ``[0, num_users)`` and ``[0, num_items)``.
      num_users, num_items: the ID space.

    Returns:
      ``(indptr (num_users + 1,) int64, items (P,) int32)``, both read-only; P <= N distinct pairs.

    Memory: one (N,) int64 array of ``user * num_items + item`` keys, sorted in place, plus the
    (P,) int32 result; at 50M pairs the build had held four int64 arrays at once (1.6 GB) in the
    sampler and again in the evaluator.
    """
    keys = pair_keys(user_ids, item_ids, num_items)
    keys.sort()
    if len(keys) > 1:
        repeated = keys[1:] == keys[:-1]
        if repeated.any():  # repeated pairs count once (most data has none: no copy then)
            keys = keys[np.concatenate([[True], ~repeated])]
        del repeated
    # Each user's first key is user * num_items: one binary search a user, no (P,) user array.
    indptr = np.searchsorted(keys, np.arange(num_users + 1, dtype=np.int64) * num_items)
    indptr = indptr.astype(np.int64)
    items = aligned_empty(len(keys), np.int32)
    for start in range(0, len(keys), _CHUNK_ROWS):
        chunk = keys[start : start + _CHUNK_ROWS]
        items[start : start + len(chunk)] = chunk % max(num_items, 1)
    indptr.setflags(write=False)
    items.setflags(write=False)
    return indptr, items
