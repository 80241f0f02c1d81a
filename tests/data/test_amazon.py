"""Tests for the Amazon product-metadata loader and its download helper (network monkeypatched)."""

import gzip
import hashlib
import io
import math
import urllib.error
import urllib.request

import numpy as np
import pytest

from hybridrec.data.datasets import _cache
from hybridrec.data.datasets.amazon import (
    AMAZON_ITEM_COLUMNS,
    AmazonMetadataError,
    amazon_metadata_url,
    download_amazon_metadata,
    load_amazon_products,
    pair_groups,
    pair_split_labels,
)
from hybridrec.data.splits import split_from_column


def _write(path, lines):
    """Writes text lines; gzip-compressed when the name ends in .gz, as the real files are."""
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(gzip.compress(data) if str(path).endswith(".gz") else data)
    return path


# Python-literal lines (single quotes, as repr() writes them), with the mess of the real files:
#  - A lists B under bought_together AND also_bought, and B lists A under also_bought
#    (a pair listed from both sides counts once per relationship): {A, B} = 1.2 + 1.0 = 2.2;
#  - A lists Z, which has no metadata line (dropped by default);
#  - A lists D twice under also_viewed and D lists A back: {A, D} = 0.5 once;
#  - A lists itself (a self-pair, dropped);
#  - B has no price, brand or description; C has a price as text and nested categories;
#  - D has a buy_after_viewing list (not weighted by default: ignored);
#  - line 3 is malformed (unclosed dict), line 6 is blank, E has no related field.
A = {
    "asin": "A",
    "title": "Trail shoe",
    "description": "Light shoe",
    "price": 59.99,
    "brand": "Acme",
    "categories": [["Sports", "Running"], ["Sports", "Shoes"]],
    "related": {
        "bought_together": ["B"],
        "also_bought": ["B", "C", "Z"],
        "also_viewed": ["D", "D", "A"],
    },
    "salesRank": {"Sports & Outdoors": 1234},
    "imUrl": "http://example.com/a.jpg",
}
B = {"asin": "B", "title": "Socks", "related": {"also_bought": ["A"], "also_viewed": ["C"]}}
C = {"asin": "C", "title": "Laces", "price": "4.50", "brand": "", "categories": [["Sports"]]}
D = {
    "asin": "D",
    "title": "Insoles",
    "related": {"buy_after_viewing": ["A"], "also_viewed": ["A"]},
}
E = {"asin": "E", "title": "Water bottle", "description": "Keeps it cold", "categories": []}
LINES = [repr(A), repr(B), "{'asin': 'BAD', 'title': 'oops'", repr(C), repr(D), "", repr(E)]


@pytest.fixture
def meta_gz(tmp_path):
    return _write(tmp_path / "meta_Test.json.gz", LINES)


def _weights(ds):
    """{(query asin, related asin): weight} from a Dataset."""
    x = ds.interactions
    q = x.user_map.to_raw(x.user_ids)
    r = x.item_map.to_raw(x.item_ids)
    return {(a, b): round(float(w), 6) for a, b, w in zip(q, r, x.weights)}


def _both(pairs):
    out = {}
    for (a, b), w in pairs.items():
        out[(a, b)] = out[(b, a)] = w
    return out


def test_malformed_line_raises_with_line_number(meta_gz):
    with pytest.raises(AmazonMetadataError) as e:
        load_amazon_products(meta_gz)
    msg = str(e.value)
    assert f"{meta_gz}:3:" in msg and "malformed" in msg and "on_error='skip'" in msg


