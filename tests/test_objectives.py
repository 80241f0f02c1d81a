"""Tests of the training objectives: ``pairwise_softmax`` by hand, and on a planted signal.

A fake sampler (uniform negatives from ``jax.random``) stands in for the trainer's, so these
tests exercise the objectives alone.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from hybridrec import losses, objectives, sparse
from hybridrec.models.hybrid import HybridModel
from hybridrec.objectives import ObjectiveError


class UniformSampler:
    """``sample(key, user_ids, K) -> (B, K)`` uniform item IDs (accidental hits allowed)."""

    def __init__(self, num_items):
        self.num_items = num_items

    def sample(self, key, user_ids, num_negatives):
        return jax.random.randint(key, (user_ids.shape[0], num_negatives), 0, self.num_items)


def _config(objective, loss="bpr", num_negatives=3, **train):
    config = ml_collections.ConfigDict()
    config.train = dict(
        objective=objective, loss=loss, loss_options={}, num_negatives=num_negatives, **train
    )
    return config


# A small catalogue: item i has genre 2 + (i % 2); the first half of the items are "known".
NU, NI, D = 6, 10, 4
GENRE = 2 + np.arange(NI) % 2
INFO = {"genres": {"kind": "categorical", "vocab_size": 4, "width": 1}}


def _items(known):
    return {
        "ids": jnp.arange(NI, dtype=jnp.int32),
        "known": jnp.asarray(known, jnp.float32),
        "genres/ids": jnp.asarray(GENRE[:, None], jnp.int32),
        "genres/weights": jnp.ones((NI, 1), jnp.float32),
    }


def _model(seed=0, id_dropout=0.0, prior=False):
    return HybridModel(
        num_users=NU,
        num_items=NI,
        rngs=nnx.Rngs(seed),
        item_features_info=INFO,
        embedding_dim=D,
        item_towers={
            "id": {"tower": "ids"},
            "genres": {"tower": "categorical", "field": "genres", "bias": True, "prior": prior},
        },
        id_dropout=id_dropout,
    )


def _data(known):
    return {
        "users": {"ids": jnp.arange(NU, dtype=jnp.int32), "known": jnp.ones(NU, jnp.float32)},
        "items": _items(known),
        "sampler": UniformSampler(NI),
    }


def _positives():
    return {
        "user_ids": jnp.asarray([0, 1, 2, 3, 4], jnp.int32),
        "item_ids": jnp.asarray([0, 1, 2, 3, 4], jnp.int32),
        "weights": jnp.asarray([1.0, 1.0, 2.0, 1.0, 0.0], jnp.float32),
    }


def test_pairwise_softmax_is_the_pairwise_loss_plus_the_weighted_full_softmax():
    model = _model()
    data = _data(np.ones(NI))
    key = jax.random.key(3)
    loss_key = jax.random.key(4)
    plain = objectives.build(_config("pairwise"), num_items=NI)
    mixed = objectives.build(
        _config("pairwise_softmax", softmax=dict(weight=0.5, temperature=2.0)), num_items=NI
    )
    # The same negatives (the same sampler key) and no dropout: the pairwise parts agree.
    b_plain = plain.make_batch(_positives(), data, key)
    b_mixed = mixed.make_batch(_positives(), data, key)
    np.testing.assert_array_equal(b_plain["neg_item_ids"], b_mixed["neg_item_ids"])
    pairwise_value = float(plain.loss(model, b_plain, loss_key))

    # By hand: BPR on the scores of score_all, plus 0.5 x the softmax of score_all / 2.
    users = {"ids": b_mixed["user_ids"], "known": jnp.ones(5, jnp.float32)}
    all_scores = np.asarray(model.score_all(users, data["items"]))  # (5, NI)
    rows = np.arange(5)
    pos = all_scores[rows, b_mixed["item_ids"]]
    neg = np.take_along_axis(all_scores, np.asarray(b_mixed["neg_item_ids"]), axis=1)
    w = np.asarray(b_mixed["weights"])
    bpr = -np.log(1 / (1 + np.exp(-(pos[:, None] - neg)))).mean(axis=1)
    logits = all_scores / 2.0
    lse = np.log(np.exp(logits).sum(axis=1))
    softmax = lse - logits[rows, b_mixed["item_ids"]]
    expected = (w * bpr).sum() / w.sum() + 0.5 * (w * softmax).sum() / w.sum()

    np.testing.assert_allclose(pairwise_value, (w * bpr).sum() / w.sum(), rtol=1e-5)
    np.testing.assert_allclose(float(mixed.loss(model, b_mixed, loss_key)), expected, rtol=1e-5)
    # The softmax term is the library's full_softmax.
    lib = losses.full_softmax(
        scores=jnp.asarray(all_scores), pos_item_ids=b_mixed["item_ids"], weights=w,
        temperature=2.0,
    )  # fmt: skip
    np.testing.assert_allclose(float(lib), (w * softmax).sum() / w.sum(), rtol=1e-5)


def test_pairwise_softmax_with_weight_zero_is_the_pairwise_objective():
    model = _model()
    data = _data(np.ones(NI))
    key, loss_key = jax.random.key(5), jax.random.key(6)
    plain = objectives.build(_config("pairwise", loss="adaptive_bpr"), num_items=NI)
    mixed = objectives.build(
        _config("pairwise_softmax", loss="adaptive_bpr", softmax=dict(weight=0.0)), num_items=NI
    )
    a = plain.loss(model, plain.make_batch(_positives(), data, key), loss_key)
    b = mixed.loss(model, mixed.make_batch(_positives(), data, key), loss_key)
    np.testing.assert_allclose(float(a), float(b), rtol=1e-6)


@pytest.mark.parametrize(
    "softmax", [dict(wieght=1.0), dict(weight=-1.0), dict(temperature=0.0)], ids=str
)
def test_pairwise_softmax_rejects_bad_options(softmax):
    with pytest.raises(ObjectiveError, match="softmax"):
        objectives.build(_config("pairwise_softmax", softmax=softmax), num_items=NI)


def test_pairwise_softmax_refuses_a_non_pairwise_loss():
    with pytest.raises(ObjectiveError, match="pairwise"):
        objectives.build(_config("pairwise_softmax", loss="full_softmax"), num_items=NI)


def test_a_loss_option_no_loss_takes_is_named_with_the_ones_the_loss_takes():
    config = _config("pairwise", loss="blended_bpr")
    config.train.loss_options = dict(mean_weigth=1.0)
    with pytest.raises(ObjectiveError, match=r"'mean_weigth'.*'blended_bpr'.*: mean_weight$"):
        objectives.build(config, num_items=NI)
    # What an objective passes itself is not an option either.
    config.train.loss_options = dict(weights=1.0)
    with pytest.raises(ObjectiveError, match="'weights'"):
        objectives.build(config, num_items=NI)
    config.train.loss_options = dict(mean_weight=0.2)
    assert objectives.build(config, num_items=NI).options == dict(mean_weight=0.2)


def test_another_losss_option_is_dropped_with_a_warning():
    # hybrid.py's mean_weight, left behind by --config.train.loss=bpr (the command line cannot
    # delete a key), and hinge's margin: BPR takes neither.
    config = _config("pairwise", loss="bpr")
    config.train.loss_options = dict(mean_weight=1.0, margin=0.5)
    with pytest.warns(UserWarning, match=r"'margin', 'mean_weight' ignored.*'bpr'.*options: none"):
        objective = objectives.build(config, num_items=NI)
    assert objective.options == {}
    config.train.loss = "hinge"  # keeps its own option, drops the other
    with pytest.warns(UserWarning, match=r"'mean_weight' ignored.*'hinge'.*options: margin\)"):
        assert objectives.build(config, num_items=NI).options == dict(margin=0.5)


def _train(objective_name, steps=300, seed=0, **train):
    """Trains the small hybrid model on the planted data; returns it.

    The planted signal: genre 2 items are popular (every user likes all known ones), genre 3
    items are liked by one user each. Items 8 and 9 (one per genre) are cold: never trained,
    ``known`` 0, so they are scored from their genre alone.
    """
    known = np.ones(NI)
    known[[8, 9]] = 0.0
    data = _data(known)
    users, items = [], []
    for u in range(NU):
        for i in range(8):
            if GENRE[i] == 2 or i % NU == u:
                users.append(u)
                items.append(i)
    positives = {
        "user_ids": jnp.asarray(users, jnp.int32),
        "item_ids": jnp.asarray(items, jnp.int32),
        "weights": jnp.ones(len(users), jnp.float32),
    }
    objective = objectives.build(_config(objective_name, **train), num_items=NI)
    model = _model(seed, id_dropout=0.5, prior=objective.prior_weight > 0)
    graphdef, params = nnx.split(model)
    tx = optax.adam(0.05)
    opt_state = tx.init(params)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, opt_state, key):
        b_key, l_key = jax.random.split(key)
        batch = objective.make_batch(dict(positives), data, b_key)

        def loss_fn(p):
            return objective.loss(nnx.merge(graphdef, p), batch, l_key)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    key = jax.random.key(seed)
    for _ in range(steps):
        key, sub = jax.random.split(key)
        params, opt_state, loss = step(params, opt_state, sub)
    assert np.isfinite(float(loss))
    return nnx.merge(graphdef, params), data


@pytest.mark.parametrize("seed", [0, 1])
def test_pairwise_softmax_learns_a_popularity_prior_from_metadata(seed):
    model, data = _train("pairwise_softmax", seed=seed, softmax=dict(weight=1.0))
    users = {"ids": jnp.arange(NU, dtype=jnp.int32), "known": jnp.ones(NU, jnp.float32)}
    scores = np.asarray(model.score_all(users, data["items"]))  # (NU, NI)
    # Every user ranks the cold popular-genre item (8) above the cold niche-genre one (9).
    assert (scores[:, 8] > scores[:, 9]).all(), scores[:, 8:]


# ------------------------------------------------------------------ the popularity prior
def _set_prior(model, values):
    """Sets the genres prior table so that a genre-g item's prior is ``values[g]``."""
    table = model.items.prior_towers["genres"].table
    table.value = jnp.asarray(np.asarray(values, np.float32)[:, None])


