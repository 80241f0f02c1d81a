"""Tests for ``make_synthetic``: determinism, shapes, columns, power law, missing values and,
above all, the planted signal (metadata predicts who takes a cold item; no model is trained)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata, spearmanr

from hybridrec.data.datasets import synthetic
from hybridrec.data.datasets.synthetic import (
    FLAVOURS,
    PRODUCT_RELATIONSHIP_WEIGHTS,
    SyntheticDataError,
    make_synthetic,
    true_affinity,
)

ITEM_COLUMNS = {
    "movies": ["title", "release_year", "release_date", "genres", "freebase"],
    "beer": ["beer_name", "beer_style", "brewery_id", "brewery_name", "beer_abv"],
    "products": ["title", "description", "brand", "categories", "price"],
    "plain": ["category", "attribute", "text"],
}
USER_COLUMNS = {"movies": ["age", "gender", "occupation", "zip_code"], "plain": ["segment"]}
# Field kinds, for the missing-value conventions of the spec.
KINDS = {
    "title": "text", "release_year": "numeric", "release_date": "text", "genres": "multi",
    "freebase": "text", "beer_name": "text", "beer_style": "single", "brewery_id": "single",
    "brewery_name": "single", "beer_abv": "numeric", "description": "text", "brand": "single",
    "categories": "multi", "price": "numeric", "category": "single", "attribute": "numeric",
    "text": "text", "age": "numeric", "gender": "single", "occupation": "single",
    "zip_code": "text", "segment": "single",
}  # fmt: skip
# The category field the metadata-only scorer reads, per flavour.
CATEGORY_FIELD = {
    "movies": "genres",
    "beer": "beer_style",
    "products": "categories",
    "plain": "category",
}


def _missing(column: pd.Series, kind: str) -> np.ndarray:
    if kind == "numeric":
        return column.isna().to_numpy()
    if kind == "multi":
        return np.asarray([len(v) == 0 for v in column])
    if kind == "text":
        return (column == "").to_numpy()
    return column.isna().to_numpy()


def _one_hot(column: pd.Series) -> np.ndarray:
    """(n, V) indicator of a single or list-valued categorical column (missing -> zero row)."""
    lists = (
        column
        if isinstance(column.iloc[0], list)
        else column.map(lambda v: [] if pd.isna(v) else [v])
    )
    vocab = {v: k for k, v in enumerate(sorted({v for row in lists for v in row}))}
    rows = np.repeat(np.arange(len(lists)), [len(v) for v in lists])
    cols = np.asarray([vocab[v] for row in lists for v in row], dtype=np.int64)
    out = np.zeros((len(lists), len(vocab)))
    out[rows, cols] = 1.0
    return out


def _column_auc(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUC of each column: how well ``scores[:, j]`` ranks the rows with ``labels[:, j]`` first.

    Rank-sum (Mann-Whitney) form with average ranks for ties; columns without both classes give
    NaN. Brute force checked against pairwise counting in ``test_column_auc_matches_pairs``.
    """
    ranks = rankdata(scores, axis=0)
    num_pos = labels.sum(0)
    num_neg = labels.shape[0] - num_pos
    auc = ((ranks * labels).sum(0) - num_pos * (num_pos + 1) / 2) / np.maximum(num_pos * num_neg, 1)
    return np.where((num_pos > 0) & (num_neg > 0), auc, np.nan)


