"""Tests of the model contract for every model, of ID dropout, LightFM-as-hybrid, and learning.

Models are run through one jitted function per (model structure, method, shapes), as the trainer
runs them (``jax.jit`` over ``nnx.split`` state): on CPU that compiles far less than eager ops.
Sizes are tiny and shared between configs so parameter inits compile once per shape.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from hybridrec import models
from hybridrec.models import ModelError
from hybridrec.models.base import ITEM_KEY, USER_KEY, id_keep_mask
from hybridrec.models.hybrid import HybridModel
from hybridrec.models.mf import MatrixFactorization
from hybridrec.models.mlp import EmbeddingNN
from hybridrec.models.ncf import NeuMF
from hybridrec.towers.categorical import CategoricalTower
from hybridrec.towers.ids import IdTower
from hybridrec.towers.numeric import NumericTower
from hybridrec.variables import Bias, Embedding

NU, NI = 7, 11  # distinct from every vocabulary size, so tables indexed by entity are known
ITEM_INFO = {
    "genres": {"kind": "categorical", "vocab_size": 6, "width": 3},
    "release_year": {"kind": "numeric", "dim": 2},
    "title": {"kind": "text", "vocab_size": 6, "width": 4},
}
USER_INFO = {"age": {"kind": "numeric", "dim": 2}}


def _random_bag(rng, n, vocab_size, width, tfidf):
    lengths = rng.integers(1, width + 1, n)
    slots = np.arange(width)[None, :] < lengths[:, None]
    ids = np.where(slots, rng.integers(1, vocab_size, (n, width)), 0).astype(np.int32)
    raw = rng.uniform(0.1, 1.0, (n, width)) if tfidf else np.ones((n, width))
    return ids, np.where(slots, raw, 0.0).astype(np.float32)


# The planted structure of the learning tests: each user group likes one item block, and an
# item's first genre is its block's (ids 2 and 3); the other features are noise.
GROUP = np.arange(NU) * 2 // NU  # users 0-3 in group 0, 4-6 in group 1
BLOCK = np.arange(NI) * 2 // NI  # items 0-5 in block 0, 6-10 in block 1
COLD = np.array([5, 10])  # one held-out item per block, never trained
TRAIN_ITEMS = np.setdiff1d(np.arange(NI), COLD)


def _make_features(seed=0):
    rng = np.random.default_rng(seed)
    g_ids, g_w = _random_bag(rng, NI, 6, 3, tfidf=False)
    g_ids[:, 0], g_w[:, 0] = 2 + BLOCK, 1.0
    t_ids, t_w = _random_bag(rng, NI, 6, 4, tfidf=True)
    year = np.stack([rng.normal(size=NI), rng.random(NI) < 0.2], 1).astype(np.float32)
    age = np.stack([rng.normal(size=NU), np.zeros(NU)], 1).astype(np.float32)
    items = {
        "genres/ids": g_ids,
        "genres/weights": g_w,
        "release_year": year,
        "title/ids": t_ids,
        "title/weights": t_w,
    }
    return items, {"age": age}


ITEM_FEATURES, USER_FEATURES = _make_features()


def batch(features, ids, known=None):
    """An entity batch as the trainer gathers it (always with "known", one pytree structure)."""
    ids = np.asarray(ids, np.int32)
    known = np.ones(len(ids), np.float32) if known is None else np.asarray(known, np.float32)
    return {"ids": ids, "known": known, **{k: v[ids] for k, v in features.items()}}


ALL_ITEM_TOWERS = {
    "id": {"tower": "ids"},
    "genre": {"tower": "categorical", "field": "genres"},
    "year": {"tower": "numeric", "field": "release_year"},
    "title": {"tower": "text", "field": "title"},
}
USER_TOWERS = {"id": {"tower": "ids"}, "age": {"tower": "numeric", "field": "age"}}
LIGHTFM = dict(
    combiner="sum",
    user_bias=True,
    item_bias=True,
    user_towers={"id": {"tower": "ids"}},
    item_towers={
        "id": {"tower": "ids"},
        "genre": {"tower": "categorical", "field": "genres", "pooling": "sum", "bias": True},
        "title": {"tower": "text", "field": "title", "bias": True},
    },
)
HYBRID = dict(user_towers=USER_TOWERS, item_towers=ALL_ITEM_TOWERS)

# Small options shared by all configs (one width, D = 8), so that configs share parameter shapes
# and each random init compiles once.
SMALL = {
    "mf": dict(embedding_dim=8),
    "ncf": dict(embedding_dim=8, mlp_dims=(16, 8)),
    "mlp": dict(embedding_dim=8, hidden_dims=(8,), dropout=0.5, embedding_dropout=0.2),
    "two_tower": dict(
        embedding_dim=8,
        hidden_dims=(8,),
        user_towers={"age": {"tower": "numeric", "field": "age"}},
        item_towers={k: v for k, v in ALL_ITEM_TOWERS.items() if k != "id"},
    ),
    "hybrid": dict(embedding_dim=8, combiner_hidden=(8,)),
}
HYBRID = dict(SMALL["hybrid"], user_towers=USER_TOWERS, item_towers=ALL_ITEM_TOWERS)
SMALL["hybrid"] = dict(HYBRID, id_dropout=0.3, user_id_dropout=0.2)

# Every discovered model (so a new model file is covered, with its defaults), plus variants.
CONFIGS = {name: (name, SMALL.get(name, {})) for name in models.available_models()}
CONFIGS.update(
    {
        "mf_y_range": ("mf", {**SMALL["mf"], "y_range": (1.0, 5.0)}),
        "mlp_y_range": ("mlp", {**SMALL["mlp"], "y_range": (0.0, 5.5)}),
        "hybrid_concat_mlp": ("hybrid", {**HYBRID, "combiner": "concat_mlp"}),
        "hybrid_gate": ("hybrid", {**HYBRID, "combiner": "gate"}),
        "hybrid_gate_sigmoid": ("hybrid", {**HYBRID, "combiner": "gate", "gate": "sigmoid"}),
        "lightfm": ("hybrid", {"embedding_dim": 8, **LIGHTFM}),
    }
)


def build(config: str, seed: int = 0):
    name, options = CONFIGS[config]
    context = dict(
        num_users=NU,
        num_items=NI,
        rngs=nnx.Rngs(seed),
        user_features_info=USER_INFO,
        item_features_info=ITEM_INFO,
    )
    return models.build(name, context=context, **options)


# Models run through one jitted function per (structure, fn, shapes), as the trainer runs them;
# `fn(model, *args)` is a module-level function, hashable and static.
@functools.partial(jax.jit, static_argnames=("graphdef", "fn"))
def _apply(graphdef, state, *args, fn):
    return fn(nnx.merge(graphdef, state), *args)


def run(fn, model, *args):
    """``fn(model, *args)`` under ``jax.jit`` over the split state; numpy outputs."""
    graphdef, state = nnx.split(model)
    return jax.tree.map(np.asarray, _apply(graphdef, state, *args, fn=fn))


def eval_scores(model, users, items, pair_users, pair_items, key=None):
    """(score_all(users, items), score_pairs(pair_users, pair_items), representations).

    Representations (factorised models only; one compilation serves every test):
    (user_repr, item_repr, user_bias, item_bias).
    """
    reps = ()
    if model.factorised:
        reps = (
            model.user_repr(users),
            model.item_repr(items),
            model.user_bias(users),
            model.item_bias(items),
        )
    return (
        model.score_all(users, items, key=key),
        model.score_pairs(pair_users, pair_items, key=key),
        reps,
    )


def train_scores(model, users, items, pair_users, pair_items, key):
    """score_all and score_pairs in training mode with ``key``."""
    return (
        model.score_all(users, items, training=True, key=key),
        model.score_pairs(pair_users, pair_items, training=True, key=key),
        (),
    )


def all_pairs(users, items):
    """Batches of every (user a, item b) pair, user-major: pair a * M + b."""
    n_u, n_i = len(users["ids"]), len(items["ids"])
    return (
        {k: np.repeat(v, n_i, axis=0) for k, v in users.items()},
        {k: np.tile(v, (n_u,) + (1,) * (v.ndim - 1)) for k, v in items.items()},
    )


def scores(model, users, items, *, training=False, key=None):
    """(score_all (B, M), score_pairs of every pair (B * M,), representations), jitted."""
    pair_users, pair_items = all_pairs(users, items)
    if training:
        return run(train_scores, model, users, items, pair_users, pair_items, key)
    return run(eval_scores, model, users, items, pair_users, pair_items, key)


USERS = batch(USER_FEATURES, [3, 0, 6, 2, 5, 1, 4])
ITEMS = batch(ITEM_FEATURES, np.arange(NI))


# ---------------------------------------------------------------------------------------------
# The contract, for every model config


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_score_all_is_score_pairs_on_the_grid(config):
    model = build(config)
    all_scores, pairs, _ = scores(model, USERS, ITEMS)
    assert all_scores.shape == (NU, NI) and pairs.shape == (NU * NI,)
    assert np.all(np.isfinite(all_scores))
    np.testing.assert_allclose(all_scores.reshape(-1), pairs, rtol=1e-5, atol=1e-6)
    assert np.ptp(all_scores) > 0, "scores do not depend on the inputs"


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_score_grid_is_the_broadcast_of_score_encoded(config):
    # Losses over the whole catalogue call score_grid; a factorised model makes it one matrix
    # product, which must score exactly what the (B, 1) x (1, M) broadcast scores.
    model = build(config)
    # Biases start at zero: give them values, so that a grid that drops one shows.
    biases = nnx.state(model, Bias)
    rng = np.random.default_rng(1)
    nnx.update(
        model,
        jax.tree.map(lambda x: rng.normal(size=x.shape).astype(np.float32), biases),
    )

    @nnx.jit
    def grid_and_broadcast(model, users, items):
        u, v = model.encode_users(users), model.encode_items(items)
        broadcast = model.score_encoded(
            jax.tree.map(lambda x: x[:, None], u), jax.tree.map(lambda x: x[None], v)
        )
        return model.score_grid(u, v), broadcast

    grid, broadcast = grid_and_broadcast(model, USERS, ITEMS)
    assert grid.shape == (NU, NI)
    np.testing.assert_allclose(grid, broadcast, rtol=1e-5, atol=1e-6)
    assert np.ptp(grid) > 0


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_known_zero_makes_scores_independent_of_id_rows(config):
    model = build(config)
    item_known = np.arange(NI) % 2  # odd items warm, even items cold
    user_known = np.array([1, 0, 1, 0, 1, 1, 0], np.float32)
    users = {**USERS, "known": user_known}
    items = {**ITEMS, "known": item_known.astype(np.float32)}
    before = scores(model, users, items)[0]

    rng = np.random.default_rng(0)
    for side, n, cold in (("item", NI, item_known == 0), ("user", NU, user_known == 0)):
        # Perturb every table indexed by this side's entity (Embedding or Bias, n rows).
        graphdef, tables, rest = nnx.split(model, nnx.Any(Embedding, Bias), ...)
        perturbed = jax.tree.map(
            lambda x, n=n: (
                np.asarray(x) + rng.normal(size=x.shape).astype(np.float32)
                if x.shape[0] == n
                else x
            ),
            tables,
        )
        after = scores(nnx.merge(graphdef, perturbed, rest), users, items)[0]
        changed = np.abs(after - before)
        if side == "item":
            changed = changed.T  # (M, B): rows are items
        assert np.all(changed[cold] < 1e-5), f"{config}: cold {side}s depend on their ID rows"
        assert changed[~cold].max() > 1e-3, f"{config}: perturbing {side} rows changed nothing"


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_variable_types(config):
    model = build(config)
    linears = [node for _, node in nnx.iter_graph(model) if isinstance(node, nnx.Linear)]
    for layer in linears:
        assert type(layer.kernel) is nnx.Param
        assert layer.bias is None or type(layer.bias) is nnx.Param
    tables = [v for _, v in nnx.to_flat_state(nnx.state(model, Embedding))]
    biases = [v for _, v in nnx.to_flat_state(nnx.state(model, Bias))]
    not_typed = nnx.Not(nnx.Any(Embedding, Bias))
    others = [v for _, v in nnx.to_flat_state(nnx.state(model, not_typed))]
    assert tables, "ID tables must be Embedding"
    assert all(t[...].ndim == 2 for t in tables)
    assert all(b[...].ndim == 1 and b.shape[0] in (NU, NI) for b in biases)
    for v in others:  # no per-entity table left as a plain Param
        assert type(v) is nnx.Param
        assert not (v[...].ndim == 2 and v.shape[0] in (NU, NI))


def test_mf_variables_exactly():
    model = build("mf")
    shapes = sorted(v.shape for _, v in nnx.to_flat_state(nnx.state(model, Embedding)))
    assert shapes == [(NU, 8), (NI, 8)]
    shapes = sorted(v.shape for _, v in nnx.to_flat_state(nnx.state(model, Bias)))
    assert shapes == [(NU,), (NI,)]
    assert model.factorised and not build("ncf").factorised


@pytest.mark.parametrize(
    "config", sorted(c for c in CONFIGS if models.load(CONFIGS[c][0]).factorised)
)
def test_factorised_models_expose_representations(config):
    model = build(config)
    all_scores, _, (u_repr, i_repr, u_bias, i_bias) = scores(model, USERS, ITEMS)
    assert u_repr.shape == (NU, 8) and i_repr.shape == (NI, 8)
    assert u_bias.shape == (NU,) and i_bias.shape == (NI,)
    expected = u_repr @ i_repr.T + u_bias[:, None] + i_bias[None]
    if model.y_range is not None:
        lo, hi = model.y_range
        expected = lo + (hi - lo) / (1 + np.exp(-expected))
    np.testing.assert_allclose(all_scores, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("config", "raw_config"), [("mf_y_range", "mf"), ("mlp_y_range", "mlp")])
def test_y_range_squashes_the_raw_score(config, raw_config):
    lo, hi = CONFIGS[config][1]["y_range"]
    model, raw_model = build(config), build(raw_config)  # same seed: same parameters
    squashed = scores(model, USERS, ITEMS)[0]
    raw = scores(raw_model, USERS, ITEMS)[0]
    np.testing.assert_allclose(squashed, lo + (hi - lo) / (1 + np.exp(-raw)), rtol=1e-5, atol=1e-6)
    # With large parameters the scores saturate towards both ends but stay inside the range.
    graphdef, state = nnx.split(model)
    big = nnx.merge(graphdef, jax.tree.map(lambda x: np.asarray(x) * 30.0, state))
    squashed = scores(big, USERS, ITEMS)[0]
    assert np.all(squashed >= lo) and np.all(squashed <= hi)
    span = hi - lo
    assert squashed.min() < lo + 0.2 * span and squashed.max() > hi - 0.2 * span


# ---------------------------------------------------------------------------------------------
# ID dropout and dropout


def test_id_keep_mask_rate_and_determinism():
    keep_mask = jax.jit(id_keep_mask, static_argnums=1)
    key = jax.random.key(3)
    ids = np.arange(4000, dtype=np.int32)
    mask = np.asarray(keep_mask(ids, 0.3, key))
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert 0.66 < mask.mean() < 0.74
    np.testing.assert_array_equal(mask, np.asarray(keep_mask(ids, 0.3, key)))
    assert not np.array_equal(mask, np.asarray(keep_mask(ids, 0.3, jax.random.key(4))))
    # The decision is per entity: repeated IDs get the same one.
    again = np.asarray(keep_mask(np.tile(ids[:2000], 2), 0.3, key))
    np.testing.assert_array_equal(again, np.tile(mask[:2000], 2))
    assert np.all(np.asarray(keep_mask(ids, 0.0, key)) == 1)


def test_id_dropout_only_in_training_and_deterministic_for_a_key():
    model = build("hybrid")  # id_dropout=0.3 (items), user_id_dropout=0.2
    key, other = jax.random.key(0), jax.random.key(1)
    evaluation = scores(model, USERS, ITEMS)[0]
    # Evaluation ignores the key.
    np.testing.assert_array_equal(scores(model, USERS, ITEMS, key=key)[0], evaluation)
    train, train_pairs, _ = scores(model, USERS, ITEMS, training=True, key=key)
    np.testing.assert_array_equal(scores(model, USERS, ITEMS, training=True, key=key)[0], train)
    assert not np.allclose(scores(model, USERS, ITEMS, training=True, key=other)[0], train)
    assert not np.allclose(train, evaluation)
    # Decisions are per entity: the pairs of a training step agree with its grid.
    np.testing.assert_allclose(train_pairs, train.reshape(-1), rtol=1e-5, atol=1e-6)

    # Training equals evaluation with `known` zeroed exactly for the dropped entities.
    keep_items = np.asarray(id_keep_mask(ITEMS["ids"], 0.3, jax.random.fold_in(key, ITEM_KEY)))
    keep_users = np.asarray(id_keep_mask(USERS["ids"], 0.2, jax.random.fold_in(key, USER_KEY)))
    assert keep_items.min() == 0 and keep_items.max() == 1, "choose a key that drops some items"
    dropped = scores(model, {**USERS, "known": keep_users}, {**ITEMS, "known": keep_items})[0]
    np.testing.assert_allclose(train, dropped, rtol=1e-5, atol=1e-6)

    with pytest.raises(ModelError, match="key"):
        model.score_pairs(USERS, ITEMS, training=True)


def test_dropout_in_the_mlp_model():
    model = build("mlp")  # dropout=0.5, embedding_dropout=0.2; evaluation: see the reference test
    key = jax.random.key(0)
    evaluation = scores(model, USERS, ITEMS)[0]
    train = scores(model, USERS, ITEMS, training=True, key=key)[0]
    np.testing.assert_array_equal(train, scores(model, USERS, ITEMS, training=True, key=key)[0])
    assert not np.allclose(train, evaluation)
    with pytest.raises(ModelError, match="key"):
        model.score_pairs(USERS, USERS, training=True)


# ---------------------------------------------------------------------------------------------
# Numpy references: every built-in model, each hybrid combiner, LightFM


def np_bag(table, ids, weights):
    w = np.where(ids > 0, weights, 0.0)
    return np.einsum("bw,bwd->bd", w, table[ids])


def np_mlp(layers, x, final_activation=False):
    """Numpy reference of ``hybridrec.models.base.MLP`` (ReLU between layers), no dropout."""
    for i, layer in enumerate(layers):
        x = x @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...])
        if i < len(layers) - 1 or final_activation:
            x = np.maximum(x, 0.0)
    return x


def np_tower(tower, batch):
    """Numpy reference of a built-in tower's output (B, D)."""
    if isinstance(tower, IdTower):
        return np.asarray(tower.table[...])[batch["ids"]] * batch["known"][:, None]
    if isinstance(tower, CategoricalTower):  # also TextTower
        ids, weights = batch[f"{tower.field}/ids"], batch[f"{tower.field}/weights"]
        pooled = np_bag(np.asarray(tower.table[...]), ids, weights)
        if tower.pooling == "mean":
            pooled = pooled / np.where(ids > 0, weights, 0).sum(1, keepdims=True)
        return pooled
    if isinstance(tower, NumericTower):
        return np_mlp(tower.mlp.layers, batch[tower.field])
    raise AssertionError(f"no reference for {type(tower)}")


