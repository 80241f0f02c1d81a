"""MovieLens 100K: 100,000 ratings (1-5) by 943 users of 1,682 movies, with side metadata.

The data (F. M. Harper and J. A. Konstan, "The MovieLens Datasets: History and Context", ACM TiiS
5(4), 2015) may not be redistributed, so it is never shipped with hybridrec: ``load_movielens_100k``
obtains it, in this order, from

1. an explicit ``path``: a directory (or a zip) in either of the two layouts below;
2. the cache, ``data_home()/movielens-100k/{grouplens,recbole}/``, verified by SHA-256;
3. the GroupLens archive https://files.grouplens.org/datasets/movielens/ml-100k.zip (urllib,
   with a timeout; the zip and the files used are verified by SHA-256), extracted into the cache;
4. the copy inside RecBole 1.2.1's wheel (``python -m pip download --no-deps recbole==1.2.1``),
   for machines that reach only the Python package index; ``recbole/dataset_example/ml-100k/``
   of the wheel is verified and extracted into the cache.

Downloads (3, 4) are off with ``download=False`` or ``$HYBRIDREC_NO_DOWNLOAD=1``. When no source
works, one ``DataUnavailableError`` lists every source and why it failed.

Two layouts are read and give identical interactions and metadata:

- GroupLens: ``u.data`` (tab-separated ``user item rating timestamp``), ``u.item`` (``|``-separated,
  latin-1: ``id|title (year)|release date|video release date|IMDb URL|19 genre flags``), ``u.user``
  (``id|age|gender|occupation|zip``) and optionally ``u.genre`` (``name|index``).
- RecBole atomic files: ``ml-100k.inter``, ``ml-100k.item`` (``item_id, movie_title,
  release_year, class``), ``ml-100k.user``, plus ``ml-100k.kg`` (Freebase triples ``head_id
  relation_id tail_id``) and ``ml-100k.link`` (``item_id entity_id``), whose headers read
  ``name:type``.

Item metadata (indexed by raw item ID in ``item_map`` order): ``title`` (str, the trailing
"(year)" and a "(V)" video marker stripped, "" for the placeholder movie 267 "unknown"),
``release_year`` (float, from the title, else from the release date; NaN if neither),
``release_date`` (ISO "YYYY-MM-DD" str from ``u.item``, None where the source has none; the RecBole
layout has none), ``genres`` (list of str in ``u.genre`` order, spelled as in ``u.genre``:
"Children's", "Film-Noir", "Sci-Fi", ... including "unknown"), ``freebase`` (str, see
``freebase_tokens``; "" for a movie without a link or when no ``.kg``/``.link`` is at hand).
User metadata (indexed by raw user ID): ``age`` (float), ``gender``, ``occupation``, ``zip_code``
(str; zip codes keep leading zeros and letters, e.g. Canadian "T8H1N").
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
import re
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridrec.data.datasets import _cache
from hybridrec.data.datasets._base import Dataset
from hybridrec.data.datasets._cache import DataFormatError, DownloadsDisabledError, Source
from hybridrec.data.interactions import IdMap, Interactions

__all__ = ["GENRES", "RELEASE", "freebase_tokens", "load_movielens_100k"]

log = logging.getLogger(__name__)

NAME = "movielens-100k"
GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
RECBOLE_REQUIREMENT = "recbole==1.2.1"
RECBOLE_PREFIX = "recbole/dataset_example/ml-100k/"
LICENSE = (
    "GroupLens research licence: use for research; no redistribution without permission; "
    "cite Harper & Konstan (2015). See the README in the GroupLens archive."
)
CITATION = (
    "F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and Context. "
    "ACM Transactions on Interactive Intelligent Systems (TiiS) 5, 4, Article 19. "
    "https://doi.org/10.1145/2827872"
)

#: The 19 genres of ``u.genre``, in flag order and spelling (RecBole spells them the same).
GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

GROUPLENS_FILES = ("u.data", "u.item", "u.user")
#: Ratings are whole stars in this range (the documented range of the release).
RATING_RANGE = (1, 5)
RECBOLE_FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
KG_FILES = ("ml-100k.kg", "ml-100k.link")
# What the cache keeps of the GroupLens archive: the files read, the genre/occupation lists, the
# README (it carries the licence); not the 80/20 splits u1..u5, ua, ub.
_GROUPLENS_KEEP = (*GROUPLENS_FILES, "u.genre", "u.occupation", "u.info", "README")


@dataclasses.dataclass(frozen=True)
class Release:
    """What the official release looks like: pinned SHA-256 digests and sizes.

    ``u.data``/``u.user`` digests were re-derived here from RecBole's copy (same rows, same
    order) and agree with digests published by other projects; ``u.item`` and the zip are the
    published ones (their URLs and dates are not in RecBole's copy).
    """

    grouplens_zip: str
    grouplens: dict[str, str]
    recbole_wheel: str
    recbole: dict[str, str]
    num_ratings: int
    num_users: int
    num_items: int


RELEASE = Release(
    grouplens_zip="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
    grouplens={
        "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
        "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
        "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    },
    recbole_wheel="9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
    recbole={
        "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
        "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
        "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
        "ml-100k.kg": "200a0636fa07c218119a42e5bac7aa3e26e3665a6f919c1b22909bd412b14779",
        "ml-100k.link": "524dca2c3d62619688ab99b3ec53ea2acb9b64d38eafec3e02bdd0dc6bb7d948",
    },
    num_ratings=100_000,
    num_users=943,
    num_items=1_682,
)


# ============================================================================ public API
def load_movielens_100k(
    path: str | Path | None = None,
    *,
    download: bool | None = None,
    cache_dir: str | Path | None = None,
) -> Dataset:
    """Loads MovieLens 100K with item and user metadata.

    Args:
      path: a directory holding either layout (or an ``ml-100k/`` folder that does), or a zip of
        one (the GroupLens archive, or RecBole's wheel). When given, only this path is used and it
        is not checked against the official checksums (``info["official_release"]`` says whether
        it matches), so modified copies and test fixtures load.
      download: False never touches the network; None/True allow downloads unless
        ``$HYBRIDREC_NO_DOWNLOAD`` is set.
      cache_dir: root of the data cache; default ``$HYBRIDREC_DATA`` or ``~/.cache/hybridrec``.

    Returns:
      ``Dataset(name="movielens-100k")`` whose ``interactions`` (N = 100,000 in the release) hold
      ``ratings`` (N,) float32 and ``timestamps`` (N,) int64 in file order, with raw integer IDs
      (sorted, so user 1 -> index 0); ``item_metadata`` (num_items rows) and ``user_metadata``
      (num_users rows) as described in the module docstring; ``info`` with the source, layout,
      directory, per-file SHA-256 and licence.

    Raises:
      DataUnavailableError: no source worked (lists each source and why).
      DataFormatError: a file is malformed (names the file and line).
      FileNotFoundError: ``path`` holds neither layout.
    """
    if path is not None:
        return _load_from_path(Path(path).expanduser())
    root = _cache.data_home(cache_dir) / NAME
    sources = [
        Source("cache (GroupLens layout)", lambda: _cached(root, "grouplens")),
        Source("cache (RecBole layout)", lambda: _cached(root, "recbole")),
        Source(f"download {GROUPLENS_URL}", lambda: _download_grouplens(root, download)),
        Source(
            f"pip download {RECBOLE_REQUIREMENT} (its recbole/dataset_example/ml-100k/)",
            lambda: _pip_recbole(root, download),
        ),
    ]
    hint = (
        "To provide the data by hand: unzip ml-100k.zip from "
        "https://grouplens.org/datasets/movielens/100k/ and pass path=<the ml-100k folder>, or put "
        f"its files into {root / 'grouplens'}."
    )
    source_name, result = _cache.try_sources(NAME, sources, hint)
    directory, layout, how = result  # type: ignore[misc]
    dataset = _parse_directory(directory, layout, kg_fallback=root / "recbole")
    _check_counts(dataset, directory)
    dataset.info.update(source=how, source_detail=source_name, official_release=True)
    return dataset


def freebase_tokens(kg: pd.DataFrame, link: pd.DataFrame) -> pd.Series:
    """Turns Freebase triples into one ``relation=entity`` token string per linked movie.

    For a movie whose entity is ``m``: a triple ``(m, r, x)`` gives ``r=x``; a triple
    ``(x, r, m)`` gives ``r^-1=x`` unless some triple ``(m, ., x)`` already links the movie to
    ``x``. The KG stores most facts twice (``film.film.directed_by`` and its inverse
    ``film.director.film``), and this keeps one token per fact while still keeping facts stored
    only towards the movie (a few ``film.actor.film`` and ``film.film.prequel`` triples).

    Args:
      kg: columns ``head``, ``relation``, ``tail`` (str).
      link: columns ``item_id`` (int), ``entity`` (str).

    Returns:
      Series indexed by item ID: the movie's tokens sorted and joined by spaces (items without
      any fact are absent).
    """
    heads = kg["head"].to_numpy(dtype=object)
    relations = kg["relation"].to_numpy(dtype=object)
    tails = kg["tail"].to_numpy(dtype=object)
    entities = link["entity"].to_numpy(dtype=object)
    # One integer code per entity string; object arrays throughout (pandas 3's arrow strings
    # would make this ~10x slower).
    codes, uniques = pd.factorize(np.concatenate([heads, tails, entities]))
    n, k = len(heads), len(uniques)
    head_code, tail_code, link_code = codes[:n], codes[n : 2 * n], codes[2 * n :]
    item_of = np.full(k, -1, np.int64)  # entity code -> item ID (-1: not a movie of ours)
    item_of[link_code] = link["item_id"].to_numpy(dtype=np.int64)

    fwd = item_of[head_code] >= 0
    inv = item_of[tail_code] >= 0
    fwd_key = item_of[head_code][fwd] * k + tail_code[fwd]  # (movie, other entity) pairs
    inv_key = item_of[tail_code][inv] * k + head_code[inv]
    inv[inv] = ~np.isin(inv_key, fwd_key)
    items = np.concatenate([item_of[head_code][fwd], item_of[tail_code][inv]])
    tokens = np.concatenate(
        [relations[fwd] + "=" + tails[fwd], relations[inv] + "^-1=" + heads[inv]]
    )
    if len(items) == 0:
        return pd.Series(dtype=object, index=pd.Index([], dtype=np.int64, name="item_id"))
    token_code, token_uniques = pd.factorize(tokens, sort=True)
    order = np.lexsort((token_code, items))
    items, token_code = items[order], token_code[order]
    keep = np.ones(len(items), bool)  # drop repeated (movie, token) pairs
    keep[1:] = (items[1:] != items[:-1]) | (token_code[1:] != token_code[:-1])
    items, tokens = items[keep], token_uniques[token_code[keep]]
    starts = np.flatnonzero(np.r_[True, items[1:] != items[:-1]])
    ends = np.r_[starts[1:], len(items)]
    # Python-level join per movie (1.6k movies), not per triple.
    joined = [" ".join(tokens[a:b]) for a, b in zip(starts, ends)]
    return pd.Series(
        np.asarray(joined, dtype=object),
        index=pd.Index(items[starts], name="item_id"),
        dtype=object,
    )


# ============================================================================ sources
def _layout_of(directory: Path) -> str | None:
    if all((directory / f).is_file() for f in GROUPLENS_FILES):
        return "grouplens"
    if all((directory / f).is_file() for f in RECBOLE_FILES):
        return "recbole"
    return None


def _cached(root: Path, layout: str) -> tuple[Path, str, str]:
    """A verified copy in the cache, or raises why there is none."""
    directory = root / layout
    if not directory.is_dir():
        raise FileNotFoundError(f"no copy in {directory}")
    pinned = RELEASE.grouplens if layout == "grouplens" else RELEASE.recbole
    _cache.verify_files(directory, pinned)
    return directory, layout, "cache"


def _require_downloads(download: bool | None) -> None:
    reason = _cache.downloads_disabled_reason(download)
    if reason:
        raise DownloadsDisabledError(reason)


def _download_grouplens(root: Path, download: bool | None) -> tuple[Path, str, str]:
    _require_downloads(download)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        archive = _cache.download_url(
            GROUPLENS_URL, Path(tmp) / "ml-100k.zip", sha256=RELEASE.grouplens_zip, timeout=60
        )
        directory = _cache.extract_zip_dir(
            archive,
            "ml-100k/",
            root / "grouplens",
            names=_GROUPLENS_KEEP,
            required=GROUPLENS_FILES,
        )
    _cache.verify_files(directory, RELEASE.grouplens)
    log.info("MovieLens 100K downloaded from GroupLens into %s", directory)
    # GroupLens has no Freebase links; RecBole's copy adds them. Best effort: a failure here only
    # leaves the ``freebase`` column empty.
    if not (root / "recbole").is_dir():
        try:
            _pip_recbole(root, download)
        except Exception as e:  # noqa: BLE001
            log.warning("Freebase facts unavailable (RecBole copy not obtained: %s)", e)
    return directory, "grouplens", "download:grouplens"


def _pip_recbole(root: Path, download: bool | None) -> tuple[Path, str, str]:
    _require_downloads(download)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        wheel = _cache.pip_download(RECBOLE_REQUIREMENT, tmp, sha256=RELEASE.recbole_wheel)
        directory = _cache.extract_zip_dir(
            wheel, RECBOLE_PREFIX, root / "recbole", names=RELEASE.recbole
        )
    _cache.verify_files(directory, RELEASE.recbole)
    log.info("MovieLens 100K taken from the %s wheel into %s", RECBOLE_REQUIREMENT, directory)
    return directory, "recbole", f"pypi:{RECBOLE_REQUIREMENT}"


def _diagnose_layout(directory: Path) -> None:
    """Where a layout is partly present, raises naming the file that is missing or unusable.

    Without this a missing ``u.item``, a ``u.data`` that is a folder or a symlink loop would all
    read "holds neither layout".
    """
    if not directory.is_dir():
        return
    for name, files in (("GroupLens", GROUPLENS_FILES), ("RecBole", RECBOLE_FILES)):
        if any(os.path.lexists(directory / f) for f in files):
            for f in files:
                try:
                    _cache.check_file(directory / f, "MovieLens file")
                except _cache.DataError as e:
                    raise type(e)(f"{e} (the {name} layout needs {', '.join(files)})") from None


def _load_from_path(path: Path) -> Dataset:
    if not path.exists():
        _cache.check_file(path, "MovieLens path")  # says absent, dangling link or loop
    if path.is_file():
        _cache.check_file(path, "MovieLens archive")
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic == b"PK\x03\x04" and not zipfile.is_zipfile(path):
            raise DataFormatError(
                f"{path}: a zip archive without its central directory: truncated or corrupt"
            )
        if not zipfile.is_zipfile(path):
            raise _cache.MissingDataFileError(f"{path} is neither a directory nor a zip archive")
        with zipfile.ZipFile(path) as zf:
            members = zf.namelist()
        prefix = None
        for marker in GROUPLENS_FILES[0], RECBOLE_FILES[0]:
            hits = sorted(m for m in members if m == marker or m.endswith("/" + marker))
            if hits:
                prefix = hits[0][: -len(marker)]
                break
        if prefix is None:
            raise _cache.MissingDataFileError(f"{path} holds no u.data or ml-100k.inter")
        with tempfile.TemporaryDirectory() as tmp:
            try:
                directory = _cache.extract_zip_dir(path, prefix, Path(tmp) / "ml-100k")
            except (zipfile.BadZipFile, *_cache.READ_ERRORS) as e:
                if isinstance(e, FileNotFoundError):
                    raise _cache.MissingDataFileError(str(e)) from None
                raise DataFormatError(f"{path}: a corrupt zip archive ({e})") from None
            inside = f"{path}!/{prefix}"
            try:
                _diagnose_layout(directory)
                dataset = _parse_directory(directory, _layout_of(directory) or "", kg_fallback=None)
            except _cache.DataError as e:
                # The extracted copy is about to vanish: name the file by its place in the zip.
                message = str(e).replace(f"{directory}/", inside)
                raise type(e)(message) from None
        # The extracted copy is gone: name the files by their place in the archive instead.
        dataset.info["directory"] = inside
        if dataset.info["freebase_source"] is not None:
            dataset.info["freebase_source"] = inside
    else:
        candidates = [path, path / "ml-100k", path / RECBOLE_PREFIX]
        found = [(d, _layout_of(d)) for d in candidates if d.is_dir() and _layout_of(d)]
        if not found:
            for d in candidates:
                _diagnose_layout(d)
            raise _cache.MissingDataFileError(
                f"{path} holds neither the GroupLens layout ({', '.join(GROUPLENS_FILES)}) nor "
                f"the RecBole layout ({', '.join(RECBOLE_FILES)}), nor an ml-100k/ folder that does"
            )
        directory, layout = found[0]
        dataset = _parse_directory(directory, layout, kg_fallback=None)
    pinned = {**RELEASE.grouplens, **RELEASE.recbole}
    files = dataset.info["sha256"]
    official = all(files.get(f) == d for f, d in pinned.items() if f in files)
    dataset.info.update(source="path", source_detail=str(path), official_release=official)
    return dataset


def _check_counts(dataset: Dataset, directory: Path) -> None:
    got = (
        len(dataset.interactions),
        dataset.interactions.num_users,
        dataset.interactions.num_items,
    )
    want = (RELEASE.num_ratings, RELEASE.num_users, RELEASE.num_items)
    if got != want:
        raise DataFormatError(
            f"{directory}: expected {want[0]} ratings, {want[1]} users, {want[2]} items; "
            f"read {got[0]}, {got[1]}, {got[2]}"
        )


# ============================================================================ parsing
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}
_GENRE_KEYS = {re.sub(r"[^a-z]", "", g.lower()): g for g in GENRES}
# The year in parentheses at the end of a title, optionally followed by GroupLens' "(V)" (video).
_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)(?:\s*\(V\))?\s*$")
# Placeholder titles of the one movie nobody knows (item 267); RecBole misspells it.
_UNKNOWN_TITLES = {"unknown", "unkonwn"}


@dataclasses.dataclass
class _Table:
    """Fields of a delimited file as strings, with the 1-based line number of each row."""

    path: Path
    frame: pd.DataFrame
    lines: np.ndarray

    def where(self, row: int) -> str:
        return f"{self.path}:{int(self.lines[row])}"


def _read_table(
    path: Path, *, sep: str, num_fields: int | None = None, header: bool = False
) -> _Table:
    """Reads a delimited file as strings; checks the number of fields of every line.

    The encoding is detected: strict UTF-8, else Latin-1 (the official ``u.item`` is Latin-1;
    re-saved copies are often UTF-8, and reading those as Latin-1 would garble "Amélie").
    """
    _cache.check_file(path, "MovieLens file")
    encoding = _cache.detect_encoding(path)
    try:
        raw = pd.read_csv(
            path,
            sep=sep,
            header=None,
            dtype=str,
            encoding=encoding,
            quoting=csv.QUOTE_NONE,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
        )
    except pd.errors.EmptyDataError as e:
        raise DataFormatError(f"{path}: the file holds only blank lines, no data") from e
    except pd.errors.ParserError as e:
        # pandas says e.g. "Expected 4 fields in line 7, saw 5"; its line numbers are the file's.
        raise DataFormatError(
            f"{path}: {str(e).replace('Error tokenizing data. C error: ', '').strip()}"
        ) from e
    except _cache.READ_ERRORS as e:
        raise _cache.read_error(path, e, encoding) from e
    lines = np.arange(1, len(raw) + 1)
    names: list[str] = list(range(raw.shape[1]))  # type: ignore[arg-type]
    if header:
        names = [str(v).split(":", 1)[0] for v in raw.iloc[0]]
        raw, lines = raw.iloc[1:], lines[1:]
    raw.columns = names
    blank = (raw == "").all(axis=1).to_numpy()
    raw, lines = raw[~blank].reset_index(drop=True), lines[~blank]
    if len(raw) == 0:
        raise DataFormatError(f"{path}: the file has {'a header but ' if header else ''}no rows")
    if num_fields is not None and raw.shape[1] != num_fields:
        raise DataFormatError(
            f"{path}:{int(lines[0]) if len(lines) else 1}: expected {num_fields} "
            f"{sep!r}-separated fields per line, found {raw.shape[1]}"
        )
    _cache.check_last_line(path, sep, raw.shape[1], encoding, quoting=csv.QUOTE_NONE)
    return _Table(path, raw, lines)


def _integers(table: _Table, col: Any, what: str) -> np.ndarray:
    """(n,) int64 values of a column; raises naming file:line for a missing or non-integer one."""
    text = table.frame[col]
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataFormatError(f"{table.where(row)}: {what} {text.iloc[row]!r} is not an integer")
    return values.astype(np.int64)


def _floats(table: _Table, col: Any, what: str, *, allow_missing: bool = False) -> np.ndarray:
    text = table.frame[col]
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if allow_missing:
        bad &= text.str.strip().to_numpy() != ""
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataFormatError(f"{table.where(row)}: {what} {text.iloc[row]!r} is not a number")
    return values


def _unique_ids(table: _Table, col: Any, what: str) -> np.ndarray:
    ids = _integers(table, col, what)
    dup = pd.Series(ids).duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise DataFormatError(f"{table.where(row)}: {what} {ids[row]} appears twice")
    return ids


def _strings(values: pd.Series) -> np.ndarray:
    """Stripped strings as an object array, None where empty."""
    out = values.astype(str).str.strip().to_numpy(dtype=object)
    out[out == ""] = None
    return out


def _frame(columns: dict[str, np.ndarray], index: pd.Index) -> pd.DataFrame:
    """A DataFrame whose text and list columns stay ``object`` (pandas 3 would infer ``str``,
    turning None into NaN); numeric columns keep their dtype."""
    return pd.DataFrame(
        {
            name: pd.Series(
                values, index=index, dtype=object if values.dtype == object else values.dtype
            )
            for name, values in columns.items()
        },
        index=index,
    )


def _lists(values: list[list[str]]) -> np.ndarray:
    """An object array holding one Python list per row (np.asarray would make a 2-D array)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):  # slice assignment would broadcast equal-length lists
        out[i] = v
    return out