def test_pairs_weights_and_counts(meta_gz):
    ds = load_amazon_products(meta_gz, on_error="skip")
    assert ds.name == "amazon-products" and ds.user_metadata is None
    x = ds.interactions
    assert x.user_map is x.item_map
    assert list(x.item_map.raw_ids) == ["A", "B", "C", "D", "E"]
    assert x.ratings is None and x.timestamps is None and x.weights.dtype == np.float32
    assert _weights(ds) == _both(
        {("A", "B"): 2.2, ("A", "C"): 1.0, ("A", "D"): 0.5, ("B", "C"): 0.5}
    )
    # Query product A's positives are the products related to it, with the summed weights.
    dense = x.csr.toarray()
    np.testing.assert_allclose(dense, dense.T)
    np.testing.assert_allclose(dense[0], [0, 2.2, 1.0, 0.5, 0], rtol=1e-6)
    # Rows sorted by (query, related).
    assert np.all(np.diff(x.user_ids.astype(np.int64) * 5 + x.item_ids) > 0)
    info = ds.info
    assert info["num_lines"] == 7 and info["num_blank_lines"] == 1
    assert info["num_malformed_lines"] == 1 and info["malformed_lines"] == [3]
    assert info["num_products"] == 5
    assert info["num_unknown_products"] == 1
    assert info["num_unknown_listings"] == {
        "bought_together": 0,
        "also_bought": 1,
        "also_viewed": 0,
    }
    assert info["num_self_listings"] == {"bought_together": 0, "also_bought": 0, "also_viewed": 1}
    assert info["num_listings"] == {"bought_together": 1, "also_bought": 4, "also_viewed": 5}
    assert info["num_ignored_listings"] == {"buy_after_viewing": 1}
    assert info["num_pairs_per_relationship"] == {
        "bought_together": 1,
        "also_bought": 2,
        "also_viewed": 2,
    }
    assert info["num_pairs"] == 4 and info["num_interactions"] == 8
    assert info["num_products_without_pairs"] == 1  # E


def test_item_metadata(meta_gz):
    ds = load_amazon_products(meta_gz, on_error="skip")
    meta = ds.item_metadata
    assert list(meta.columns) == list(AMAZON_ITEM_COLUMNS)
    assert meta.index.name == "asin"
    np.testing.assert_array_equal(meta.index.to_numpy(), ds.interactions.item_map.raw_ids)
    assert meta.loc["A", "title"] == "Trail shoe" and meta.loc["A", "brand"] == "Acme"
    assert meta.loc["A", "categories"] == ["Sports", "Running", "Shoes"]  # flattened, unique
    assert meta.loc["A", "price"] == pytest.approx(59.99)
    assert meta["price"].dtype == np.float64
    # Missing price / brand / description / categories.
    assert np.isnan(meta.loc["B", "price"])
    assert meta.loc["B", "brand"] is None and meta.loc["C", "brand"] is None  # "" -> None
    assert meta.loc["B", "description"] == "" and meta.loc["B", "categories"] == []
    assert meta.loc["C", "price"] == 4.5
    assert meta.loc["E", "categories"] == []
    assert ds.info["price_coverage"] == pytest.approx(2 / 5)
    assert ds.info["brand_coverage"] == pytest.approx(1 / 5)
    assert ds.info["description_coverage"] == pytest.approx(2 / 5)


def test_keep_unknown_products(meta_gz):
    ds = load_amazon_products(meta_gz, on_error="skip", keep_unknown_products=True)
    assert list(ds.interactions.item_map.raw_ids) == ["A", "B", "C", "D", "E", "Z"]
    w = _weights(ds)
    assert w[("A", "Z")] == 1.0 and w[("Z", "A")] == 1.0
    assert w[("A", "B")] == 2.2
    z = ds.item_metadata.loc["Z"]
    assert z["title"] == "" and z["description"] == "" and z["brand"] is None
    assert z["categories"] == [] and np.isnan(z["price"])
    assert ds.info["num_unknown_products"] == 1
    np.testing.assert_array_equal(
        ds.item_metadata.index.to_numpy(), ds.interactions.item_map.raw_ids
    )


