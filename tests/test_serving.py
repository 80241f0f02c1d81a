"""End-to-end tests of ``hybridrec.serving``: train a smoke run once, load it, and check every
answer against a brute-force computation with the model itself (score_all on whole tables)."""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import hybrid
from hybridrec.experiment import prepare_data
from hybridrec.serving import ServingError, TrainedModel, load, read_export
from hybridrec.train import train_and_evaluate

ITEM_COLUMNS = ("title", "genres", "release_year", "freebase")
USER_COLUMNS = ("age", "gender", "occupation")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A trained hybrid smoke run (one epoch) and the data it was trained on."""
    config = hybrid.get_config("smoke")
    config.plots = False
    config.train.num_epochs = 1
    workdir = str(tmp_path_factory.mktemp("serving") / "run")
    train_and_evaluate(config, workdir)
    data = prepare_data(config)  # only to build references: load() never reads the dataset
    return types.SimpleNamespace(workdir=workdir, config=config, data=data)


@pytest.fixture(scope="module")
def trained(run) -> TrainedModel:
    return load(run.workdir)


def _jnp(batch):
    return {k: jnp.asarray(v) for k, v in batch.items()}


@functools.cache
def _reference_fns(trained):
    """The model's own score_all / item_repr, jitted whole: no chunking, padding or caching."""
    model = trained.model
    return jax.jit(lambda u, i: model.score_all(u, i)), jax.jit(lambda i: model.item_repr(i))


def _brute_scores(trained, users, items):
    """(B, M) scores straight from the model's score_all on whole batches."""
    return np.asarray(_reference_fns(trained)[0](_jnp(users), _jnp(items)))


def _all_items(trained):
    return trained.item_batch(trained.item_ids)


def _all_users(trained):
    return trained.user_batch(trained.user_ids)


def _cold(batch):
    return {**batch, "known": np.zeros_like(batch["known"])}


def _raw_metadata(frame, raw_id, columns):
    row = frame.loc[raw_id]
    return {c: row[c] for c in columns}


def _cosine_top(query, vectors, k, exclude=None):
    sims = vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
    if exclude is not None:
        sims[exclude] = -np.inf
    order = np.argsort(-sims, kind="stable")[:k]
    return order, sims[order]


def test_load_restores_the_run(run, trained):
    dataset = run.data.dataset
    np.testing.assert_array_equal(trained.item_ids, dataset.interactions.item_map.raw_ids)
    np.testing.assert_array_equal(trained.user_ids, dataset.interactions.user_map.raw_ids)
    assert trained.step == 1
    assert trained.factorised
    # The item table rebuilt from entities.npz is the one the trainer used.
    for key, value in run.data.item_table.items():
        np.testing.assert_array_equal(_all_items(trained)[key], value)
    # Display names come from the metadata's titles.
    assert trained.item_names[3] == dataset.item_metadata["title"].iloc[3]


