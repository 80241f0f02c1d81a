"""Recommendations and interpretation from a trained run: ``hybridrec.load(workdir)``.

``load`` rebuilds a trained model from its run directory alone (the dataset is never read
again) and returns a ``TrainedModel`` that speaks raw IDs::

    model = hybridrec.load("runs/hybrid")
    model.recommend("u000042", k=10)                # DataFrame: item_id, score, name
    model.similar_items("i000007", k=5)             # cosine over learned item vectors
    model.score_new_item({"title": "New Movie", "genres": ["Drama"], "release_year": 1999.0,
                          "freebase": ""})          # cold start: metadata only, no retraining
    model.export("vectors.npz")                     # vectors + biases for ANN serving

What it reads from the run directory (written by ``hybridrec.train.train_and_evaluate``):

- ``config.json``: the experiment config; ``config["model"]`` names the model and its options;
- ``model.json``: the model's name, options, ID-space sizes and feature fields (the model is
  rebuilt from it alone);
- ``checkpoints/<step>/``: the orbax checkpoint; only its ``params`` item is read (the newest
  step by default), never the optimizer state;
- ``features/``: the fitted ``FeatureEncoder`` (absent when the config has no features), used to
  encode new items and users from raw metadata exactly as the training entities were;
- ``entities.npz``: ``user_raw_ids``, ``item_raw_ids``, ``user_known``, ``item_known``,
  ``item_counts``, every entity's encoded features (``user:<key>``, ``item:<key>``), optional
  ``user_names`` / ``item_names``, and each user's training items as CSR ``train_indptr`` /
  ``train_indices`` (for ``exclude_seen``; runs before it saved ``train_user_ids`` /
  ``train_item_ids`` pairs, still read).

Cold start. Every model multiplies its ID embeddings and ID biases by the batch's ``known``
flag (see ``hybridrec.models``), so an entity built from encoded metadata with ``known=0`` is
scored by its metadata towers alone: this is how a new item is scored without retraining, and it
is the same computation the trainer applies to catalogue items held out of training.

Baseline runs (``popularity``, ``itemknn``, ``ease``) have no checkpoint: ``load`` restores
them from ``baseline.npz`` as a ``TrainedBaseline``, which scores and recommends like any model
(similarity search, export and cold-start scoring need learned vectors and raise
``ServingError``).
"""

from __future__ import annotations

import json
import os
import pathlib
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import scipy.sparse as sp
from flax import nnx

from hybridrec.data import history
from hybridrec.data.features import FeatureEncoder
from hybridrec.data.interactions import IdMap

__all__ = ["ServingError", "TrainedBaseline", "TrainedModel", "load", "read_export"]

# The training interactions in entities.npz (index arrays), read for exclude_seen.
_TRAIN_KEYS = ("train_indptr", "train_indices")
_EXPORT_FORMATS = ("npz", "parquet")
# Cosine similarity of a zero vector (e.g. an entity whose towers all output 0) is defined as 0.
_EPS = 1e-12


class ServingError(ValueError):
    """A run directory that cannot be served, or a request the loaded model cannot answer."""


# ----------------------------------------------------------------------------------------------
# Loading


