"""Row-sparse gradients equal dense ones; sparse optimizers match optax / a numpy lazy Adam."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from hybridrec import optim, sparse
from hybridrec.optim import OptimizerConfigError
from hybridrec.variables import Bias, Embedding, lookup

NUM_ROWS, DIM = 12, 3


class _Model(nnx.Module):
    """A table looked up twice (users' and items' IDs share it), a second table, a Linear."""

    def __init__(self, rngs: nnx.Rngs):
        self.table = Embedding(jax.random.normal(jax.random.key(1), (NUM_ROWS, DIM)))
        self.unused = Embedding(jnp.ones((5, DIM)))  # never looked up by the loss
        self.item_bias = Bias(jnp.zeros((NUM_ROWS,)))
        self.dense = nnx.Linear(DIM, 1, rngs=rngs)

    def __call__(self, user_ids, item_ids):
        u = lookup(self.table, user_ids)  # (B, D)
        v = lookup(self.table, item_ids)  # (B, K, D)
        return self.dense(u[:, None, :] * v)[..., 0] + lookup(self.item_bias, item_ids)  # (B, K)


def _loss(model, user_ids, item_ids, targets):
    return jnp.mean((model(user_ids, item_ids) - targets) ** 2)


def _batch(seed: int):
    rng = np.random.default_rng(seed)
    user_ids = rng.integers(0, 6, size=4)  # rows 0-5, with duplicates
    item_ids = rng.integers(3, 9, size=(4, 2))  # rows 3-8: overlaps the users' rows
    targets = rng.normal(size=(4, 2)).astype(np.float32)
    return jnp.asarray(user_ids), jnp.asarray(item_ids), jnp.asarray(targets)


def _split():
    return nnx.split(_Model(nnx.Rngs(0)), nnx.Param, ...)


def _dense_grads(graphdef, params, rest, batch):
    return jax.grad(lambda p: _loss(nnx.merge(graphdef, p, rest), *batch))(params)


def _assert_states_close(a, b, **tol):
    for (path, x), (_, y) in zip(nnx.to_flat_state(a), nnx.to_flat_state(b), strict=True):
        np.testing.assert_allclose(x.get_value(), y.get_value(), err_msg=str(path), **tol)


def test_row_gradients_equal_dense_gradients_under_jit():
    graphdef, params, rest = _split()
    batch = _batch(0)
    assert len(set(np.asarray(batch[0]))) < 4  # duplicate users
    assert set(np.asarray(batch[0])) & set(np.asarray(batch[1]).ravel())  # shared rows

    jitted = jax.jit(lambda p, r, *b: sparse.value_and_grad(_loss, graphdef, p, r, *b))
    loss, grads = jitted(params, rest, *batch)
    np.testing.assert_allclose(loss, _loss(nnx.merge(graphdef, params, rest), *batch), rtol=1e-6)
    # Rows come in lookup order: the users' ids, then the items' ids flattened.
    expected_ids = np.concatenate([np.asarray(batch[0]), np.asarray(batch[1]).ravel()])
    np.testing.assert_array_equal(grads.rows["table"].ids, expected_ids)
    assert grads.rows["table"].values.shape == (12, DIM)
    assert grads.rows["unused"].ids.shape == (0,) and grads.rows["unused"].values.shape == (0, DIM)
    assert "table" not in grads.dense and "kernel" in grads.dense["dense"]
    dense = jax.jit(_dense_grads, static_argnums=0)(graphdef, params, rest, batch)
    _assert_states_close(sparse.densify(grads, params), dense, rtol=1e-5, atol=1e-6)


def test_eager_with_has_aux_and_rest_none():
    model = _Model(nnx.Rngs(0))
    graphdef, params = nnx.split(model)  # all state is params here
    batch = _batch(1)

    def loss_with_aux(model, *batch):
        return _loss(model, *batch), {"double": 2.0 * _loss(model, *batch)}

    (loss, aux), grads = sparse.value_and_grad(
        loss_with_aux, graphdef, params, None, *batch, has_aux=True
    )
    np.testing.assert_allclose(aux["double"], 2.0 * loss, rtol=1e-6)
    dense = jax.grad(lambda p: _loss(nnx.merge(graphdef, p), *batch))(params)
    _assert_states_close(sparse.densify(grads, params), dense, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "read",
    [
        lambda table: jnp.sum(table[...] ** 2),  # an L2 penalty on the whole table
        lambda table: jnp.sum(table.get_value() * 2.0),
        lambda table: jnp.sum(jnp.asarray(table.get_value())),
    ],
)
def test_reading_a_table_outside_lookup_is_an_error(read):
    graphdef, params, rest = _split()

    def sneaky(model, *batch):
        # Its gradient would reach rows the batch did not look up: sparse updates would drop it.
        return _loss(model, *batch) + read(model.table)

    with pytest.raises(sparse.SparseError, match=r"\['table'\].*lookup"):
        sparse.value_and_grad(sneaky, graphdef, params, rest, *_batch(0))
    with pytest.raises(sparse.SparseError, match=r"\['table'\].*lookup"):
        jax.jit(lambda p: sparse.value_and_grad(sneaky, graphdef, p, rest, *_batch(0)))(params)


def test_a_read_through_a_jax_function_fails_loudly():
    # jnp functions reject the view before it can explain itself; what matters is that the read
    # cannot succeed and have its gradient silently dropped.
    graphdef, params, rest = _split()

    def sneaky(model, *batch):
        rows = jnp.take(model.table.get_value(), jnp.array([0, 1]), axis=0)
        return _loss(model, *batch) + jnp.sum(rows)

    with pytest.raises((TypeError, ValueError)):
        sparse.value_and_grad(sneaky, graphdef, params, rest, *_batch(0))


def test_loss_must_be_a_scalar_and_deterministic():
    graphdef, params, rest = _split()

    def not_scalar(model, *batch):
        return model(*batch[:2])

    with pytest.raises(sparse.SparseError, match="float scalar"):
        sparse.value_and_grad(not_scalar, graphdef, params, rest, *_batch(0))

    traces = []

    def changes_between_traces(model, user_ids, item_ids, targets):
        # A second lookup of `table` only in the first (discovery) trace.
        traces.append(None)
        extra = lookup(model.table, user_ids).sum() if len(traces) == 1 else 0.0
        return _loss(model, user_ids, item_ids, targets) + extra

    with pytest.raises(sparse.SparseError, match="same lookups"):
        sparse.value_and_grad(changes_between_traces, graphdef, params, rest, *_batch(0))


def test_a_lookup_outside_training_is_a_plain_gather():
    model = _Model(nnx.Rngs(0))
    ids = jnp.array([[0, 11], [-1, 3]])
    np.testing.assert_array_equal(lookup(model.table, ids), model.table[...][ids])
    np.testing.assert_array_equal(lookup(model.table[...], ids), model.table[...][ids])


def test_unique_rows_against_numpy():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 7, size=20)
    grads = rng.normal(size=(20, 2)).astype(np.float32)
    unique_ids, summed = sparse.unique_rows(jnp.asarray(ids), jnp.asarray(grads), num_rows=7)
    unique_ids, summed = np.asarray(unique_ids), np.asarray(summed)
    assert len(set(unique_ids)) == 20  # all slots distinct
    for row in np.unique(ids):
        (slot,) = np.flatnonzero(unique_ids == row)
        assert slot == np.flatnonzero(ids == row)[0]  # the first occurrence holds it
        np.testing.assert_allclose(summed[slot], grads[ids == row].sum(0), rtol=1e-5, atol=1e-6)
    filler = unique_ids >= 7
    assert filler.sum() == 20 - len(np.unique(ids))
    np.testing.assert_array_equal(unique_ids[filler], 7 + np.flatnonzero(filler))
    np.testing.assert_array_equal(summed[filler], 0.0)


def _train(config, steps, *, scale=None):
    """Runs `steps` jitted steps on batches 0..steps-1; returns the final (params, state).

    Dense or row-sparse as the config says, through the one optimizer interface.
    """
    graphdef, params, rest = _split()
    opt = optim.build(config, params, total_steps=steps)
    assert isinstance(opt, optim.RowSparseOptimizer) == optim.sparse_enabled(config)
    state = opt.init(params)
    if scale is not None:
        state = opt.set_lr_scale(state, scale)

    # As a trainer running many steps per dispatch would: the steps inside one lax.scan.
    @jax.jit
    def run(params, state, batches):
        def body(carry, batch):
            _, grads = opt.value_and_grad(_loss, graphdef, carry[0], rest, *batch)
            return opt.apply(carry[0], carry[1], grads), None

        return jax.lax.scan(body, (params, state), batches)[0]

    batches = jax.tree.map(lambda *x: jnp.stack(x), *[_batch(k) for k in range(steps)])
    return run(params, state, batches)


def _config(name, sparse_choice=None, **extra):
    embeddings = dict(name=name, learning_rate=0.3, **extra)
    if sparse_choice is not None:
        embeddings["sparse"] = sparse_choice
    return dict(
        embeddings=embeddings,
        biases=dict(name="sgd", learning_rate=0.2),
        dense=dict(name="adam", learning_rate=0.01),
        schedule=dict(name="cosine"),
    )


@pytest.mark.parametrize("name, clip", [("sgd", None), ("sgd", 0.05), ("adagrad", None)])
def test_sgd_and_adagrad_equal_dense_optax(name, clip):
    # Dense SGD / Adagrad leave rows with zero gradient exactly where they are, so the sparse
    # versions must match them everywhere (schedule and clipping included).
    dense_cfg, sparse_cfg = _config(name), _config(name, True)
    if clip:
        dense_cfg["clip_norm"] = sparse_cfg["clip_norm"] = clip
    dense, _ = _train(dense_cfg, 3)
    rows, _ = _train(sparse_cfg, 3)
    _assert_states_close(rows, dense, rtol=2e-5, atol=1e-6)
    # Rows never looked up (9-11 of `table`, all of `unused`) are untouched.
    initial = _split()[1]
    np.testing.assert_array_equal(rows["table"][...][9:], initial["table"][...][9:])
    np.testing.assert_array_equal(rows["unused"][...], initial["unused"][...])


def test_weight_decay_is_lazy():
    # One step of SGD with weight decay: the batch's rows move as in dense SGD (each row decayed
    # once, however often it is looked up); the other rows are not decayed.
    dense, _ = _train(_config("sgd", weight_decay=0.1), 1)
    rows, _ = _train(_config("sgd", True, weight_decay=0.1), 1)
    initial = _split()[1]
    touched = np.unique(np.concatenate([np.asarray(b).ravel() for b in _batch(0)[:2]]))
    untouched = np.setdiff1d(np.arange(NUM_ROWS), touched)
    np.testing.assert_allclose(
        rows["table"][...][touched], dense["table"][...][touched], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(rows["table"][...][untouched], initial["table"][...][untouched])
    assert not np.allclose(dense["table"][...][untouched], initial["table"][...][untouched])
    np.testing.assert_allclose(rows["dense"]["kernel"][...], dense["dense"]["kernel"][...])


def _numpy_lazy_adam(table, batches, lr, b1=0.9, b2=0.999, eps=1e-8):
    """Reference: per step, sum duplicate row gradients, update moments and rows present."""
    table = table.copy()
    mu, nu = np.zeros_like(table), np.zeros_like(table)
    for t, (ids, grads) in enumerate(batches, start=1):
        summed = {}
        for i, g in zip(ids, grads):
            summed[i] = summed.get(i, 0.0) + g
        for i, g in summed.items():
            mu[i] = b1 * mu[i] + (1 - b1) * g
            nu[i] = b2 * nu[i] + (1 - b2) * g * g
            table[i] -= lr * (mu[i] / (1 - b1**t)) / (np.sqrt(nu[i] / (1 - b2**t)) + eps)
    return table, mu, nu


def test_lazy_adam_matches_numpy_reference_and_leaves_other_rows_alone():
    rng = np.random.default_rng(3)
    table = rng.normal(size=(10, 2)).astype(np.float32)
    # Step 1 touches rows {1, 4} (4 twice), step 2 rows {4, 7}, step 3 nothing, step 4 row 1.
    batches = [
        (np.array([4, 1, 4]), rng.normal(size=(3, 2)).astype(np.float32)),
        (np.array([7, 4]), rng.normal(size=(2, 2)).astype(np.float32)),
        (np.zeros((0,), int), np.zeros((0, 2), np.float32)),
        (np.array([-9]), rng.normal(size=(1, 2)).astype(np.float32)),  # -9 is row 1
    ]
    opt = sparse.lazy_adam()
    update = jax.jit(opt.update)
    t, state = jnp.asarray(table), opt.init(jnp.asarray(table))
    for ids, grads in batches:
        t, state = update(t, state, jnp.asarray(ids), jnp.asarray(grads), 0.1)
    normalised = [(np.where(ids < 0, ids + 10, ids), g) for ids, g in batches]
    expected, mu, nu = _numpy_lazy_adam(table, normalised, lr=0.1)
    np.testing.assert_allclose(t, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state.mu, mu, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(state.nu, nu, rtol=1e-5, atol=1e-9)
    assert int(state.count) == 4  # the global step, counted even when nothing was looked up
    untouched = [0, 2, 3, 5, 6, 8, 9]
    np.testing.assert_array_equal(np.asarray(t)[untouched], table[untouched])
    np.testing.assert_array_equal(np.asarray(state.mu)[untouched], 0.0)
    np.testing.assert_array_equal(np.asarray(state.nu)[untouched], 0.0)


def test_lazy_adam_equals_optax_adam_when_every_row_is_touched():
    rng = np.random.default_rng(4)
    table = jnp.asarray(rng.normal(size=(6, 2)), jnp.float32)
    lazy, dense = sparse.lazy_adam(), optax.adam(0.05)
    lazy_update, dense_update = jax.jit(lazy.update), jax.jit(dense.update)
    t_lazy, s_lazy = table, lazy.init(table)
    t_dense, s_dense = table, dense.init(table)
    for _ in range(3):
        ids = jnp.asarray(np.concatenate([rng.permutation(6), rng.integers(0, 6, 3)]))
        grads = jnp.asarray(rng.normal(size=(9, 2)), jnp.float32)
        t_lazy, s_lazy = lazy_update(t_lazy, s_lazy, ids, grads, 0.05)
        updates, s_dense = dense_update(jnp.zeros_like(table).at[ids].add(grads), s_dense)
        t_dense = optax.apply_updates(t_dense, updates)
    np.testing.assert_allclose(t_lazy, t_dense, rtol=1e-5, atol=1e-6)


def _numpy_per_occurrence(table, acc, batches, lr, eps, rowwise):
    """Reference for the Adagrads without deduplication: every occurrence adds its own square
    (its mean square with ``rowwise``), then each row moves by its summed gradient over the
    root of its accumulator."""
    table, acc = table.copy(), acc.copy()
    for ids, grads in batches:
        summed = {}
        for i, g in zip(ids, grads):
            acc[i] += np.mean(g * g) if rowwise else g * g
            summed[i] = summed.get(i, 0.0) + g
        for i, g in summed.items():
            table[i] -= lr * g / np.sqrt(acc[i] + eps)
    return table, acc


@pytest.mark.parametrize(
    "rowwise", [True, False], ids=["rowwise_adagrad", "adagrad-per-occurrence"]
)
def test_adagrads_without_deduplication_match_numpy_reference(rowwise):
    rng = np.random.default_rng(5)
    table = rng.normal(size=(10, 3)).astype(np.float32)
    batches = [
        (np.array([4, 1, 4, 4]), rng.normal(size=(4, 3)).astype(np.float32)),
        (np.array([7, 4]), rng.normal(size=(2, 3)).astype(np.float32)),
        (np.zeros((0,), int), np.zeros((0, 3), np.float32)),
        (np.array([-9, 1]), rng.normal(size=(2, 3)).astype(np.float32)),  # -9 is row 1
    ]
    opt = sparse.rowwise_adagrad(eps=1e-6) if rowwise else sparse.adagrad(sum_duplicates=False)
    assert not opt.sums_duplicates
    update = jax.jit(opt.update)
    t, state = jnp.asarray(table), opt.init(jnp.asarray(table))
    assert state.shape == ((10,) if rowwise else (10, 3))
    for ids, grads in batches:
        t, state = update(t, state, jnp.asarray(ids), jnp.asarray(grads), 0.1)
    normalised = [(np.where(ids < 0, ids + 10, ids), g) for ids, g in batches]
    initial = np.zeros(10 if rowwise else (10, 3), np.float32) + (0.0 if rowwise else 0.1)
    expected, acc = _numpy_per_occurrence(
        table, initial, normalised, 0.1, 1e-6 if rowwise else 1e-7, rowwise
    )
    np.testing.assert_allclose(t, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state, acc, rtol=1e-5, atol=1e-7)
    untouched = [0, 2, 3, 5, 6, 8, 9]
    np.testing.assert_array_equal(np.asarray(t)[untouched], table[untouched])


def test_rowwise_adagrad_with_weight_decay_sums_duplicates_first():
    # With weight decay each row is decayed once, so duplicates are summed first: the
    # accumulator then holds the mean square of the (decayed) summed gradient.
    table = jnp.asarray([[1.0, 2.0], [3.0, -1.0]])
    opt = sparse.rowwise_adagrad(weight_decay=0.5, eps=0.0)
    assert opt.sums_duplicates
    grads = jnp.asarray([[1.0, 0.0], [1.0, 2.0], [0.0, 1.0]])
    t, acc = opt.update(table, opt.init(table), jnp.asarray([0, 0, 1]), grads, 0.1)
    g0 = np.array([2.0, 2.0]) + 0.5 * np.array([1.0, 2.0])
    g1 = np.array([0.0, 1.0]) + 0.5 * np.array([3.0, -1.0])
    np.testing.assert_allclose(acc, [np.mean(g0**2), np.mean(g1**2)], rtol=1e-6)
    np.testing.assert_allclose(t[0], [1.0, 2.0] - 0.1 * g0 / np.sqrt(np.mean(g0**2)), rtol=1e-6)
    np.testing.assert_allclose(t[1], [3.0, -1.0] - 0.1 * g1 / np.sqrt(np.mean(g1**2)), rtol=1e-6)


def test_build_rowwise_adagrad_from_config():
    params = _split()[1]
    cfg = _config("adagrad", "rowwise_adagrad", eps=1e-6)
    opt = optim.build(cfg, params, total_steps=10)
    assert isinstance(opt.rows, sparse.RowwiseAdagrad) and opt.rows.eps == 1e-6
    state = opt.init(params)
    assert state.tables["table"].shape == (NUM_ROWS,)
    trained, _ = _train(cfg, 2)
    initial = _split()[1]
    assert not np.allclose(trained["table"][...], initial["table"][...])
    per_occurrence = optim.build(
        _config("adagrad", "adagrad", sum_duplicates=False), params, total_steps=10
    )
    assert per_occurrence.rows.sum_duplicates is False


def test_build_lazy_adam_with_lr_scale_and_dense_groups():
    # sparse=True with name="adam" picks lazy Adam. Adam's first step is -lr * sign(g) in every
    # coordinate with a non-zero gradient, so a plateau scale of 0.5 shows as steps of 0.15.
    half, state = _train(_config("adam", True, b1=0.5), 1, scale=0.5)
    initial = _split()[1]
    step = np.asarray(half["table"][...] - initial["table"][...])
    touched = np.unique(np.concatenate([np.asarray(b).ravel() for b in _batch(0)[:2]]))
    np.testing.assert_allclose(np.abs(step[touched]), 0.5 * 0.3, rtol=1e-4)
    untouched = np.setdiff1d(np.arange(NUM_ROWS), touched)
    np.testing.assert_array_equal(step[untouched], 0.0)
    assert float(state.lr_scale) == 0.5
    # The other groups ran the lead's optimizer with the same scale.
    dense_half, _ = _train(_config("adam", b1=0.5), 1, scale=0.5)
    np.testing.assert_allclose(half["item_bias"][...], dense_half["item_bias"][...], rtol=1e-6)
    np.testing.assert_allclose(
        half["dense"]["kernel"][...], dense_half["dense"]["kernel"][...], rtol=1e-5
    )


@pytest.mark.parametrize(
    "embeddings, message",
    [
        (dict(name="adam", sparse="sgd"), "contradicts"),
        (dict(name="rmsprop", sparse=True), "no row-sparse version"),
        (dict(sparse="lazy_adam", momentum=0.9), r"\['momentum'\] not supported"),
        (dict(sparse="sgd", momentum=0.9), r"\['momentum'\] not supported"),
        (dict(sparse="adamax"), "choose one of sgd, adagrad, rowwise_adagrad, lazy_adam"),
        (dict(name="adam", sparse="rowwise_adagrad"), "contradicts"),
        (dict(sparse="rowwise_adagrad", b1=0.9), r"\['b1'\] not supported"),
    ],
)
def test_config_errors(embeddings, message):
    params = _split()[1]
    cfg = dict(embeddings=dict(learning_rate=0.1, **embeddings), dense=dict(learning_rate=0.1))
    with pytest.raises(OptimizerConfigError, match=message):
        optim.build(cfg, params, total_steps=10)


def test_sparse_flag_picks_the_optimizer():
    params = _split()[1]
    cfg = dict(
        embeddings=dict(name="adam", learning_rate=0.1, sparse=False), dense=dict(learning_rate=0.1)
    )
    assert not optim.sparse_enabled(cfg)
    assert isinstance(optim.build(cfg, params, total_steps=10), optim.Optimizer)
    on = dict(cfg, embeddings=dict(cfg["embeddings"], sparse=True))
    assert optim.sparse_enabled(on)
    opt = optim.build(on, params, total_steps=10)
    assert isinstance(opt, optim.RowSparseOptimizer) and isinstance(opt.rows, sparse.LazyAdam)
    assert opt.table_keys == ("table", "unused")
    with pytest.raises(OptimizerConfigError, match="embeddings.sparse"):
        optim.build_row_sparse(cfg, params, total_steps=10)
