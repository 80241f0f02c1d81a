"""Tests for hybridrec.data.splits: partitions, protocols, Collie reproduction and bad input."""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridrec import Interactions
from hybridrec.data.splits import (
    SPLITS,
    Split,
    SplitError,
    cold_item_split,
    cold_user_split,
    make_split,
    random_split,
    split_from_column,
    stratified_split,
    temporal_split,
    time_cutoff_split,
)

MOVIELENS = Path("/tmp/rb/x/recbole/dataset_example/ml-100k/ml-100k.inter")


def _data(num_users=30, num_items=25, n=400, seed=0, duplicates=False) -> Interactions:
    """Random interactions; ``weights`` holds the row number so tests can follow rows."""
    rng = np.random.default_rng(seed)
    keys = rng.choice(num_users * num_items, size=n, replace=duplicates)
    users, items = keys // num_items, keys % num_items
    frame = pd.DataFrame(
        {
            "user": np.array([f"u{u:03d}" for u in users], dtype=object),
            "item": items * 10,
            "w": np.arange(n, dtype=np.float64),
            "t": rng.integers(0, 50, n),
        }
    )
    return Interactions.from_dataframe(
        frame, user_col="user", item_col="item", weight_col="w", timestamp_col="t"
    )


def _rows(x: Interactions | None) -> np.ndarray:
    return np.array([], np.int64) if x is None else x.weights.astype(np.int64)


def _pair_keys(x: Interactions) -> set:
    return set(zip(x.user_ids.tolist(), x.item_ids.tolist()))


def _assert_partition(data: Interactions, split: Split) -> None:
    parts = [split.train, split.val, split.test]
    for part in parts:
        if part is not None:
            assert part.user_map is data.user_map and part.item_map is data.item_map
            rows = _rows(part)
            assert np.all(np.diff(rows) > 0), "each part keeps the input's row order"
    all_rows = np.sort(np.concatenate([_rows(p) for p in parts]))
    np.testing.assert_array_equal(all_rows, np.arange(len(data)))


ALL_SPLITS = {
    "random": lambda x: random_split(x, test_p=0.2, val_p=0.1, seed=3),
    "stratified": lambda x: stratified_split(x, test_p=0.2, val_p=0.1, seed=3, force_split=True),
    "collie": lambda x: stratified_split(
        x, test_p=0.2, val_p=0.1, seed=3, method="collie", force_split=True
    ),
    "temporal": lambda x: temporal_split(x, n_test=2, n_val=1),
    "time_cutoff": lambda x: time_cutoff_split(x, test_start=40, val_start=30),
    "cold_items": lambda x: cold_item_split(x, test_p=0.2, val_p=0.1, seed=3),
    "cold_users": lambda x: cold_user_split(x, test_p=0.2, val_p=0.1, seed=3),
    "column": lambda x: split_from_column(
        x, np.array(["train", "val", "test"])[np.arange(len(x)) % 3]
    ),
}


@pytest.mark.parametrize("name", sorted(ALL_SPLITS))
def test_every_split_partitions_rows_in_the_same_id_space(name):
    data = _data()
    split = ALL_SPLITS[name](data)
    assert isinstance(split, Split) and split.val is not None and len(split) == 3
    assert len(split.train) > 0 and len(split.test) > 0
    _assert_partition(data, split)
    train, val, test = split  # tuple unpacking
    assert train is split.train and val is split.val and test is split.test


@pytest.mark.parametrize("name", ["random", "stratified", "collie", "cold_items", "cold_users"])
def test_seeded_splits_are_deterministic_and_depend_on_the_seed(name):
    data = _data()
    fn = {
        "random": random_split,
        "stratified": stratified_split,
        "collie": lambda x, seed: stratified_split(x, seed=seed, method="collie"),
        "cold_items": cold_item_split,
        "cold_users": cold_user_split,
    }[name]
    kwargs = {} if name == "collie" else {"test_p": 0.2}
    a, b, c = (fn(data, seed=s, **kwargs) for s in (5, 5, 6))
    np.testing.assert_array_equal(_rows(a.test), _rows(b.test))
    assert not np.array_equal(_rows(a.test), _rows(c.test))