def load(workdir: str | os.PathLike, *, step: int | None = None) -> TrainedModel:
    """Loads a trained run: model, ID maps and fitted feature encoder.

    Args:
      workdir: a run directory written by ``hybridrec.train.train_and_evaluate``.
      step: the checkpoint step to restore; default the newest.

    Returns:
      A ``TrainedModel``.

    Raises:
      ServingError: the directory has no ``config.json`` / ``entities.npz``, the run is a
        non-neural baseline (no checkpoint), or it has no checkpoint (step).
    """
    # Imported here: experiment assembly pulls in datasets and scikit-learn, which
    # ``import hybridrec`` (that re-exports ``load``) should not pay for.
    from hybridrec import experiment
    from hybridrec.checkpoint import Checkpointer

    workdir = os.fspath(workdir)
    config_path = os.path.join(workdir, "config.json")
    if not os.path.isfile(config_path):
        raise ServingError(f"{workdir!r} is not a run directory: it has no config.json")
    with open(config_path) as f:
        config = json.load(f)
    entities = _read_entities(os.path.join(workdir, experiment.ENTITIES_FILE))
    user_table = _entity_table(entities, "user")
    item_table = _entity_table(entities, "item")
    common = dict(
        config=config,
        workdir=workdir,
        user_map=IdMap(entities["user_raw_ids"], name="user"),
        item_map=IdMap(entities["item_raw_ids"], name="item"),
        user_table=user_table,
        item_table=item_table,
        item_counts=entities.get("item_counts"),
        user_names=entities.get("user_names"),
        item_names=entities.get("item_names"),
        seen=_seen_matrix(entities),
    )
    name = config["model"]["name"]
    if name in experiment.BASELINES:
        return _load_baseline(workdir, name, config, common)

    checkpoints = os.path.join(workdir, "checkpoints")
    # Checkpointer creates the directory; look first so a bad path is not littered.
    if not _has_checkpoint(checkpoints):
        raise ServingError(f"{workdir!r} has no checkpoint under {checkpoints!r}: nothing to load")
    try:
        description = experiment.read_model_description(workdir)
    except FileNotFoundError:
        raise ServingError(
            f"{workdir!r} has no {experiment.MODEL_FILE} (the model description); it was trained "
            "by a hybridrec older than this one, retrain it to load it"
        ) from None
    features_dir = os.path.join(workdir, "features")
    encoder = FeatureEncoder.load(features_dir) if os.path.isdir(features_dir) else None

    # Built abstractly (shapes only): initialising the tables for real would compile every
    # initializer, ~8 s for the hybrid model, only to overwrite them with the checkpoint.
    model = nnx.eval_shape(lambda: experiment.build_from_description(description))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    if jax.tree.leaves(rest):
        # Non-parameter state (none of our models has any) is not in the checkpoint, so it
        # needs its real initial values.
        model = experiment.build_from_description(description)
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    # Parameters alone: no optimizer (dense or row-sparse) is built or read.
    ckpt = Checkpointer(workdir)
    try:
        step = ckpt.latest_step() if step is None else int(step)
        params = ckpt.restore_params(params, step=step)
    except FileNotFoundError as exc:
        raise ServingError(f"{workdir!r}: no checkpoint of step {step}: {exc}") from exc
    finally:
        ckpt.close()
    return TrainedModel(
        step=step, graphdef=graphdef, params=params, rest=rest, encoder=encoder, **common
    )


def _load_baseline(workdir: str, name: str, config: Mapping[str, Any], common: dict):
    from hybridrec import experiment
    from hybridrec.models.baselines import get_baseline

    path = os.path.join(workdir, experiment.BASELINE_FILE)
    if not os.path.isfile(path):
        raise ServingError(
            f"{path} is missing: the {name!r} run did not finish, or a hybridrec older than this "
            "one trained it"
        )
    options = {k: v for k, v in config["model"].items() if k != "name"}
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    baseline = get_baseline(name, **options).from_state_arrays(arrays)
    return TrainedBaseline(baseline=baseline, **common)


def _seen_matrix(entities: Mapping[str, np.ndarray]) -> sp.csr_matrix | None:
    """Each user's training items as a CSR matrix, from entities.npz (None if not saved)."""
    shape = (len(entities["user_raw_ids"]), len(entities["item_raw_ids"]))
    if "train_indptr" in entities and "train_indices" in entities:
        indices = entities["train_indices"]
        return sp.csr_matrix(
            (np.ones(len(indices), np.float32), indices, entities["train_indptr"]), shape=shape
        )
    if "train_user_ids" in entities and "train_item_ids" in entities:  # runs saved as pairs
        users, items = entities["train_user_ids"], entities["train_item_ids"]
        return sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=shape)
    return None


def _has_checkpoint(directory: str) -> bool:
    if not os.path.isdir(directory):
        return False
    return any(
        e.isdigit() and os.path.isdir(os.path.join(directory, e)) for e in os.listdir(directory)
    )


def _read_entities(path: str) -> dict[str, np.ndarray]:
    """Reads entities.npz without pickle, except for display names saved as object arrays."""
    if not os.path.isfile(path):
        raise ServingError(f"{path} is missing: the run did not finish, or it predates serving")
    out = {}
    with np.load(path, allow_pickle=False) as npz:
        for key in npz.files:
            try:
                out[key] = npz[key]
            except ValueError as exc:
                # pandas 3 string columns come out as object arrays, which need pickle to load.
                # Only the display names are ever stored that way (everything else is numeric or
                # a fixed-width string), so pickle is enabled for those keys alone.
                if not key.endswith("_names"):
                    raise ServingError(
                        f"{path}: array {key!r} is not loadable without pickle"
                    ) from exc
                with np.load(path, allow_pickle=True) as trusted:
                    out[key] = np.asarray(trusted[key], dtype=str)
    for key in ("user_raw_ids", "item_raw_ids", "user_known", "item_known"):
        if key not in out:
            raise ServingError(f"{path} lacks {key!r}; it has {sorted(out)}")
    return out


def _entity_table(entities: Mapping[str, np.ndarray], entity: str) -> dict[str, np.ndarray]:
    """The trainer's per-entity table: ``ids``, ``known`` and the encoded feature arrays."""
    num = len(entities[f"{entity}_raw_ids"])
    table = {
        "ids": np.arange(num, dtype=np.int32),
        "known": np.asarray(entities[f"{entity}_known"], np.float32),
    }
    prefix = f"{entity}:"
    table.update({k[len(prefix) :]: v for k, v in entities.items() if k.startswith(prefix)})
    return table


