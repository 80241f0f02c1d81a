"""Property-based fuzzing of ``Interactions`` construction and the ``files`` loader (issue 12).

Whatever the input, the outcome is one of two: a valid object whose invariants hold (and whose
values round-trip), or hybridrec's own error. A library exception escaping is a failure.
Example counts are small so the suite stays fast; hypothesis keeps the failing examples it
finds in its database for the next run.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridrec.data.datasets._base import DataError, DataWarning
from hybridrec.data.datasets.amazon import load_amazon_products
from hybridrec.data.datasets.beer import load_beer_reviews
from hybridrec.data.datasets.files import FilesError, load_files
from hybridrec.data.interactions import IdMap, Interactions, InteractionsError

# $HYBRIDREC_FUZZ_EXAMPLES raises the example count for a longer hunt (e.g. 2000).
EXAMPLES = int(os.environ.get("HYBRIDREC_FUZZ_EXAMPLES", "40"))
FAST = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Numbers with the awkward values: NaN, infinities, negatives, huge, fractional.
numbers = st.one_of(
    st.integers(-5, 10**12),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
)


class _Scratch:
    """A temporary directory per example (pytest's tmp_path is per test, not per example)."""

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="hybridrec-fuzz-"))
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


# ---------------------------------------------------------------------------- Interactions
@FAST
@given(
    n=st.integers(0, 12),
    num_users=st.integers(0, 6),
    num_items=st.integers(0, 6),
    data=st.data(),
)
def test_interactions_from_arrays_is_valid_or_raises_its_own_error(n, num_users, num_items, data):
    column = st.lists(numbers, min_size=n, max_size=n)
    users = np.asarray(data.draw(column), dtype=np.float64)
    items = np.asarray(data.draw(column), dtype=np.float64)
    ratings = data.draw(st.none() | column)
    weights = data.draw(st.none() | column)
    times = data.draw(st.none() | column)
    try:
        x = Interactions(
            user_ids=users,
            item_ids=items,
            user_map=IdMap.identity(num_users, "user"),
            item_map=IdMap.identity(num_items, "item"),
            ratings=ratings,
            weights=weights,
            timestamps=times,
        )
    except InteractionsError as err:
        assert str(err)  # a message, and the structured fields when it is about one row
        if err.row is not None:
            assert 0 <= err.row < n
        return
    # Accepted: every invariant holds and nothing was coerced.
    assert len(x) == n and x.user_ids.dtype == np.int32 and x.item_ids.dtype == np.int32
    np.testing.assert_array_equal(x.user_ids, users)
    np.testing.assert_array_equal(x.item_ids, items)
    if n:
        assert 0 <= x.user_ids.min() and x.user_ids.max() < num_users
        assert 0 <= x.item_ids.min() and x.item_ids.max() < num_items
    if x.ratings is not None:
        assert np.isfinite(x.ratings).all()
    if x.weights is not None:
        assert np.isfinite(x.weights).all() and (x.weights >= 0).all()
    if x.timestamps is not None:
        np.testing.assert_array_equal(x.timestamps, np.asarray(times, np.float64))


raw_ids = st.one_of(
    st.integers(-3, 50),
    st.floats(-3, 50).map(lambda v: round(v * 2) / 2),  # whole or .5
    st.just(math.nan),
    st.text("abc7 ", max_size=3),
    st.none(),
)


@FAST
@given(
    rows=st.lists(st.tuples(raw_ids, raw_ids, numbers, numbers), min_size=0, max_size=10),
    same_type=st.booleans(),
)
def test_interactions_from_dataframe_round_trips_or_raises_its_own_error(rows, same_type):
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "weight"])
    if same_type and len(frame):  # one type per ID column, as files give
        frame["user"] = frame["user"].map(lambda v: None if v is None else str(v))
    try:
        x = Interactions.from_dataframe(
            frame, user_col="user", item_col="item", rating_col="rating", weight_col="weight"
        )
    except InteractionsError:
        return
    back = x.to_dataframe()
    assert len(back) == len(frame)
    for col, raw in (("user_id", "user"), ("item_id", "item")):
        # A float column's IDs are whole numbers (12.0 is user 12); other columns keep theirs.
        if frame[raw].dtype.kind == "f":
            assert (frame[raw] == np.round(frame[raw])).all()
        for got, want in zip(back[col], frame[raw]):
            assert got == want, (got, want)
    np.testing.assert_array_equal(back["rating"], frame["rating"].astype(np.float32))
    assert (back["weight"] >= 0).all()


