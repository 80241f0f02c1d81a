"""Tests for hybridrec.data.features: vocabularies, TF-IDF, numeric fields, persistence, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.preprocessing import OneHotEncoder

from hybridrec.data.datasets._base import Dataset
from hybridrec.data.features import (
    EntityFeatures,
    FeatureEncoder,
    FeatureError,
    FeatureSchema,
    FieldInfo,
    FieldSpec,
    coverage_table,
)
from hybridrec.data.interactions import IdMap, Interactions

WORDS = "red green blue dark light night day sun moon star river stone".split()


def _movies() -> pd.DataFrame:
    """Six movies covering lists, separated strings, missing values and duplicates."""
    return pd.DataFrame(
        {
            "title": ["Toy Story", "Toy Story 2", "Heat", None, "Heat Wave", ""],
            "genres": [
                ["Animation", "Comedy"],
                "Animation|Comedy",
                [],
                None,
                ["Action", "Crime", "Crime"],
                ["Comedy", "Western"],
            ],
            "year": [1995.0, 1999.0, 1995.0, np.nan, 2001.0, 1950.0],
            "style": ["ale", "lager", None, "ale ", "stout", "ale"],
        },
        index=pd.Index([10, 11, 12, 13, 14, 15], name="item_id"),
    )


def _schema(**text_kwargs) -> FeatureSchema:
    return FeatureSchema(
        [
            FieldSpec("genres", kind="categorical", multi_valued=True),
            FieldSpec("style", kind="categorical"),
            FieldSpec("year", kind="numeric", num_buckets=3),
            FieldSpec("title", kind="text", **text_kwargs),
        ],
        name="toy",
    )


def _random_docs(rng: np.random.Generator, n: int) -> list[str]:
    lengths = rng.integers(0, 9, size=n)
    return [" ".join(rng.choice(WORDS, size=k)) for k in lengths]


def _bag_rows(feats: EntityFeatures, name: str) -> list[dict[int, float]]:
    """Each entity's bag as {id: weight}, padding dropped."""
    ids, weights = feats[f"{name}/ids"], feats[f"{name}/weights"]
    return [
        {int(i): float(w) for i, w in zip(row_ids, row_w) if i != 0}
        for row_ids, row_w in zip(ids, weights)
    ]


# ----------------------------------------------------------------------------- categorical
def test_single_valued_vocabulary_matches_sklearn_one_hot_min_frequency():
    rng = np.random.default_rng(0)
    values = rng.choice(
        [f"v{i}" for i in range(30)],
        size=400,
        p=np.geomspace(1, 0.01, 30) / np.geomspace(1, 0.01, 30).sum(),
    )
    frame = pd.DataFrame({"style": values})
    enc = FeatureEncoder([FieldSpec("style", min_count=5)]).fit(item_metadata=frame)
    ref = OneHotEncoder(min_frequency=5, handle_unknown="infrequent_if_exist").fit(values[:, None])
    expected = sorted(set(ref.categories_[0]) - set(ref.infrequent_categories_[0]))
    assert enc.vocabulary("style") == expected
    assert enc.field_info("style").vocab_size == len(expected) + 2
    ids = enc.transform("item", frame)["style/ids"][:, 0]
    lookup = {v: i + 2 for i, v in enumerate(expected)}
    np.testing.assert_array_equal(ids, [lookup.get(v, 1) for v in values])


def test_multi_valued_vocabulary_matches_sklearn_document_frequency():
    rng = np.random.default_rng(1)
    lists = [list(rng.choice(WORDS, size=rng.integers(0, 5))) for _ in range(200)]
    frame = pd.DataFrame({"tags": pd.Series(lists, dtype=object)})
    enc = FeatureEncoder([FieldSpec("tags", multi_valued=True, min_count=20)]).fit(
        item_metadata=frame
    )
    ref = CountVectorizer(analyzer=lambda x: x, min_df=20, binary=True).fit(lists)
    assert enc.vocabulary("tags") == sorted(ref.vocabulary_)


