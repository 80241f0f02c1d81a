"""Numeric fields: a float per entity (ABV, release year, price, age).

Standardized with the training entities' mean and standard deviation (after ``log1p`` if set):
``"{name}"`` (n, 2) float32 holds the value and a 0/1 missing indicator (a missing value is 0
with indicator 1, never NaN). With ``num_buckets > 1`` the value is also bucketized into
training quantiles, as a one-slot bag (``"{name}/ids"``, id 1 = missing), so either a numeric or
a categorical tower can read it.
"""

from __future__ import annotations

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
    is_missing_scalar,
    row_desc,
)


class Encoder(FieldEncoder):
    """Mean / standard deviation (and optional quantile edges) of a numeric field.

    Options:
      log1p: standardize ``log(1 + x)`` instead of ``x`` (prices).
      num_buckets: if > 1, also bucketize into this many training quantiles.
    """

    def __init__(
        self,
        *,
        name: str,
        entity: str,
        columns: tuple[str, ...],
        kind: str,
        log1p: bool = False,
        num_buckets: int = 0,
    ):
        super().__init__(name=name, entity=entity, columns=columns, kind=kind)
        if num_buckets < 0 or num_buckets == 1:
            raise FeatureError(
                f"{self.spec_where}: num_buckets must be 0 (off) or >= 2, got {num_buckets}"
            )
        self.log1p = bool(log1p)
        self.num_buckets = int(num_buckets)
        self.mean = 0.0
        self.std = 1.0
        self.edges = np.zeros(0, np.float64)

    @property
    def is_bag(self) -> bool:
        """Bucketized fields also have bag arrays."""
        return self.num_buckets > 1

    def values(self, series: pd.Series) -> np.ndarray:
        """(n,) float64 values with NaN for missing; raises on strings, objects and infinities."""
        if pd.api.types.is_numeric_dtype(series.dtype):
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            inferred = pd.api.types.infer_dtype(series, skipna=True)
            if inferred in ("floating", "integer", "mixed-integer-float", "empty", "decimal"):
                values = pd.to_numeric(series, errors="coerce").to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
            else:
                # Text that reads as a number ("1992", from a CSV column holding a stray word
                # elsewhere) is a number; the error names the first value that is not one.
                vals = series.to_numpy(dtype=object)
                parsed = pd.to_numeric(
                    pd.Series([v if isinstance(v, str) else v for v in vals], dtype=object),
                    errors="coerce",
                ).to_numpy(dtype=np.float64, na_value=np.nan)
                ok = [
                    is_missing_scalar(v) or (not isinstance(v, bool) and not np.isnan(parsed[i]))
                    for i, v in enumerate(vals)
                ]
                if all(ok):
                    values = parsed
                else:
                    bad = ok.index(False)
                    source = series.attrs.get("source")
                    raise FeatureError(
                        f"{self.where()}"
                        + (f" of {source}" if source else "")
                        + f": {row_desc(series.index, bad)} holds "
                        f"{type(vals[bad]).__name__} {vals[bad]!r}; a numeric field takes "
                        f"numbers, with NaN or None for missing (column dtype {series.dtype})"
                    )
        inf = np.isinf(values)
        if inf.any():
            row = int(np.argmax(inf))
            raise FeatureError(
                f"{self.where()}: {row_desc(series.index, row)} holds {values[row]}; use NaN for "
                "a missing value"
            )
        if self.log1p:
            low = values <= -1
            if low.any():
                row = int(np.argmax(low))
                raise FeatureError(
                    f"{self.where()}: {row_desc(series.index, row)} holds {values[row]}, but "
                    "log1p needs values > -1"
                )
            values = np.log1p(values)
        return values

    def fit(self, frame: pd.DataFrame, interactions: Any = None) -> dict[str, Any]:
        """Learns mean, std (and edges) from the training rows; returns their transform stats."""
        values = self.values(frame[self.column])
        present = values[~np.isnan(values)]
        if len(present) == 0:
            raise FeatureError(
                f"{self.where()}: no value to fit: all {len(values)} training {self.entity}s "
                "miss it"
            )
        self.mean = float(present.mean())
        std = float(present.std())
        # A constant field carries no signal; dividing by 1 keeps it finite (all zeros).
        self.std = std if std > 0 else 1.0
        if self.num_buckets > 1:
            quantiles = np.linspace(0.0, 1.0, self.num_buckets + 1)[1:-1]
            self.edges = np.unique(np.quantile(present, quantiles))
        return self.transform(frame)[1]

    def transform(self, frame: pd.DataFrame) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``{name: (n, 2)}`` (and the one-slot bag if bucketized), and the missing count."""
        values = self.values(frame[self.column])
        missing = np.isnan(values)
        dense = np.zeros((len(values), 2), np.float32)
        dense[:, 0] = np.where(missing, 0.0, (values - self.mean) / self.std)
        dense[:, 1] = missing
        arrays = {self.name: dense}
        if self.num_buckets > 1:
            bucket = np.searchsorted(self.edges, np.where(missing, 0.0, values), side="right")
            ids = np.where(missing, UNKNOWN_ID, bucket + FIRST_VALUE_ID).astype(np.int32)
            arrays.update(
                self.bag_arrays(
                    ids[:, None],
                    np.ones((len(values), 1), np.float32),
                    np.ones(len(values), np.int32),
                )
            )
        return arrays, {"missing": int(missing.sum()), "unknown": 0, "truncated": 0}

    def info(self):
        """Dense d = 2; a one-slot bag over the buckets when bucketized."""
        bag = self.num_buckets > 1
        return self.field_info(
            vocab_size=len(self.edges) + 1 + FIRST_VALUE_ID if bag else 0,
            width=1 if bag else 0,
            dim=2,
        )

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Mean and std (JSON); bucket edges (array)."""
        return {"mean": self.mean, "std": self.std}, {"edges": self.edges}

    def load_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        """Inverse of ``state``."""
        self.mean = float(state["mean"])
        self.std = float(state["std"])
        self.edges = np.asarray(arrays["edges"], np.float64)

    def describe(self, stats: Mapping[str, Any], n: int) -> tuple[str, str, list[str]]:
        """Coverage-table cells: kind label, number of buckets, mean and std."""
        vocab = f"{len(self.edges) + 1} buckets" if self.num_buckets > 1 else "-"
        label = "numeric" + (" (log1p)" if self.log1p else "")
        return label, vocab, [f"mean {self.mean:.4g}, std {self.std:.4g}"]


def example(rng: np.random.Generator) -> FieldExample:
    """Release years: train 1990..2000 (mean 1995, std sqrt(10)), test with missing and far values."""
    train = pd.DataFrame({"year": rng.permutation(np.arange(1990.0, 2001.0))})
    test = pd.DataFrame({"year": [1995.0, None, 2100.0, np.nan, 1990.0]}, index=pd.RangeIndex(5))
    std = float(np.std(np.arange(1990.0, 2001.0)))
    return FieldExample(
        options=dict(column="year", num_buckets=4),
        train=train,
        test=test,
        missing=[1, 3],
        unseen=[2],  # beyond the training range: the last bucket, a large finite value
        expected={
            0: {"f": [0.0, 0.0]},
            1: {"f": [0.0, 1.0], "f/ids": [1]},
            4: {"f": [-5.0 / std, 0.0], "f/ids": [2]},
        },
    )
