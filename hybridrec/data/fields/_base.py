"""What every field encoder shares: errors, ID conventions, ``FieldInfo`` and the padded bag.

Kept apart from ``hybridrec.data.features`` so that field modules (built-in or a researcher's)
import it without importing the encoder that imports them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

PAD_ID = 0
UNKNOWN_ID = 1  # also the "missing" bucket
FIRST_VALUE_ID = 2
ENTITIES = ("item", "user")


class FeatureError(ValueError):
    """Raised for bad side-feature input; the message names the field, column, row and ID."""


class FieldOptionError(FeatureError, TypeError):
    """An option a field kind does not accept (also a ``TypeError``, as for a bad keyword)."""


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """What a tower needs to know about an encoded field.

    Attributes:
      name: field name.
      entity: "item" or "user".
      kind: the field kind, as ``FieldSpec.kind`` names it (``"categorical"``, ``"numeric"``,
        ``"text"``, ``"vector"``, ``"history"`` or a dotted path).
      columns: the metadata columns it was read from (``()`` for ``history``).
      vocab_size: rows of an embedding table for ``"{name}/ids"`` (values + padding + unknown;
        for ``history``, items + padding); 0 when the field has no bag arrays.
      width: ``W`` of the bag arrays; 0 when there are none.
      dim: ``d`` of the dense ``"{name}"`` array (values + missing indicator); 0 when there is none.
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


class FieldEncoder:
    """Base class of the built-in field encoders (a researcher's may subclass it or not).

    Args:
      name: the field name (array key prefix).
      entity: ``"item"`` or ``"user"``.
      columns: the metadata columns the field reads.
      kind: the kind's name as the ``FieldSpec`` gave it (for ``FieldInfo`` and messages).

    Subclasses add their options as keyword-only constructor arguments with defaults, and
    implement ``fit``, ``transform``, ``info``, ``state`` and ``load_state`` (see
    ``hybridrec.data.fields``).
    """

    #: Columns a field of this kind may read: 1, or None for any number, or 0 for none.
    max_columns: int | None = 1
    #: Whether ``fit`` needs the training interactions (``history``).
    uses_interactions: bool = False

    def __init__(self, *, name: str, entity: str, columns: tuple[str, ...], kind: str):
        self.name = name
        self.entity = entity
        self.columns = tuple(columns)
        self.kind = kind

    @property
    def column(self) -> str | tuple[str, ...]:
        """The column, or the tuple of columns of a several-column field."""
        return self.columns[0] if len(self.columns) == 1 else self.columns

    @property
    def spec_where(self) -> str:
        """Prefix of option errors: ``FieldSpec 'name'``."""
        return f"FieldSpec {self.name!r}"

    def where(self, column: Any = None) -> str:
        """Prefix of data errors: ``numeric field 'year' (item column 'year')``."""
        column = self.column if column is None else column
        return f"{self.kind} field {self.name!r} ({self.entity} column {column!r})"

    @property
    def is_bag(self) -> bool:
        """Whether the field is encoded as an embedding bag (ids / weights / lengths)."""
        return True

    def field_info(self, vocab_size: int = 0, width: int = 0, dim: int = 0) -> FieldInfo:
        """This field's ``FieldInfo`` with the given sizes."""
        return FieldInfo(
            self.name, self.entity, self.kind, self.columns, int(vocab_size), int(width), int(dim)
        )

    def bag_arrays(
        self, ids: np.ndarray, weights: np.ndarray, lengths: np.ndarray
    ) -> dict[str, np.ndarray]:
        """The bag keys of this field: ``{name}/ids``, ``{name}/weights``, ``{name}/lengths``."""
        name = self.name
        return {f"{name}/ids": ids, f"{name}/weights": weights, f"{name}/lengths": lengths}

    def describe(self, stats: Mapping[str, Any], n: int) -> tuple[str, str, list[str]]:
        """(kind label, vocabulary size text, notes) for ``coverage_table``; override for more."""
        info = self.info()
        vocab = f"{info.vocab_size - FIRST_VALUE_ID:,}" if info.vocab_size else "-"
        return self.kind, vocab, []

    def info(self) -> FieldInfo:  # pragma: no cover - every kind overrides it
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# Helpers for reading columns and packing bags


def py(value: Any) -> Any:
    """Plain Python values for messages (``15``, not ``np.int64(15)``)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.item() if isinstance(value, np.generic) else value


def row_desc(index: pd.Index, row: int) -> str:
    """``row 3 (ID 'x')`` for messages."""
    return f"row {row} (ID {py(index[row])!r})"


def first_bad(values: Sequence[Any], ok) -> int:
    """Position of the first element for which ``ok`` is false (a loop over entities, error path)."""
    for i, v in enumerate(values):
        if not ok(v):
            return i
    return -1


def is_missing_scalar(v: Any) -> bool:
    """None, NA, NaT or a float NaN."""
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, (float, np.floating)) and math.isnan(v)


def pack_bag(
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


def check_width(where: str, width: int | None, max_width: int) -> None:
    """Validates the ``width`` / ``max_width`` options shared by bag kinds."""
    if width is not None and width < 1:
        raise FeatureError(f"{where}: width must be >= 1 or None, got {width}")
    if max_width < 1:
        raise FeatureError(f"{where}: max_width must be >= 1, got {max_width}")


@dataclasses.dataclass
class FieldExample:
    """A small case of one field kind, for the contract test (each module's ``example``).

    Attributes:
      options: ``FieldSpec`` options (``column=...`` and the kind's options).
      train: the training entities' metadata, indexed by raw ID.
      test: entities to encode: some with training values, some with ``unseen`` values, some
        ``missing``.
      missing: row positions in ``test`` without a value.
      unseen: row positions in ``test`` with values never seen in training (may be empty).
      expected: hand-computed arrays of some rows of ``test``: ``{row: {key: array}}``.
      entity: ``"item"`` or ``"user"``.
      interactions: the training ``Interactions`` for kinds that fit on them.
    """

    options: dict[str, Any]
    train: pd.DataFrame
    test: pd.DataFrame
    missing: Sequence[int]
    unseen: Sequence[int] = ()
    expected: Mapping[int, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    entity: str = "item"
    interactions: Any = None