def test_categorical_encoding_by_hand():
    items = _movies()
    enc = FeatureEncoder(_schema()).fit(item_metadata=items)
    assert enc.vocabulary("genres") == ["Action", "Animation", "Comedy", "Crime", "Western"]
    assert enc.vocabulary("style") == ["ale", "lager", "stout"]
    feats = enc.transform("item", items)
    info = feats.fields["genres"]
    assert (info.vocab_size, info.width) == (7, 2)
    # Lists and "a|b" strings agree; [] and None are the missing bucket; duplicates count once.
    np.testing.assert_array_equal(
        feats["genres/ids"], [[3, 4], [3, 4], [1, 0], [1, 0], [2, 5], [4, 6]]
    )
    np.testing.assert_array_equal(
        feats["genres/weights"], [[1, 1], [1, 1], [1, 0], [1, 0], [1, 1], [1, 1]]
    )
    np.testing.assert_array_equal(feats["genres/lengths"], [2, 2, 1, 1, 2, 2])
    np.testing.assert_array_equal(feats["style/ids"][:, 0], [2, 3, 1, 2, 4, 2])
    assert feats.stats["genres"]["missing"] == 2
    assert feats.stats["style"]["missing"] == 1
    assert feats.stats["genres"]["unknown"] == 0


def test_unknown_values_map_to_bucket_one_and_are_counted():
    enc = FeatureEncoder(_schema()).fit(item_metadata=_movies())
    new = pd.DataFrame(
        {
            "title": ["x", "y", "z"],
            "genres": [["Horror", "Comedy", "Musical"], ["Horror"], "Crime|Noir"],
            "year": [2000.0, 2000.0, 2000.0],
            "style": ["porter", "ale", "porter"],
        }
    )
    feats = enc.transform("item", new)
    # Known values first, then one unknown entry however many unknown values there were.
    np.testing.assert_array_equal(feats["genres/ids"], [[4, 1], [1, 0], [5, 1]])
    np.testing.assert_array_equal(feats["style/ids"][:, 0], [1, 2, 1])
    assert feats.stats["genres"]["unknown"] == 4
    assert feats.stats["genres"]["unknown_entities"] == 3
    assert feats.stats["genres"]["unknown_examples"][0] == "Horror"
    assert enc.unknown_counts["style"] == 2
    assert enc.unknown_counts["genres"] == 4


def test_min_count_and_max_vocab_and_width_truncation():
    frame = pd.DataFrame(
        {
            "tags": pd.Series(
                [["a", "b", "c"], ["a", "b"], ["a"], ["d", "a", "b", "c"], ["e"]], dtype=object
            )
        }
    )
    spec = FieldSpec("tags", multi_valued=True, min_count=2, max_vocab=2, width=2)
    enc = FeatureEncoder([spec]).fit(item_metadata=frame)
    assert enc.vocabulary("tags") == ["a", "b"]  # counts a 4, b 3, c 2: the cap keeps a and b
    feats = enc.transform("item", frame)
    np.testing.assert_array_equal(feats["tags/ids"], [[2, 3], [2, 3], [2, 0], [2, 3], [1, 0]])
    assert feats.stats["tags"]["truncated"] == 2  # rows 0 and 3 lose their unknown marker


def test_default_width_is_the_widest_training_entity():
    frame = pd.DataFrame({"tags": pd.Series([["a", "b", "c"], ["a"], ["b"]], dtype=object)})
    enc = FeatureEncoder([FieldSpec("tags", multi_valued=True)]).fit(
        item_metadata=frame, item_ids=[1, 2]
    )
    assert enc.field_info("tags").width == 1
    feats = enc.transform("item", frame)
    np.testing.assert_array_equal(feats["tags/ids"], [[2], [2], [3]])  # row 0 loses b and c
    assert feats.stats["tags"]["truncated"] == 1
    capped = FeatureEncoder([FieldSpec("tags", multi_valued=True, max_width=2)]).fit(
        item_metadata=frame
    )
    assert capped.field_info("tags").width == 2
    assert capped.fit_stats["tags"]["truncated"] == 1


