"""History fields: each user's training items, fitted from the training interactions.

SVD++'s implicit-feedback term as a field kind (see ``hybridrec.data.history`` for the model
side and ``hybridrec.towers.history`` for the tower): the field reads no metadata column; ``fit``
takes the training ``Interactions`` and keeps, per training user, the arrays
``hybridrec.data.history.history_arrays`` builds, and ``transform`` looks users up by raw ID
(the metadata index). Output, as ``history_arrays``: ``"{name}/ids"`` (n, W) int32 with item
index + 1 (0 = padding; there is no unknown row), ``"{name}/weights"`` 1.0 per item, plus
``"{name}/lengths"``. A user without training items, a user unknown at fit time and a new
entity given as a dict (no raw ID) get an empty row. ``encode_items`` encodes the items a new
user names (serving)::

    FieldSpec("history", entity="user", kind="history", max_items=200)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hybridrec.data.fields._base import FeatureError, FieldEncoder, FieldExample, py

#: ``DataFrame.attrs`` flag set on frames built from dicts: their index is not raw IDs.
NEW_ENTITIES = "hybridrec.new_entities"


def _raw_ids_array(raw: np.ndarray) -> np.ndarray:
    """Raw IDs as an array ``np.savez`` stores without pickle (ints, else strings)."""
    raw = np.asarray(raw)
    return raw if raw.dtype.kind in "iub" else raw.astype(str)


class Encoder(FieldEncoder):
    """Users' distinct training items as a padded bag.

    Options:
      max_items: keep at most this many items per user (None: all): the most recent with
        timestamps, else a seeded random subset (``hybridrec.data.history.history_arrays``).
      seed: seed of that subset.
    """

    max_columns = 0
    uses_interactions = True

    def __init__(
        self,
        *,
        name: str,
        entity: str,
        columns: tuple[str, ...],
        kind: str,
        max_items: int | None = None,
        seed: int = 0,
    ):
        super().__init__(name=name, entity=entity, columns=columns, kind=kind)
        if entity != "user":
            raise FeatureError(f"{self.spec_where}: a history field is a user field, not {entity}")
        if max_items is not None and int(max_items) < 1:
            raise FeatureError(
                f"{self.spec_where}: max_items must be >= 1 (or None for all), got {max_items}"
            )
        self.max_items = max_items
        self.seed = int(seed)
        self.user_ids = np.zeros(0, np.int64)
        self.item_ids = np.zeros(0, np.int64)
        self.ids = np.zeros((0, 1), np.int32)

    def _maps(self):
        from hybridrec.data.interactions import IdMap

        return IdMap(self.user_ids, name="user"), IdMap(self.item_ids, name="item")

    @property
    def width(self) -> int:
        """W, the slots per user."""
        return int(self.ids.shape[1])

    def fit(self, frame: pd.DataFrame, interactions: Any = None) -> dict[str, Any]:
        """Keeps every user's training items; returns the stats of ``frame``'s users."""
        from hybridrec.data.history import IDS, history_arrays

        if interactions is None:
            raise FeatureError(
                f"history field {self.name!r}: fit needs the training interactions "
                "(FeatureEncoder.fit(..., interactions=train) or fit_dataset(dataset, train))"
            )
        try:
            self.ids = history_arrays(interactions, self.max_items, seed=self.seed)[IDS]
        except ValueError as exc:
            raise FeatureError(f"history field {self.name!r}: {exc}") from None
        self.user_ids = _raw_ids_array(interactions.user_map.raw_ids)
        self.item_ids = _raw_ids_array(interactions.item_map.raw_ids)
        self._user_map, self._item_map = self._maps()
        return self.transform(frame)[1]

    def transform(self, frame: pd.DataFrame) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Each row's training items, by raw user ID (the frame's index)."""
        n = len(frame)
        if frame.attrs.get(NEW_ENTITIES) or n == 0:
            rows = np.full(n, -1, np.int64)
        else:
            rows = self._user_map.to_index(frame.index.to_numpy(), allow_unknown=True)
        ids = np.where(rows[:, None] >= 0, self.ids[np.maximum(rows, 0)], 0).astype(np.int32)
        return self._arrays(ids), {
            "missing": int((ids == 0).all(axis=1).sum()),
            "unknown": 0,  # a new user is not an error: it has no history yet
            "new_users": int((rows < 0).sum()),
            "truncated": 0,
            "mean_length": float((ids > 0).sum(axis=1).mean()) if n else 0.0,
        }

    def _arrays(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        lengths = (ids > 0).sum(axis=1).astype(np.int32)
        return self.bag_arrays(ids, (ids > 0).astype(np.float32), lengths)

    def encode_items(self, per_user: Sequence[Sequence[Any]]) -> dict[str, np.ndarray]:
        """Bag arrays for new users from the raw item IDs each names (distinct, in the order
        given; beyond the trained width, the first ones).

        Args:
          per_user: one sequence of raw item IDs per user.

        Returns:
          ``{"{name}/ids", "{name}/weights", "{name}/lengths"}`` with leading dim ``len(per_user)``.

        Raises:
          FeatureError: an item ID unknown to the training interactions.
        """
        ids = np.zeros((len(per_user), self.width), np.int32)
        for row, raw in enumerate(per_user):
            raw = list(raw)
            if not raw:
                continue
            index = self._item_map.to_index(np.asarray(raw, dtype=object), allow_unknown=True)
            if (index < 0).any():
                bad = [py(r) for r, i in zip(raw, index) if i < 0]
                raise FeatureError(
                    f"history field {self.name!r}: unknown item ID(s) {bad[:5]} for user {row}"
                )
            index = pd.unique(index)[: self.width]
            ids[row, : len(index)] = index + 1
        return self._arrays(ids)

    def info(self):
        """A bag over every item plus padding (no unknown row)."""
        return self.field_info(vocab_size=len(self.item_ids) + 1, width=self.width)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Nothing in JSON; raw user and item IDs and the (num_users, W) item ids (arrays)."""
        return {"width": self.width}, {
            "user_ids": self.user_ids,
            "item_ids": self.item_ids,
            "ids": self.ids,
        }

    def load_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        """Inverse of ``state``."""

        def raw(a):
            a = np.asarray(a)
            return a if a.dtype.kind in "iub" else a.astype(object)

        self.user_ids = raw(arrays["user_ids"])
        self.item_ids = raw(arrays["item_ids"])
        self.ids = np.asarray(arrays["ids"], np.int32)
        self._user_map, self._item_map = self._maps()

    def describe(self, stats: Mapping[str, Any], n: int) -> tuple[str, str, list[str]]:
        """Coverage-table cells."""
        notes = [f"mean {stats['mean_length']:.1f} items"]
        if self.max_items is not None:
            notes.append(f"max_items {self.max_items}")
        return "history (training items)", f"{len(self.item_ids):,} items", notes


def example(rng: np.random.Generator) -> FieldExample:
    """Five users, six items; user "u4" has no training item, "new" is unseen."""
    from hybridrec.data.interactions import IdMap, Interactions

    users = ["u0", "u0", "u0", "u1", "u2", "u2", "u3", "u0"]
    items = [104, 101, 104, 102, 105, 100, 103, 103]  # item index = raw ID - 100
    inter = Interactions.from_dataframe(
        pd.DataFrame({"user_id": users, "item_id": items}),
        user_map=IdMap(np.array(["u0", "u1", "u2", "u3", "u4"], dtype=object), "user"),
        item_map=IdMap(np.arange(100, 106), "item"),
    )
    train = pd.DataFrame(index=pd.Index(["u0", "u1", "u2", "u3", "u4"]))
    test = pd.DataFrame(index=pd.Index(["u2", "new", "u4", "u0", "u1"]))
    return FieldExample(
        options=dict(),
        train=train,
        test=test,
        missing=[1, 2],
        unseen=[1],
        expected={
            0: {"f/ids": [1, 6, 0], "f/weights": [1, 1, 0], "f/lengths": 2},
            3: {"f/ids": [2, 4, 5]},
        },
        entity="user",
        interactions=inter,
    )
