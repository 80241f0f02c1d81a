"""Side features: metadata fields of items and users, encoded into padded arrays for JAX.

A ``FeatureSchema`` lists ``FieldSpec`` s, each a named metadata field of the items or the users
(movie genres, a beer style, ABV, a product title, a user's age...) of one of three kinds:

* ``categorical``: one value (a beer style) or several (a genre list, given as a Python list or
  a string such as ``"Action|Comedy"``) per entity, mapped through a vocabulary of the values
  that occur in at least ``min_count`` training entities;
* ``numeric``: a float (ABV, release year, price, age), optionally ``log1p``-transformed,
  standardized with the mean and standard deviation of the training entities, and optionally
  also bucketized into training quantiles;
* ``text``: a string (title, description, a bag of Freebase ``relation=entity`` tokens) turned
  into TF-IDF weighted tokens by scikit-learn's ``TfidfVectorizer``.

A ``FeatureEncoder`` is fitted on the *training* entities only, and then encodes any entity,
including cold-start items and users never seen in training. Encoding is row-independent: an
entity gets the same arrays alone (``transform("item", {...})``) as inside a whole table.

Output contract (``FeatureEncoder.transform`` returns an ``EntityFeatures``; every array has
leading dimension ``n`` = number of entities, rows in ``IdMap`` order when one is given):

* categorical, text and bucketized numeric fields (``FieldInfo.vocab_size > 0``), an embedding
  bag of fixed width ``W``:

  - ``"{field}/ids"`` int32 (n, W): ``0`` = padding, ``1`` = unknown / missing bucket,
    ``2 ..`` = vocabulary entries (``encoder.vocabulary(field)[i]`` has id ``i + 2``);
  - ``"{field}/weights"`` float32 (n, W): 0 on padding; 1.0 per categorical value (pooling is
    the tower's job); for text, the TF-IDF weights of the kept tokens exactly as scikit-learn
    computes them (L2-normalised over *all* tokens of the entity by default, not renormalised
    after truncation);
  - ``"{field}/lengths"`` int32 (n,): number of non-padding entries.

  An entity without any value (missing, ``[]``, ``""``, or a text without any vocabulary token)
  gets the single entry ``(id 1, weight 1.0)``, so a tower learns a "missing" embedding instead
  of pooling nothing. A categorical value outside the vocabulary also maps to id 1 (once per
  entity) and is counted in ``EntityFeatures.stats[field]["unknown"]`` and
  ``encoder.unknown_counts``. Texts longer than ``W`` tokens keep their ``W`` highest weights;
  ``stats[field]["mass_cut"]`` reports the share of TF-IDF mass (sum of weights) dropped.

* numeric fields (``FieldInfo.dim == 2``): ``"{field}"`` float32 (n, 2) holding the
  standardized value and a 0/1 missing indicator; a missing value is 0 in the value column and 1
  in the indicator (never NaN). A bucketized numeric field (``num_buckets > 0``) has both this
  dense array and the bag arrays above (``W = 1``, id 1 = missing), so either a numeric or a
  categorical tower can read it.

``EntityFeatures.gather(ids)`` returns the batch dict towers consume, ``{"ids": (B,),
"{field}/ids": (B, W), ...}``; it works with numpy and JAX (also traced) index arrays.

Typical use::

    schema = get_schema("movielens-100k")                   # hybridrec.data.schemas
    encoder = FeatureEncoder(schema).fit(
        item_metadata=items, user_metadata=users,
        item_ids=train_item_raw_ids, user_ids=train_user_raw_ids)   # fit on these only
    item_feats = encoder.transform("item", items, id_map=interactions.item_map)
    new = encoder.transform("item", {"title": "New Movie", "genres": ["Drama"],
                                     "release_year": 1999.0, "freebase": ""})
    encoder.save(directory); encoder = FeatureEncoder.load(directory)

or, for a ``Dataset`` and its training interactions, ``encoder.fit_dataset(dataset, train)`` and
``encoder.transform_dataset(dataset)``.

Persistence uses no pickle: ``features.json`` holds the schema, vocabularies, statistics and
vectorizer parameters; ``features.npz`` holds the TF-IDF ``idf_`` vectors, quantile edges and
vocabulary counts. ``TfidfVectorizer`` is rebuilt from its parameters, vocabulary and ``idf_``
and gives bit-identical weights.

Bad input raises ``FeatureError`` (a ``ValueError``) naming the field, column, row and ID:
metadata rows that do not match the ``IdMap`` (missing, extra or duplicate IDs), a value of the
wrong type, an empty vocabulary, a schema column absent from the data. Training IDs that the
metadata does not have raise ``KeyError``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import pathlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer

from hybridrec.data.interactions import IdMap

PAD_ID = 0
UNKNOWN_ID = 1  # also the "missing" bucket
FIRST_VALUE_ID = 2
ENTITIES = ("item", "user")
KINDS = ("categorical", "numeric", "text")
FORMAT_VERSION = 1
_JSON_NAME = "features.json"
_NPZ_NAME = "features.npz"
_RESERVED_NAMES = ("ids",)  # "ids" is the entity-index key of a gathered batch


class FeatureError(ValueError):
    """Raised for bad side-feature input; the message names the field, column, row and ID."""


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One metadata field of the items or the users.

    Attributes:
      name: field name; the output arrays are ``"{name}/ids"`` etc. Must not contain ``/``.
      entity: ``"item"`` or ``"user"``.
      kind: ``"categorical"``, ``"numeric"`` or ``"text"``.
      column: metadata column(s) to read; default ``name``. A text field may join several
        columns (e.g. ``("title", "description")``) with a space.
      multi_valued: categorical only: each entity holds a list of values (Python list / tuple /
        array, or a string split on ``separator``).
      separator: how a multi-valued string is split (``"Action|Comedy"``); None keeps the
        string as one value.
      min_count: categorical only: values occurring in fewer training entities map to the
        unknown bucket.
      max_vocab: categorical only: keep at most this many values (the most frequent).
      width: bag width ``W``. Default: the largest number of entries of a training entity,
        at most ``max_width`` (always 1 for single-valued categorical and bucketized numeric).
      max_width: cap on the default width, so that one outlier entity cannot widen the arrays
        of all (the excess entries are dropped and counted as ``truncated``).
      log1p: numeric only: standardize ``log(1 + x)`` instead of ``x`` (prices).
      num_buckets: numeric only: if > 1, also bucketize into this many training quantiles.
      max_features, min_df, max_df, ngram_range, sublinear_tf, norm, lowercase, token_pattern,
        stop_words: text only; passed to ``sklearn.feature_extraction.text.TfidfVectorizer``.
      description: free text for data cards.
    """

    name: str
    entity: str = "item"
    kind: str = "categorical"
    column: str | tuple[str, ...] | None = None
    # categorical
    multi_valued: bool = False
    separator: str | None = "|"
    min_count: int = 1
    max_vocab: int | None = None
    width: int | None = None
    max_width: int = 256
    # numeric
    log1p: bool = False
    num_buckets: int = 0
    # text (TfidfVectorizer)
    max_features: int | None = 20_000
    min_df: int | float = 1
    max_df: int | float = 1.0
    ngram_range: tuple[int, int] = (1, 1)
    sublinear_tf: bool = True
    norm: str | None = "l2"
    lowercase: bool = True
    token_pattern: str = r"(?u)\b\w\w+\b"
    stop_words: str | None = None
    description: str = ""

    def __post_init__(self):
        where = f"FieldSpec {self.name!r}"
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise FeatureError(f"{where}: a field name is a non-empty string without '/'")
        if self.name in _RESERVED_NAMES:
            raise FeatureError(f"{where}: the name is reserved for the batch's entity indices")
        if self.entity not in ENTITIES:
            raise FeatureError(f"{where}: entity must be one of {ENTITIES}, got {self.entity!r}")
        if self.kind not in KINDS:
            raise FeatureError(f"{where}: kind must be one of {KINDS}, got {self.kind!r}")
        column = self.name if self.column is None else self.column
        if isinstance(column, list):
            column = tuple(column)
        if isinstance(column, tuple):
            if not column or not all(isinstance(c, str) for c in column):
                raise FeatureError(f"{where}: column must be a string or a tuple of strings")
            if len(column) > 1 and self.kind != "text":
                raise FeatureError(f"{where}: only a text field may read several columns")
            column = column[0] if len(column) == 1 else column
        object.__setattr__(self, "column", column)
        object.__setattr__(self, "ngram_range", tuple(self.ngram_range))
        if self.multi_valued and self.kind != "categorical":
            raise FeatureError(f"{where}: multi_valued applies to categorical fields only")
        if int(self.min_count) < 1:
            raise FeatureError(f"{where}: min_count must be >= 1, got {self.min_count}")
        if self.max_vocab is not None and self.max_vocab < 1:
            raise FeatureError(f"{where}: max_vocab must be >= 1 or None, got {self.max_vocab}")
        if self.width is not None and self.width < 1:
            raise FeatureError(f"{where}: width must be >= 1 or None, got {self.width}")
        if self.max_width < 1:
            raise FeatureError(f"{where}: max_width must be >= 1, got {self.max_width}")
        if self.num_buckets < 0 or self.num_buckets == 1:
            raise FeatureError(
                f"{where}: num_buckets must be 0 (off) or >= 2, got {self.num_buckets}"
            )
        lo, hi = self.ngram_range
        if not 1 <= lo <= hi:
            raise FeatureError(
                f"{where}: ngram_range must be (min_n, max_n) with 1 <= min_n <= max_n"
            )
        if self.norm not in ("l1", "l2", None):
            raise FeatureError(f"{where}: norm must be 'l1', 'l2' or None, got {self.norm!r}")

    @property
    def columns(self) -> tuple[str, ...]:
        """The metadata columns the field reads."""
        return self.column if isinstance(self.column, tuple) else (self.column,)

    @property
    def is_bag(self) -> bool:
        """Whether the field is encoded as an embedding bag (ids / weights / lengths)."""
        return self.kind != "numeric" or self.num_buckets > 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (see ``from_dict``)."""
        out = dataclasses.asdict(self)
        out["column"] = list(self.columns)
        out["ngram_range"] = list(self.ngram_range)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FieldSpec:
        """Inverse of ``to_dict``."""
        data = dict(data)
        data["column"] = tuple(data["column"])
        data["ngram_range"] = tuple(data["ngram_range"])
        return cls(**data)


class FeatureSchema:
    """An ordered collection of ``FieldSpec`` s with unique names.

    Args:
      fields: the fields, item and user fields in any order.
      name: the dataset the schema describes (for messages and reports).
    """

    def __init__(self, fields: Sequence[FieldSpec], name: str = ""):
        self.fields: tuple[FieldSpec, ...] = tuple(fields)
        self.name = name
        seen: set[str] = set()
        for spec in self.fields:
            if not isinstance(spec, FieldSpec):
                raise FeatureError(
                    f"schema {name!r}: expected FieldSpec, got {type(spec).__name__}"
                )
            if spec.name in seen:
                raise FeatureError(f"schema {name!r}: duplicate field name {spec.name!r}")
            seen.add(spec.name)

    def __iter__(self) -> Iterator[FieldSpec]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __getitem__(self, name: str) -> FieldSpec:
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(f"schema {self.name!r} has no field {name!r}; fields: {self.names}")

    def __repr__(self) -> str:
        body = ", ".join(f"{s.name}:{s.entity}/{s.kind}" for s in self.fields)
        return f"FeatureSchema({self.name!r}: {body})"

    @property
    def names(self) -> list[str]:
        """Field names in schema order."""
        return [spec.name for spec in self.fields]

    def for_entity(self, entity: str) -> list[FieldSpec]:
        """The fields of ``entity`` ("item" or "user"), in schema order."""
        _check_entity(entity)
        return [spec for spec in self.fields if spec.entity == entity]

    def select(self, names: Sequence[str]) -> FeatureSchema:
        """A schema with only the named fields (each must exist)."""
        return FeatureSchema([self[name] for name in names], name=self.name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {"name": self.name, "fields": [spec.to_dict() for spec in self.fields]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSchema:
        """Inverse of ``to_dict``."""
        return cls([FieldSpec.from_dict(f) for f in data["fields"]], name=data.get("name", ""))


def _check_entity(entity: str) -> None:
    if entity not in ENTITIES:
        raise FeatureError(f"entity must be one of {ENTITIES}, got {entity!r}")


# ---------------------------------------------------------------------------------------------
# Encoded output
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """What a tower needs to know about an encoded field.

    Attributes:
      name: field name.
      entity: "item" or "user".
      kind: "categorical", "numeric" or "text" ("history" for ``hybridrec.data.history``).
      columns: the metadata columns it was read from.
      vocab_size: rows of an embedding table for ``"{name}/ids"`` (values + padding + unknown);
        0 when the field has no bag arrays (plain numeric).
      width: ``W`` of the bag arrays; 0 when there are none.
      dim: ``d`` of the dense ``"{name}"`` array (value + missing indicator); 0 when there is none.
      keys: the array keys of this field in ``EntityFeatures.arrays``.
    """

    name: str
    entity: str
    kind: str
    columns: tuple[str, ...]
    vocab_size: int = 0
    width: int = 0
    dim: int = 0

    @property
    def keys(self) -> tuple[str, ...]:
        """The array keys of this field: the bag keys if ``vocab_size``, ``name`` if ``dim``."""
        keys: tuple[str, ...] = ()
        if self.vocab_size:
            keys += (f"{self.name}/ids", f"{self.name}/weights", f"{self.name}/lengths")
        if self.dim:
            keys += (self.name,)
        return keys


@dataclasses.dataclass
class EntityFeatures:
    """Encoded features of ``num_entities`` items or users (see the module docstring).

    Attributes:
      entity: "item" or "user".
      arrays: array key -> array with leading dimension ``num_entities``.
      fields: field name -> ``FieldInfo``.
      raw_ids: (num_entities,) raw IDs of the rows (the metadata index or the IdMap's IDs).
      stats: field name -> counts for this transform: ``missing`` (entities without a value),
        ``unknown`` (categorical values outside the vocabulary), ``truncated`` (entities with
        more than ``W`` entries), and for text ``empty`` (entities without any vocabulary
        token) and ``mass_cut`` (share of TF-IDF weight dropped by the width).
    """

    entity: str
    arrays: dict[str, Any]
    fields: dict[str, FieldInfo]
    raw_ids: np.ndarray | None = None
    stats: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    @property
    def num_entities(self) -> int:
        """Number of encoded entities (rows of every array)."""
        return int(next(iter(self.arrays.values())).shape[0]) if self.arrays else 0

    def __getitem__(self, key: str) -> Any:
        return self.arrays[key]

    def __contains__(self, key: object) -> bool:
        return key in self.arrays

    def keys(self):
        return self.arrays.keys()

    def items(self):
        return self.arrays.items()

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}{tuple(v.shape)}" for k, v in self.arrays.items())
        return f"EntityFeatures({self.entity}, n={self.num_entities}: {shapes})"

    def gather(self, ids: Any) -> dict[str, Any]:
        """Rows of every array for a batch of entity indices.

        Args:
          ids: (B,) or any-shaped integer entity indices, numpy or JAX (also traced inside
            ``jax.jit``).

        Returns:
          ``{"ids": ids, key: (B, ...) rows}``: numpy arrays for numpy ``ids`` and numpy
          features, JAX arrays otherwise.
        """
        if _is_jax(ids) or any(_is_jax(a) for a in self.arrays.values()):
            import jax.numpy as jnp

            batch = {k: jnp.take(jnp.asarray(v), ids, axis=0) for k, v in self.arrays.items()}
        else:
            ids = np.asarray(ids)
            batch = {k: v[ids] for k, v in self.arrays.items()}
        batch["ids"] = ids
        return batch

    def to_jax(self) -> EntityFeatures:
        """The same features with the arrays on the default JAX device."""
        import jax

        return dataclasses.replace(self, arrays=dict(jax.device_put(dict(self.arrays))))

    def take(self, rows: np.ndarray) -> EntityFeatures:
        """The features of a subset of the entities (numpy rows)."""
        rows = np.asarray(rows)
        raw = None if self.raw_ids is None else self.raw_ids[rows]
        return dataclasses.replace(
            self, arrays={k: v[rows] for k, v in self.arrays.items()}, raw_ids=raw
        )


def _is_jax(x: Any) -> bool:
    if "jax" not in sys.modules:
        return False
    import jax

    return isinstance(x, jax.Array)


# ---------------------------------------------------------------------------------------------
# Reading and checking metadata columns
# ---------------------------------------------------------------------------------------------


def _where(spec: FieldSpec, column: str | None = None) -> str:
    column = spec.column if column is None else column
    return f"{spec.kind} field {spec.name!r} ({spec.entity} column {column!r})"


def _py(value: Any) -> Any:
    """Plain Python values for messages (``15``, not ``np.int64(15)``)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.item() if isinstance(value, np.generic) else value


def _row_desc(index: pd.Index, row: int) -> str:
    return f"row {row} (ID {_py(index[row])!r})"


def _first_bad(values: Sequence[Any], ok) -> int:
    """Position of the first element for which ``ok`` is false (a loop over entities, error path)."""
    for i, v in enumerate(values):
        if not ok(v):
            return i
    return -1


def _is_missing_scalar(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, (float, np.floating)) and math.isnan(v)


def _is_label(v: Any) -> bool:
    return isinstance(v, (str, int, np.integer, bool, np.bool_))


def _labels_to_str(values: np.ndarray) -> np.ndarray:
    """Stringifies categorical values; integer-valued floats become "3", not "3.0"."""
    if values.dtype.kind == "f":
        values = values.astype(np.int64)
    return values.astype(str).astype(object)


def _single_labels(spec: FieldSpec, series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(n,) object array of string values and (n,) bool missing mask of a single-valued field."""
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
                f"{_where(spec)}: {_row_desc(series.index, row)} holds "
                f"{series.iloc[row]!r}; a categorical value must be a string or an integer"
            )
        strings = _labels_to_str(raw)
    elif inferred in ("string", "integer", "boolean", "empty", "categorical"):
        strings = _labels_to_str(present.to_numpy())
    else:
        vals = present.to_numpy(dtype=object)
        bad = _first_bad(vals, _is_label)
        if bad >= 0:
            row = int(np.flatnonzero(~missing)[bad])
            kind = "a list" if isinstance(vals[bad], (list, tuple, np.ndarray)) else "a value"
            hint = " (set multi_valued=True for lists)" if kind == "a list" else ""
            raise FeatureError(
                f"{_where(spec)}: {_row_desc(series.index, row)} holds {kind} of type "
                f"{type(vals[bad]).__name__}: {vals[bad]!r}; a single-valued categorical field "
                f"takes a string, an integer or None{hint}"
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


def _multi_labels(spec: FieldSpec, series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Flattened values of a multi-valued field: (rows (m,) int64, values (m,) object str)."""
    sep = spec.separator

    def as_list(v):
        if isinstance(v, (list, tuple)):
            return v
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, str):
            return v.split(sep) if sep is not None else [v]
        if _is_missing_scalar(v):
            return ()
        raise TypeError

    values = series.to_numpy(dtype=object)
    lists = []
    # One Python call per entity (not per interaction): lists of strings have no vectorised form.
    for i, v in enumerate(values):
        try:
            lists.append(as_list(v))
        except TypeError:
            raise FeatureError(
                f"{_where(spec)}: {_row_desc(series.index, i)} holds {type(v).__name__} {v!r}; "
                f"a multi-valued categorical field takes a list of strings, a string separated "
                f"by {sep!r}, [] or None"
            ) from None
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    flat = np.fromiter(itertools.chain.from_iterable(lists), dtype=object, count=int(lengths.sum()))
    rows = np.repeat(np.arange(len(values), dtype=np.int64), lengths)
    inferred = pd.api.types.infer_dtype(flat, skipna=False)
    if inferred not in ("string", "integer", "empty"):
        bad = _first_bad(flat, lambda v: isinstance(v, (str, int, np.integer)))
        if bad >= 0:
            raise FeatureError(
                f"{_where(spec)}: {_row_desc(series.index, int(rows[bad]))} holds the element "
                f"{flat[bad]!r} of type {type(flat[bad]).__name__}; list elements must be strings"
            )
    strings = pd.Series(flat, dtype=object).astype(str).str.strip().to_numpy(dtype=object)
    keep = strings != ""
    return rows[keep], strings[keep]


def _numeric_values(spec: FieldSpec, series: pd.Series) -> np.ndarray:
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
            vals = series.to_numpy(dtype=object)
            bad = _first_bad(
                vals,
                lambda v: (
                    _is_missing_scalar(v)
                    or (isinstance(v, (int, float, np.number)) and not isinstance(v, bool))
                ),
            )
            raise FeatureError(
                f"{_where(spec)}: {_row_desc(series.index, bad)} holds {type(vals[bad]).__name__} "
                f"{vals[bad]!r}; a numeric field takes numbers, with NaN or None for missing "
                f"(column dtype {series.dtype})"
            )
    inf = np.isinf(values)
    if inf.any():
        row = int(np.argmax(inf))
        raise FeatureError(
            f"{_where(spec)}: {_row_desc(series.index, row)} holds {values[row]}; use NaN for a "
            "missing value"
        )
    if spec.log1p:
        low = values <= -1
        if low.any():
            row = int(np.argmax(low))
            raise FeatureError(
                f"{_where(spec)}: {_row_desc(series.index, row)} holds {values[row]}, but log1p "
                "needs values > -1"
            )
        values = np.log1p(values)
    return values


def _texts(spec: FieldSpec, frame: pd.DataFrame) -> np.ndarray:
    """(n,) object array of strings, the field's columns joined by a space ("" when missing)."""
    parts = []
    for column in spec.columns:
        series = frame[column]
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred in ("string", "empty"):
            text = series.to_numpy(dtype=object, na_value="")
        else:

            def as_text(v):
                if isinstance(v, str):
                    return v
                if _is_missing_scalar(v):
                    return ""
                if isinstance(v, (list, tuple, np.ndarray)) and all(isinstance(t, str) for t in v):
                    return " ".join(v)  # a bag of tokens, e.g. Freebase entities
                raise TypeError

            vals = series.to_numpy(dtype=object)
            text = np.empty(len(vals), dtype=object)
            for i, v in enumerate(vals):  # one call per entity
                try:
                    text[i] = as_text(v)
                except TypeError:
                    raise FeatureError(
                        f"{_where(spec, column)}: {_row_desc(series.index, i)} holds "
                        f"{type(v).__name__} {v!r}; a text field takes a string, a list of "
                        "strings, '' or None"
                    ) from None
        parts.append(text)
    if len(parts) == 1:
        return parts[0]
    joined = pd.Series(parts[0], dtype=object)
    for part in parts[1:]:  # object concatenation: no fixed-width copy of long descriptions
        joined = joined + " " + pd.Series(part, dtype=object)
    return joined.to_numpy(dtype=object)


def _pack_bag(
    rows: np.ndarray, ids: np.ndarray, weights: np.ndarray, n: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Packs entries, already sorted by row then priority, into padded (n, width) arrays.

    Rows without entries get the single unknown/missing entry (id 1, weight 1).

    Returns:
      ids (n, width) int32, weights (n, width) float32, lengths (n,) int32 and the (m,) bool
      mask of entries that fit.
    """
    counts = np.bincount(rows, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(rows)) - starts[rows]
    fits = rank < width
    out_ids = np.zeros((n, width), np.int32)
    out_w = np.zeros((n, width), np.float32)
    out_ids[rows[fits], rank[fits]] = ids[fits]
    out_w[rows[fits], rank[fits]] = weights[fits]
    empty = counts == 0
    out_ids[empty, 0] = UNKNOWN_ID
    out_w[empty, 0] = 1.0
    lengths = np.minimum(np.maximum(counts, 1), width).astype(np.int32)
    return out_ids, out_w, lengths, fits


# ---------------------------------------------------------------------------------------------
# Per-kind encoders (fitted state + transform)
# ---------------------------------------------------------------------------------------------


class _BagEncoder:
    """What the categorical and text encoders share: the padded-bag output and its FieldInfo."""

    def info(self) -> FieldInfo:
        return FieldInfo(
            self.spec.name,
            self.spec.entity,
            self.spec.kind,
            self.spec.columns,
            vocab_size=len(self.vocabulary) + FIRST_VALUE_ID,
            width=self.width,
        )

    def _bag_arrays(
        self, ids: np.ndarray, weights: np.ndarray, lengths: np.ndarray
    ) -> dict[str, np.ndarray]:
        name = self.spec.name
        return {f"{name}/ids": ids, f"{name}/weights": weights, f"{name}/lengths": lengths}


class _Categorical(_BagEncoder):
    """Vocabulary of a categorical field (single- or multi-valued)."""

    def __init__(self, spec: FieldSpec):
        self.spec = spec
        self.vocabulary: list[str] = []
        self.counts = np.zeros(0, np.int64)
        self.width = 0
        self._index = pd.Index([], dtype=object)

    def _entries(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, values) of every value, and the (n,) missing mask."""
        series = frame[self.spec.column]
        n = len(series)
        if self.spec.multi_valued:
            rows, values = _multi_labels(self.spec, series)
            missing = np.bincount(rows, minlength=n) == 0
        else:
            labels, missing = _single_labels(self.spec, series)
            rows = np.flatnonzero(~missing)
            values = labels[rows]
        return rows, values, missing

    def fit(self, frame: pd.DataFrame) -> dict[str, Any]:
        """Learns the field's state from the training rows; returns their transform stats."""
        spec = self.spec
        rows, values, _ = self._entries(frame)
        pairs = pd.DataFrame({"row": rows, "value": values}).drop_duplicates()
        counts = pairs["value"].value_counts()  # number of training entities per value
        counts = counts[counts >= spec.min_count]
        if spec.max_vocab is not None and len(counts) > spec.max_vocab:
            order = np.lexsort((counts.index.to_numpy(dtype=str), -counts.to_numpy()))
            counts = counts.iloc[order[: spec.max_vocab]]
        if len(counts) == 0:
            raise FeatureError(
                f"{_where(spec)}: empty vocabulary: no value occurs in at least "
                f"min_count={spec.min_count} of the {len(frame)} training {spec.entity}s "
                f"({len(pairs)} values in all)"
            )
        counts = counts.sort_index()
        self.vocabulary = [str(v) for v in counts.index]
        self.counts = counts.to_numpy(dtype=np.int64)
        self._index = pd.Index(self.vocabulary, dtype=object)
        if spec.width is not None:
            self.width = spec.width
        elif not spec.multi_valued:
            self.width = 1
        else:  # the widest training entity (distinct values, plus the unknown marker)
            dedup_rows, _ = self._dedup_ids(rows, values)
            widest = int(np.bincount(dedup_rows, minlength=len(frame)).max(initial=1))
            self.width = min(max(1, widest), spec.max_width)
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
        n = len(frame)
        rows, values, missing = self._entries(frame)
        found = self._index.get_indexer(values) if len(values) else np.zeros(0, np.int64)
        unknown = found < 0
        dedup_rows, ids = self._dedup_ids(rows, values)
        out_ids, out_w, lengths, fits = _pack_bag(
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
        arrays = self._bag_arrays(out_ids, out_w, lengths)
        return arrays, stats

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"vocabulary": self.vocabulary, "width": self.width}, {"counts": self.counts}

    def load_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.vocabulary = [str(v) for v in state["vocabulary"]]
        self.width = int(state["width"])
        self.counts = np.asarray(arrays["counts"], np.int64)
        self._index = pd.Index(self.vocabulary, dtype=object)


class _Numeric:
    """Mean / standard deviation (and optional quantile edges) of a numeric field."""

    def __init__(self, spec: FieldSpec):
        self.spec = spec
        self.mean = 0.0
        self.std = 1.0
        self.edges = np.zeros(0, np.float64)

    def fit(self, frame: pd.DataFrame) -> dict[str, Any]:
        """Learns the field's state from the training rows; returns their transform stats."""
        spec = self.spec
        values = _numeric_values(spec, frame[spec.column])
        present = values[~np.isnan(values)]
        if len(present) == 0:
            raise FeatureError(
                f"{_where(spec)}: no value to fit: all {len(values)} training {spec.entity}s "
                "miss it"
            )
        self.mean = float(present.mean())
        std = float(present.std())
        # A constant field carries no signal; dividing by 1 keeps it finite (all zeros).
        self.std = std if std > 0 else 1.0
        if spec.num_buckets > 1:
            quantiles = np.linspace(0.0, 1.0, spec.num_buckets + 1)[1:-1]
            self.edges = np.unique(np.quantile(present, quantiles))
        return self.transform(frame)[1]

    def transform(self, frame: pd.DataFrame) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        spec = self.spec
        values = _numeric_values(spec, frame[spec.column])
        missing = np.isnan(values)
        dense = np.zeros((len(values), 2), np.float32)
        dense[:, 0] = np.where(missing, 0.0, (values - self.mean) / self.std)
        dense[:, 1] = missing
        arrays = {spec.name: dense}
        if spec.num_buckets > 1:
            bucket = np.searchsorted(self.edges, np.where(missing, 0.0, values), side="right")
            ids = np.where(missing, UNKNOWN_ID, bucket + FIRST_VALUE_ID).astype(np.int32)
            arrays[f"{spec.name}/ids"] = ids[:, None]
            arrays[f"{spec.name}/weights"] = np.ones((len(values), 1), np.float32)
            arrays[f"{spec.name}/lengths"] = np.ones(len(values), np.int32)
        return arrays, {"missing": int(missing.sum()), "unknown": 0, "truncated": 0}

    def info(self) -> FieldInfo:
        bag = self.spec.num_buckets > 1
        return FieldInfo(
            self.spec.name,
            self.spec.entity,
            self.spec.kind,
            self.spec.columns,
            vocab_size=len(self.edges) + 1 + FIRST_VALUE_ID if bag else 0,
            width=1 if bag else 0,
            dim=2,
        )

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"mean": self.mean, "std": self.std}, {"edges": self.edges}

    def load_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.mean = float(state["mean"])
        self.std = float(state["std"])
        self.edges = np.asarray(arrays["edges"], np.float64)


class _Text(_BagEncoder):
    """A fitted ``TfidfVectorizer`` plus the bag width."""

    def __init__(self, spec: FieldSpec):
        self.spec = spec
        self.params: dict[str, Any] = {
            "lowercase": spec.lowercase,
            "token_pattern": spec.token_pattern,
            "ngram_range": list(spec.ngram_range),
            "min_df": spec.min_df,
            "max_df": spec.max_df,
            "max_features": spec.max_features,
            "sublinear_tf": spec.sublinear_tf,
            "norm": spec.norm,
            "stop_words": spec.stop_words,
            "use_idf": True,
            "smooth_idf": True,
        }
        self.vectorizer: TfidfVectorizer | None = None
        self.vocabulary: list[str] = []
        self.width = 0

    def _make(self, vocabulary: Mapping[str, int] | None = None) -> TfidfVectorizer:
        params = dict(self.params, ngram_range=tuple(self.params["ngram_range"]))
        return TfidfVectorizer(**params, vocabulary=vocabulary, dtype=np.float64)

    def fit(self, frame: pd.DataFrame) -> dict[str, Any]:
        spec = self.spec
        texts = _texts(spec, frame)
        vectorizer = self._make()
        try:
            matrix = sp.csr_matrix(vectorizer.fit_transform(texts))
        except ValueError as err:  # sklearn: "empty vocabulary" / "no terms remain"
            raise FeatureError(
                f"{_where(spec)}: empty vocabulary from {len(texts)} training {spec.entity}s "
                f"({int((texts == '').sum())} with empty text): {err}"
            ) from None
        # The pruned-terms set is only for introspection and can be huge.
        if hasattr(vectorizer, "stop_words_"):
            del vectorizer.stop_words_
        self._set(vectorizer)
        matrix.eliminate_zeros()
        if spec.width is not None:
            self.width = spec.width
        else:
            widest = int(np.diff(matrix.indptr).max(initial=1))
            self.width = min(max(1, widest), spec.max_width)
        return self._encode(matrix, texts)[1]

    def _set(self, vectorizer: TfidfVectorizer) -> None:
        self.vectorizer = vectorizer
        vocab = vectorizer.vocabulary_
        terms = np.empty(len(vocab), dtype=object)
        terms[list(vocab.values())] = list(vocab.keys())
        self.vocabulary = [str(t) for t in terms]

    def matrix(self, frame: pd.DataFrame) -> tuple[sp.csr_matrix, np.ndarray]:
        """(n, V) CSR TF-IDF matrix of the entities and their (n,) raw texts."""
        texts = _texts(self.spec, frame)
        matrix = sp.csr_matrix(self.vectorizer.transform(texts))
        matrix.eliminate_zeros()
        return matrix, texts

    def transform(self, frame: pd.DataFrame) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return self._encode(*self.matrix(frame))

    def _encode(
        self, matrix: sp.csr_matrix, texts: np.ndarray
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Top-``width`` tokens per row of a TF-IDF matrix, and the stats."""
        n = matrix.shape[0]
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(matrix.indptr))
        # Highest weight first within each row; ties broken by vocabulary index (deterministic).
        order = np.lexsort((matrix.indices, -matrix.data, rows))
        rows, cols, weights = rows[order], matrix.indices[order], matrix.data[order]
        ids, out_w, lengths, fits = _pack_bag(
            rows, cols.astype(np.int64) + FIRST_VALUE_ID, weights, n, self.width
        )
        total = float(weights.sum())
        cut = float(weights[~fits].sum())
        stats = {
            "missing": int(pd.Series(texts, dtype=object).str.strip().eq("").sum()),
            "unknown": 0,
            "empty": int((np.diff(matrix.indptr) == 0).sum()),
            "truncated": int(len(np.unique(rows[~fits]))),
            "mass_cut": cut / total if total > 0 else 0.0,
            "mean_length": float(np.diff(matrix.indptr).mean()) if n else 0.0,
        }
        arrays = self._bag_arrays(ids, out_w, lengths)
        return arrays, stats

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state = {
            "vocabulary": self.vocabulary,
            "width": self.width,
            "vectorizer": {**self.params, "sklearn_version": sklearn.__version__},
        }
        return state, {"idf": np.asarray(self.vectorizer.idf_, np.float64)}

    def load_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        params = dict(state["vectorizer"])
        params.pop("sklearn_version", None)
        self.params = params
        self.width = int(state["width"])
        vocabulary = {str(t): i for i, t in enumerate(state["vocabulary"])}
        vectorizer = self._make(vocabulary)
        vectorizer.idf_ = np.asarray(arrays["idf"], np.float64)
        self._set(vectorizer)


_ENCODERS = {"categorical": _Categorical, "numeric": _Numeric, "text": _Text}


# ---------------------------------------------------------------------------------------------
# The encoder
# ---------------------------------------------------------------------------------------------


def _records_frame(records: Sequence[Mapping[str, Any]], index: Sequence[Any]) -> pd.DataFrame:
    """A DataFrame of object columns from dicts, so list values stay one entity's values."""
    frame = pd.DataFrame(index=pd.Index(index))
    for key in dict.fromkeys(k for record in records for k in record):
        column = np.empty(len(records), dtype=object)  # None where a record lacks the key
        for i, record in enumerate(records):
            column[i] = record.get(key)
        frame[key] = column
    return frame


def _as_frame(metadata: Any, entity: str) -> pd.DataFrame:
    """A DataFrame from a DataFrame, a Series (one entity), a dict (one entity) or records."""
    if isinstance(metadata, pd.DataFrame):
        return metadata
    if isinstance(metadata, pd.Series):
        return _records_frame([metadata.to_dict()], [metadata.name])
    if isinstance(metadata, Mapping):
        return _records_frame([metadata], [0])
    if isinstance(metadata, Sequence) and not isinstance(metadata, str):
        if metadata and all(isinstance(r, Mapping) for r in metadata):
            return _records_frame(metadata, range(len(metadata)))
    raise FeatureError(
        f"{entity} metadata must be a DataFrame, a Series or a dict (one {entity}) or a list of "
        f"dicts; got {type(metadata).__name__}"
    )


def _check_columns(specs: Sequence[FieldSpec], frame: pd.DataFrame, entity: str) -> None:
    absent = [(s.name, c) for s in specs for c in s.columns if c not in frame.columns]
    if absent:
        listed = ", ".join(f"{c!r} (field {f!r})" for f, c in absent)
        raise FeatureError(
            f"{entity} metadata lacks the schema column(s) {listed}; it has columns "
            f"{list(frame.columns)}. Pass None / NaN / [] / '' for a missing value"
        )


def _check_unique_index(frame: pd.DataFrame, entity: str) -> None:
    dup = frame.index.duplicated()
    if dup.any():
        value = _py(frame.index[np.argmax(dup)])
        rows = np.flatnonzero(frame.index == value)
        raise FeatureError(
            f"{entity} feature table has duplicate {entity} ID {value!r} (rows "
            f"{rows.tolist()[:5]}); {int(dup.sum())} duplicate rows in all"
        )


def _align(frame: pd.DataFrame, id_map: IdMap, entity: str) -> pd.DataFrame:
    """Rows of ``frame`` in ``id_map`` order; raises on duplicate, missing or extra IDs."""
    _check_unique_index(frame, entity)
    index = id_map.to_index(frame.index.to_numpy(), allow_unknown=True)
    extra = index < 0
    if extra.any():
        row = int(np.argmax(extra))
        raise FeatureError(
            f"{entity} feature table has {int(extra.sum())} row(s) whose {entity} ID is not in the "
            f"{entity} IdMap, e.g. {_py(frame.index[row])!r} at row {row}; the IdMap's IDs look "
            f"like {_py(id_map.raw_ids[:3])}"
        )
    covered = np.bincount(index, minlength=len(id_map)) > 0
    if not covered.all():
        absent = id_map.raw_ids[~covered]
        raise FeatureError(
            f"{entity} feature table lacks {len(absent)} of the {len(id_map)} {entity} IDs of the "
            f"IdMap, e.g. {_py(absent[:5])}"
        )
    order = np.empty(len(id_map), np.int64)
    order[index] = np.arange(len(index))
    return frame.iloc[order]


class FeatureEncoder:
    """Fits a ``FeatureSchema`` on training entities and encodes any entity's metadata.

    Args:
      schema: the fields to encode (a ``FeatureSchema`` or a list of ``FieldSpec``).

    Attributes:
      schema: the schema.
      fit_stats: field name -> statistics of the training entities (``num_fit``, ``missing``,
        and the transform stats on them).
      unknown_counts: field name -> categorical values outside the vocabulary seen by the most
        recent ``transform`` (0 for other kinds).
    """

    def __init__(self, schema: FeatureSchema | Sequence[FieldSpec]):
        self.schema = schema if isinstance(schema, FeatureSchema) else FeatureSchema(schema)
        self._encoders = {spec.name: _ENCODERS[spec.kind](spec) for spec in self.schema}
        self._fitted = False
        self.fit_stats: dict[str, dict[str, Any]] = {}
        self.unknown_counts: dict[str, int] = {}

    def __repr__(self) -> str:
        state = "fitted" if self._fitted else "unfitted"
        return f"FeatureEncoder({state}, {self.schema!r})"

    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` or ``load`` has run."""
        return self._fitted

    def _require_fitted(self) -> None:
        if not self._fitted:
            raise FeatureError("the FeatureEncoder is not fitted: call fit(...) or load(dir) first")

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        item_metadata: pd.DataFrame | None = None,
        user_metadata: pd.DataFrame | None = None,
        *,
        item_ids: Sequence[Any] | np.ndarray | None = None,
        user_ids: Sequence[Any] | np.ndarray | None = None,
    ) -> FeatureEncoder:
        """Learns vocabularies, statistics and TF-IDF weights from the training entities.

        Args:
          item_metadata: one row per item, indexed by raw item ID (needed if the schema has
            item fields).
          user_metadata: the same for users.
          item_ids: raw IDs of the training items to fit on (e.g. the items of the training
            interactions); default: every row of ``item_metadata``.
          user_ids: the same for users.

        Returns:
          ``self``.

        Raises:
          FeatureError: metadata missing for an entity with fields, a schema column absent,
            a value of the wrong type, an empty vocabulary, duplicate IDs in the metadata.
          KeyError: a training ID without a metadata row.
        """
        given = {"item": (item_metadata, item_ids), "user": (user_metadata, user_ids)}
        fit_stats = {}
        for entity in ENTITIES:
            specs = self.schema.for_entity(entity)
            if not specs:
                continue
            metadata, ids = given[entity]
            if metadata is None:
                raise FeatureError(
                    f"the schema has {entity} fields {[s.name for s in specs]} but no "
                    f"{entity}_metadata was given to fit"
                )
            frame = _as_frame(metadata, entity)
            _check_columns(specs, frame, entity)
            _check_unique_index(frame, entity)
            if ids is not None:
                ids = np.asarray(ids)
                lookup = IdMap(frame.index.to_numpy(), name=f"{entity} metadata")
                rows = lookup.to_index(ids, allow_unknown=True)
                if (rows < 0).any():
                    raise KeyError(
                        f"{int((rows < 0).sum())} training {entity} ID(s) have no row in the "
                        f"{entity} metadata, e.g. {_py(ids[rows < 0][:5])}; its IDs look like "
                        f"{_py(frame.index[:3].to_numpy())}"
                    )
                frame = frame.iloc[np.unique(rows)]
            if len(frame) == 0:
                raise FeatureError(f"no training {entity}s to fit the {entity} fields on")
            for spec in specs:
                stats = self._encoders[spec.name].fit(frame)
                fit_stats[spec.name] = {"num_fit": len(frame), **stats}
        self.fit_stats = fit_stats
        self._fitted = True
        return self

    def fit_dataset(self, dataset: Any, train: Any | None = None) -> FeatureEncoder:
        """Fits on the users and items that occur in ``train`` (all of them if None).

        Args:
          dataset: a ``hybridrec.data.datasets.Dataset`` with ``item_metadata`` /
            ``user_metadata`` indexed by raw ID.
          train: the training ``Interactions`` (same ID space as ``dataset.interactions``).
        """
        item_ids = user_ids = None
        if train is not None:
            item_ids = train.item_map.to_raw(np.unique(train.item_ids))
            user_ids = train.user_map.to_raw(np.unique(train.user_ids))
        return self.fit(
            item_metadata=dataset.item_metadata,
            user_metadata=dataset.user_metadata,
            item_ids=item_ids if self.schema.for_entity("item") else None,
            user_ids=user_ids if self.schema.for_entity("user") else None,
        )

    # ------------------------------------------------------------------ encoding
    def transform(
        self, entity: str, metadata: Any, *, id_map: IdMap | None = None
    ) -> EntityFeatures:
        """Encodes the ``entity`` fields of any entities, seen in training or not.

        Args:
          entity: "item" or "user".
          metadata: a DataFrame (one row per entity, indexed by raw ID), a Series or a dict
            (one entity, e.g. a cold-start item as raw metadata), or a list of dicts.
          id_map: if given, the DataFrame's index must hold exactly the IdMap's raw IDs (in
            any order); rows come out in IdMap order (row i = entity index i).

        Returns:
          ``EntityFeatures`` with arrays of leading dimension n (see the module docstring).

        Raises:
          FeatureError: not fitted, no fields for ``entity``, a schema column absent, a value of
            the wrong type, rows that do not match ``id_map``.
        """
        self._require_fitted()
        _check_entity(entity)
        specs = self.schema.for_entity(entity)
        if not specs:
            raise FeatureError(
                f"the schema {self.schema.name!r} has no {entity} fields; fields: {self.schema.names}"
            )
        frame = _as_frame(metadata, entity)
        if id_map is not None:
            frame = _align(frame, id_map, entity)
        _check_columns(specs, frame, entity)
        arrays: dict[str, np.ndarray] = {}
        stats: dict[str, dict[str, Any]] = {}
        for spec in specs:
            field_arrays, stats[spec.name] = self._encoders[spec.name].transform(frame)
            arrays.update(field_arrays)
        self.unknown_counts = {name: s["unknown"] for name, s in stats.items()}
        raw_ids = id_map.raw_ids if id_map is not None else frame.index.to_numpy()
        return EntityFeatures(
            entity=entity, arrays=arrays, fields=self.fields(entity), raw_ids=raw_ids, stats=stats
        )

    def transform_dataset(self, dataset: Any) -> dict[str, EntityFeatures]:
        """``{"item": ..., "user": ...}`` features of every entity of ``dataset``, in IdMap order.

        Only entities with fields in the schema appear.
        """
        out = {}
        maps = {"item": dataset.interactions.item_map, "user": dataset.interactions.user_map}
        tables = {"item": dataset.item_metadata, "user": dataset.user_metadata}
        for entity in ENTITIES:
            if self.schema.for_entity(entity):
                if tables[entity] is None:
                    raise FeatureError(f"dataset {dataset.name!r} has no {entity}_metadata")
                out[entity] = self.transform(entity, tables[entity], id_map=maps[entity])
        return out

    # ------------------------------------------------------------------ introspection
    def fields(self, entity: str) -> dict[str, FieldInfo]:
        """Field name -> ``FieldInfo`` for the fields of ``entity``."""
        self._require_fitted()
        return {s.name: self._encoders[s.name].info() for s in self.schema.for_entity(entity)}

    def field_info(self, name: str) -> FieldInfo:
        """``FieldInfo`` of one field."""
        self._require_fitted()
        self.schema[name]  # KeyError listing the fields
        return self._encoders[name].info()

    def vocabulary(self, name: str) -> list[str]:
        """Vocabulary of a categorical or text field: entry ``i`` has id ``i + 2``."""
        self._require_fitted()
        spec = self.schema[name]
        if spec.kind == "numeric":
            raise FeatureError(f"numeric field {name!r} has no vocabulary (see its bucket edges)")
        return list(self._encoders[name].vocabulary)

    def tfidf_vectorizer(self, name: str) -> TfidfVectorizer:
        """The fitted ``TfidfVectorizer`` of a text field."""
        self._require_fitted()
        if self.schema[name].kind != "text":
            raise FeatureError(f"field {name!r} is not a text field")
        return self._encoders[name].vectorizer

    def numeric_stats(self, name: str) -> dict[str, Any]:
        """``{"mean", "std", "edges"}`` of a numeric field (after ``log1p`` if set)."""
        self._require_fitted()
        if self.schema[name].kind != "numeric":
            raise FeatureError(f"field {name!r} is not a numeric field")
        enc = self._encoders[name]
        return {"mean": enc.mean, "std": enc.std, "edges": enc.edges.copy()}

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | pathlib.Path) -> None:
        """Writes ``features.json`` and ``features.npz`` (no pickle) into ``directory``."""
        self._require_fitted()
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        states, arrays = {}, {}
        for name, encoder in self._encoders.items():
            states[name], field_arrays = encoder.state()
            for key, value in field_arrays.items():
                arrays[f"{name}.{key}"] = value
        doc = {
            "format": "hybridrec.features",
            "version": FORMAT_VERSION,
            "schema": self.schema.to_dict(),
            "state": states,
            "fit_stats": self.fit_stats,
        }
        (directory / _JSON_NAME).write_text(json.dumps(doc, indent=1))
        np.savez(directory / _NPZ_NAME, **arrays)

    @classmethod
    def load(cls, directory: str | pathlib.Path) -> FeatureEncoder:
        """Rebuilds a fitted encoder written by ``save``.

        Raises:
          FeatureError: the directory does not hold a saved encoder of a known version.
        """
        directory = pathlib.Path(directory)
        path = directory / _JSON_NAME
        if not path.exists() or not (directory / _NPZ_NAME).exists():
            raise FeatureError(
                f"no saved FeatureEncoder in {directory} (needs {_JSON_NAME} and {_NPZ_NAME})"
            )
        doc = json.loads(path.read_text())
        if doc.get("format") != "hybridrec.features" or doc.get("version") != FORMAT_VERSION:
            raise FeatureError(
                f"{path}: not a hybridrec feature encoder of version {FORMAT_VERSION} "
                f"(format {doc.get('format')!r}, version {doc.get('version')!r})"
            )
        encoder = cls(FeatureSchema.from_dict(doc["schema"]))
        with np.load(directory / _NPZ_NAME, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        for name, field_encoder in encoder._encoders.items():
            prefix = f"{name}."
            field_arrays = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            field_encoder.load_state(doc["state"][name], field_arrays)
        encoder.fit_stats = doc.get("fit_stats", {})
        encoder._fitted = True
        return encoder


# ---------------------------------------------------------------------------------------------
# Reports for data cards
# ---------------------------------------------------------------------------------------------


def coverage_table(encoder: FeatureEncoder, features: Mapping[str, EntityFeatures]) -> str:
    """A markdown table of every field: coverage, vocabulary size, width, notes.

    Args:
      encoder: the fitted encoder.
      features: entity -> ``EntityFeatures`` of all entities of a dataset (``transform_dataset``).

    Returns:
      Markdown text: one row per field. Coverage is the share of entities with a value (for
      text: a non-empty text; "in vocab" is the share with at least one vocabulary token).
    """
    lines = [
        "| field | entity | kind | column(s) | coverage | vocabulary | width | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for entity, feats in features.items():
        n = feats.num_entities
        for name, info in feats.fields.items():
            spec = encoder.schema[name]
            stats = feats.stats[name]
            coverage = 1.0 - stats["missing"] / n if n else 0.0
            vocab = "-"
            notes = []
            if spec.kind == "categorical":
                vocab = f"{info.vocab_size - FIRST_VALUE_ID:,}"
                kind = "categorical (multi)" if spec.multi_valued else "categorical"
                notes.append(f"min_count {spec.min_count}")
                if spec.multi_valued:
                    notes.append(f"mean {stats['mean_length']:.2f} values")
                if stats["unknown"]:
                    notes.append(f"{stats['unknown']:,} values outside vocab")
            elif spec.kind == "text":
                vocab = f"{info.vocab_size - FIRST_VALUE_ID:,}"
                kind = "text (TF-IDF)"
                in_vocab = 1.0 - stats["empty"] / n if n else 0.0
                notes.append(f"in vocab {in_vocab:.1%}")
                notes.append(f"mean {stats['mean_length']:.1f} tokens")
                notes.append(f"mass cut {stats['mass_cut']:.1%}")
            else:
                kind = "numeric" + (" (log1p)" if spec.log1p else "")
                num = encoder.numeric_stats(name)
                notes.append(f"mean {num['mean']:.4g}, std {num['std']:.4g}")
                if info.vocab_size:
                    vocab = f"{info.vocab_size - FIRST_VALUE_ID} buckets"
            column = ", ".join(spec.columns)
            width = str(info.width) if info.width else f"dim {info.dim}"
            lines.append(
                f"| {name} | {entity} | {kind} | {column} | {coverage:.1%} | {vocab} | {width} | "
                f"{'; '.join(notes)} |"
            )
    return "\n".join(lines)
