"""Tests for the BeerAdvocate loader on small files written in the exact public schema."""

import csv
import gzip
import hashlib

import numpy as np
import pandas as pd
import pytest

from hybridrec.data.datasets.beer import (
    BEER_COLUMNS,
    BEER_ITEM_COLUMNS,
    BeerReviewsError,
    load_beer_reviews,
)


def _row(user, beer, time, overall, *, name=None, style="IPA", brewery=(7, "Hop Co"), abv=6.5):
    """One review in the file's column order; None writes an empty cell."""
    values = {
        "brewery_id": brewery[0],
        "brewery_name": brewery[1],
        "review_time": time,
        "review_overall": overall,
        "review_aroma": 4.0,
        "review_appearance": 3.5,
        "review_profilename": user,
        "beer_style": style,
        "review_palate": 3.0,
        "review_taste": overall - 0.5 if isinstance(overall, float) else 2.5,
        "beer_name": name if name is not None else f"Beer {beer}",
        "beer_abv": abv,
        "beer_beerid": beer,
    }
    return ["" if values[c] is None else values[c] for c in BEER_COLUMNS]


def _write(path, rows, columns=BEER_COLUMNS):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        w.writerows(rows)
    return path


# The mess of the real file, in miniature:
#  - alice reviewed beer 10 twice; the later review (time 300) comes FIRST in the file;
#  - one review has no profile name (dropped) but carries beer 40's only metadata;
#  - beer 20's name differs between rows: "Stout" twice, "Stout (2009)" once -> "Stout";
#  - beer 30's style is tied 1:1 -> the latest review's value ("Porter");
#  - beer 10 has no ABV on any row -> NaN; beer 20 has it on one row only;
#  - a beer name with a comma and quotes, written with CSV quoting.
MESSY = [
    _row("alice", 10, 300, 4.0, name='Hop "Bomb", Reserve', abv=None),
    _row("bob", 10, 150, 3.0, name='Hop "Bomb", Reserve', abv=None),
    _row("alice", 10, 100, 2.0, name='Hop "Bomb", Reserve', abv=None),
    _row("bob", 20, 200, 5.0, name="Stout", style="Stout", abv=None),
    _row("carol", 20, 210, 4.5, name="Stout (2009)", style="Stout", abv=8.0),
    _row("alice", 20, 220, 3.5, name="Stout", style="Stout", abv=None),
    _row("carol", 30, 500, 1.5, style="Brown Ale", brewery=(9, "Malt Bros")),
    _row("bob", 30, 600, 2.5, style="Porter", brewery=(9, "Malt Bros")),
    _row(None, 40, 700, 4.0, style="Lager", brewery=(11, None), abv=4.2),
]


@pytest.fixture
def messy_csv(tmp_path):
    return _write(tmp_path / "beer_reviews.csv", MESSY)


def _pairs(ds):
    """{(user, beer): (rating, time)} from a Dataset, in raw IDs."""
    x = ds.interactions
    users = x.user_map.to_raw(x.user_ids)
    items = x.item_map.to_raw(x.item_ids)
    return {
        (u, int(i)): (float(r), int(t)) for u, i, r, t in zip(users, items, x.ratings, x.timestamps)
    }


def test_messy_file_policies(messy_csv):
    ds = load_beer_reviews(messy_csv)
    x = ds.interactions
    assert ds.name == "beer-advocate"
    assert list(x.user_map.raw_ids) == ["alice", "bob", "carol"]
    assert list(x.item_map.raw_ids) == [10, 20, 30, 40]
    # alice's latest review of beer 10 (time 300, rating 4) wins over the earlier one.
    assert _pairs(ds) == {
        ("alice", 10): (4.0, 300),
        ("bob", 10): (3.0, 150),
        ("bob", 20): (5.0, 200),
        ("carol", 20): (4.5, 210),
        ("alice", 20): (3.5, 220),
        ("carol", 30): (1.5, 500),
        ("bob", 30): (2.5, 600),
    }
    assert x.ratings.dtype == np.float32 and x.timestamps.dtype == np.int64
    info = ds.info
    assert info["num_rows"] == 9
    assert info["num_missing_user"] == 1
    assert info["num_duplicate_pairs"] == 1 and info["num_duplicate_reviews"] == 1
    assert info["num_interactions"] == 7
    # Beer 40 was reviewed only anonymously: in the ID space, without interactions.
    assert info["num_items_without_interactions"] == 1
    assert info["metadata_conflicts"] == {
        "beer_name": 1,
        "beer_style": 1,
        "brewery_id": 0,
        "brewery_name": 0,
        "beer_abv": 0,
    }
    assert info["sha256"] == hashlib.sha256(messy_csv.read_bytes()).hexdigest()


