"""Tests for the MovieLens 100K loader and the shared cache/download plumbing.

MovieLens may not be redistributed, so every test writes a small FAKE copy in both layouts into
``tmp_path`` (helpers below) and never reaches the network: downloads are replaced by fakes that
serve those fixtures, and the pinned release (checksums, counts) is swapped for the fixtures' own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import subprocess
import sys
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrec.data.datasets import _cache, movielens
from hybridrec.data.datasets._cache import (
    ChecksumError,
    DataFormatError,
    DataUnavailableError,
    Source,
)
from hybridrec.data.datasets.movielens import GENRES, freebase_tokens, load_movielens_100k

# ------------------------------------------------------------------------------ fixtures
# Users: a zip code with a leading zero, a Canadian one with letters, the occupation "none".
USERS = [
    (1, 24, "M", "technician", "85711"),
    (2, 53, "F", "other", "01915"),
    (3, 23, "M", "writer", "T8H1N"),
    (4, 30, "F", "none", "02139"),
]
# Items: (id, title without year, year, GroupLens release date, genres, Freebase entity).
#  2: latin-1 characters; 3: the placeholder "unknown" movie (no date, no year; RecBole
#  misspells it "unkonwn"); 4: no release date and no .link entry; 5: a "(V)" video whose
#  year RecBole failed to split off (it reads the year as "V").
ITEMS = [
    (1, "Toy Story", 1995, "01-Jan-1995", ["Animation", "Children's", "Comedy"], "m.tt1"),
    (2, "Misérables, Les", 1995, "15-Dec-1995", ["Drama", "Musical"], "m.tt2"),
    (3, "unknown", None, "", ["unknown"], "m.tt3"),
    (4, "Á köldum klaka (Cold Fever)", 1994, "", ["Comedy", "Drama"], None),
    (5, "Land Before Time III", 1995, "01-Jan-1995", ["Film-Noir", "Sci-Fi"], "m.tt5"),
]
# Ratings: (user, item, rating, timestamp), deliberately not sorted.
RATINGS = [
    (3, 2, 4, 881250949),
    (1, 1, 5, 874965758),
    (2, 5, 1, 888550871),
    (1, 3, 3, 876893171),
    (4, 4, 2, 891717742),
    (2, 1, 4, 888551000),
    (1, 2, 3, 875072484),
    (4, 1, 5, 891717800),
]
KG = [
    ("m.tt1", "film.film.actor", "m.a1"),
    ("m.tt1", "film.film.directed_by", "m.d1"),
    ("m.d1", "film.director.film", "m.tt1"),  # inverse of the line above: no second token
    ("m.g1", "film.film_genre.films_in_this_genre", "m.tt2"),  # stored only towards the movie
    ("m.tt1", "film.film.sequel", "m.tt2"),
    ("m.tt2", "film.film.prequel", "m.tt1"),
    ("m.tt3", "film.film.language", "m.en"),
    ("m.a1", "film.actor.film", "m.tt5"),
    ("m.x", "film.film.actor", "m.y"),  # about no movie of ours
]
EXPECTED_FREEBASE = {
    1: "film.film.actor=m.a1 film.film.directed_by=m.d1 film.film.sequel=m.tt2",
    2: "film.film.prequel=m.tt1 film.film_genre.films_in_this_genre^-1=m.g1",
    3: "film.film.language=m.en",
    4: "",
    5: "film.actor.film^-1=m.a1",
}


def write_grouplens(directory: Path, *, with_kg: bool = False, genre_file: bool = True) -> Path:
    """Writes u.data, u.item (latin-1), u.user and u.genre like GroupLens' ml-100k/."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in RATINGS))
    lines = []
    for iid, title, year, date, genres, _ in ITEMS:
        flags = "|".join("1" if g in genres else "0" for g in GENRES)
        if year is None:
            full = title
        elif iid == 5:
            full = f"{title} ({year}) (V)"
        else:
            full = f"{title} ({year})"
        url = "" if year is None else "http://us.imdb.com/M/title-exact?x"
        lines.append(f"{iid}|{full}|{date}||{url}|{flags}\n")
    (directory / "u.item").write_bytes("".join(lines).encode("latin-1"))
    (directory / "u.user").write_text("".join("|".join(map(str, u)) + "\n" for u in USERS))
    if genre_file:
        genre_lines = "".join(f"{g}|{k}\n" for k, g in enumerate(GENRES))
        (directory / "u.genre").write_text(genre_lines + "\n")  # trailing blank line, as in GL
    if with_kg:
        _write_kg(directory)
    return directory