def test_the_prior_term_is_the_softmax_of_the_training_items_marginal_plus_its_squared_mean():
    model = _model(prior=True)
    _set_prior(model, [0.0, 0.0, 1.0, -2.0])  # genre 2 items: 1, genre 3 items: -2
    known = np.ones(NI)
    known[[8, 9]] = 0.0  # cold: outside the softmax and the mean
    data = _data(known)
    key, loss_key = jax.random.key(7), jax.random.key(8)
    values = {}
    for weight in (0.25, 0.75):
        objective = objectives.build(
            _config("pairwise_softmax", softmax=dict(weight=0.5), prior=dict(weight=weight)),
            num_items=NI,
        )
        batch = objective.make_batch(_positives(), data, key)
        values[weight] = float(objective.loss(model, batch, loss_key))
    # By hand: items 0..4 are the positives (genres 2, 3, 2, 3, 2), weights 1, 1, 2, 1, 0;
    # the training items 0..7 are four of each genre.
    pi = np.where(GENRE == 2, 1.0, -2.0)[:8]
    lse = np.log(4 * np.e + 4 * np.exp(-2.0))
    w = np.array([1.0, 1.0, 2.0, 1.0, 0.0])
    marginal = (w * (lse - pi[:5])).sum() / w.sum()
    term = marginal + pi.mean() ** 2  # the mean over training items: -0.5
    np.testing.assert_allclose(values[0.75] - values[0.25], 0.5 * term, rtol=1e-5)
    # l2 adds l2 x the prior's sum of squared parameters: 0.5 x (1^2 + 2^2).
    ridge = objectives.build(
        _config("pairwise_softmax", softmax=dict(weight=0.5), prior=dict(weight=0.25, l2=0.5)),
        num_items=NI,
    )
    with_l2 = float(ridge.loss(model, ridge.make_batch(_positives(), data, key), loss_key))
    np.testing.assert_allclose(with_l2 - values[0.25], 0.25 * 0.5 * 5.0, rtol=1e-5)


