"""The pairwise objective's hardest-negative path: the same loss and gradients, fewer rows.

With an adaptive loss, ``hybridrec.objectives.pairwise`` scores the K negatives through
``hybridrec.variables.no_grad`` and encodes only the chosen one with gradients. These tests hold
it to the plain path (every negative scored with gradients), dense and row-sparse, with ID and
field dropout and with Collie's partial credit, and count the rows a row-sparse step touches.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from hybridrec import objectives, sparse
from hybridrec.models.hybrid import HybridModel
from hybridrec.models.mf import MatrixFactorization
from hybridrec.variables import no_grad

NU, NI, D, B, K = 7, 30, 4, 6, 5
GENRE = np.arange(NI) % 3
INFO = {"genres": {"kind": "categorical", "vocab_size": 4, "width": 1}}


class UniformSampler:
    def sample(self, key, user_ids, num_negatives):
        return jax.random.randint(key, (user_ids.shape[0], num_negatives), 0, NI)


def _data():
    return {
        "users": {"ids": jnp.arange(NU, dtype=jnp.int32), "known": jnp.ones(NU, jnp.float32)},
        "items": {
            "ids": jnp.arange(NI, dtype=jnp.int32),
            "known": jnp.ones(NI, jnp.float32),
            "genres/ids": jnp.asarray(GENRE[:, None] + 1, jnp.int32),
            "genres/weights": jnp.ones((NI, 1), jnp.float32),
        },
        "sampler": UniformSampler(),
    }


def _positives():
    return {
        "user_ids": jnp.asarray([0, 1, 2, 3, 4, 6], jnp.int32),
        "item_ids": jnp.asarray([3, 7, 7, 12, 20, 29], jnp.int32),
        "weights": jnp.asarray([1.0, 1.0, 2.0, 1.0, 0.5, 1.0], jnp.float32),
    }


def _model(kind):
    rngs = nnx.Rngs(0)
    if kind == "mf":
        return MatrixFactorization(num_users=NU, num_items=NI, rngs=rngs, embedding_dim=D)
    return HybridModel(
        num_users=NU,
        num_items=NI,
        rngs=rngs,
        item_features_info=INFO,
        embedding_dim=D,
        item_towers={
            "id": {"tower": "ids"},
            "genres": {"tower": "categorical", "field": "genres", "bias": True},
        },
        id_dropout=0.3,
        field_dropout=0.3,
    )


def _objectives(loss, credit):
    config = ml_collections.ConfigDict()
    config.train = dict(objective=None, loss=loss, loss_options={}, num_negatives=K)
    if credit:
        config.train.metadata_credit = dict(field="genres", weight=0.5)
    fast = objectives.build(config, num_items=NI)
    plain = objectives.build(config, num_items=NI)
    plain.hardest_rows = False
    assert fast.hardest_rows
    return fast, plain


def _biases_random(model):
    # Biases start at zero; random ones make a dropped bias show in the comparison.
    graphdef, params = nnx.split(model)
    rng = np.random.default_rng(1)
    params = jax.tree.map(lambda x: x + 0.3 * rng.normal(size=x.shape).astype(x.dtype), params)
    return nnx.merge(graphdef, params)


CASES = [
    ("mf", "adaptive_hinge", False),
    ("mf", "adaptive_bpr", False),
    ("hybrid", "adaptive_bpr", False),
    ("hybrid", "collie_adaptive_hinge", True),
]


@pytest.mark.parametrize("kind,loss,credit", CASES)
def test_the_hardest_path_has_the_plain_loss_and_dense_gradients(kind, loss, credit):
    fast, plain = _objectives(loss, credit)
    model = _biases_random(_model(kind))
    batch = fast.make_batch(_positives(), _data(), jax.random.key(2))
    graphdef, params = nnx.split(model)

    @jax.jit
    def both(params):
        key = jax.random.key(7)
        return [
            jax.value_and_grad(lambda p, o=o: o.loss(nnx.merge(graphdef, p), batch, key))(params)
            for o in (fast, plain)
        ]

    (fast_loss, fast_grads), (plain_loss, plain_grads) = both(params)
    assert float(plain_loss) > 0
    np.testing.assert_allclose(float(fast_loss), float(plain_loss), rtol=1e-6)
    for a, b in zip(jax.tree.leaves(fast_grads), jax.tree.leaves(plain_grads)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["mf", "hybrid"])
def test_row_sparse_steps_touch_the_chosen_rows_only(kind):
    fast, plain = _objectives("adaptive_hinge", False)
    model = _biases_random(_model(kind))
    batch = fast.make_batch(_positives(), _data(), jax.random.key(3))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    key = jax.random.key(8)
    out = {}
    for name, objective in (("fast", fast), ("plain", plain)):
        out[name] = sparse.value_and_grad(
            lambda m, o=objective: o.loss(m, batch, key), graphdef, params, rest
        )
    (fast_loss, fast_grads), (plain_loss, plain_grads) = out["fast"], out["plain"]
    np.testing.assert_allclose(float(fast_loss), float(plain_loss), rtol=1e-6)
    # The same step, as dense gradients.
    for a, b in zip(
        jax.tree.leaves(sparse.densify(fast_grads, params)),
        jax.tree.leaves(sparse.densify(plain_grads, params)),
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
    # The item ID table's rows: B positives and B chosen negatives, not B + B * K.
    item_key = [k for k in fast_grads.rows if "item" in k and "genre" not in k]
    assert item_key, list(fast_grads.rows)
    assert fast_grads.rows[item_key[0]].ids.shape == (2 * B,)
    assert plain_grads.rows[item_key[0]].ids.shape == (B + B * K,)


def test_no_grad_reads_the_same_values_and_passes_no_gradient():
    model = _biases_random(_model("hybrid"))
    items = _data()["items"]
    graphdef, params = nnx.split(model)

    def total(p, frozen):
        m = nnx.merge(graphdef, p)
        m = no_grad(m) if frozen else m
        return jnp.sum(m.encode_items(items)[0])

    assert float(total(params, True)) == pytest.approx(float(total(params, False)))
    grads = jax.grad(total)(params, True)
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(grads))
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(jax.grad(total)(params, False)))