def _write_kg(directory: Path) -> None:
    kg = "head_id:token\trelation_id:token\ttail_id:token\n"
    kg += "".join("\t".join(t) + "\n" for t in KG)
    (directory / "ml-100k.kg").write_text(kg)
    link = "item_id:token\tentity_id:token\n"
    link += "".join(f"{iid}\t{ent}\n" for iid, *_, ent in ITEMS if ent is not None)
    (directory / "ml-100k.link").write_text(link)


def write_recbole(directory: Path) -> Path:
    """Writes RecBole's atomic files (UTF-8, typed headers) for the same data."""
    directory.mkdir(parents=True, exist_ok=True)
    inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    inter += "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in RATINGS)
    (directory / "ml-100k.inter").write_text(inter)
    item = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    for iid, title, year, _, genres, _ in ITEMS:
        if year is None:
            title, year_text = "unkonwn", "unkonwn"
        elif iid == 5:
            title, year_text = f"{title} ({year})", "V"
        else:
            year_text = str(year)
        item += f"{iid}\t{title}\t{year_text}\t{' '.join(genres)}\n"
    (directory / "ml-100k.item").write_text(item, encoding="utf-8")
    user = "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
    user += "".join("\t".join(map(str, u)) + "\n" for u in USERS)
    (directory / "ml-100k.user").write_text(user)
    _write_kg(directory)
    return directory


def zip_dir(directory: Path, archive: Path, prefix: str) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("recbole/__init__.py" if prefix.startswith("recbole") else "README", "x")
        for f in sorted(directory.iterdir()):
            zf.write(f, prefix + f.name)
    return archive


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fake_release(tmp_path, monkeypatch):
    """Fixture files in both layouts, their zips, and RELEASE pinned to their digests."""
    gl = write_grouplens(tmp_path / "src" / "grouplens")
    rb = write_recbole(tmp_path / "src" / "recbole")
    gl_zip = zip_dir(gl, tmp_path / "src" / "ml-100k.zip", "ml-100k/")
    wheel = zip_dir(
        rb, tmp_path / "src" / "recbole-1.2.1-py3-none-any.whl", movielens.RECBOLE_PREFIX
    )
    release = dataclasses.replace(
        movielens.RELEASE,
        grouplens_zip=sha(gl_zip),
        grouplens={f: sha(gl / f) for f in movielens.GROUPLENS_FILES},
        recbole_wheel=sha(wheel),
        recbole={f.name: sha(f) for f in sorted(rb.iterdir())},
        num_ratings=len(RATINGS),
        num_users=len(USERS),
        num_items=len(ITEMS),
    )
    monkeypatch.setattr(movielens, "RELEASE", release)
    monkeypatch.delenv(_cache.NO_DOWNLOAD_ENV, raising=False)  # CI sets it; fakes stay offline
    monkeypatch.delenv(_cache.DATA_ENV, raising=False)
    return dict(grouplens=gl, recbole=rb, zip=gl_zip, wheel=wheel, release=release)