# ----------------------------------------------------------------------------- text
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(ngram_range=(1, 2), sublinear_tf=False, norm="l1"),
        dict(min_df=3, max_features=8, norm=None),
    ],
)
def test_tfidf_weights_match_sklearn(kwargs):
    rng = np.random.default_rng(2)
    docs = _random_docs(rng, 60)
    docs[5] = ""
    frame = pd.DataFrame({"title": docs})
    train = np.arange(40)
    spec = FieldSpec("title", kind="text", width=1000, **kwargs)
    enc = FeatureEncoder([spec]).fit(item_metadata=frame, item_ids=train)
    ref = TfidfVectorizer(
        sublinear_tf=kwargs.get("sublinear_tf", True),
        ngram_range=kwargs.get("ngram_range", (1, 1)),
        norm=kwargs.get("norm", "l2"),
        min_df=kwargs.get("min_df", 1),
        max_features=kwargs.get("max_features", 20_000),
    ).fit([docs[i] for i in train])
    terms = sorted(ref.vocabulary_, key=ref.vocabulary_.get)
    assert enc.vocabulary("title") == terms
    feats = enc.transform("item", frame)
    dense = ref.transform(docs).toarray()
    for row, bag in enumerate(_bag_rows(feats, "title")):
        if not dense[row].any():  # no vocabulary token: the missing bucket
            assert bag == {1: 1.0}
            continue
        expected = {int(c) + 2: dense[row, c] for c in np.flatnonzero(dense[row])}
        assert bag.keys() == expected.keys()
        np.testing.assert_allclose([bag[k] for k in expected], list(expected.values()), rtol=1e-6)
    assert feats.stats["title"]["mass_cut"] == 0.0
    assert feats.stats["title"]["missing"] == sum(not d.strip() for d in docs) > 0


def test_text_keeps_top_weighted_tokens_and_reports_mass_cut():
    rng = np.random.default_rng(3)
    docs = _random_docs(rng, 80)
    frame = pd.DataFrame({"title": docs})
    enc = FeatureEncoder([FieldSpec("title", kind="text", width=3)]).fit(item_metadata=frame)
    dense = enc.tfidf_vectorizer("title").transform(docs).toarray()
    feats = enc.transform("item", frame)
    kept_total = dropped_total = 0.0
    for row, bag in enumerate(_bag_rows(feats, "title")):
        cols = np.flatnonzero(dense[row])
        if len(cols) == 0:
            assert bag == {1: 1.0}
            continue
        order = cols[np.lexsort((cols, -dense[row, cols]))]  # weight desc, then index
        keep = order[:3]
        assert list(bag) == [int(c) + 2 for c in keep]  # highest weight first
        np.testing.assert_allclose(list(bag.values()), dense[row, keep], rtol=1e-6)
        kept_total += dense[row, keep].sum()
        dropped_total += dense[row, order[3:]].sum()
    assert feats.stats["title"]["mass_cut"] == pytest.approx(
        dropped_total / (kept_total + dropped_total)
    )
    assert feats.stats["title"]["truncated"] == int(((dense > 0).sum(1) > 3).sum()) > 0
    np.testing.assert_array_equal(feats["title/lengths"], np.clip((dense > 0).sum(1), 1, 3))


def test_text_joins_columns_and_token_lists():
    frame = pd.DataFrame(
        {
            "title": ["red sun", None, "blue"],
            "description": ["dark night", "moon", ""],
            "facts": pd.Series([["a=m.1", "b=m.2"], [], "a=m.1"], dtype=object),
        }
    )
    schema = [
        FieldSpec("text", kind="text", column=("title", "description")),
        FieldSpec("facts", kind="text", token_pattern=r"\S+", lowercase=False),
    ]
    enc = FeatureEncoder(schema).fit(item_metadata=frame)
    assert enc.vocabulary("text") == ["blue", "dark", "moon", "night", "red", "sun"]
    assert enc.vocabulary("facts") == ["a=m.1", "b=m.2"]
    feats = enc.transform("item", frame)
    assert set(_bag_rows(feats, "text")[0]) == {2 + 1, 2 + 3, 2 + 4, 2 + 5}
    assert _bag_rows(feats, "facts")[1] == {1: 1.0}


# ----------------------------------------------------------------------------- numeric
def test_numeric_standardized_on_train_with_missing_indicator_and_buckets():
    values = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10, np.nan, 100.0])
    frame = pd.DataFrame({"abv": values})
    spec = FieldSpec("abv", kind="numeric", num_buckets=2)
    enc = FeatureEncoder([spec]).fit(item_metadata=frame, item_ids=np.arange(11))
    train = values[:10]
    mean, std = train.mean(), train.std()
    feats = enc.transform("item", frame)
    dense = feats["abv"]
    assert dense.dtype == np.float32 and dense.shape == (12, 2)
    assert not np.isnan(dense).any()
    expected = np.where(np.isnan(values), 0.0, (values - mean) / std)
    np.testing.assert_allclose(dense[:, 0], expected, rtol=1e-6)
    np.testing.assert_array_equal(dense[:, 1], np.isnan(values))
    # One edge at the training median 5.5: buckets (-inf, 5.5) -> 2, [5.5, inf) -> 3, NaN -> 1.
    np.testing.assert_array_equal(enc.numeric_stats("abv")["edges"], [5.5])
    np.testing.assert_array_equal(feats["abv/ids"][:, 0], [2] * 5 + [3] * 5 + [1, 3])
    info = feats.fields["abv"]
    assert (info.dim, info.vocab_size, info.width) == (2, 4, 1)
    assert feats.stats["abv"]["missing"] == 1