def test_random_split_uses_collie_cutoffs_and_keeps_duplicate_pairs_together():
    data = _data(n=500, duplicates=True)
    num_pairs = len(_pair_keys(data))
    assert num_pairs < len(data)  # the fixture does repeat pairs
    split = random_split(data, test_p=0.2, val_p=0.1, seed=1)
    sizes = [len(_pair_keys(p)) for p in split]
    assert sizes[0] == int(0.7 * num_pairs)
    assert sizes[0] + sizes[1] == int(0.8 * num_pairs)
    assert sum(sizes) == num_pairs  # no pair is in two parts
    assert random_split(data, test_p=0.2).val is None


def test_stratified_counts_follow_sklearn_ceil_rounding():
    # Users with 2, 3, 10, 11 and 20 interactions, test_p = 0.1: ceil gives 1, 1, 1, 2, 2.
    counts = [2, 3, 10, 11, 20]
    users = np.repeat(np.arange(5), counts)
    items = np.concatenate([np.arange(c) for c in counts])
    data = Interactions.from_arrays(users, items)
    for method in ("fast", "collie"):
        split = stratified_split(data, test_p=0.1, seed=42, method=method)
        np.testing.assert_array_equal(split.test.user_counts(), [1, 1, 1, 2, 2])
        np.testing.assert_array_equal(split.train.user_counts(), [1, 2, 9, 9, 18])


@pytest.mark.parametrize("method", ["fast", "collie"])
def test_stratified_with_validation_splits_twice_like_collie(method):
    data = _data(n=500)
    counts = data.user_counts()
    split = stratified_split(data, test_p=0.2, val_p=0.2, seed=7, method=method, force_split=True)
    _assert_partition(data, split)
    n_test = np.ceil(0.2 * counts).astype(int)
    ok = counts - n_test >= 1
    np.testing.assert_array_equal(split.test.user_counts(), np.where(ok, n_test, 0))
    left = counts - split.test.user_counts()
    n_val = np.ceil((0.2 / (1 - 0.2)) * left).astype(int)
    ok_val = left - n_val >= 1
    np.testing.assert_array_equal(split.val.user_counts(), np.where(ok_val, n_val, 0))


def _collie_reference(data: Interactions, test_p: float, seed: int) -> set:
    """Collie's per-user split re-derived from how sklearn draws it (not by calling sklearn).

    sklearn's StratifiedShuffleSplit with one class takes ``RandomState(seed).permutation(n)`` and
    puts the elements after the first ``n - ceil(test_p * n)`` in test; Collie seeds user ``u``
    with ``seed + u`` and orders a user's interactions as the rows it was given.
    """
    test = set()
    for user in np.unique(data.user_ids):
        rows = np.flatnonzero(data.user_ids == user)
        n = len(rows)
        n_train = n - int(np.ceil(test_p * n))
        perm = np.random.RandomState(seed + int(user)).permutation(n)
        for row in rows[perm[n_train:]]:
            test.add((int(data.user_ids[row]), int(data.item_ids[row])))
    return test


def test_collie_method_reproduces_sklearn_per_user_rng():
    data = _data(n=600, seed=4)
    assert data.user_counts().min() >= 2
    split = stratified_split(data, test_p=0.25, seed=42, method="collie")
    assert _pair_keys(split.test) == _collie_reference(data, 0.25, 42)
    # The validation stage is the same procedure on the training part, with the same seed.
    split3 = stratified_split(
        data, test_p=0.25, val_p=0.15, seed=42, method="collie", force_split=True
    )
    assert _pair_keys(split3.test) == _pair_keys(split.test)
    rest = data.subset(np.isin(data.weights, split.train.weights))
    val_reference = _collie_reference(rest.filter_min_count(min_user_count=2), 0.15 / 0.75, 42)
    assert _pair_keys(split3.val) == val_reference