class FakeNetwork:
    """Stands in for urllib and pip: serves fixture archives and counts calls."""

    def __init__(self, zip_path: Path | None = None, wheel: Path | None = None):
        self.zip_path, self.wheel = zip_path, wheel
        self.urls: list[str] = []
        self.pips: list[str] = []

    def urlopen(self, request, timeout=None):
        self.urls.append(request.full_url)
        assert timeout is not None and timeout > 0
        if self.zip_path is None:
            raise urllib.error.URLError("Name or service not known")
        return io.BytesIO(self.zip_path.read_bytes())

    def pip_download(self, requirement, dest_dir, *, sha256=None, timeout=300.0):
        self.pips.append(requirement)
        if self.wheel is None:
            raise RuntimeError(f"`pip download {requirement}` exited 1: no network")
        out = Path(dest_dir) / self.wheel.name
        shutil.copy(self.wheel, out)
        if sha256 is not None:
            _cache.verify_sha256(out, sha256)
        return out

    def install(self, monkeypatch):
        monkeypatch.setattr(_cache.urllib.request, "urlopen", self.urlopen)
        monkeypatch.setattr(_cache, "pip_download", self.pip_download)
        return self


# ------------------------------------------------------------------------------ parsing
def test_both_layouts_parse_to_the_same_dataset(tmp_path):
    gl = load_movielens_100k(write_grouplens(tmp_path / "gl", with_kg=True))
    rb = load_movielens_100k(write_recbole(tmp_path / "rb"))
    assert (gl.info["layout"], rb.info["layout"]) == ("grouplens", "recbole")
    a, b = gl.interactions, rb.interactions
    assert a.user_map == b.user_map and a.item_map == b.item_map
    for field in ("user_ids", "item_ids", "ratings", "timestamps"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    cols = ["title", "release_year", "genres", "freebase"]
    pd.testing.assert_frame_equal(gl.item_metadata[cols], rb.item_metadata[cols])
    pd.testing.assert_frame_equal(gl.user_metadata, rb.user_metadata)
    # Only GroupLens has release dates; RecBole's layout has none.
    assert list(gl.item_metadata["release_date"]) == [
        "1995-01-01",
        "1995-12-15",
        None,
        None,
        "1995-01-01",
    ]
    assert rb.item_metadata["release_date"].isna().all()


@pytest.mark.parametrize("layout", ["grouplens", "recbole"])
def test_interactions_and_metadata_values(tmp_path, layout):
    directory = (
        write_grouplens(tmp_path, with_kg=True)
        if layout == "grouplens"
        else write_recbole(tmp_path)
    )
    d = load_movielens_100k(directory)
    it = d.interactions
    assert d.name == "movielens-100k"
    assert (len(it), it.num_users, it.num_items) == (8, 4, 5)
    # Raw IDs sorted -> contiguous indices (user 1 -> 0), rows in file order.
    np.testing.assert_array_equal(it.user_map.raw_ids, [1, 2, 3, 4])
    np.testing.assert_array_equal(it.user_ids, [u - 1 for u, *_ in RATINGS])
    np.testing.assert_array_equal(it.item_ids, [i - 1 for _, i, *_ in RATINGS])
    np.testing.assert_array_equal(it.ratings, [r for *_, r, _ in RATINGS])
    np.testing.assert_array_equal(it.timestamps, [t for *_, t in RATINGS])
    assert it.ratings.dtype == np.float32 and it.timestamps.dtype == np.int64

    im = d.item_metadata
    np.testing.assert_array_equal(im.index, it.item_map.raw_ids)
    assert list(im.columns) == ["title", "release_year", "release_date", "genres", "freebase"]
    # Display titles keep the year (issue 13: 22 names occur under several IDs); the "(V)"
    # video marker is dropped so both layouts agree.
    assert list(im["title"]) == [
        "Toy Story (1995)",
        "Misérables, Les (1995)",
        "",
        "Á köldum klaka (Cold Fever) (1994)",
        "Land Before Time III (1995)",
    ]
    np.testing.assert_array_equal(im["release_year"], [1995, 1995, np.nan, 1994, 1995])
    assert im["release_year"].dtype == np.float64
    assert list(im["genres"]) == [
        ["Animation", "Children's", "Comedy"],
        ["Drama", "Musical"],
        ["unknown"],
        ["Comedy", "Drama"],
        ["Film-Noir", "Sci-Fi"],
    ]
    assert all(isinstance(g, list) for g in im["genres"])
    assert dict(im["freebase"]) == EXPECTED_FREEBASE
    for col in ("title", "release_date", "genres", "freebase"):
        assert im[col].dtype == object, col

    um = d.user_metadata
    np.testing.assert_array_equal(um.index, it.user_map.raw_ids)
    assert list(um["zip_code"]) == ["85711", "01915", "T8H1N", "02139"]
    np.testing.assert_array_equal(um["age"], [24.0, 53.0, 23.0, 30.0])
    assert list(um["gender"]) == ["M", "F", "M", "F"]
    assert list(um["occupation"]) == ["technician", "other", "writer", "none"]
    assert d.info["source"] == "path" and d.info["official_release"] is False
    assert set(d.info["sha256"]) >= {"ml-100k.kg", "ml-100k.link"}


def test_genre_spellings_are_normalised(tmp_path):
    directory = write_recbole(tmp_path)
    item = directory / "ml-100k.item"
    text = item.read_text(encoding="utf-8")
    text = text.replace("Children's", "Childrens").replace("Sci-Fi", "Sci_Fi")
    item.write_text(text.replace("Film-Noir", "film-noir"), encoding="utf-8")
    im = load_movielens_100k(directory).item_metadata
    assert im.loc[1, "genres"] == ["Animation", "Children's", "Comedy"]
    assert im.loc[5, "genres"] == ["Film-Noir", "Sci-Fi"]


def test_grouplens_without_kg_or_genre_file(tmp_path):
    d = load_movielens_100k(write_grouplens(tmp_path, genre_file=False))
    assert (d.item_metadata["freebase"] == "").all()
    assert d.info["freebase_source"] is None
    assert d.item_metadata.loc[1, "genres"] == ["Animation", "Children's", "Comedy"]


def test_freebase_tokens_keep_one_token_per_fact():
    kg = pd.DataFrame(KG, columns=["head", "relation", "tail"])
    link = pd.DataFrame(
        [(iid, ent) for iid, *_, ent in ITEMS if ent], columns=["item_id", "entity"]
    )
    tokens = freebase_tokens(kg, link)
    assert dict(tokens) == {k: v for k, v in EXPECTED_FREEBASE.items() if v}


def test_zip_paths_in_both_layouts(fake_release):
    gl = load_movielens_100k(fake_release["zip"])
    rb = load_movielens_100k(fake_release["wheel"])
    assert (gl.info["layout"], rb.info["layout"]) == ("grouplens", "recbole")
    np.testing.assert_array_equal(gl.interactions.item_ids, rb.interactions.item_ids)
    assert rb.info["directory"] == f"{fake_release['wheel']}!/{movielens.RECBOLE_PREFIX}"
    assert dict(rb.item_metadata["freebase"]) == EXPECTED_FREEBASE
    # A path checked against the (here: fixture) release is flagged as official.
    assert gl.info["official_release"] and rb.info["official_release"]


def test_path_without_either_layout(tmp_path):
    (tmp_path / "notes.txt").write_text("not MovieLens\n")
    with pytest.raises(FileNotFoundError, match="neither the GroupLens layout"):
        load_movielens_100k(tmp_path)


def test_partial_layout_names_the_missing_file(tmp_path):
    (tmp_path / "u.data").write_text("1\t1\t5\t0\n")
    with pytest.raises(FileNotFoundError, match=r"u\.item: MovieLens file does not exist"):
        load_movielens_100k(tmp_path)


# ------------------------------------------------------------------------------ bad files
@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("1\t2\tfive\t874965758", r"u\.data:3: rating 'five' is not a number"),
        ("1\tx\t5\t874965758", r"u\.data:3: item id 'x' is not an integer"),
        ("1\t2\t5", r"u\.data:3: timestamp '' is not an integer"),
        ("1\t2\t5\t874965758\t9", r"u\.data: Expected 4 fields in line 3, saw 5"),
    ],
)
def test_malformed_u_data_line_names_file_and_line(tmp_path, line, match):
    directory = write_grouplens(tmp_path)
    rows = (directory / "u.data").read_text().splitlines()
    rows.insert(2, line)
    (directory / "u.data").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataFormatError, match=match):
        load_movielens_100k(directory)


