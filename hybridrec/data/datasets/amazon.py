"""Amazon product metadata (McAuley et al. 2015): products, their text, and related-product pairs.

The per-category metadata files of McAuley, Targett, Shi and van den Hengel, "Image-based
recommendations on styles and substitutes" (SIGIR 2015), e.g. ``meta_Musical_Instruments.json.gz``,
hold one product per line as a *Python literal* dict (single quotes, so not JSON; strict JSON
lines, as in later dumps, are read too)::

    {'asin': '0000031852', 'title': '...', 'price': 3.17, 'brand': '...',
     'categories': [['Sports & Outdoors', 'Other Sports', 'Dance']],
     'related': {'also_bought': [...], 'also_viewed': [...], 'bought_together': [...]},
     'salesRank': {'Toys & Games': 211836}, 'imUrl': 'http://...', 'description': '...'}

``load_amazon_products`` streams such a file line by line (parsing each with ``json.loads``,
else ``ast.literal_eval``, never ``eval``) into a ``Dataset`` for the *item-to-item* task: given a
query product, rank the products related to it.

Pair convention (read this before splitting or evaluating):

* A relationship r (``bought_together``, ``also_bought``, ...) links products a and b when a's
  line lists b under r **or** b's line lists a under r. Pairs are undirected; a pair listed from
  both sides, or twice in one list, still counts once for that relationship.
* The weight of a pair is the sum of ``relationship_weights[r]`` over the *distinct*
  relationships linking it: with the defaults a pair that is both ``bought_together`` and
  ``also_bought`` weighs 1.2 + 1.0 = 2.2, and one listed under all three weighted relationships
  2.7, however many times and from whichever side each lists it. Relationships without a weight
  (``buy_after_viewing`` by default) add nothing; their listings are counted and reported.
* Both directions are stored: the interactions hold (a, b) and (b, a) with the same weight, so
  ``interactions.csr[a]`` lists every product related to query product a. The "users" are query
  products and the "items" related products; both share one ``IdMap`` of ASINs.
* Evaluation: for a query product, its related products are the positives. Because of the mirror
  rows, a random split of interaction rows leaks (a, b) into training when (b, a) is a test row;
  split by undirected pair or hold out whole products (every row that has the product on either
  side), the cold-start protocol: ``pair_split_labels`` gives either, for
  ``hybridrec.data.splits.split_from_column``.
"""

from __future__ import annotations

import ast
import gzip
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridrec.data.datasets import _cache
from hybridrec.data.datasets._base import DataError, Dataset
from hybridrec.data.interactions import IdMap, Interactions
from hybridrec.data.splits import SplitError, item_pair_parts

__all__ = [
    "AMAZON_CATEGORIES",
    "AMAZON_ITEM_COLUMNS",
    "AMAZON_META_URL",
    "DEFAULT_RELATIONSHIP_WEIGHTS",
    "KNOWN_RELATIONSHIPS",
    "AmazonMetadataError",
    "amazon_metadata_url",
    "download_amazon_metadata",
    "load_amazon_products",
    "pair_groups",
    "pair_split_labels",
]

#: URL pattern of the per-category metadata files (2014 crawl, published with the 2015 paper).
AMAZON_META_URL = (
    "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/meta_{category}.json.gz"
)
#: Category names as they appear in the file names (for messages; other names are still tried).
AMAZON_CATEGORIES = (
    "Amazon_Instant_Video",
    "Apps_for_Android",
    "Automotive",
    "Baby",
    "Beauty",
    "Books",
    "CDs_and_Vinyl",
    "Cell_Phones_and_Accessories",
    "Clothing_Shoes_and_Jewelry",
    "Digital_Music",
    "Electronics",
    "Grocery_and_Gourmet_Food",
    "Health_and_Personal_Care",
    "Home_and_Kitchen",
    "Kindle_Store",
    "Movies_and_TV",
    "Musical_Instruments",
    "Office_Products",
    "Patio_Lawn_and_Garden",
    "Pet_Supplies",
    "Sports_and_Outdoors",
    "Tools_and_Home_Improvement",
    "Toys_and_Games",
    "Video_Games",
)
#: Relationship lists that occur under ``related`` in the 2014 metadata.
KNOWN_RELATIONSHIPS = ("bought_together", "also_bought", "also_viewed", "buy_after_viewing")
DEFAULT_RELATIONSHIP_WEIGHTS = {"bought_together": 1.2, "also_bought": 1.0, "also_viewed": 0.5}
#: Item metadata columns, in the order of the returned DataFrame (names fixed by the spec).
AMAZON_ITEM_COLUMNS = ("title", "description", "brand", "categories", "price")