def test_collie_order_is_row_order_within_user():
    data = _data(n=300, seed=2)
    reversed_rows = data.subset(np.arange(len(data))[::-1])
    a = stratified_split(data, test_p=0.3, seed=0, method="collie")
    b = stratified_split(reversed_rows, test_p=0.3, seed=0, method="collie")
    assert _pair_keys(b.test) == _collie_reference(reversed_rows, 0.3, 0)
    assert _pair_keys(a.test) != _pair_keys(b.test)
    np.testing.assert_array_equal(a.test.user_counts(), b.test.user_counts())


@pytest.mark.skipif(not MOVIELENS.exists(), reason="MovieLens 100K copy not present")
def test_collie_movielens_protocol_counts():
    df = pd.read_csv(MOVIELENS, sep="\t")
    data = Interactions.from_dataframe(
        df,
        user_col="user_id:token",
        item_col="item_id:token",
        rating_col="rating:float",
        timestamp_col="timestamp:float",
    ).to_implicit(4)
    split = stratified_split(data, test_p=0.1, seed=42, method="collie")
    assert (len(split.train), len(split.test)) == (49_426, 5_949)


def test_stratified_single_interaction_users_error_or_go_to_train():
    data = Interactions.from_dataframe(
        pd.DataFrame(
            {"user_id": ["a", "a", "a", "lonely", "b", "b"], "item_id": [1, 2, 3, 1, 1, 2]}
        )
    )
    for method in ("fast", "collie"):
        with pytest.raises(SplitError, match="'lonely'"):
            stratified_split(data, test_p=0.3, method=method)
        split = stratified_split(data, test_p=0.3, method=method, force_split=True)
        lonely = data.user_map.to_index("lonely")
        assert lonely in split.train.user_ids and lonely not in split.test.user_ids
        np.testing.assert_array_equal(split.test.user_counts(), [1, 1, 0])


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(1, 12), min_size=1, max_size=12),
    test_p=st.floats(0.05, 0.6),
    seed=st.integers(0, 1000),
)
def test_stratified_fast_invariants(counts, test_p, seed):
    users = np.repeat(np.arange(len(counts)), counts)
    items = np.concatenate([np.arange(c) for c in counts])
    data = Interactions.from_arrays(users, items, num_items=12)
    split = stratified_split(data, test_p=test_p, seed=seed, force_split=True)
    n = np.asarray(counts)
    n_test = np.ceil(test_p * n).astype(int)
    expected_test = np.where(n - n_test >= 1, n_test, 0)
    np.testing.assert_array_equal(split.test.user_counts(), expected_test)
    assert not (_pair_keys(split.train) & _pair_keys(split.test))
    assert len(split.train) + len(split.test) == len(data)


def test_temporal_split_hand_example_with_ties_and_short_users():
    frame = pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "a", "b", "b", "c"],
            "item_id": [1, 2, 3, 4, 1, 2, 1],
            "t": [5, 1, 3, 5, 9, 8, 1],
        }
    )
    data = Interactions.from_dataframe(frame, timestamp_col="t")
    split = temporal_split(data, n_test=1, n_val=1)
    # a: rows 0 and 3 tie at t=5; the later row (3) is the last. b has only 2 rows: all train.
    test_items = sorted(zip(split.test.user_ids.tolist(), split.test.item_ids.tolist()))
    val_items = sorted(zip(split.val.user_ids.tolist(), split.val.item_ids.tolist()))
    assert test_items == [(0, 3)] and val_items == [(0, 0)]
    assert len(split.train) == 5
    assert temporal_split(data, n_test=1).val is None