def test_blank_lines_do_not_shift_line_numbers(tmp_path):
    directory = write_grouplens(tmp_path)
    rows = (directory / "u.data").read_text().splitlines()
    rows[1:1] = ["", "7\t1\t5\tlate"]  # the bad line is line 3 of the file
    (directory / "u.data").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataFormatError, match=r"u\.data:3: timestamp 'late'"):
        load_movielens_100k(directory)


def test_bad_metadata_lines_are_named(tmp_path):
    directory = write_recbole(tmp_path / "rb")
    path = directory / "ml-100k.user"
    path.write_text(path.read_text().replace("2\t53\tF", "2\tfifty\tF"))
    with pytest.raises(DataFormatError, match=r"ml-100k\.user:3: age 'fifty' is not a number"):
        load_movielens_100k(directory)

    directory = write_grouplens(tmp_path / "gl")
    path = directory / "u.item"
    path.write_bytes(path.read_bytes().replace(b"15-Dec-1995", b"1995/12/15"))
    with pytest.raises(DataFormatError, match=r"u\.item:2: release date '1995/12/15'"):
        load_movielens_100k(directory)


def test_rating_of_an_item_without_metadata(tmp_path):
    directory = write_recbole(tmp_path)
    with open(directory / "ml-100k.inter", "a") as f:
        f.write("1\t99\t4\t874965758\n")
    with pytest.raises(DataFormatError, match=r"ml-100k\.inter: item 99 has ratings but no row"):
        load_movielens_100k(directory)