def _canonical_genre(name: str) -> str:
    return _GENRE_KEYS.get(re.sub(r"[^a-z]", "", name.lower()), name.strip())


def _sort_genres(genres: list[str]) -> list[str]:
    order = {g: i for i, g in enumerate(GENRES)}
    return sorted(dict.fromkeys(genres), key=lambda g: (order.get(g, len(order)), g))


def _split_titles(raw_titles: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(titles without "(year)", years as float with NaN) from GroupLens-style titles."""
    titles = raw_titles.astype(str).str.strip()
    parts = titles.str.extract(_TITLE_YEAR)
    has_year = parts["year"].notna().to_numpy()
    clean = np.where(has_year, parts["title"].fillna(""), titles).astype(object)
    years = pd.to_numeric(parts["year"], errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    clean[np.isin(np.char.lower(clean.astype(str)), list(_UNKNOWN_TITLES))] = ""
    return clean, years


def _display_titles(titles: np.ndarray, years: np.ndarray) -> np.ndarray:
    """ "Title (year)" where the source title carries a year, so duplicates of a name (22 titles
    occur under 45 IDs) stay distinguishable; the title alone otherwise, "" for the placeholder."""
    out = titles.astype(object).copy()
    has = ~np.isnan(years) & (out != "")
    out[has] = [f"{t} ({int(y)})" for t, y in zip(out[has], years[has])]
    return out


def _iso_dates(table: _Table, col: Any) -> tuple[np.ndarray, np.ndarray]:
    """GroupLens dates like "01-Jan-1995" -> ISO strings (None if empty) and years (NaN)."""
    text = table.frame[col].str.strip()
    parts = text.str.extract(r"^(\d{1,2})-([A-Za-z]{3})-(\d{4})$")
    month = parts[1].str.lower().map(_MONTHS)
    bad = (text != "").to_numpy() & month.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{table.where(row)}: release date {text.iloc[row]!r} is not like '01-Jan-1995'"
        )
    ok = ~month.isna().to_numpy()
    iso = np.full(len(text), None, dtype=object)
    iso[ok] = (
        parts[2][ok]
        + "-"
        + month[ok].astype(int).map("{:02d}".format)
        + "-"
        + parts[0][ok].str.zfill(2)
    ).to_numpy()
    years = pd.to_numeric(parts[2], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return iso, years


def _read_ratings(table: _Table, cols: Sequence[Any]) -> pd.DataFrame:
    """The ratings; refuses a rating outside 1..5 whole stars and a (user, movie) rated twice."""
    user, item, rating, ts = cols
    frame = pd.DataFrame(
        {
            "user_id": _integers(table, user, "user id"),
            "item_id": _integers(table, item, "item id"),
            "rating": _floats(table, rating, "rating"),
            "timestamp": _integers(table, ts, "timestamp"),
            "line": table.lines,  # for messages about a rating found later
        }
    )
    stars = frame["rating"].to_numpy()
    bad = (stars < RATING_RANGE[0]) | (stars > RATING_RANGE[1]) | (stars != np.round(stars))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{table.where(row)}: rating {table.frame[rating].iloc[row]!r} is outside MovieLens "
            f"100K's whole stars {RATING_RANGE[0]}..{RATING_RANGE[1]} ({int(bad.sum())} such "
            "rows in all)"
        )
    repeated = frame.duplicated(["user_id", "item_id"], keep=False).to_numpy()
    if repeated.any():
        pair = frame.iloc[int(np.flatnonzero(repeated)[0])]
        again = frame.loc[
            (frame["user_id"] == pair["user_id"]) & (frame["item_id"] == pair["item_id"])
        ].index
        first, second = int(again[0]), int(again[1])
        ratings = (frame["rating"].iloc[first], frame["rating"].iloc[second])
        raise DataFormatError(
            f"{table.where(second)}: user {int(pair['user_id'])} rated item {int(pair['item_id'])} "
            f"again (ratings {ratings[0]:g} and {ratings[1]:g}; first at line "
            f"{int(table.lines[first])}); MovieLens 100K holds one rating per user and movie "
            f"({int(repeated.sum())} rows share a pair)"
        )
    return frame


def _users_frame(table: _Table, cols: Sequence[Any]) -> pd.DataFrame:
    uid, age, gender, occupation, zip_code = cols
    ids = _unique_ids(table, uid, "user id")
    return _frame(
        {
            "age": _floats(table, age, "age", allow_missing=True),
            "gender": _strings(table.frame[gender]),
            "occupation": _strings(table.frame[occupation]),
            "zip_code": _strings(table.frame[zip_code]),
        },
        pd.Index(ids, name="user_id"),
    )


def _parse_grouplens(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ratings = _read_ratings(_read_table(directory / "u.data", sep="\t", num_fields=4), range(4))
    genre_names = list(GENRES)
    if (directory / "u.genre").is_file():
        g = _read_table(directory / "u.genre", sep="|", num_fields=2)
        order = _integers(g, 1, "genre index")
        genre_names = [_canonical_genre(n) for n in g.frame[0].to_numpy()[np.argsort(order)]]
    items = _read_table(directory / "u.item", sep="|", num_fields=5 + len(genre_names))
    item_ids = _unique_ids(items, 0, "item id")
    titles, title_years = _split_titles(items.frame[0 + 1])
    dates, date_years = _iso_dates(items, 2)
    flags = np.stack(
        [_integers(items, 5 + k, f"genre flag {n!r}") for k, n in enumerate(genre_names)], 1
    )
    if ((flags != 0) & (flags != 1)).any():
        row, k = (int(v) for v in np.argwhere((flags != 0) & (flags != 1))[0])
        raise DataFormatError(
            f"{items.where(row)}: genre flag {genre_names[k]!r} is {int(flags[row, k])}; genre "
            "flags must be 0 or 1"
        )
    names = np.asarray(genre_names, dtype=object)
    # One list per movie (1.7k rows); the flags themselves are handled as an array.
    genres = [_sort_genres(list(names[row.astype(bool)])) for row in flags]
    item_frame = _frame(
        {
            "title": _display_titles(titles, title_years),
            "release_year": np.where(np.isnan(title_years), date_years, title_years),
            "release_date": dates,
            "genres": _lists(genres),
        },
        pd.Index(item_ids, name="item_id"),
    )
    users = _users_frame(_read_table(directory / "u.user", sep="|", num_fields=5), range(5))
    return ratings, item_frame, users


def _columns(table: _Table, wanted: Sequence[str]) -> list[str]:
    missing = [c for c in wanted if c not in table.frame.columns]
    if missing:
        raise DataFormatError(
            f"{table.path}:1: header lacks column(s) {missing}; it has {list(table.frame.columns)}"
        )
    return list(wanted)


def _parse_recbole(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    inter = _read_table(directory / "ml-100k.inter", sep="\t", header=True)
    ratings = _read_ratings(inter, _columns(inter, ["user_id", "item_id", "rating", "timestamp"]))
    items = _read_table(directory / "ml-100k.item", sep="\t", header=True)
    iid, title, year, klass = _columns(items, ["item_id", "movie_title", "release_year", "class"])
    item_ids = _unique_ids(items, iid, "item id")
    raw_titles = items.frame[title].astype(str).str.strip()
    year_text = items.frame[year].astype(str).str.strip()
    years = pd.to_numeric(year_text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    # Where RecBole found no year (it read "V" from "... (1995) (V)"), the year is still at the
    # end of the title: split it off as in the GroupLens layout.
    split_titles, split_years = _split_titles(raw_titles)
    placeholder = np.isin(raw_titles.str.lower().to_numpy(dtype=str), list(_UNKNOWN_TITLES))
    # Any other non-numeric year is a bad cell, not a missing one.
    bad = np.isnan(years) & (year_text != "").to_numpy() & np.isnan(split_years) & ~placeholder
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{items.where(row)}: release_year {year_text.iloc[row]!r} is not a year (and the "
            f"title {raw_titles.iloc[row]!r} carries none)"
        )
    titles = np.where(np.isnan(years), split_titles, raw_titles.to_numpy(dtype=object))
    titles[np.isin(np.char.lower(titles.astype(str)), list(_UNKNOWN_TITLES))] = ""
    years = np.where(np.isnan(years), split_years, years)
    genres = [
        _sort_genres([_canonical_genre(g) for g in s.split()])
        for s in items.frame[klass].astype(str)
    ]
    item_frame = _frame(
        {
            "title": _display_titles(titles.astype(object), years),
            "release_year": years,
            "release_date": np.full(len(item_ids), None, dtype=object),
            "genres": _lists(genres),
        },
        pd.Index(item_ids, name="item_id"),
    )
    users = _read_table(directory / "ml-100k.user", sep="\t", header=True)
    user_frame = _users_frame(
        users, _columns(users, ["user_id", "age", "gender", "occupation", "zip_code"])
    )
    return ratings, item_frame, user_frame


def _read_freebase(directory: Path) -> pd.Series:
    kg = _read_table(directory / "ml-100k.kg", sep="\t", header=True)
    h, r, t = _columns(kg, ["head_id", "relation_id", "tail_id"])
    link = _read_table(directory / "ml-100k.link", sep="\t", header=True)
    iid, ent = _columns(link, ["item_id", "entity_id"])
    triples = pd.DataFrame(
        {
            "head": kg.frame[h].str.strip().to_numpy(dtype=object),
            "relation": kg.frame[r].str.strip().to_numpy(dtype=object),
            "tail": kg.frame[t].str.strip().to_numpy(dtype=object),
        }
    )
    links = pd.DataFrame(
        {
            "item_id": _unique_ids(link, iid, "item id"),
            "entity": link.frame[ent].str.strip().to_numpy(dtype=object),
        }
    )
    return freebase_tokens(triples, links)


def _parse_directory(directory: Path, layout: str, kg_fallback: Path | None) -> Dataset:
    """Reads one directory of either layout into a Dataset (info holds the file digests)."""
    if layout == "grouplens":
        ratings, items, users = _parse_grouplens(directory)
        files = [directory / f for f in (*GROUPLENS_FILES, "u.genre")]
    elif layout == "recbole":
        ratings, items, users = _parse_recbole(directory)
        files = [directory / f for f in RECBOLE_FILES]
    else:
        raise FileNotFoundError(f"{directory} holds neither the GroupLens nor the RecBole layout")

    kg_dir = None
    for candidate in (directory, kg_fallback):
        if candidate is not None and all((candidate / f).is_file() for f in KG_FILES):
            if candidate != directory:
                try:  # the cached RecBole copy only counts if it is intact
                    _cache.verify_files(candidate, {f: RELEASE.recbole[f] for f in KG_FILES})
                except (ValueError, OSError) as e:
                    log.warning("ignoring Freebase files in %s: %s", candidate, e)
                    continue
            kg_dir = candidate
            break
    freebase = pd.Series(dtype=object)
    if kg_dir is not None:
        freebase = _read_freebase(kg_dir)
        files += [kg_dir / f for f in KG_FILES]

    ratings_file = directory / ("u.data" if layout == "grouplens" else "ml-100k.inter")
    for what, known, label in (("item", items.index, "item"), ("user", users.index, "user")):
        unknown = ~np.isin(ratings[f"{what}_id"].to_numpy(), known.to_numpy())
        if unknown.any():
            first = int(np.flatnonzero(unknown)[0])
            raise DataFormatError(
                f"{ratings_file}: {label} {ratings[f'{what}_id'].to_numpy()[first]} has "
                f"ratings but no row in the {label} metadata ({int(unknown.sum())} ratings; "
                f"first at line {int(ratings['line'].iloc[first])})"
            )
    user_map = IdMap.from_values(np.union1d(ratings["user_id"], users.index), name="user")
    item_map = IdMap.from_values(np.union1d(ratings["item_id"], items.index), name="item")
    interactions = Interactions.from_dataframe(
        ratings,
        rating_col="rating",
        timestamp_col="timestamp",
        user_map=user_map,
        item_map=item_map,
    )
    items = items.reindex(item_map.raw_ids)
    items["freebase"] = pd.Series(
        freebase.reindex(items.index).fillna("").to_numpy(dtype=object),
        index=items.index,
        dtype=object,
    )
    items.index.name = "item_id"
    users = users.reindex(user_map.raw_ids)
    users.index.name = "user_id"
    info = {
        "layout": layout,
        "directory": str(directory),
        "sha256": {f.name: _cache.sha256_file(f) for f in files if f.is_file()},
        "encodings": {f.name: _cache.detect_encoding(f) for f in files if f.is_file()},
        "freebase_source": str(kg_dir) if kg_dir is not None else None,
        "url": GROUPLENS_URL,
        "license": LICENSE,
        "citation": CITATION,
    }
    return Dataset(
        name=NAME, interactions=interactions, item_metadata=items, user_metadata=users, info=info
    )