def test_temporal_split_matches_brute_force():
    data = _data(n=500, seed=9)
    split = temporal_split(data, n_test=2, n_val=1)
    test, val = set(), set()
    for user in range(data.num_users):
        rows = np.flatnonzero(data.user_ids == user)
        if len(rows) <= 3:
            continue
        latest = sorted(rows, key=lambda r: (data.timestamps[r], r))
        test.update(latest[-2:])
        val.add(latest[-3])
    assert set(_rows(split.test)) == test and set(_rows(split.val)) == val


def test_time_cutoff_split_with_numbers_and_datetimes():
    data = _data()
    split = time_cutoff_split(data, test_start=40, val_start=30)
    assert split.train.timestamps.max() < 30
    assert split.val.timestamps.min() >= 30 and split.val.timestamps.max() < 40
    assert split.test.timestamps.min() >= 40
    frame = pd.DataFrame(
        {"user_id": [1, 1, 2], "item_id": [1, 2, 1], "t": [946684800, 978307200, 1009843200]}
    )  # 2000-01-01, 2001-01-01, 2002-01-01 UTC
    dated = Interactions.from_dataframe(frame, timestamp_col="t")
    split = time_cutoff_split(dated, test_start="2001-06-01")
    assert (len(split.train), len(split.test)) == (2, 1)
    with pytest.raises(SplitError, match="after test_start"):
        time_cutoff_split(data, test_start=10, val_start=20)
    with pytest.raises(SplitError, match="no interactions at or after"):
        time_cutoff_split(data, test_start=10**6)


def test_time_splits_need_timestamps():
    data = Interactions.from_arrays([0, 0, 1], [0, 1, 0])
    for fn in (lambda x: temporal_split(x), lambda x: time_cutoff_split(x, 1)):
        with pytest.raises(SplitError, match="needs timestamps"):
            fn(data)


@pytest.mark.parametrize("entity", ["item", "user"])
def test_cold_splits_hold_out_entities_with_all_their_interactions(entity):
    data = _data(n=500)
    fn = cold_item_split if entity == "item" else cold_user_split
    split = fn(data, test_p=0.2, val_p=0.1, seed=0)
    ids = {p: getattr(p, f"{entity}_ids") for p in split}
    cold = split.cold_items if entity == "item" else split.cold_users
    other = split.cold_users if entity == "item" else split.cold_items
    assert other is None
    present = np.unique(getattr(data, f"{entity}_ids"))
    test_ids, val_ids = np.unique(ids[split.test]), np.unique(ids[split.val])
    assert len(test_ids) == int(np.ceil(0.2 * len(present)))
    assert len(val_ids) == int(np.ceil(0.1 * len(present)))
    np.testing.assert_array_equal(cold, np.union1d(test_ids, val_ids))
    assert not np.isin(ids[split.train], cold).any()
    assert not np.isin(test_ids, val_ids).any()
    # Every interaction of a held-out entity left training.
    held_rows = np.isin(getattr(data, f"{entity}_ids"), cold).sum()
    assert held_rows == len(split.test) + len(split.val)


def test_split_from_column():
    data = _data(n=12)
    labels = np.array(["train"] * 6 + ["test"] * 4 + ["val"] * 2, dtype=object)
    split = split_from_column(data, labels)
    np.testing.assert_array_equal(_rows(split.test), [6, 7, 8, 9])
    np.testing.assert_array_equal(_rows(split.val), [10, 11])
    assert split_from_column(data, np.where(labels == "val", "train", labels)).val is None
    bad = labels.copy()
    bad[7] = "tset"
    with pytest.raises(SplitError, match=r"'tset' at row 7"):
        split_from_column(data, bad)
    with pytest.raises(SplitError, match="one per interaction"):
        split_from_column(data, labels[:5])
    custom = split_from_column(data, np.where(labels == "test", "holdout", labels), test="holdout")
    assert len(custom.test) == 4