def test_duplicate_item_row(tmp_path):
    directory = write_recbole(tmp_path)
    with open(directory / "ml-100k.item", "a", encoding="utf-8") as f:
        f.write("2\tAgain\t1990\tDrama\n")
    with pytest.raises(DataFormatError, match=r"ml-100k\.item:7: item id 2 appears twice"):
        load_movielens_100k(directory)


# ------------------------------------------------------------------------------ sources
def test_pip_source_fills_the_cache_and_the_cache_is_used_next(fake_release, tmp_path, monkeypatch):
    net = FakeNetwork(wheel=fake_release["wheel"]).install(monkeypatch)
    cache = tmp_path / "cache"
    first = load_movielens_100k(cache_dir=cache)
    assert first.info["source"] == "pypi:recbole==1.2.1"
    assert net.urls == [movielens.GROUPLENS_URL]  # GroupLens tried first, failed
    assert net.pips == ["recbole==1.2.1"]
    assert (cache / "movielens-100k" / "recbole" / "ml-100k.inter").is_file()

    second = load_movielens_100k(cache_dir=cache)
    assert second.info["source"] == "cache"
    assert net.pips == ["recbole==1.2.1"] and len(net.urls) == 1  # nothing fetched again
    pd.testing.assert_frame_equal(first.item_metadata, second.item_metadata)
    np.testing.assert_array_equal(first.interactions.ratings, second.interactions.ratings)


