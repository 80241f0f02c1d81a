"""A corpus of bad and tricky input files for every dataset loader (issue 12).

Each ``Case`` writes its files into a directory of its own and returns a thunk that loads them.
A *bad* case names the exception it must raise and the substrings its message must hold: the
file, the line or column, and the bad value. A *valid* case names a check of the loaded values,
and optionally the warning the loader must give for what it dropped, merged or coerced.

Classes (``Case.kind``), after the failures found by the issue's tester:

- ``misses-problem``: errors that used to miss the problem, the value or the line;
- ``silent``: bad inputs that used to be accepted silently (now an error, or a warning plus a
  line in ``Dataset.info["warnings"]`` for what is kept but dropped / merged / coerced);
- ``raw-exception``: inputs that used to raise a library's exception;
- ``no-file-name``: errors that used to lack the file name or named the wrong value;
- ``valid-mishandled``: valid inputs that used to load wrongly;
- ``bad``: other malformed inputs (regressions);
- ``valid``: other valid-but-tricky inputs.

Nothing here is committed as data: ``build(root)`` writes every case under ``root`` (the test
suite calls it once per session). Run ``python tests/reliability/make_corpus.py DIR`` to write
the corpus for inspection.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
import os
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridrec.data.datasets._base import DataError, DataFormatError, MissingDataFileError
from hybridrec.data.datasets.amazon import AmazonMetadataError, load_amazon_products
from hybridrec.data.datasets.beer import BEER_COLUMNS, BeerReviewsError, load_beer_reviews
from hybridrec.data.datasets.files import FilesError, load_files
from hybridrec.data.datasets.movielens import GENRES, load_movielens_100k
from hybridrec.data.splits import SplitError, make_split


@dataclasses.dataclass(frozen=True)
class Case:
    """One corpus entry.

    Attributes:
      name: unique id.
      fmt: ``grouplens``, ``recbole``, ``beer``, ``amazon`` or ``files``.
      kind: the class (see the module docstring).
      write: writes the files into the given directory; returns a thunk that loads them.
      error: for a bad case, the exception type it must raise (a ``DataError`` or ``SplitError``).
      contains: substrings of the message: the file, the line or column, the bad value.
      check: for a valid case, asserts on the loader's result.
      warns: a substring of a warning the load must emit (None: no check).
      names_file: whether the message must hold the case directory (False only for split errors,
        which see arrays, not files).
    """

    name: str
    fmt: str
    kind: str
    write: Callable[[Path], Callable[[], Any]]
    error: type[Exception] | None = None
    contains: tuple[str, ...] = ()
    check: Callable[[Any], None] | None = None
    warns: str | None = None
    names_file: bool = True


CASES: list[Case] = []


def _add(name: str, fmt: str, kind: str, write, **kwargs: Any) -> None:
    CASES.append(Case(name, fmt, kind, write, **kwargs))


# ============================================================================ MovieLens
ML_USERS = ["1|24|M|technician|85711", "2|53|F|other|01915", "3|23|M|writer|T8H1N"]
# (id, title as in u.item, release date, genres)
ML_ITEMS = [
    (1, "Toy Story (1995)", "01-Jan-1995", ["Animation", "Children's", "Comedy"]),
    (2, "Amélie (2001)", "25-Apr-2001", ["Comedy", "Romance"]),
    (3, "Star Wars (1977)", "01-Jan-1977", ["Action", "Sci-Fi"]),
    (4, "unknown", "", ["unknown"]),
    (5, "Land Before Time III (1995) (V)", "01-Jan-1995", ["Animation"]),
    (6, "Star Wars (1997)", "01-Jan-1997", ["Action"]),  # same name, another year
]
ML_RATINGS = [
    "1\t1\t5\t874965758",
    "1\t2\t3\t875072484",
    "2\t1\t4\t888551000",
    "2\t3\t1\t888550871",
    "3\t5\t2\t881250949",
    "3\t6\t4\t881250950",
    "1\t4\t3\t876893171",
]


def _item_line(iid: int, title: str, date: str, genres: list[str]) -> str:
    flags = "|".join("1" if g in genres else "0" for g in GENRES)
    return f"{iid}|{title}|{date}||http://x|{flags}"


def write_grouplens(
    d: Path,
    *,
    data: list[str] | None = None,
    items: list[str] | None = None,
    users: list[str] | None = None,
    item_encoding: str = "latin-1",
    genre: bool = True,
) -> Path:
    """A small GroupLens-layout folder; each file's lines can be replaced."""
    d.mkdir(parents=True, exist_ok=True)
    data = ML_RATINGS if data is None else data
    items = [_item_line(*it) for it in ML_ITEMS] if items is None else items
    (d / "u.data").write_text("".join(f"{x}\n" for x in data))
    (d / "u.item").write_bytes("".join(f"{x}\n" for x in items).encode(item_encoding))
    (d / "u.user").write_text("".join(f"{x}\n" for x in (ML_USERS if users is None else users)))
    if genre:
        (d / "u.genre").write_text("".join(f"{g}|{k}\n" for k, g in enumerate(GENRES)) + "\n")
    return d


def write_recbole(
    d: Path,
    *,
    inter: list[str] | None = None,
    items: list[str] | None = None,
    encoding: str = "utf-8",
) -> Path:
    """A small RecBole-layout folder (typed headers, tab-separated)."""
    d.mkdir(parents=True, exist_ok=True)
    head = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    (d / "ml-100k.inter").write_text(
        head + "".join(f"{x}\n" for x in (ML_RATINGS if inter is None else inter))
    )
    if items is None:
        items = []
        for iid, title, _, genres in ML_ITEMS:
            if title == "unknown":
                name, year = "unkonwn", "unkonwn"  # RecBole's spelling
            elif title.endswith("(V)"):
                name, year = title.removesuffix(" (V)"), "V"  # RecBole's "V" year
            else:
                name, year = title[:-7], title[-5:-1]
            items.append(f"{iid}\t{name}\t{year}\t{' '.join(genres)}")
    head = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    (d / "ml-100k.item").write_bytes((head + "".join(f"{x}\n" for x in items)).encode(encoding))
    head = "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
    (d / "ml-100k.user").write_text(head + "".join(x.replace("|", "\t") + "\n" for x in ML_USERS))
    return d


def _ml(write: Callable[[Path], Path]) -> Callable[[Path], Callable[[], Any]]:
    def build(d: Path):
        path = write(d)
        return lambda: load_movielens_100k(path, download=False)

    return build


def _replace(lines: list[str], index: int, line: str) -> list[str]:
    out = list(lines)
    out[index] = line
    return out


# ---- GroupLens: bad
def _gl_missing(name: str) -> Callable[[Path], Path]:
    def write(d: Path) -> Path:
        write_grouplens(d)
        (d / name).unlink()
        return d

    return write


for _name in ("u.item", "u.user", "u.data"):
    _add(
        f"gl_missing_{_name.replace('.', '_')}",
        "grouplens",
        "misses-problem",
        _ml(_gl_missing(_name)),
        error=MissingDataFileError,
        contains=(_name, "does not exist", "GroupLens layout needs"),
    )


def _gl_data_is_folder(d: Path) -> Path:
    write_grouplens(d)
    (d / "u.data").unlink()
    (d / "u.data").mkdir()
    return d


_add(
    "gl_u_data_is_a_folder",
    "grouplens",
    "misses-problem",
    _ml(_gl_data_is_folder),
    error=MissingDataFileError,
    contains=("u.data", "is a directory"),
)


def _gl_symlink_loop(d: Path) -> Path:
    write_grouplens(d)
    (d / "u.data").unlink()
    os.symlink(d / "u.data", d / "u.data")
    return d


_add(
    "gl_u_data_symlink_loop",
    "grouplens",
    "misses-problem",
    _ml(_gl_symlink_loop),
    error=MissingDataFileError,
    contains=("u.data", "symbolic link loop"),
)