def _cold_item_signal(ds, seed: int = 1) -> dict[str, float]:
    """Holds out 20% of items; ranks every user for each cold item with several scorers.

    Returns the mean per-item AUC of: ``metadata`` (the user's category profile from train
    interactions, normalized to shares, dotted with the item's category indicator),
    ``shuffled`` (the same with profiles given to the wrong users), ``truth`` (the planted
    affinity), ``activity`` (the user's number of train interactions: not taste, but it
    predicts who interacts with anything) and ``counts`` (activity times category share: the
    user's train interactions in the item's categories).
    """
    it = ds.interactions
    cold = np.random.default_rng(seed).random(it.num_items) < 0.2
    train = it.subset(~cold[it.item_ids])
    cats = _one_hot(ds.item_metadata[CATEGORY_FIELD[ds.info["flavour"]]])
    counts = np.asarray(train.csr @ cats)  # (U, V) train interactions per category
    profile = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    cold_items = np.flatnonzero(cold)
    labels = np.asarray(it.csr[:, cold_items].toarray() > 0, float)  # (U, J)
    scores = profile @ cats[cold_items].T  # (U, J)
    shuffled = scores[np.random.default_rng(seed + 1).permutation(it.num_users)]
    truth = true_affinity(ds, np.arange(it.num_users)[:, None], cold_items[None, :])
    activity = np.repeat(train.user_counts()[:, None].astype(float), len(cold_items), axis=1)
    scorers = {
        "metadata": scores,
        "shuffled": shuffled,
        "truth": truth,
        "activity": activity,
        "counts": counts @ cats[cold_items].T,
    }
    return {name: float(np.nanmean(_column_auc(s, labels))) for name, s in scorers.items()}


# ----------------------------------------------------------------------------- basics
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_same_seed_same_data_other_seed_other_data(flavour):
    explicit = flavour != "products"
    a = make_synthetic(flavour=flavour, seed=3, explicit=explicit)
    b = make_synthetic(flavour=flavour, seed=3, explicit=explicit)
    c = make_synthetic(flavour=flavour, seed=4, explicit=explicit)
    for name in ("user_ids", "item_ids", "ratings", "weights", "timestamps"):
        x, y = getattr(a.interactions, name), getattr(b.interactions, name)
        assert (x is None and y is None) or np.array_equal(x, y), name
    pd.testing.assert_frame_equal(a.item_metadata, b.item_metadata)
    if a.user_metadata is not None:
        pd.testing.assert_frame_equal(a.user_metadata, b.user_metadata)
    np.testing.assert_array_equal(a.info["true_item_factors"], b.info["true_item_factors"])
    np.testing.assert_array_equal(a.info["true_user_factors"], b.info["true_user_factors"])
    assert not np.array_equal(a.interactions.item_ids[:100], c.interactions.item_ids[:100])
    assert not a.item_metadata.equals(c.item_metadata)


def test_result_does_not_depend_on_thread_count(monkeypatch):
    # Several chunks of interactions, drawn by 1 thread and by 2.
    kw = dict(num_users=5000, num_items=500, num_interactions=3 * synthetic._CHUNK + 5)
    monkeypatch.setattr(synthetic, "_WORKERS", 1)
    one = make_synthetic(**kw)
    monkeypatch.setattr(synthetic, "_WORKERS", 2)
    two = make_synthetic(**kw)
    np.testing.assert_array_equal(one.interactions.item_ids, two.interactions.item_ids)
    np.testing.assert_array_equal(one.interactions.timestamps, two.interactions.timestamps)


@pytest.mark.parametrize("flavour", ["movies", "beer", "plain"])
def test_counts_shapes_and_ids(flavour):
    ds = make_synthetic(400, 300, 9000, flavour=flavour, latent_dim=8, min_user_interactions=5)
    it = ds.interactions
    assert (it.num_users, it.num_items) == (400, 300)
    # Repeated pairs are re-drawn; only a few that cannot be placed are dropped.
    assert len(it) == 9000 - ds.info["num_repeats_dropped"]
    assert len(it) >= 0.98 * 9000
    assert len(it.deduplicate("error")) == len(it)
    counts = it.user_counts()
    assert counts.min() >= 1 and (counts >= 5).mean() > 0.99
    assert it.user_map.raw_ids[:2].tolist() == ["u000000", "u000001"]
    assert it.item_map.raw_ids[-1] == "i000299"
    assert list(ds.item_metadata.index) == list(it.item_map.raw_ids)
    assert list(
        ds.user_metadata.index if ds.user_metadata is not None else it.user_map.raw_ids
    ) == list(it.user_map.raw_ids)
    assert ds.info["true_user_factors"].shape == (400, 8)
    assert ds.info["true_item_factors"].shape == (300, 8)
    assert ds.info["true_item_factors"].dtype == np.float32
    np.testing.assert_allclose(ds.info["true_item_exposure"].sum(), 1.0)
    assert ds.name == f"synthetic-{flavour}"


