"""Contract test for every tower module in ``hybridrec/towers``, plus reference checks per tower.

The towers are *discovered* (``hybridrec.towers.available_towers``), and each is built from its
own module's ``example(batch_size, rng) -> (kwargs, batch)``: a new ``towers/<name>.py`` is
tested here without new test code.
"""

import functools
import importlib
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hybridrec import towers
from hybridrec.towers import TowerError
from hybridrec.variables import Bias, Embedding

TOWERS = towers.available_towers()
B = 6


def make(name: str, seed: int = 0):
    """Builds tower ``name`` from its module's example; returns (tower, numpy batch)."""
    module = importlib.import_module(f"hybridrec.towers.{name}")
    kwargs, batch = module.example(B, np.random.default_rng(seed))
    tower = towers.build(name, rngs=nnx.Rngs(seed), **kwargs)
    return tower, {k: np.asarray(v) for k, v in batch.items()}


# Towers run through one jitted function: a single compilation per tower and batch shape is
# much cheaper on CPU than compiling each eager op.
@functools.partial(jax.jit, static_argnums=0)
def _apply(graphdef, state, batch):
    return nnx.merge(graphdef, state)(batch)


def apply(tower, batch) -> np.ndarray:
    """``tower(batch)`` under ``jax.jit`` over the split state (as the trainer runs it)."""
    graphdef, state = nnx.split(tower)
    return np.asarray(_apply(graphdef, state, batch))


@functools.partial(jax.jit, static_argnums=0)
def _grads(graphdef, params, rest, batch, direction):
    def loss(params):
        return jnp.sum(nnx.merge(graphdef, params, rest)(batch) * direction)

    return jax.grad(loss)(params)


def grads(tower, batch, direction=None):
    """Gradient of ``sum(tower(batch) * direction)`` w.r.t. the tower's ``nnx.Param`` state."""
    graphdef, params, rest = nnx.split(tower, nnx.Param, ...)
    if direction is None:
        direction = np.ones((len(next(iter(batch.values()))), tower.output_dim), np.float32)
    return _grads(graphdef, params, rest, batch, direction)


def bag_keys(tower) -> list[tuple[str, str | None]]:
    """(ids key, weights key or None) of the bag inputs a tower reads."""
    out = []
    for key in tower.reads:
        if key.endswith("/ids"):
            weights = key[: -len("/ids")] + "/weights"
            out.append((key, weights if weights in tower.reads else None))
    return out


# ---------------------------------------------------------------------------------------------
# The contract, for every discovered tower


def test_the_builtin_towers_are_discovered():
    assert {"ids", "categorical", "numeric", "text"} <= set(TOWERS)


@pytest.mark.parametrize("name", TOWERS)
def test_module_declares_tower_and_example(name):
    module = importlib.import_module(f"hybridrec.towers.{name}")
    assert isinstance(getattr(module, "Tower", None), type), f"towers/{name}.py has no Tower class"
    assert callable(getattr(module, "example", None)), f"towers/{name}.py has no example()"
    assert towers.load(name) is module.Tower