def test_grouplens_download_is_verified_cached_and_completed_with_freebase(
    fake_release, tmp_path, monkeypatch
):
    net = FakeNetwork(zip_path=fake_release["zip"], wheel=fake_release["wheel"]).install(
        monkeypatch
    )
    monkeypatch.setenv(_cache.DATA_ENV, str(tmp_path / "env-cache"))
    d = load_movielens_100k()
    assert d.info["source"] == "download:grouplens" and d.info["layout"] == "grouplens"
    root = tmp_path / "env-cache" / "movielens-100k"
    # Only the files the loader uses are kept (the fake archive has no u.info, u.occupation).
    assert sorted(p.name for p in (root / "grouplens").iterdir()) == sorted(
        [*movielens.GROUPLENS_FILES, "u.genre"]
    )
    # The Freebase facts come from the RecBole copy fetched alongside.
    assert dict(d.item_metadata["freebase"]) == EXPECTED_FREEBASE
    assert d.item_metadata.loc[2, "release_date"] == "1995-12-15"

    again = load_movielens_100k()
    assert again.info["source"] == "cache" and again.info["layout"] == "grouplens"
    assert len(net.urls) == 1 and len(net.pips) == 1
    assert dict(again.item_metadata["freebase"]) == EXPECTED_FREEBASE


def test_grouplens_download_without_pypi_leaves_freebase_empty(fake_release, tmp_path, monkeypatch):
    FakeNetwork(zip_path=fake_release["zip"], wheel=None).install(monkeypatch)
    d = load_movielens_100k(cache_dir=tmp_path / "c")
    assert d.info["source"] == "download:grouplens"
    assert (d.item_metadata["freebase"] == "").all()


def test_corrupt_cache_is_reported_with_the_checksum(fake_release, tmp_path):
    root = tmp_path / "cache" / "movielens-100k"
    shutil.copytree(fake_release["recbole"], root / "recbole")
    inter = root / "recbole" / "ml-100k.inter"
    inter.write_text(inter.read_text().replace("\t5\t", "\t1\t", 1))
    with pytest.raises(DataUnavailableError) as err:
        load_movielens_100k(cache_dir=tmp_path / "cache", download=False)
    msg = str(err.value)
    assert "checksum mismatch" in msg and "ml-100k.inter" in msg
    assert fake_release["release"].recbole["ml-100k.inter"] in msg


def test_a_corrupt_cached_copy_falls_through_to_the_next_one(fake_release, tmp_path, caplog):
    root = tmp_path / "movielens-100k"
    shutil.copytree(fake_release["grouplens"], root / "grouplens")
    shutil.copytree(fake_release["recbole"], root / "recbole")
    (root / "grouplens" / "u.user").write_text("1|24|M|technician|85711\n")
    d = load_movielens_100k(cache_dir=tmp_path, download=False)
    assert d.info["layout"] == "recbole" and d.info["source"] == "cache"
    assert "checksum mismatch" in caplog.text and "u.user" in caplog.text


def test_corrupt_download_is_rejected_and_not_cached(fake_release, tmp_path, monkeypatch):
    bad_zip = tmp_path / "bad.zip"
    zip_dir(write_grouplens(tmp_path / "other"), bad_zip, "ml-100k/")
    with zipfile.ZipFile(bad_zip, "a") as zf:
        zf.writestr("ml-100k/extra", "tampered")
    FakeNetwork(zip_path=bad_zip, wheel=None).install(monkeypatch)
    with pytest.raises(DataUnavailableError, match="checksum mismatch for https://files"):
        load_movielens_100k(cache_dir=tmp_path / "cache")
    leftovers = list((tmp_path / "cache").rglob("*"))
    assert not [p for p in leftovers if p.is_file()], leftovers