def np_encode(enc, batch):
    """Numpy reference of a hybrid side: (representation (B, D), bias (B,))."""
    outs = [np_tower(enc.towers[n], batch) for n in enc.names]
    if enc.combiner == "sum":
        rep = sum(outs)
    elif enc.combiner == "concat_mlp":
        rep = np_mlp(enc.mixer.layers, np.concatenate(outs, axis=1))
    else:
        logits = np_mlp(enc.mixer.layers, np.concatenate(outs, axis=1))  # (B, T)
        if enc.gate_kind == "sigmoid":
            gates = 1 / (1 + np.exp(-logits))
        else:
            gates = np.exp(logits - logits.max(1, keepdims=True))
            gates /= gates.sum(1, keepdims=True)
        rep = np.einsum("bt,tbd->bd", gates, np.stack(outs))
    bias = np.zeros(len(batch["ids"]))
    if enc.id_bias is not None:
        bias = bias + np.asarray(enc.id_bias[...])[batch["ids"]] * batch["known"]
    for n in enc.bias_names:
        bias = bias + np_tower(enc.bias_towers[n], batch)[:, 0]
    return rep, bias


def np_scores(model, users, items):
    """Numpy reference of ``score_all`` (B, M) for the built-in models (evaluation mode)."""

    def rows(table, batch):
        return np.asarray(table[...])[batch["ids"]] * batch["known"][:, None]

    grid = (len(users["ids"]), len(items["ids"]))
    if isinstance(model, HybridModel):  # also TwoTower
        (u, bu), (v, bv) = np_encode(model.users, users), np_encode(model.items, items)
        raw = u @ v.T + bu[:, None] + bv[None, :]
    elif isinstance(model, MatrixFactorization):
        u, v = rows(model.user_embedding, users), rows(model.item_embedding, items)
        bu = np.asarray(model.user_bias_table[...])[users["ids"]] * users["known"]
        bv = np.asarray(model.item_bias_table[...])[items["ids"]] * items["known"]
        raw = u @ v.T + bu[:, None] + bv[None, :]
    elif isinstance(model, EmbeddingNN):
        u, v = rows(model.user_embedding, users), rows(model.item_embedding, items)
        x = np.concatenate([np.repeat(u, grid[1], 0), np.tile(v, (grid[0], 1))], axis=1)
        raw = np_mlp(model.mlp.layers, x).reshape(grid)
    elif isinstance(model, NeuMF):
        ug, vg = rows(model.gmf_user, users), rows(model.gmf_item, items)
        um, vm = rows(model.mlp_user, users), rows(model.mlp_item, items)
        gmf = (ug[:, None, :] * vg[None, :, :]).reshape(-1, ug.shape[1])
        x = np.concatenate([np.repeat(um, grid[1], 0), np.tile(vm, (grid[0], 1))], axis=1)
        mlp = np_mlp(model.mlp.layers, x, final_activation=True)
        raw = np_mlp(model.output.layers, np.concatenate([gmf, mlp], axis=1)).reshape(grid)
    else:
        pytest.skip(f"no numpy reference for {type(model).__name__}")
    if model.y_range is None:
        return raw
    lo, hi = model.y_range
    return lo + (hi - lo) / (1 + np.exp(-raw))


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_scores_match_a_numpy_reference(config):
    """Every built-in model and hybrid combiner (sum, concat + MLP, softmax and sigmoid gates)
    computed by hand, with some cold users and items; evaluation mode applies no dropout."""
    model = build(config)
    users = {**USERS, "known": (np.arange(NU) % 3 != 0).astype(np.float32)}
    items = {**ITEMS, "known": (np.arange(NI) % 4 != 0).astype(np.float32)}
    expected = np_scores(model, users, items)
    np.testing.assert_allclose(scores(model, users, items)[0], expected, rtol=1e-4, atol=1e-5)


