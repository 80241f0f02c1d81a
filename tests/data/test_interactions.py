"""Tests for Interactions and IdMap: construction, transforms, CSR access and bad input."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridrec import IdMap, Interactions, InteractionsError


def _frame(**extra):
    data = {
        "user": ["a", "b", "a", "c", "b"],
        "item": [10, 20, 30, 10, 10],
        "rating": [5.0, 3.0, 4.0, 1.0, 4.5],
        "ts": [1, 2, 3, 4, 5],
    }
    data.update(extra)
    return pd.DataFrame(data)


def test_from_dataframe_maps_raw_ids_to_sorted_indices():
    x = Interactions.from_dataframe(
        _frame(), user_col="user", item_col="item", rating_col="rating", timestamp_col="ts"
    )
    assert (x.num_users, x.num_items, len(x)) == (3, 3, 5)
    assert list(x.user_map.raw_ids) == ["a", "b", "c"]
    assert list(x.item_map.raw_ids) == [10, 20, 30]
    np.testing.assert_array_equal(x.user_ids, [0, 1, 0, 2, 1])
    np.testing.assert_array_equal(x.item_ids, [0, 1, 2, 0, 0])
    assert x.user_ids.dtype == np.int32 and x.ratings.dtype == np.float32
    back = x.to_dataframe()
    assert list(back["user_id"]) == list(_frame()["user"])
    assert list(back["item_id"]) == list(_frame()["item"])


def test_idmap_round_trip_and_unknown():
    m = IdMap.from_values(["x", "z", "y", "x"], name="item")
    assert list(m.raw_ids) == ["x", "y", "z"]
    np.testing.assert_array_equal(m.to_index(["z", "x"]), [2, 0])
    assert m.to_index("y") == 1
    np.testing.assert_array_equal(m.to_raw([2, 1]), ["z", "y"])
    with pytest.raises(KeyError, match="unknown item ID 'w'"):
        m.to_index(["w"])
    np.testing.assert_array_equal(m.to_index(["w", "x"], allow_unknown=True), [-1, 0])
    ints = IdMap.from_values([5, 3, 9])
    np.testing.assert_array_equal(ints.to_index(np.array(["9", "3"])), [2, 0])


def test_csr_gives_per_user_items_sorted_and_summed():
    x = Interactions.from_arrays([0, 0, 1, 0], [3, 1, 2, 3], num_users=3, num_items=4)
    csr = x.csr
    assert csr.shape == (3, 4)
    np.testing.assert_array_equal(csr.indices[csr.indptr[0] : csr.indptr[1]], [1, 3])
    assert csr[0, 3] == 2.0  # duplicate pair summed
    assert csr.indptr[3] - csr.indptr[2] == 0  # user 2 has nothing
    np.testing.assert_array_equal(x.user_counts(), [3, 1, 0])
    np.testing.assert_array_equal(x.item_counts(), [0, 1, 1, 2])


@pytest.mark.parametrize("chunk_rows", [1 << 22, 3])
def test_item_lists_match_brute_force(chunk_rows, monkeypatch):
    """Each user's distinct items, ascending: repeated pairs once, a pair of weight 0 kept (it is
    present), users without items empty; the same when the keys are converted in chunks."""
    from hybridrec.data import interactions as interactions_lib

    monkeypatch.setattr(interactions_lib, "_CHUNK_ROWS", chunk_rows)
    rng = np.random.default_rng(3)
    users = rng.integers(0, 40, 500)
    items = rng.integers(0, 25, 500)
    weights = rng.random(500).astype(np.float32)
    weights[:50] = 0.0
    x = Interactions.from_arrays(users, items, num_users=45, num_items=25, weights=weights)
    indptr, lists = x.item_lists
    assert indptr.dtype == np.int64 and lists.dtype == np.int32 and len(indptr) == 46
    for u in range(45):
        expected = sorted({int(i) for v, i in zip(users, items) if v == u})
        assert lists[indptr[u] : indptr[u + 1]].tolist() == expected
    assert x.item_lists is x.item_lists  # cached: the sampler and the evaluator share it
    with pytest.raises(ValueError, match="read-only"):
        lists[0] = 1
    empty = Interactions.from_arrays([], [], num_users=3, num_items=0)
    assert empty.item_lists[0].tolist() == [0, 0, 0, 0] and len(empty.item_lists[1]) == 0


def test_to_implicit_thresholds_ratings():
    x = Interactions.from_dataframe(_frame(), user_col="user", item_col="item", rating_col="rating")
    imp = x.to_implicit(4)
    assert len(imp) == 3 and imp.ratings is None
    assert imp.num_items == x.num_items  # same ID space
    with pytest.raises(InteractionsError, match="needs ratings"):
        imp.to_implicit(4)


@pytest.mark.parametrize(
    "policy, expected",
    [
        ("first", {(0, 0): 5.0, (0, 1): 2.0}),
        ("last", {(0, 0): 1.0, (0, 1): 2.0}),
        ("max", {(0, 0): 5.0, (0, 1): 2.0}),
    ],
)
def test_deduplicate_policies(policy, expected):
    df = pd.DataFrame(
        {"u": [0, 0, 0, 0], "i": [0, 1, 0, 0], "r": [5.0, 2.0, 3.0, 1.0], "t": [1, 2, 3, 4]}
    )
    x = Interactions.from_dataframe(
        df, user_col="u", item_col="i", rating_col="r", timestamp_col="t"
    )
    d = x.deduplicate(policy)
    got = {(int(u), int(i)): float(r) for u, i, r in zip(d.user_ids, d.item_ids, d.ratings)}
    assert got == expected


def test_deduplicate_sum_and_error():
    df = pd.DataFrame({"u": [0, 0, 1, 0], "i": [0, 1, 0, 0], "w": [1.2, 0.5, 1.0, 1.0]})
    x = Interactions.from_dataframe(df, user_col="u", item_col="i", weight_col="w")
    s = x.deduplicate("sum")
    got = {
        (int(u), int(i)): round(float(w), 5) for u, i, w in zip(s.user_ids, s.item_ids, s.weights)
    }
    assert got == {(0, 0): 2.2, (0, 1): 0.5, (1, 0): 1.0}
    with pytest.raises(
        InteractionsError, match=r"duplicate \(user, item\) pair \(0, 0\) first at row 0"
    ):
        x.deduplicate("error")
    with pytest.raises(InteractionsError, match="unknown duplicates policy"):
        x.deduplicate("median")


def test_filter_min_count_one_pass_vs_k_core():
    # user 2 has 1 interaction; dropping it leaves item 2 with 1, which the k-core also drops.
    users = [0, 0, 0, 1, 1, 1, 2, 3, 3]
    items = [0, 1, 2, 0, 1, 3, 2, 0, 1]
    x = Interactions.from_arrays(users, items)
    one = x.filter_min_count(min_user_count=2, min_item_count=2)
    # one pass: counts taken once, so item 2 (count 2) survives with user 0
    assert set(zip(one.user_ids.tolist(), one.item_ids.tolist())) == {
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 1),
        (3, 0),
        (3, 1),
    }
    core = x.filter_min_count(min_user_count=2, min_item_count=2, iterate=True)
    assert np.all(core.user_counts()[core.user_ids] >= 2)
    assert np.all(core.item_counts()[core.item_ids] >= 2)
    assert 2 not in core.item_ids and 3 not in core.item_ids
    compact = core.compact()
    assert compact.num_items == 2 and list(compact.item_map.raw_ids) == [0, 1]
    assert list(compact.user_map.raw_ids) == [0, 1, 3]


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=60),
    st.integers(1, 4),
    st.integers(1, 4),
)
def test_k_core_matches_brute_force(pairs, ku, ki):
    users, items = map(np.array, zip(*pairs))
    x = Interactions.from_arrays(users, items, num_users=7, num_items=7)
    got = x.filter_min_count(ku, ki, iterate=True)
    # Brute force: repeatedly drop offending rows one sweep at a time in Python.
    rows = list(range(len(users)))
    while True:
        uc = {u: sum(users[r] == u for r in rows) for u in set(users[rows])} if rows else {}
        ic = {i: sum(items[r] == i for r in rows) for i in set(items[rows])} if rows else {}
        keep = [r for r in rows if uc[users[r]] >= ku and ic[items[r]] >= ki]
        if keep == rows:
            break
        rows = keep
    assert sorted(zip(got.user_ids.tolist(), got.item_ids.tolist())) == sorted(
        zip(users[rows].tolist(), items[rows].tolist())
    )


def test_subset_concatenate_share_id_space():
    x = Interactions.from_arrays([0, 1, 2], [2, 1, 0])
    a, b = x.subset(np.array([True, False, True])), x.subset(np.array([1]))
    both = a.concatenate(b)
    assert len(both) == 3 and both.num_items == x.num_items
    other = Interactions.from_arrays([0], [0], num_users=5, num_items=5)
    with pytest.raises(InteractionsError, match="different ID spaces"):
        a.concatenate(other)


# ---------------------------------------------------------------------------- bad input
def test_missing_columns_named():
    with pytest.raises(InteractionsError, match=r"missing column\(s\) \['score'\]"):
        Interactions.from_dataframe(_frame(), user_col="user", item_col="item", rating_col="score")


def test_empty_data():
    with pytest.raises(InteractionsError, match="empty"):
        Interactions.from_dataframe(pd.DataFrame({"user_id": [], "item_id": []}))


def test_nan_rating_names_column_and_row():
    df = _frame(rating=[5.0, np.nan, 4.0, 1.0, 4.5])
    with pytest.raises(InteractionsError, match=r"column 'rating'.*row 1.*'user': 'b'"):
        Interactions.from_dataframe(df, user_col="user", item_col="item", rating_col="rating")


def test_non_numeric_rating():
    df = _frame(rating=["5", "good", "4", "1", "4.5"])
    with pytest.raises(InteractionsError, match=r"column 'rating'.*non-numeric.*row 1"):
        Interactions.from_dataframe(df, user_col="user", item_col="item", rating_col="rating")


def test_missing_id_named():
    df = _frame(user=["a", None, "a", "c", "b"])
    with pytest.raises(InteractionsError, match=r"column 'user' has missing IDs.*row 1"):
        Interactions.from_dataframe(df, user_col="user", item_col="item")


def test_negative_and_non_integer_indices():
    with pytest.raises(InteractionsError, match=r"'item_ids' holds a negative index -1 at row 1"):
        Interactions.from_arrays([0, 1], [0, -1], num_users=2, num_items=2)
    with pytest.raises(
        InteractionsError, match=r"'user_ids' holds a non-integer index 0.5 at row 1"
    ):
        Interactions.from_arrays(np.array([0.0, 0.5]), [0, 1], num_users=2, num_items=2)


def test_id_space_smaller_than_indices():
    with pytest.raises(InteractionsError, match=r"'item_ids' holds index 5 at row 1.*only 3 items"):
        Interactions.from_arrays([0, 0], [1, 5], num_users=1, num_items=3)


def test_mismatched_lengths():
    with pytest.raises(InteractionsError, match="mismatched lengths"):
        Interactions.from_arrays([0, 1, 2], [0, 1])
    x = Interactions.from_arrays([0, 1], [0, 1])
    with pytest.raises(InteractionsError, match="mismatched lengths.*weights has 3"):
        x.replace(weights=np.ones(3))


def test_unknown_test_ids_against_training_maps():
    train = Interactions.from_dataframe(_frame(), user_col="user", item_col="item")
    test_df = pd.DataFrame({"user": ["a", "zed"], "item": [10, 99]})
    with pytest.raises(InteractionsError, match=r"column 'user' holds IDs unknown.*'zed'"):
        Interactions.from_dataframe(
            test_df,
            user_col="user",
            item_col="item",
            user_map=train.user_map,
            item_map=train.item_map,
        )
    ok = Interactions.from_dataframe(
        test_df,
        user_col="user",
        item_col="item",
        user_map=train.user_map,
        item_map=train.item_map,
        allow_unknown=True,
    )
    assert len(ok) == 1 and ok.user_map == train.user_map


# ------------------------------------------------------------------------------ issue 12: bad values
def test_negative_weights_are_refused_with_the_row_and_value():
    with pytest.raises(InteractionsError, match=r"'w' holds the negative weight -0.5.*row 3") as e:
        Interactions.from_dataframe(
            _frame(w=[1.0, 2.0, 0.0, -0.5, 1.0]), user_col="user", item_col="item", weight_col="w"
        )
    assert (e.value.column, e.value.row, e.value.value) == ("w", 3, -0.5)
    with pytest.raises(InteractionsError, match="negative weight -2.0 at row 1"):
        Interactions.from_arrays([0, 1], [0, 0], weights=[1.0, -2.0])


def test_fractional_or_overflowing_timestamps_are_refused():
    with pytest.raises(InteractionsError, match=r"'ts' holds the timestamp 2.5.*row 1"):
        Interactions.from_dataframe(
            _frame(ts=[1, 2.5, 3, 4, 5]), user_col="user", item_col="item", timestamp_col="ts"
        )
    with pytest.raises(InteractionsError, match="1e\\+30 at row 0"):
        Interactions.from_arrays([0], [0], timestamps=[1e30])


def test_float_id_columns_must_hold_whole_numbers():
    whole = Interactions.from_dataframe(
        _frame(user=[1.0, 2.0, 1.0, 3.0, 2.0]), user_col="user", item_col="item"
    )
    assert whole.user_map.raw_ids.dtype == np.int64 and list(whole.user_map.raw_ids) == [1, 2, 3]
    with pytest.raises(
        InteractionsError, match=r"'user' holds the non-integer ID 12.5.*row 2"
    ) as e:
        Interactions.from_dataframe(
            _frame(user=[12.0, 13.0, 12.5, 12.0, 13.0]), user_col="user", item_col="item"
        )
    assert e.value.row == 2 and e.value.value == 12.5


def test_indices_beyond_int32_do_not_wrap_around():
    # 2**32 + 1 would become index 1 after a cast to int32.
    with pytest.raises(InteractionsError, match="index 4294967297 at row 0"):
        Interactions.from_arrays([2**32 + 1], [0], num_users=3, num_items=1)


def test_ratings_beyond_float32_are_named():
    with pytest.raises(InteractionsError, match=r"holds 1e\+300 at row 1 \(beyond float32"):
        Interactions.from_arrays([0, 0], [0, 0], ratings=[1.0, 1e300])


def test_id_lookup_never_truncates_fractional_ids():
    m = IdMap.from_values([7, 12, 30], name="item")
    np.testing.assert_array_equal(m.to_index(np.array([12.0, 12.5]), allow_unknown=True), [1, -1])
    np.testing.assert_array_equal(
        m.to_index(np.array(["12", "12.5", "x"], dtype=object), allow_unknown=True), [1, -1, -1]
    )
    with pytest.raises(KeyError, match="unknown item ID '12.5'"):
        m.to_index(np.array(["12", "12.5"], dtype=object))


@pytest.mark.parametrize("exponent", [0.0, 0.5, 1.0])
def test_user_balanced_weights_match_brute_force(exponent):
    # Users a (3 positives, one of weight 2), b (2), c (1): brute force over the rows.
    frame = pd.DataFrame(
        {
            "user": ["a", "a", "b", "a", "c", "b"],
            "item": [1, 2, 1, 3, 2, 2],
            "w": [1.0, 2.0, 1.0, 1.0, 1.0, 1.0],
        }
    )
    x = Interactions.from_dataframe(frame, user_col="user", item_col="item", weight_col="w")
    got = x.user_balanced_weights(exponent)
    counts = {"a": 3, "b": 2, "c": 1}
    raw = np.array([w * counts[u] ** -exponent for u, w in zip(frame.user, frame.w)])
    expected = raw * frame.w.sum() / raw.sum()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got.dtype == np.float32
    if exponent == 1.0:
        # Users of unit weights (b: 2 positives, c: 1) get the same total, whatever their activity.
        users = frame.user.to_numpy()
        assert got[users == "b"].sum() == pytest.approx(got[users == "c"].sum())


def test_user_balanced_weights_refuse_a_negative_exponent():
    x = Interactions.from_dataframe(_frame(), user_col="user", item_col="item")
    with pytest.raises(InteractionsError, match="exponent"):
        x.user_balanced_weights(-0.5)


def test_large_arrays_are_aligned_for_the_device_to_share_them():
    """Index arrays of 1 MiB or more start on a 64-byte boundary, so that ``jax.device_put``
    shares their memory on a CPU instead of copying 50M positives (numpy aligns to 16)."""
    import jax

    from hybridrec.data import interactions as interactions_lib

    n = 1 << 19  # 2 MiB of int32
    users = np.arange(n + 1, dtype=np.int64)[1:] % 1000  # an unaligned, int64 source
    x = Interactions.from_arrays(users, users % 7, num_users=1000, num_items=7)
    assert x.user_ids.ctypes.data % 64 == 0 and x.item_ids.ctypes.data % 64 == 0
    np.testing.assert_array_equal(x.user_ids, users)
    half = x.subset(np.arange(n) % 2 == 0)
    assert half.user_ids.ctypes.data % 64 == 0
    device = jax.device_put(half.user_ids)
    if jax.default_backend() == "cpu":
        assert device.unsafe_buffer_pointer() == half.user_ids.ctypes.data
    np.testing.assert_array_equal(np.asarray(device), users[::2])
    small = np.arange(10, dtype=np.int32)[1:]
    assert interactions_lib.aligned(small) is small  # small arrays are left as they are
    empty = interactions_lib.aligned_empty((1024, 512), np.float32)
    assert empty.shape == (1024, 512) and empty.ctypes.data % 64 == 0