def test_numeric_log1p_and_constant_field():
    frame = pd.DataFrame({"price": [0.0, 9.0, 99.0, None], "flat": [3.0, 3.0, 3.0, 3.0]})
    schema = [FieldSpec("price", kind="numeric", log1p=True), FieldSpec("flat", kind="numeric")]
    enc = FeatureEncoder(schema).fit(item_metadata=frame)
    logs = np.log1p([0.0, 9.0, 99.0])
    feats = enc.transform("item", frame)
    np.testing.assert_allclose(feats["price"][:3, 0], (logs - logs.mean()) / logs.std(), rtol=1e-6)
    np.testing.assert_array_equal(feats["price"][:, 1], [0, 0, 0, 1])
    np.testing.assert_array_equal(feats["flat"], [[0, 0]] * 4)  # std 0 -> divide by 1
    assert "price/ids" not in feats and feats.fields["price"].vocab_size == 0


# ----------------------------------------------------------------------------- cold start
def test_cold_item_gets_the_features_it_would_get_in_a_table():
    items = _movies()
    enc = FeatureEncoder(_schema(width=4)).fit(item_metadata=items, item_ids=[10, 11, 12, 13])
    full = enc.transform("item", items)
    for row, raw_id in enumerate(items.index):
        record = items.loc[raw_id].to_dict()
        alone = enc.transform("item", record)
        from_series = enc.transform("item", items.loc[raw_id])
        assert from_series.raw_ids.tolist() == [raw_id]
        for key in full.keys():
            np.testing.assert_array_equal(alone[key][0], full[key][row], err_msg=key)
            np.testing.assert_array_equal(from_series[key][0], full[key][row], err_msg=key)
    # Any subset, in any order, gets the rows of the whole table.
    rows = np.random.default_rng(5).permutation(len(items))[:4]
    subset = enc.transform("item", items.iloc[rows])
    for key in full.keys():
        np.testing.assert_array_equal(subset[key], full[key][rows], err_msg=key)
    # Item 14's genres (Action, Crime) and style (stout) were never seen in training.
    assert enc.vocabulary("genres") == ["Animation", "Comedy"]
    np.testing.assert_array_equal(full["genres/ids"][4], [1, 0])
    assert full["style/ids"][4, 0] == 1


def test_fit_uses_only_the_training_entities():
    items = _movies()
    enc = FeatureEncoder(_schema()).fit(item_metadata=items, item_ids=[14, 15])
    assert enc.vocabulary("genres") == ["Action", "Comedy", "Crime", "Western"]
    assert enc.numeric_stats("year")["mean"] == pytest.approx((2001 + 1950) / 2)
    assert enc.vocabulary("title") == ["heat", "wave"]
    assert enc.fit_stats["genres"]["num_fit"] == 2


def test_records_list_input():
    enc = FeatureEncoder(_schema()).fit(item_metadata=_movies())
    records = [
        {"title": "Heat", "genres": ["Crime"], "year": 1995, "style": "ale"},
        {"title": None, "genres": None, "year": None, "style": None},
    ]
    feats = enc.transform("item", records)
    assert feats.num_entities == 2
    np.testing.assert_array_equal(feats["genres/ids"], [[5, 0], [1, 0]])
    np.testing.assert_array_equal(feats["year"][1], [0, 1])