_CATEGORY_RE = re.compile(r"^[A-Za-z0-9_]+$")
# Largest accepted download (16 GiB): the biggest category files may exceed the 1 GiB default
# of _cache.download_url.
_MAX_DOWNLOAD_BYTES = 16 << 30


class AmazonMetadataError(DataError):
    """Raised for a malformed metadata file or bad arguments; names the file, line and field."""


class _RecordError(ValueError):
    """A line parsed, but its content does not have the expected structure."""


# ---------------------------------------------------------------------------- download
def amazon_metadata_url(category: str) -> str:
    """The download URL of one category's metadata file."""
    _check_category(category)
    return AMAZON_META_URL.format(category=category)


def _check_category(category: str) -> None:
    if not isinstance(category, str) or not _CATEGORY_RE.match(category):
        raise AmazonMetadataError(
            f"category must be a file-name token like 'Musical_Instruments', got {category!r}; "
            f"known categories: {', '.join(AMAZON_CATEGORIES)}"
        )


def download_amazon_metadata(
    category: str,
    dest: str | os.PathLike | None = None,
    *,
    download: bool = True,
    sha256: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Returns the local path of ``meta_<category>.json.gz``, downloading it if needed.

    Sources, in order: the file already in ``dest``; a download from ``AMAZON_META_URL`` (only
    when downloads are enabled: ``download=True`` and ``$HYBRIDREC_NO_DOWNLOAD`` unset). A
    download is written to a temporary file and moved into place only when complete and, if
    ``sha256`` is given, verified.

    Args:
      category: file-name category, e.g. ``"Musical_Instruments"`` (see ``AMAZON_CATEGORIES``).
      dest: directory for the file; default ``<data_home>/amazon`` (see ``_cache.data_home``).
      download: allow the network.
      sha256: expected SHA-256 of the file; checked for a cached file and for a download.
      timeout: seconds for the connection and for each read.

    Returns:
      Path of the ``.json.gz`` file, ready for ``load_amazon_products``.

    Raises:
      AmazonMetadataError: a malformed category name.
      DataUnavailableError: no source worked; lists each with its reason (e.g. offline) and says
        how to place the file by hand.
    """
    _check_category(category)
    directory = Path(dest).expanduser() if dest is not None else _cache.data_home() / "amazon"
    target = directory / f"meta_{category}.json.gz"
    url = amazon_metadata_url(category)

    def cached() -> Path:
        if not target.is_file():
            raise FileNotFoundError(f"{target} does not exist")
        if sha256 is not None:
            _cache.verify_sha256(target, sha256)
        return target

    def fetch() -> Path:
        if not _cache.downloads_enabled(download):
            raise _cache.DownloadsDisabledError(_cache.downloads_disabled_reason(download))
        return _cache.download_url(
            url, target, sha256=sha256, timeout=timeout, max_bytes=_MAX_DOWNLOAD_BYTES
        )

    hint = (
        f"If this machine is offline, download {url} elsewhere and copy it to {target} (or pass "
        "its path to load_amazon_products). Category names: " + ", ".join(AMAZON_CATEGORIES)
    )
    _, path = _cache.try_sources(
        f"Amazon metadata '{category}'",
        [_cache.Source(f"cached file {target}", cached), _cache.Source(f"download {url}", fetch)],
        hint,
    )
    return path  # type: ignore[return-value]


# ---------------------------------------------------------------------------- parsing
def _text(value: Any, field: str) -> str:
    """A text field: "" when missing; lists of strings (seen in some dumps) are joined."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return " ".join(value)
    if isinstance(value, int | float):
        return str(value)
    raise _RecordError(f"field '{field}' should be text, got {type(value).__name__}")


def _price(value: Any) -> float:
    """Price as float; NaN when missing or empty. Accepts numbers and numeric strings."""
    if value is None or value == "":
        return math.nan
    if isinstance(value, bool):
        raise _RecordError(f"field 'price' should be a number, got {value!r}")
    price = math.nan
    if isinstance(value, int | float):
        price = float(value)
    elif isinstance(value, str):
        try:
            price = float(value.strip().lstrip("$").replace(",", ""))
        except ValueError:
            pass
    if math.isnan(price) or math.isinf(price):
        raise _RecordError(f"field 'price' should be a number, got {value!r}")
    if price < 0:
        raise _RecordError(f"field 'price' is negative: {value!r}")
    return price


def _categories(value: Any) -> list[str]:
    """The category paths flattened to unique names, first-seen order; [] when missing."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _RecordError(
            f"field 'categories' should be a list of lists, got {type(value).__name__}"
        )
    out: dict[str, None] = {}  # an ordered set
    for path in value:
        names = path if isinstance(path, list) else [path]
        for name in names:
            if not isinstance(name, str):
                raise _RecordError(f"field 'categories' holds a non-string {name!r}")
            if name:
                out[name] = None
    return list(out)


def _related(value: Any) -> dict[str, list[str]]:
    """The ``related`` dict: relationship name -> list of ASINs; {} when missing."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _RecordError(f"field 'related' should be a dict, got {type(value).__name__}")
    for name, asins in value.items():
        if not isinstance(asins, list) or not all(isinstance(a, str) for a in asins):
            raise _RecordError(f"field 'related.{name}' should be a list of ASIN strings")
    return value


def _parse_line(text: str) -> tuple[str, dict[str, Any], dict[str, list[str]]]:
    """One metadata line -> (asin, metadata fields, related lists); raises on malformed lines.

    A line is strict JSON (``"..."``, ``null``, ``true``: the later dumps) or a Python literal
    (``'...'``, ``None``, ``True``: the 2014 files); JSON is tried first, it is the faster parser.
    """
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        try:
            record = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
            why = f"{type(e).__name__}: {e}"
            if isinstance(e, ValueError) and "malformed node" in str(e):
                why = "it holds an expression, not only literal values; it is never run"
            raise _RecordError(f"neither JSON nor a Python literal ({why})") from None
    if not isinstance(record, dict):
        raise _RecordError(f"expected a dict literal, got {type(record).__name__}")
    asin = record.get("asin")
    if not isinstance(asin, str) or not asin:
        raise _RecordError(f"field 'asin' is missing or not a non-empty string: {asin!r}")
    brand = _text(record.get("brand"), "brand").strip()
    fields = {
        "title": _text(record.get("title"), "title"),
        "description": _text(record.get("description"), "description"),
        "brand": brand or None,
        "categories": _categories(record.get("categories")),
        "price": _price(record.get("price")),
    }
    return asin, fields, _related(record.get("related"))


def _open_lines(path: Path):
    """Binary line iterator over a gzip or plain file (detected by the gzip magic bytes)."""
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _numbered(f: Any, path: Path) -> Any:
    """``enumerate(f, 1)`` whose gzip and I/O failures become ``AmazonMetadataError``s naming the
    file and the last line read (a truncated download fails at its end, not at its start)."""
    number = 0
    while True:
        try:
            raw = next(f)
        except StopIteration:
            return
        except _cache.READ_ERRORS as e:
            where = f"after line {number}" if number else "before the first line"
            raise AmazonMetadataError(f"{_cache.read_error(path, e)} ({where})") from None
        number += 1
        yield number, raw


def _check_weights(weights: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(weights, Mapping) or not weights:
        raise AmazonMetadataError(
            f"relationship_weights must be a non-empty mapping, got {weights!r}"
        )
    out = {}
    for name, w in weights.items():
        if name not in KNOWN_RELATIONSHIPS:
            raise AmazonMetadataError(
                f"unknown relationship {name!r} in relationship_weights; known: "
                f"{list(KNOWN_RELATIONSHIPS)}"
            )
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            raise AmazonMetadataError(
                f"relationship_weights[{name!r}] must be a finite number >= 0, got {w!r}"
            )
        if w > 0:  # a zero weight switches a relationship off
            out[name] = float(w)
    if not out:
        raise AmazonMetadataError("every relationship weight is 0: there would be no pairs")
    return out


# ---------------------------------------------------------------------------- loading
def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` for int64 keys by sorting: numpy 2.4's hash-based ``np.unique`` took ~9 s
    on 5M random int64 keys where sort-and-compare takes ~0.05 s (measured)."""
    values = np.sort(values)
    first = np.ones(len(values), bool)
    first[1:] = values[1:] != values[:-1]
    return values[first]


def load_amazon_products(
    path: str | os.PathLike,
    *,
    relationship_weights: Mapping[str, float] = DEFAULT_RELATIONSHIP_WEIGHTS,
    keep_unknown_products: bool = False,
    max_lines: int | None = None,
    on_error: str = "raise",
) -> Dataset:
    """Loads a McAuley et al. metadata file into product-pair interactions and item metadata.

    The file is streamed line by line (gzip or plain text); each non-blank line is parsed as JSON
    or, failing that, with ``ast.literal_eval``. Pairs follow the convention in the module
    docstring: undirected, both directions stored, weight = sum of the weights of the distinct
    relationships linking the pair (a pair in ``bought_together`` and ``also_bought`` weighs
    2.2 with the defaults, once, whether listed from one side or both). Self-pairs are dropped.
    A product with several lines takes its metadata from the first and the union of the
    relations of all of them. Everything dropped or merged (malformed lines skipped, repeated
    products, unknown related products, self-listings, unweighted relationships) is reported: a
    ``DataWarning`` and a sentence in ``info["warnings"]``. A negative or non-numeric price is a
    malformed line.

    Args:
      path: ``meta_<Category>.json.gz`` (or an uncompressed copy).
      relationship_weights: weight per relationship; relationships left out, or weighted 0, are
        ignored. Keys must be in ``KNOWN_RELATIONSHIPS``.
      keep_unknown_products: related ASINs that have no metadata line are dropped (and counted)
        by default; with True they join the ID space with empty metadata (title "", description
        "", brand None, categories [], price NaN).
      max_lines: read at most this many lines (for quick experiments; relations to products
        beyond the cut then count as unknown).
      on_error: ``"raise"``: a malformed line raises ``AmazonMetadataError`` with its line
        number. ``"skip"``: skip it and count it in ``info["num_malformed_lines"]`` (the first
        line numbers are in ``info["malformed_lines"]``).

    Returns:
      ``Dataset(name="amazon-products")``: ``interactions`` with query products as users,
      related products as items (one shared ``IdMap`` of ASINs, sorted), float32 ``weights``, no
      ratings or timestamps; ``item_metadata`` indexed by ``asin`` in ``item_map`` order with
      columns ``AMAZON_ITEM_COLUMNS``; ``user_metadata`` None (the same table serves the query
      side); ``info`` with counts of everything read, dropped and merged.

    Raises:
      MissingDataFileError: ``path`` does not exist (see ``download_amazon_metadata``); a
        ``FileNotFoundError``.
      AmazonMetadataError: an empty, truncated or corrupt file, a malformed line (``file:line``),
        no product at all, or bad arguments.
    """
    path = Path(path).expanduser()
    if not os.path.lexists(path):
        raise _cache.MissingDataFileError(
            f"Amazon metadata file not found: {path}. Get it with "
            "download_amazon_metadata(category) or from "
            f"{AMAZON_META_URL.format(category='<Category>')}"
        )
    try:
        _cache.check_file(path, "Amazon metadata file")
    except DataError as e:
        raise AmazonMetadataError(str(e)) from None
    weights = _check_weights(relationship_weights)
    if on_error not in ("raise", "skip"):
        raise AmazonMetadataError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if max_lines is not None and (not isinstance(max_lines, int) or max_lines < 1):
        raise AmazonMetadataError(f"max_lines must be a positive int or None, got {max_lines!r}")

    asins: list[str] = []
    columns: dict[str, list[Any]] = {c: [] for c in AMAZON_ITEM_COLUMNS}
    # Per relationship: for each list, the position (in ``asins``) of the listing product and
    # the list's length; and all listed ASINs, concatenated.
    owners: dict[str, list[int]] = {r: [] for r in weights}
    lengths: dict[str, list[int]] = {r: [] for r in weights}
    targets: dict[str, list[str]] = {r: [] for r in weights}
    ignored_listings: dict[str, int] = {}
    position: dict[str, int] = {}
    num_lines = num_blank = num_duplicate_products = 0
    malformed: list[int] = []

    # The one loop over lines: parsing is inherently per line; all pair work below is vectorised.
    try:
        lines = _open_lines(path)
    except OSError as e:
        raise AmazonMetadataError(str(_cache.read_error(path, e))) from None
    with lines as f:
        for lineno, raw in _numbered(f, path):
            if max_lines is not None and lineno > max_lines:
                break
            num_lines = lineno
            try:
                text = raw.decode("utf-8").strip()
                if lineno == 1:
                    text = text.lstrip("\ufeff")  # a byte-order mark some editors add
                if not text:
                    num_blank += 1
                    continue
                asin, fields, related = _parse_line(text)
            except (_RecordError, UnicodeDecodeError) as e:
                if on_error == "skip":
                    malformed.append(lineno)
                    continue
                shown = raw[:120].decode("utf-8", "replace").rstrip()
                raise AmazonMetadataError(
                    f"{path}:{lineno}: malformed product line: {e}. The line starts {shown!r}. "
                    "Pass on_error='skip' to skip such lines."
                ) from None
            pos = position.get(asin)
            if pos is not None:
                num_duplicate_products += 1
            else:
                pos = position[asin] = len(asins)
                asins.append(asin)
                for c in AMAZON_ITEM_COLUMNS:
                    columns[c].append(fields[c])
            for name, listed in related.items():
                if name in weights:
                    owners[name].append(pos)
                    lengths[name].append(len(listed))
                    targets[name].extend(listed)
                else:
                    ignored_listings[name] = ignored_listings.get(name, 0) + len(listed)

    if not asins:
        if num_blank == num_lines:
            raise AmazonMetadataError(
                f"{path}: the file is empty: {num_lines} line(s), all blank (after decompression)"
            )
        raise AmazonMetadataError(
            f"{path}: no product could be read ({num_lines} lines, {len(malformed)} malformed, "
            f"first at line {malformed[0] if malformed else '?'})"
        )

    # ID space: products with a metadata line, plus unknown related products if kept. Each
    # listed ASIN is looked up once in the map of known products; only the unknown ones are
    # looked up again when they join the ID space.
    id_map = IdMap.from_values(np.asarray(asins, dtype=object), name="product")
    index_of_position = id_map.to_index(np.asarray(asins, dtype=object))
    dsts = {}
    for name, listed in targets.items():
        dsts[name] = id_map.to_index(np.asarray(listed, dtype=object), allow_unknown=True)
    unknown_values = {
        name: np.asarray(targets[name], dtype=object)[dst < 0] for name, dst in dsts.items()
    }
    unknown_asins = pd.unique(np.concatenate([np.zeros(0, object), *unknown_values.values()]))
    if keep_unknown_products and len(unknown_asins):
        old_raw = id_map.raw_ids
        id_map = IdMap.from_values(
            np.concatenate([old_raw, np.asarray(unknown_asins, dtype=object)]), name="product"
        )
        remap = id_map.to_index(old_raw)  # (num_known,) old index -> new index
        index_of_position = remap[index_of_position]
        for name, dst in dsts.items():
            known_rows = dst >= 0
            dst[known_rows] = remap[dst[known_rows]]
            dst[~known_rows] = id_map.to_index(unknown_values[name])
    n = len(id_map)

    keys, key_weights = [], []
    listings, unknown_listings, self_listings, pairs_per_rel = {}, {}, {}, {}
    for name, w in weights.items():
        src = np.repeat(
            index_of_position[np.asarray(owners[name], np.int64)],
            np.asarray(lengths[name], np.int64),
        )
        dst = dsts[name]
        listings[name] = len(dst)
        unknown = dst < 0  # only without keep_unknown_products: the kept ones have indices now
        unknown_listings[name] = len(unknown_values[name])
        src, dst = src[~unknown], dst[~unknown]
        is_self = src == dst
        self_listings[name] = int(is_self.sum())
        src, dst = src[~is_self], dst[~is_self]
        # Canonical undirected key: a pair listed from both sides, or twice, counts once here.
        rel_keys = _sorted_unique(np.minimum(src, dst) * n + np.maximum(src, dst))
        pairs_per_rel[name] = len(rel_keys)
        keys.append(rel_keys)
        key_weights.append(np.full(len(rel_keys), w))
    all_keys = np.concatenate(keys) if keys else np.zeros(0, np.int64)
    pair_keys, inverse = np.unique(all_keys, return_inverse=True)
    pair_weights = np.bincount(
        inverse, weights=np.concatenate(key_weights), minlength=len(pair_keys)
    )
    lo, hi = pair_keys // n, pair_keys % n
    user_ids = np.concatenate([lo, hi])
    item_ids = np.concatenate([hi, lo])
    order = np.lexsort((item_ids, user_ids))
    interactions = Interactions(
        user_ids=user_ids[order],
        item_ids=item_ids[order],
        user_map=id_map,
        item_map=id_map,
        weights=np.concatenate([pair_weights, pair_weights])[order],
    )

    meta = pd.DataFrame(
        {c: pd.Series(columns[c], dtype=object) for c in AMAZON_ITEM_COLUMNS if c != "price"}
    )
    meta["price"] = np.asarray(columns["price"], dtype=np.float64)
    meta.index = pd.Index(asins, name="asin")
    meta = meta.reindex(pd.Index(id_map.raw_ids, name="asin"))
    missing = ~meta.index.isin(asins)
    if missing.any():
        meta.loc[missing, "title"] = ""
        meta.loc[missing, "description"] = ""
        meta.loc[missing, "brand"] = None
        meta["categories"] = [c if isinstance(c, list) else [] for c in meta["categories"]]
    meta = meta[list(AMAZON_ITEM_COLUMNS)]

    degree = interactions.user_counts()
    info: dict[str, Any] = {}
    if malformed:
        _cache.report(
            info,
            f"{path}: {len(malformed)} malformed line(s) skipped (on_error='skip'), first at "
            f"lines {malformed[:5]}",
        )
    if num_duplicate_products:
        _cache.report(
            info,
            f"{path}: {num_duplicate_products} repeated product line(s) merged: metadata from "
            "each product's first line, relations from all of them",
        )
    if sum(unknown_listings.values()) and not keep_unknown_products:
        _cache.report(
            info,
            f"{path}: {sum(unknown_listings.values())} listing(s) of {len(unknown_asins)} "
            "product(s) without a metadata line dropped (keep_unknown_products=True keeps them)",
        )
    if sum(self_listings.values()):
        _cache.report(
            info,
            f"{path}: {sum(self_listings.values())} listing(s) of a product as related to "
            "itself dropped",
        )
    if ignored_listings:
        _cache.report(
            info,
            f"{path}: listings of relationships without a weight ignored: {ignored_listings} "
            "(give them a weight in relationship_weights to use them)",
        )
    info.update(
        {
            "source": str(path),
            "relationship_weights": dict(weights),
            "num_lines": num_lines,
            "num_blank_lines": num_blank,
            "num_malformed_lines": len(malformed),
            "malformed_lines": malformed[:20],
            "num_products": len(asins),
            "num_duplicate_products": num_duplicate_products,
            "keep_unknown_products": keep_unknown_products,
            "num_unknown_products": len(unknown_asins),
            "num_listings": listings,
            "num_unknown_listings": unknown_listings,
            "num_self_listings": self_listings,
            "num_ignored_listings": ignored_listings,
            "num_pairs_per_relationship": pairs_per_rel,
            "num_pairs": len(pair_keys),
            "num_interactions": len(interactions),
            "num_products_without_pairs": int((degree == 0).sum()),
            "price_coverage": float(np.isfinite(meta["price"].to_numpy()).mean()),
            "brand_coverage": float(meta["brand"].notna().mean()),
            "description_coverage": float((meta["description"] != "").mean()),
        }
    )
    return Dataset(
        name="amazon-products",
        interactions=interactions,
        item_metadata=meta,
        user_metadata=None,
        info=info,
    )


def pair_groups(interactions: Interactions) -> np.ndarray:
    """An ID per undirected pair, equal for the rows (a, b) and (b, a).

    Use it as the group of a grouped split so both directions of a pair land in the same fold.

    Args:
      interactions: product-pair interactions (query and related products in one ID space).

    Returns:
      (N,) int64 ``min(a, b) * num_items + max(a, b)`` per row.
    """
    u = interactions.user_ids.astype(np.int64)
    i = interactions.item_ids.astype(np.int64)
    return np.minimum(u, i) * interactions.num_items + np.maximum(u, i)


def pair_split_labels(
    interactions: Interactions,
    *,
    test_p: float,
    val_p: float = 0.0,
    by: str = "pair",
    seed: int = 0,
) -> np.ndarray:
    """Split labels for product-pair interactions that never separate the two directions.

    Feed the result to ``hybridrec.data.splits.split_from_column``. A plain row-level split of
    pair data leaks: (a, b) in training gives away the test row (b, a).

    Args:
      interactions: product-pair interactions with both directions stored.
      test_p: fraction of undirected pairs (``by="pair"``) or of products with at least one pair
        (``by="product"``) held out for test; rounded up, as sklearn does.
      val_p: the same for validation (0 for none).
      by: ``"pair"``: undirected pairs are shuffled and assigned, both rows of a pair together
        (warm products, held-out links). ``"product"``: products are held out; every row with a
        test product on either side is test, else every row with a validation product is
        validation, so held-out products appear in no training row (cold-start products, scored
        from metadata only).
      seed: seed of the shuffle.

    Returns:
      (N,) object array of ``"train"`` / ``"val"`` / ``"test"``.

    Raises:
      AmazonMetadataError: bad fractions or ``by``, or nothing left for training.
    """
    try:
        row_part, _ = item_pair_parts(interactions, test_p, val_p, by, seed, "pair_split_labels")
    except SplitError as error:
        raise AmazonMetadataError(str(error)) from None
    return np.array(["train", "val", "test"], dtype=object)[row_part]