def test_item_metadata_aligned_and_resolved(messy_csv):
    ds = load_beer_reviews(messy_csv)
    meta = ds.item_metadata
    assert list(meta.columns) == list(BEER_ITEM_COLUMNS)
    np.testing.assert_array_equal(meta.index.to_numpy(), ds.interactions.item_map.raw_ids)
    assert meta.index.name == "beer_beerid"
    assert meta.loc[10, "beer_name"] == 'Hop "Bomb", Reserve'
    assert meta.loc[20, "beer_name"] == "Stout"  # 2 of 3 rows
    assert meta.loc[30, "beer_style"] == "Porter"  # 1:1 tie -> latest review (time 600)
    assert meta.loc[40, "beer_style"] == "Lager"  # from the row without a user
    assert meta["beer_abv"].dtype == np.float64
    assert np.isnan(meta.loc[10, "beer_abv"])
    assert meta.loc[20, "beer_abv"] == 8.0  # the one non-missing value
    assert meta.loc[40, "beer_abv"] == pytest.approx(4.2)
    assert ds.info["num_items_missing_abv"] == 1
    # Categorical brewery IDs are strings; a missing brewery name stays missing.
    assert meta.loc[30, "brewery_id"] == "9" and isinstance(meta.loc[30, "brewery_id"], str)
    assert meta.loc[40, "brewery_id"] == "11"
    assert pd.isna(meta.loc[40, "brewery_name"])


@pytest.mark.parametrize(
    "policy, expected",
    [("first", (2.0, 100)), ("last", (4.0, 300)), ("max", (4.0, 300))],
)
def test_duplicate_policies(messy_csv, policy, expected):
    ds = load_beer_reviews(messy_csv, duplicates=policy)
    assert _pairs(ds)[("alice", 10)] == expected


def test_duplicates_keep_and_error(messy_csv):
    ds = load_beer_reviews(messy_csv, duplicates="keep")
    assert len(ds.interactions) == 8 and ds.info["num_duplicate_reviews"] == 0
    with pytest.raises(ValueError, match="duplicate"):
        load_beer_reviews(messy_csv, duplicates="error")
    with pytest.raises(BeerReviewsError, match="duplicates policy"):
        load_beer_reviews(messy_csv, duplicates="mean")


def test_min_rating_keeps_id_space(messy_csv):
    full = load_beer_reviews(messy_csv)
    ds = load_beer_reviews(messy_csv, min_rating=3.5)
    assert set(_pairs(ds)) == {("alice", 10), ("bob", 20), ("carol", 20), ("alice", 20)}
    assert ds.info["num_below_min_rating"] == 3
    assert ds.interactions.item_map == full.interactions.item_map
    assert ds.interactions.user_map == full.interactions.user_map
    assert ds.info["num_items_without_interactions"] == 2  # beers 30 and 40


def test_other_rating_column(messy_csv):
    ds = load_beer_reviews(messy_csv, rating_column="review_taste")
    assert _pairs(ds)[("carol", 20)] == (4.0, 210)
    with pytest.raises(BeerReviewsError, match="review_overall"):
        load_beer_reviews(messy_csv, rating_column="beer_abv")


def test_gzip_and_extra_index_column_give_same_dataset(tmp_path, messy_csv):
    gz = _write(tmp_path / "beer_reviews.csv.gz", MESSY)
    # Some copies carry a leading unnamed index column.
    indexed = _write(
        tmp_path / "indexed.csv",
        [[i, *row] for i, row in enumerate(MESSY)],
        columns=("", *BEER_COLUMNS),
    )
    ref = load_beer_reviews(messy_csv)
    for path in (gz, indexed):
        ds = load_beer_reviews(path)
        assert _pairs(ds) == _pairs(ref)
        assert ds.item_metadata.equals(ref.item_metadata)


def test_non_numeric_score_names_row_and_column(tmp_path):
    rows = [list(r) for r in MESSY]
    rows[4][BEER_COLUMNS.index("review_overall")] = "4,5"
    path = _write(tmp_path / "bad.csv", rows)
    with pytest.raises(BeerReviewsError) as e:
        load_beer_reviews(path)
    msg = str(e.value)
    assert "review_overall" in msg and "'4,5'" in msg
    assert "data row 4" in msg and "line 6" in msg and "bad.csv" in msg


def test_non_numeric_abv_and_beer_id(tmp_path):
    rows = [list(r) for r in MESSY]
    rows[2][BEER_COLUMNS.index("beer_abv")] = "n/a"
    with pytest.raises(BeerReviewsError, match=r"'beer_abv'.*'n/a'"):
        load_beer_reviews(_write(tmp_path / "a.csv", rows))
    rows = [list(r) for r in MESSY]
    rows[7][BEER_COLUMNS.index("beer_beerid")] = "x30"
    with pytest.raises(BeerReviewsError, match=r"data row 7.*'beer_beerid'"):
        load_beer_reviews(_write(tmp_path / "b.csv", rows))