def test_lightfm_config_is_a_sum_of_feature_embeddings():
    model = build("lightfm")
    users = USERS
    items = {**ITEMS, "known": (np.arange(NI) % 3 != 0).astype(np.float32)}  # some cold items
    enc_u, enc_i = model.users, model.items

    def table(module):
        return np.asarray(module.table[...])

    p = table(enc_u.towers["id"])[users["ids"]]  # (B, D)
    b_u = np.asarray(enc_u.id_bias[...])[users["ids"]]
    q = table(enc_i.towers["id"])[items["ids"]] * items["known"][:, None]
    b_i = np.asarray(enc_i.id_bias[...])[items["ids"]] * items["known"]
    for name, field in (("genre", "genres"), ("title", "title")):
        ids, weights = items[f"{field}/ids"], items[f"{field}/weights"]
        q = q + np_bag(table(enc_i.towers[name]), ids, weights)
        b_i = b_i + np_bag(table(enc_i.bias_towers[name]), ids, weights)[:, 0]
    expected = p @ q.T + b_u[:, None] + b_i[None, :]
    np.testing.assert_allclose(scores(model, users, items)[0], expected, rtol=1e-4, atol=1e-6)


def test_hybrid_config_errors_are_readable():
    context = dict(num_users=NU, num_items=NI, rngs=nnx.Rngs(0), item_features_info=ITEM_INFO)
    with pytest.raises(ModelError, match="item_towers\\['genre'\\].*fields available"):
        models.build(
            "hybrid",
            context=context,
            item_towers={"genre": {"tower": "categorical", "field": "genre"}},
        )
    with pytest.raises(
        ModelError, match="unknown tower .imagee.*categorical, history, ids, numeric, text"
    ):
        models.build("hybrid", context=context, item_towers={"img": {"tower": "imagee"}})
    with pytest.raises(ModelError, match="only combiner='concat_mlp'"):
        models.build(
            "hybrid", context=context, item_towers={"id": {"tower": "ids", "output_dim": 8}}
        )
    with pytest.raises(ModelError, match="unknown combiner"):
        models.build("hybrid", context=context, combiner="max")
    with pytest.raises(ModelError, match="bias=True on an ids tower"):
        models.build("hybrid", context=context, item_towers={"id": {"tower": "ids", "bias": True}})