def _gl_dangling(d: Path) -> Path:
    write_grouplens(d)
    (d / "u.user").unlink()
    os.symlink(d / "elsewhere" / "u.user", d / "u.user")
    return d


_add(
    "gl_u_user_dangling_symlink",
    "grouplens",
    "misses-problem",
    _ml(_gl_dangling),
    error=MissingDataFileError,
    contains=("u.user", "does not exist", "elsewhere"),
)


def _gl_empty(name: str, content: bytes) -> Callable[[Path], Path]:
    def write(d: Path) -> Path:
        write_grouplens(d)
        (d / name).write_bytes(content)
        return d

    return write


_add(
    "gl_empty_u_data",
    "grouplens",
    "misses-problem",
    _ml(_gl_empty("u.data", b"")),
    error=DataFormatError,
    contains=("u.data", "empty", "0 bytes"),
)
_add(
    "gl_empty_u_item",
    "grouplens",
    "misses-problem",
    _ml(_gl_empty("u.item", b"")),
    error=DataFormatError,
    contains=("u.item", "empty"),
)
_add(
    "gl_blank_lines_only_u_data",
    "grouplens",
    "misses-problem",
    _ml(_gl_empty("u.data", b"\n\n\n")),
    error=DataFormatError,
    contains=("u.data", "only blank lines"),
)
_add(
    "gl_truncated_u_data",
    "grouplens",
    "misses-problem",
    _ml(lambda d: _gl_empty("u.data", ("\n".join(ML_RATINGS) + "\n3\t6").encode())(d)),
    error=DataFormatError,
    contains=("u.data:8", "truncated", "'3\\t6'"),
)
for _value in ("6", "0", "3.5", "-1"):
    _add(
        f"gl_rating_{_value.replace('.', '_').replace('-', 'minus')}",
        "grouplens",
        "silent",
        _ml(lambda d, v=_value: write_grouplens(d, data=_replace(ML_RATINGS, 2, f"2\t1\t{v}\t8"))),
        error=DataFormatError,
        contains=("u.data:3", f"rating '{_value}'", "1..5"),
    )
_add(
    "gl_conflicting_duplicate_rating",
    "grouplens",
    "silent",
    _ml(lambda d: write_grouplens(d, data=[*ML_RATINGS, "1\t2\t5\t875072999"])),
    error=DataFormatError,
    contains=("u.data:8", "user 1 rated item 2 again", "ratings 3 and 5", "line 2"),
)
_add(
    "gl_identical_duplicate_rating",
    "grouplens",
    "silent",
    _ml(lambda d: write_grouplens(d, data=[*ML_RATINGS, ML_RATINGS[0]])),
    error=DataFormatError,
    contains=("u.data:8", "user 1 rated item 1 again", "ratings 5 and 5"),
)
_add(
    "gl_rating_word",
    "grouplens",
    "bad",
    _ml(lambda d: write_grouplens(d, data=_replace(ML_RATINGS, 1, "1\t2\tfive\t8"))),
    error=DataFormatError,
    contains=("u.data:2", "rating 'five'"),
)
_add(
    "gl_item_id_text",
    "grouplens",
    "bad",
    _ml(lambda d: write_grouplens(d, data=_replace(ML_RATINGS, 3, "2\tx\t1\t8"))),
    error=DataFormatError,
    contains=("u.data:4", "item id 'x'"),
)
_add(
    "gl_fractional_timestamp",
    "grouplens",
    "bad",
    _ml(lambda d: write_grouplens(d, data=_replace(ML_RATINGS, 0, "1\t1\t5\t87.5"))),
    error=DataFormatError,
    contains=("u.data:1", "timestamp '87.5'"),
)
_add(
    "gl_extra_field",
    "grouplens",
    "bad",
    _ml(lambda d: write_grouplens(d, data=_replace(ML_RATINGS, 2, "2\t1\t4\t8\t9"))),
    error=DataFormatError,
    contains=("u.data", "line 3", "saw 5"),
)
_add(
    "gl_rating_of_unknown_item",
    "grouplens",
    "bad",
    _ml(lambda d: write_grouplens(d, data=[*ML_RATINGS, "1\t99\t4\t8"])),
    error=DataFormatError,
    contains=("u.data", "item 99", "line 8"),
)
_add(
    "gl_rating_of_unknown_user",
    "grouplens",
    "bad",
    _ml(lambda d: write_grouplens(d, data=[*ML_RATINGS, "42\t1\t4\t8"])),
    error=DataFormatError,
    contains=("u.data", "user 42", "line 8"),
)
_GL_ITEMS = [_item_line(*it) for it in ML_ITEMS]
_add(
    "gl_bad_release_date",
    "grouplens",
    "bad",
    _ml(
        lambda d: write_grouplens(
            d, items=[_GL_ITEMS[0].replace("01-Jan-1995", "1995/01/01"), *_GL_ITEMS[1:]]
        )
    ),
    error=DataFormatError,
    contains=("u.item:1", "release date '1995/01/01'"),
)
_add(
    "gl_genre_flag_2",
    "grouplens",
    "no-file-name",
    _ml(
        lambda d: write_grouplens(
            d, items=[*_GL_ITEMS[:2], _GL_ITEMS[2][:-1] + "2", *_GL_ITEMS[3:]]
        )
    ),
    error=DataFormatError,
    contains=("u.item:3", "genre flag 'Western' is 2"),
)
_add(
    "gl_u_item_too_few_fields",
    "grouplens",
    "bad",
    _ml(lambda d: write_grouplens(d, items=[x.rsplit("|", 3)[0] for x in _GL_ITEMS])),
    error=DataFormatError,
    contains=("u.item:1", "expected 24", "found 21"),
)
_add(
    "gl_duplicate_item_row",
    "grouplens",
    "bad",
    _ml(lambda d: write_grouplens(d, items=[*_GL_ITEMS, _GL_ITEMS[1]])),
    error=DataFormatError,
    contains=("u.item:7", "item id 2 appears twice"),
)
_add(
    "gl_age_word",
    "grouplens",
    "bad",
    _ml(lambda d: write_grouplens(d, users=_replace(ML_USERS, 1, "2|fifty|F|other|01915"))),
    error=DataFormatError,
    contains=("u.user:2", "age 'fifty'"),
)
_add(
    "gl_duplicate_user_row",
    "grouplens",
    "bad",
    _ml(lambda d: write_grouplens(d, users=[*ML_USERS, ML_USERS[0]])),
    error=DataFormatError,
    contains=("u.user:4", "user id 1 appears twice"),
)


def _gl_bad_genre_file(d: Path) -> Path:
    write_grouplens(d)
    (d / "u.genre").write_text("unknown|0\nAction|one\n")
    return d


_add(
    "gl_u_genre_bad_index",
    "grouplens",
    "bad",
    _ml(_gl_bad_genre_file),
    error=DataFormatError,
    contains=("u.genre:2", "genre index 'one'"),
)


def _gl_truncated_zip(d: Path) -> Path:
    src = write_grouplens(d / "src")
    archive = d / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in src.iterdir():
            zf.write(f, f"ml-100k/{f.name}")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    return archive


_add(
    "gl_truncated_zip",
    "grouplens",
    "misses-problem",
    _ml(_gl_truncated_zip),
    error=DataFormatError,
    contains=("ml-100k.zip", "truncated or corrupt"),
)
_add(
    "gl_path_does_not_exist",
    "grouplens",
    "bad",
    lambda d: lambda: load_movielens_100k(d / "nowhere", download=False),
    error=MissingDataFileError,
    contains=("nowhere", "does not exist"),
)
_add(
    "gl_folder_without_layout",
    "grouplens",
    "bad",
    _ml(lambda d: (d.mkdir(parents=True), (d / "README").write_text("x"), d)[-1]),
    error=MissingDataFileError,
    contains=("neither the GroupLens layout", "u.data"),
)