def test_missing_rating_on_a_used_row_is_an_error(tmp_path):
    rows = [list(r) for r in MESSY]
    rows[6][BEER_COLUMNS.index("review_overall")] = ""
    with pytest.raises(BeerReviewsError, match=r"data row 6.*'review_overall' is empty"):
        load_beer_reviews(_write(tmp_path / "bad.csv", rows))
    # ...but an empty score on a row dropped for its missing user is no error.
    rows = [list(r) for r in MESSY]
    rows[8][BEER_COLUMNS.index("review_overall")] = ""
    assert len(load_beer_reviews(_write(tmp_path / "ok.csv", rows)).interactions) == 7


def test_missing_columns_listed(tmp_path):
    cols = [c for c in BEER_COLUMNS if c not in ("beer_abv", "review_profilename")]
    rows = [[v for c, v in zip(BEER_COLUMNS, r) if c in cols] for r in MESSY]
    path = _write(tmp_path / "few.csv", rows, columns=cols)
    with pytest.raises(BeerReviewsError) as e:
        load_beer_reviews(path)
    msg = str(e.value)
    assert "missing column(s)" in msg and "'review_profilename'" in msg and "'beer_abv'" in msg
    assert "brewery_name" in msg  # the columns found are listed too


def test_missing_file_says_it_cannot_be_downloaded(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot download"):
        load_beer_reviews(tmp_path / "nope.csv")


def test_checksum_mismatch(messy_csv):
    good = hashlib.sha256(messy_csv.read_bytes()).hexdigest()
    assert load_beer_reviews(messy_csv, sha256=good.upper()).info["sha256"] == good
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_beer_reviews(messy_csv, sha256="0" * 64)


def test_matches_brute_force_reference(tmp_path):
    """Random messy file vs a plain-Python reading of the same rows."""
    rng = np.random.default_rng(3)
    users = ["ann", "ben", "cy", "dee", "Éva", None]
    rows = []
    for t in rng.permutation(400):
        beer = int(rng.integers(1, 25))
        rows.append(
            _row(
                users[rng.integers(0, len(users))],
                beer,
                int(1_000_000 + t),  # distinct times, so "latest" is unambiguous
                float(rng.integers(2, 11) / 2),
                style=["IPA", "Stout", "Lager"][rng.integers(0, 3)],
                abv=None if rng.random() < 0.2 else round(float(rng.uniform(3, 12)), 1),
            )
        )
    path = _write(tmp_path / "random.csv", rows)
    ds = load_beer_reviews(path, min_rating=2.5)

    ui = BEER_COLUMNS.index("review_profilename")
    bi, ti, ri = (BEER_COLUMNS.index(c) for c in ("beer_beerid", "review_time", "review_overall"))
    si = BEER_COLUMNS.index("beer_style")
    latest = {}
    for r in rows:
        if r[ui] == "":
            continue
        key = (r[ui], r[bi])
        if key not in latest or r[ti] > latest[key][1]:
            latest[key] = (r[ri], r[ti])
    expected = {k: v for k, v in latest.items() if v[0] >= 2.5}
    assert _pairs(ds) == expected

    for beer in ds.item_metadata.index:
        beer_rows = [r for r in rows if r[bi] == beer]
        counts = {}
        for r in beer_rows:
            n, t = counts.get(r[si], (0, -1))
            counts[r[si]] = (n + 1, max(t, r[ti]))
        want = max(counts, key=lambda s: counts[s])  # most frequent, then latest
        assert ds.item_metadata.loc[beer, "beer_style"] == want


def test_na_like_profile_names_are_users(tmp_path):
    # Only empty cells are missing: "NA", "null" and "nan" are real profile names.
    rows = [_row(u, 1, 10 + i, 4.0) for i, u in enumerate(["NA", "null", "nan", None])]
    ds = load_beer_reviews(_write(tmp_path / "na.csv", rows))
    assert sorted(ds.interactions.user_map.raw_ids) == ["NA", "nan", "null"]
    assert ds.info["num_missing_user"] == 1


def test_unquoted_comma_shifts_a_row_and_is_caught(tmp_path, messy_csv):
    # A hand-edited file with an unquoted comma in a beer name: the row has one field too many,
    # which names the line instead of silently mis-reading it.
    text = messy_csv.read_text().splitlines()
    text.insert(3, "7,Hop Co,160,3.0,4.0,3.5,dave,IPA,3.0,2.5,Hop, Bomb,6.5,10")
    path = tmp_path / "shifted.csv"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(
        BeerReviewsError,
        match=r"shifted.csv: Expected 13 fields in line 4, saw 14$",
    ):
        load_beer_reviews(path)


def test_bad_min_rating(messy_csv):
    with pytest.raises(BeerReviewsError, match="min_rating"):
        load_beer_reviews(messy_csv, min_rating="4")
