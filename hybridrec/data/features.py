"""Side features: metadata fields of items and users, encoded into padded arrays for JAX.

A ``FeatureSchema`` lists ``FieldSpec`` s, each a named field of the items or the users (movie
genres, a beer style, ABV, a product title, an image embedding, a user's age, a user's training
items...). ``FieldSpec.kind`` names a *field kind*, a module found like the towers: a module of
``hybridrec.data.fields`` or a dotted path to a researcher's own (the contract, and how to add a
kind, are in ``hybridrec/data/fields/__init__.py``). The built-in kinds:

* ``categorical``: one value (a beer style) or several (a genre list, given as a Python list or
  a string such as ``"Action|Comedy"``) per entity, mapped through a vocabulary of the values
  that occur in at least ``min_count`` training entities;
* ``numeric``: a float (ABV, release year, price, age), optionally ``log1p``-transformed,
  standardized with the mean and standard deviation of the training entities, and optionally
  also bucketized into training quantiles;
* ``text``: a string (title, description, a bag of Freebase ``relation=entity`` tokens) turned
  into TF-IDF weighted tokens by scikit-learn's ``TfidfVectorizer``;
* ``vector``: a precomputed embedding, a fixed-length list/array of floats in one column or one
  number in each of several columns, kept dense with a missing indicator;
* ``history``: a user's training items (SVD++'s implicit feedback), fitted from the training
  interactions rather than a metadata column (``hybridrec.data.history``).

A kind's options are ``FieldSpec`` keyword arguments (``FieldSpec("genres",
multi_valued=True)``); an option the kind does not accept is an error naming the field.

A ``FeatureEncoder`` is fitted on the *training* entities only, and then encodes any entity,
including cold-start items and users never seen in training. Encoding is row-independent: an
entity gets the same arrays alone (``transform("item", {...})``) as inside a whole table.

Output contract (``FeatureEncoder.transform`` returns an ``EntityFeatures``; every array has
leading dimension ``n`` = number of entities, rows in ``IdMap`` order when one is given):

* bag fields (``FieldInfo.vocab_size > 0``: categorical, text, bucketized numeric, history), an
  embedding bag of fixed width ``W``:

  - ``"{field}/ids"`` int32 (n, W): ``0`` = padding, ``1`` = unknown / missing bucket,
    ``2 ..`` = vocabulary entries (``encoder.vocabulary(field)[i]`` has id ``i + 2``); for
    ``history``, item index + 1 and no unknown row;
  - ``"{field}/weights"`` float32 (n, W): 0 on padding; 1.0 per categorical value (pooling is
    the tower's job); for text, the TF-IDF weights of the kept tokens exactly as scikit-learn
    computes them (L2-normalised over *all* tokens of the entity by default, not renormalised
    after truncation);
  - ``"{field}/lengths"`` int32 (n,): number of non-padding entries.

  An entity without any value (missing, ``[]``, ``""``, or a text without any vocabulary token)
  gets the single entry ``(id 1, weight 1.0)``, so a tower learns a "missing" embedding instead
  of pooling nothing (a user without history gets an empty row). A categorical value outside
  the vocabulary also maps to id 1 (once per entity) and is counted in
  ``EntityFeatures.stats[field]["unknown"]`` and ``encoder.unknown_counts``. Texts longer than
  ``W`` tokens keep their ``W`` highest weights; ``stats[field]["mass_cut"]`` reports the share
  of TF-IDF mass (sum of weights) dropped.

* dense fields (``FieldInfo.dim > 0``: numeric with ``dim == 2``, vector with ``dim == d + 1``):
  ``"{field}"`` float32 (n, dim), the value(s) then a 0/1 missing indicator; a missing value is
  0 in the value columns and 1 in the indicator (never NaN). A bucketized numeric field
  (``num_buckets > 0``) has both this dense array and the bag arrays above (``W = 1``, id 1 =
  missing), so either a numeric or a categorical tower can read it.

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
``encoder.transform_dataset(dataset)`` (which also fit ``history`` fields on ``train``).

Persistence uses no pickle: ``features.json`` holds the schema (every option resolved), each
field's JSON state (vocabularies, statistics, vectorizer parameters) and the fit statistics;
``features.npz`` holds each field's arrays (TF-IDF ``idf_`` vectors, quantile edges, vocabulary
counts, histories) under ``"{field}.{key}"``. ``TfidfVectorizer`` is rebuilt from its
parameters, vocabulary and ``idf_`` and gives bit-identical weights. Version-1 directories
(before field kinds were plug-ins) still load.

Bad input raises ``FeatureError`` (a ``ValueError``) naming the field, column, row and ID:
metadata rows that do not match the ``IdMap`` (missing, extra or duplicate IDs), a value of the
wrong type, an empty vocabulary, a schema column absent from the data, an unknown kind or
option (``FieldOptionError``, also a ``TypeError``). Training IDs that the metadata does not
have raise ``KeyError``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import pathlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer

from hybridrec.data import fields as fields_lib
from hybridrec.data.fields._base import (
    ENTITIES,
    FIRST_VALUE_ID,
    PAD_ID,
    UNKNOWN_ID,
    FeatureError,
    FieldInfo,
    FieldOptionError,
)
from hybridrec.data.fields._base import py as _py
from hybridrec.data.fields.history import NEW_ENTITIES
from hybridrec.data.interactions import IdMap

__all__ = [
    "ENTITIES",
    "FIRST_VALUE_ID",
    "KINDS",
    "PAD_ID",
    "UNKNOWN_ID",
    "EntityFeatures",
    "FeatureEncoder",
    "FeatureError",
    "FeatureSchema",
    "FieldInfo",
    "FieldOptionError",
    "FieldSpec",
    "coverage_table",
    "kind_options",
]

KINDS = tuple(fields_lib.available_kinds())  # the built-in kinds; a dotted path also works
FORMAT_VERSION = 2  # 1: before field kinds were plug-ins (a FieldSpec held every kind's options)
_JSON_NAME = "features.json"
_NPZ_NAME = "features.npz"
_RESERVED_NAMES = ("ids",)  # "ids" is the entity-index key of a gathered batch
_CONTEXT = ("name", "entity", "columns", "kind")  # what every kind's Encoder is given


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------


def kind_options(kind: str) -> dict[str, Any]:
    """The options of field kind ``kind`` and their defaults (``inspect.Parameter.empty`` when
    required), read from its ``Encoder`` constructor.

    Raises:
      FeatureError: unknown kind; the message lists the kinds that exist.
    """
    cls = fields_lib.load(kind)
    params = dict(inspect.signature(cls.__init__).parameters)
    params.pop(next(iter(params)), None)  # self
    return {
        name: p.default
        for name, p in params.items()
        if name not in _CONTEXT and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


def _frozen(value: Any) -> Any:
    """Lists (from JSON or a config) as tuples, so equal specs compare and hash equal."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _hashable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def _option_hint(kind: str, unknown: Sequence[str]) -> str:
    """'(multi_valued applies to categorical fields only)' for options of other built-in kinds."""
    owners: dict[str, list[str]] = {}
    for other in KINDS:
        if other == kind:
            continue
        for option in kind_options(other):
            owners.setdefault(option, []).append(other)
    notes = [
        f"{option} applies to {', '.join(owners[option])} fields only"
        for option in unknown
        if option in owners
    ]
    return f" ({'; '.join(notes)})" if notes else ""