def test_relationship_weights(meta_gz):
    ds = load_amazon_products(
        meta_gz,
        on_error="skip",
        relationship_weights={"also_viewed": 2.0, "buy_after_viewing": 1.0},
    )
    assert _weights(ds) == _both({("A", "D"): 3.0, ("B", "C"): 2.0})
    # A weight of 0 switches a relationship off.
    ds = load_amazon_products(
        meta_gz, on_error="skip", relationship_weights={"bought_together": 1.0, "also_viewed": 0}
    )
    assert _weights(ds) == _both({("A", "B"): 1.0})
    with pytest.raises(AmazonMetadataError, match="unknown relationship 'also_bougth'"):
        load_amazon_products(meta_gz, relationship_weights={"also_bougth": 1.0})
    with pytest.raises(AmazonMetadataError, match=">= 0"):
        load_amazon_products(meta_gz, relationship_weights={"also_bought": -1.0})


def test_max_lines(meta_gz):
    ds = load_amazon_products(meta_gz, max_lines=2)  # A and B only; the bad line is not read
    assert list(ds.interactions.item_map.raw_ids) == ["A", "B"]
    assert _weights(ds) == _both({("A", "B"): 2.2})
    assert ds.info["num_lines"] == 2 and ds.info["num_unknown_products"] == 3  # C, D, Z


@pytest.mark.parametrize(
    "line, reason",
    [
        ("['not', 'a', 'dict']", "expected a dict"),
        ("{'title': 'no asin'}", "'asin'"),
        ("{'asin': 'X', 'related': ['A']}", "'related'"),
        ("{'asin': 'X', 'related': {'also_bought': 'A'}}", "related.also_bought"),
        ("{'asin': 'X', 'categories': 'Sports'}", "'categories'"),
        ("{'asin': 'X', 'price': 'cheap'}", "'price'"),
        ("{'asin': 'X', 'title': {'a': 1}}", "'title'"),
    ],
)
def test_malformed_structures(tmp_path, line, reason):
    path = _write(tmp_path / "m.json.gz", [repr(E), line])
    with pytest.raises(AmazonMetadataError, match=reason) as e:
        load_amazon_products(path)
    assert ":2:" in str(e.value)
    assert load_amazon_products(path, on_error="skip").info["malformed_lines"] == [2]


def test_code_in_a_line_is_never_executed(tmp_path):
    sentinel = tmp_path / "pwned"
    line = f"__import__('pathlib').Path({str(sentinel)!r}).touch()"
    path = _write(tmp_path / "evil.json.gz", [repr(E), line])
    with pytest.raises(AmazonMetadataError, match="neither JSON nor a Python literal"):
        load_amazon_products(path)
    assert not sentinel.exists()


def test_plain_text_and_json_style_lines(tmp_path):
    # Double-quoted lines are Python literals too; an uncompressed copy is read as well.
    lines = ['{"asin": "P", "related": {"also_bought": ["Q"]}}', repr({"asin": "Q"})]
    ds = load_amazon_products(_write(tmp_path / "meta.json", lines))
    assert _weights(ds) == _both({("P", "Q"): 1.0})


def test_duplicate_product_lines(tmp_path):
    first = {"asin": "A", "title": "first", "related": {"also_bought": ["B"]}}
    again = {"asin": "A", "title": "second", "related": {"also_viewed": ["B"]}}
    path = _write(tmp_path / "dup.json.gz", [repr(first), repr({"asin": "B"}), repr(again)])
    ds = load_amazon_products(path)
    assert ds.item_metadata.loc["A", "title"] == "first"  # metadata from the first line
    assert _weights(ds) == _both({("A", "B"): 1.5})  # relations from both lines
    assert ds.info["num_duplicate_products"] == 1


def test_errors_for_missing_file_and_empty_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="download_amazon_metadata"):
        load_amazon_products(tmp_path / "nope.json.gz")
    with pytest.raises(AmazonMetadataError, match=r"empty.json.gz: the file is empty"):
        load_amazon_products(_write(tmp_path / "empty.json.gz", [""]))
    with pytest.raises(AmazonMetadataError, match="on_error"):
        load_amazon_products(_write(tmp_path / "x.json.gz", [repr(E)]), on_error="ignore")