def test_registry_lists_models_and_rejects_unknown_options():
    assert {"mf", "ncf", "mlp", "two_tower", "hybrid"} <= set(models.available_models())
    with pytest.raises(ModelError) as err:
        models.build("matrix_factorisation")
    for name in ("mf", "ncf", "mlp", "two_tower", "hybrid"):
        assert name in str(err.value)
    context = dict(num_users=NU, num_items=NI, rngs=nnx.Rngs(0))
    with pytest.raises(ModelError, match="embeding_dim.*embedding_dim"):
        models.build("mf", context=context, embeding_dim=8)


# ---------------------------------------------------------------------------------------------
# Learning sanity: a planted two-block dataset


def _planted():
    """Each user group likes one item block; (user, pos item, neg item) of every training pair."""
    u, pos, neg = [], [], []
    for g in (0, 1):
        us = np.flatnonzero(GROUP == g)
        ps, ns = TRAIN_ITEMS[BLOCK[TRAIN_ITEMS] == g], TRAIN_ITEMS[BLOCK[TRAIN_ITEMS] != g]
        grid = np.stack(np.meshgrid(us, ps, ns, indexing="ij"), -1).reshape(-1, 3)
        u.append(grid[:, 0]), pos.append(grid[:, 1]), neg.append(grid[:, 2])
    return np.concatenate(u), np.concatenate(pos), np.concatenate(neg)


