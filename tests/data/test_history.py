"""hybridrec.data.history: users' training items as a bag field, and leave-one-out masking."""

import jax
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


# ---------------------------------------------------------------------------------------------
# The all-users path: every user's history pooled once a step, minus each row's target.


def _table_and_batch(seed=0):
    """A history table with uneven weights, an empty user, and a user whose only item is a
    target; a batch with repeated users and targets inside and outside the histories."""
    rng = np.random.default_rng(seed)
    num_users, width, num_items = 7, 5, 12
    ids = np.zeros((num_users, width), np.int32)
    for u in range(num_users - 2):
        items = rng.choice(num_items, size=rng.integers(1, width + 1), replace=False)
        ids[u, : len(items)] = items + 1
    ids[num_users - 1, 0] = 4  # one item (index 3); user num_users - 2 has none
    weights = np.where(ids > 0, rng.uniform(0.2, 2.0, ids.shape), 0.0).astype(np.float32)
    user_ids = np.array([0, 0, 1, 2, 3, 4, 5, 6, 6, 1], np.int32)
    item_ids = np.array([ids[0, 0] - 1, 11, ids[1, 1] - 1, 0, ids[3, 0] - 1, 7, 2, 3, 5, 11])
    return ids, weights, user_ids, item_ids.astype(np.int32), num_items


@pytest.mark.parametrize("pooling", ["sqrtn", "mean", "sum"])
def test_all_users_pooling_equals_per_row_pooling_and_its_gradients(pooling):
    from flax import nnx

    from hybridrec.towers.history import HistoryTower

    ids, weights, user_ids, item_ids, num_items = _table_and_batch()
    info = history.field_info(num_items, ids.shape[1])
    tower = HistoryTower(
        field="history", features_info=info, output_dim=6, rngs=nnx.Rngs(0), pooling=pooling
    )
    graphdef, state = nnx.split(tower)
    rows = {
        history.IDS: jnp.asarray(ids[user_ids]),
        history.WEIGHTS: jnp.asarray(weights[user_ids]),
    }
    per_row = history.mask_target(rows, jnp.asarray(item_ids))
    everyone = jax.tree.map(jnp.asarray, history.all_users_arrays(ids, weights))
    all_users = history.target_out_of_all_users(
        rows, everyone, jnp.asarray(user_ids), jnp.asarray(item_ids)
    )
    assert history.IDS not in all_users  # the (B, W) slots are not carried on
    # The brute-force reference: each row's pooled slots, its target left out.
    table = np.asarray(tower.table.get_value())
    expected = np.zeros((len(user_ids), 6))
    for b, (u, i) in enumerate(zip(user_ids, item_ids)):
        keep = (ids[u] > 0) & (ids[u] != i + 1)
        w = weights[u][keep]
        total = (w[:, None] * table[ids[u][keep]]).sum(0)
        norm = {"sum": 1.0, "mean": w.sum(), "sqrtn": np.sqrt((w**2).sum())}[pooling]
        expected[b] = total / norm if norm > 0 else 0.0

    projection = jnp.asarray(np.random.default_rng(1).normal(size=(len(user_ids), 6)))

    def loss(state, batch):
        return jnp.sum(nnx.merge(graphdef, state)(batch) * projection)

    for batch in (per_row, all_users):
        out = np.asarray(nnx.merge(graphdef, state)(batch))
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    grads = [jax.grad(loss)(state, batch) for batch in (per_row, all_users)]
    for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1]), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(jax.tree.leaves(grads[1])[0])).sum() > 0
    # Rows whose history is empty (user 5) or was only the target (user 6 with item 3) pool to
    # zero; user 6 with another target keeps the item.
    np.testing.assert_array_equal(expected[[6, 7]], 0.0)
    assert np.abs(expected[8]).sum() > 0


def test_all_users_arrays_flatten_the_table():
    ids, weights, *_ = _table_and_batch(seed=3)
    flat = history.all_users_arrays(ids, weights)
    rows, cols = np.nonzero(ids)
    np.testing.assert_array_equal(flat[history.ALL_IDS], ids[rows, cols])
    np.testing.assert_array_equal(flat[history.ALL_ROWS], rows)
    np.testing.assert_allclose(flat[history.ALL_WEIGHTS], weights[rows, cols])
    for u in range(ids.shape[0]):
        w = weights[u][ids[u] > 0]
        np.testing.assert_allclose(flat[history.SUM_W][u], w.sum(), rtol=1e-6)
        np.testing.assert_allclose(flat[history.SUM_W2][u], (w**2).sum(), rtol=1e-6)


def test_choose_path():
    ids = np.zeros((10, 8), np.int32)
    ids[:, :3] = 1  # 30 slots
    assert history.choose_path("auto", ids, batch_size=8) == "all_users"  # 30 <= 8 * 8 / 2
    assert history.choose_path(None, ids, batch_size=7) == "batch"  # 30 > 28
    assert history.choose_path("batch", ids, batch_size=8) == "batch"
    assert history.choose_path("all_users", ids, batch_size=1) == "all_users"
    with pytest.raises(ValueError, match="history_path='rows'"):
        history.choose_path("rows", ids, batch_size=8)
