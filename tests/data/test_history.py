"""hybridrec.data.history: users' training items as a bag field, and leave-one-out masking."""

import jax.numpy as jnp
import numpy as np
import pytest

from hybridrec import Interactions
from hybridrec.data import history


def _interactions(seed=0, num_users=9, num_items=15, n=70, timestamps=False) -> Interactions:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, num_users - 1, n)  # the last user has no interaction
    items = rng.integers(0, num_items, n)
    stamps = rng.permutation(n).astype(np.int64) if timestamps else None
    return Interactions.from_arrays(
        users.astype(np.int32),
        items.astype(np.int32),
        timestamps=stamps,
        num_users=num_users,
        num_items=num_items,
    )


def test_history_rows_are_each_users_distinct_items():
    x = _interactions()
    arrays = history.history_arrays(x)
    ids, weights = arrays[history.IDS], arrays[history.WEIGHTS]
    expected = [sorted({int(i) for u, i in zip(x.user_ids, x.item_ids) if u == user})
                for user in range(x.num_users)]  # fmt: skip
    assert ids.shape == (x.num_users, max(len(e) for e in expected)) and ids.dtype == np.int32
    for user, items in enumerate(expected):
        row = ids[user]
        # Items in index order as index + 1, then padding (0, weight 0).
        np.testing.assert_array_equal(row[: len(items)], np.asarray(items) + 1)
        assert (row[len(items) :] == 0).all()
        np.testing.assert_array_equal(weights[user], (row > 0).astype(np.float32))
    assert (ids[-1] == 0).all(), "a user without training items has an empty history"


def test_a_cap_keeps_the_most_recent_distinct_items():
    x = _interactions(timestamps=True)
    ids = history.history_arrays(x, max_items=3)[history.IDS]
    assert ids.shape == (x.num_users, 3)
    for user in range(x.num_users):
        rows = np.flatnonzero(x.user_ids == user)
        newest: list[int] = []
        for r in rows[np.argsort(-x.timestamps[rows], kind="stable")]:
            if int(x.item_ids[r]) not in newest:
                newest.append(int(x.item_ids[r]))
        newest = newest[:3]
        np.testing.assert_array_equal(ids[user][: len(newest)], np.asarray(newest, int) + 1)
        assert (ids[user][len(newest) :] == 0).all()


def test_a_cap_without_timestamps_keeps_a_seeded_subset():
    x = _interactions()
    full = history.history_arrays(x)[history.IDS]
    capped = history.history_arrays(x, max_items=2, seed=3)[history.IDS]
    for user in range(x.num_users):
        kept = set(capped[user][capped[user] > 0].tolist())
        assert kept <= set(full[user].tolist()) and len(kept) == min(2, (full[user] > 0).sum())
    again = history.history_arrays(x, max_items=2, seed=3)[history.IDS]
    np.testing.assert_array_equal(capped, again)
    with pytest.raises(ValueError, match="max_items must be >= 1"):
        history.history_arrays(x, max_items=0)


