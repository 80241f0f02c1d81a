"""Field kinds: how one side-feature field is fitted on the training entities and encoded.

``FieldSpec.kind`` names a module, found like the towers (``hybridrec.towers``): a module of
this package or a dotted path to a researcher's own::

    FieldSpec("genres", kind="categorical", multi_valued=True)
    FieldSpec("clip", kind="vector", column="clip_embedding")       # precomputed embeddings
    FieldSpec("history", entity="user", kind="history")             # the user's training items
    FieldSpec("poster", kind="my_pkg.fields.image_hash", bits=64)   # your own kind

The built-in kinds: ``categorical`` (vocabulary of labels), ``numeric`` (standardized float with
a missing indicator, optionally bucketized), ``text`` (TF-IDF tokens), ``vector`` (a fixed-length
float vector per entity with a missing indicator) and ``history`` (a user's training items,
fitted from the training interactions rather than a metadata column).

The field-kind contract
-----------------------
A kind is a module ``hybridrec/data/fields/<kind>.py`` (or any importable module) with:

``Encoder``
  a class constructed with keyword arguments only: the *context* ``name`` (field name),
  ``entity`` (``"item"`` / ``"user"``), ``columns`` (tuple of metadata columns) and ``kind``
  (the name the spec used), always given, plus the kind's own *options* as keyword-only
  arguments with defaults (``min_count=1``, ``log1p=False``, ...). The signature *is* the
  declaration: ``FieldSpec`` fills defaults from it, and an option it does not name is a
  ``FieldOptionError`` naming the field. The constructor validates option values
  (``FeatureError``). Class attributes: ``max_columns`` (1, None for any number, 0 for none)
  and ``uses_interactions`` (True if ``fit`` needs the training interactions). Methods:

  - ``fit(frame, interactions=None) -> stats``: learn the state from the training entities'
    rows (``frame``: one row per entity, indexed by raw ID; ``interactions``: the training
    ``Interactions``, given to kinds with ``uses_interactions``); returns the ``transform``
    stats of those rows;
  - ``transform(frame) -> (arrays, stats)``: arrays with leading dimension ``len(frame)``, keys
    ``"{name}/ids"`` (n, W) int32, ``"{name}/weights"`` (n, W) float32, ``"{name}/lengths"``
    (n,) int32 for a bag; ``"{name}"`` (n, d) float32 for a dense field, last column the
    missing indicator; row ``i`` depends only on row ``i``; stats with at least ``missing``,
    ``unknown`` and ``truncated`` counts;
  - ``info() -> FieldInfo`` (``vocab_size``, ``width``, ``dim``: which keys exist and sizes);
  - ``state() -> (json_state, arrays)`` and ``load_state(json_state, arrays)``: the fitted
    state, as JSON-compatible values and numpy arrays (saved without pickle);
  - optional: ``describe(stats, n)`` for ``coverage_table``, ``vocabulary``, ``is_bag``.

  ``FieldEncoder`` (``hybridrec.data.fields._base``) provides the context attributes, error
  prefixes and ``FieldInfo`` helpers.

``example(rng: np.random.Generator) -> FieldExample``
  options and small training / test tables (with unseen and missing values) for the contract
  test ``tests/data/test_field_contract.py``, which checks every module here: adding a kind needs
  no new test code.

Conventions for the arrays (shared with ``hybridrec.towers``): bag ID 0 is padding (weight 0),
1 the unknown / missing bucket and 2.. the vocabulary (``history``: ID ``i + 1`` is item ``i``,
and a user without items has an empty row); a missing dense value is 0 with the indicator 1.
"""

from __future__ import annotations

import pkgutil

from hybridrec.data.fields._base import (
    ENTITIES,
    FIRST_VALUE_ID,
    PAD_ID,
    UNKNOWN_ID,
    FeatureError,
    FieldEncoder,
    FieldExample,
    FieldInfo,
    FieldOptionError,
)

__all__ = [
    "ENTITIES",
    "FIRST_VALUE_ID",
    "PAD_ID",
    "UNKNOWN_ID",
    "FeatureError",
    "FieldEncoder",
    "FieldExample",
    "FieldInfo",
    "FieldOptionError",
    "available_kinds",
    "load",
]


def available_kinds() -> list[str]:
    """Names of the field-kind modules in ``hybridrec/data/fields`` (``_x.py`` excluded)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(kind: str) -> type:
    """The ``Encoder`` class of field kind ``kind`` (a module here, or a dotted path to yours).

    Raises:
      FeatureError: unknown kind; the message lists the kinds that exist.
    """
    from hybridrec.plugins import load_module_attr

    return load_module_attr(
        __name__,
        kind,
        "Encoder",
        what="field kind",
        available=available_kinds(),
        error=FeatureError,
    )
