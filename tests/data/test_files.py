"""The files loader: interactions and feature tables from CSV/Parquet, and bring-your-own splits."""

import numpy as np
import pandas as pd
import pytest

from hybridrec.data.datasets import FilesError, load_dataset, load_files
from hybridrec.data.splits import make_split


def _write(tmp_path):
    inter = pd.DataFrame(
        {
            "user": ["u1", "u1", "u2", "u3", "u3"],
            "movie": [10, 20, 10, 30, 20],
            "stars": [5, 3, 4, 2, 5],
            "fold": ["train", "test", "train", "train", "val"],
        }
    )
    inter.to_csv(tmp_path / "ratings.csv", index=False)
    movies = pd.DataFrame(
        {
            "movie": [30, 10, 20, 99],
            "genres": ["Drama", "Action|Comedy", "", "Horror"],
            "year": [1990, 1995, np.nan, 2000],
        }
    )
    movies.to_parquet(tmp_path / "movies.parquet")
    return tmp_path / "ratings.csv", tmp_path / "movies.parquet"


def test_load_files_with_features_and_split(tmp_path):
    ratings, movies = _write(tmp_path)
    d = load_files(
        ratings,
        user_col="user",
        item_col="movie",
        rating_col="stars",
        split_col="fold",
        item_features=str(movies),
        item_id_col="movie",
        list_columns=("genres",),
    )
    x = d.interactions
    assert (len(x), x.num_users, x.num_items) == (5, 3, 3)
    assert list(d.item_metadata.index) == [10, 20, 30]  # item_map order; movie 99 dropped
    assert d.item_metadata.loc[10, "genres"] == ["Action", "Comedy"]
    assert d.item_metadata.loc[20, "genres"] == []
    assert d.info["item_feature_rows_without_interactions"] == 1
    split = make_split(x, "column", labels=d.split)
    assert (len(split.train), len(split.val), len(split.test)) == (3, 1, 1)
    same = load_dataset(
        {
            "name": "files",
            "files": {"interactions": str(ratings), "user_col": "user", "item_col": "movie"},
        }
    )
    assert len(same.interactions) == 5


def test_files_errors(tmp_path):
    ratings, movies = _write(tmp_path)
    with pytest.raises(FilesError, match="no such file"):
        load_files(tmp_path / "nope.csv")
    with pytest.raises(
        FilesError, match=r"ratings.csv: missing column\(s\) \['user_id', 'item_id'\]"
    ):
        load_files(ratings)
    with pytest.raises(FilesError, match="no split column 'split'"):
        load_files(ratings, user_col="user", item_col="movie", split_col="split")
    pd.DataFrame({"movie": [10, 20], "year": [1, 2]}).to_csv(tmp_path / "few.csv", index=False)
    with pytest.raises(
        FilesError, match=r"1 items of the interactions have no row here, e.g. \[30\]"
    ):
        load_files(
            ratings, user_col="user", item_col="movie", item_features=str(tmp_path / "few.csv")
        )
    pd.DataFrame({"movie": [10, 10, 20, 30]}).to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(FilesError, match="item ID 10 appears twice"):
        load_files(
            ratings, user_col="user", item_col="movie", item_features=str(tmp_path / "dup.csv")
        )
    bad = pd.read_csv(ratings)
    bad.loc[2, "stars"] = np.nan
    bad.to_csv(tmp_path / "nan.csv", index=False)
    with pytest.raises(
        FilesError, match=r"nan.csv:4: column 'stars' has missing or non-numeric values.*row 2"
    ):
        load_files(tmp_path / "nan.csv", user_col="user", item_col="movie", rating_col="stars")
    with pytest.raises(ValueError, match="unknown dataset 'movielens-1m'"):
        load_dataset({"name": "movielens-1m"})