def test_recommend_excludes_training_items_and_matches_score_all(run, trained):
    train = run.data.train
    user = trained.user_ids[int(np.argmax(train.user_counts()))]  # the most active user
    row = int(trained.user_index(user))
    seen = set(train.item_map.to_raw(train.item_ids[train.user_ids == row]))
    assert set(trained.seen_items(user)) == seen
    k = 5
    recs = trained.recommend(user, k=k)
    assert list(recs.columns) == ["item_id", "score", "name"]
    assert len(recs) == k
    assert not seen & set(recs["item_id"])
    # Brute force: the model's own score_all over the whole catalogue, seen items removed.
    reference = _brute_scores(trained, trained.user_batch([user]), _all_items(trained))[0]
    np.testing.assert_allclose(trained.score(user)[0], reference, rtol=1e-5, atol=1e-5)
    masked = reference.copy()
    masked[trained.item_index(list(seen))] = -np.inf
    top = np.argsort(-masked, kind="stable")[:k]
    np.testing.assert_array_equal(recs["item_id"], trained.item_ids[top])
    np.testing.assert_allclose(recs["score"], reference[top], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(recs["name"], trained.item_names[top])
    # Without exclusion the seen items compete too.
    all_recs = trained.recommend(user, k=k, exclude_seen=False)
    np.testing.assert_array_equal(
        all_recs["item_id"], trained.item_ids[np.argsort(-reference, kind="stable")[:k]]
    )


def test_score_in_padded_chunks_equals_one_call(trained):
    users = list(trained.user_ids[[0, 5, 7, 11, 59]])
    whole = trained.score(users)
    assert whole.shape == (5, trained.num_items)
    chunked = copy.copy(trained)
    chunked.item_chunk_size, chunked.user_batch_size = 16, 2  # 40 items: a partial last chunk
    np.testing.assert_allclose(chunked.score(users), whole, rtol=1e-5, atol=1e-5)


def test_similar_items_and_users_match_brute_force_cosine(trained, tmp_path):
    [path] = trained.export(tmp_path / "vectors.npz")
    exported = read_export(path)
    item = trained.item_ids[7]
    result = trained.similar_items(item, k=6)
    order, sims = _cosine_top(exported["item_vectors"][7], exported["item_vectors"], 6, exclude=7)
    assert item not in set(result["item_id"])
    np.testing.assert_array_equal(result["item_id"], exported["item_ids"][order])
    np.testing.assert_allclose(result["similarity"], sims, rtol=1e-5)
    assert np.all(np.diff(result["similarity"]) <= 0)

    user = trained.user_ids[3]
    result = trained.similar_users(user, k=4)
    order, sims = _cosine_top(exported["user_vectors"][3], exported["user_vectors"], 4, exclude=3)
    np.testing.assert_array_equal(result["user_id"], exported["user_ids"][order])
    np.testing.assert_allclose(result["similarity"], sims, rtol=1e-5)


def test_new_item_from_raw_metadata_scores_as_the_cold_catalogue_item(run, trained):
    metadata = run.data.dataset.item_metadata
    raw = trained.item_ids[4]
    new = _raw_metadata(metadata, raw, ITEM_COLUMNS)
    scores = trained.score_new_item(new)
    assert scores.shape == (trained.num_users,)
    assert trained.unknown_counts == {"genres": 0, "release_year": 0, "title": 0, "freebase": 0}
    # Brute force: the catalogue item's own encoded row, with its ID switched off.
    cold_row = _cold(trained.item_batch([raw]))
    reference = _brute_scores(trained, _all_users(trained), cold_row)[:, 0]
    np.testing.assert_allclose(scores, reference, rtol=1e-5, atol=1e-5)
    # known=0 matters: with its trained ID embedding the same item scores differently.
    warm = _brute_scores(trained, _all_users(trained), trained.item_batch([raw]))[:, 0]
    assert np.abs(warm - reference).max() > 1e-4
    # A subset of users, in the order asked.
    some = list(trained.user_ids[[9, 2]])
    np.testing.assert_allclose(
        trained.score_new_item(new, user_ids=some), reference[[9, 2]], rtol=1e-5, atol=1e-5
    )

    # Nearest catalogue items to the new item: cosine of its cold vector against the catalogue.
    vectors, _ = trained.item_vectors()
    cold_vector = np.asarray(_reference_fns(trained)[1](_jnp(cold_row)))[0]
    order, sims = _cosine_top(cold_vector, vectors, 5)
    result = trained.similar_items_to_new(new, k=5)
    np.testing.assert_array_equal(result["item_id"], trained.item_ids[order])
    np.testing.assert_allclose(result["similarity"], sims, rtol=1e-5)


def test_unknown_category_values_are_counted(run, trained):
    new = _raw_metadata(run.data.dataset.item_metadata, trained.item_ids[4], ITEM_COLUMNS)
    new["genres"] = [*new["genres"], "Not A Genre", "Neither"]
    with pytest.warns(UserWarning, match="outside the training vocabulary"):
        trained.score_new_item(new)
    assert trained.unknown_counts["genres"] == 2
    # A missing column is an error naming it, not a silent default.
    with pytest.raises(ValueError, match="freebase"):
        trained.score_new_item({k: v for k, v in new.items() if k != "freebase"})


def _no_history(batch):
    return {**batch, "history/weights": np.zeros_like(batch["history/weights"])}


def test_recommend_for_new_user_matches_brute_force(run, trained):
    raw = trained.user_ids[6]
    new = _raw_metadata(run.data.dataset.user_metadata, raw, USER_COLUMNS)
    result = trained.recommend_for_new_user(new, k=5)
    # A new user has no ID row and, without items=, no history.
    cold = _no_history(_cold(trained.user_batch([raw])))
    reference = _brute_scores(trained, cold, _all_items(trained))[0]
    top = np.argsort(-reference, kind="stable")[:5]
    np.testing.assert_array_equal(result["item_id"], trained.item_ids[top])
    np.testing.assert_allclose(result["score"], reference[top], rtol=1e-5, atol=1e-5)


def test_new_user_with_items_is_scored_from_that_history(run, trained):
    # hybrid.py's history tower: a new user who names the items a training user has is scored
    # as that user without the ID row, and the named items are not recommended again.
    assert "history/ids" in trained.model.user_reads
    raw = trained.user_ids[6]
    batch = trained.user_batch([raw])
    history = batch["history/ids"][0]
    seen = history[history > 0] - 1
    items = list(trained.item_ids[seen])
    assert len(items) > 0
    new = _raw_metadata(run.data.dataset.user_metadata, raw, USER_COLUMNS)
    result = trained.recommend_for_new_user(new, k=5, items=items)
    # No ID row (known = 0) but the history counts (history/known = 1).
    as_new = {**_cold(batch), "history/known": np.ones(1, np.float32)}
    reference = _brute_scores(trained, as_new, _all_items(trained))[0].copy()
    reference[seen] = -np.inf
    top = np.argsort(-reference, kind="stable")[:5]
    np.testing.assert_array_equal(result["item_id"], trained.item_ids[top])
    np.testing.assert_allclose(result["score"], reference[top], rtol=1e-5, atol=1e-5)
    assert not set(result["item_id"]) & set(items)
    # The history moves every score, not only which items are left to rank.
    with_items = trained._score_batches(
        trained.encode_new("user", new, items=items), _all_items(trained)
    )
    without = trained._score_batches(trained.encode_new("user", new), _all_items(trained))
    assert np.abs(with_items - without).max() > 1e-3
    # Order and repeats in items= do not matter; a bare ID is one item; unknown IDs raise.
    shuffled = trained.encode_new("user", new, items=items[::-1] + items[:2])
    np.testing.assert_array_equal(
        np.sort(shuffled["history/ids"], axis=1),
        np.sort(trained.encode_new("user", new, items=items)["history/ids"], axis=1),
    )
    one = trained.encode_new("user", new, items=items[0])["history/ids"][0]
    assert (one > 0).sum() == 1 and one[one > 0][0] == seen[0] + 1
    assert items[0] not in set(trained.recommend_for_new_user(new, k=50, items=items[0])["item_id"])
    with pytest.raises(KeyError):
        trained.recommend_for_new_user(new, items=["no-such-item"])
    with pytest.raises(ServingError, match="new item"):
        trained.encode_new(
            "item",
            _raw_metadata(run.data.dataset.item_metadata, trained.item_ids[0], ITEM_COLUMNS),
            items=items,
        )


@pytest.mark.parametrize("fmt", ["npz", "parquet"])
def test_export_round_trip_reproduces_scores(trained, tmp_path, fmt):
    paths = trained.export(tmp_path / "export", format=fmt)
    assert all(os.path.exists(p) for p in paths)
    exported = read_export(paths[0] if fmt == "npz" else tmp_path / "export")
    vectors, biases = trained.item_vectors()
    np.testing.assert_array_equal(exported["item_ids"], trained.item_ids)
    np.testing.assert_array_equal(exported["user_ids"], trained.user_ids)
    np.testing.assert_array_equal(exported["item_vectors"], vectors)
    np.testing.assert_array_equal(exported["item_biases"], biases)
    np.testing.assert_array_equal(exported["item_known"], trained.item_known)
    np.testing.assert_array_equal(exported["item_names"], trained.item_names)
    # What an ANN server would compute from the export is the model's score.
    scores = (
        exported["user_vectors"] @ exported["item_vectors"].T
        + exported["user_biases"][:, None]
        + exported["item_biases"][None, :]
    )
    np.testing.assert_allclose(scores, trained.score(trained.user_ids), rtol=1e-4, atol=1e-5)


def test_unknown_ids_and_bad_requests_raise_clear_errors(trained):
    with pytest.raises(KeyError, match="unknown user ID 'nobody'"):
        trained.recommend("nobody")
    with pytest.raises(KeyError, match="unknown user ID"):
        trained.score([trained.user_ids[0], "nobody"])
    with pytest.raises(KeyError, match="unknown item ID 'i999999'"):
        trained.similar_items("i999999")
    with pytest.raises(ServingError, match="k must be a positive integer"):
        trained.recommend(trained.user_ids[0], k=0)
    with pytest.raises(ServingError, match="export format"):
        trained.export("x", format="csv")
    not_factorised = copy.copy(trained)
    not_factorised.model = types.SimpleNamespace(factorised=False)
    with pytest.raises(ServingError, match="not factorised"):
        not_factorised.similar_items(trained.item_ids[0])


def test_workdirs_that_cannot_be_loaded(run, tmp_path):
    with pytest.raises(ServingError, match="no config.json"):
        load(tmp_path / "missing")
    # A run directory without a checkpoint.
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "entities.npz"):
        shutil.copy(os.path.join(run.workdir, name), bare / name)
    with pytest.raises(ServingError, match="no checkpoint"):
        load(bare)
    assert not (bare / "checkpoints").exists()  # nothing created by looking
    # A baseline run: its config names a non-neural model.
    config = json.loads((bare / "config.json").read_text())
    config["model"] = {"name": "popularity"}
    (bare / "config.json").write_text(json.dumps(config))
    with pytest.raises(ServingError, match="baseline"):
        load(bare)
    with pytest.raises(ServingError, match="step 7"):
        load(run.workdir, step=7)


