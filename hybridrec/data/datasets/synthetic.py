"""Synthetic recommendation data with a planted, known signal: ``make_synthetic``.

The generator draws latent user tastes and item traits, writes item metadata that carries *part*
of each item's traits, and samples interactions from user-item affinity under a power-law
exposure. Because the truth is known, tests can check that a model recovers it, and that a
model which reads metadata beats an ID-only model on items held out of training (cold items).
See ``data_cards/synthetic.md`` for the full description and measured scale.

Generative process (``d = latent_dim``; every vector below has i.i.d. N(0, 1) entries unless
said otherwise, so each part has unit variance per dimension)::

    meta_i = sqrt(a_cat) * sum_{c in C_i} e_c / sqrt(|C_i|)    categories (genres, style, ...)
           + sqrt(a_grp) * f_{g(i)}                            group (studio, brewery, brand)
           + sqrt(a_num) * z_i * w                             standardized numeric attribute
    q_i    = sqrt(m) * meta_i + sqrt(1 - m) * eps_i            m = metadata_strength
    p_u    = sqrt(mu) * h_u + sqrt(1 - mu) * eta_u             h_u from user metadata, if any
    s_ui   = p_u . q_i / sqrt(d)                               affinity, about N(0, 1)

Each interaction picks a user (every user ``min_user_interactions`` times, the rest by a power
law over users), shows them ``K = num_candidates`` items drawn i.i.d. from a power law over
items (``popularity_exponent``; item ranks are a random permutation, so popularity carries no
metadata), and the user takes ``argmax_k s_{u,i_k} / temperature + Gumbel_k``: a multinomial
logit choice within the exposure set. Optional ratings threshold ``s + b_u + b_i + noise`` so
that their histogram matches MovieLens-100K (BeerAdvocate for the beer flavour); optional
timestamps are uniform within a per-user active window.

Flavours mirror the column names of the real loaders: ``movies`` (MovieLens), ``beer``
(BeerAdvocate), ``products`` (Amazon item-pair task) and ``plain`` (minimal columns).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from numpy.dtypes import StringDType

from hybridrec.data.datasets._base import Dataset
from hybridrec.data.interactions import IdMap, Interactions

__all__ = [
    "FLAVOURS",
    "PRODUCT_RELATIONSHIP_WEIGHTS",
    "SyntheticDataError",
    "make_synthetic",
    "true_affinity",
]

FLAVOURS = ("movies", "beer", "products", "plain")


class SyntheticDataError(ValueError):
    """Raised for invalid ``make_synthetic`` arguments; the message names the argument."""


# ----------------------------------------------------------------------------- vocabularies
# MovieLens-100K genres and their counts there (a movie can have several), used as weights.
_GENRES = {
    "Action": 251, "Adventure": 135, "Animation": 42, "Children's": 122, "Comedy": 505,
    "Crime": 109, "Documentary": 50, "Drama": 725, "Fantasy": 22, "Film-Noir": 24,
    "Horror": 92, "Musical": 56, "Mystery": 61, "Romance": 247, "Sci-Fi": 101,
    "Thriller": 251, "War": 71, "Western": 27,
}  # fmt: skip
# Probability of a movie having 1, 2, 3, 4 genres.
_GENRE_COUNT_PROBS = (0.5, 0.35, 0.12, 0.03)
# MovieLens-100K occupations and their user counts.
_OCCUPATIONS = {
    "student": 196, "other": 105, "educator": 95, "administrator": 79, "engineer": 67,
    "programmer": 66, "librarian": 51, "writer": 45, "executive": 32, "scientist": 31,
    "artist": 28, "technician": 27, "marketing": 26, "entertainment": 18, "healthcare": 16,
    "retired": 14, "lawyer": 12, "salesman": 12, "none": 9, "homemaker": 7, "doctor": 7,
}  # fmt: skip
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# BeerAdvocate-like styles (most common first) with a typical ABV for each.
_BEER_STYLES = {
    "American IPA": 6.5, "American Double / Imperial IPA": 9.0, "American Pale Ale (APA)": 5.5,
    "Russian Imperial Stout": 10.0, "American Double / Imperial Stout": 11.0,
    "American Porter": 6.0, "American Amber / Red Ale": 5.8, "Belgian Strong Dark Ale": 9.5,
    "Fruit / Vegetable Beer": 5.5, "American Strong Ale": 9.0, "Saison / Farmhouse Ale": 6.8,
    "Tripel": 9.0, "Hefeweizen": 5.2, "Witbier": 5.0, "American Barleywine": 11.0,
    "Belgian Strong Pale Ale": 8.5, "Dubbel": 7.2, "Euro Pale Lager": 4.8,
    "German Pilsener": 5.0, "Doppelbock": 8.0, "Oatmeal Stout": 5.5,
    "Märzen / Oktoberfest": 5.8, "Scotch Ale / Wee Heavy": 8.0, "Baltic Porter": 8.5,
    "Light Lager": 4.2, "Irish Dry Stout": 4.3, "Maibock / Helles Bock": 6.8,
    "Czech Pilsener": 4.9, "Kölsch": 4.8, "Gose": 4.5,
}  # fmt: skip
_BREWERY_SUFFIXES = ("Brewing Company", "Brewery", "Brewing Co.", "Beer Company", "Ales")
# A small two-level product taxonomy: top category -> subcategories.
_PRODUCT_TAXONOMY = {
    "Electronics": ("Headphones", "Cables", "Cameras", "Speakers", "Chargers"),
    "Books": ("Fiction", "Cookbooks", "History", "Science", "Comics"),
    "Home & Kitchen": ("Cookware", "Bedding", "Lighting", "Storage", "Appliances"),
    "Sports & Outdoors": ("Camping", "Cycling", "Fitness", "Fishing", "Running"),
    "Toys & Games": ("Puzzles", "Board Games", "Dolls", "Building Sets", "Outdoor Toys"),
    "Beauty": ("Skin Care", "Hair Care", "Makeup", "Fragrance", "Nail Care"),
    "Clothing": ("Shoes", "Jackets", "Dresses", "Shirts", "Accessories"),
    "Grocery": ("Coffee", "Tea", "Snacks", "Spices", "Candy"),
}
# Item-pair relations of the products flavour (as in the Amazon loader), their interaction
# weight, their share of the pairs and how sharply each follows similarity (temperature factor).
PRODUCT_RELATIONSHIP_WEIGHTS = {"bought_together": 1.2, "also_bought": 1.0, "also_viewed": 0.5}
_RELATION_PROBS = (0.15, 0.35, 0.5)
_RELATION_TEMPERATURE = (0.5, 1.0, 2.0)

# Shares of the metadata part of an item's traits: (categories, group, numeric attribute).
_META_SHARES = {
    "movies": (0.7, 0.15, 0.15),
    "beer": (0.6, 0.25, 0.15),
    "products": (0.55, 0.3, 0.15),
    "plain": (0.8, 0.0, 0.2),
}
# Rating histograms to match: MovieLens-100K (1..5) and BeerAdvocate overall (1..5, half steps).
_RATING_SHARES = {
    "integer": (0.0611, 0.1137, 0.27145, 0.34174, 0.21201),
    "half": (0.007, 0.008, 0.024, 0.038, 0.105, 0.19, 0.37, 0.2, 0.058),
}
# Timestamp ranges (Unix seconds): MovieLens-100K's and BeerAdvocate's collection periods.
_TIME_RANGES = {
    "movies": (874_724_710, 893_286_638),
    "beer": (946_684_800, 1_326_153_600),
    "plain": (1_577_836_800, 1_609_459_200),
}
# Interactions are sampled in fixed-size chunks, each with its own random stream, so memory
# stays bounded and the output does not depend on anything but the arguments.
_CHUNK = 1 << 15
_WORKERS = min(8, os.cpu_count() or 1)
_NUM_TOPIC_WORDS = 12
_NUM_NOISE_WORDS = 300

# Random streams (second entry of the seed sequence), one per component.
_S_ITEMS, _S_USERS, _S_FACTORS, _S_ACTIVITY, _S_CHUNK, _S_RATING, _S_TIME = range(7)


# ----------------------------------------------------------------------------- helpers
def _rng(seed: int, stream: int, *more: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, *more])


def _power_law_ranks(u: np.ndarray, n: int, exponent: float) -> np.ndarray:
    """Inverse CDF of the density ``(x + 1)^-exponent`` on ``[0, n)``, floored: ranks (int64)."""
    if abs(exponent - 1.0) < 1e-9:
        x = np.expm1(u * math.log1p(n))
    else:
        b = 1.0 - exponent
        x = np.power(1.0 + u * ((n + 1.0) ** b - 1.0), 1.0 / b) - 1.0
    return np.minimum(x.astype(np.int64), n - 1)


def _power_law_probs(n: int, exponent: float) -> np.ndarray:
    """(n,) exact probabilities of the ranks drawn by ``_power_law_ranks``."""
    edges = np.arange(n + 1, dtype=np.float64) + 1.0
    if abs(exponent - 1.0) < 1e-9:
        cdf = np.log(edges) / math.log(n + 1.0)
    else:
        b = 1.0 - exponent
        cdf = (edges**b - 1.0) / ((n + 1.0) ** b - 1.0)
    return np.diff(cdf)


def _pseudowords(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n,) distinct lowercase pronounceable words of 2 to 4 consonant-vowel syllables."""
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    s = len(syllables)
    sizes = np.asarray([s**2, s**3, s**4])  # number of distinct words of 2, 3, 4 syllables
    # Short words while they suffice (~70% of a code space is used before repeats pile up).
    space = int(sizes[: 1 + int(np.searchsorted(np.cumsum(sizes) * 0.7, n))].sum())
    codes = pd.unique(rng.integers(0, space, size=2 * n + 64))[:n]
    if len(codes) < n:
        raise SyntheticDataError(f"cannot make {n} distinct pseudowords (at most ~{space})")
    words = []
    for code in codes.tolist():  # over the vocabulary (names, topic words), not interactions
        k = 2
        while code >= sizes[k - 2]:
            code -= int(sizes[k - 2])
            k += 1
        parts = []
        for _ in range(k):
            code, r = divmod(code, s)
            parts.append(syllables[r])
        words.append("".join(parts))
    return np.asarray(words, dtype=object)


