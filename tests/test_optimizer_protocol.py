"""One optimizer interface, dense or row-sparse: checkpointable state, config switch, no cycle."""

import ast
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from absl import flags
from flax import nnx
from ml_collections import config_flags

from hybridrec import optim, sparse
from hybridrec.variables import Bias, Embedding, lookup

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "experiments" / "configs"
CONFIGS = sorted(p.stem for p in CONFIG_DIR.glob("*.py") if not p.name.startswith("_"))


class _Model(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.users = Embedding(jax.random.normal(jax.random.key(0), (10, 3)))
        self.items = Embedding(jax.random.normal(jax.random.key(1), (8, 3)))
        self.item_bias = Bias(jnp.zeros((8,)))
        self.dense = nnx.Linear(3, 3, rngs=rngs)

    def __call__(self, user_ids, item_ids):
        u = self.dense(lookup(self.users, user_ids))  # (B, D)
        v = lookup(self.items, item_ids)  # (B, D)
        return jnp.sum(u * v, -1) + lookup(self.item_bias, item_ids)  # (B,)


def _loss(model, user_ids, item_ids, targets):
    return jnp.mean((model(user_ids, item_ids) - targets) ** 2)


def _batch(k: int):
    rng = np.random.default_rng(k)
    return (
        jnp.asarray(rng.integers(0, 10, 6)),
        jnp.asarray(rng.integers(0, 8, 6)),
        jnp.asarray(rng.normal(size=6), jnp.float32),
    )


CASES = {
    "dense_adam": dict(name="adam", sparse=False),
    "sparse_sgd": dict(name="sgd", sparse=True),
    "sparse_adagrad": dict(name="adagrad", sparse=True),
    "sparse_lazy_adam": dict(name="adam", sparse=True),
}


def _config(case: str) -> dict:
    return dict(
        embeddings=dict(learning_rate=0.1, **CASES[case]),
        biases=dict(name="sgd", learning_rate=0.1),
        dense=dict(name="adam", learning_rate=0.01),
        schedule=dict(name="cosine"),
        clip_norm=1.0,
    )


def _setup(case: str):
    graphdef, params, rest = nnx.split(_Model(nnx.Rngs(0)), nnx.Param, ...)
    opt = optim.build(_config(case), params, total_steps=10)

    # The trainer's step, with no branch on the kind of optimizer.
    @jax.jit
    def step(params, state, batch):
        loss, grads = opt.value_and_grad(_loss, graphdef, params, rest, *batch)
        params, state = opt.apply(params, state, grads)
        return params, state, loss

    return opt, params, step


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("case", sorted(CASES))
def test_state_checkpoints_with_orbax_and_training_resumes_exactly(case, tmp_path):
    opt, params, step = _setup(case)
    assert isinstance(opt, optim.RowSparseOptimizer) == CASES[case]["sparse"]
    state = opt.set_lr_scale(opt.init(params), 0.5)
    # Arrays only (no Python objects), so orbax saves it like params.
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(state))
    for k in range(2):
        params, state, loss = step(params, state, _batch(k))
        assert np.isfinite(float(loss))

    manager = ocp.CheckpointManager(tmp_path)
    manager.save(
        2,
        args=ocp.args.Composite(
            params=ocp.args.StandardSave(params), opt_state=ocp.args.StandardSave(state)
        ),
    )
    manager.wait_until_finished()
    # Restore into freshly built targets, as a resumed run would.
    fresh_opt, fresh_params, _ = _setup(case)
    restored = ocp.CheckpointManager(tmp_path).restore(
        2,
        args=ocp.args.Composite(
            params=ocp.args.StandardRestore(fresh_params),
            opt_state=ocp.args.StandardRestore(fresh_opt.init(fresh_params)),
        ),
    )
    _assert_trees_equal(restored["opt_state"], state)
    assert float(fresh_opt.lr_scale(restored["opt_state"])) == 0.5

    expected = step(params, state, _batch(2))[:2]
    resumed = step(restored["params"], restored["opt_state"], _batch(2))[:2]
    _assert_trees_equal(resumed, expected)


