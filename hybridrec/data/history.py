"""Interaction history as a user feature: each user's training items, for the ``history`` tower.

SVD++'s implicit-feedback term (Koren 2008) and asymmetric factorisation (Paterek 2007) represent
a user partly by the items they interacted with: ``u = e_u + |N(u)|^-1/2 sum_{j in N(u)} y_j``,
with ``y`` a second item table. It brings the item-to-item signal that makes EASE and item-kNN
strong on MovieLens into a factorised, metadata-aware model, and it can represent a user who
arrives after training by the items they name (``TrainedModel.recommend_for_new_user(...,
items=...)``), without retraining. Training never shows the model a user with a history but no
ID row (ID dropout removes both), so such a user is scored by towers that learnt alongside the
ID row: an approximation, not a trained case.

``history_arrays`` builds the field from the *training* interactions only, as a bag field in the
layout of ``hybridrec.data.features`` (``"history/ids"``: item index + 1, 0 = padding;
``"history/weights"``: 1.0 per distinct item), read by ``hybridrec.towers.history``. The trainer
builds it when ``config.features.user_history`` is set. The same arrays are also a field kind,
``FieldSpec("history", entity="user", kind="history", max_items=..., seed=...)``
(``hybridrec.data.fields.history``): the ``FeatureEncoder`` fits it on the training interactions
(``fit_dataset(dataset, train)``), saves it with the other fields, and encodes users by raw ID
(plus ``history/lengths``); its ``encode_items`` encodes the items a new user names.

In training, ``mask_target`` removes the positive item from its user's history, so the model
learns to predict an item from the user's *other* items (EASE's zero diagonal, a leave-one-out
history) rather than to recognise the item itself. Without it, on MovieLens 100K the tower
learnt to put training items on top: Collie-compatible MAP@10 (where training items count
against the model) fell from 0.0559 to 0.0505, seed 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np

from hybridrec.data.fields._base import FieldInfo
from hybridrec.data.interactions import Interactions

__all__ = ["FIELD", "IDS", "KNOWN", "WEIGHTS", "field_info", "history_arrays", "mask_target"]

FIELD = "history"
IDS = f"{FIELD}/ids"
WEIGHTS = f"{FIELD}/weights"
# Optional (B,) flag: whether the row's history counts. Absent, the history tower follows
# ``known`` (a history is interaction-derived, like the ID row); serving sets it for a new user
# who names items, who has a history but no ID row.
KNOWN = f"{FIELD}/known"


def history_arrays(
    train: Interactions, max_items: int | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Each user's distinct training items as a padded bag.

    Args:
      train: (N,) training interactions; a repeated (user, item) pair counts once.
      max_items: keep at most this many items per user (None: all): the most recent ones when
        the interactions have timestamps, else a random subset (``seed``). Bounds the width W,
        which every training step gathers for each user of the batch.
      seed: seed of the random subset.

    Returns:
      ``{"history/ids": (num_users, W) int32, "history/weights": (num_users, W) float32}`` with
      ``W = max(1, min(max_items, most items of one user))``; row ``u`` holds the user's items
      as index + 1, then zeros (padding, weight 0). Users without training items get an empty
      row.

    Raises:
      ValueError: ``max_items`` below 1.
    """
    if max_items is not None and int(max_items) < 1:
        raise ValueError(f"history max_items must be >= 1 (or None for all), got {max_items}")
    num_users, num_items = train.num_users, train.num_items
    keys = train.user_ids.astype(np.int64) * max(num_items, 1) + train.item_ids
    if train.timestamps is not None:
        # Newest first, then drop repeated pairs keeping their newest row: a cap keeps each
        # user's most recent distinct items.
        keys = keys[np.lexsort((-np.asarray(train.timestamps, np.float64), train.user_ids))]
        keys = keys[_first_occurrences(keys)]
    else:
        # Distinct pairs first, then a random order within each user: every distinct item is
        # equally likely to survive a cap, however often the pair repeats.
        keys = np.sort(keys)
        keys = keys[_first_occurrences(keys)]
        noise = np.random.default_rng(seed & 0xFFFFFFFF).random(len(keys))
        keys = keys[np.lexsort((noise, keys // max(num_items, 1)))]
    users = (keys // max(num_items, 1)).astype(np.int64)
    items = (keys % max(num_items, 1)).astype(np.int32)
    counts = np.bincount(users, minlength=num_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(users)) - starts[users]  # position within the user's row
    width = int(counts.max()) if len(counts) and counts.max() > 0 else 1
    if max_items is not None:
        width = min(width, int(max_items))
    keep = rank < width
    ids = np.zeros((num_users, max(width, 1)), np.int32)
    ids[users[keep], rank[keep]] = items[keep] + 1
    if train.timestamps is None:
        # A tidy row: items in index order, then padding.
        big = np.iinfo(np.int32).max
        ids = np.sort(np.where(ids == 0, big, ids), axis=1)
        ids[ids == big] = 0
    return {IDS: ids, WEIGHTS: (ids > 0).astype(np.float32)}


def _first_occurrences(keys: np.ndarray) -> np.ndarray:
    """(n,) bool: the first occurrence of each value of ``keys`` (a sort-based mask)."""
    first = np.ones(len(keys), bool)
    order = np.argsort(keys, kind="stable")
    first[order[1:]] = keys[order[1:]] != keys[order[:-1]]
    return first


def field_info(num_items: int, width: int) -> FieldInfo:
    """What the ``history`` tower needs: a table of ``num_items + 1`` rows (0 = padding)."""
    return FieldInfo(
        name=FIELD,
        entity="user",
        kind="history",
        columns=(),
        vocab_size=int(num_items) + 1,
        width=int(width),
    )


def mask_target(
    users: Mapping[str, jnp.ndarray], item_ids: jnp.ndarray, field: str = FIELD
) -> dict:
    """The user batch with each row's target item removed from its history (weight 0).

    Args:
      users: user batch with ``"{field}/ids"`` (B, W) and ``"{field}/weights"`` (B, W).
      item_ids: (B,) int item indices of the positives scored against these users.
      field: the history field's name (``"history"``; another name for a ``history``-kind
        field declared under it).

    Returns:
      A new dict; other keys unchanged.
    """
    users = dict(users)
    ids, weights = f"{field}/ids", f"{field}/weights"
    keep = users[ids] != (item_ids[:, None] + 1)
    users[weights] = users[weights] * keep
    return users