# ----------------------------------------------------------------------------- persistence
def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    rng = np.random.default_rng(4)
    items = pd.concat([_movies()] * 3, ignore_index=True)
    items["title"] = _random_docs(rng, len(items))
    items["facts"] = [
        " ".join(f"r=m.{k}" for k in rng.integers(0, 9, 4)) for _ in range(len(items))
    ]
    users = pd.DataFrame({"age": [20.0, 31, np.nan, 55], "job": ["a", "b", "a", None]})
    schema = FeatureSchema(
        list(_schema(ngram_range=(1, 2), min_df=2, width=5))
        + [
            FieldSpec("facts", kind="text", token_pattern=r"\S+", lowercase=False, norm="l1"),
            FieldSpec("price", kind="numeric", column="year", log1p=True, num_buckets=4),
            FieldSpec("age", entity="user", kind="numeric", num_buckets=3),
            FieldSpec("job", entity="user"),
        ],
        name="toy",
    )
    enc = FeatureEncoder(schema).fit(item_metadata=items, user_metadata=users)
    enc.save(tmp_path / "enc")
    loaded = FeatureEncoder.load(tmp_path / "enc")
    # Safe formats only: JSON, and an npz that loads without pickle.
    assert sorted(p.name for p in (tmp_path / "enc").iterdir()) == ["features.json", "features.npz"]
    json.loads((tmp_path / "enc" / "features.json").read_text())
    np.load(tmp_path / "enc" / "features.npz", allow_pickle=False).close()
    new_items = items.copy()
    new_items["title"] = _random_docs(rng, len(items))  # unseen text, same vocabulary
    for entity, frame in (("item", items), ("item", new_items), ("user", users)):
        before, after = enc.transform(entity, frame), loaded.transform(entity, frame)
        assert before.fields == after.fields
        assert before.keys() == after.keys()
        for key in before.keys():
            np.testing.assert_array_equal(before[key], after[key], err_msg=key)
            assert before[key].dtype == after[key].dtype
    assert loaded.schema.to_dict() == schema.to_dict()
    for name in ("genres", "title", "facts", "job"):
        assert loaded.vocabulary(name) == enc.vocabulary(name)


def test_version_1_directories_still_load(tmp_path):
    # Version 1 (before field kinds were plug-ins) saved every kind's options in every field.
    items = _movies()
    enc = FeatureEncoder(_schema()).fit(item_metadata=items)
    enc.save(tmp_path)
    doc = json.loads((tmp_path / "features.json").read_text())
    legacy = dict(multi_valued=False, separator="|", min_count=1, max_vocab=None, width=None)
    legacy.update(max_width=256, log1p=False, num_buckets=0, max_features=20_000, min_df=1)
    legacy.update(max_df=1.0, ngram_range=[1, 1], sublinear_tf=True, norm="l2")
    legacy.update(lowercase=True, token_pattern=r"(?u)\b\w\w+\b", stop_words=None)
    doc["version"] = 1
    doc["schema"]["fields"] = [{**legacy, **f} for f in doc["schema"]["fields"]]
    (tmp_path / "features.json").write_text(json.dumps(doc))
    loaded = FeatureEncoder.load(tmp_path)
    assert loaded.schema.fields == enc.schema.fields
    before, after = enc.transform("item", items), loaded.transform("item", items)
    for key in before.keys():
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)
    doc["version"] = 3
    (tmp_path / "features.json").write_text(json.dumps(doc))
    with pytest.raises(FeatureError, match="version 3"):
        FeatureEncoder.load(tmp_path)


def test_field_spec_options_are_attributes_and_kinds_keep_their_own():
    spec = FieldSpec("year", kind="numeric", num_buckets=3)
    assert (spec.num_buckets, spec.log1p, spec.column, spec.is_bag) == (3, False, "year", True)
    assert not FieldSpec("year", kind="numeric").is_bag
    with pytest.raises(AttributeError, match="numeric field 'year' has no attribute or option"):
        getattr(spec, "multi_valued")  # noqa: B009
    with pytest.raises(AttributeError):
        spec.kind = "text"
    # replace keeps the options the new kind accepts; a spec pickles (copies) as itself.
    as_text = spec.replace(kind="text", min_df=2)
    assert as_text.kind == "text" and as_text.min_df == 2 and "num_buckets" not in as_text.options
    import copy
    import pickle

    assert pickle.loads(pickle.dumps(spec)) == spec == copy.deepcopy(spec)
    assert FieldSpec("v", kind="vector", column=["a", "b"]).columns == ("a", "b")
    assert FieldSpec("h", entity="user", kind="history").columns == ()


def test_load_rejects_missing_or_foreign_directories(tmp_path):
    with pytest.raises(FeatureError, match="no saved FeatureEncoder"):
        FeatureEncoder.load(tmp_path)
    (tmp_path / "features.json").write_text(json.dumps({"format": "other", "version": 1}))
    np.savez(tmp_path / "features.npz")
    with pytest.raises(FeatureError, match="not a hybridrec feature encoder"):
        FeatureEncoder.load(tmp_path)