def test_matches_brute_force_reference(tmp_path):
    """Random catalogue vs sets built in plain Python from the same records."""
    rng = np.random.default_rng(7)
    asins = [f"P{i:03d}" for i in range(40)]
    pool = asins + ["U1", "U2", "U3"]  # U*: no metadata line
    weights = {"bought_together": 1.2, "also_bought": 1.0, "also_viewed": 0.5}
    records = []
    for a in asins:
        related = {
            rel: [pool[j] for j in rng.integers(0, len(pool), rng.integers(0, 6))]
            for rel in weights
            if rng.random() < 0.8
        }
        records.append({"asin": a, "related": related})
    path = _write(tmp_path / "r.json.gz", [repr(r) for r in records])
    for keep in (False, True):
        ds = load_amazon_products(path, keep_unknown_products=keep)
        allowed = set(pool) if keep else set(asins)
        linked = {rel: set() for rel in weights}
        for r in records:
            for rel, listed in r["related"].items():
                for b in listed:
                    if b in allowed and b != r["asin"]:
                        linked[rel].add(frozenset((r["asin"], b)))
        expected = {}
        for rel, pairs in linked.items():
            for p in pairs:
                a, b = sorted(p)
                expected[(a, b)] = expected.get((a, b), 0.0) + weights[rel]
        expected = _both({k: round(v, 6) for k, v in expected.items()})
        got = {k: round(v, 5) for k, v in _weights(ds).items()}
        assert got == {k: round(v, 5) for k, v in expected.items()}
        assert ds.info["num_pairs"] == len(expected) // 2


def test_pair_groups_tie_both_directions(meta_gz):
    x = load_amazon_products(meta_gz, on_error="skip").interactions
    groups = pair_groups(x)
    assert groups.shape == (len(x),) and len(np.unique(groups)) == len(x) // 2
    by_pair = {}
    for u, i, g in zip(x.user_ids, x.item_ids, groups):
        by_pair.setdefault(frozenset((int(u), int(i))), set()).add(int(g))
    assert all(len(g) == 1 for g in by_pair.values()) and len(by_pair) == 4