# ---- GroupLens: valid
def _check_titles(ds: Any) -> None:
    im = ds.item_metadata
    assert im.loc[2, "title"] == "Amélie (2001)", im.loc[2, "title"]
    assert im.loc[3, "title"] == "Star Wars (1977)" and im.loc[6, "title"] == "Star Wars (1997)"
    assert im.loc[5, "title"] == "Land Before Time III (1995)"  # "(V)" marker dropped
    assert im.loc[4, "title"] == ""  # the placeholder movie
    assert list(im["release_year"].fillna(0)) == [1995, 2001, 1977, 0, 1995, 1997]
    assert im["title"].iloc[[0, 1, 2, 4, 5]].is_unique


def _check_ml_values(ds: Any) -> None:
    x = ds.interactions
    assert (len(x), x.num_users, x.num_items) == (7, 3, 6)
    np.testing.assert_array_equal(x.ratings, [5, 3, 4, 1, 2, 4, 3])
    np.testing.assert_array_equal(x.timestamps[:2], [874965758, 875072484])
    _check_titles(ds)


_add(
    "gl_utf8_u_item",
    "grouplens",
    "valid-mishandled",
    _ml(lambda d: write_grouplens(d, item_encoding="utf-8")),
    check=lambda ds: (_check_ml_values(ds), _expect(ds.info["encodings"]["u.item"] == "utf-8")),
)
_add(
    "gl_latin1_u_item",
    "grouplens",
    "valid-mishandled",
    _ml(lambda d: write_grouplens(d, item_encoding="latin-1")),
    check=lambda ds: (
        _check_ml_values(ds),
        _expect(ds.info["encodings"]["u.item"] == "latin-1"),
    ),
)
_add(
    "gl_titles_keep_the_year",
    "grouplens",
    "valid-mishandled",
    _ml(write_grouplens),
    check=_check_titles,
)
_add(
    "gl_without_u_genre",
    "grouplens",
    "valid",
    _ml(lambda d: write_grouplens(d, genre=False)),
    check=lambda ds: _expect(ds.item_metadata.loc[3, "genres"] == ["Action", "Sci-Fi"]),
)
_add(
    "gl_crlf_line_endings",
    "grouplens",
    "valid",
    _ml(lambda d: write_grouplens(d, data=[x + "\r" for x in ML_RATINGS])),
    check=_check_ml_values,
)
_add(
    "gl_blank_lines_inside",
    "grouplens",
    "valid",
    _ml(lambda d: write_grouplens(d, data=[*ML_RATINGS[:3], "", *ML_RATINGS[3:], ""])),
    check=_check_ml_values,
)
_add(
    "gl_no_final_newline",
    "grouplens",
    "valid",
    _ml(lambda d: _gl_empty("u.data", "\n".join(ML_RATINGS).encode())(d)),
    check=_check_ml_values,
)


def _gl_zip(d: Path) -> Path:
    src = write_grouplens(d / "src")
    archive = d / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in src.iterdir():
            zf.write(f, f"ml-100k/{f.name}")
    return archive


_add("gl_zip_archive", "grouplens", "valid", _ml(_gl_zip), check=_check_ml_values)


def _gl_zip_with_bad_line(d: Path) -> Path:
    src = write_grouplens(d / "src", data=_replace(ML_RATINGS, 4, "3\t5\t9\t8"))
    archive = d / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in src.iterdir():
            zf.write(f, f"ml-100k/{f.name}")
    return archive


_add(
    "gl_zip_with_a_bad_rating",
    "grouplens",
    "no-file-name",
    _ml(_gl_zip_with_bad_line),
    error=DataFormatError,
    # Named by its place in the archive, not by the temporary copy it was parsed from.
    contains=("ml-100k.zip!/ml-100k/u.data:5", "rating '9'"),
)
_add(
    "gl_nested_ml100k_folder",
    "grouplens",
    "valid",
    _ml(lambda d: write_grouplens(d / "ml-100k").parent),
    check=_check_ml_values,
)


def _gl_symlinked_folder(d: Path) -> Path:
    real = write_grouplens(d / "real")
    os.symlink(real, d / "link")
    return d / "link"


_add("gl_symlinked_folder", "grouplens", "valid", _ml(_gl_symlinked_folder), check=_check_ml_values)


# ---- RecBole: bad
def _rb_missing(name: str) -> Callable[[Path], Path]:
    def write(d: Path) -> Path:
        write_recbole(d)
        (d / name).unlink()
        return d

    return write


_add(
    "rb_missing_user_file",
    "recbole",
    "misses-problem",
    _ml(_rb_missing("ml-100k.user")),
    error=MissingDataFileError,
    contains=("ml-100k.user", "does not exist", "RecBole layout needs"),
)
_add(
    "rb_release_year_words",
    "recbole",
    "no-file-name",
    _ml(
        lambda d: write_recbole(
            d, items=["1\tToy Story\t1992\tComedy", "2\tFargo\tnineteen ninety\tDrama"]
        )
    ),
    error=DataFormatError,
    contains=("ml-100k.item:3", "'nineteen ninety'"),
)
_add(
    "rb_rating_6",
    "recbole",
    "silent",
    _ml(lambda d: write_recbole(d, inter=_replace(ML_RATINGS, 0, "1\t1\t6\t8"))),
    error=DataFormatError,
    contains=("ml-100k.inter:2", "rating '6'", "1..5"),
)
_add(
    "rb_conflicting_duplicate",
    "recbole",
    "silent",
    _ml(lambda d: write_recbole(d, inter=[*ML_RATINGS, "2\t3\t5\t9"])),
    error=DataFormatError,
    contains=("ml-100k.inter:9", "user 2 rated item 3 again", "ratings 1 and 5"),
)


def _rb_header_only(d: Path) -> Path:
    write_recbole(d)
    (d / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    )
    return d


_add(
    "rb_header_only_inter",
    "recbole",
    "misses-problem",
    _ml(_rb_header_only),
    error=DataFormatError,
    contains=("ml-100k.inter", "a header but no rows"),
)


def _rb_missing_column(d: Path) -> Path:
    write_recbole(d)
    (d / "ml-100k.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n1\t1\t8\n")
    return d


_add(
    "rb_header_lacks_rating",
    "recbole",
    "bad",
    _ml(_rb_missing_column),
    error=DataFormatError,
    contains=("ml-100k.inter:1", "lacks column(s) ['rating']"),
)


def _rb_empty_item(d: Path) -> Path:
    write_recbole(d)
    (d / "ml-100k.item").write_bytes(b"")
    return d


_add(
    "rb_empty_item_file",
    "recbole",
    "misses-problem",
    _ml(_rb_empty_item),
    error=DataFormatError,
    contains=("ml-100k.item", "empty"),
)
_add(
    "rb_unknown_user",
    "recbole",
    "bad",
    _ml(lambda d: write_recbole(d, inter=[*ML_RATINGS, "9\t1\t4\t8"])),
    error=DataFormatError,
    contains=("ml-100k.inter", "user 9", "line 9"),
)

# ---- RecBole: valid
_add("rb_basic", "recbole", "valid", _ml(write_recbole), check=_check_ml_values)
_add(
    "rb_latin1_item_file",
    "recbole",
    "valid-mishandled",
    _ml(lambda d: write_recbole(d, encoding="latin-1")),
    check=_check_titles,
)


def _rb_and_gl_agree(d: Path) -> Callable[[], Any]:
    gl, rb = write_grouplens(d / "gl"), write_recbole(d / "rb")
    return lambda: (load_movielens_100k(gl), load_movielens_100k(rb))


def _check_agree(pair: Any) -> None:
    gl, rb = pair
    cols = ["title", "release_year", "genres"]
    pd.testing.assert_frame_equal(gl.item_metadata[cols], rb.item_metadata[cols])


_add("rb_and_gl_give_the_same_titles", "recbole", "valid", _rb_and_gl_agree, check=_check_agree)