def _id_list(value: Any) -> list:
    """Raw IDs as a list: one bare ID (a string or scalar) becomes a one-element list."""
    return [value] if isinstance(value, str) or np.isscalar(value) else list(value)


def _is_sequence(value: Any) -> bool:
    """A list of raw IDs (not one raw ID: strings are sequences too)."""
    return isinstance(value, list | tuple | np.ndarray | pd.Series)


def _next_pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


# ----------------------------------------------------------------------------------------------
# The trained model


class TrainedModel:
    """A trained recommender with its ID maps and feature encoder; raw IDs in and out.

    Built by ``load``. Item columns of score matrices follow ``item_ids`` (the item index order).

    Attributes:
      config: the run's config (a dict).
      workdir: the run directory.
      step: the restored checkpoint step.
      model: the model (``hybridrec.models.Recommender``) with the restored parameters.
      user_ids: (num_users,) raw user IDs; ``user_ids[i]`` is user index ``i``.
      item_ids: (num_items,) raw item IDs; ``item_ids[j]`` is column ``j`` of ``score``.
      user_known / item_known: (num_users,) / (num_items,) bool: the entity occurs in training.
      item_counts: (num_items,) training interactions per item (or None).
      user_names / item_names: display names (title, beer name) or None.
      encoder: the fitted ``FeatureEncoder`` (None when the run has no features).
      unknown_counts: field -> categorical values outside the vocabulary in the metadata of the
        latest cold-start call (``encoder.unknown_counts``); empty before any.
      item_chunk_size: items scored per compiled call (the catalogue is scored in chunks).
      user_batch_size: users scored per compiled call.
    """

    def __init__(
        self,
        *,
        config: dict[str, Any],
        workdir: str,
        step: int,
        graphdef: Any,
        params: Any,
        rest: Any,
        user_map: IdMap,
        item_map: IdMap,
        user_table: dict[str, np.ndarray],
        item_table: dict[str, np.ndarray],
        encoder: FeatureEncoder | None = None,
        item_counts: np.ndarray | None = None,
        user_names: np.ndarray | None = None,
        item_names: np.ndarray | None = None,
        seen: sp.csr_matrix | None = None,
    ):
        self.config = config
        self.workdir = workdir
        self.step = step
        self._graphdef = graphdef
        self._state = (params, rest)
        # A baseline (TrainedBaseline) has no graph: its model is the fitted baseline itself.
        self.model = nnx.merge(graphdef, params, rest) if graphdef is not None else None
        self.user_map = user_map
        self.item_map = item_map
        self._user_table = user_table
        self._item_table = item_table
        self.encoder = encoder
        self.item_counts = item_counts
        self.user_names = user_names
        self.item_names = item_names
        self.unknown_counts: dict[str, int] = {}
        self.item_chunk_size = 65536 if self.factorised else 2048
        self.user_batch_size = 256
        # (num_users, num_items) CSR of the training interactions, for exclude_seen.
        self._seen = seen
        # The run's final metrics (metrics.json), empty for a run that has not finished.
        self.metrics: dict[str, Any] = {}
        metrics_path = os.path.join(workdir, "metrics.json")
        if os.path.isfile(metrics_path):
            with open(metrics_path) as f:
                self.metrics = json.load(f)
        self._fns: dict[str, Any] = {}
        self._vectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._chunk_cache: dict[tuple[str, int], list] = {}

    def __repr__(self) -> str:
        return (
            f"TrainedModel({self.config['model']['name']!r}, step {self.step}, "
            f"{self.num_users} users x {self.num_items} items, workdir={self.workdir!r})"
        )

    # ------------------------------------------------------------------ basics
    @property
    def num_users(self) -> int:
        """Number of users of the training ID space."""
        return len(self.user_map)

    @property
    def num_items(self) -> int:
        """Number of items in the catalogue."""
        return len(self.item_map)

    @property
    def user_ids(self) -> np.ndarray:
        """(num_users,) raw user IDs in index order."""
        return self.user_map.raw_ids

    @property
    def item_ids(self) -> np.ndarray:
        """(num_items,) raw item IDs in index order (the columns of ``score``)."""
        return self.item_map.raw_ids

    @property
    def user_known(self) -> np.ndarray:
        """(num_users,) bool: the user occurs in the training interactions."""
        return self._user_table["known"] > 0

    @property
    def item_known(self) -> np.ndarray:
        """(num_items,) bool: the item occurs in the training interactions."""
        return self._item_table["known"] > 0

    @property
    def factorised(self) -> bool:
        """Whether the score is ``<user_repr, item_repr> + biases`` (mf, two_tower, hybrid)."""
        return bool(getattr(self.model, "factorised", False))

    def user_index(self, user_ids: Any) -> np.ndarray:
        """Raw user ID(s) -> indices. Raises ``KeyError`` naming an unknown ID."""
        return np.asarray(self.user_map.to_index(user_ids))

    def item_index(self, item_ids: Any) -> np.ndarray:
        """Raw item ID(s) -> indices. Raises ``KeyError`` naming an unknown ID."""
        return np.asarray(self.item_map.to_index(item_ids))

    def user_batch(self, user_ids: Any) -> dict[str, np.ndarray]:
        """The entity batch (``ids``, ``known``, features) the model reads for raw user IDs."""
        rows = np.atleast_1d(self.user_index(user_ids))
        return {k: v[rows] for k, v in self._user_table.items()}

    def item_batch(self, item_ids: Any) -> dict[str, np.ndarray]:
        """The entity batch the model reads for raw item IDs."""
        rows = np.atleast_1d(self.item_index(item_ids))
        return {k: v[rows] for k, v in self._item_table.items()}

    def find_items(self, query: str, limit: int = 20) -> pd.DataFrame:
        """Items whose display name contains ``query`` (case-insensitive), exact matches first.

        Args:
          query: a title or part of one, e.g. ``"star wars"`` or ``"Star Wars (1977)"``.
          limit: at most this many rows.

        Returns:
          DataFrame ``item_id``, ``name``, ``count`` (training interactions), best match first:
          exact names, then names that start with the query, then the rest, each by popularity.

        Raises:
          ServingError: the run saved no display names.
        """
        names = self._require_names()
        q = str(query).strip().casefold()
        folded = np.char.lower(names.astype(str))
        contains = np.flatnonzero(np.char.find(folded, q) >= 0)
        counts = self.item_counts if self.item_counts is not None else np.zeros(len(names))
        rank = np.where(
            folded[contains] == q, 0, np.where(np.char.startswith(folded[contains], q), 1, 2)
        )
        order = np.lexsort((-np.asarray(counts)[contains], rank))[:limit]
        rows = contains[order]
        return pd.DataFrame(
            {"item_id": self.item_ids[rows], "name": names[rows], "count": np.asarray(counts)[rows]}
        )

    def item_by_title(self, title: str) -> Any:
        """The raw ID of the one item named ``title`` (exactly, case-insensitive).

        A name shared by several items (two films called "Hamlet") or not found is a
        ``ServingError`` listing the candidates with their IDs, so the caller can pick one.
        """
        names = self._require_names()
        q = str(title).strip().casefold()
        exact = np.flatnonzero(np.char.lower(names.astype(str)) == q)
        if len(exact) == 1:
            return self.item_ids[exact[0]]
        candidates = self.find_items(title, limit=10)
        listed = ", ".join(f"{n!r} (id {i})" for i, n in zip(candidates.item_id, candidates.name))
        if len(exact) > 1:
            raise ServingError(f"{len(exact)} items are named {title!r}: {listed}; pass an ID")
        raise ServingError(
            f"no item is named {title!r}" + (f"; did you mean: {listed}" if listed else "")
        )

    def _require_names(self) -> np.ndarray:
        if self.item_names is None:
            raise ServingError(f"{self.workdir}: the run saved no item names (its data has none)")
        return self.item_names

    def seen_items(self, user: Any) -> np.ndarray:
        """Raw IDs of the items ``user`` interacted with in training (sorted by index)."""
        return self.item_ids[self._seen_rows(user)]

    def _seen_rows(self, user: Any) -> np.ndarray:
        row = int(self.user_index(user))
        seen = self._require_seen()
        return seen.indices[seen.indptr[row] : seen.indptr[row + 1]]

    def _require_seen(self) -> sp.csr_matrix:
        if self._seen is None:
            raise ServingError(
                f"{self.workdir}/entities.npz has no training interactions "
                f"({' / '.join(_TRAIN_KEYS)}), so seen items cannot be excluded; pass "
                "exclude_seen=False, or retrain with a hybridrec that saves them"
            )
        return self._seen

    # ------------------------------------------------------------------ compiled pieces
    def _fn(self, method: str):
        """A jitted ``model.<method>(*batches)`` over the restored state (one per method)."""
        fn = self._fns.get(method)
        if fn is None:
            graphdef = self._graphdef

            def call(state, *batches):
                return getattr(nnx.merge(graphdef, *state), method)(*batches)

            fn = self._fns[method] = jax.jit(call)
        return fn

    def _score_batches(
        self, users: Mapping[str, np.ndarray], items: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """``model.score_all`` of entity batches, in padded chunks (a few compiled shapes).

        Args:
          users: user entity batch with leading dim B.
          items: item entity batch with leading dim M.

        Returns:
          (B, M) float32 scores.
        """
        num_u = len(users["ids"])
        num_i = len(items["ids"])
        fn = self._fn("score_all")
        # Chunks of a fixed size (the last one padded with copies of its first row, dropped
        # afterwards) so that one compiled program serves every chunk; small requests use
        # power-of-two shapes.
        u_size = min(_next_pow2(num_u), self.user_batch_size)
        i_size = min(_next_pow2(num_i), self.item_chunk_size)
        out = np.empty((num_u, num_i), np.float32)
        if items is self._item_table:
            # The catalogue's device chunks are built once, not on every request.
            key = ("catalogue", i_size)
            if key not in self._chunk_cache:
                self._chunk_cache.clear()
                self._chunk_cache[key] = _chunks(items, i_size)
            item_chunks = self._chunk_cache[key]
        else:
            item_chunks = _chunks(items, i_size)
        for u_start in range(0, num_u, u_size):
            u_chunk = _pad_rows(users, u_start, u_size)
            u_stop = min(u_start + u_size, num_u)
            for i_start, i_chunk in item_chunks:
                i_stop = min(i_start + i_size, num_i)
                scores = np.asarray(fn(self._state, u_chunk, i_chunk))  # (u_size, i_size)
                out[u_start:u_stop, i_start:i_stop] = scores[: u_stop - u_start, : i_stop - i_start]
        return out

    def _repr(self, entity: str, batch: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(vectors (n, D), biases (n,)) of an entity batch; factorised models only."""
        self._require_factorised()
        n = len(batch["ids"])
        padded = _pad_rows(batch, 0, _next_pow2(n))
        vectors, biases = self._fn(f"encode_{entity}s")(self._state, padded)
        return np.asarray(vectors)[:n], np.asarray(biases)[:n]

    def _require_factorised(self) -> None:
        if not self.factorised:
            raise ServingError(
                f"model {self.config['model']['name']!r} is not factorised (its score is not a dot "
                "product of user and item vectors), so it has no learned representations for "
                "similarity search or export; use mf, two_tower or hybrid"
            )

    def _all_repr(self, entity: str) -> tuple[np.ndarray, np.ndarray]:
        self._require_factorised()
        if entity not in self._vectors:
            table = self._user_table if entity == "user" else self._item_table
            self._vectors[entity] = self._repr(entity, table)
        return self._vectors[entity]

    # ------------------------------------------------------------------ scoring
    def score(self, user_ids: Any) -> np.ndarray:
        """Scores of users against the whole catalogue.

        Args:
          user_ids: a raw user ID or a sequence of B of them.

        Returns:
          (B, num_items) float32; column ``j`` is item ``item_ids[j]`` (B = 1 for one ID).

        Raises:
          KeyError: an unknown user ID.
        """
        return self._score_batches(self.user_batch(user_ids), self._item_table)

    def recommend(self, user: Any, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """The top ``k`` items for one user.

        Args:
          user: a raw user ID.
          k: how many items.
          exclude_seen: drop the items the user interacted with in training.

        Returns:
          DataFrame of up to ``k`` rows, best first: ``item_id`` (raw), ``score``, and ``name``
          when the run saved display names.

        Raises:
          KeyError: unknown user. ServingError: ``exclude_seen`` without saved training data.
        """
        scores = self.score([user])[0]  # (num_items,)
        if exclude_seen:
            scores[self._seen_rows(user)] = -np.inf
        return self._top_items(scores, k)

    def _top_items(self, scores: np.ndarray, k: int, column: str = "score") -> pd.DataFrame:
        """Rows of the ``k`` best finite scores, best first, ties broken by item index."""
        candidates = np.flatnonzero(np.isfinite(scores))
        top = _top_k(scores, candidates, k)
        return self._frame("item", top, {column: scores[top]})

    def _frame(self, entity: str, rows: np.ndarray, values: dict[str, np.ndarray]) -> pd.DataFrame:
        ids = self.item_ids if entity == "item" else self.user_ids
        names = self.item_names if entity == "item" else self.user_names
        data = {f"{entity}_id": ids[rows], **values}
        if names is not None:
            data["name"] = names[rows]
        return pd.DataFrame(data)

    # ------------------------------------------------------------------ similarity
    def item_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Learned item representations and biases (factorised models).

        Returns:
          ``(vectors (num_items, D), biases (num_items,))`` in item index order; an item unseen
          in training is represented by its metadata towers alone (``known=0``).
        """
        return self._all_repr("item")

    def user_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Learned user representations and biases: ``((num_users, D), (num_users,))``."""
        return self._all_repr("user")

    def similar_items(self, item: Any, k: int = 10) -> pd.DataFrame:
        """The ``k`` items most similar to ``item`` by cosine of learned item vectors.

        Args:
          item: a raw item ID (itself is excluded from the result).
          k: how many neighbours.

        Returns:
          DataFrame, most similar first: ``item_id``, ``similarity`` (cosine), ``name`` if any.

        Raises:
          KeyError: unknown item. ServingError: the model is not factorised.
        """
        row = int(self.item_index(item))
        vectors, _ = self.item_vectors()
        sims = _cosine(vectors[row], vectors)
        sims[row] = -np.inf
        return self._top_items(sims, k, column="similarity")

    def similar_users(self, user: Any, k: int = 10) -> pd.DataFrame:
        """The ``k`` users most similar to ``user`` by cosine of learned user vectors.

        Returns:
          DataFrame, most similar first: ``user_id``, ``similarity``, ``name`` if any.
        """
        row = int(self.user_index(user))
        vectors, _ = self.user_vectors()
        sims = _cosine(vectors[row], vectors)
        sims[row] = -np.inf
        top = _top_k(sims, np.flatnonzero(np.isfinite(sims)), k)
        return self._frame("user", top, {"similarity": sims[top]})

    # ------------------------------------------------------------------ cold start
    def encode_new(
        self,
        entity: str,
        metadata: Mapping[str, Any] | pd.DataFrame | Sequence[Mapping],
        items: Sequence[Any] | None = None,
    ) -> dict[str, np.ndarray]:
        """A cold entity batch from raw metadata: encoded features, ``known=0``.

        The saved encoder encodes the metadata exactly as the training entities were;
        ``known=0`` removes ID embeddings and ID biases, so only metadata towers contribute.

        Args:
          entity: "item" or "user".
          metadata: one entity as a dict of raw column values (every schema column of that
            entity; ``None`` / ``[]`` / ``""`` for a missing value), or several as a DataFrame
            or a list of dicts.
          items: for a model with a ``history`` user tower, raw IDs of catalogue items the new
            user interacted with (one user), or one such sequence per user; None: no history.

        Returns:
          Entity batch with leading dim n (1 for a dict). ``unknown_counts`` is updated with the
          categorical values outside the vocabulary, and a warning names them.

        Raises:
          ServingError: the run has no features for ``entity``, or the model reads none.
          hybridrec.data.features.FeatureError: a schema column missing from ``metadata``.
        """
        if entity not in ("item", "user"):
            raise ServingError(f"entity must be 'item' or 'user', got {entity!r}")
        reads = self.model.item_reads if entity == "item" else self.model.user_reads
        feature_reads = [r for r in reads if r not in ("ids", "known")]
        if self.encoder is None or not self.encoder.schema.for_entity(entity):
            raise ServingError(
                f"this run has no {entity} features (config.features), so a new {entity} cannot "
                "be encoded from metadata"
            )
        if not feature_reads:
            raise ServingError(
                f"model {self.config['model']['name']!r} reads no {entity} features (only IDs): a "
                f"new {entity} would get the same score as any other; add {entity} metadata towers"
            )
        if isinstance(metadata, Mapping):
            metadata = [dict(metadata)]
        features = self.encoder.transform(entity, metadata)
        self.unknown_counts = dict(self.encoder.unknown_counts)
        unknown = {k: v for k, v in self.unknown_counts.items() if v}
        if unknown:
            warnings.warn(
                f"new {entity} metadata has values outside the training vocabulary (encoded as "
                f"'unknown'): {unknown}",
                stacklevel=3,
            )
        n = features.num_entities
        batch = {k: np.asarray(v) for k, v in features.arrays.items()}
        if entity == "user" and history.IDS in self._user_table:
            batch.update(self._history_rows(items, n))
        elif items is not None:
            raise ServingError(
                "items= is for new users of a model with a history user tower; "
                f"this is a new {entity}" + ("" if entity == "item" else " and the model has none")
            )
        # Any valid index: with known=0 the ID rows are multiplied by zero.
        batch["ids"] = np.zeros(n, np.int32)
        batch["known"] = np.zeros(n, np.float32)

        # A field missing here but present for every training entity, in a model trained without
        # field dropout on it, is scored through "missing" weights that training never updated
        # (issue 11): say so rather than answer out of distribution in silence.
        from hybridrec.models.base import ModelError
        from hybridrec.models.hybrid import field_present

        side = getattr(self.model, "users" if entity == "user" else "items", None)
        dropped = dict(getattr(side, "field_rates", ()))
        table = self._user_table if entity == "user" else self._item_table
        trained = np.asarray(table["known"]) > 0
        untrained = []
        for field in dict.fromkeys(r.split("/")[0] for r in feature_reads):
            if field == history.FIELD or field in dropped:
                continue
            try:
                missing = np.asarray(field_present(batch, field)) == 0  # (n,)
                seen = np.asarray(field_present(table, field))[trained]  # (num trained,)
            except ModelError:  # not a field with a missing encoding
                continue
            if missing.any() and seen.size and seen.min() > 0:
                untrained.append(field)
        if untrained:
            warnings.warn(
                f"new {entity}: field(s) {untrained} missing, but every training {entity} had "
                "them and the model was not trained with field dropout on them: their missing-"
                "value weights are untrained and these scores may be out of distribution; "
                f"train with model.{'user_' if entity == 'user' else ''}field_dropout (e.g. 0.1)",
                stacklevel=3,
            )
        return batch

    def _history_rows(self, items: Sequence[Any] | None, n: int) -> dict[str, np.ndarray]:
        """History rows for ``n`` new users (see ``encode_new``): ``history/ids``,
        ``history/weights`` and ``history/known`` = 1 (a history without an ID row)."""
        width = self._user_table[history.IDS].shape[1]
        if items is None:
            per_user: list = [[]] * n
        else:
            items = _id_list(items)
            nested = len(items) > 0 and _is_sequence(items[0])
            per_user = [items] if n == 1 and not nested else items
        if len(per_user) != n:
            raise ServingError(f"items= has {len(per_user)} histories for {n} new users")
        ids = np.zeros((n, width), np.int32)
        for row, raw in enumerate(per_user):
            raw = _id_list(raw)
            # Distinct items in the order given; beyond the trained width, the first ones.
            index = pd.unique(np.asarray(self.item_map.to_index(raw))) if raw else []
            ids[row, : min(len(index), width)] = np.asarray(index, np.int32)[:width] + 1
        return {
            history.IDS: ids,
            history.WEIGHTS: (ids > 0).astype(np.float32),
            history.KNOWN: np.ones(n, np.float32),
        }

    def score_new_item(self, metadata: Mapping[str, Any], user_ids: Any = None) -> np.ndarray:
        """Scores a new item, given only its raw metadata, for users (no retraining).

        Args:
          metadata: the item's raw metadata, e.g. ``{"title": ..., "genres": [...], ...}``
            (every item column of the schema; see ``encode_new``).
          user_ids: raw user IDs (B,); default every user in index order.

        Returns:
          (B,) float32 scores.
        """
        items = self.encode_new("item", metadata)
        users = self._user_table if user_ids is None else self.user_batch(user_ids)
        return self._score_batches(users, items)[:, 0]

    def recommend_for_new_user(
        self, metadata: Mapping[str, Any], k: int = 10, items: Sequence[Any] | None = None
    ) -> pd.DataFrame:
        """The top ``k`` items for a new user described only by raw metadata.

        Args:
          metadata: the user's raw metadata, e.g. ``{"age": 31.0, "gender": "F", ...}``.
          k: how many items.
          items: raw IDs of items the user interacted with, for a model with a ``history``
            user tower (they are then not recommended again); None: none.

        Returns:
          DataFrame as ``recommend``: ``item_id``, ``score``, ``name`` if any.
        """
        users = self.encode_new("user", metadata, items=items)
        scores = self._score_batches(users, self._item_table)[0]
        if items is not None:
            named = _id_list(items)
            scores = scores.copy()
            scores[np.asarray(self.item_map.to_index(named), np.int64)] = -np.inf
        return self._top_items(scores, k)

    def similar_items_to_new(self, metadata: Mapping[str, Any], k: int = 10) -> pd.DataFrame:
        """Catalogue items most similar (cosine of item vectors) to a new item's metadata.

        Returns:
          DataFrame as ``similar_items``: ``item_id``, ``similarity``, ``name`` if any.
        """
        vector, _ = self._repr("item", self.encode_new("item", metadata))
        vectors, _ = self.item_vectors()
        return self._top_items(_cosine(vector[0], vectors), k, column="similarity")

    # ------------------------------------------------------------------ export
    def export(self, path: str | os.PathLike, format: str = "npz") -> list[str]:
        """Writes item and user vectors and biases with raw IDs, for nearest-neighbour serving.

        A factorised score is ``user_vector . item_vector + user_bias + item_bias``; an ANN index
        over ``[item_vector, item_bias]`` queried with ``[user_vector, 1]`` ranks exactly as the
        model does (the user bias does not change a user's ranking).

        Args:
          path: for ``"npz"`` a file (``.npz`` appended if missing) with arrays ``item_ids``,
            ``item_vectors`` (M, D), ``item_biases`` (M,), ``item_known`` (M,), the same for
            users, and ``item_names`` / ``user_names`` when saved; for ``"parquet"`` a
            directory with ``items.parquet`` and ``users.parquet``, columns ``id``, ``bias``,
            ``known``, ``vector`` (list of D floats) and ``name`` when saved.
          format: ``"npz"`` or ``"parquet"``.

        Returns:
          The paths written.
        """
        if format not in _EXPORT_FORMATS:
            raise ServingError(f"export format must be one of {_EXPORT_FORMATS}, got {format!r}")
        sides = {}
        for entity in ("item", "user"):
            vectors, biases = self._all_repr(entity)
            sides[entity] = dict(
                ids=self.item_ids if entity == "item" else self.user_ids,
                vectors=vectors.astype(np.float32),
                biases=biases.astype(np.float32),
                known=self.item_known if entity == "item" else self.user_known,
                names=self.item_names if entity == "item" else self.user_names,
            )
        path = os.fspath(path)
        if format == "npz":
            if not path.endswith(".npz"):
                path += ".npz"
            arrays = {}
            for entity, side in sides.items():
                for key, value in side.items():
                    if value is not None:
                        arrays[f"{entity}_{key}"] = np.asarray(value)
            pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, **arrays)
            return [path]
        os.makedirs(path, exist_ok=True)
        written = []
        for entity, side in sides.items():
            frame = pd.DataFrame(
                {
                    "id": side["ids"],
                    "bias": side["biases"],
                    "known": side["known"],
                    "vector": list(side["vectors"]),
                }
            )
            if side["names"] is not None:
                frame["name"] = side["names"]
            out = os.path.join(path, f"{entity}s.parquet")
            frame.to_parquet(out, index=False)
            written.append(out)
        return written


class TrainedBaseline(TrainedModel):
    """A fitted baseline (popularity, item-kNN, EASE) loaded from its run: raw IDs in and out.

    ``score`` and ``recommend`` work as for a trained model; what needs learned vectors or
    metadata towers (similar items, export, new users and items) raises ``ServingError``.
    """

    def __init__(self, *, baseline, **common):
        super().__init__(step=0, graphdef=None, params=None, rest=None, **common)
        self.model = baseline

    def __repr__(self) -> str:
        return (
            f"TrainedBaseline({self.config['model']['name']!r}, {self.num_users} users x "
            f"{self.num_items} items, workdir={self.workdir!r})"
        )

    @property
    def factorised(self) -> bool:
        return False

    def score(self, user_ids: Any) -> np.ndarray:
        rows = np.atleast_1d(self.user_index(user_ids)).astype(np.int64)
        return np.asarray(self.model.score(rows), np.float32)

    def _no_towers(self, *args, **kwargs):
        raise ServingError(
            f"{self.config['model']['name']!r} is a baseline fitted on interactions only: it "
            "cannot score new users or items from metadata (train a hybrid model for that)"
        )

    encode_new = score_new_item = recommend_for_new_user = similar_items_to_new = _no_towers


def read_export(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads what ``TrainedModel.export`` wrote, in the npz layout, from either format.

    Returns:
      ``{"item_ids", "item_vectors" (M, D), "item_biases", "item_known", "user_ids", ...}``
      (plus ``*_names`` when exported).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        out = {}
        for entity in ("item", "user"):
            frame = pd.read_parquet(os.path.join(path, f"{entity}s.parquet"))
            ids = frame["id"].to_numpy()
            # Text IDs come back from parquet as objects; the npz layout holds fixed-width str.
            out[f"{entity}_ids"] = ids.astype(str) if ids.dtype == object else ids
            out[f"{entity}_vectors"] = np.stack(frame["vector"].to_numpy()).astype(np.float32)
            out[f"{entity}_biases"] = frame["bias"].to_numpy(np.float32)
            out[f"{entity}_known"] = frame["known"].to_numpy(bool)
            if "name" in frame:
                out[f"{entity}_names"] = frame["name"].to_numpy(str)
        return out
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


# ----------------------------------------------------------------------------------------------
# Helpers


def _pad_rows(batch: Mapping[str, np.ndarray], start: int, size: int) -> dict[str, jax.Array]:
    """Rows ``start : start + size`` of every array, padded with copies of row ``start``."""
    n = len(batch["ids"])
    rows = np.arange(start, start + size)
    rows = np.where(rows < n, rows, start)
    return {k: jnp.asarray(np.asarray(v)[rows]) for k, v in batch.items()}


def _chunks(batch: Mapping[str, np.ndarray], size: int) -> list[tuple[int, dict[str, jax.Array]]]:
    """``(start, padded device chunk)`` pairs covering the batch in chunks of ``size`` rows."""
    return [(start, _pad_rows(batch, start, size)) for start in range(0, len(batch["ids"]), size)]


def _cosine(query: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """(n,) cosine similarity of a (D,) query to (n, D) vectors (0 for zero vectors)."""
    norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(query)
    return (vectors @ query / np.maximum(norms, _EPS)).astype(np.float64)


def _top_k(values: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest ``values`` among ``candidates``, largest first.

    Ties among the kept entities are broken by the smaller index, so results are reproducible.
    """
    k = int(k)
    if k < 1:
        raise ServingError(f"k must be a positive integer, got {k!r}")
    if k < len(candidates):
        # argpartition keeps this O(n) for a big catalogue; an exact tie at the k-th value may
        # keep any of the tied entities.
        candidates = candidates[np.argpartition(-values[candidates], k - 1)[:k]]
    order = np.lexsort((candidates, -values[candidates]))
    return candidates[order]
