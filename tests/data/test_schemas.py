"""Tests for hybridrec.data.schemas: every dataset schema fits the columns its loader writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hybridrec.data.datasets.movielens import load_movielens_100k
from hybridrec.data.datasets.synthetic import FLAVOURS, make_synthetic
from hybridrec.data.features import FeatureEncoder, FeatureError
from hybridrec.data.schemas import SCHEMAS, get_schema


def test_get_schema_names_and_aliases():
    assert get_schema("movielens-100k") is SCHEMAS["movielens-100k"]
    assert get_schema("ml-100k") is SCHEMAS["movielens-100k"]
    assert get_schema("beer") is SCHEMAS["beer-advocate"]
    assert get_schema("synthetic-amazon") is SCHEMAS["synthetic-products"]
    for name, schema in SCHEMAS.items():
        assert schema.name == name
    with pytest.raises(
        FeatureError, match=r"no feature schema for dataset 'netflix'.*'beer-advocate'"
    ):
        get_schema("netflix")


def _real_metadata(name: str) -> dict[str, pd.DataFrame]:
    """Small metadata tables following the column conventions of the real loaders."""
    if name == "movielens-100k":
        items = pd.DataFrame(
            {
                "title": ["Toy Story", "Toy Soldiers", "Four Rooms", ""],
                "release_year": [1995.0, 1995.0, np.nan, 1994.0],
                "release_date": ["1995-01-01", None, None, "1994-01-01"],
                "genres": [["Animation", "Comedy"], ["Action"], [], ["Comedy"]],
                "freebase": [
                    "film.film.actor=m.1 film.film.director=m.2",
                    "film.film.actor=m.1",
                    "",
                    "film.film.director=m.2 film.film.actor=m.3",
                ],
            },
            index=pd.Index([1, 2, 3, 4], name="item_id"),
        )
        users = pd.DataFrame(
            {
                "age": [24.0, 53.0, np.nan],
                "gender": ["M", "F", None],
                "occupation": ["technician", "other", "writer"],
                "zip_code": ["85711", "94043", ""],
            },
            index=pd.Index([1, 2, 3], name="user_id"),
        )
        return {"item": items, "user": users}
    if name == "beer-advocate":
        items = pd.DataFrame(
            {
                "beer_name": ["Sausa Weizen", "Red Weizen", "Black Horse Black Beer", ""],
                "beer_style": ["Hefeweizen", "English Strong Ale", None, "Hefeweizen"],
                "brewery_id": ["10325", "10325", "10325", None],
                "brewery_name": ["Vecchio Birraio"] * 3 + [None],
                "beer_abv": [5.0, 6.2, np.nan, 4.8],
            },
            index=pd.Index([47986, 48213, 48215, 1], name="beer_beerid"),
        )
        return {"item": items}
    items = pd.DataFrame(
        {
            "title": ["Dance shoes", "Dance bag", "", "Ballet shoes"],
            "description": ["red shoes for dance", "a bag", "shoes", ""],
            "brand": ["Capezio", "Capezio", None, "Bloch"],
            "categories": [["Sports", "Dance"], ["Sports", "Dance", "Bags"], [], ["Sports"]],
            "price": [30.0, 12.5, np.nan, 45.0],
        },
        index=pd.Index(["B01", "B02", "B03", "B04"], name="asin"),
    )
    return {"item": items}


@pytest.mark.parametrize("name", ["movielens-100k", "beer-advocate", "amazon-products"])
def test_real_schemas_fit_the_loader_columns(name):
    schema = get_schema(name)
    tables = _real_metadata(name)
    enc = FeatureEncoder(schema).fit(item_metadata=tables["item"], user_metadata=tables.get("user"))
    for entity, frame in tables.items():
        feats = enc.transform(entity, frame)
        assert set(feats.fields) == {s.name for s in schema.for_entity(entity)}
        for info in feats.fields.values():
            for key in info.keys:
                assert feats[key].shape[0] == len(frame)
                assert not np.isnan(np.asarray(feats[key], float)).any()
        for name, stats in feats.stats.items():
            assert stats["missing"] < len(frame), name  # the column is read


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_synthetic_flavours_have_a_schema_that_fits(flavour):
    dataset = make_synthetic(
        num_users=None if flavour == "products" else 60,
        num_items=200,
        num_interactions=1_500,
        flavour=flavour,
        min_user_interactions=1,
        seed=0,
    )
    schema = get_schema(dataset.name)
    enc = FeatureEncoder(schema).fit_dataset(dataset)
    feats = enc.transform_dataset(dataset)
    assert feats["item"].num_entities == dataset.interactions.num_items
    if schema.for_entity("user"):
        assert feats["user"].num_entities == dataset.interactions.num_users
    for entity_feats in feats.values():
        for name, stats in entity_feats.stats.items():
            assert stats["missing"] < entity_feats.num_entities, name  # the column is read


def _write_recbole(directory) -> None:
    """A 5-item, 3-user MovieLens in RecBole's atomic-file layout."""
    directory.mkdir()
    (directory / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\t1\t5\t881250949\n1\t2\t3\t881250950\n2\t1\t4\t881250951\n"
        "2\t3\t2\t881250952\n3\t4\t4\t881250953\n3\t5\t1\t881250954\n"
    )
    (directory / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "1\tToy Story\t1995\tAnimation Children's Comedy\n"
        "2\tToy Story 2\t1999\tAnimation Comedy\n"
        "3\tGoldenEye\t1995\tAction Adventure Thriller\n"
        "4\tToy Soldiers\t1991\tAction Drama\n"
        "5\tTomorrow Never Dies\t1997\tAction Thriller\n"
    )
    (directory / "ml-100k.user").write_text(
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
        "1\t24\tM\ttechnician\t85711\n2\t53\tF\tother\t94043\n3\t23\tM\twriter\t32067\n"
    )
    (directory / "ml-100k.kg").write_text(
        "head_id:token\trelation_id:token\ttail_id:token\n"
        "m.toy\tfilm.film.actor\tm.hanks\n"
        "m.toy\tfilm.film.directed_by\tm.lasseter\n"
        "m.toy2\tfilm.film.actor\tm.hanks\n"
        "m.toy2\tfilm.film.directed_by\tm.lasseter\n"
        "m.gold\tfilm.film.actor\tm.brosnan\n"
        "m.tnd\tfilm.film.actor\tm.brosnan\n"
        "m.soldiers\tfilm.film.actor\tm.hanks\n"
    )
    (directory / "ml-100k.link").write_text(
        "item_id:token\tentity_id:token\n1\tm.toy\n2\tm.toy2\n3\tm.gold\n4\tm.soldiers\n5\tm.tnd\n"
    )