def test_integer_ids_option():
    ds = make_synthetic(50, 40, 500, string_ids=False)
    assert ds.interactions.user_map.raw_ids.dtype.kind == "i"
    np.testing.assert_array_equal(ds.item_metadata.index.to_numpy(), np.arange(40))


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_columns_mirror_the_real_loaders(flavour):
    ds = make_synthetic(None if flavour == "products" else 200, 150, 2000, flavour=flavour)
    assert list(ds.item_metadata.columns) == ITEM_COLUMNS[flavour]
    if flavour in USER_COLUMNS:
        assert list(ds.user_metadata.columns) == USER_COLUMNS[flavour]
    else:
        assert ds.user_metadata is None
    frames = [ds.item_metadata] + ([ds.user_metadata] if ds.user_metadata is not None else [])
    for frame in frames:
        for col in frame.columns:
            values = frame[col]
            kind = KINDS[col]
            present = values[~_missing(values, kind)]
            assert len(present) > 0, col
            if kind == "numeric":
                assert values.dtype == np.float64, col
            elif kind == "multi":
                assert all(
                    isinstance(v, list) and all(isinstance(s, str) for s in v) for v in values
                ), col
            else:
                assert all(isinstance(v, str) for v in present), col
            if kind != "numeric":  # as the real loaders: object columns, None stays None
                assert values.dtype == object, col
            if kind == "single":
                assert all(v is None for v in values[_missing(values, kind)]), col
    if flavour == "movies":
        tokens = " ".join(ds.item_metadata["freebase"]).split()
        assert all(t.startswith("film.film.") and "=m.0" in t for t in tokens)
        date = ds.item_metadata["release_date"].iloc[0]
        assert date.endswith(str(int(ds.item_metadata["release_year"].iloc[0]))) or date == ""


def test_products_is_an_item_pair_task_like_the_amazon_loader():
    ds = make_synthetic(None, 300, 6000, flavour="products")
    it = ds.interactions
    assert it.user_map == it.item_map
    assert it.ratings is None and it.timestamps is None
    assert not np.any(it.user_ids == it.item_ids)
    # Undirected pairs stored both ways with one weight; sorted by (query, related).
    csr = it.csr
    assert (csr != csr.T).nnz == 0
    assert len(it) == 2 * ds.info["num_pairs"] == csr.nnz
    order = np.lexsort((it.item_ids, it.user_ids))
    np.testing.assert_array_equal(order, np.arange(len(it)))
    # Weight = sum over the distinct relationships linking the pair.
    w = list(PRODUCT_RELATIONSHIP_WEIGHTS.values())
    sums = {np.float32(sum(c)) for k in (1, 2, 3) for c in itertools.combinations(w, k)}
    assert set(np.unique(it.weights).tolist()) <= sums
    assert sum(ds.info["num_pairs_per_relationship"].values()) >= ds.info["num_pairs"]
    # Bought-together links are drawn at a lower temperature: more similar than also-viewed.
    aff = true_affinity(ds, it.user_ids, it.item_ids)
    assert (
        aff[it.weights == np.float32(1.2)].mean() > aff[it.weights == np.float32(0.5)].mean() + 0.2
    )
    with pytest.raises(SyntheticDataError, match="num_users"):
        make_synthetic(1000, 300, 6000, flavour="products")


