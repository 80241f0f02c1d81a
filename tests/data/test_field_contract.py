"""Contract test for every field kind in ``hybridrec/data/fields``.

The kinds are *discovered* (``hybridrec.data.fields.available_kinds``), and each is exercised
through the ``FeatureEncoder`` on its own module's ``example(rng) -> FieldExample``: a new
``fields/<kind>.py`` is tested here without new test code.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from hybridrec.data import fields
from hybridrec.data.features import (
    FeatureEncoder,
    FeatureError,
    FieldInfo,
    FieldOptionError,
    FieldSpec,
    coverage_table,
    kind_options,
)

KINDS = fields.available_kinds()
NAME = "f"


def _example(kind: str, seed: int = 0) -> fields.FieldExample:
    module = importlib.import_module(f"hybridrec.data.fields.{kind}")
    return module.example(np.random.default_rng(seed))


def _fit(kind: str, seed: int = 0) -> tuple[FeatureEncoder, fields.FieldExample]:
    ex = _example(kind, seed)
    spec = FieldSpec(NAME, entity=ex.entity, kind=kind, **ex.options)
    encoder = FeatureEncoder([spec]).fit(
        **{f"{ex.entity}_metadata": ex.train}, interactions=ex.interactions
    )
    return encoder, ex


def _row(feats, row: int) -> dict[str, np.ndarray]:
    return {k: np.asarray(v[row]) for k, v in feats.items()}


# ---------------------------------------------------------------------------------------------
# The contract, for every discovered kind


def test_the_builtin_kinds_are_discovered():
    assert {"categorical", "numeric", "text", "vector", "history"} <= set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_module_declares_encoder_and_example(kind):
    module = importlib.import_module(f"hybridrec.data.fields.{kind}")
    assert isinstance(getattr(module, "Encoder", None), type), f"fields/{kind}.py has no Encoder"
    assert callable(getattr(module, "example", None)), f"fields/{kind}.py has no example()"
    assert fields.load(kind) is module.Encoder
    for method in ("fit", "transform", "info", "state", "load_state"):
        assert callable(getattr(module.Encoder, method, None)), f"{kind}.Encoder.{method}"
    # Every option has a default, so FieldSpec(name, kind=kind) alone is a valid field.
    assert all(v is not inspect.Parameter.empty for v in kind_options(kind).values())


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_dtypes_and_field_info(kind):
    encoder, ex = _fit(kind)
    info = encoder.fields(ex.entity)[NAME]
    assert isinstance(info, FieldInfo) and info == encoder.field_info(NAME)
    assert (info.name, info.entity, info.kind) == (NAME, ex.entity, kind)
    assert info.vocab_size > 0 or info.dim > 0, "a field must produce bag or dense arrays"
    for frame in (ex.train, ex.test):
        feats = encoder.transform(ex.entity, frame)
        n = len(frame)
        assert set(feats.keys()) == set(info.keys), (sorted(feats.keys()), info.keys)
        assert feats.fields == {NAME: info}
        assert set(feats.stats[NAME]) >= {"missing", "unknown", "truncated"}
        if info.vocab_size:
            ids, weights = feats[f"{NAME}/ids"], feats[f"{NAME}/weights"]
            lengths = feats[f"{NAME}/lengths"]
            assert ids.shape == (n, info.width) and ids.dtype == np.int32
            assert weights.shape == (n, info.width) and weights.dtype == np.float32
            assert lengths.shape == (n,) and lengths.dtype == np.int32
            assert ids.min() >= 0 and ids.max() < info.vocab_size
            assert np.all(np.isfinite(weights)) and np.all(weights[ids == 0] == 0)
            np.testing.assert_array_equal(lengths, (ids > 0).sum(axis=1))
            # Entries first, then padding.
            assert np.all(np.diff((ids > 0).astype(int), axis=1) <= 0)
        if info.dim:
            dense = feats[NAME]
            assert dense.shape == (n, info.dim) and dense.dtype == np.float32
            assert np.all(np.isfinite(dense))
            assert set(np.unique(dense[:, -1])) <= {0.0, 1.0}, "last column: missing indicator"


@pytest.mark.parametrize("kind", KINDS)
def test_expected_rows_missing_and_unseen_values(kind):
    encoder, ex = _fit(kind)
    info = encoder.field_info(NAME)
    feats = encoder.transform(ex.entity, ex.test)
    for row, expected in ex.expected.items():
        for key, want in expected.items():
            np.testing.assert_allclose(feats[key][row], want, rtol=1e-6, err_msg=f"{key}[{row}]")
    assert feats.stats[NAME]["missing"] == len(ex.missing)
    assert len(ex.missing) >= 1, "the example must have a missing value"
    first = _row(feats, ex.missing[0])
    for row in ex.missing[1:]:  # one encoding for "missing", however it is spelled
        for key, value in _row(feats, row).items():
            np.testing.assert_array_equal(value, first[key], err_msg=f"{key}[{row}]")
    if info.dim:
        assert feats[NAME][ex.missing, -1].tolist() == [1.0] * len(ex.missing)
        np.testing.assert_array_equal(feats[NAME][ex.missing, :-1], 0.0)
    present = [r for r in range(len(ex.test)) if r not in ex.missing and r not in ex.unseen]
    assert present, "the example must have a row with a training value"
    for row in present:  # a model can tell a missing value from a present one
        assert any(not np.array_equal(v, first[k]) for k, v in _row(feats, row).items()), (
            f"row {row} is encoded as missing"
        )


@pytest.mark.parametrize("kind", KINDS)
def test_rows_are_independent(kind):
    encoder, ex = _fit(kind)
    whole = encoder.transform(ex.entity, ex.test)
    perm = np.random.default_rng(1).permutation(len(ex.test))
    permuted = encoder.transform(ex.entity, ex.test.iloc[perm])
    for row in range(len(ex.test)):
        alone = encoder.transform(ex.entity, ex.test.iloc[[row]])
        for key in whole.keys():
            np.testing.assert_array_equal(alone[key][0], whole[key][row], err_msg=key)
    for key in whole.keys():
        np.testing.assert_array_equal(permuted[key], whole[key][perm], err_msg=key)


@pytest.mark.parametrize("kind", KINDS)
def test_fit_is_deterministic(kind):
    (a, ex), (b, _) = _fit(kind), _fit(kind)
    fa, fb = a.transform(ex.entity, ex.test), b.transform(ex.entity, ex.test)
    for key in fa.keys():
        np.testing.assert_array_equal(fa[key], fb[key], err_msg=key)
    assert a.fit_stats == b.fit_stats


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip_gives_identical_arrays(kind, tmp_path):
    encoder, ex = _fit(kind)
    encoder.save(tmp_path)
    json.loads((tmp_path / "features.json").read_text())  # plain JSON
    np.load(tmp_path / "features.npz", allow_pickle=False).close()  # no pickled objects
    loaded = FeatureEncoder.load(tmp_path)
    assert loaded.schema.fields == encoder.schema.fields
    assert loaded.fields(ex.entity) == encoder.fields(ex.entity)
    for frame in (ex.train, ex.test):
        before, after = encoder.transform(ex.entity, frame), loaded.transform(ex.entity, frame)
        assert before.keys() == after.keys()
        for key in before.keys():
            np.testing.assert_array_equal(before[key], after[key], err_msg=key)
            assert before[key].dtype == after[key].dtype


@pytest.mark.parametrize("kind", KINDS)
def test_options_resolve_round_trip_and_unknown_ones_are_errors(kind):
    ex = _example(kind)
    spec = FieldSpec(NAME, entity=ex.entity, kind=kind, **ex.options)
    assert set(spec.options) == set(kind_options(kind))
    for option, value in spec.options.items():
        assert getattr(spec, option) == value
    again = FieldSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and hash(again) == hash(spec)
    with pytest.raises(FieldOptionError, match=rf"FieldSpec '{NAME}'.*no_such_option"):
        FieldSpec(NAME, entity=ex.entity, kind=kind, no_such_option=1, **ex.options)


@pytest.mark.parametrize("kind", KINDS)
def test_coverage_table_has_a_row(kind):
    encoder, ex = _fit(kind)
    feats = encoder.transform(ex.entity, ex.test)
    table = coverage_table(encoder, {ex.entity: feats})
    (row,) = [line for line in table.splitlines() if line.startswith(f"| {NAME} |")]
    covered = 1 - len(ex.missing) / len(ex.test)
    assert f"| {covered:.1%} |" in row


# ---------------------------------------------------------------------------------------------
# A researcher's own kind, by dotted path


def test_a_kind_from_a_dotted_path(tmp_path, monkeypatch):
    (tmp_path / "my_lab").mkdir()
    (tmp_path / "my_lab" / "__init__.py").write_text("")
    (tmp_path / "my_lab" / "kinds.py").write_text(
        textwrap.dedent(
            '''
            import numpy as np
            from hybridrec.data.fields import FieldEncoder, FeatureError

            class Encoder(FieldEncoder):
                """Length of a string, scaled."""

                def __init__(self, *, name, entity, columns, kind, scale=1.0):
                    super().__init__(name=name, entity=entity, columns=columns, kind=kind)
                    if scale <= 0:
                        raise FeatureError(f"{self.spec_where}: scale must be > 0")
                    self.scale = scale

                def fit(self, frame):
                    return self.transform(frame)[1]

                def transform(self, frame):
                    values = frame[self.column]
                    missing = values.isna().to_numpy()
                    lengths = values.fillna("").str.len().to_numpy() / self.scale
                    out = np.stack([lengths, missing], axis=1).astype(np.float32)
                    return {self.name: out}, {"missing": int(missing.sum()), "unknown": 0,
                                              "truncated": 0}

                def info(self):
                    return self.field_info(dim=2)

                def state(self):
                    return {}, {}

                def load_state(self, state, arrays):
                    pass
            '''
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in ("my_lab", "my_lab.kinds"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    spec = FieldSpec("title", kind="my_lab.kinds", scale=2.0)
    assert spec.scale == 2.0
    items = pd.DataFrame({"title": ["abcd", None, "ab"]})
    encoder = FeatureEncoder([spec]).fit(item_metadata=items)
    np.testing.assert_array_equal(
        encoder.transform("item", items)["title"], [[2, 0], [0, 1], [1, 0]]
    )
    encoder.save(tmp_path / "enc")
    np.testing.assert_array_equal(
        FeatureEncoder.load(tmp_path / "enc").transform("item", {"title": "abcdef"})["title"],
        [[3, 0]],
    )
    with pytest.raises(FeatureError, match="scale must be > 0"):
        FieldSpec("title", kind="my_lab.kinds", scale=0)
    with pytest.raises(FieldOptionError, match=r"unknown option\(s\) \['min_count'\]"):
        FieldSpec("title", kind="my_lab.kinds", min_count=2)


# ---------------------------------------------------------------------------------------------
# Kind-specific checks


def test_a_vector_field_is_read_by_the_numeric_tower():
    from flax import nnx

    from hybridrec import towers

    encoder, ex = _fit("vector")
    feats = encoder.transform(ex.entity, ex.test)
    tower = towers.build(
        "numeric", field=NAME, output_dim=3, rngs=nnx.Rngs(0), features_info=feats.fields[NAME]
    )
    out = np.asarray(tower(feats.gather(np.arange(len(ex.test)))))
    assert out.shape == (len(ex.test), 3) and np.all(np.isfinite(out))
    # The missing rows (all zeros, indicator 1) share one output.
    np.testing.assert_allclose(out[ex.missing], np.repeat(out[ex.missing[:1]], len(ex.missing), 0))


def test_vector_from_several_columns_standardized_and_bad_input():
    items = pd.DataFrame({"a": [1.0, 3.0, np.nan, 5.0], "b": [0.0, 0.0, 1.0, 0.0]})
    spec = FieldSpec("v", kind="vector", column=("a", "b"), standardize=True)
    enc = FeatureEncoder([spec]).fit(item_metadata=items)
    out = enc.transform("item", items)["v"]
    assert enc.field_info("v").dim == 3
    # Present rows 0, 1, 3: a has mean 3, std sqrt(8/3); b is constant 0 (divided by 1).
    np.testing.assert_allclose(out[:, 0], [-2 / np.sqrt(8 / 3), 0, 0, 2 / np.sqrt(8 / 3)], 1e-6)
    np.testing.assert_array_equal(out[:, 1:], [[0, 0], [0, 0], [0, 1], [0, 0]])
    lists = pd.DataFrame({"e": pd.Series([[1.0, 2.0], [1.0, 2.0, 3.0]], dtype=object)})
    with pytest.raises(FeatureError, match=r"row 1 \(ID 1\) has a vector of length 3, expected 2"):
        FeatureEncoder([FieldSpec("e", kind="vector")]).fit(item_metadata=lists)
    words = pd.DataFrame({"e": pd.Series([[1.0, 2.0], "x y"], dtype=object)})
    with pytest.raises(FeatureError, match=r"vector field 'e' .*row 1 \(ID 1\) holds str"):
        FeatureEncoder([FieldSpec("e", kind="vector")]).fit(item_metadata=words)
    with pytest.raises(FeatureError, match="no vector to fit"):
        FeatureEncoder([FieldSpec("e", kind="vector")]).fit(
            item_metadata=pd.DataFrame({"e": [None, None]})
        )
