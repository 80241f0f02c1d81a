"""Vector fields: a precomputed embedding per entity (image, text-model or graph embeddings).

The values come from one column holding a fixed-length list or array of floats per entity, or
from several numeric columns (one per dimension, ``column=("pc1", "pc2", "pc3")``). Output:
``"{name}"`` (n, d + 1) float32, the d values (optionally standardized per dimension with the
training entities' statistics) followed by a 0/1 missing indicator. A missing vector (None,
NaN, ``[]``, or any NaN entry) is all zeros with indicator 1. It is a dense field with
``FieldInfo.dim = d + 1``, so the ``numeric`` tower reads it as it reads a numeric field::

    fields = dict(clip=dict(kind="vector", column="clip_embedding"))
    item_towers = dict(clip=dict(tower="numeric", field="clip", hidden=(64,)))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from hybridrec.data.fields._base import (
    FeatureError,
    FieldEncoder,
    FieldExample,
    is_missing_scalar,
    row_desc,
)


class Encoder(FieldEncoder):
    """Dense float vectors with a missing indicator.

    Options:
      dim: the vector length d; default the length found in the training entities (all present
        vectors must have it).
      standardize: subtract the training mean and divide by the training standard deviation
        per dimension (a constant dimension is divided by 1).
    """

    max_columns = None

    def __init__(
        self,
        *,
        name: str,
        entity: str,
        columns: tuple[str, ...],
        kind: str,
        dim: int | None = None,
        standardize: bool = False,
    ):
        super().__init__(name=name, entity=entity, columns=columns, kind=kind)
        if dim is not None and (int(dim) != dim or dim < 1):
            raise FeatureError(
                f"{self.spec_where}: dim must be an integer >= 1 or None, got {dim!r}"
            )
        if dim is not None and len(self.columns) > 1 and dim != len(self.columns):
            raise FeatureError(
                f"{self.spec_where}: dim={dim} but the field reads {len(self.columns)} columns"
            )
        self.spec_dim = dim
        self.standardize = bool(standardize)
        self.dim = 0
        self.mean = np.zeros(0, np.float64)
        self.std = np.zeros(0, np.float64)

    @property
    def is_bag(self) -> bool:
        """Dense only."""
        return False

    def vectors(self, frame: pd.DataFrame, dim: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(n, d) float64 vectors (NaN rows where missing) and the (n,) missing mask."""
        if len(self.columns) > 1:
            cols = []
            for column in self.columns:
                series = frame[column]
                try:
                    cols.append(pd.to_numeric(series, errors="raise").to_numpy(np.float64))
                except (TypeError, ValueError):
                    values = series.to_numpy(dtype=object)
                    bad = next(
                        i for i, v in enumerate(values)
                        if not (is_missing_scalar(v) or isinstance(v, (int, float, np.number)))
                    )  # fmt: skip
                    raise FeatureError(
                        f"{self.where(column)}: {row_desc(series.index, bad)} holds "
                        f"{type(values[bad]).__name__} {values[bad]!r}; a vector field over "
                        "several columns takes one number per column"
                    ) from None
            matrix = np.stack(cols, axis=1) if cols else np.zeros((len(frame), 0))
        else:
            series = frame[self.column]
            values = series.to_numpy(dtype=object)
            width = dim
            rows: list[np.ndarray | None] = []
            for i, v in enumerate(values):  # one call per entity
                if v is None or (np.ndim(v) == 0 and is_missing_scalar(v)):
                    rows.append(None)
                    continue
                try:
                    vec = np.asarray(v, dtype=np.float64)
                except (TypeError, ValueError):
                    vec = None
                if vec is None or vec.ndim != 1:
                    raise FeatureError(
                        f"{self.where()}: {row_desc(series.index, i)} holds "
                        f"{type(v).__name__} {v!r}; a vector field takes a list or 1-D array "
                        "of floats per entity, or None"
                    )
                if len(vec) == 0:
                    rows.append(None)
                    continue
                if width is None:
                    width = len(vec)
                if len(vec) != width:
                    raise FeatureError(
                        f"{self.where()}: {row_desc(series.index, i)} has a vector of length "
                        f"{len(vec)}, expected {width}"
                    )
                rows.append(vec)
            width = width or 0
            matrix = np.full((len(values), width), np.nan)
            for i, vec in enumerate(rows):
                if vec is not None:
                    matrix[i] = vec
        if np.isinf(matrix).any():
            row = int(np.argmax(np.isinf(matrix).any(axis=1)))
            raise FeatureError(
                f"{self.where()}: {row_desc(frame.index, row)} holds inf; use NaN or None for a "
                "missing vector"
            )
        missing = np.isnan(matrix).any(axis=1) if matrix.shape[1] else np.ones(len(frame), bool)
        return matrix, missing

    def fit(self, frame: pd.DataFrame, interactions: Any = None) -> dict[str, Any]:
        """Learns d (and the per-dimension statistics); returns the training rows' stats."""
        matrix, missing = self.vectors(frame, self.spec_dim)
        present = matrix[~missing]
        if len(present) == 0:
            raise FeatureError(
                f"{self.where()}: no vector to fit: all {len(frame)} training {self.entity}s "
                "miss it"
            )
        self.dim = matrix.shape[1]
        if self.standardize:
            self.mean = present.mean(axis=0)
            std = present.std(axis=0)
            self.std = np.where(std > 0, std, 1.0)
        else:
            self.mean = np.zeros(self.dim)
            self.std = np.ones(self.dim)
        return self.transform(frame)[1]

    def transform(self, frame: pd.DataFrame) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``{name: (n, d + 1)}``: values, then the missing indicator."""
        matrix, missing = self.vectors(frame, self.dim)
        out = np.zeros((len(frame), self.dim + 1), np.float32)
        scaled = (matrix - self.mean) / self.std
        out[:, : self.dim] = np.where(missing[:, None], 0.0, scaled)
        out[:, self.dim] = missing
        return {self.name: out}, {"missing": int(missing.sum()), "unknown": 0, "truncated": 0}

    def info(self):
        """Dense, d + 1 columns."""
        return self.field_info(dim=self.dim + 1)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """d (JSON); per-dimension mean and std (arrays)."""
        return {"dim": self.dim}, {"mean": self.mean, "std": self.std}

    def load_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        """Inverse of ``state``."""
        self.dim = int(state["dim"])
        self.mean = np.asarray(arrays["mean"], np.float64)
        self.std = np.asarray(arrays["std"], np.float64)

    def describe(self, stats: Mapping[str, Any], n: int) -> tuple[str, str, list[str]]:
        """Coverage-table cells."""
        return "vector", "-", [f"d {self.dim}"] + (["standardized"] if self.standardize else [])


def example(rng: np.random.Generator) -> FieldExample:
    """4-d embeddings as lists and arrays; missing as None, NaN, [] and a NaN entry."""
    vectors = rng.normal(size=(10, 4)).round(3)
    train = pd.DataFrame({"emb": list(vectors)}, index=pd.RangeIndex(10))
    train.loc[3, "emb"] = None
    test = pd.DataFrame(
        {"emb": [[1.0, 2.0, 3.0, 4.0], None, [], np.nan, [1.0, np.nan, 0.0, 0.0], vectors[0]]}
    )
    return FieldExample(
        options=dict(column="emb"),
        train=train,
        test=test,
        missing=[1, 2, 3, 4],
        unseen=[0],
        expected={
            0: {"f": [1.0, 2.0, 3.0, 4.0, 0.0]},
            2: {"f": [0.0, 0.0, 0.0, 0.0, 1.0]},
            5: {"f": [*vectors[0].astype(np.float32), 0.0]},
        },
    )