def test_the_prior_term_trains_row_sparse_as_dense():
    # Under row-sparse training the tables are read by rows only; the ridge reads every row of
    # the prior's tables through ``lookup``, so the step is the dense step.
    model = _model(prior=True)
    _set_prior(model, [0.3, -0.1, 1.0, -2.0])
    known = np.ones(NI)
    known[[8, 9]] = 0.0
    data = _data(known)
    objective = objectives.build(
        _config("pairwise_softmax", softmax=dict(weight=0.5), prior=dict(weight=1.0, l2=0.5)),
        num_items=NI,
    )
    batch = objective.make_batch(_positives(), data, jax.random.key(2))
    key = jax.random.key(3)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    rows_loss, rows_grads = sparse.value_and_grad(
        lambda m: objective.loss(m, batch, key), graphdef, params, rest
    )
    dense_loss, dense_grads = jax.value_and_grad(
        lambda p: objective.loss(nnx.merge(graphdef, p, rest), batch, key)
    )(params)
    np.testing.assert_allclose(float(rows_loss), float(dense_loss), rtol=1e-6)
    prior_grad = dense_grads["items"]["prior_towers"]["genres"]["table"][...]
    assert np.abs(np.asarray(prior_grad)).min() > 0  # every genre's row has a gradient
    for a, b in zip(
        jax.tree.leaves(sparse.densify(rows_grads, params)), jax.tree.leaves(dense_grads)
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


def test_the_prior_scores_only_items_without_an_id_and_only_out_of_training():
    model = _model(prior=True)
    _set_prior(model, [0.0, 0.0, 1.5, -0.5])
    known = np.ones(NI)
    known[[8, 9]] = 0.0  # item 8: genre 2, item 9: genre 3
    items = _items(known)
    _, with_prior = model.encode_items(items)
    _set_prior(model, [0.0, 0.0, 0.0, 0.0])
    _, without = model.encode_items(items)
    np.testing.assert_allclose(
        np.asarray(with_prior - without), [0, 0, 0, 0, 0, 0, 0, 0, 1.5, -0.5], atol=1e-6
    )
    # In training the prior never enters the score (the prior term alone trains it).
    _set_prior(model, [0.0, 0.0, 1.5, -0.5])
    key = jax.random.key(0)
    _, trained_with = model.encode_items(items, training=True, key=key)
    _set_prior(model, [0.0, 0.0, 0.0, 0.0])
    _, trained_without = model.encode_items(items, training=True, key=key)
    np.testing.assert_array_equal(np.asarray(trained_with), np.asarray(trained_without))


def test_a_prior_needs_its_term_and_the_term_is_idle_without_a_prior():
    data = _data(np.ones(NI))
    key = jax.random.key(0)
    plain = objectives.build(_config("pairwise_softmax"), num_items=NI)
    with pytest.raises(ObjectiveError, match="untrained"):
        plain.loss(_model(prior=True), plain.make_batch(_positives(), data, key), key)
    # A model without prior towers (the ablation's ID-only row): the term has nothing to train.
    with_term = objectives.build(
        _config("pairwise_softmax", prior=dict(weight=1.0, l2=0.1)), num_items=NI
    )
    model = _model()
    batch = plain.make_batch(_positives(), data, key)
    np.testing.assert_array_equal(
        np.asarray(with_term.loss(model, batch, key)), np.asarray(plain.loss(model, batch, key))
    )
    with pytest.raises(ObjectiveError, match="prior"):
        objectives.build(_config("pairwise_softmax", prior=dict(wieght=1.0)), num_items=NI)


def test_the_prior_learns_a_planted_popularity_from_metadata():
    # Genre 2 items are popular (every user likes every known one), genre 3 items niche; the
    # cold items 8 (genre 2) and 9 (genre 3) are ranked by metadata alone.
    users = {"ids": jnp.arange(NU, dtype=jnp.int32), "known": jnp.ones(NU, jnp.float32)}
    model, data = _train(
        "pairwise_softmax", steps=150, softmax=dict(weight=0.0), prior=dict(weight=1.0)
    )
    pi = np.asarray(model.item_prior(data["items"]))
    # log p(genre-2 item) - log p(genre-3 item): 4 genre-2 items liked by 6 users each, 4
    # genre-3 items by 1 user each: log(24 / 4) - log(4 / 4) = log 6.
    np.testing.assert_allclose(pi[8] - pi[9], np.log(6.0), atol=0.1)
    scores = np.asarray(model.score_all(users, data["items"]))  # (NU, NI)
    assert (scores[:, 8] > scores[:, 9]).all(), scores[:, 8:]