def test_all_sources_failing_gives_one_error_listing_each(fake_release, tmp_path, monkeypatch):
    FakeNetwork().install(monkeypatch)
    with pytest.raises(DataUnavailableError) as err:
        load_movielens_100k(cache_dir=tmp_path / "empty")
    failures = err.value.failures
    assert [name.split(" ")[0] for name, _ in failures] == ["cache", "cache", "download", "pip"]
    reasons = [reason for _, reason in failures]
    assert "no copy in" in reasons[0] and "grouplens" in reasons[0]
    assert "no copy in" in reasons[1] and "recbole" in reasons[1]
    assert "URLError" in reasons[2] and "Name or service not known" in reasons[2]
    assert "RuntimeError" in reasons[3] and "no network" in reasons[3]
    text = str(err.value)
    assert "tried 4 source(s)" in text and "pass path=" in text


@pytest.mark.parametrize("how", ["env", "argument"])
def test_downloads_can_be_switched_off(fake_release, tmp_path, monkeypatch, how):
    net = FakeNetwork(zip_path=fake_release["zip"], wheel=fake_release["wheel"]).install(
        monkeypatch
    )
    kwargs = {"download": False}
    if how == "env":
        monkeypatch.setenv(_cache.NO_DOWNLOAD_ENV, "1")
        kwargs = {"download": True}  # the environment's kill switch wins over the argument
    with pytest.raises(DataUnavailableError) as err:
        load_movielens_100k(cache_dir=tmp_path / "empty", **kwargs)
    assert net.urls == [] and net.pips == []
    expected = "$HYBRIDREC_NO_DOWNLOAD=1" if how == "env" else "download=False"
    assert [r for _, r in err.value.failures[2:]] == [f"downloads switched off ({expected})"] * 2


def test_cache_is_used_even_when_downloads_are_off(fake_release, tmp_path, monkeypatch):
    monkeypatch.setenv(_cache.NO_DOWNLOAD_ENV, "yes")
    shutil.copytree(fake_release["grouplens"], tmp_path / "movielens-100k" / "grouplens")
    d = load_movielens_100k(cache_dir=tmp_path)
    assert d.info["source"] == "cache" and len(d.interactions) == len(RATINGS)


def test_counts_are_checked_for_official_sources(fake_release, tmp_path, monkeypatch):
    shutil.copytree(fake_release["recbole"], tmp_path / "movielens-100k" / "recbole")
    monkeypatch.setattr(
        movielens, "RELEASE", dataclasses.replace(fake_release["release"], num_ratings=100_000)
    )
    with pytest.raises(DataFormatError, match="expected 100000 ratings, 4 users, 5 items; read 8"):
        load_movielens_100k(cache_dir=tmp_path, download=False)