# ============================================================================ BeerAdvocate
def beer_row(user: str | None, beer: Any, time: Any, overall: Any, **over: Any) -> list[Any]:
    """One review in the file's column order; None writes an empty cell."""
    values = {
        "brewery_id": 7,
        "brewery_name": "Hop Co",
        "review_time": time,
        "review_overall": overall,
        "review_aroma": 4.0,
        "review_appearance": 3.5,
        "review_profilename": user,
        "beer_style": "IPA",
        "review_palate": 3.0,
        "review_taste": 3.0,
        "beer_name": f"Beer {beer}",
        "beer_abv": 6.5,
        "beer_beerid": beer,
    }
    values.update(over)
    return ["" if values[c] is None else values[c] for c in BEER_COLUMNS]


BEER_ROWS = [
    beer_row("alice", 10, 100, 4.0),
    beer_row("bob", 10, 150, 3.0),
    beer_row("alice", 20, 200, 5.0, beer_name="Kölsch"),
    beer_row("carol", 30, 300, 1.5),
]


def beer_text(rows: list[list[Any]], columns: tuple[str, ...] = BEER_COLUMNS) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(columns)
    w.writerows(rows)
    return out.getvalue()


def _beer(
    content: str | bytes | None = None,
    *,
    rows: list[list[Any]] | None = None,
    name: str = "beer_reviews.csv",
    encoding: str = "utf-8",
    gz: bool = False,
    **kwargs: Any,
) -> Callable[[Path], Callable[[], Any]]:
    def build(d: Path):
        d.mkdir(parents=True, exist_ok=True)
        data = content if content is not None else beer_text(BEER_ROWS if rows is None else rows)
        raw = data.encode(encoding) if isinstance(data, str) else data
        path = d / name
        path.write_bytes(gzip.compress(raw) if gz else raw)
        return lambda: load_beer_reviews(path, **kwargs)

    return build


_add(
    "beer_missing_file",
    "beer",
    "bad",
    lambda d: lambda: load_beer_reviews(d / "beer_reviews.csv"),
    error=MissingDataFileError,
    contains=("beer_reviews.csv", "not found"),
)
_add(
    "beer_empty_file",
    "beer",
    "raw-exception",
    _beer(b""),
    error=BeerReviewsError,
    contains=("beer_reviews.csv", "empty", "0 bytes"),
)
_add(
    "beer_blank_lines_only",
    "beer",
    "raw-exception",
    _beer("\n\n\n"),
    error=BeerReviewsError,
    contains=("beer_reviews.csv", "no header and no data"),
)
_add(
    "beer_header_only",
    "beer",
    "bad",
    _beer(rows=[]),
    error=BeerReviewsError,
    contains=("beer_reviews.csv", "a header but no reviews"),
)
_add(
    "beer_missing_column",
    "beer",
    "bad",
    _beer(
        beer_text(
            [r[:-2] + r[-1:] for r in BEER_ROWS], tuple(c for c in BEER_COLUMNS if c != "beer_abv")
        )
    ),
    error=BeerReviewsError,
    contains=("beer_reviews.csv", "missing column(s) ['beer_abv']"),
)
for _score in (6.0, 5.5, -1.0):
    _add(
        f"beer_overall_{str(_score).replace('.', '_').replace('-', 'minus')}",
        "beer",
        "silent",
        _beer(rows=[*BEER_ROWS[:2], beer_row("dave", 20, 220, _score)]),
        error=BeerReviewsError,
        contains=(
            "beer_reviews.csv",
            "data row 2 (file line 4)",
            "'review_overall'",
            f"{_score!r}",
            "0..5",
        ),
    )
_add(
    "beer_taste_out_of_range_as_rating",
    "beer",
    "silent",
    _beer(
        rows=[*BEER_ROWS, beer_row("dave", 20, 220, 4.0, review_taste=7.5)],
        rating_column="review_taste",
    ),
    error=BeerReviewsError,
    contains=("data row 4 (file line 6)", "'review_taste'", "7.5"),
)
for _abv in (-2.0, 150.0):
    _add(
        f"beer_abv_{str(_abv).replace('.', '_').replace('-', 'minus')}",
        "beer",
        "silent",
        _beer(rows=[*BEER_ROWS, beer_row("dave", 20, 220, 4.0, beer_abv=_abv)]),
        error=BeerReviewsError,
        contains=("beer_reviews.csv", "file line 6", "'beer_abv'", f"{_abv!r}", "0..100"),
    )
_add(
    "beer_score_word",
    "beer",
    "bad",
    _beer(rows=[*BEER_ROWS, beer_row("dave", 20, 220, "great")]),
    error=BeerReviewsError,
    contains=("beer_reviews.csv", "file line 6", "'review_overall'", "'great'"),
)
_add(
    "beer_time_word",
    "beer",
    "bad",
    _beer(rows=[beer_row("dave", 20, "noon", 4.0), *BEER_ROWS]),
    error=BeerReviewsError,
    contains=("beer_reviews.csv", "file line 2", "'review_time'", "'noon'"),
)
_add(
    "beer_empty_rating",
    "beer",
    "bad",
    _beer(rows=[*BEER_ROWS, beer_row("dave", 20, 220, None)]),
    error=BeerReviewsError,
    contains=("beer_reviews.csv", "file line 6", "'review_overall' is empty"),
)
_add(
    "beer_fractional_beer_id",
    "beer",
    "silent",
    _beer(rows=[*BEER_ROWS, beer_row("dave", 12.5, 220, 4.0)]),
    error=BeerReviewsError,
    contains=("beer_reviews.csv", "file line 6", "'beer_beerid'", "12.5"),
)
_add(
    "beer_truncated_last_line",
    "beer",
    "misses-problem",
    _beer(beer_text(BEER_ROWS) + "7,Hop Co,400"),
    error=BeerReviewsError,
    contains=("beer_reviews.csv:6", "truncated", "'7,Hop Co,400'"),
)


def _truncated_gz(raw: bytes, name: str, loader: Callable[[Path], Any]):
    def build(d: Path):
        d.mkdir(parents=True, exist_ok=True)
        path = d / name
        data = gzip.compress(raw)
        path.write_bytes(data[: len(data) - 12])  # the CRC, size and some data gone
        return lambda: loader(path)

    return build


def _corrupt_gz(raw: bytes, name: str, loader: Callable[[Path], Any]):
    def build(d: Path):
        d.mkdir(parents=True, exist_ok=True)
        path = d / name
        data = bytearray(gzip.compress(raw))
        for k in range(12, min(len(data) - 8, 40)):
            data[k] ^= 0x5A  # scramble the start of the deflate stream
        path.write_bytes(bytes(data))
        return lambda: loader(path)

    return build


_BEER_BYTES = beer_text(BEER_ROWS * 20).encode()
_add(
    "beer_truncated_gzip",
    "beer",
    "raw-exception",
    _truncated_gz(_BEER_BYTES, "beer_reviews.csv.gz", load_beer_reviews),
    error=BeerReviewsError,
    contains=("beer_reviews.csv.gz", "truncated"),
)
_add(
    "beer_corrupt_gzip",
    "beer",
    "raw-exception",
    _corrupt_gz(_BEER_BYTES, "beer_reviews.csv.gz", load_beer_reviews),
    error=BeerReviewsError,
    contains=("beer_reviews.csv.gz", "gzip", "corrupt"),
)
_add(
    "beer_named_gz_but_plain",
    "beer",
    "raw-exception",
    _beer(name="beer_reviews.csv.gz"),
    error=BeerReviewsError,
    contains=("beer_reviews.csv.gz", "gzip"),
)
_add(
    "beer_too_many_fields",
    "beer",
    "bad",
    _beer(
        beer_text(BEER_ROWS[:2])
        + "1,2,3,4,5,6,7,8,9,10,11,12,13,14\n"
        + beer_text(BEER_ROWS).split("\n", 1)[1]
    ),
    error=BeerReviewsError,
    contains=("beer_reviews.csv", "line 4", "saw 14"),
)
_add(
    "beer_extra_field_on_first_row",
    "beer",
    "silent",
    _beer(beer_text(BEER_ROWS).replace("\n", ",4.5\n", 2).replace(",4.5", "", 1)),
    error=BeerReviewsError,
    contains=("beer_reviews.csv:2", "14 fields where the header has 13"),
)
_add(
    "beer_duplicates_error_policy",
    "beer",
    "bad",
    _beer(rows=[*BEER_ROWS, beer_row("bob", 10, 500, 1.0)], duplicates="error"),
    error=BeerReviewsError,
    contains=("beer_reviews.csv", "('bob', 10)"),
)