class FieldSpec:
    """One metadata field of the items or the users.

    Args:
      name: field name; the output arrays are ``"{name}/ids"`` etc. Must not contain ``/``.
      entity: ``"item"`` or ``"user"``.
      kind: a field kind: ``"categorical"`` (default), ``"numeric"``, ``"text"``, ``"vector"``,
        ``"history"``, or a dotted path ``"my_pkg.my_kind"`` to a module with an ``Encoder``
        (``hybridrec.data.fields``).
      column: metadata column(s) to read; default ``name``. A text field may join several
        columns (e.g. ``("title", "description")``) with a space, a vector field reads one
        number per column; a history field reads none.
      description: free text for data cards.
      **options: the kind's options, e.g. categorical ``multi_valued``, ``separator``,
        ``min_count``, ``max_vocab``, ``width``, ``max_width``; numeric ``log1p``,
        ``num_buckets``; text ``width``, ``max_width`` and the ``TfidfVectorizer`` options
        ``max_features``, ``min_df``, ``max_df``, ``ngram_range``, ``sublinear_tf``, ``norm``,
        ``lowercase``, ``token_pattern``, ``stop_words``; vector ``dim``, ``standardize``;
        history ``max_items``, ``seed`` (each kind's ``Encoder`` docstring says what they do).

    Attributes:
      options: every option of the kind, defaults filled in. Each is also an attribute
        (``spec.num_buckets``), as it was when ``FieldSpec`` was a dataclass of all options.

    Raises:
      FeatureError: a bad name, entity, kind, column or option value; ``FieldOptionError`` (also
        a ``TypeError``) for an option the kind does not accept, naming the field.
    """

    __slots__ = ("name", "entity", "kind", "column", "description", "options")

    def __init__(
        self,
        name: str,
        entity: str = "item",
        kind: str = "categorical",
        column: str | Sequence[str] | None = None,
        *,
        description: str = "",
        **options: Any,
    ):
        where = f"FieldSpec {name!r}"
        if not isinstance(name, str) or not name or "/" in name:
            raise FeatureError(f"{where}: a field name is a non-empty string without '/'")
        if name in _RESERVED_NAMES:
            raise FeatureError(f"{where}: the name is reserved for the batch's entity indices")
        if entity not in ENTITIES:
            raise FeatureError(f"{where}: entity must be one of {ENTITIES}, got {entity!r}")
        try:
            cls = fields_lib.load(kind)
        except FeatureError as exc:
            raise FeatureError(f"{where}: {exc}") from None
        column = _frozen(column)
        max_columns = getattr(cls, "max_columns", 1)
        if max_columns == 0:
            if column not in (None, ()):
                raise FeatureError(f"{where}: a {kind} field reads no metadata column")
            column = ()
        else:
            column = name if column is None else column
            if isinstance(column, tuple):
                if not column or not all(isinstance(c, str) for c in column):
                    raise FeatureError(f"{where}: column must be a string or a tuple of strings")
                if len(column) > 1 and max_columns is not None and len(column) > max_columns:
                    raise FeatureError(
                        f"{where}: a {kind} field reads one column, got {column}; only a text "
                        "field may read several columns (joined), or a vector field (one "
                        "number per column)"
                    )
                column = column[0] if len(column) == 1 else column
            elif not isinstance(column, str):
                raise FeatureError(f"{where}: column must be a string or a tuple of strings")
        accepted = kind_options(kind)
        unknown = sorted(k for k in options if k not in accepted)
        if unknown:
            raise FieldOptionError(
                f"{where}: unknown option(s) {unknown} for a {kind} field"
                f"{_option_hint(kind, unknown)}; {kind} fields accept {sorted(accepted)}"
            )
        required = [k for k, v in accepted.items() if v is inspect.Parameter.empty]
        missing = [k for k in required if k not in options]
        if missing:
            raise FieldOptionError(f"{where}: a {kind} field needs option(s) {missing}")
        resolved = {k: _frozen(options.get(k, default)) for k, default in accepted.items()}
        for attr, value in (
            ("name", name),
            ("entity", entity),
            ("kind", kind),
            ("column", column),
            ("description", description),
            ("options", resolved),
        ):
            object.__setattr__(self, attr, value)
        self.make_encoder()  # the kind validates its option values (FeatureError)

    def make_encoder(self) -> Any:
        """A new, unfitted encoder of this field (the kind's ``Encoder``)."""
        cls = fields_lib.load(self.kind)
        return cls(
            name=self.name, entity=self.entity, columns=self.columns, kind=self.kind, **self.options
        )

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        try:
            options = object.__getattribute__(self, "options")
        except AttributeError:
            raise AttributeError(attr) from None
        if attr in options:
            return options[attr]
        raise AttributeError(
            f"{self.kind} field {self.name!r} has no attribute or option {attr!r}; its options: "
            f"{sorted(options)}"
        )

    def __setattr__(self, attr: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(
            f"FieldSpec is immutable; use spec.replace({attr}=...)"
        )

    def __delattr__(self, attr: str) -> None:
        raise dataclasses.FrozenInstanceError("FieldSpec is immutable")

    def _key(self) -> tuple:
        return (self.name, self.entity, self.kind, self.column, self.description, self.options)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldSpec) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(_hashable(self._key()))

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return (
            f"FieldSpec(name={self.name!r}, entity={self.entity!r}, kind={self.kind!r}, "
            f"column={self.column!r}{opts})"
        )

    def __reduce__(self):
        return (_spec_from_dict, (self.to_dict(),))

    def replace(self, **changes: Any) -> FieldSpec:
        """A copy with some arguments changed (``dataclasses.replace`` for a ``FieldSpec``).

        Changing ``kind`` keeps only the options the new kind accepts.
        """
        data = {
            "name": self.name,
            "entity": self.entity,
            "kind": self.kind,
            "column": self.column if self.columns else None,
            "description": self.description,
            **self.options,
        }
        if "kind" in changes and changes["kind"] != self.kind:
            accepted = kind_options(changes["kind"])
            data = {k: v for k, v in data.items() if k not in self.options or k in accepted}
        data.update(changes)
        return FieldSpec(**data)

    @property
    def columns(self) -> tuple[str, ...]:
        """The metadata columns the field reads."""
        return self.column if isinstance(self.column, tuple) else (self.column,)

    @property
    def is_bag(self) -> bool:
        """Whether the field is encoded as an embedding bag (ids / weights / lengths)."""
        return bool(getattr(self.make_encoder(), "is_bag", True))

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (see ``from_dict``): the arguments, every option resolved."""
        out = {
            "name": self.name,
            "entity": self.entity,
            "kind": self.kind,
            "column": list(self.columns),
            "description": self.description,
        }
        out.update({k: _jsonable(v) for k, v in self.options.items()})
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FieldSpec:
        """Inverse of ``to_dict``."""
        return _spec_from_dict(data, cls)


def _spec_from_dict(data: Mapping[str, Any], cls: type = FieldSpec) -> FieldSpec:
    data = dict(data)
    data["column"] = tuple(data.get("column") or ()) or None
    return cls(**data)


def _spec_from_v1(data: Mapping[str, Any]) -> FieldSpec:
    """A ``FieldSpec`` from a version-1 ``to_dict`` (every kind's options, for any kind)."""
    accepted = kind_options(data["kind"])
    generic = ("name", "entity", "kind", "column", "description")
    return _spec_from_dict({k: v for k, v in data.items() if k in generic or k in accepted})


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
        frame = _records_frame([metadata], [0])
        frame.attrs[NEW_ENTITIES] = True  # the index is a position, not a raw ID
        return frame
    if isinstance(metadata, Sequence) and not isinstance(metadata, str):
        if metadata and all(isinstance(r, Mapping) for r in metadata):
            frame = _records_frame(metadata, range(len(metadata)))
            frame.attrs[NEW_ENTITIES] = True
            return frame
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
        self._encoders = {spec.name: spec.make_encoder() for spec in self.schema}
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
        interactions: Any = None,
    ) -> FeatureEncoder:
        """Learns vocabularies, statistics and TF-IDF weights from the training entities.

        Args:
          item_metadata: one row per item, indexed by raw item ID (needed if the schema has
            item fields).
          user_metadata: the same for users.
          item_ids: raw IDs of the training items to fit on (e.g. the items of the training
            interactions); default: every row of ``item_metadata``.
          user_ids: the same for users.
          interactions: the training ``Interactions``, for kinds fitted on them (``history``).
            An entity whose fields read no column (only ``history``) needs no metadata: its
            training entities are ``user_ids`` or, by default, those of ``interactions``.

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
            if metadata is None and not any(s.columns for s in specs):
                metadata = _index_frame(entity, ids, interactions)
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
                encoder = self._encoders[spec.name]
                if getattr(encoder, "uses_interactions", False):
                    stats = encoder.fit(frame, interactions)
                else:
                    stats = encoder.fit(frame)
                fit_stats[spec.name] = {"num_fit": len(frame), **_jsonable_stats(stats)}
        self.fit_stats = fit_stats
        self._fitted = True
        return self

    def fit_dataset(self, dataset: Any, train: Any | None = None) -> FeatureEncoder:
        """Fits on the users and items that occur in ``train`` (all of them if None).

        Args:
          dataset: a ``hybridrec.data.datasets.Dataset`` with ``item_metadata`` /
            ``user_metadata`` indexed by raw ID.
          train: the training ``Interactions`` (same ID space as ``dataset.interactions``);
            ``history`` fields are fitted on them (on ``dataset.interactions`` if None).
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
            interactions=train if train is not None else dataset.interactions,
        )

    # ------------------------------------------------------------------ encoding
    def transform(
        self, entity: str, metadata: Any, *, id_map: IdMap | None = None
    ) -> EntityFeatures:
        """Encodes the ``entity`` fields of any entities, seen in training or not.

        Args:
          entity: "item" or "user".
          metadata: a DataFrame (one row per entity, indexed by raw ID), a Series or a dict
            (one entity, e.g. a cold-start item as raw metadata), or a list of dicts (new
            entities: a ``history`` field encodes them as users without history). None when the
            entity's fields read no column (only ``history``): the rows are ``id_map``'s IDs.
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
        if metadata is None and id_map is not None and not any(s.columns for s in specs):
            metadata = pd.DataFrame(index=pd.Index(id_map.raw_ids))
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
            specs = self.schema.for_entity(entity)
            if specs:
                if tables[entity] is None and any(s.columns for s in specs):
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

    def field_encoder(self, name: str) -> Any:
        """The fitted encoder of one field (its kind's ``Encoder``), e.g. for the ``history``
        kind's ``encode_items``."""
        self._require_fitted()
        self.schema[name]  # KeyError listing the fields
        return self._encoders[name]

    def vocabulary(self, name: str) -> list[str]:
        """Vocabulary of a categorical or text field: entry ``i`` has id ``i + 2``."""
        self._require_fitted()
        spec = self.schema[name]
        encoder = self._encoders[name]
        if not hasattr(encoder, "vocabulary"):
            hint = " (see its bucket edges)" if hasattr(encoder, "edges") else ""
            raise FeatureError(f"{spec.kind} field {name!r} has no vocabulary{hint}")
        return list(encoder.vocabulary)

    def tfidf_vectorizer(self, name: str) -> TfidfVectorizer:
        """The fitted ``TfidfVectorizer`` of a text field."""
        self._require_fitted()
        vectorizer = getattr(self._encoders[self.schema[name].name], "vectorizer", None)
        if not isinstance(vectorizer, TfidfVectorizer):
            raise FeatureError(f"field {name!r} is not a text field")
        return vectorizer

    def numeric_stats(self, name: str) -> dict[str, Any]:
        """``{"mean", "std", "edges"}`` of a numeric field (after ``log1p`` if set)."""
        from hybridrec.data.fields import numeric

        self._require_fitted()
        enc = self._encoders[self.schema[name].name]
        if not isinstance(enc, numeric.Encoder):
            raise FeatureError(f"field {name!r} is not a numeric field")
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
        if doc.get("format") != "hybridrec.features" or doc.get("version") not in (
            1,
            FORMAT_VERSION,
        ):
            raise FeatureError(
                f"{path}: not a hybridrec feature encoder of version 1 or {FORMAT_VERSION} "
                f"(format {doc.get('format')!r}, version {doc.get('version')!r})"
            )
        if doc["version"] == 1:
            schema_doc = doc["schema"]
            schema = FeatureSchema(
                [_spec_from_v1(f) for f in schema_doc["fields"]], name=schema_doc.get("name", "")
            )
        else:
            schema = FeatureSchema.from_dict(doc["schema"])
        encoder = cls(schema)
        with np.load(directory / _NPZ_NAME, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        for name, field_encoder in encoder._encoders.items():
            prefix = f"{name}."
            field_arrays = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            field_encoder.load_state(doc["state"][name], field_arrays)
        encoder.fit_stats = doc.get("fit_stats", {})
        encoder._fitted = True
        return encoder


def _index_frame(entity: str, ids: Any, interactions: Any) -> pd.DataFrame | None:
    """A column-less frame of the training entities, for fields that read no column."""
    if ids is None and interactions is not None:
        ids = (interactions.user_map if entity == "user" else interactions.item_map).raw_ids
    return None if ids is None else pd.DataFrame(index=pd.Index(np.unique(np.asarray(ids))))


def _jsonable_stats(stats: Mapping[str, Any]) -> dict[str, Any]:
    """Plain Python numbers in the stats (``fit_stats`` goes to ``features.json``)."""
    return {k: _py(v) for k, v in stats.items()}


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
      text: a non-empty text; "in vocab" is the share with at least one vocabulary token; for
      history: a user with training items). The kind's ``describe(stats, n)`` gives the kind,
      vocabulary and notes cells.
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
            field_encoder = encoder.field_encoder(name)
            if hasattr(field_encoder, "describe"):
                kind, vocab, notes = field_encoder.describe(stats, n)
            else:
                kind, vocab, notes = spec.kind, "-", []
            column = ", ".join(spec.columns) or "-"
            width = str(info.width) if info.width else f"dim {info.dim}"
            lines.append(
                f"| {name} | {entity} | {kind} | {column} | {coverage:.1%} | {vocab} | {width} | "
                f"{'; '.join(notes)} |"
            )
    return "\n".join(lines)