@pytest.mark.parametrize("name", TOWERS)
def test_output_shape_finite_and_reads_only_declared_keys(name):
    tower, batch = make(name)
    assert isinstance(tower.reads, tuple) and tower.reads
    assert isinstance(tower.output_dim, int) and tower.output_dim >= 1
    out = apply(tower, batch)
    assert out.shape == (B, tower.output_dim)
    assert np.all(np.isfinite(out))
    # A batch holding only the declared keys gives the same output: `reads` is honest.
    only = {k: v for k, v in batch.items() if k in tower.reads}
    np.testing.assert_allclose(apply(tower, only), out, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", TOWERS)
def test_rows_are_independent(name):
    tower, batch = make(name)
    perm = np.random.default_rng(1).permutation(B)
    permuted = {k: v[perm] for k, v in batch.items()}
    np.testing.assert_allclose(
        apply(tower, permuted), apply(tower, batch)[perm], rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("name", TOWERS)
def test_jit_over_split_state_matches_eager(name):
    tower, batch = make(name)
    eager = tower({k: jnp.asarray(v) for k, v in batch.items()})
    np.testing.assert_allclose(apply(tower, batch), eager, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", TOWERS)
def test_gradients_reach_every_parameter(name):
    tower, batch = make(name)
    direction = np.random.default_rng(0).normal(size=(B, tower.output_dim)).astype(np.float32)
    leaves = jax.tree.leaves(grads(tower, batch, direction))
    assert leaves, f"tower {name} has no nnx.Param variables"
    for g in map(np.asarray, leaves):
        assert np.any(g != 0), f"tower {name}: a parameter gets no gradient"
        assert np.all(np.isfinite(g))


@pytest.mark.parametrize("name", TOWERS)
def test_padding_slots_contribute_nothing(name):
    tower, batch = make(name)
    bags = bag_keys(tower)
    if not bags:
        pytest.skip(f"tower {name} reads no bag inputs")
    padded = dict(batch)
    for ids_key, weights_key in bags:
        padded[ids_key] = np.pad(batch[ids_key], ((0, 0), (0, 3)))  # id 0 = padding
        if weights_key is not None:
            # Even a non-zero weight on a padding slot must not count.
            padded[weights_key] = np.pad(batch[weights_key], ((0, 0), (0, 3)), constant_values=3.7)
    np.testing.assert_allclose(apply(tower, padded), apply(tower, batch), rtol=1e-5, atol=1e-6)


def test_bad_tower_name_lists_the_towers():
    with pytest.raises(TowerError) as err:
        towers.build("imagee", output_dim=8, rngs=nnx.Rngs(0))
    for name in TOWERS:
        assert name in str(err.value)
    with pytest.raises(TowerError, match="available towers"):
        towers.build("no_such_pkg.tower", output_dim=8, rngs=nnx.Rngs(0))
    with pytest.raises(TowerError, match="bad tower name"):
        towers.build("../ids", output_dim=8, rngs=nnx.Rngs(0))


def test_unknown_option_is_an_error_naming_the_accepted_ones():
    kwargs = dict(field="genres", features_info=dict(vocab_size=5), output_dim=8, rngs=nnx.Rngs(0))
    with pytest.raises(TowerError, match="pooling"):
        towers.build("categorical", poolng="sum", **kwargs)


def test_a_researchers_own_tower_by_dotted_path(tmp_path, monkeypatch):
    pkg = tmp_path / "my_towers"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "scaled.py").write_text(
        "from flax import nnx\n"
        "import jax.numpy as jnp\n"
        "class Tower(nnx.Module):\n"
        "    def __init__(self, *, field, output_dim, rngs, scale=2.0):\n"
        "        self.w = nnx.Param(jnp.ones((output_dim,)) * scale)\n"
        "        self.field, self.reads, self.output_dim = field, (field,), output_dim\n"
        "    def __call__(self, batch):\n"
        "        return batch[self.field][:, None] * self.w[...]\n"
    )
    (pkg / "broken.py").write_text("import not_installed_dependency\nclass Tower: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # Context the tower does not name (num_entities, features_info) is not passed to it.
    tower = towers.build(
        "my_towers.scaled",
        context=dict(num_entities=3, features_info=None),
        field="x",
        output_dim=3,
        rngs=nnx.Rngs(0),
        scale=0.5,
    )
    np.testing.assert_allclose(tower({"x": jnp.array([2.0, 4.0])}), [[1.0] * 3, [2.0] * 3])
    # A missing dependency *inside* the tower module is reported as such, not as a bad name.
    with pytest.raises(ModuleNotFoundError, match="not_installed_dependency"):
        towers.build("my_towers.broken", output_dim=3, rngs=nnx.Rngs(0))


# ---------------------------------------------------------------------------------------------
# Reference checks of the built-in towers


def bag_reference(table, ids, weights, pooling):
    """Numpy embedding bag, one loop per row (small test inputs)."""
    out = np.zeros((ids.shape[0], table.shape[1]))
    for b in range(ids.shape[0]):
        keep = ids[b] > 0
        w = weights[b][keep]
        pooled = (w[:, None] * table[ids[b][keep]]).sum(0)
        norm = {"sum": 1.0, "mean": w.sum(), "sqrtn": np.sqrt((w**2).sum())}[pooling]
        out[b] = pooled / norm if norm > 0 else pooled
    return out


def test_ids_tower_is_a_lookup_masked_by_known():
    # Sizes as in the modules' examples (and tests/models), so compiled inits are reused.
    tower = towers.build("ids", num_entities=11, output_dim=8, rngs=nnx.Rngs(0))
    assert type(tower.table) is Embedding and tower.table.shape == (11, 8)
    ids = np.array([4, 0, 4, 2, 10, 5], np.int32)
    known = np.array([1, 1, 0, 1, 1, 0], np.float32)
    table = np.asarray(tower.table[...])
    out = apply(tower, {"ids": ids, "known": known})
    np.testing.assert_allclose(out, table[ids] * known[:, None], rtol=1e-6)
    np.testing.assert_allclose(apply(tower, {"ids": ids}), table[ids], rtol=1e-6)

    # A cold entity's row gets no gradient from its cold occurrences.
    g = np.asarray(grads(tower, {"ids": ids, "known": known})["table"][...])
    assert np.all(g[5] == 0) and np.all(g[2] == 1.0) and np.all(g[4] == 1.0)


@pytest.mark.parametrize("pooling", ["mean", "sum", "sqrtn"])
def test_categorical_tower_matches_a_numpy_bag(pooling):
    tower = towers.build(
        "categorical",
        field="genres",
        features_info=dict(kind="categorical", vocab_size=6, width=3),
        output_dim=8,
        rngs=nnx.Rngs(1),
        pooling=pooling,
    )
    ids = np.array([[2, 3, 0], [1, 0, 0], [0, 0, 0], [5, 5, 4]], np.int32)
    weights = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0], [1, 1, 1]], np.float32)
    table = np.asarray(tower.table[...])
    assert np.all(table[0] == 0), "the padding row starts at zero"
    out = apply(tower, {"genres/ids": ids, "genres/weights": weights})
    np.testing.assert_allclose(out, bag_reference(table, ids, weights, pooling), rtol=1e-5)
    assert np.all(out[2] == 0), "an empty bag pools to zeros"