@pytest.mark.parametrize("case", sorted(CASES))
def test_lr_scale_scales_every_group(case):
    # With SGD-like first steps the update is proportional to the scale; with Adam the first
    # step is lr * sign(g): either way a scale of 0 freezes every parameter.
    opt, params, step = _setup(case)
    state = opt.init(params)
    assert float(opt.lr_scale(state)) == 1.0
    frozen, _, _ = step(params, opt.set_lr_scale(state, 0.0), _batch(0))
    moved, _, _ = step(params, state, _batch(0))
    _assert_trees_equal(frozen, params)
    before = dict(nnx.to_flat_state(params))
    for path, var in nnx.to_flat_state(moved):
        assert not np.array_equal(var.get_value(), before[path].get_value()), path


def _parse(argv):
    """The config as ``experiments/run.py`` parses it: a config file flag, locked."""
    argv = ["prog", *argv]
    values = flags.FlagValues()
    holder = config_flags.DEFINE_config_file(
        "config", None, "", flag_values=values, lock_config=True, sys_argv=argv
    )
    values(argv)
    return holder.value


def _has_embeddings(name: str) -> bool:
    config = _parse([f"--config={CONFIG_DIR / name}.py:smoke"])
    return "optimizer" in config and "embeddings" in config.optimizer


@pytest.mark.parametrize("name", [n for n in CONFIGS if _has_embeddings(n)])
def test_sparse_is_a_bool_settable_from_the_command_line(name):
    path = f"--config={CONFIG_DIR / name}.py:smoke"
    assert _parse([path]).optimizer.embeddings.sparse is False
    config = _parse([path, "--config.optimizer.embeddings.sparse=True"])
    assert config.optimizer.embeddings.sparse is True
    assert optim.sparse_enabled(config.optimizer)
    params = nnx.split(_Model(nnx.Rngs(0)), nnx.Param, ...)[1]
    opt = optim.build(config.optimizer, params, total_steps=10)
    assert isinstance(opt, optim.RowSparseOptimizer)
    # Biases that train by plain SGD have their rows updated too; others stay dense.
    biases = config.optimizer.get("biases") or {}
    plain_sgd = biases.get("name") == "sgd" and not biases.get("weight_decay")
    expected_keys = ("item_bias", "items", "users") if plain_sgd else ("items", "users")
    assert opt.table_keys == expected_keys
    # The row-sparse counterpart of the configured name (mf.py: Adam -> lazy Adam).
    counterpart = {"sgd": sparse.SGD, "adagrad": sparse.Adagrad, "adam": sparse.LazyAdam}
    expected = counterpart[config.optimizer.embeddings.name.replace("adamw", "adam")]
    assert type(opt.rows) is expected