# ----------------------------------------------------------------------------- IdMap alignment
def test_transform_orders_rows_by_id_map():
    items = _movies()
    enc = FeatureEncoder(_schema()).fit(item_metadata=items)
    id_map = IdMap(np.array([13, 10, 15, 11, 12, 14]), name="item")
    feats = enc.transform("item", items, id_map=id_map)
    plain = enc.transform("item", items)
    order = [3, 0, 5, 1, 2, 4]
    for key in plain.keys():
        np.testing.assert_array_equal(feats[key], plain[key][order])
    np.testing.assert_array_equal(feats.raw_ids, id_map.raw_ids)
    # Raw IDs read as strings still match an integer IdMap.
    as_text = items.set_axis(items.index.astype(str))
    np.testing.assert_array_equal(
        enc.transform("item", as_text, id_map=id_map)["style/ids"], feats["style/ids"]
    )


@pytest.mark.parametrize(
    "index, match",
    [
        ([10, 11, 12, 13, 14], r"lacks 1 of the 6 item IDs of the IdMap, e.g. \[15\]"),
        (
            [10, 11, 12, 13, 14, 15, 99],
            r"1 row\(s\) whose item ID is not in the item IdMap, e.g. 99 at row 6",
        ),
        ([10, 11, 12, 13, 14, 14], r"duplicate item ID 14 \(rows \[4, 5\]\)"),
    ],
)
def test_rows_not_matching_the_id_map_raise(index, match):
    items = _movies()
    enc = FeatureEncoder(_schema()).fit(item_metadata=items)
    frame = items.iloc[np.arange(len(index)) % len(items)].set_axis(pd.Index(index))
    with pytest.raises(FeatureError, match=match):
        enc.transform("item", frame, id_map=IdMap(items.index.to_numpy(), name="item"))


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "spec, column, match",
    [
        (
            FieldSpec("year", kind="numeric"),
            ["1995", "x", None],
            r"numeric field 'year' \(item column 'year'\): row 1 \(ID 1\) holds str 'x'",
        ),
        (
            FieldSpec("year", kind="numeric"),
            [1.0, np.inf, None],
            r"row 1 \(ID 1\) holds inf; use NaN",
        ),
        (
            FieldSpec("year", kind="numeric", log1p=True),
            [1.0, -3.0, None],
            r"row 1 \(ID 1\) holds -3.0, but log1p needs values > -1",
        ),
        (
            FieldSpec("year", kind="categorical"),
            ["a", ["b", "c"], None],
            r"row 1 \(ID 1\) holds a list of type list.*set multi_valued=True",
        ),
        (
            FieldSpec("year", kind="categorical"),
            [1.0, 2.5, None],
            r"row 1 \(ID 1\) holds 2.5; a categorical value must be a string or an integer",
        ),
        (
            FieldSpec("year", kind="categorical", multi_valued=True),
            [["a"], 5.5, None],
            r"row 1 \(ID 1\) holds float 5.5; a multi-valued categorical field takes a list",
        ),
        (
            FieldSpec("year", kind="categorical", multi_valued=True),
            [["a"], ["b", {"c": 1}], None],
            r"row 1 \(ID 1\) holds the element \{'c': 1\} of type dict",
        ),
        (
            FieldSpec("year", kind="text"),
            ["a b", 3.5, None],
            r"text field 'year' \(item column 'year'\): row 1 \(ID 1\) holds float 3.5",
        ),
    ],
)
def test_wrong_types_raise(spec, column, match):
    frame = pd.DataFrame({"year": pd.Series(column, dtype=object)})
    with pytest.raises(FeatureError, match=match):
        FeatureEncoder([spec]).fit(item_metadata=frame)


def test_wrong_type_in_a_new_entity_raises_at_transform():
    enc = FeatureEncoder(_schema()).fit(item_metadata=_movies())
    with pytest.raises(FeatureError, match=r"numeric field 'year'.*holds str 'nineteen'"):
        enc.transform("item", {"title": "", "genres": [], "year": "nineteen", "style": None})


@pytest.mark.parametrize(
    "spec, column, match",
    [
        (
            FieldSpec("f", min_count=3),
            ["a", "b", "a", None],
            r"empty vocabulary: no value occurs in at least min_count=3",
        ),
        (
            FieldSpec("f", multi_valued=True),
            [[], None, ""],
            r"categorical field 'f'.*empty vocabulary",
        ),
        (
            FieldSpec("f", kind="text"),
            ["", None, "  "],
            r"text field 'f'.*empty vocabulary from 3 training items",
        ),
        (
            FieldSpec("f", kind="text", min_df=2),
            ["aa bb", "cc", "dd"],
            r"text field 'f'.*empty vocabulary",
        ),
        (
            FieldSpec("f", kind="numeric"),
            [None, np.nan, None],
            r"numeric field 'f'.*no value to fit",
        ),
    ],
)
def test_empty_vocabulary_raises(spec, column, match):
    frame = pd.DataFrame({"f": pd.Series(column, dtype=object)})
    with pytest.raises(FeatureError, match=match):
        FeatureEncoder([spec]).fit(item_metadata=frame)