def _beer_folder(d: Path):
    (d / "beer_reviews.csv").mkdir(parents=True)
    return lambda: load_beer_reviews(d / "beer_reviews.csv")


_add(
    "beer_path_is_a_folder",
    "beer",
    "bad",
    _beer_folder,
    error=BeerReviewsError,
    contains=("beer_reviews.csv", "is a directory"),
)


# ---- beer: valid
def _beer_values(ds: Any, n: int = 4) -> None:
    x = ds.interactions
    assert len(x) == n, len(x)
    assert ds.item_metadata.loc[20, "beer_name"] == "Kölsch", ds.item_metadata.loc[20, "beer_name"]
    assert float(x.ratings[0]) == 4.0 and int(x.timestamps[0]) == 100


def _expect(condition: bool, what: str = "") -> None:
    if not condition:
        raise AssertionError(what or "expectation failed")


_add(
    "beer_latin1_file",
    "beer",
    "raw-exception",
    _beer(encoding="latin-1"),
    check=lambda ds: (_beer_values(ds), _expect(ds.info["encoding"] == "latin-1")),
    warns="read as latin-1",
)
_add("beer_utf8_file", "beer", "valid", _beer(), check=_beer_values)
_add("beer_utf8_bom", "beer", "valid", _beer(encoding="utf-8-sig"), check=_beer_values)
_add(
    "beer_gzip_file",
    "beer",
    "valid",
    _beer(name="beer_reviews.csv.gz", gz=True),
    check=_beer_values,
)
_add(
    "beer_conflicting_duplicates_reported",
    "beer",
    "silent",
    _beer(rows=[*BEER_ROWS, beer_row("bob", 10, 500, 1.0)]),
    check=lambda ds: (
        _beer_values(ds),
        _expect(ds.info["num_conflicting_duplicate_pairs"] == 1),
        _expect(any("different 'review_overall'" in w for w in ds.info["warnings"])),
    ),
    warns="1 of them with different 'review_overall'",
)
_add(
    "beer_missing_user_reported",
    "beer",
    "silent",
    _beer(rows=[*BEER_ROWS, beer_row(None, 40, 700, 4.0)]),
    check=lambda ds: (_beer_values(ds), _expect(ds.info["num_missing_user"] == 1)),
    warns="without review_profilename dropped",
)
_add(
    "beer_zero_score_is_valid",
    "beer",
    "valid",
    _beer(rows=[*BEER_ROWS, beer_row("dave", 30, 900, 0.0)]),
    check=lambda ds: (_beer_values(ds, 5), _expect(float(ds.interactions.ratings.min()) == 0.0)),
)
_add(
    "beer_no_final_newline",
    "beer",
    "valid",
    _beer(beer_text(BEER_ROWS).rstrip("\n")),
    check=_beer_values,
)
_add(
    "beer_quoted_name_with_comma",
    "beer",
    "valid",
    _beer(rows=[*BEER_ROWS, beer_row("dave", 30, 900, 2.0, beer_name='Hop "Bomb", Reserve')]),
    # Two names for beer 30, one row each: the tie goes to the latest review's (time 900).
    check=lambda ds: _expect(ds.item_metadata.loc[30, "beer_name"] == 'Hop "Bomb", Reserve'),
    warns="per field {'beer_name': 1}",
)
_add(
    "beer_na_profile_name_is_a_user",
    "beer",
    "valid",
    _beer(rows=[*BEER_ROWS, beer_row("NA", 30, 900, 2.0)]),
    check=lambda ds: _expect("NA" in set(ds.interactions.user_map.raw_ids)),
)


# ============================================================================ Amazon
AM_PRODUCTS = [
    {
        "asin": "A",
        "title": "Guitar",
        "price": 99.5,
        "brand": "Acme",
        "categories": [["Music", "Guitars"]],
        "related": {"also_bought": ["B", "C"], "bought_together": ["B"], "also_viewed": ["B"]},
    },
    {"asin": "B", "title": "Strings", "related": {"also_bought": ["A"]}},
    {"asin": "C", "title": "Picks", "price": "$1.50", "related": {"also_viewed": ["A"]}},
]


def _am(
    lines: list[str] | None = None,
    *,
    name: str = "meta.json.gz",
    gz: bool = True,
    raw: bytes | None = None,
    **kwargs: Any,
) -> Callable[[Path], Callable[[], Any]]:
    def build(d: Path):
        d.mkdir(parents=True, exist_ok=True)
        data = raw
        if data is None:
            text = [repr(p) for p in AM_PRODUCTS] if lines is None else lines
            data = "".join(f"{x}\n" for x in text).encode()
        path = d / name
        path.write_bytes(gzip.compress(data) if gz else data)
        return lambda: load_amazon_products(path, **kwargs)

    return build


def _am_weights(ds: Any) -> dict[tuple[str, str], float]:
    x = ds.interactions
    raw = x.user_map.raw_ids
    return {
        (raw[u], raw[i]): round(float(w), 6) for u, i, w in zip(x.user_ids, x.item_ids, x.weights)
    }


_AM = [repr(p) for p in AM_PRODUCTS]
_add(
    "am_missing_file",
    "amazon",
    "bad",
    lambda d: lambda: load_amazon_products(d / "meta.json.gz"),
    error=MissingDataFileError,
    contains=("meta.json.gz", "not found"),
)
_add(
    "am_empty_file",
    "amazon",
    "misses-problem",
    _am(raw=b"", gz=False, name="meta.json"),
    error=AmazonMetadataError,
    contains=("meta.json", "empty", "0 bytes"),
)
_add(
    "am_empty_gzip",
    "amazon",
    "misses-problem",
    _am(raw=b""),
    error=AmazonMetadataError,
    contains=("meta.json.gz", "the file is empty", "0 line(s)"),
)
_add(
    "am_blank_lines_only",
    "amazon",
    "misses-problem",
    _am(raw=b"\n\n  \n"),
    error=AmazonMetadataError,
    contains=("meta.json.gz", "the file is empty", "3 line(s), all blank"),
)
_AM_BYTES = "".join(f"{x}\n" for x in _AM * 50).encode()
_add(
    "am_truncated_gzip",
    "amazon",
    "raw-exception",
    _truncated_gz(_AM_BYTES, "meta.json.gz", load_amazon_products),
    error=AmazonMetadataError,
    contains=("meta.json.gz", "truncated", "after line"),
)
_add(
    "am_corrupt_gzip",
    "amazon",
    "raw-exception",
    _corrupt_gz(_AM_BYTES, "meta.json.gz", load_amazon_products),
    error=AmazonMetadataError,
    contains=("meta.json.gz", "corrupt"),
)
_add(
    "am_code_is_not_run",
    "amazon",
    "bad",
    _am([*_AM[:1], "__import__('os').system('true')"]),
    error=AmazonMetadataError,
    contains=("meta.json.gz:2", "neither JSON nor a Python literal", "never run", "__import__"),
)
_add(
    "am_no_asin",
    "amazon",
    "bad",
    _am([*_AM, repr({"title": "x"})]),
    error=AmazonMetadataError,
    contains=("meta.json.gz:4", "'asin'", "None"),
)
_add(
    "am_negative_price",
    "amazon",
    "silent",
    _am([*_AM, repr({"asin": "D", "price": -3.0})]),
    error=AmazonMetadataError,
    contains=("meta.json.gz:4", "'price'", "-3.0"),
)
_add(
    "am_price_word",
    "amazon",
    "bad",
    _am([repr({"asin": "D", "price": "cheap"}), *_AM]),
    error=AmazonMetadataError,
    contains=("meta.json.gz:1", "'price'", "'cheap'"),
)
_add(
    "am_related_not_a_dict",
    "amazon",
    "bad",
    _am([*_AM, repr({"asin": "D", "related": ["A"]})]),
    error=AmazonMetadataError,
    contains=("meta.json.gz:4", "'related'", "list"),
)
_add(
    "am_categories_not_a_list",
    "amazon",
    "bad",
    _am([*_AM, repr({"asin": "D", "categories": "Music"})]),
    error=AmazonMetadataError,
    contains=("meta.json.gz:4", "'categories'", "str"),
)
_add(
    "am_not_a_dict",
    "amazon",
    "bad",
    _am([*_AM, "['A', 'B']"]),
    error=AmazonMetadataError,
    contains=("meta.json.gz:4", "expected a dict", "list"),
)
_add(
    "am_latin1_bytes",
    "amazon",
    "raw-exception",
    _am(
        raw=("\n".join(_AM) + "\n" + repr({"asin": "D", "title": "Café"}) + "\n").encode("latin-1")
    ),
    error=AmazonMetadataError,
    contains=("meta.json.gz:4", "utf-8", "0xe9"),
)
_add(
    "am_all_lines_malformed_skipped",
    "amazon",
    "bad",
    _am(["nonsense", "more nonsense"], on_error="skip"),
    error=AmazonMetadataError,
    contains=("meta.json.gz", "no product could be read", "2 malformed", "line 1"),
)