def _join(vocab: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Joins word ``ids`` (n, L) (-1 = no word) of ``vocab`` with spaces: (n,) object str."""
    vocab = np.asarray(vocab, dtype=StringDType())
    space = np.asarray(" ", dtype=StringDType())
    empty = np.asarray("", dtype=StringDType())
    out = np.full(len(ids), "", dtype=StringDType())
    for k in range(ids.shape[1]):  # over word positions; vectorised over rows
        col = ids[:, k]
        has = col >= 0
        sep = np.where((np.strings.str_len(out) > 0) & has, space, empty)
        out = np.where(
            has, np.strings.add(np.strings.add(out, sep), vocab[np.maximum(col, 0)]), out
        )
    return out.astype(object)


def _lists(names: np.ndarray, sets: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """(n,) object array of lists of ``names[sets[i]]`` (sets padded with -1); [] if missing."""
    names = np.asarray(names, dtype=object)
    out = np.empty(len(sets), dtype=object)
    # Per entity (item or user), never per interaction: building Python lists needs a loop.
    out[:] = [[] if m else names[row[row >= 0]].tolist() for row, m in zip(sets, missing)]
    return out


def _sample_sets(
    rng: np.random.Generator, n: int, weights: np.ndarray, count_probs: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Draws ``n`` sets of distinct categories, weighted, without replacement (Gumbel top-k).

    Returns:
      sets: (n, max_count) int64 category indices, ascending, padded with -1.
      counts: (n,) set sizes, drawn from ``count_probs`` (index 0 = one category).
    """
    num_categories = len(weights)
    max_count = min(len(count_probs), num_categories)
    probs = np.asarray(count_probs[:max_count], np.float64)
    counts = 1 + rng.choice(max_count, size=n, p=probs / probs.sum())
    keys = np.log(np.asarray(weights, np.float64)) + rng.gumbel(size=(n, num_categories))
    top = np.argsort(-keys, axis=1)[:, :max_count]
    top = np.where(np.arange(max_count)[None, :] < counts[:, None], top, num_categories)
    top = np.sort(top, axis=1)
    return np.where(top == num_categories, -1, top), counts


def _text_ids(
    rng: np.random.Generator,
    sets: np.ndarray,
    counts: np.ndarray,
    lengths: np.ndarray,
    topic_words: np.ndarray,
    noise_words: np.ndarray,
    p_topic: float,
) -> np.ndarray:
    """Word ids (n, max(lengths)) mixing category-specific words and Zipf noise words.

    Each word is, with probability ``p_topic``, a uniform word of one uniformly chosen category
    of the entity (``topic_words`` is (num_categories, W) word ids), else a noise word drawn
    from a Zipf(1) law over ``noise_words``. Positions past an entity's length are -1.
    """
    n = len(sets)
    width = int(lengths.max()) if n else 0
    which = np.minimum(
        (rng.random((n, width)) * counts[:, None]).astype(np.int64), counts[:, None] - 1
    )
    cat = np.take_along_axis(sets, np.maximum(which, 0), axis=1)
    topic = topic_words[cat, rng.integers(0, topic_words.shape[1], size=(n, width))]
    noise_p = 1.0 / np.arange(1, len(noise_words) + 1)
    noise = noise_words[rng.choice(len(noise_words), size=(n, width), p=noise_p / noise_p.sum())]
    is_topic = (rng.random((n, width)) < p_topic) & (counts[:, None] > 0)
    ids = np.where(is_topic, topic, noise)
    ids[np.arange(width)[None, :] >= lengths[:, None]] = -1
    return ids


def _standardize(values: np.ndarray) -> np.ndarray:
    std = values.std()
    return (values - values.mean()) / (std if std > 0 else 1.0)


def _capitalized(words: np.ndarray) -> np.ndarray:
    return np.asarray([w.capitalize() for w in words], dtype=object)


def _frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """A DataFrame whose text, categorical and list columns stay ``object`` with None / "" as
    given (pandas 3 would infer its ``str`` dtype and turn None into NaN), as the real loaders."""
    return pd.DataFrame(
        {
            name: pd.Series(v, dtype=object if v.dtype == object else v.dtype)
            for name, v in columns.items()
        }
    )


@dataclasses.dataclass
class _Side:
    """What a flavour builder returns for one entity type (items or users)."""

    frame: pd.DataFrame  # observed metadata, with missing values
    meta: np.ndarray  # (n, d) float64 metadata part of the latent vector, ~unit variance
    numeric_direction: np.ndarray | None = None  # (d,) w of the numeric attribute


@dataclasses.dataclass
class _Words:
    """The shared pseudoword vocabulary of one dataset."""

    vocab: np.ndarray  # (V,) lowercase words
    title_vocab: np.ndarray  # (V,) the same, capitalized
    noise: np.ndarray  # (_NUM_NOISE_WORDS,) word ids
    next_free: int = 0

    def take(self, n: int) -> np.ndarray:
        """``n`` fresh word ids (each used by one purpose only)."""
        ids = np.arange(self.next_free, self.next_free + n)
        self.next_free += n
        return ids


def _make_words(rng: np.random.Generator, num_extra: int) -> _Words:
    vocab = _pseudowords(rng, _NUM_NOISE_WORDS + num_extra)
    words = _Words(vocab=vocab, title_vocab=_capitalized(vocab), noise=np.empty(0, np.int64))
    words.noise = words.take(_NUM_NOISE_WORDS)
    return words


def _mix(parts: Sequence[tuple[float, np.ndarray]]) -> np.ndarray:
    """sum_k sqrt(share_k) * part_k: unit variance per dimension if the shares sum to one."""
    return sum(math.sqrt(share) * part for share, part in parts if share > 0)


def _category_part(sets: np.ndarray, counts: np.ndarray, emb: np.ndarray) -> np.ndarray:
    """sum_{c in set} emb_c / sqrt(|set|): (n, d)."""
    n = len(sets)
    multi_hot = np.zeros((n, emb.shape[0] + 1))
    np.put_along_axis(multi_hot, np.where(sets < 0, emb.shape[0], sets), 1.0, axis=1)
    return (multi_hot[:, :-1] @ emb) / np.sqrt(np.maximum(counts, 1))[:, None]


def _unique_codes(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """``n`` distinct random integers in ``[low, high)``."""
    return low + rng.choice(high - low, size=n, replace=False)


# ----------------------------------------------------------------------------- item flavours
def _movie_items(rng: np.random.Generator, n: int, d: int, missing_rate: float) -> _Side:
    """MovieLens-like items: genres, studio (group), release year, title, Freebase tokens."""
    genre_names = np.asarray(list(_GENRES), dtype=object)
    num_genres = len(genre_names)
    num_studios = max(2, n // 10)
    words = _make_words(rng, num_genres * _NUM_TOPIC_WORDS)
    topic = words.take(num_genres * _NUM_TOPIC_WORDS).reshape(num_genres, _NUM_TOPIC_WORDS)

    sets, counts = _sample_sets(
        rng, n, np.asarray(list(_GENRES.values()), float), _GENRE_COUNT_PROBS
    )
    studio = _power_law_ranks(rng.random(n), num_studios, 1.0)
    # Release years skew recent, as in MovieLens-100K (1922-1998, median ~1994).
    year = np.maximum(1998 - np.floor(rng.exponential(7.0, size=n)), 1922.0)
    e_genre = rng.standard_normal((num_genres, d))
    e_studio = rng.standard_normal((num_studios, d))
    w_year = rng.standard_normal(d)
    shares = _META_SHARES["movies"]
    meta = _mix([
        (shares[0], _category_part(sets, counts, e_genre)),
        (shares[1], e_studio[studio]),
        (shares[2], _standardize(year)[:, None] * w_year[None, :]),
    ])  # fmt: skip

    lengths = 1 + rng.binomial(3, 0.4, size=n)
    title = _join(words.title_vocab, _text_ids(rng, sets, counts, lengths, topic, words.noise, 0.5))
    day = rng.integers(1, 29, size=n)
    month = np.asarray(_MONTHS, dtype=StringDType())[rng.integers(0, 12, size=n)]
    date = np.strings.add(np.strings.zfill(day.astype(StringDType()), 2), "-")
    date = np.strings.add(
        np.strings.add(np.strings.add(date, month), "-"), year.astype(int).astype(StringDType())
    )

    # Freebase-like tokens: genres, the studio, one of the studio's 3 directors and 3 actors,
    # 70% of them from pools specific to the movie's genres (so the tokens carry signal).
    num_actors_per_genre = 20
    num_free_actors = max(50, n // 5)
    entity_counts = {
        "film.film.genre": num_genres,
        "film.film.production_company": num_studios,
        "film.film.director": 3 * num_studios,
        "film.film.actor": num_genres * num_actors_per_genre + num_free_actors,
    }
    total = sum(entity_counts.values())
    mids = _unique_codes(rng, total, 36**4, 36**6)
    mid_names = [f"m.0{np.base_repr(int(c), 36).lower()}" for c in mids]  # per entity
    relation = np.concatenate([np.full(k, rel, dtype=object) for rel, k in entity_counts.items()])
    tokens = np.asarray([f"{r}={m}" for r, m in zip(relation, mid_names)], dtype=object)
    offsets = np.cumsum([0, *entity_counts.values()])
    slot = np.minimum((rng.random((n, 3)) * counts[:, None]).astype(np.int64), counts[:, None] - 1)
    actor_genre = np.take_along_axis(sets, slot, axis=1)
    actors = np.where(
        rng.random((n, 3)) < 0.7,
        actor_genre * num_actors_per_genre + rng.integers(0, num_actors_per_genre, size=(n, 3)),
        num_genres * num_actors_per_genre + rng.integers(0, num_free_actors, size=(n, 3)),
    )
    # Drop an actor repeated within a movie.
    actors[:, 1] = np.where(actors[:, 1] == actors[:, 0], -1, actors[:, 1])
    actors[:, 2] = np.where(
        (actors[:, 2] == actors[:, 0]) | (actors[:, 2] == actors[:, 1]), -1, actors[:, 2]
    )
    token_ids = np.concatenate(
        [
            np.where(sets >= 0, offsets[0] + sets, -1),
            (offsets[1] + studio)[:, None],
            (offsets[2] + 3 * studio + rng.integers(0, 3, size=n))[:, None],
            np.where(actors >= 0, offsets[3] + actors, -1),
        ],
        axis=1,
    )
    freebase = _join(tokens, token_ids)

    miss = {k: rng.random(n) < missing_rate for k in ("title", "year", "genres", "freebase")}
    frame = _frame(
        {
            "title": np.where(miss["title"], "", title),
            "release_year": np.where(miss["year"], np.nan, year),
            "release_date": np.where(miss["year"], "", date.astype(object)),
            "genres": _lists(genre_names, sets, miss["genres"]),
            "freebase": np.where(miss["freebase"], "", freebase),
        }
    )
    return _Side(frame=frame, meta=meta, numeric_direction=w_year)


def _beer_items(rng: np.random.Generator, n: int, d: int, missing_rate: float) -> _Side:
    """BeerAdvocate-like items: one style, a brewery (group), ABV, a name."""
    style_names = np.asarray(list(_BEER_STYLES), dtype=object)
    style_abv = np.asarray(list(_BEER_STYLES.values()))
    num_styles = len(style_names)
    num_breweries = max(2, n // 15)
    words = _make_words(rng, num_styles * _NUM_TOPIC_WORDS + num_breweries)
    topic = words.take(num_styles * _NUM_TOPIC_WORDS).reshape(num_styles, _NUM_TOPIC_WORDS)
    brewery_words = words.title_vocab[words.take(num_breweries)]

    style_weights = _power_law_probs(num_styles, 0.8)
    brewery = _power_law_ranks(rng.random(n), num_breweries, 1.0)
    # Breweries specialise: 60% of a brewery's beers are one of its two house styles.
    house = rng.choice(num_styles, size=(num_breweries, 2), p=style_weights)
    style = np.where(
        rng.random(n) < 0.6,
        house[brewery, rng.integers(0, 2, size=n)],
        rng.choice(num_styles, size=n, p=style_weights),
    )
    abv = np.round(np.clip(style_abv[style] + rng.normal(0.0, 0.8, size=n), 0.5, 25.0), 1)
    e_style = rng.standard_normal((num_styles, d))
    e_brewery = rng.standard_normal((num_breweries, d))
    w_abv = rng.standard_normal(d)
    shares = _META_SHARES["beer"]
    meta = _mix([
        (shares[0], e_style[style]),
        (shares[1], e_brewery[brewery]),
        (shares[2], _standardize(abv)[:, None] * w_abv[None, :]),
    ])  # fmt: skip

    sets, counts = style[:, None], np.ones(n, np.int64)
    lengths = 1 + rng.binomial(2, 0.5, size=n)
    name = _join(words.title_vocab, _text_ids(rng, sets, counts, lengths, topic, words.noise, 0.5))
    suffix = np.asarray(_BREWERY_SUFFIXES, dtype=object)[
        rng.integers(0, len(_BREWERY_SUFFIXES), num_breweries)
    ]
    brewery_names = np.asarray([f"{w} {s}" for w, s in zip(brewery_words, suffix)], dtype=object)
    brewery_ids = (
        _unique_codes(rng, num_breweries, 1, 10 * num_breweries + 100).astype(str).astype(object)
    )

    miss = {k: rng.random(n) < missing_rate for k in ("name", "style", "brewery", "abv")}
    frame = _frame(
        {
            "beer_name": np.where(miss["name"], "", name),
            "beer_style": np.where(miss["style"], None, style_names[style]),
            "brewery_id": np.where(miss["brewery"], None, brewery_ids[brewery]),
            "brewery_name": np.where(miss["brewery"], None, brewery_names[brewery]),
            "beer_abv": np.where(miss["abv"], np.nan, abv),
        }
    )
    return _Side(frame=frame, meta=meta)


def _product_items(rng: np.random.Generator, n: int, d: int, missing_rate: float) -> _Side:
    """Amazon-like items: top + sub categories, a brand (group), price, title, description."""
    tops = list(_PRODUCT_TAXONOMY)
    num_tops = len(tops)
    num_subs = sum(len(v) for v in _PRODUCT_TAXONOMY.values())
    sub_top = np.repeat(np.arange(num_tops), [len(v) for v in _PRODUCT_TAXONOMY.values()])
    sub_first = np.concatenate([[0], np.cumsum([len(v) for v in _PRODUCT_TAXONOMY.values()])[:-1]])
    names = np.asarray(tops + [s for v in _PRODUCT_TAXONOMY.values() for s in v], dtype=object)
    num_brands = max(num_tops, n // 20)
    words = _make_words(rng, num_subs * _NUM_TOPIC_WORDS + num_brands)
    topic = words.take(num_subs * _NUM_TOPIC_WORDS).reshape(num_subs, _NUM_TOPIC_WORDS)
    brand_word_ids = words.take(num_brands)

    top = rng.integers(0, num_tops, size=n)
    per_top = np.bincount(sub_top, minlength=num_tops)
    sub1 = sub_first[top] + rng.integers(0, per_top[top])
    # A quarter of the products sit in a second subcategory of the same top category.
    sub2 = sub_first[top] + (sub1 - sub_first[top] + rng.integers(1, per_top[top])) % per_top[top]
    sub2 = np.where(rng.random(n) < 0.25, sub2, -1)
    sub_sets = np.sort(np.stack([sub1, sub2], axis=1), axis=1)[:, ::-1]  # valid ids first
    sub_counts = 1 + (sub2 >= 0)
    # Brands belong to one top category each; a product's brand is one of its top's brands.
    brand_top = np.arange(num_brands) % num_tops
    brands_of_top = np.argsort(brand_top, kind="stable")
    brand_first = np.searchsorted(brand_top[brands_of_top], np.arange(num_tops))
    brand_count = np.bincount(brand_top, minlength=num_tops)
    brand = brands_of_top[brand_first[top] + rng.integers(0, brand_count[top])]
    log_price = (
        rng.normal(3.0, 0.7, size=num_tops)[top] + rng.normal(0.0, 0.3, size=num_brands)[brand]
    ) + rng.normal(0.0, 0.5, size=n)
    price = np.round(np.exp(log_price), 2)

    e_top = rng.standard_normal((num_tops, d))
    e_sub = math.sqrt(0.5) * e_top[sub_top] + math.sqrt(0.5) * rng.standard_normal((num_subs, d))
    e_brand = rng.standard_normal((num_brands, d))
    w_price = rng.standard_normal(d)
    shares = _META_SHARES["products"]
    meta = _mix([
        (shares[0], _category_part(sub_sets, sub_counts, e_sub)),
        (shares[1], e_brand[brand]),
        (shares[2], _standardize(np.log(price))[:, None] * w_price[None, :]),
    ])  # fmt: skip

    title_ids = _text_ids(
        rng, sub_sets, sub_counts, 2 + rng.binomial(4, 0.5, size=n), topic, words.noise, 0.5
    )
    # Titles start with the brand name, so text can stand in for a missing brand field.
    title = _join(
        words.title_vocab, np.concatenate([brand_word_ids[brand][:, None], title_ids], axis=1)
    )
    description = _join(
        words.vocab,
        _text_ids(
            rng, sub_sets, sub_counts, 8 + rng.binomial(12, 0.5, size=n), topic, words.noise, 0.4
        ),
    )
    cat_sets = np.concatenate([top[:, None], num_tops + sub_sets], axis=1)
    cat_sets = np.where(
        np.concatenate([np.zeros((n, 1), bool), sub_sets < 0], axis=1), -1, cat_sets
    )

    miss = {
        k: rng.random(n) < missing_rate
        for k in ("title", "description", "brand", "categories", "price")
    }
    frame = _frame(
        {
            "title": np.where(miss["title"], "", title),
            "description": np.where(miss["description"], "", description),
            "brand": np.where(miss["brand"], None, words.title_vocab[brand_word_ids][brand]),
            "categories": _lists(names, cat_sets, miss["categories"]),
            "price": np.where(miss["price"], np.nan, price),
        }
    )
    return _Side(frame=frame, meta=meta)


def _plain_items(
    rng: np.random.Generator, n: int, d: int, missing_rate: float, num_categories: int
) -> _Side:
    """Minimal items: one ``category``, a numeric ``attribute`` and a short ``text``."""
    width = len(str(num_categories - 1))
    names = np.asarray([f"c{k:0{width}d}" for k in range(num_categories)], dtype=object)
    words = _make_words(rng, num_categories * _NUM_TOPIC_WORDS)
    topic = words.take(num_categories * _NUM_TOPIC_WORDS).reshape(num_categories, _NUM_TOPIC_WORDS)
    category = rng.choice(num_categories, size=n, p=_power_law_probs(num_categories, 0.5))
    attribute = np.round(rng.standard_normal(n), 4)
    e_cat = rng.standard_normal((num_categories, d))
    w_attr = rng.standard_normal(d)
    shares = _META_SHARES["plain"]
    meta = _mix([
        (shares[0], e_cat[category]),
        (shares[2], _standardize(attribute)[:, None] * w_attr[None, :]),
    ])  # fmt: skip
    sets, counts = category[:, None], np.ones(n, np.int64)
    text = _join(
        words.vocab,
        _text_ids(rng, sets, counts, rng.integers(3, 7, size=n), topic, words.noise, 0.5),
    )
    miss = {k: rng.random(n) < missing_rate for k in ("category", "attribute", "text")}
    frame = _frame(
        {
            "category": np.where(miss["category"], None, names[category]),
            "attribute": np.where(miss["attribute"], np.nan, attribute),
            "text": np.where(miss["text"], "", text),
        }
    )
    return _Side(frame=frame, meta=meta)


# ----------------------------------------------------------------------------- user flavours
def _movie_users(
    rng: np.random.Generator, n: int, d: int, missing_rate: float, w_year: np.ndarray | None
) -> _Side:
    """MovieLens-like users: age, gender, occupation, zip code.

    Taste from metadata: embeddings of the age decade, gender and occupation, plus (when
    ``w_year`` is given) ``-z_age * w_year``, so younger users lean towards newer movies.
    """
    occ_names = np.asarray(list(_OCCUPATIONS), dtype=object)
    occ_p = np.asarray(list(_OCCUPATIONS.values()), float)
    age = np.clip(np.round(rng.normal(33.0, 12.0, size=n)), 7.0, 73.0)
    male = rng.random(n) < 0.71
    occupation = rng.choice(len(occ_names), size=n, p=occ_p / occ_p.sum())
    zip_code = np.strings.zfill(rng.integers(0, 100_000, size=n).astype(StringDType()), 5)
    decade = np.minimum(age // 10, 7).astype(np.int64)
    e_decade = rng.standard_normal((8, d))
    e_gender = rng.standard_normal((2, d))
    e_occ = rng.standard_normal((len(occ_names), d))
    cats = (e_decade[decade] + e_gender[male.astype(np.int64)] + e_occ[occupation]) / math.sqrt(3.0)
    age_part = -_standardize(age)[:, None] * (
        w_year if w_year is not None else rng.standard_normal(d)
    )
    meta = _mix([(0.75, cats), (0.25, age_part)])
    miss = {k: rng.random(n) < missing_rate for k in ("age", "gender", "occupation", "zip_code")}
    frame = _frame(
        {
            "age": np.where(miss["age"], np.nan, age),
            "gender": np.where(miss["gender"], None, np.where(male, "M", "F").astype(object)),
            "occupation": np.where(miss["occupation"], None, occ_names[occupation]),
            "zip_code": np.where(miss["zip_code"], "", zip_code.astype(object)),
        }
    )
    return _Side(frame=frame, meta=meta)


def _plain_users(rng: np.random.Generator, n: int, d: int, missing_rate: float) -> _Side:
    """Minimal users: one ``segment`` (8 values) whose embedding is the taste prior."""
    segment = rng.integers(0, 8, size=n)
    meta = rng.standard_normal((8, d))[segment]
    names = np.asarray([f"s{k}" for k in range(8)], dtype=object)
    miss = rng.random(n) < missing_rate
    return _Side(frame=_frame({"segment": np.where(miss, None, names[segment])}), meta=meta)


# ----------------------------------------------------------------------------- IDs
def _id_map(n: int, prefix: str, name: str, string_ids: bool) -> IdMap:
    if not string_ids:
        return IdMap.identity(n, name)
    width = max(6, len(str(n - 1)))
    raw = np.strings.add(prefix, np.strings.zfill(np.arange(n).astype(StringDType()), width))
    return IdMap(raw.astype(object), name)


# ----------------------------------------------------------------------------- interactions
def _choose(
    *,
    seed: int,
    stream: int,
    users: np.ndarray,
    inv_temp: np.ndarray | float,
    user_factors: np.ndarray,
    item_rows: np.ndarray,
    latent_dim: int,
    rank_to_item: np.ndarray,
    popularity_exponent: float,
    num_candidates: int,
    exclude_self: bool,
    exclude_keys: Sequence[np.ndarray] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """The exposure-then-choice step for each row of ``users``, chunk by chunk.

    Args:
      stream: distinguishes the first draw (0) from the re-draws of repeated pairs (1, 2, ...).
      users: (n,) int32 user (query) index per interaction.
      inv_temp: (n,) float32 inverse temperature per interaction, or one for all.
      user_factors: (num_users, d) float32 tastes.
      item_rows: (num_items,) the item factors, one opaque ``4 * d``-byte element per row.
      rank_to_item: (num_items,) the item at each popularity rank.
      exclude_self: never choose the query itself (products).
      exclude_keys: ascending arrays of ``user * num_items + item`` keys never to choose (the
        pairs a user already has); a row whose exposed items are all excluded keeps its best.

    Returns:
      (n,) int32 chosen items and (n,) float32 their affinity ``s_ui``.
    """
    n_total, d = len(users), latent_dim
    num_items = len(rank_to_item)
    scale = np.float32(1.0 / math.sqrt(d))
    items = np.empty(n_total, np.int32)
    affinity = np.empty(n_total, np.float32)

    def run(chunk: int) -> None:
        rng = _rng(seed, _S_CHUNK, stream, chunk)
        start = chunk * _CHUNK
        u = users[start : start + _CHUNK]
        n = len(u)
        ranks = _power_law_ranks(rng.random((n, num_candidates)), num_items, popularity_exponent)
        cand = rank_to_item[ranks]  # (n, K)
        # One 64-byte element per row is gathered about twice as fast as a 2-D row take.
        q = np.take(item_rows, cand).view(np.float32).reshape(n, num_candidates, d)  # (n, K, d)
        s = np.matmul(q, user_factors[u][:, :, None])[..., 0] * scale  # (n, K)
        with np.errstate(divide="ignore"):
            gumbel = -np.log(-np.log(rng.random((n, num_candidates), dtype=np.float32)))
        scaled = s * (
            inv_temp[start : start + n, None] if np.ndim(inv_temp) else np.float32(inv_temp)
        )
        logits = scaled + gumbel
        if exclude_self:
            logits[cand == u[:, None]] = -np.inf
        if exclude_keys:
            keys = u[:, None].astype(np.int64) * num_items + cand
            for sorted_keys in exclude_keys:
                logits[_isin_sorted(sorted_keys, keys)] = -np.inf
        k = np.argmax(logits, axis=1)
        items[start : start + n] = cand[np.arange(n), k]
        affinity[start : start + n] = s[np.arange(n), k]

    num_chunks = -(-n_total // _CHUNK)
    if num_chunks > 1 and _WORKERS > 1:
        # numpy releases the GIL in these kernels; each chunk has its own random stream and
        # output slice, so the result does not depend on the number of threads.
        with ThreadPoolExecutor(_WORKERS) as pool:
            list(pool.map(run, range(num_chunks)))
    else:
        for chunk in range(num_chunks):
            run(chunk)
    return items, affinity


def _isin_sorted(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(m,) whether each of ``keys`` occurs in the ascending array ``sorted_keys``."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys


def _draw_distinct(
    users: np.ndarray,
    num_items: int,
    draw: Any,
    *,
    distinct: bool,
    exclude_self: bool,
    max_rounds: int = 20,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draws an item per row, re-drawing rows whose (user, item) pair repeats an earlier row.

    A repeated pair (or a product paired with itself) is drawn again for the same user from a
    fresh exposure set, choosing among its items that the user does not have yet, up to
    ``max_rounds`` times: sequential sampling without replacement. Rows still repeated after
    that (every exposed item already taken, e.g. a very active user) are dropped.

    Args:
      users: (N,) int32 user per row.
      draw: ``draw(stream, rows, exclude_keys) -> (items, affinity)`` for the rows at positions
        ``rows``, never choosing a pair in ``exclude_keys`` when another is exposed.
      distinct: re-draw repeated pairs (else only self pairs).

    Returns:
      items (N,) int32, affinity (N,) float32, and the positions of the rows to drop.
    """
    items, affinity = draw(0, None, ())
    bad = items == users if exclude_self else np.zeros(len(users), bool)
    if distinct:
        key = users.astype(np.int64) * num_items + items
        order = np.argsort(key, kind="stable")
        key = key[order]
        repeat = np.empty(len(key), bool)
        repeat[:1] = False
        np.equal(key[1:], key[:-1], out=repeat[1:])
        bad[order[repeat]] = True
        taken = key[~repeat]  # ascending keys already used
        del key, order, repeat
    else:
        taken = np.empty(0, np.int64)
    todo = np.flatnonzero(bad)
    added = np.empty(0, np.int64)
    for stream in range(1, max_rounds + 1):
        if len(todo) == 0:
            break
        new_items, new_aff = draw(stream, todo, (taken, added) if distinct else ())
        u = users[todo]
        ok = new_items != u if exclude_self else np.ones(len(todo), bool)
        if distinct:
            new_key = u.astype(np.int64) * num_items + new_items
            first = np.zeros(len(todo), bool)
            first[np.unique(new_key, return_index=True)[1]] = True
            ok &= first & ~_isin_sorted(taken, new_key) & ~_isin_sorted(added, new_key)
            added = np.sort(np.concatenate([added, new_key[ok]]))
        items[todo[ok]] = new_items[ok]
        affinity[todo[ok]] = new_aff[ok]
        todo = todo[~ok]
        if not ok.any():  # the users left have seen all they can be shown
            break
    return items, affinity, todo


def _merge_pairs(
    query: np.ndarray, related: np.ndarray, relation: np.ndarray, drop: np.ndarray, num_items: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Drawn (query, related, relationship) links -> symmetric weighted pairs, as in the Amazon loader.

    Pairs are undirected: a relationship drawn twice, or from both sides, counts once; a pair's
    weight is the sum of the weights of the distinct relationships linking it; both directions
    are stored, sorted by (query, related). Rows in ``drop`` (self pairs) are left out.

    Returns:
      user_ids, item_ids (M,) int32, weights (M,) float32, and counts for ``Dataset.info``.
    """
    keep = np.ones(len(query), bool)
    keep[drop] = False
    lo = np.minimum(query, related)[keep].astype(np.int64)
    hi = np.maximum(query, related)[keep].astype(np.int64)
    num_relations = len(PRODUCT_RELATIONSHIP_WEIGHTS)
    links = np.unique((lo * num_items + hi) * num_relations + relation[keep])
    pair_keys, inverse = np.unique(links // num_relations, return_inverse=True)
    rel_weights = np.asarray(list(PRODUCT_RELATIONSHIP_WEIGHTS.values()))
    pair_weights = np.bincount(
        inverse, weights=rel_weights[links % num_relations], minlength=len(pair_keys)
    )
    lo, hi = pair_keys // num_items, pair_keys % num_items
    user_ids = np.concatenate([lo, hi])
    item_ids = np.concatenate([hi, lo])
    order = np.lexsort((item_ids, user_ids))
    per_rel = np.bincount(links % num_relations, minlength=num_relations)
    info = {
        "num_links_drawn": int(keep.sum()),
        "num_pairs": len(pair_keys),
        "num_pairs_per_relationship": dict(zip(PRODUCT_RELATIONSHIP_WEIGHTS, per_rel.tolist())),
    }
    weights = np.concatenate([pair_weights, pair_weights])[order].astype(np.float32)
    return user_ids[order].astype(np.int32), item_ids[order].astype(np.int32), weights, info


def _ratings(
    seed: int,
    affinity: np.ndarray,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    num_users: int,
    num_items: int,
    half_steps: bool,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Ratings 1..5 by thresholding ``y = s + b_u + b_i + noise`` at quantiles of a target histogram."""
    rng = _rng(seed, _S_RATING)
    user_bias = rng.normal(0.0, 0.4, size=num_users).astype(np.float32)
    item_bias = rng.normal(0.0, 0.4, size=num_items).astype(np.float32)
    y = np.empty(len(affinity), np.float32)
    for start in range(0, len(y), 1 << 22):
        sl = slice(start, start + (1 << 22))
        noise = rng.standard_normal(len(y[sl]), dtype=np.float32) * np.float32(0.6)
        y[sl] = affinity[sl] + user_bias[user_ids[sl]] + item_bias[item_ids[sl]] + noise
    shares = np.asarray(_RATING_SHARES["half" if half_steps else "integer"])
    # Thresholds from the first rows (the interaction order is random, so they are a fair sample).
    thresholds = np.quantile(y[:200_000], np.cumsum(shares)[:-1]).astype(np.float32)
    level = np.searchsorted(thresholds, y).astype(np.float32)
    ratings = 1.0 + (0.5 * level if half_steps else level)
    info = {
        "true_user_bias": user_bias,
        "true_item_bias": item_bias,
        "rating_thresholds": thresholds,
    }
    return ratings.astype(np.float32), info


# ----------------------------------------------------------------------------- public API
def make_synthetic(
    num_users: int | None = None,
    num_items: int = 500,
    num_interactions: int = 20_000,
    *,
    flavour: str = "movies",
    seed: int = 0,
    explicit: bool = False,
    timestamps: bool | None = None,
    metadata_strength: float = 0.7,
    user_metadata_strength: float = 0.3,
    popularity_exponent: float = 1.0,
    user_activity_exponent: float = 0.5,
    temperature: float = 0.3,
    num_candidates: int = 32,
    latent_dim: int = 16,
    min_user_interactions: int = 5,
    missing_rate: float = 0.02,
    num_categories: int | None = None,
    string_ids: bool | None = None,
    unique_pairs: bool = True,
) -> Dataset:
    """Generates a seeded synthetic dataset whose metadata carries part of the taste signal.

    Everything is vectorised numpy over chunks of ``2**15`` interactions (in threads),
    float32 / int32, and never forms a (users x items) matrix. Scale and memory figures (e.g.
    1M users x 100k items x 10M interactions) are in ``data_cards/synthetic.md``.

    The products flavour is the item-to-item task of the Amazon loader: "users" are query
    products (one shared ``IdMap``), each drawn link gets a relationship (bought_together 15%,
    also_bought 35%, also_viewed 50%; the first is drawn at half the temperature, the last at
    twice, so it follows similarity less), and links are merged as the loader merges listings:
    undirected pairs, weight = sum of ``PRODUCT_RELATIONSHIP_WEIGHTS`` over the distinct
    relationships linking the pair, both directions stored, sorted by (query, related).

    Args:
      num_users: number of users; default 1000. For ``flavour="products"`` the "users" are the
        query products, so leave it None (or equal to ``num_items``).
      num_items: number of items (products).
      num_interactions: number of interactions drawn. With ``unique_pairs`` a repeated
        (user, item) pair is drawn again (the user picks among newly exposed items they do not
        have), so all but a few rows stay (``info["num_repeats_dropped"]``: rows of users who
        have exhausted what they are shown). Products: the number of links drawn; the result
        holds both directions of the distinct pairs (``info["num_pairs"]``).
      flavour: ``"movies"``, ``"beer"``, ``"products"`` or ``"plain"``; sets the metadata
        columns (named as in the real loaders) and defaults.
      seed: the output is a deterministic function of all the arguments.
      explicit: add ratings: 1..5 (beer: half steps) thresholded from affinity plus user and
        item biases and noise, with MovieLens-100K's (BeerAdvocate's) histogram. Not for
        products.
      timestamps: add Unix-second timestamps; default True except for products (which has none).
      metadata_strength: share ``m`` of an item's latent variance that its metadata explains;
        0 gives metadata with no signal, 1 items fully determined by their metadata.
      user_metadata_strength: the same for users, in flavours with user metadata (movies,
        plain).
      popularity_exponent: exponent of the power law over item ranks that drives exposure.
      user_activity_exponent: exponent of the power law over users for the interactions beyond
        ``min_user_interactions`` per user.
      temperature: of the choice among the exposed items; lower is more taste-driven.
      num_candidates: items exposed per interaction (K).
      latent_dim: dimension ``d`` of the true factors.
      min_user_interactions: interactions drawn for every user before the power-law ones.
      missing_rate: probability that each metadata field of an entity is missing (NaN numeric,
        None single categorical, [] multi-valued, "" text); missing fields keep their latent
        effect, as unobserved values do in real data.
      num_categories: number of categories of the plain flavour (default 20); the other
        flavours have fixed vocabularies.
      string_ids: raw IDs as strings ``"u000123"`` / ``"i000045"`` (True) or the indices as
        ints (False, cheaper at scale). Default: strings when both counts are at most 100,000.
      unique_pairs: make every (user, item) pair occur once (see ``num_interactions``); False
        keeps repeats (as consumption logs have them). Products always merge pairs.

    Returns:
      A ``Dataset`` named ``"synthetic-<flavour>"``. ``info`` holds the ground truth:
      ``true_user_factors`` (num_users, d) and ``true_item_factors`` (num_items, d) float32
      (affinity = their dot product / sqrt(d), see ``true_affinity``),
      ``true_item_metadata_factors`` (num_items, d) (the metadata part ``meta_i``),
      ``true_item_exposure`` (num_items,) exposure probabilities, ``true_user_bias`` and
      ``true_item_bias`` (explicit only), ``params`` (all arguments), ``num_repeats_dropped``
      and ``generation_seconds``; products also ``relationship_weights``, ``num_pairs``,
      ``num_pairs_per_relationship`` and ``num_links_drawn``.

    Raises:
      SyntheticDataError: for an unknown flavour or an out-of-range argument.
    """
    t0 = time.perf_counter()
    params = {k: v for k, v in locals().items() if k != "t0"}
    if flavour not in FLAVOURS:
        raise SyntheticDataError(
            f"flavour={flavour!r} is unknown; choose one of {', '.join(FLAVOURS)}"
        )
    pairs = flavour == "products"
    if pairs:
        if num_users not in (None, num_items):
            raise SyntheticDataError(
                f"flavour='products' is an item-pair task whose users are the items; got "
                f"num_users={num_users} but num_items={num_items} (leave num_users None)"
            )
        num_users = num_items
        if not unique_pairs:
            raise SyntheticDataError(
                "flavour='products' always merges repeated pairs (as the Amazon loader does); "
                "unique_pairs=False is not supported"
            )
        if explicit:
            raise SyntheticDataError("flavour='products' has no ratings; use explicit=False")
        if timestamps:
            raise SyntheticDataError(
                "flavour='products' has no timestamps; use timestamps=None/False"
            )
    num_users = 1000 if num_users is None else num_users
    timestamps = (not pairs) if timestamps is None else timestamps
    if num_categories is not None and flavour != "plain":
        raise SyntheticDataError(f"num_categories only applies to flavour='plain', not {flavour!r}")
    num_categories = 20 if num_categories is None else num_categories
    _check(num_users >= 1, "num_users", num_users, ">= 1")
    _check(num_items >= 2, "num_items", num_items, ">= 2")
    _check(num_interactions >= 1, "num_interactions", num_interactions, ">= 1")
    _check(0.0 <= metadata_strength <= 1.0, "metadata_strength", metadata_strength, "in [0, 1]")
    _check(
        0.0 <= user_metadata_strength <= 1.0,
        "user_metadata_strength",
        user_metadata_strength,
        "in [0, 1]",
    )
    _check(popularity_exponent >= 0, "popularity_exponent", popularity_exponent, ">= 0")
    _check(user_activity_exponent >= 0, "user_activity_exponent", user_activity_exponent, ">= 0")
    _check(temperature > 0, "temperature", temperature, "> 0")
    _check(num_candidates >= 1 + pairs, "num_candidates", num_candidates, f">= {1 + pairs}")
    _check(latent_dim >= 1, "latent_dim", latent_dim, ">= 1")
    _check(min_user_interactions >= 0, "min_user_interactions", min_user_interactions, ">= 0")
    _check(0.0 <= missing_rate < 1.0, "missing_rate", missing_rate, "in [0, 1)")
    _check(num_categories >= 2, "num_categories", num_categories, ">= 2")
    if num_users * min_user_interactions > num_interactions:
        raise SyntheticDataError(
            f"num_interactions={num_interactions} is less than num_users * min_user_interactions "
            f"= {num_users} * {min_user_interactions}; lower min_user_interactions or add interactions"
        )
    if string_ids is None:
        string_ids = max(num_users, num_items) <= 100_000
    d = latent_dim

    # --- items: metadata and traits
    rng_items = _rng(seed, _S_ITEMS)
    if flavour == "movies":
        items = _movie_items(rng_items, num_items, d, missing_rate)
    elif flavour == "beer":
        items = _beer_items(rng_items, num_items, d, missing_rate)
    elif flavour == "products":
        items = _product_items(rng_items, num_items, d, missing_rate)
    else:
        items = _plain_items(rng_items, num_items, d, missing_rate, num_categories)
    rng_factors = _rng(seed, _S_FACTORS)
    item_meta = items.meta.astype(np.float32)
    item_factors = (
        math.sqrt(metadata_strength) * items.meta
        + math.sqrt(1.0 - metadata_strength) * rng_factors.standard_normal((num_items, d))
    ).astype(np.float32)

    # --- users: metadata and tastes
    users: _Side | None = None
    rng_users = _rng(seed, _S_USERS)
    if flavour == "movies":
        # The year direction of the items, so that age and release year interact.
        users = _movie_users(rng_users, num_users, d, missing_rate, items.numeric_direction)
    elif flavour == "plain":
        users = _plain_users(rng_users, num_users, d, missing_rate)
    if pairs:
        user_factors = item_factors  # a query product's "taste" is its own traits
    else:
        eta = np.empty((num_users, d), np.float32)
        for start in range(0, num_users, 1 << 20):  # bounded float64 temporaries
            sl = slice(start, start + (1 << 20))
            eta[sl] = rng_factors.standard_normal((len(eta[sl]), d))
        if users is not None:
            user_factors = (
                math.sqrt(user_metadata_strength) * users.meta
                + math.sqrt(1.0 - user_metadata_strength) * eta
            ).astype(np.float32)
        else:
            user_factors = eta

    # --- who interacts: every user min_user_interactions times, the rest by a power law
    rng_act = _rng(seed, _S_ACTIVITY)
    item_ranks = rng_act.permutation(num_items)  # item_ranks[i] = popularity rank of item i
    rank_to_item = np.argsort(item_ranks).astype(np.int32)
    user_rank_to_user = rng_act.permutation(num_users).astype(np.int32)
    extra = num_interactions - num_users * min_user_interactions
    user_seq = np.empty(num_interactions, np.int32)
    user_seq[: num_users * min_user_interactions] = np.tile(
        np.arange(num_users, dtype=np.int32), min_user_interactions
    )
    for start in range(0, extra, 1 << 22):
        n = min(1 << 22, extra - start)
        ranks = _power_law_ranks(rng_act.random(n), num_users, user_activity_exponent)
        off = num_users * min_user_interactions + start
        user_seq[off : off + n] = user_rank_to_user[ranks]
    rng_act.shuffle(user_seq)
    # Products: each link gets a relationship, whose temperature factor sets how closely it
    # follows similarity (bought-together pairs are the most similar).
    relation = None
    inv_temp: np.ndarray | float = 1.0 / temperature
    if pairs:
        relation = rng_act.choice(3, size=num_interactions, p=_RELATION_PROBS).astype(np.int8)
        rel_inv_temp = 1.0 / (temperature * np.asarray(_RELATION_TEMPERATURE))
        inv_temp = rel_inv_temp.astype(np.float32)[relation]
    item_rows = item_factors.view(np.dtype((np.void, 4 * d))).ravel()

    def draw(
        stream: int, rows: np.ndarray | None, exclude_keys: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        return _choose(
            seed=seed,
            stream=stream,
            users=user_seq if rows is None else user_seq[rows],
            inv_temp=inv_temp if rows is None or not pairs else inv_temp[rows],
            user_factors=user_factors,
            item_rows=item_rows,
            latent_dim=d,
            rank_to_item=rank_to_item,
            popularity_exponent=popularity_exponent,
            num_candidates=num_candidates,
            exclude_self=pairs,
            exclude_keys=exclude_keys,
        )

    item_seq, affinity, drop = _draw_distinct(
        user_seq, num_items, draw, distinct=unique_pairs and not pairs, exclude_self=pairs
    )
    weights = None
    pair_info: dict[str, Any] = {}
    if pairs:
        user_seq, item_seq, weights, pair_info = _merge_pairs(
            user_seq, item_seq, relation, drop, num_items
        )
        affinity, drop = None, drop[:0]
    if len(drop):
        keep = np.ones(num_interactions, bool)
        keep[drop] = False
        user_seq, item_seq, affinity = user_seq[keep], item_seq[keep], affinity[keep]
        weights = None if weights is None else weights[keep]
        del keep
    stamps = None
    if timestamps:
        # Each user is active in a window: a random, skewed-short fraction of the time left
        # after they join; their interactions are uniform within it.
        rng_time = _rng(seed, _S_TIME)
        lo, hi = _TIME_RANGES[flavour]
        time_start = rng_time.integers(lo, hi - 86_400, size=num_users)
        time_span = np.maximum((hi - time_start) * rng_time.random(num_users) ** 2, 1.0)
        stamps = np.empty(len(user_seq), np.int64)
        for start in range(0, len(user_seq), 1 << 22):
            u = user_seq[start : start + (1 << 22)]
            offset = (rng_time.random(len(u)) * time_span[u]).astype(np.int64)
            stamps[start : start + len(u)] = time_start[u] + offset

    info: dict[str, Any] = {}
    ratings = None
    if explicit:
        ratings, rating_info = _ratings(
            seed, affinity, user_seq, item_seq, num_users, num_items, flavour == "beer"
        )
        info.update(rating_info)

    item_map = _id_map(num_items, "i", "item", string_ids)
    user_map = item_map if pairs else _id_map(num_users, "u", "user", string_ids)
    interactions = Interactions(
        user_ids=user_seq,
        item_ids=item_seq,
        user_map=IdMap(item_map.raw_ids, "user") if pairs else user_map,
        item_map=item_map,
        ratings=ratings,
        weights=weights,
        timestamps=stamps,
    )
    index_name = {"beer": "beer_beerid", "products": "asin"}.get(flavour, "item_id")
    item_metadata = items.frame.set_axis(pd.Index(item_map.raw_ids, name=index_name), axis=0)
    user_metadata = None
    if users is not None:
        user_metadata = users.frame.set_axis(pd.Index(user_map.raw_ids, name="user_id"), axis=0)

    exposure = np.empty(num_items)
    exposure[rank_to_item] = _power_law_probs(num_items, popularity_exponent)
    info.update(
        {
            "source": "hybridrec.data.datasets.synthetic.make_synthetic",
            "flavour": flavour,
            "params": params,
            "true_user_factors": user_factors,
            "true_item_factors": item_factors,
            "true_item_metadata_factors": item_meta,
            "true_item_exposure": exposure,
            "affinity_scale": 1.0 / math.sqrt(d),
            "num_repeats_dropped": len(drop),
            "generation_seconds": time.perf_counter() - t0,
        }
    )
    if pairs:
        info["relationship_weights"] = dict(PRODUCT_RELATIONSHIP_WEIGHTS)
        info.update(pair_info)
    return Dataset(
        name=f"synthetic-{flavour}",
        interactions=interactions,
        item_metadata=item_metadata,
        user_metadata=user_metadata,
        info=info,
    )


def _check(ok: bool, name: str, value: Any, rule: str) -> None:
    if not ok:
        raise SyntheticDataError(f"{name}={value!r} is out of range; it must be {rule}")


def true_affinity(dataset: Dataset, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
    """The planted affinity ``s_ui = p_u . q_i / sqrt(d)`` of a synthetic dataset.

    Args:
      dataset: a dataset from ``make_synthetic``.
      user_ids: (n,) user indices; item_ids: (n,) item indices (broadcastable, e.g. (B, 1)
        users against (1, I) items).

    Returns:
      float32 affinities of the broadcast shape.
    """
    if "true_user_factors" not in dataset.info:
        raise SyntheticDataError(
            f"dataset {dataset.name!r} has no planted factors; make it with make_synthetic"
        )
    p = dataset.info["true_user_factors"][np.asarray(user_ids)]
    q = dataset.info["true_item_factors"][np.asarray(item_ids)]
    return (np.sum(p * q, axis=-1) * dataset.info["affinity_scale"]).astype(np.float32)