def test_schema_column_absent_from_the_data_raises():
    items = _movies().drop(columns=["style"])
    with pytest.raises(
        FeatureError, match=r"lacks the schema column\(s\) 'style' \(field 'style'\)"
    ):
        FeatureEncoder(_schema()).fit(item_metadata=items)
    enc = FeatureEncoder(_schema()).fit(item_metadata=_movies())
    with pytest.raises(FeatureError, match=r"lacks the schema column\(s\) 'year' \(field 'year'\)"):
        enc.transform("item", {"title": "x", "genres": [], "style": "ale"})


def test_other_misuse_raises():
    items = _movies()
    with pytest.raises(FeatureError, match="not fitted"):
        FeatureEncoder(_schema()).transform("item", items)
    enc = FeatureEncoder(_schema()).fit(item_metadata=items)
    with pytest.raises(FeatureError, match="no user fields"):
        enc.transform("user", items)
    with pytest.raises(FeatureError, match="entity must be one of"):
        enc.transform("movie", items)
    with pytest.raises(FeatureError, match="must be a DataFrame"):
        enc.transform("item", "Toy Story")
    with pytest.raises(FeatureError, match="no user_metadata was given"):
        FeatureEncoder([FieldSpec("job", entity="user")]).fit(item_metadata=items)
    with pytest.raises(KeyError, match=r"1 training item ID\(s\) have no row .* e.g. \[99\]"):
        FeatureEncoder(_schema()).fit(item_metadata=items, item_ids=[10, 99])
    with pytest.raises(FeatureError, match="duplicate item ID 10"):
        FeatureEncoder(_schema()).fit(item_metadata=pd.concat([items, items.iloc[:1]]))
    with pytest.raises(FeatureError, match="no vocabulary"):
        enc.vocabulary("year")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="a/b"), "without '/'"),
        (dict(name="ids"), "reserved"),
        (dict(name="f", entity="movie"), "entity must be one of"),
        (
            dict(name="f", kind="image"),
            "FieldSpec 'f': unknown field kind 'image'; available field kinds: categorical, "
            "history, numeric, text, vector; or a dotted path",
        ),
        (dict(name="f", kind="no_such_pkg.kind"), "unknown field kind 'no_such_pkg.kind'"),
        (dict(name="f", kind="numeric", multi_valued=True), "categorical fields only"),
        (
            dict(name="f", kind="text", log1p=True, bogus=1),
            r"FieldSpec 'f': unknown option\(s\) \['bogus', 'log1p'\] for a text field "
            r"\(log1p applies to numeric fields only\); text fields accept \[",
        ),
        (dict(name="f", kind="history", column="x"), "a history field reads no metadata column"),
        (dict(name="f", kind="history", entity="item"), "a history field is a user field"),
        (dict(name="f", kind="vector", dim=0), "dim must be an integer >= 1"),
        (dict(name="f", column=("a", "b")), "only a text field may read several columns"),
        (dict(name="f", kind="numeric", num_buckets=1), "num_buckets"),
        (dict(name="f", min_count=0), "min_count"),
        (dict(name="f", width=0), "width"),
        (dict(name="f", max_width=0), "max_width"),
        (dict(name="f", kind="text", norm="max"), "norm"),
    ],
)
def test_field_spec_validation(kwargs, match):
    with pytest.raises(FeatureError, match=match):
        FieldSpec(**kwargs)


def test_schema_rejects_duplicate_names_and_round_trips_json():
    with pytest.raises(FeatureError, match="duplicate field name 'a'"):
        FeatureSchema([FieldSpec("a"), FieldSpec("a", entity="user")])
    schema = _schema(ngram_range=(1, 3))
    again = FeatureSchema.from_dict(json.loads(json.dumps(schema.to_dict())))
    assert again.fields == schema.fields
    assert schema["title"].ngram_range == (1, 3)
    with pytest.raises(KeyError, match="has no field 'nope'"):
        schema["nope"]
    assert schema.select(["year"]).names == ["year"]