def _am_folder(d: Path):
    (d / "meta.json.gz").mkdir(parents=True)
    return lambda: load_amazon_products(d / "meta.json.gz")


_add(
    "am_path_is_a_folder",
    "amazon",
    "bad",
    _am_folder,
    error=AmazonMetadataError,
    contains=("meta.json.gz", "is a directory"),
)

# ---- Amazon: valid
_add(
    "am_strict_json_null_true",
    "amazon",
    "valid-mishandled",
    _am(
        [
            json.dumps(
                {
                    "asin": "A",
                    "price": None,
                    "brand": None,
                    "is_new": True,
                    "related": {"also_bought": ["B"]},
                }
            ),
            json.dumps({"asin": "B", "title": "Strings", "discontinued": False}),
        ]
    ),
    check=lambda ds: (
        _expect(np.isnan(ds.item_metadata.loc["A", "price"])),
        _expect(ds.item_metadata.loc["B", "title"] == "Strings"),
        _expect(_am_weights(ds) == {("A", "B"): 1.0, ("B", "A"): 1.0}),
    ),
)
_add(
    "am_pair_in_several_relations_sums",
    "amazon",
    "valid-mishandled",
    _am(),
    # A-B: also_bought (both sides, once) + bought_together + also_viewed = 1.0 + 1.2 + 0.5;
    # A-C: also_bought (A's side) + also_viewed (C's side) = 1.0 + 0.5.
    check=lambda ds: _expect(
        _am_weights(ds) == {("A", "B"): 2.7, ("B", "A"): 2.7, ("A", "C"): 1.5, ("C", "A"): 1.5},
        str(_am_weights(ds)),
    ),
)
_add(
    "am_pair_listed_twice_in_one_relation_counts_once",
    "amazon",
    "valid",
    _am(
        [
            repr({"asin": "A", "related": {"also_bought": ["B", "B"]}}),
            repr({"asin": "B", "related": {"also_bought": ["A"]}}),
        ]
    ),
    check=lambda ds: _expect(_am_weights(ds) == {("A", "B"): 1.0, ("B", "A"): 1.0}),
)
_add(
    "am_unweighted_relationship_reported",
    "amazon",
    "silent",
    _am(
        [
            repr({"asin": "A", "related": {"buy_after_viewing": ["B"], "also_viewed": ["B"]}}),
            repr({"asin": "B"}),
        ]
    ),
    check=lambda ds: _expect(_am_weights(ds) == {("A", "B"): 0.5, ("B", "A"): 0.5}),
    warns="'buy_after_viewing': 1",
)
_add(
    "am_python_literal_lines",
    "amazon",
    "valid",
    _am(),
    check=lambda ds: (
        _expect(ds.item_metadata.loc["C", "price"] == 1.5),
        _expect(ds.item_metadata.loc["A", "categories"] == ["Music", "Guitars"]),
    ),
)
_add(
    "am_uncompressed_file",
    "amazon",
    "valid",
    _am(gz=False, name="meta.json"),
    check=lambda ds: _expect(ds.interactions.num_users == 3),
)
_add(
    "am_byte_order_mark",
    "amazon",
    "valid",
    _am(raw=b"\xef\xbb\xbf" + "".join(f"{x}\n" for x in _AM).encode()),
    check=lambda ds: _expect(ds.interactions.num_users == 3),
)
_add(
    "am_duplicate_product_reported",
    "amazon",
    "silent",
    _am([*_AM, repr({"asin": "B", "title": "again"})]),
    check=lambda ds: _expect(ds.item_metadata.loc["B", "title"] == "Strings"),
    warns="1 repeated product line(s) merged",
)
_add(
    "am_unknown_related_reported",
    "amazon",
    "silent",
    _am([*_AM, repr({"asin": "D", "related": {"also_bought": ["ZZZ"]}})]),
    check=lambda ds: _expect(ds.info["num_unknown_products"] == 1),
    warns="without a metadata line dropped",
)
_add(
    "am_malformed_skipped_reported",
    "amazon",
    "silent",
    _am([*_AM, "{broken"], on_error="skip"),
    check=lambda ds: _expect(ds.info["malformed_lines"] == [4]),
    warns="1 malformed line(s) skipped",
)
_add(
    "am_self_listing_reported",
    "amazon",
    "silent",
    _am([*_AM, repr({"asin": "D", "related": {"also_bought": ["D"]}})]),
    check=lambda ds: _expect(sum(ds.info["num_self_listings"].values()) == 1),
    warns="related to itself dropped",
)


# ============================================================================ your own files
FILES_INTER = pd.DataFrame(
    {
        "user": ["u1", "u1", "u2", "u3", "u3"],
        "movie": [10, 20, 10, 30, 20],
        "stars": [5.0, 3.0, 4.0, 2.0, 5.0],
        "w": [1.0, 0.5, 2.0, 1.0, 1.0],
        "ts": [100, 200, 300, 400, 500],
        "fold": ["train", "test", "train", "train", "val"],
    }
)
FILES_ITEMS = pd.DataFrame(
    {"movie": [30, 10, 20], "genres": ["Drama", "Action|Comedy", ""], "year": [1990, 1995, 1992]}
)
FILES_OPTS = dict(
    user_col="user", item_col="movie", rating_col="stars", weight_col="w", timestamp_col="ts"
)


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def _files(
    inter: pd.DataFrame | str | bytes | None = None,
    *,
    name: str = "ratings.csv",
    items: pd.DataFrame | str | None = None,
    items_name: str = "movies.csv",
    split: dict | None = None,
    **kwargs: Any,
) -> Callable[[Path], Callable[[], Any]]:
    """Writes interactions (CSV text, a frame written by extension, or raw bytes) and an
    optional item table; the thunk loads them (and runs a column split when ``split`` is set)."""

    def write(path: Path, content: Any) -> None:
        suffixes = path.name.split(".", 1)[-1]
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            data = content.encode()
            path.write_bytes(gzip.compress(data) if suffixes.endswith("gz") else data)
        elif "parquet" in suffixes:
            content.to_parquet(path)
        elif suffixes.endswith("gz"):
            path.write_bytes(gzip.compress(_csv(content).encode()))
        elif suffixes in ("tsv", "tab"):
            path.write_text(content.to_csv(index=False, sep="\t"))
        else:
            path.write_text(_csv(content))

    def build(d: Path):
        d.mkdir(parents=True, exist_ok=True)
        path = d / name
        write(path, FILES_INTER if inter is None else inter)
        opts = {**FILES_OPTS, **kwargs}
        if items is not None:
            write(d / items_name, items)
            opts.update(
                item_features=str(d / items_name), item_id_col="movie", list_columns=("genres",)
            )

        def load():
            ds = load_files(path, **opts)
            if split is not None:
                return ds, make_split(
                    ds.interactions, {"name": "column", "labels": ds.split, **split}
                )
            return ds

        return load

    return build