# ------------------------------------------------------------------------------ _cache
def test_data_home_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv(_cache.DATA_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache.data_home() == tmp_path / "xdg" / "hybridrec"
    monkeypatch.setenv(_cache.DATA_ENV, str(tmp_path / "env"))
    assert _cache.data_home() == tmp_path / "env"
    assert _cache.data_home(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv(_cache.DATA_ENV)
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert _cache.data_home() == Path.home() / ".cache" / "hybridrec"


@pytest.mark.parametrize(
    ("env", "arg", "enabled"),
    [
        (None, None, True),
        (None, False, False),
        ("1", None, False),
        ("0", None, True),
        ("true", True, False),
    ],
)
def test_downloads_enabled(monkeypatch, env, arg, enabled):
    monkeypatch.delenv(_cache.NO_DOWNLOAD_ENV, raising=False)
    if env is not None:
        monkeypatch.setenv(_cache.NO_DOWNLOAD_ENV, env)
    assert _cache.downloads_enabled(arg) is enabled
    assert (_cache.downloads_disabled_reason(arg) == "") is enabled


def test_verify_sha256(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"abc")
    digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    assert _cache.verify_sha256(path, digest.upper()) == digest
    with pytest.raises(ChecksumError, match=rf"f\.txt: expected sha256 {'0' * 64}, got {digest}"):
        _cache.verify_sha256(path, "0" * 64)
    with pytest.raises(FileNotFoundError, match="g.txt is missing"):
        _cache.verify_files(tmp_path, {"f.txt": digest, "g.txt": digest})


def test_download_url_streams_verifies_and_is_atomic(tmp_path, monkeypatch):
    payload = os.urandom(3 * (1 << 20) + 17)  # several read chunks
    seen = {}

    def urlopen(request, timeout=None):
        seen["timeout"], seen["agent"] = timeout, request.get_header("User-agent")
        return io.BytesIO(payload)

    monkeypatch.setattr(_cache.urllib.request, "urlopen", urlopen)
    good = hashlib.sha256(payload).hexdigest()
    out = _cache.download_url(
        "https://example.invalid/f", tmp_path / "d" / "f.bin", sha256=good, timeout=7
    )
    assert out.read_bytes() == payload and seen == {"timeout": 7, "agent": "hybridrec-data-loader"}
    with pytest.raises(ChecksumError):
        _cache.download_url("https://example.invalid/f", tmp_path / "e" / "f.bin", sha256="0" * 64)
    assert list((tmp_path / "e").iterdir()) == []  # no partial file left behind
    with pytest.raises(OSError, match="larger than"):
        _cache.download_url("https://example.invalid/f", tmp_path / "e" / "f.bin", max_bytes=1000)


def test_pip_download_command_and_errors(tmp_path, monkeypatch):
    calls = []

    def run(cmd, **kwargs):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        if "broken==1" in cmd:
            return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution\n")
        (dest / "pkg-1.0-py3-none-any.whl").write_bytes(b"wheel")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(_cache.subprocess, "run", run)
    wheel = _cache.pip_download("pkg==1.0", tmp_path, sha256=hashlib.sha256(b"wheel").hexdigest())
    assert wheel == tmp_path / "pkg-1.0-py3-none-any.whl"
    assert calls[0][:4] == [sys.executable, "-m", "pip", "download"] and "--no-deps" in calls[0]
    with pytest.raises(RuntimeError, match="exited 1: ERROR: No matching distribution"):
        _cache.pip_download("broken==1", tmp_path / "b")


def test_extract_zip_dir_ignores_traversal_and_subfolders(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pkg/data/a.txt", "A")
        zf.writestr("pkg/data/sub/b.txt", "B")
        zf.writestr("pkg/data/../evil.txt", "E")
        zf.writestr("other.txt", "O")
    out = _cache.extract_zip_dir(archive, "pkg/data", tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
    with pytest.raises(FileNotFoundError, match="has no c.txt"):
        _cache.extract_zip_dir(archive, "pkg/data/", tmp_path / "out2", names=["a.txt", "c.txt"])
    assert not (tmp_path / "out2").exists()


def test_try_sources_returns_the_first_success():
    order = []

    def fail():
        order.append("fail")
        raise ValueError("bad")

    def ok():
        order.append("ok")
        return 42

    assert _cache.try_sources("x", [Source("a", fail), Source("b", ok), Source("c", fail)]) == (
        "b",
        42,
    )
    assert order == ["fail", "ok"]


# ------------------------------------------------------------------------------ real data
def test_real_release_when_already_cached():
    """Checks the real data, but only if a verified copy is already cached (never downloads)."""
    try:
        d = load_movielens_100k(download=False)
    except DataUnavailableError:
        pytest.skip("MovieLens 100K is not cached on this machine")
    it = d.interactions
    assert (len(it), it.num_users, it.num_items) == (100_000, 943, 1_682)
    assert int((it.ratings >= 4).sum()) == 55_375
    assert it.user_counts().min() == 20
    im = d.item_metadata
    assert int(im["release_year"].notna().sum()) == 1_681
    assert im.loc[1, "title"] == "Toy Story (1995)" and im.loc[1, "release_year"] == 1995
    assert set(g for gs in im["genres"] for g in gs) == set(GENRES)
    if d.info["freebase_source"] is not None:
        assert int((im["freebase"] != "").sum()) == 1_598