def test_exclude_seen_needs_the_saved_training_interactions(run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(run.workdir, old)
    with np.load(old / "entities.npz", allow_pickle=True) as npz:
        arrays = {k: npz[k] for k in npz.files if not k.startswith("train_")}
    np.savez(old / "entities.npz", **arrays)
    trained = load(old)
    user = trained.user_ids[0]
    with pytest.raises(ServingError, match="exclude_seen=False"):
        trained.recommend(user)
    assert len(trained.recommend(user, k=3, exclude_seen=False)) == 3


def test_find_items_and_item_by_title(trained):
    names = trained.item_names
    assert names is not None
    counts = trained.item_counts
    # The most popular item's name, in another case: exact match first.
    row = int(np.argmax(counts))
    found = trained.find_items(names[row].upper())
    assert found.item_id.iloc[0] == trained.item_ids[row]
    # A fragment: every name containing it (brute force), exact, prefix, then others by count.
    fragment = names[row][1:4].lower()
    expected = {i for i, n in zip(trained.item_ids, names) if fragment in n.lower()}
    assert set(trained.find_items(fragment, limit=len(names)).item_id) == expected
    unique = [n for n in names if (names == n).sum() == 1]
    assert (
        trained.item_by_title(unique[0].lower()) == trained.item_ids[list(names).index(unique[0])]
    )
    with pytest.raises(ServingError, match="no item is named"):
        trained.item_by_title("no such title at all")
    # A name shared by two items is refused with both IDs.
    shared = trained.item_names.copy()
    trained.item_names = shared
    shared[1] = shared[0]
    try:
        with pytest.raises(ServingError, match="2 items are named"):
            trained.item_by_title(shared[0])
    finally:
        trained.item_names = names


def test_missing_fields_warn_only_where_training_never_saw_them_missing(trained):
    """hybrid.py trains users with field dropout (0.1) and items without: a new user with no
    demographics is in distribution, a new item with no metadata is warned about."""
    import warnings as warnings_lib

    side = trained.model.users
    assert dict(side.field_rates), "the smoke model should train users with field dropout"
    with warnings_lib.catch_warnings():
        warnings_lib.simplefilter("error")  # any warning fails the test
        trained.recommend_for_new_user(_all_none(trained, "user"), k=3)
    with pytest.warns(UserWarning, match=r"new item: field\(s\) \[.*\] missing"):
        trained.score_new_item(_all_none(trained, "item"))


def _all_none(trained, entity):
    """Raw metadata of a new entity with every schema column missing."""
    columns = set()
    for spec in trained.encoder.schema.for_entity(entity):
        if spec.kind != "history":
            column = spec.column
            columns.update(column if isinstance(column, tuple) else (column,))
    return dict.fromkeys(columns)