def _f_values(ds: Any) -> None:
    x = ds.interactions
    assert (len(x), x.num_users, x.num_items) == (5, 3, 3), x
    np.testing.assert_array_equal(x.ratings, [5, 3, 4, 2, 5])
    np.testing.assert_array_equal(x.user_map.raw_ids, ["u1", "u2", "u3"])
    np.testing.assert_array_equal(x.item_map.raw_ids, [10, 20, 30])
    np.testing.assert_array_equal(x.timestamps, [100, 200, 300, 400, 500])


def _with(frame: pd.DataFrame, row: int, **values: Any) -> pd.DataFrame:
    out = frame.copy()
    for col, v in values.items():
        out[col] = out[col].astype(object)
        out.loc[row, col] = v
    return out


_add(
    "f_missing_file",
    "files",
    "bad",
    lambda d: lambda: load_files(d / "ratings.csv", **FILES_OPTS),
    error=FilesError,
    contains=("ratings.csv", "no such file"),
)


def _f_folder(d: Path):
    (d / "ratings.csv").mkdir(parents=True)
    return lambda: load_files(d / "ratings.csv", **FILES_OPTS)


_add(
    "f_path_is_a_folder",
    "files",
    "misses-problem",
    _f_folder,
    error=FilesError,
    contains=("ratings.csv", "is a directory"),
)


def _f_loop(d: Path):
    d.mkdir(parents=True)
    os.symlink(d / "ratings.csv", d / "ratings.csv")
    return lambda: load_files(d / "ratings.csv", **FILES_OPTS)


_add(
    "f_symlink_loop",
    "files",
    "misses-problem",
    _f_loop,
    error=FilesError,
    contains=("ratings.csv", "symbolic link loop"),
)
_add(
    "f_empty_file",
    "files",
    "raw-exception",
    _files(b""),
    error=FilesError,
    contains=("ratings.csv", "empty", "0 bytes"),
)
_add(
    "f_blank_lines_only",
    "files",
    "raw-exception",
    _files(b"\n\n"),
    error=FilesError,
    contains=("ratings.csv", "no header and no data"),
)
_add(
    "f_header_only",
    "files",
    "bad",
    _files(_csv(FILES_INTER.iloc[:0])),
    error=FilesError,
    contains=("ratings.csv", "no interactions", "empty"),
)
_add(
    "f_truncated_csv",
    "files",
    "misses-problem",
    _files(_csv(FILES_INTER) + "u4,30,4"),
    error=FilesError,
    contains=("ratings.csv:7", "truncated", "'u4,30,4'"),
)
_F_BYTES = _csv(pd.concat([FILES_INTER] * 40)).encode()
_add(
    "f_truncated_gzip",
    "files",
    "raw-exception",
    _truncated_gz(_F_BYTES, "ratings.csv.gz", lambda p: load_files(p, **FILES_OPTS)),
    error=FilesError,
    contains=("ratings.csv.gz", "truncated"),
)
_add(
    "f_corrupt_gzip",
    "files",
    "raw-exception",
    _corrupt_gz(_F_BYTES, "ratings.csv.gz", lambda p: load_files(p, **FILES_OPTS)),
    error=FilesError,
    contains=("ratings.csv.gz", "corrupt"),
)
_add(
    "f_corrupt_parquet",
    "files",
    "raw-exception",
    _files(b"PAR1" + bytes(range(200)) + b"PAR1", name="ratings.parquet"),
    error=FilesError,
    contains=("ratings.parquet", "cannot be read as Parquet"),
)
_add(
    "f_missing_column",
    "files",
    "bad",
    _files(FILES_INTER.drop(columns="ts")),
    error=FilesError,
    contains=("ratings.csv", "missing column(s) ['ts']"),
)
_add(
    "f_nan_rating",
    "files",
    "bad",
    _files(_with(FILES_INTER, 2, stars=np.nan)),
    error=FilesError,
    contains=("ratings.csv:4", "'stars'", "nan"),
)
_add(
    "f_rating_word",
    "files",
    "bad",
    _files(_with(FILES_INTER, 3, stars="five")),
    error=FilesError,
    contains=("ratings.csv:5", "'stars'", "'five'"),
)
_add(
    "f_negative_weight",
    "files",
    "silent",
    _files(_with(FILES_INTER, 1, w=-1.0)),
    error=FilesError,
    contains=("ratings.csv:3", "'w'", "-1.0"),
)
_add(
    "f_negative_weight_parquet",
    "files",
    "silent",
    _files(_with(FILES_INTER, 4, w=-0.5).astype({"w": float}), name="ratings.parquet"),
    error=FilesError,
    contains=("ratings.parquet (row 4)", "'w'", "-0.5"),
)
_add(
    "f_fractional_user_parquet",
    "files",
    "silent",
    _files(FILES_INTER.assign(user=[12.0, 12.0, 13.0, 12.5, 13.0]), name="ratings.parquet"),
    error=FilesError,
    contains=("ratings.parquet (row 3)", "'user'", "12.5"),
)
_add(
    "f_fractional_item_csv",
    "files",
    "silent",
    _files(FILES_INTER.assign(movie=[10.0, 20.0, 10.5, 30.0, 20.0])),
    error=FilesError,
    contains=("ratings.csv:4", "'movie'", "10.5"),
)
_add(
    "f_fractional_timestamp",
    "files",
    "silent",
    _files(FILES_INTER.assign(ts=[100, 200.5, 300, 400, 500])),
    error=FilesError,
    contains=("ratings.csv:3", "'ts'", "200.5"),
)
_add(
    "f_missing_user_id",
    "files",
    "bad",
    _files(_with(FILES_INTER, 2, user=None)),
    error=FilesError,
    contains=("ratings.csv:4", "'user'", "missing"),
)
_add(
    "f_infinite_weight",
    "files",
    "bad",
    _files(_with(FILES_INTER, 0, w="inf")),
    error=FilesError,
    contains=("ratings.csv:2", "'w'", "inf"),
)
_add(
    "f_too_many_fields",
    "files",
    "bad",
    _files(_csv(FILES_INTER).replace("u2,10,", "u2,10,9,", 1)),
    error=FilesError,
    contains=("ratings.csv", "line 4", "saw 7"),
)
# pandas alone would read the first column as an index and shift every value left (found by
# the property-based fuzzing); it is also caught on every later row.
for _row in (0, 4):
    _add(
        f"f_extra_field_on_data_row_{_row}",
        "files",
        "silent",
        _files(
            "\n".join(
                line + (",9" if k == _row + 1 else "")
                for k, line in enumerate(_csv(FILES_INTER).splitlines())
            )
            + "\n"
        ),
        error=FilesError,
        contains=(
            ("ratings.csv:2", "7 fields where the header has 6")
            if _row == 0
            else ("ratings.csv", "line 6", "saw 7")
        ),
    )