def assert_blocks_ranked(all_scores):
    """Every user (rows in ``USERS`` order) ranks all its block's trained items first."""
    for row, user in enumerate(USERS["ids"]):
        s = all_scores[row, TRAIN_ITEMS]
        in_block = BLOCK[TRAIN_ITEMS] == GROUP[user]
        assert s[in_block].min() > s[~in_block].max(), f"user {user}"


def _train(model, steps=200, lr=0.05):
    """Full-batch BPR with Adam on the planted pairs; returns the trained model."""
    users, pos, neg = _planted()
    u, p, n = batch(USER_FEATURES, users), batch(ITEM_FEATURES, pos), batch(ITEM_FEATURES, neg)
    graphdef, state = nnx.split(model)
    tx = optax.adam(lr)

    def loss_fn(state, key):
        m = nnx.merge(graphdef, state)
        pos_scores = m.score_pairs(u, p, training=True, key=key)
        neg_scores = m.score_pairs(u, n, training=True, key=key)
        return -jnp.mean(jax.nn.log_sigmoid(pos_scores - neg_scores))  # BPR

    @jax.jit
    def fit(state, key):
        def step(carry, key):
            state, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(state, key)
            updates, opt_state = tx.update(grads, opt_state, state)
            return (optax.apply_updates(state, updates), opt_state), loss

        keys = jax.random.split(key, steps)
        (state, _), losses = jax.lax.scan(step, (state, tx.init(state)), keys)
        return state, losses

    state, losses = fit(state, jax.random.key(0))
    assert losses[-1] < 0.5 * losses[0]
    return nnx.merge(graphdef, state)