def test_make_split_dispatches_by_name_and_mapping():
    data = _data()
    direct = stratified_split(data, test_p=0.1, seed=42, method="collie", force_split=True)
    by_name = make_split(data, "collie", test_p=0.1, seed=42, force_split=True)
    by_map = make_split(data, {"name": "collie", "test_p": 0.1, "seed": 42, "force_split": True})
    for s in (by_name, by_map):
        np.testing.assert_array_equal(_rows(s.test), _rows(direct.test))
    cold = make_split(data, "cold_items", test_p=0.3, seed=1)
    np.testing.assert_array_equal(cold.cold_items, cold_item_split(data, 0.3, seed=1).cold_items)
    labels = np.array(["train", "test"])[np.arange(len(data)) % 2]
    assert len(make_split(data, "column", labels=labels).test) == len(data) // 2
    with pytest.raises(SplitError, match="known split names") as err:
        make_split(data, "stratifed")
    for name in SPLITS:
        assert name in str(err.value)
    with pytest.raises(SplitError, match="not \\['tset_p'\\]"):
        make_split(data, "random", tset_p=0.1)
    with pytest.raises(SplitError, match=r"split 'column' needs \['labels'\]"):
        make_split(data, "column")
    with pytest.raises(SplitError, match="needs a 'name'"):
        make_split(data, {"test_p": 0.1})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"test_p": 0.0}, "test_p=0.0 is outside"),
        ({"test_p": 1.2}, "test_p=1.2 is outside"),
        ({"test_p": 0.5, "val_p": -0.1}, "val_p=-0.1 is outside"),
        ({"test_p": 0.6, "val_p": 0.4}, "leaves no training data"),
        ({"seed": -1}, "seed must be"),
        ({"test_p": "0.2"}, "must be a number"),
    ],
)
def test_bad_split_arguments(kwargs, message):
    data = _data()
    for fn in (random_split, stratified_split, cold_item_split):
        with pytest.raises(SplitError, match=message):
            fn(data, **kwargs)


def test_bad_split_input():
    empty = Interactions.from_arrays(
        np.array([], np.int32), np.array([], np.int32), num_users=2, num_items=2
    )
    for fn in (random_split, stratified_split, cold_user_split):
        with pytest.raises(SplitError, match="empty"):
            fn(empty)
    with pytest.raises(SplitError, match="unknown method"):
        stratified_split(_data(), method="sklearn")
    with pytest.raises(SplitError, match="leaves none for training"):
        cold_item_split(Interactions.from_arrays([0, 1], [0, 1]), test_p=0.6)
    with pytest.raises(SplitError, match="n_test must be"):
        temporal_split(_data(), n_test=0)
    assert issubclass(SplitError, ValueError)


@pytest.mark.parametrize("high", [5, 10**9, 2**62])  # the last one takes the fallback path
def test_stable_argsort_matches_numpy(high):
    from hybridrec.data.splits import _stable_argsort

    keys = np.random.default_rng(0).integers(-high, high, 1000)
    np.testing.assert_array_equal(_stable_argsort(keys), np.argsort(keys, kind="stable"))