def _hybridrec_imports(module: str) -> set[str]:
    tree = ast.parse((REPO / "hybridrec" / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hybridrec"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("hybridrec"))
        elif isinstance(node, ast.Name) and node.id == "threading":
            found.add("threading")
    return found


def test_no_import_cycle_and_no_thread_local_context():
    assert _hybridrec_imports("variables") == set()
    assert {m for m in _hybridrec_imports("sparse") if "." in m} <= {
        "hybridrec.variables",
        "hybridrec.variables.Embedding",
        "hybridrec.variables.RowView",
        "hybridrec.variables.RowViewError",
    }


def test_row_sparse_updates_are_chosen_by_table_size():
    """``embeddings.sparse_above_rows``: dense below the threshold, row-sparse from it on."""
    from flax import nnx

    from hybridrec import models, optim

    def params(num_users):
        model = models.build(
            "mf", context=dict(num_users=num_users, num_items=10, rngs=nnx.Rngs(0)), embedding_dim=4
        )
        return nnx.split(model, nnx.Param, ...)[1]

    config = dict(
        embeddings=dict(name="adam", learning_rate=0.1, sparse=False, sparse_above_rows=100),
        biases=dict(name="sgd", learning_rate=0.1),
        dense=dict(name="adam", learning_rate=0.1),
    )
    assert optim.largest_table_rows(params(99)) == 99
    assert isinstance(optim.build(config, params(99), 10), optim.Optimizer)
    assert isinstance(optim.build(config, params(100), 10), optim.RowSparseOptimizer)
    config["embeddings"]["sparse_above_rows"] = None
    assert isinstance(optim.build(config, params(10_000), 10), optim.Optimizer)


def test_large_tables_get_their_own_optimizer():
    """``embeddings.large_tables``: the optimizer of tables from ``sparse_above_rows`` rows on."""
    from flax import nnx

    from experiments.configs import base
    from hybridrec import models, optim, sparse

    def params(num_users):
        model = models.build(
            "mf", context=dict(num_users=num_users, num_items=10, rngs=nnx.Rngs(0)), embedding_dim=4
        )
        return nnx.split(model, nnx.Param, ...)[1]

    config = base.get_config().optimizer.to_dict()
    config["embeddings"]["sparse_above_rows"] = 100
    small = optim.build(config, params(99), 10)
    assert isinstance(small, optim.Optimizer)  # MovieLens-sized tables: dense Adam as configured
    large = optim.build(config, params(100), 10)
    assert isinstance(large.rows, sparse.RowwiseAdagrad)
    assert float(large.schedule(0)) == config["embeddings"]["large_tables"]["learning_rate"]
    # Without large_tables, large tables get the row-sparse counterpart of name (lazy Adam).
    config["embeddings"]["large_tables"] = None
    assert isinstance(optim.build(config, params(100), 10).rows, sparse.LazyAdam)
    # sparse=True on small tables still means the counterpart of name.
    config["embeddings"]["sparse"] = True
    assert isinstance(optim.build(config, params(99), 10).rows, sparse.LazyAdam)


class _DirectBiasModel(_Model):
    """A model of one's own that reads its bias table directly (not through ``lookup``)."""

    def __call__(self, user_ids, item_ids):
        u = self.dense(lookup(self.users, user_ids))
        return jnp.sum(u * lookup(self.items, item_ids), -1) + self.item_bias[...][item_ids]


def _steps(model_cls, config, num_steps=4):
    graphdef, params, rest = nnx.split(model_cls(nnx.Rngs(0)), nnx.Param, ...)
    opt = optim.build(config, params, total_steps=10)
    state = opt.init(params)
    for k in range(num_steps):
        _, grads = opt.value_and_grad(_loss, graphdef, params, rest, *_batch(k))
        params, state = opt.apply(params, state, grads)
    return opt, params


def test_plain_sgd_biases_take_row_updates_equal_to_dense_ones():
    # The biases' own learning rate and schedule, not the embeddings'.
    config = dict(
        _config("sparse_sgd"),
        clip_norm=None,
        biases=dict(name="sgd", learning_rate=0.3, schedule=dict(name="constant")),
    )
    rows, rows_params = _steps(_Model, config)
    dense, dense_params = _steps(_Model, dict(config, biases=dict(config["biases"], sparse=False)))
    assert "item_bias" in rows.table_keys and "item_bias" not in dense.table_keys
    for x, y in zip(jax.tree.leaves(rows_params), jax.tree.leaves(dense_params), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)
    assert np.abs(np.asarray(rows_params["item_bias"][...])).max() > 0  # the bias did train


def test_a_direct_bias_read_is_refused_by_name_and_biases_sparse_false_allows_it():
    config = dict(_config("sparse_sgd"), clip_norm=None)
    with pytest.raises(sparse.SparseError, match=r"item_bias.*biases\.sparse=False"):
        _steps(_DirectBiasModel, config)
    _steps(_DirectBiasModel, dict(config, biases=dict(config["biases"], sparse=False)))


def test_biases_sparse_true_needs_plain_sgd():
    config = dict(_config("sparse_sgd"), biases=dict(name="adam", learning_rate=0.1, sparse=True))
    params = nnx.split(_Model(nnx.Rngs(0)), nnx.Param, ...)[1]
    with pytest.raises(optim.OptimizerConfigError, match="biases.sparse=True needs plain SGD"):
        optim.build(config, params, total_steps=10)
    # Adam biases without the flag stay dense.
    config["biases"].pop("sparse")
    assert "item_bias" not in optim.build(config, params, total_steps=10).table_keys