def test_mf_learns_the_planted_blocks():
    model = _train(build("mf"))
    assert_blocks_ranked(scores(model, USERS, ITEMS)[0])


def test_hybrid_learns_the_blocks_and_ranks_cold_items_by_metadata():
    model = _train(build("hybrid"))  # all towers, id_dropout=0.3, user_id_dropout=0.2
    known = np.ones(NI, np.float32)
    known[COLD] = 0.0  # the held-out items are cold at evaluation time
    all_scores = scores(model, USERS, {**ITEMS, "known": known})[0]
    assert_blocks_ranked(all_scores)
    for row, user in enumerate(USERS["ids"]):
        own, other = COLD[GROUP[user]], COLD[1 - GROUP[user]]
        assert all_scores[row, own] > all_scores[row, other], f"user {user}: cold items"


# ---------------------------------------------------------------------------------------------
# Field dropout: a dropped field is a missing field, and missing fields are trained

FIELD_DROPOUT = dict(HYBRID, id_dropout=0.3, user_id_dropout=0.2)


def build_with(seed=0, **options):
    """A hybrid model of ``FIELD_DROPOUT`` with ``options`` (field dropout rates) on top."""
    context = dict(
        num_users=NU,
        num_items=NI,
        rngs=nnx.Rngs(seed),
        user_features_info=USER_INFO,
        item_features_info=ITEM_INFO,
    )
    return models.build("hybrid", context=context, **{**FIELD_DROPOUT, **options})