def test_mask_target_removes_only_the_positive_from_its_users_history():
    ids = jnp.array([[3, 5, 0], [5, 2, 1], [4, 0, 0]], jnp.int32)
    users = {history.IDS: ids, history.WEIGHTS: (ids > 0).astype(jnp.float32), "ids": jnp.arange(3)}
    masked = history.mask_target(users, jnp.array([4, 9, 3]))  # items 4, 9, 3 -> ids 5, 10, 4
    np.testing.assert_array_equal(
        masked[history.WEIGHTS], [[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    )
    assert masked["ids"] is users["ids"] and users[history.WEIGHTS][0, 1] == 1.0  # not in place
    # A history field of another name.
    renamed = {"h/ids": ids, "h/weights": users[history.WEIGHTS]}
    masked = history.mask_target(renamed, jnp.array([4, 9, 3]), field="h")
    np.testing.assert_array_equal(masked["h/weights"][0], [1.0, 0.0, 0.0])


def test_field_info_sizes_the_table_for_every_item_plus_padding():
    info = history.field_info(num_items=15, width=4)
    assert (info.name, info.entity, info.vocab_size, info.width) == ("history", "user", 16, 4)


def test_a_capped_random_subset_does_not_favour_repeated_pairs():
    # One user: item 0 nine times, items 1..9 once each. Keeping one item, each of the 10
    # distinct items must be equally likely, whatever its number of rows.
    items = np.array([0] * 9 + list(range(1, 10)), np.int32)
    x = Interactions.from_arrays(np.zeros(len(items), np.int32), items, num_items=10)
    kept = [int(history.history_arrays(x, max_items=1, seed=s)[history.IDS][0, 0]) - 1
            for s in range(400)]  # fmt: skip
    counts = np.bincount(kept, minlength=10)
    assert counts.sum() == 400 and counts[0] < 70, counts  # expected 40; repeats gave ~200


# ----------------------------------------------------------------------------- the history kind
def _dataset(timestamps: bool):
    """Raw string user IDs (so rows are found by raw ID), user metadata, a train subset."""
    import pandas as pd

    from hybridrec.data.datasets._base import Dataset
    from hybridrec.data.interactions import IdMap

    x = _interactions(seed=2, timestamps=timestamps)
    frame = pd.DataFrame(
        {
            "user_id": [f"u{u}" for u in x.user_ids],
            "item_id": x.item_ids,
            "timestamp": x.timestamps if timestamps else 0,
        }
    )
    users = IdMap(np.array([f"u{u}" for u in range(x.num_users)], dtype=object), "user")
    full = Interactions.from_dataframe(
        frame,
        user_map=users,
        item_map=IdMap(np.arange(x.num_items), "item"),
        timestamp_col="timestamp" if timestamps else None,
    )
    meta = pd.DataFrame({"job": ["a", "b", "c"] * 3}, index=pd.Index(users.raw_ids))
    dataset = Dataset("toy", full, user_metadata=meta)
    train = full.subset(np.arange(len(full)) % 4 != 0)
    return dataset, train


@pytest.mark.parametrize("timestamps, max_items", [(False, None), (True, 3), (False, 2)])
def test_the_history_kind_gives_the_arrays_of_history_arrays(timestamps, max_items, tmp_path):
    from hybridrec.data.features import FeatureEncoder, FieldSpec

    dataset, train = _dataset(timestamps)
    spec = FieldSpec("history", entity="user", kind="history", max_items=max_items, seed=5)
    # With another user field (metadata) and alone (no metadata needed).
    for schema in ([spec, FieldSpec("job", entity="user")], [spec]):
        enc = FeatureEncoder(schema).fit_dataset(dataset, train)
        users = enc.transform_dataset(dataset)["user"]
        want = history.history_arrays(train, max_items, seed=5)
        np.testing.assert_array_equal(users[history.IDS], want[history.IDS])
        np.testing.assert_array_equal(users[history.WEIGHTS], want[history.WEIGHTS])
        assert users.fields["history"] == history.field_info(
            train.num_items, want[history.IDS].shape[1]
        )
    # The run directory's features/ round-trips, and mask_target works on the encoder's rows.
    enc.save(tmp_path)
    loaded = FeatureEncoder.load(tmp_path).transform_dataset(dataset)["user"]
    np.testing.assert_array_equal(loaded[history.IDS], users[history.IDS])
    masked = history.mask_target(users.gather(np.array([0, 1])), jnp.array([0, 1]))
    assert masked[history.WEIGHTS].shape == (2, users[history.IDS].shape[1])


def test_the_history_kind_for_new_users():
    from hybridrec.data.features import FeatureEncoder, FeatureError, FieldSpec

    dataset, train = _dataset(False)
    enc = FeatureEncoder([FieldSpec("history", entity="user", kind="history")]).fit_dataset(
        dataset, train
    )
    # A new user given as a dict has no raw ID: an empty history, not user 0's.
    new = enc.transform("user", {"job": "a"})
    assert (new[history.IDS] == 0).all() and new.stats["history"]["new_users"] == 1
    # encode_items: distinct items in the order named, truncated to the trained width.
    field = enc.field_encoder("history")
    arrays = field.encode_items([[3, 1, 3], [], list(range(15))])
    width = field.width
    assert arrays[history.IDS].shape == (3, width)
    np.testing.assert_array_equal(arrays[history.IDS][0, :3], [4, 2, 0][: min(3, width)])
    np.testing.assert_array_equal(arrays[history.IDS][2], np.arange(1, width + 1))
    assert arrays["history/lengths"].tolist() == [2, 0, width]
    with pytest.raises(FeatureError, match=r"unknown item ID\(s\) \[99\]"):
        field.encode_items([[1, 99]])
    with pytest.raises(FeatureError, match="fit needs the training interactions"):
        FeatureEncoder([FieldSpec("h", entity="user", kind="history")]).fit(
            user_metadata=dataset.user_metadata
        )
