"""``hybridrec.fit`` from DataFrames, and fields declared in a config.

A planted signal: items belong to one of four genres and each user likes one genre. With the
genre declared as a field, the hybrid model trained by ``fit`` ranks a user's genre first,
also for items it never saw in training (scored from the genre alone); ``hybridrec.load`` of the
run directory gives the same scores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hybridrec
from hybridrec.experiment import ExperimentError, feature_schema


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(0)
    num_users, num_items, num_genres = 80, 60, 4
    item_genre = np.arange(num_items) % num_genres
    user_genre = rng.integers(0, num_genres, num_users)
    rows = []
    for u in range(num_users):
        liked = np.flatnonzero(item_genre == user_genre[u])
        for i in rng.choice(liked, 8, replace=False):
            rows.append((f"u{u}", f"i{i}"))
    interactions = pd.DataFrame(rows, columns=["user", "item"])
    items = pd.DataFrame(
        {
            "item": [f"i{i}" for i in range(num_items)],
            "genre": [f"g{g}" for g in item_genre],
            "tags": [f"g{g}|common" for g in item_genre],
        }
    )
    return interactions, items, user_genre, item_genre


@pytest.fixture(scope="module")
def fitted(planted, tmp_path_factory):
    interactions, items, _, _ = planted
    return hybridrec.fit(
        interactions,
        item_features=items,
        user_col="user",
        item_col="item",
        fields=dict(genre=dict(kind="categorical")),
        overrides={
            "train.num_epochs": 15,
            "train.batch_size": 32,
            "train.steps_per_dispatch": 8,
            "model.embedding_dim": 8,
            "features.user_history": False,
            "progress": False,
            "plots": False,
            "split": dict(name="stratified", test_p=0.2, seed=0),
        },
        workdir=tmp_path_factory.mktemp("fit"),
    )


def test_fit_learns_the_planted_genres_and_loads_back(fitted, planted):
    _, _, user_genre, item_genre = planted
    model = fitted
    assert model.metrics["val/ndcg@10"] > model.metrics["popularity/val/ndcg@10"] + 0.1
    scores = model.score(model.user_ids)
    users = np.array([int(u[1:]) for u in model.user_ids])
    items = np.array([int(i[1:]) for i in model.item_ids])
    mean_liked = np.mean(
        [scores[r][item_genre[items] == user_genre[u]].mean() for r, u in enumerate(users)]
    )
    mean_other = np.mean(
        [scores[r][item_genre[items] != user_genre[u]].mean() for r, u in enumerate(users)]
    )
    assert mean_liked > mean_other + 0.5
    again = hybridrec.load(model.workdir)
    np.testing.assert_allclose(again.score(model.user_ids[:4]), scores[:4], rtol=1e-5)


def test_a_new_item_is_scored_from_its_declared_field(fitted, planted):
    _, _, user_genre, _ = planted
    model = fitted
    user = model.user_ids[0]
    liked = f"g{user_genre[int(user[1:])]}"
    other = f"g{(user_genre[int(user[1:])] + 1) % 4}"
    s_liked = model.score_new_item({"genre": liked}, [user])
    s_other = model.score_new_item({"genre": other}, [user])
    assert float(s_liked[0]) > float(s_other[0])


def test_declared_fields_extend_or_replace_a_schema():
    import ml_collections

    features = ml_collections.ConfigDict(
        dict(schema="movielens-100k", fields=dict(genres=dict(kind="text"), extra=dict()))
    )
    schema = feature_schema(features)
    assert schema["genres"].kind == "text"  # replaced
    assert schema["extra"].kind == "categorical"  # added, FieldSpec's default kind
    assert "release_year" in [f.name for f in schema.fields]  # kept
    features = ml_collections.ConfigDict(dict(schema=None, fields=dict(x=3)))
    with pytest.raises(ExperimentError, match="features.fields.x must be a dict"):
        feature_schema(features)
    features = ml_collections.ConfigDict(dict(schema=None, fields=dict(x=dict(knd="text"))))
    with pytest.raises(ExperimentError, match="features.fields.x"):
        feature_schema(features)


def test_fit_refuses_fields_for_a_model_without_towers(planted, tmp_path):
    interactions, items, _, _ = planted
    with pytest.raises(ValueError, match="reads no side features"):
        hybridrec.fit(
            interactions,
            item_features=items,
            user_col="user",
            item_col="item",
            fields=dict(genre=dict()),
            config="mf.py",
            workdir=tmp_path,
        )