def test_a_dropped_field_is_encoded_as_the_encoder_encodes_a_missing_one():
    import pandas as pd

    from hybridrec.data.features import FeatureEncoder, FieldSpec
    from hybridrec.models.hybrid import as_missing, field_present

    schema = [
        FieldSpec("genres", multi_valued=True),
        FieldSpec("year", kind="numeric", num_buckets=3),
        FieldSpec("title", kind="text"),
    ]
    frame = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d"],
            "genres": ["Action|Drama", "Comedy", None, "Drama"],
            "year": [1990.0, 1995.0, 2000.0, None],
            "title": ["the big film", "a small film", "big", ""],
        }
    ).set_index("item_id")
    encoder = FeatureEncoder(schema).fit(item_metadata=frame)
    known = {k: np.asarray(v) for k, v in encoder.transform("item", frame).arrays.items()}
    blank = encoder.transform("item", {"genres": None, "year": None, "title": None}).arrays
    blank = {k: np.asarray(v) for k, v in blank.items()}
    present = {f: np.asarray(field_present(known, f)) for f in ("genres", "year", "title")}
    np.testing.assert_array_equal(present["genres"], [1, 1, 0, 1])
    np.testing.assert_array_equal(present["year"], [1, 1, 1, 0])
    np.testing.assert_array_equal(present["title"], [1, 1, 1, 0])
    for f in ("genres", "year", "title"):
        assert np.asarray(field_present(blank, f)).tolist() == [0.0]

    drop = np.array([1, 0, 1, 0], np.float32)
    dropped = known
    for f in ("genres", "year", "title"):
        dropped = as_missing(dropped, f, drop)
    for k, v in known.items():
        got = np.asarray(dropped[k])
        assert got.dtype == v.dtype, k
        # Dropped rows are exactly the encoder's missing entity; kept rows are unchanged.
        np.testing.assert_array_equal(got[[0, 2]], np.repeat(blank[k], 2, axis=0), err_msg=k)
        np.testing.assert_array_equal(got[[1, 3]], v[[1, 3]], err_msg=k)


