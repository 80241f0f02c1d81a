"""Experiment assembly: data preparation, model building, baseline fitting and entity export.

Everything a run needs before its first step and writes for serving after its last one lives
here, apart from the training loop (``hybridrec.train``), so that:

- the trainer reads as one loop over one prepared ``ExperimentData``;
- loading a run (``hybridrec.load``) depends on nothing but the run directory: the model is
  rebuilt from ``model.json`` (``describe_model`` / ``build_from_description``), never from the
  config plus a faked dataset, and baselines are restored from ``baseline.npz``.

Run-directory files written here:

- ``model.json``: the model's name, options, ID-space sizes and the feature fields its towers
  read (``FieldInfo`` as JSON); enough to build the same module with nothing else.
- ``entities.npz``: raw IDs, display names, ``known`` masks, every entity's encoded feature
  arrays and the training interactions (for ``exclude_seen``); written uncompressed, since
  recompressing millions of pairs cost ~5 s a run at 5M interactions (NOTES.md).
- ``baseline.npz``: a fitted baseline's arrays (popularity, item-kNN, EASE).
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Mapping
from typing import Any

import ml_collections
import numpy as np
from flax import nnx

from hybridrec import models
from hybridrec.data import history as history_lib
from hybridrec.data import splits
from hybridrec.data.datasets import Dataset, load_dataset
from hybridrec.data.features import (
    EntityFeatures,
    FeatureEncoder,
    FeatureSchema,
    FieldInfo,
    FieldSpec,
)
from hybridrec.data.interactions import Interactions
from hybridrec.data.schemas import get_schema

# Models fitted in numpy rather than trained by gradient descent.
BASELINES = ("popularity", "itemknn", "ease")

MODEL_FILE = "model.json"
ENTITIES_FILE = "entities.npz"
BASELINE_FILE = "baseline.npz"
# Version of the model description: bumped when its layout changes, checked on load.
MODEL_FORMAT = 1


class ExperimentError(ValueError):
    """A config that cannot be assembled into an experiment; the message names the key."""


# ------------------------------------------------------------------------------------ data
@dataclasses.dataclass
class ExperimentData:
    """What the loop needs from the data: the split, the feature tables and the encoder.

    Attributes:
      dataset: the loaded dataset.
      train: training interactions.
      eval_splits: ``{"val": ..., "test": ...}`` held-out interactions to evaluate on (in order).
      cold_items / cold_users: indices held out of training by a cold-start split, or None.
      encoder: the feature encoder fitted on the training entities (None without features).
      user_table / item_table: per-entity arrays (leading dim num_users / num_items): ``ids``,
        ``known`` (1 if the entity occurs in training) and the encoded feature fields.
      notes: what preparation dropped, merged or ignored, one line each (also in the run
        directory's ``provenance.json``).
    """

    dataset: Dataset
    train: Interactions
    eval_splits: dict[str, Interactions]
    cold_items: np.ndarray | None
    cold_users: np.ndarray | None
    encoder: FeatureEncoder | None
    user_features: EntityFeatures | None
    item_features: EntityFeatures | None
    user_table: dict[str, np.ndarray]
    item_table: dict[str, np.ndarray]
    notes: list[str] = dataclasses.field(default_factory=list)


def _entity_table(num: int, counts: np.ndarray, features: EntityFeatures | None) -> dict:
    table = {"ids": np.arange(num, dtype=np.int32), "known": (counts > 0).astype(np.float32)}
    if features is not None:
        table.update({k: np.asarray(v) for k, v in features.arrays.items()})
    return table


def prepare_data(config: ml_collections.ConfigDict) -> ExperimentData:
    """Loads the dataset, splits it and encodes side features fitted on the training entities.

    Args:
      config: an experiment config; reads ``data``, ``split``, ``features`` and ``seed``.

    Returns:
      The prepared ``ExperimentData``.
    """
    dataset = load_dataset(config.data)
    interactions = dataset.interactions
    # What the loader dropped, merged or coerced (also warned as it happened), for the run's
    # summary and provenance.json.
    notes: list[str] = [str(w) for w in dataset.info.get("warnings", [])]
    threshold = config.data.get("implicit_threshold")
    if threshold is not None and interactions.ratings is None:
        # Implicit data (no rating column) under a config written for ratings: nothing to
        # threshold. Said once, not a TypeError from deep inside the comparison.
        note = (
            f"config.data.implicit_threshold={threshold} ignored: dataset {dataset.name!r} has "
            "no ratings (every interaction is a positive)"
        )
        warnings.warn(note, stacklevel=2)
        notes.append(note)
    elif threshold is not None:
        # Keep the ratings' rows that pass; the split column (if any) follows the same rows.
        keep = interactions.ratings >= threshold
        if dataset.split is not None:
            dataset = dataclasses.replace(dataset, split=dataset.split[keep])
        dropped = int((~keep).sum())
        if dropped:
            notes.append(f"{dropped} interactions rated below {threshold} dropped (implicit)")
        interactions = interactions.subset(keep).replace(ratings=None)
    split_cfg = dict(config.split)
    if split_cfg.get("name") == "column":
        if dataset.split is None:
            raise ExperimentError(
                "config.split.name='column' needs a dataset with a split column "
                f"(dataset {dataset.name!r} has none)"
            )
        split_cfg["labels"] = dataset.split
    split = splits.make_split(interactions, split_cfg)
    eval_splits = (
        {"val": split.test} if split.val is None else {"val": split.val, "test": split.test}
    )

    encoder = user_features = item_features = None
    schema = feature_schema(config.features)
    if config.features.get("user_history") and not (
        schema is not None and any(f.kind == "history" for f in schema.fields)
    ):
        # Each user's training items, for the ``history`` tower: one more field kind
        # (hybridrec.data.fields.history), fitted on the training interactions.
        spec = FieldSpec(
            history_lib.FIELD,
            entity="user",
            kind="history",
            max_items=config.features.get("history_max_items"),
            seed=int(config.seed),
        )
        schema = FeatureSchema(
            [*(schema.fields if schema is not None else ()), spec],
            name=schema.name if schema is not None else "history",
        )
    if schema is not None:
        encoder = FeatureEncoder(schema).fit_dataset(dataset, split.train)
        encoded = encoder.transform_dataset(dataset)
        item_features, user_features = encoded.get("item"), encoded.get("user")
    user_table = _entity_table(interactions.num_users, split.train.user_counts(), user_features)
    item_table = _entity_table(interactions.num_items, split.train.item_counts(), item_features)
    return ExperimentData(
        dataset=dataset,
        train=split.train,
        eval_splits=eval_splits,
        cold_items=split.cold_items,
        cold_users=split.cold_users,
        encoder=encoder,
        user_features=user_features,
        item_features=item_features,
        user_table=user_table,
        item_table=item_table,
        notes=notes,
    )


def feature_schema(features: Mapping[str, Any]) -> FeatureSchema | None:
    """The feature schema a config's ``features`` section asks for, or None for no features.

    ``features.schema`` names a built-in schema (``hybridrec.data.schemas``); ``features.fields``
    is None (all its fields), a tuple of field names (a selection), or a dict declaring fields
    over the data's own metadata columns, ``{name: FieldSpec options}``; a declared field
    replaces the schema's field of that name, so a built-in schema is the default that a config
    extends.
    """
    schema_name = features.get("schema")
    fields = features.get("fields")
    if isinstance(fields, ml_collections.ConfigDict):  # not a Mapping, but dict-like
        fields = fields.to_dict()
    declared: dict[str, FieldSpec] = {}
    if isinstance(fields, Mapping):
        for name, spec in fields.items():
            if not isinstance(spec, Mapping):
                raise ExperimentError(
                    f"config.features.fields.{name} must be a dict of FieldSpec options "
                    f"(kind=..., column=..., entity=...), got {spec!r}"
                )
            try:
                declared[name] = FieldSpec(name=name, **dict(spec))
            except TypeError as exc:
                raise ExperimentError(f"config.features.fields.{name}: {exc}") from None
    if not schema_name:
        if fields and not declared:
            raise ExperimentError(
                f"config.features.fields={tuple(fields)} selects fields of a schema, but "
                "config.features.schema is None"
            )
        return FeatureSchema(list(declared.values()), name="declared") if declared else None
    schema = get_schema(schema_name)
    if fields and not declared:
        return schema.select(list(fields))
    if declared:
        kept = [f for f in schema.fields if f.name not in declared]
        schema = FeatureSchema([*kept, *declared.values()], name=f"{schema.name}+declared")
    return schema


# ------------------------------------------------------------------------------------ model
def describe_model(
    config: ml_collections.ConfigDict,
    data: ExperimentData,
    *,
    num_users: int | None = None,
    num_items: int | None = None,
) -> dict[str, Any]:
    """The JSON description ``build_from_description`` rebuilds the model from.

    Args:
      config: the experiment config (``config.model`` and ``config.seed`` are read).
      data: the prepared data (ID-space sizes, feature fields, the history width).
      num_users, num_items: the models' ID-table sizes when they differ from the data's (padded
        to a multiple of the device count, ``hybridrec.sharding``); rows past the data's are
        never looked up.

    Returns:
      ``{"format", "name", "options", "num_users", "num_items", "seed", "user_fields",
      "item_fields"}``, with fields as ``{name: FieldInfo-as-dict}``.
    """
    options = dict(config.model)
    name = options.pop("name")
    user_fields = dict(data.user_features.fields) if data.user_features is not None else {}
    item_fields = dict(data.item_features.fields) if data.item_features is not None else {}
    return {
        "format": MODEL_FORMAT,
        "name": name,
        "options": ml_collections.ConfigDict(options).to_dict() if options else {},
        "num_users": int(num_users or data.train.num_users),
        "num_items": int(num_items or data.train.num_items),
        "seed": int(config.seed),
        "user_fields": {k: _field_json(v) for k, v in user_fields.items()},
        "item_fields": {k: _field_json(v) for k, v in item_fields.items()},
    }


def _field_json(info: FieldInfo) -> dict[str, Any]:
    out = dataclasses.asdict(info)
    out["columns"] = list(out["columns"])
    return out


def _field_from_json(data: Mapping[str, Any]) -> FieldInfo:
    return FieldInfo(**{**data, "columns": tuple(data.get("columns", ()))})


def build_from_description(description: Mapping[str, Any]) -> models.Recommender:
    """Builds the model a ``describe_model`` description names, freshly initialised.

    Args:
      description: the dict ``describe_model`` returned (or ``model.json``'s contents).

    Returns:
      The ``nnx`` model, its parameters initialised from the description's seed.
    """
    if description.get("format") != MODEL_FORMAT:
        raise ExperimentError(
            f"model description format {description.get('format')!r} is not {MODEL_FORMAT}"
        )
    context = dict(
        num_users=int(description["num_users"]),
        num_items=int(description["num_items"]),
        rngs=nnx.Rngs(params=int(description["seed"])),
        user_features_info={k: _field_from_json(v) for k, v in description["user_fields"].items()},
        item_features_info={k: _field_from_json(v) for k, v in description["item_fields"].items()},
    )
    return models.build(description["name"], context=context, **description["options"])


def build_model(config: ml_collections.ConfigDict, data: ExperimentData) -> models.Recommender:
    """Builds ``config.model`` for the data's ID spaces and feature fields."""
    return build_from_description(describe_model(config, data))


def save_model_description(workdir: str, description: Mapping[str, Any]) -> None:
    """Writes ``model.json`` (readable by group and others, like every run file)."""
    from hybridrec.logging import write_json

    write_json(os.path.join(workdir, MODEL_FILE), description)


def read_model_description(workdir: str) -> dict[str, Any]:
    """Reads ``model.json``; FileNotFoundError if the run has none."""
    with open(os.path.join(workdir, MODEL_FILE)) as f:
        return json.load(f)


# ------------------------------------------------------------------------------------ baselines
def fit_baseline(config: ml_collections.ConfigDict, data: ExperimentData):
    """Fits ``config.model`` (popularity, item-kNN or EASE) on the training interactions."""
    from hybridrec.models.baselines import get_baseline

    options = dict(config.model)
    name = options.pop("name")
    return get_baseline(name, **options).fit(data.train)


def save_baseline(workdir: str, baseline) -> None:
    """Writes the fitted baseline's arrays to ``baseline.npz`` (uncompressed, no pickle)."""
    np.savez(os.path.join(workdir, BASELINE_FILE), **baseline.state_arrays())


# ------------------------------------------------------------------------------------ entities
def _raw(ids: np.ndarray) -> np.ndarray:
    return ids.astype(str) if ids.dtype == object else ids


def display_names(metadata) -> np.ndarray | None:
    """A human-readable name per entity (title, beer name), when the metadata has one."""
    if metadata is None:
        return None
    for column in ("title", "movie_title", "beer_name", "name"):
        if column in metadata.columns:
            return metadata[column].fillna("").astype(str).to_numpy(dtype=str)
    return None


def save_entities(workdir: str, data: ExperimentData) -> None:
    """``entities.npz``: raw IDs, names, the ``known`` masks and every entity's feature arrays.

    With ``model.json``, ``features/`` (the fitted encoder) and the checkpoint's parameters, this
    is all ``hybridrec.load`` needs: no dataset is read again to recommend, and a new item is
    encoded from raw metadata.
    """
    # The training run's one copy of the lists (shared with its sampler and exclusions); the
    # scipy ``csr`` view would keep another 8 bytes a pair, cached for the whole run.
    train_indptr, train_indices = data.train.item_lists
    arrays = {
        "user_raw_ids": _raw(data.train.user_map.raw_ids),
        "item_raw_ids": _raw(data.train.item_map.raw_ids),
        "user_known": data.user_table["known"],
        "item_known": data.item_table["known"],
        "item_counts": data.train.item_counts(),
        # Each user's training items as CSR (indptr, indices), so recommendations can exclude
        # what a user has seen: half the bytes of (user, item) pairs, and no sort on load.
        "train_indptr": train_indptr,
        "train_indices": train_indices,
    }
    for side, table in (("user", data.user_table), ("item", data.item_table)):
        for key, value in table.items():
            if key not in ("ids", "known"):
                arrays[f"{side}:{key}"] = value
    for side, metadata in (
        ("user", data.dataset.user_metadata),
        ("item", data.dataset.item_metadata),
    ):
        names = display_names(metadata)
        if names is not None:
            arrays[f"{side}_names"] = names
    # Written to a temporary name and renamed, so a crash never leaves half a file.
    path = os.path.join(workdir, ENTITIES_FILE)
    tmp = os.path.join(workdir, "entities.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