# ---------------------------------------------------------------------------- download
@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a URL fails as it does offline; records the URLs tried."""
    tried = []

    def offline(request, *args, **kwargs):
        tried.append(getattr(request, "full_url", request))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.delenv(_cache.NO_DOWNLOAD_ENV, raising=False)
    return tried


def test_url_pattern():
    assert amazon_metadata_url("Musical_Instruments") == (
        "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"
        "meta_Musical_Instruments.json.gz"
    )
    for bad in ("../etc", "Musical Instruments", ""):
        with pytest.raises(AmazonMetadataError, match="category"):
            download_amazon_metadata(bad)


def test_download_offline_explains(tmp_path, no_network):
    with pytest.raises(_cache.DataUnavailableError) as e:
        download_amazon_metadata("Baby", tmp_path)
    msg = str(e.value)
    assert no_network == [amazon_metadata_url("Baby")]
    assert "URLError" in msg and "meta_Baby.json.gz" in msg and "offline" in msg
    assert not list(tmp_path.iterdir())  # no partial file left behind


def test_download_writes_verifies_and_then_uses_cache(tmp_path, monkeypatch, no_network):
    payload = gzip.compress((repr(E) + "\n").encode())
    digest = hashlib.sha256(payload).hexdigest()

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Response(payload))
    with pytest.raises(_cache.DataUnavailableError, match="checksum mismatch"):
        download_amazon_metadata("Baby", tmp_path, sha256="0" * 64)
    assert not (tmp_path / "meta_Baby.json.gz").exists()
    path = download_amazon_metadata("Baby", tmp_path, sha256=digest)
    assert path == tmp_path / "meta_Baby.json.gz" and path.read_bytes() == payload
    assert load_amazon_products(path).info["num_products"] == 1
    # Now cached: found without the network, even with downloads off.
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network used"))
    assert download_amazon_metadata("Baby", tmp_path, download=False, sha256=digest) == path


def test_downloads_switched_off(tmp_path, monkeypatch, no_network):
    with pytest.raises(_cache.DataUnavailableError, match=r"download=False"):
        download_amazon_metadata("Baby", tmp_path, download=False)
    monkeypatch.setenv(_cache.NO_DOWNLOAD_ENV, "1")
    with pytest.raises(_cache.DataUnavailableError, match=_cache.NO_DOWNLOAD_ENV):
        download_amazon_metadata("Baby", tmp_path)
    assert no_network == []


def test_default_destination_is_the_data_home(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv(_cache.DATA_ENV, str(tmp_path / "home"))
    with pytest.raises(_cache.DataUnavailableError, match=str(tmp_path / "home" / "amazon")):
        download_amazon_metadata("Baby")


def _random_catalogue(tmp_path, n=60, seed=11):
    rng = np.random.default_rng(seed)
    asins = [f"P{i:03d}" for i in range(n)]
    lines = [
        repr({"asin": a, "related": {"also_bought": [asins[j] for j in rng.integers(0, n, 4)]}})
        for a in asins
    ]
    return load_amazon_products(_write(tmp_path / "cat.json.gz", lines)).interactions


def test_pair_split_keeps_both_directions_together(tmp_path):
    x = _random_catalogue(tmp_path)
    labels = pair_split_labels(x, test_p=0.2, val_p=0.1, seed=3)
    by_pair = {}
    for u, i, lab in zip(x.user_ids, x.item_ids, labels):
        by_pair.setdefault(frozenset((int(u), int(i))), set()).add(lab)
    assert all(len(v) == 1 for v in by_pair.values())
    n_pairs = len(by_pair)
    test_pairs = sum(v == {"test"} for v in by_pair.values())
    val_pairs = sum(v == {"val"} for v in by_pair.values())
    assert (test_pairs, val_pairs) == (math.ceil(0.2 * n_pairs), math.ceil(0.1 * n_pairs))
    train, val, test = split_from_column(x, labels)
    assert len(train) + len(val) + len(test) == len(x)
    # Deterministic given the seed, different across seeds.
    np.testing.assert_array_equal(labels, pair_split_labels(x, test_p=0.2, val_p=0.1, seed=3))
    assert (labels != pair_split_labels(x, test_p=0.2, val_p=0.1, seed=4)).any()


def test_product_split_keeps_held_out_products_out_of_training(tmp_path):
    x = _random_catalogue(tmp_path)
    labels = pair_split_labels(x, test_p=0.2, val_p=0.1, by="product", seed=5)
    train = labels == "train"
    test_products = set(x.user_ids[labels == "test"]) | set(x.item_ids[labels == "test"])
    train_products = set(x.user_ids[train]) | set(x.item_ids[train])
    val_only = (
        set(x.user_ids[labels == "val"]) | set(x.item_ids[labels == "val"])
    ) - train_products
    held_out = (test_products - train_products) | val_only
    present = np.flatnonzero(x.user_counts() + x.item_counts())
    expected = math.ceil(0.2 * len(present)) + math.ceil(0.1 * len(present))
    assert len(held_out) == expected
    # Every row touching a held-out product is out of training, on either side.
    for u, i, lab in zip(x.user_ids, x.item_ids, labels):
        if int(u) in held_out or int(i) in held_out:
            assert lab != "train"
    with pytest.raises(AmazonMetadataError, match="by must be"):
        pair_split_labels(x, test_p=0.2, by="user")
    with pytest.raises(AmazonMetadataError, match="test_p"):
        pair_split_labels(x, test_p=0.7, val_p=0.3)