def test_field_dropout_in_training_is_the_missing_encoding_of_the_dropped_entities():
    from hybridrec.models.hybrid import FIELD_KEY, as_missing

    model = build_with(id_dropout=0.0, user_id_dropout=0.0, field_dropout=0.5)
    assert [f for f, _ in model.items.field_rates] == ["genres", "release_year", "title"]
    assert model.users.field_rates == ()  # user_field_dropout defaults to 0
    key = jax.random.key(0)
    train = scores(model, USERS, ITEMS, training=True, key=key)[0]
    evaluation = scores(model, USERS, ITEMS)[0]
    assert not np.allclose(train, evaluation)
    np.testing.assert_array_equal(train, scores(model, USERS, ITEMS, training=True, key=key)[0])

    side_key = jax.random.fold_in(key, ITEM_KEY)
    items, dropped_any = ITEMS, False
    for j, field in enumerate(["genres", "release_year", "title"]):
        keep = np.asarray(
            id_keep_mask(ITEMS["ids"], 0.5, jax.random.fold_in(side_key, FIELD_KEY + j))
        )
        dropped_any |= bool((keep == 0).any())
        items = as_missing(items, field, 1.0 - keep)
    assert dropped_any
    items = jax.tree.map(np.asarray, items)
    np.testing.assert_allclose(train, scores(model, USERS, items)[0], rtol=1e-5, atol=1e-6)


def test_field_dropout_options_are_checked():
    with pytest.raises(ModelError, match=r"field_dropout must be in \[0, 1\)"):
        build_with(field_dropout=1.0)
    with pytest.raises(ModelError, match="user field_dropout"):
        build_with(user_field_dropout=-0.1)
    towers = {"id": {"tower": "ids", "field_dropout": 0.2}}
    with pytest.raises(ModelError, match="metadata towers"):
        build_with(item_towers={**ALL_ITEM_TOWERS, **towers})
    # A tower's own rate overrides its side's.
    genre = {**ALL_ITEM_TOWERS["genre"], "field_dropout": 0.4}
    model = build_with(field_dropout=0.1, item_towers={**ALL_ITEM_TOWERS, "genre": genre})
    assert dict(model.items.field_rates) == {"genres": 0.4, "release_year": 0.1, "title": 0.1}


NEW_USER = {  # every field missing, as the encoder writes it, and no trained ID row
    "ids": np.zeros(1, np.int32),
    "known": np.zeros(1, np.float32),
    "age": np.array([[0.0, 1.0]], np.float32),
}
NEW_ITEM = {
    "ids": np.zeros(1, np.int32),
    "known": np.zeros(1, np.float32),
    "genres/ids": np.array([[1, 0, 0]], np.int32),
    "genres/weights": np.array([[1, 0, 0]], np.float32),
    "release_year": np.array([[0.0, 1.0]], np.float32),
    "title/ids": np.array([[1, 0, 0, 0]], np.int32),
    "title/weights": np.array([[1, 0, 0, 0]], np.float32),
}


@pytest.mark.parametrize("seed", [1, 2])
def test_field_dropout_scores_entities_without_metadata_within_the_known_range(seed):
    """No training user lacks an age (``USER_FEATURES``), as on MovieLens 100K: without field
    dropout a new user without metadata is scored through the untrained missing-indicator
    weights, and for these seeds some of its scores leave the range of the known users' scores
    for that item (issue 11). With field dropout they stay within it, for new items too, and
    the model still finds the planted blocks and ranks cold items by their genre."""
    model = _train(build_with(seed, field_dropout=0.2, user_field_dropout=0.2))
    known = np.ones(NI, np.float32)
    known[COLD] = 0.0
    all_scores = scores(model, USERS, {**ITEMS, "known": known})[0]  # (U, I)
    new_user = scores(model, NEW_USER, ITEMS)[0][0]  # (I,)
    new_item = scores(model, USERS, NEW_ITEM)[0][:, 0]  # (U,)
    warm = scores(model, USERS, ITEMS)[0]
    assert np.all(new_user >= warm.min(0)) and np.all(new_user <= warm.max(0)), new_user
    assert np.all(new_item >= warm.min(1)) and np.all(new_item <= warm.max(1)), new_item

    assert_blocks_ranked(all_scores)
    for row, user in enumerate(USERS["ids"]):
        own, other = COLD[GROUP[user]], COLD[1 - GROUP[user]]
        assert all_scores[row, own] > all_scores[row, other], f"user {user}: cold items"