def test_movielens_loader_to_features_with_a_cold_item(tmp_path):
    _write_recbole(tmp_path / "ml")
    dataset = load_movielens_100k(tmp_path / "ml", download=False)
    inter = dataset.interactions
    cold = int(inter.item_map.to_index(4))
    train = inter.subset(inter.item_ids != cold)
    enc = FeatureEncoder(get_schema(dataset.name)).fit_dataset(dataset, train)
    feats = enc.transform_dataset(dataset)
    items = feats["item"]
    assert items.num_entities == 5 and feats["user"].num_entities == 3
    # Item 4 was never trained on: its genre Drama is unknown; its title word "toy" and its
    # Freebase actor (shared with the Toy Story movies) are in the vocabularies of items 1-3, 5.
    assert "Drama" not in enc.vocabulary("genres")
    genre_ids = items["genres/ids"][cold]
    assert enc.vocabulary("genres")[genre_ids[0] - 2] == "Action" and genre_ids[1] == 1
    assert items.stats["genres"]["unknown"] == 1
    assert enc.vocabulary("freebase") == [
        "film.film.actor=m.brosnan",
        "film.film.actor=m.hanks",
        "film.film.directed_by=m.lasseter",
    ]
    assert items["freebase/ids"][cold].tolist()[:2] == [3, 0]
    assert enc.vocabulary("title") == ["story", "toy"]
    assert items["title/ids"][cold].tolist()[:2] == [3, 0]
    # The same cold item given as raw metadata, as a new item would be at serving time.
    record = dataset.item_metadata.loc[4].to_dict()
    alone = enc.transform("item", record)
    for key in items.keys():
        np.testing.assert_array_equal(alone[key][0], items[key][cold], err_msg=key)