def test_categorical_unknown_bucket_is_learned_and_padding_is_not():
    tower = towers.build(
        "categorical", field="g", features_info=dict(vocab_size=6), output_dim=8, rngs=nnx.Rngs(0)
    )
    batch = {
        "g/ids": np.array([[1, 0], [3, 1]], np.int32),
        "g/weights": np.ones((2, 2), np.float32),
    }
    g = np.asarray(grads(tower, batch)["table"][...])
    assert np.all(g[0] == 0) and np.all(g[1] != 0) and np.all(g[2] == 0) and np.all(g[3] != 0)
    assert np.all(g[4:] == 0)


def test_text_tower_is_a_tfidf_weighted_sum():
    info = types.SimpleNamespace(kind="text", vocab_size=6, width=4, dim=0)  # attribute-style
    tower = towers.build("text", field="title", features_info=info, output_dim=8, rngs=nnx.Rngs(2))
    ids = np.array([[2, 4, 5, 0], [1, 0, 0, 0]], np.int32)
    weights = np.array([[0.6, 0.64, 0.48, 0.0], [1.0, 0.0, 0.0, 0.0]], np.float32)
    out = apply(tower, {"title/ids": ids, "title/weights": weights})
    table = np.asarray(tower.table[...])
    expected = (weights[:, :, None] * table[ids]).sum(1)  # padding row is zero
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-7)


def test_numeric_tower_linear_and_mlp():
    info = dict(kind="numeric", dim=2)
    linear = towers.build(
        "numeric", field="year", features_info=info, output_dim=8, rngs=nnx.Rngs(0)
    )
    x = np.array([[0.5, 0.0], [0.0, 1.0], [-1.2, 0.0]], np.float32)
    layer = linear.mlp.layers[0]
    expected = x @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...])
    np.testing.assert_allclose(apply(linear, {"year": x}), expected, rtol=1e-5, atol=1e-6)
    assert type(layer.bias) is nnx.Param and type(layer.kernel) is nnx.Param

    one_col = towers.build(
        "numeric", field="age", features_info=dict(dim=1), output_dim=8, rngs=nnx.Rngs(0)
    )
    assert apply(one_col, {"age": np.array([0.1, 0.2, 0.3], np.float32)}).shape == (3, 8)


def test_towers_use_typed_variables():
    for name in TOWERS:
        tower, _ = make(name)
        for _, var in nnx.to_flat_state(nnx.state(tower, nnx.Param)):
            # Tables are Embedding; everything else (dense layers) stays a plain Param.
            assert type(var) in (Embedding, Bias, nnx.Param)
            if type(var) is Embedding:
                assert var[...].ndim == 2


def test_field_metadata_errors_name_the_field():
    with pytest.raises(TowerError, match="'brand'.*vocab_size=0"):
        towers.build(
            "categorical",
            field="brand",
            features_info=types.SimpleNamespace(kind="numeric", vocab_size=0, width=0, dim=2),
            output_dim=8,
            rngs=nnx.Rngs(0),
        )
    with pytest.raises(TowerError, match="'price'.*dim=None"):
        towers.build(
            "numeric",
            field="price",
            features_info=dict(vocab_size=5),
            output_dim=8,
            rngs=nnx.Rngs(0),
        )
    with pytest.raises(TowerError, match="'price': no feature metadata"):
        towers.build("numeric", field="price", features_info=None, output_dim=8, rngs=nnx.Rngs(0))
    with pytest.raises(TowerError, match="unknown pooling"):
        towers.build(
            "text",
            field="t",
            features_info=dict(vocab_size=5),
            output_dim=8,
            rngs=nnx.Rngs(0),
            pooling="max",
        )


def test_history_tower_pools_sqrtn_and_is_masked_by_known():
    tower, batch = make("history")
    table = np.asarray(tower.table[...])
    ids, weights = batch["history/ids"], batch["history/weights"]
    # Reference: sum of the rows of the non-padding slots over sqrt(sum of squared weights).
    w = weights * (ids > 0)
    norm = np.sqrt((w * w).sum(1, keepdims=True))
    expected = np.where(
        norm > 0, np.einsum("bw,bwd->bd", w, table[ids]) / np.maximum(norm, 1e-30), 0
    )
    np.testing.assert_allclose(apply(tower, batch), expected, rtol=1e-5, atol=1e-6)
    # Interaction-derived like the ID tower: a user with known = 0 (cold or ID-dropped) gets zeros.
    known = np.array([1, 0, 1, 0, 1, 1], np.float32)
    out = apply(tower, {**batch, "known": known})
    np.testing.assert_allclose(out, expected * known[:, None], rtol=1e-5, atol=1e-6)