_add(
    "f_extra_field_on_every_row",
    "files",
    "silent",
    _files(
        "u,i,r\n0,0,0,0\n1,0,0,1\n",
        user_col="u",
        item_col="i",
        rating_col="r",
        weight_col=None,
        timestamp_col=None,
    ),
    error=FilesError,
    contains=("ratings.csv:2", "4 fields where the header has 3"),
)
_add(
    "f_no_split_column",
    "files",
    "bad",
    _files(split_col="fold_x"),
    error=FilesError,
    contains=("ratings.csv", "'fold_x'"),
)
_add(
    "f_empty_split_label",
    "files",
    "bad",
    _files(_with(FILES_INTER, 1, fold=None), split_col="fold"),
    error=FilesError,
    contains=("ratings.csv:3", "'fold'", "empty split label"),
)
_add(
    "f_duplicates_error_policy",
    "files",
    "bad",
    _files(pd.concat([FILES_INTER, FILES_INTER.iloc[[1]]]), duplicates="error"),
    error=FilesError,
    contains=("ratings.csv", "('u1', 20)", "duplicate"),
)
_add(
    "f_unknown_split_label",
    "files",
    "bad",
    _files(_with(FILES_INTER, 4, fold="tset"), split_col="fold", split={}),
    error=SplitError,
    contains=("'tset'", "row 4"),
    names_file=False,
)
_add(
    "f_test_only_user_refused",
    "files",
    "silent",
    _files(
        FILES_INTER.assign(user=["u1", "u1", "u2", "u3", "u9"]),
        split_col="fold",
        split={"unseen": "error"},
    ),
    error=SplitError,
    contains=("user 'u9'", "row 4", "'val'"),
    names_file=False,
)
_add(
    "f_features_missing_row",
    "files",
    "bad",
    _files(items=FILES_ITEMS.iloc[:2]),
    error=FilesError,
    contains=("movies.csv", "1 items", "[20]"),
)
_add(
    "f_features_duplicate_id",
    "files",
    "bad",
    _files(items=pd.concat([FILES_ITEMS, FILES_ITEMS.iloc[[0]]])),
    error=FilesError,
    contains=("movies.csv:5", "item ID 30 appears twice"),
)
_add(
    "f_features_fractional_id",
    "files",
    "silent",
    _files(items=FILES_ITEMS.assign(movie=[30.0, 10.0, 20.5]), items_name="movies.parquet"),
    error=FilesError,
    contains=("movies.parquet (row 2)", "'movie'", "20.5"),
)
_add(
    "f_features_missing_id",
    "files",
    "bad",
    _files(items=_with(FILES_ITEMS, 1, movie=None)),
    error=FilesError,
    contains=("movies.csv:3", "'movie'", "missing"),
)
_add(
    "f_features_no_id_column",
    "files",
    "bad",
    _files(items=FILES_ITEMS.rename(columns={"movie": "film"})),
    error=FilesError,
    contains=("movies.csv", "no ID column 'movie'"),
)
_add(
    "f_features_empty_file",
    "files",
    "raw-exception",
    _files(items=""),
    error=FilesError,
    contains=("movies.csv", "empty"),
)

# ---- files: valid
_add("f_basic_csv", "files", "valid", _files(), check=_f_values)
_add("f_gzip_csv", "files", "valid", _files(name="ratings.csv.gz"), check=_f_values)
_add("f_tsv", "files", "valid", _files(name="ratings.tsv"), check=_f_values)
_add("f_parquet", "files", "valid", _files(name="ratings.parquet"), check=_f_values)
_add(
    "f_no_final_newline", "files", "valid", _files(_csv(FILES_INTER).rstrip("\n")), check=_f_values
)
_add(
    "f_utf8_bom",
    "files",
    "valid",
    _files(b"\xef\xbb\xbf" + _csv(FILES_INTER).encode()),
    check=_f_values,
)
_add(
    "f_latin1_csv",
    "files",
    "raw-exception",
    _files(_csv(FILES_INTER.assign(user=["Zoë", "Zoë", "u2", "u3", "u3"])).encode("latin-1")),
    check=lambda ds: _expect("Zoë" in set(ds.interactions.user_map.raw_ids)),
    warns="read as latin-1",
)
_add(
    "f_whole_float_ids_parquet",
    "files",
    "silent",
    _files(FILES_INTER.assign(movie=[10.0, 20.0, 10.0, 30.0, 20.0]), name="ratings.parquet"),
    check=lambda ds: (_f_values(ds), _expect(ds.interactions.item_map.raw_ids.dtype.kind == "i")),
    warns="read as integer item IDs",
)
_add(
    "f_leading_zero_ids_stay_text",
    "files",
    "valid",
    _files(FILES_INTER.assign(user=["007", "007", "7", "u3", "u3"]).to_csv(index=False)),
    check=lambda ds: _expect(
        list(ds.interactions.user_map.raw_ids) == ["007", "7", "u3"],
        str(ds.interactions.user_map.raw_ids),
    ),
)
_add(
    "f_conflicting_duplicates_reported",
    "files",
    "silent",
    _files(pd.concat([FILES_INTER, _with(FILES_INTER.iloc[[1]], 1, stars=1.0)])),
    check=lambda ds: (
        _expect(len(ds.interactions) == 6),
        _expect(ds.info["num_conflicting_duplicate_pairs"] == 1),
    ),
    warns="1 with conflicting 'stars' values",
)
_add(
    "f_duplicates_merged_reported",
    "files",
    "silent",
    _files(
        pd.concat([FILES_INTER, _with(FILES_INTER.iloc[[1]], 1, stars=1.0, ts=900)]),
        duplicates="last",
    ),
    check=lambda ds: (
        _expect(len(ds.interactions) == 5),
        _expect(
            ds.interactions.to_dataframe()
            .set_index(["user_id", "item_id"])
            .loc[("u1", 20), "rating"]
            == 1.0
        ),
    ),
    warns="merged by duplicates='last'",
)
_add(
    "f_extra_feature_rows_reported",
    "files",
    "silent",
    _files(
        items=pd.concat(
            [FILES_ITEMS, pd.DataFrame({"movie": [99], "genres": ["Horror"], "year": [2000]})]
        )
    ),
    check=lambda ds: (
        _expect(list(ds.item_metadata.index) == [10, 20, 30]),
        _expect(ds.info["item_feature_rows_without_interactions"] == 1),
        _expect(any("dropped" in w for w in ds.info["warnings"])),
    ),
    warns="1 item row(s) have no interactions and were dropped",
)
_add(
    "f_test_only_user_reported",
    "files",
    "silent",
    _files(FILES_INTER.assign(user=["u1", "u1", "u2", "u3", "u9"]), split_col="fold", split={}),
    check=lambda r: (
        _expect(r[0].info["num_users_without_training_rows"] == 1),
        _expect(list(r[1].cold_users) == [3], str(r[1].cold_users)),
    ),
    warns="have no row labelled 'train'",
)
_add(
    "f_test_only_user_accepted_as_cold",
    "files",
    "valid",
    _files(
        FILES_INTER.assign(user=["u1", "u1", "u2", "u3", "u9"]),
        split_col="fold",
        split={"unseen": "cold"},
    ),
    check=lambda r: _expect(list(r[1].cold_users) == [3]),
)
_add(
    "f_features_with_lists",
    "files",
    "valid",
    _files(items=FILES_ITEMS),
    check=lambda ds: (
        _expect(ds.item_metadata.loc[10, "genres"] == ["Action", "Comedy"]),
        _expect(ds.item_metadata.loc[20, "genres"] == []),
        _expect(ds.item_metadata.loc[30, "year"] == 1990),
    ),
)
_add(
    "f_features_parquet_with_string_year",
    "files",
    "valid",
    _files(
        items=FILES_ITEMS.assign(year=["1990", "nineteen ninety", "1992"]),
        items_name="movies.parquet",
    ),
    check=lambda ds: _expect(ds.item_metadata.loc[10, "year"] == "nineteen ninety"),
)


# ============================================================================ building
def build(root: str | os.PathLike) -> dict[str, Callable[[], Any]]:
    """Writes every case under ``root/<case name>/``; returns name -> loader thunk."""
    root = Path(root)
    return {case.name: case.write(root / case.name) for case in CASES}


def case_dir(root: str | os.PathLike, case: Case) -> Path:
    return Path(root) / case.name


assert len({c.name for c in CASES}) == len(CASES), "duplicate case names"
assert all(issubclass(c.error, DataError | SplitError) for c in CASES if c.error), "bad types"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/reliability/make_corpus.py OUTPUT_DIR")
    build(sys.argv[1])
    print(f"{len(CASES)} cases written under {sys.argv[1]}")