# ---------------------------------------------------------------------------- files loader
cells = st.one_of(
    st.integers(-2, 30).map(str),
    st.sampled_from(["", "nan", "NA", "1.5", "2.0", "-1", "inf", "007", "12.5", " 3", "x,y"]),
    st.text("ab éZ\"'|;\t", max_size=4),
)


def _write_csv(path: Path, header: list[str], rows: list[list[str]], gz: bool) -> None:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    data = out.getvalue().encode()
    path.write_bytes(gzip.compress(data) if gz else data)


@FAST
@given(
    rows=st.lists(st.lists(cells, min_size=3, max_size=4), min_size=0, max_size=8),
    gz=st.booleans(),
)
def test_files_loader_on_random_csv_loads_or_raises_files_error(rows, gz):
    with _Scratch() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        path = d / ("x.csv.gz" if gz else "x.csv")
        _write_csv(path, ["u", "i", "r"], rows, gz)
        try:
            ds = load_files(path, user_col="u", item_col="i", rating_col="r")
        except FilesError as err:
            assert str(path) in str(err)
            return
        # Loaded: every row is there, with its rating, in file order.
        x = ds.interactions
        assert len(x) == len(rows)
        ratings = [float(r[2]) for r in rows]
        np.testing.assert_allclose(x.ratings, np.asarray(ratings, np.float32), rtol=1e-6)
        users = x.user_map.to_raw(x.user_ids)
        for got, row in zip(users, rows):
            text = row[0].strip()
            assert str(got) == text or float(got) == float(text), (got, row[0])


@FAST
@given(
    users=st.lists(st.text("abcdé0", min_size=1, max_size=3), min_size=1, max_size=8),
    data=st.data(),
    fmt=st.sampled_from(["csv", "csv.gz", "tsv", "parquet"]),
)
def test_files_loader_round_trips_valid_tables(users, data, fmt):
    n = len(users)
    items = data.draw(st.lists(st.integers(0, 10**9), min_size=n, max_size=n))
    ratings = data.draw(
        st.lists(st.floats(-10, 10, allow_nan=False, width=32), min_size=n, max_size=n)
    )
    times = data.draw(st.lists(st.integers(0, 2**40), min_size=n, max_size=n))
    # Users are text that is never a number (a leading letter), so they stay strings.
    frame = pd.DataFrame(
        {"user": ["u" + u for u in users], "item": items, "rating": ratings, "t": times}
    )
    with _Scratch() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        path = d / f"x.{fmt}"
        if fmt == "parquet":
            frame.to_parquet(path)
        else:
            text = frame.to_csv(index=False, sep="\t" if fmt == "tsv" else ",")
            path.write_bytes(gzip.compress(text.encode()) if fmt.endswith("gz") else text.encode())
        ds = load_files(
            path, user_col="user", item_col="item", rating_col="rating", timestamp_col="t"
        )
    back = ds.interactions.to_dataframe()
    assert list(back["user_id"]) == list(frame["user"])
    assert list(back["item_id"]) == list(frame["item"])
    np.testing.assert_allclose(back["rating"], frame["rating"], rtol=1e-6, atol=1e-6)
    assert list(back["timestamp"]) == list(frame["t"])


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    content=st.binary(max_size=300),
    gz=st.booleans(),
    loader=st.sampled_from(["files", "beer", "amazon"]),
)
def test_random_bytes_never_escape_as_a_library_exception(content, gz, loader):
    with _Scratch() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        path = d / ("data.csv.gz" if gz else "data.csv")
        path.write_bytes(gzip.compress(content) if gz and content[:1] != b"!" else content)
        try:
            if loader == "files":
                load_files(path)
            elif loader == "beer":
                load_beer_reviews(path)
            else:
                load_amazon_products(path)
        except DataError as err:
            assert str(path) in str(err), err