# ----------------------------------------------------------------------------- distributions
def test_power_law_sampler_matches_its_probabilities():
    rng = np.random.default_rng(0)
    for exponent in (0.0, 0.7, 1.0, 1.5):
        probs = synthetic._power_law_probs(50, exponent)
        np.testing.assert_allclose(probs.sum(), 1.0)
        assert np.all(np.diff(probs) <= 1e-12)  # non-increasing in rank
        draws = synthetic._power_law_ranks(rng.random(200_000), 50, exponent)
        freq = np.bincount(draws, minlength=50) / len(draws)
        np.testing.assert_allclose(freq, probs, atol=4 * np.sqrt(probs.max() / len(draws)))


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_item_popularity_is_heavy_tailed(flavour):
    ds = make_synthetic(flavour=flavour)
    counts = np.sort(ds.interactions.item_counts())[::-1]
    top_share = counts[: len(counts) // 10].sum() / counts.sum()
    # A uniform law would give 0.10. Products mirror every pair, so each product's degree also
    # counts the links drawn for it as a query (at least min_user_interactions): flatter.
    assert top_share > (0.2 if flavour == "products" else 0.3)
    # Flattening the exposure law flattens popularity.
    flat = np.sort(
        make_synthetic(flavour=flavour, popularity_exponent=0.0).interactions.item_counts()
    )[::-1]
    assert flat[: len(flat) // 10].sum() / flat.sum() < top_share - 0.05


@pytest.mark.parametrize("rate", [0.0, 0.1])
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_missing_value_rates(flavour, rate):
    ds = make_synthetic(
        3000, 3000, 15000, flavour=flavour, missing_rate=rate, min_user_interactions=2
    )
    frames = [ds.item_metadata] + ([ds.user_metadata] if ds.user_metadata is not None else [])
    for frame in frames:
        for col in frame.columns:
            share = _missing(frame[col], KINDS[col]).mean()
            # 3 standard errors of a 3000-draw proportion is ~0.017.
            assert abs(share - rate) < 0.02, (col, share)


def test_explicit_ratings_follow_affinity_and_histograms():
    ds = make_synthetic(flavour="movies", explicit=True)
    it = ds.interactions
    values, counts = np.unique(it.ratings, return_counts=True)
    assert values.tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(
        counts / counts.sum(), synthetic._RATING_SHARES["integer"], atol=0.02
    )
    rho = spearmanr(it.ratings, true_affinity(ds, it.user_ids, it.item_ids)).statistic
    assert rho > 0.3
    beer = make_synthetic(flavour="beer", explicit=True).interactions.ratings
    assert set(np.unique(beer).tolist()) == set(np.arange(1.0, 5.01, 0.5).tolist())
    assert make_synthetic(flavour="plain").interactions.ratings is None


def test_timestamps_lie_in_the_flavour_period():
    ds = make_synthetic(flavour="movies")
    stamps = ds.interactions.timestamps
    lo, hi = synthetic._TIME_RANGES["movies"]
    assert stamps.dtype == np.int64 and stamps.min() >= lo and stamps.max() < hi
    assert make_synthetic(flavour="plain", timestamps=False).interactions.timestamps is None


# ----------------------------------------------------------------------------- planted signal
def test_column_auc_matches_pairs():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(30, 3)).astype(float)  # ties on purpose
    labels = (rng.random((30, 3)) < 0.4).astype(float)
    for j in range(3):
        pos, neg = scores[labels[:, j] == 1, j], scores[labels[:, j] == 0, j]
        pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
        np.testing.assert_allclose(_column_auc(scores, labels)[j], pairs)


@pytest.mark.parametrize(
    "flavour, threshold",
    # Movies are weaker: genres are multi-valued and Drama / Comedy cover most movies.
    [("movies", 0.65), ("beer", 0.7), ("products", 0.7), ("plain", 0.7)],
)
def test_metadata_predicts_who_takes_a_cold_item(flavour, threshold):
    auc = _cold_item_signal(make_synthetic(num_interactions=40_000, flavour=flavour))
    assert auc["metadata"] > threshold
    # The signal is the user's taste: with profiles handed to the wrong users it is gone ...
    assert abs(auc["shuffled"] - 0.5) < 0.03
    # ... it adds to "active users take more items" ...
    assert auc["counts"] > auc["activity"] + 0.05
    # ... and metadata carries only part of it: the planted affinity does better.
    assert auc["truth"] > auc["metadata"] + 0.05


def test_metadata_strength_controls_the_signal():
    none = _cold_item_signal(make_synthetic(flavour="plain", metadata_strength=0.0))
    default = _cold_item_signal(make_synthetic(flavour="plain"))
    full = _cold_item_signal(make_synthetic(flavour="plain", metadata_strength=1.0))
    assert abs(none["metadata"] - 0.5) < 0.04
    assert none["metadata"] < default["metadata"] < full["metadata"]
    assert none["truth"] > 0.8  # the taste signal itself is still there, just not in metadata


def test_popularity_is_independent_of_metadata():
    # Exposure ranks are a random permutation of the items, so neither the category nor the
    # numeric attribute of an item says anything about its popularity rank.
    ds = make_synthetic(
        num_items=5000,
        num_interactions=5000,
        min_user_interactions=0,
        flavour="plain",
        missing_rate=0,
    )
    exposure = ds.info["true_item_exposure"]
    rank = rankdata(-exposure) / len(exposure)  # in (0, 1], uniform over items
    category = ds.item_metadata["category"].to_numpy()
    for value in np.unique(category):
        inside = rank[category == value]
        if len(inside) >= 100:
            # Mean of n uniform ranks: 0.5 with standard error sqrt(1 / 12 / n).
            assert abs(inside.mean() - 0.5) < 4 * np.sqrt(1 / 12 / len(inside)), value
    assert abs(spearmanr(rank, ds.item_metadata["attribute"]).statistic) < 0.06


def test_interactions_follow_the_planted_affinity():
    ds = make_synthetic(flavour="plain")
    it = ds.interactions
    rng = np.random.default_rng(0)
    chosen = true_affinity(ds, it.user_ids, it.item_ids)
    random = true_affinity(
        ds, rng.integers(0, it.num_users, 5000), rng.integers(0, it.num_items, 5000)
    )
    assert chosen.mean() > random.mean() + 1.0
    # true_affinity is p . q / sqrt(d), brute force:
    p, q = ds.info["true_user_factors"], ds.info["true_item_factors"]
    np.testing.assert_allclose(
        chosen[:5], (p[it.user_ids[:5]] * q[it.item_ids[:5]]).sum(1) / 4, rtol=1e-5
    )


def test_numeric_attributes_carry_signal():
    ds = make_synthetic(flavour="movies", missing_rate=0.0)
    it = ds.interactions
    year = ds.item_metadata["release_year"].to_numpy()
    # Item traits depend on the year: it explains ~ m * a_num = 0.7 * 0.15 of their variance.
    z = (year - year.mean()) / year.std()
    q = ds.info["true_item_factors"]
    design = np.c_[z, np.ones_like(z)]
    residual = q - design @ np.linalg.lstsq(design, q, rcond=None)[0]
    assert 1 - residual.var() / q.var() > 0.05
    # Younger users lean towards newer movies (age and year interact by construction).
    mean_year = pd.Series(year[it.item_ids]).groupby(it.user_ids).mean()
    age = ds.user_metadata["age"].to_numpy()[mean_year.index]
    assert np.corrcoef(age, mean_year.to_numpy())[0, 1] < -0.2


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(flavour="music"), "flavour"),
        (dict(flavour="products", explicit=True), "ratings"),
        (dict(flavour="products", timestamps=True), "timestamps"),
        (dict(num_categories=5), "num_categories"),
        (dict(metadata_strength=1.5), "metadata_strength"),
        (dict(temperature=0.0), "temperature"),
        (dict(num_users=1000, num_interactions=100), "min_user_interactions"),
    ],
)
def test_bad_arguments_raise_a_clear_error(kwargs, match):
    with pytest.raises(SyntheticDataError, match=match):
        make_synthetic(**kwargs)
    assert issubclass(SyntheticDataError, ValueError)