def _item_pairs(num_products=40, num_links=150, seed=0) -> Interactions:
    """Undirected product links stored in both directions, in one ID space."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, num_products, (2, num_links))
    keep = a != b
    users = np.concatenate([a[keep], b[keep]]).astype(np.int32)
    items = np.concatenate([b[keep], a[keep]]).astype(np.int32)
    return Interactions.from_arrays(users, items, num_users=num_products, num_items=num_products)


def test_item_pair_split_keeps_both_directions_of_a_pair_together():
    x = _item_pairs()
    split = make_split(x, {"name": "item_pairs", "test_p": 0.2, "val_p": 0.1, "seed": 1})
    side = {}
    for part, data in (("train", split.train), ("val", split.val), ("test", split.test)):
        for u, i in zip(data.user_ids.tolist(), data.item_ids.tolist()):
            side.setdefault(frozenset((u, i)), set()).add(part)
    assert all(len(parts) == 1 for parts in side.values()), "a pair was split across parts"
    links = {frozenset(p) for p in zip(x.user_ids.tolist(), x.item_ids.tolist())}
    counts = {p: sum(parts == {p} for parts in side.values()) for p in ("val", "test")}
    assert counts == {"test": int(np.ceil(0.2 * len(links))), "val": int(np.ceil(0.1 * len(links)))}
    assert split.cold_items is None and len(split.train) + len(split.val) + len(split.test) == len(
        x
    )


def test_item_pair_split_by_product_holds_products_out_of_training():
    x = _item_pairs()
    split = make_split(x, "item_pairs", test_p=0.2, by="product", seed=2)
    held = set(split.cold_items.tolist())
    present = np.flatnonzero(x.user_counts() + x.item_counts())
    assert len(held) == int(np.ceil(0.2 * len(present)))
    np.testing.assert_array_equal(split.cold_users, split.cold_items)
    assert not held & (set(split.train.user_ids.tolist()) | set(split.train.item_ids.tolist()))
    touching = np.isin(x.user_ids, list(held)) | np.isin(x.item_ids, list(held))
    assert len(split.test) == touching.sum()


def test_item_pair_split_needs_one_id_space():
    with pytest.raises(SplitError, match="one ID space; got 30 users and 25 items"):
        make_split(_data(), "item_pairs", test_p=0.2)
    with pytest.raises(SplitError, match="by must be 'pair' or 'product'"):
        make_split(_item_pairs(), "item_pairs", test_p=0.2, by="user")


def test_split_from_column_reports_or_refuses_users_and_items_unseen_in_training():
    from hybridrec.data.interactions import IdMap
    from hybridrec.data.splits import SplitWarning

    data = Interactions(
        user_ids=np.array([0, 0, 1, 1, 2]),
        item_ids=np.array([0, 1, 0, 1, 2]),
        user_map=IdMap(np.array(["ann", "bob", "cyd"], dtype=object), "user"),
        item_map=IdMap(np.array([10, 20, 30]), "item"),
    )
    labels = np.array(["train", "test", "train", "train", "test"], dtype=object)
    with pytest.warns(SplitWarning, match=r"1 user\(s\).*user 'cyd' \(first at row 4"):
        split = split_from_column(data, labels)
    np.testing.assert_array_equal(split.cold_users, [2])
    np.testing.assert_array_equal(split.cold_items, [2])
    with pytest.raises(SplitError, match=r"user 'cyd'.*unseen='cold'"):
        split_from_column(data, labels, unseen="error")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = split_from_column(data, labels, unseen="cold")
    np.testing.assert_array_equal(quiet.cold_users, [2])
    with pytest.raises(SplitError, match="unseen must be one of"):
        split_from_column(data, labels, unseen="ignore")
    # Every user and item seen in training: nothing to report, no cold entities.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warm = split_from_column(data, np.array(["train", "test", "train", "train", "train"]))
    assert warm.cold_users is None and warm.cold_items is None


@pytest.mark.parametrize("repeats", [False, True])
def test_pairs_match_a_brute_force_first_occurrence_numbering(repeats):
    # With no repeated pair every row is its own pair (the fast path); with repeats, pairs are
    # numbered by their first row.
    from hybridrec.data.splits import _pairs

    rng = np.random.default_rng(3)
    keys = rng.choice(30 * 20, size=200, replace=repeats)
    data = Interactions.from_arrays(keys // 20, keys % 20, num_users=30, num_items=20)
    pair_rows, row_to_pair = _pairs(data)
    first: dict[int, int] = {}
    for key in keys.tolist():
        first.setdefault(key, len(first))
    assert (len(pair_rows) < len(keys)) == repeats
    np.testing.assert_array_equal(row_to_pair, [first[k] for k in keys.tolist()])
    np.testing.assert_array_equal(keys[pair_rows], list(first))