# ----------------------------------------------------------------------------- consumers
def test_gather_with_numpy_and_jax_indices():
    import jax
    import jax.numpy as jnp

    items = _movies()
    enc = FeatureEncoder(_schema()).fit(item_metadata=items)
    feats = enc.transform("item", items)
    batch = feats.gather(np.array([4, 0, 4]))
    np.testing.assert_array_equal(batch["genres/ids"], feats["genres/ids"][[4, 0, 4]])
    np.testing.assert_array_equal(batch["ids"], [4, 0, 4])
    on_device = feats.to_jax()
    assert isinstance(on_device["title/weights"], jax.Array)

    @jax.jit
    def pooled(ids):
        b = on_device.gather(ids)
        return (b["title/weights"]).sum(-1) + b["year"][:, 0]

    got = pooled(jnp.array([5, 1]))
    want = feats["title/weights"][[5, 1]].sum(-1) + feats["year"][[5, 1], 0]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
    # numpy features, JAX indices
    np.testing.assert_array_equal(
        np.asarray(feats.gather(jnp.array([2]))["style/ids"]), feats["style/ids"][[2]]
    )


def test_field_info_keys_and_take():
    enc = FeatureEncoder(_schema()).fit(item_metadata=_movies())
    feats = enc.transform("item", _movies())
    assert set(feats.keys()) == {k for info in feats.fields.values() for k in info.keys}
    assert feats.fields["year"] == FieldInfo("year", "item", "numeric", ("year",), 5, 1, 2)
    sub = feats.take(np.array([1, 3]))
    assert sub.num_entities == 2 and sub.raw_ids.tolist() == [11, 13]


def _toy_dataset() -> tuple[Dataset, Interactions]:
    items = _movies()
    users = pd.DataFrame({"job": ["a", "b", "c"]}, index=pd.Index(["u1", "u2", "u3"]))
    inter = Interactions.from_dataframe(
        pd.DataFrame({"user_id": ["u1", "u2", "u3", "u1"], "item_id": [10, 11, 12, 15]}),
        user_map=IdMap(np.array(["u1", "u2", "u3"], dtype=object), "user"),
        item_map=IdMap(items.index.to_numpy(), "item"),
    )
    return Dataset("toy", inter, item_metadata=items, user_metadata=users), inter


def test_fit_dataset_on_training_interactions_and_coverage_table():
    dataset, inter = _toy_dataset()
    train = inter.subset(np.array([0, 1, 3]))  # items 10, 11, 15; users u1, u2
    schema = FeatureSchema(list(_schema()) + [FieldSpec("job", entity="user")])
    enc = FeatureEncoder(schema).fit_dataset(dataset, train)
    assert enc.vocabulary("job") == ["a", "b"]
    assert enc.vocabulary("genres") == ["Animation", "Comedy", "Western"]
    feats = enc.transform_dataset(dataset)
    assert set(feats) == {"item", "user"}
    assert feats["user"]["job/ids"][:, 0].tolist() == [2, 3, 1]
    assert feats["item"].num_entities == 6
    table = coverage_table(enc, feats)
    lines = table.splitlines()
    assert lines[0].startswith("| field | entity | kind |")
    rows = {line.split(" | ")[0].strip("| "): line for line in lines[2:]}
    assert set(rows) == {"genres", "style", "year", "title", "job"}
    assert "| 66.7% | 3 |" in rows["genres"]  # 4 of 6 movies have genres; 3 trained values
    assert "| 83.3% |" in rows["year"] and "| 100.0% | 2 |" in rows["job"]


def test_numeric_text_reads_as_numbers_and_the_error_names_the_bad_value_and_file():
    """A CSV year column with one stray word: '1992' is a number, 'nineteen ninety' the error."""
    schema = FeatureSchema([FieldSpec("year", entity="item", kind="numeric")])
    frame = pd.DataFrame({"year": ["1992", "nineteen ninety", None]}, index=["a", "b", "c"])
    frame.attrs["source"] = "items.csv"
    with pytest.raises(
        FeatureError, match=r"of items\.csv: row 1 \(ID 'b'\) holds str 'nineteen ninety'"
    ):
        FeatureEncoder(schema).fit(frame)
    good = pd.DataFrame({"year": ["1992", "1993", None]}, index=["a", "b", "c"])
    encoder = FeatureEncoder(schema).fit(good)
    np.testing.assert_allclose(
        encoder.transform("item", good).arrays["year"], [[-1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
    )
