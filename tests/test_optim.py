"""Optimizer groups follow variable types; schedules, plateau decay and clipping behave."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from hybridrec import optim
from hybridrec.optim import (
    OptimizerConfigError,
    ReduceOnPlateau,
    build_optimizer,
    make_schedule,
)
from hybridrec.variables import Bias, Embedding


class _Model(nnx.Module):
    def __init__(self, rngs):
        # A field named "bias" that is an Embedding, and a Bias named like a table: groups must
        # follow the type, not the name.
        self.bias = Embedding(jnp.ones((4, 2)))
        self.item_table = Bias(jnp.ones((4,)))
        self.dense = nnx.Linear(2, 1, rngs=rngs)


def _params():
    return nnx.split(_Model(nnx.Rngs(0)), nnx.Param, ...)[1]


CONFIG = dict(
    embeddings=dict(name="sgd", learning_rate=0.5),
    biases=dict(name="sgd", learning_rate=0.1),
    dense=dict(name="sgd", learning_rate=0.01),
)


def test_groups_follow_types_with_their_learning_rates():
    params = _params()
    opt = build_optimizer(CONFIG, params, total_steps=10)
    labels = opt.labels
    assert labels["bias"] == "embeddings" and labels["item_table"] == "biases"
    assert labels["dense"]["bias"] == "dense" and labels["dense"]["kernel"] == "dense"
    state = opt.tx.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = opt.tx.update(grads, state, params)
    # SGD update = -lr * grad, so each group's update reveals its learning rate.
    np.testing.assert_allclose(updates["bias"][...], -0.5)
    np.testing.assert_allclose(updates["item_table"][...], -0.1)
    np.testing.assert_allclose(updates["dense"]["bias"][...], -0.01)
    np.testing.assert_allclose(updates["dense"]["kernel"][...], -0.01)


def test_default_collie_style_adam_embeddings_sgd_biases():
    params = _params()
    cfg = dict(
        embeddings=dict(name="adam", learning_rate=1e-2),
        biases=dict(name="sgd", learning_rate=1e-2),
        dense=dict(name="adam", learning_rate=1e-3),
    )
    opt = build_optimizer(cfg, params, total_steps=10)
    state = opt.tx.init(params)
    grads = jax.tree.map(lambda x: 3.0 * jnp.ones_like(x), params)
    updates, _ = opt.tx.update(grads, state, params)
    # Adam's first step is -lr * sign(g); SGD's is -lr * g.
    np.testing.assert_allclose(updates["bias"][...], -1e-2, rtol=1e-4)
    np.testing.assert_allclose(updates["item_table"][...], -3e-2, rtol=1e-6)


def test_weight_decay_only_where_asked():
    params = _params()
    cfg = dict(CONFIG, embeddings=dict(name="sgd", learning_rate=1.0, weight_decay=0.1))
    opt = build_optimizer(cfg, params, total_steps=10)
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = opt.tx.update(zero, opt.tx.init(params), params)
    np.testing.assert_allclose(updates["bias"][...], -0.1)  # decay * value (1.0) * lr
    np.testing.assert_allclose(updates["item_table"][...], 0.0)  # biases: no decay


def test_clipping_and_lr_scale():
    params = _params()
    opt = build_optimizer(dict(CONFIG, clip_norm=1e-3), params, total_steps=10)
    state = opt.tx.init(params)
    grads = jax.tree.map(lambda x: 100.0 * jnp.ones_like(x), params)
    updates, state = opt.tx.update(grads, state, params)
    assert float(optax.global_norm(updates)) <= 0.5 * 1e-3 + 1e-9
    state = opt.set_lr_scale(state, 0.1)
    assert float(opt.lr_scale(state)) == pytest.approx(0.1)
    scaled, _ = opt.tx.update(grads, state, params)
    np.testing.assert_allclose(
        scaled["bias"][...], 0.1 * np.asarray(updates["bias"][...]), rtol=1e-5
    )


def test_dense_interface_equals_plain_optax():
    # optim.build without embeddings.sparse gives the grouped optax optimizer, driven through the
    # same interface as the row-sparse one: value_and_grad then apply.
    graphdef, params, rest = nnx.split(_Model(nnx.Rngs(0)), nnx.Param, ...)
    cfg = dict(CONFIG, embeddings=dict(name="adam", learning_rate=0.1, sparse=False))
    opt = optim.build(cfg, params, total_steps=10)
    assert isinstance(opt, optim.Optimizer)
    x = jnp.array([[0.5, -1.0], [2.0, 0.3]])

    def loss_fn(model, x):
        out = model.dense(x * model.bias[...][:2]) + model.item_table[...][:2, None]  # (2, 1)
        return jnp.sum(out**2), {"mean": jnp.mean(out)}

    (loss, aux), grads = opt.value_and_grad(loss_fn, graphdef, params, rest, x, has_aux=True)
    new_params, state = opt.apply(params, opt.init(params), grads)

    def objective(p):
        return loss_fn(nnx.merge(graphdef, p, rest), x)

    (ref_loss, ref_aux), ref_grads = jax.value_and_grad(objective, has_aux=True)(params)
    updates, ref_state = opt.tx.update(ref_grads, opt.tx.init(params), params)
    ref_params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(loss, ref_loss)
    np.testing.assert_allclose(aux["mean"], ref_aux["mean"])
    for a, b in zip(jax.tree.leaves((new_params, state)), jax.tree.leaves((ref_params, ref_state))):
        np.testing.assert_allclose(a, b)
    assert not np.allclose(new_params["bias"][...], params["bias"][...])


def test_schedules_shapes():
    const = make_schedule(1.0, None, 100)
    assert float(const(50)) == 1.0
    onecycle = make_schedule(1.0, dict(name="onecycle", pct_start=0.25), 100)
    assert float(onecycle(0)) < 0.1 and float(onecycle(25)) == pytest.approx(1.0, rel=1e-3)
    assert float(onecycle(99)) < 1e-3
    sgdr = make_schedule(1.0, dict(name="cosine_restarts", num_cycles=2), 100)
    assert float(sgdr(0)) == pytest.approx(1.0) and float(sgdr(49)) < 0.01
    assert float(sgdr(50)) == pytest.approx(1.0)  # restart
    with pytest.raises(OptimizerConfigError, match="unknown schedule 'cosne'"):
        make_schedule(1.0, dict(name="cosne"), 10)


def test_reduce_on_plateau_follows_pytorch_convention():
    plateau = ReduceOnPlateau(metric="val/ndcg@10", mode="max", factor=0.5, patience=1)
    scales = [plateau.update({"val/ndcg@10": v}) for v in (0.1, 0.2, 0.2, 0.2, 0.3, 0.1, 0.1)]
    # 0.2 repeated: 1st bad eval (not > patience), 2nd bad eval -> halve; 0.3 improves; then 2 bad.
    assert scales == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
    with pytest.raises(OptimizerConfigError, match="not among the evaluation metrics"):
        plateau.update({"val/recall@10": 0.1})


def test_config_typos_are_errors():
    params = _params()
    with pytest.raises(
        OptimizerConfigError, match=r"unknown optimizer setting\(s\) \['embedings'\]"
    ):
        build_optimizer(dict(CONFIG, embedings=dict(name="sgd", learning_rate=1.0)), params, 10)
    with pytest.raises(OptimizerConfigError, match="unknown optimizer 'adm'"):
        build_optimizer(dict(CONFIG, dense=dict(name="adm", learning_rate=1.0)), params, 10)
