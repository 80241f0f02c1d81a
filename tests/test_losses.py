"""Tests for hybridrec.losses: hand-computed values, Collie's published numbers, weights,
gradients, jit, WARP against a sequential brute force, and the softmax losses against scipy."""

from __future__ import annotations

import functools
import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from hybridrec import losses
from hybridrec.losses import LOSS_KINDS, LossError, get_loss

ALL = sorted(LOSS_KINDS)
B, K, N_ITEMS = 5, 3, 7


_STATIC = {"reduction", "rank_weight", "margin", "temperature", "max_weight"}


def fast_jit(fn, **kwargs):
    """jax.jit without XLA's backend optimisations: these tiny programs then compile in about
    half the time, which dominates this file's run time."""
    return jax.jit(fn, compiler_options={"xla_backend_optimization_level": 0}, **kwargs)


@functools.cache
def jitted(name: str):
    """The loss under ``jax.jit`` (one compile per shape instead of one per eager op, which keeps
    this file fast; the trainer calls the losses inside jit too). Configuration is static."""
    fn = get_loss(name)
    static = sorted(_STATIC & set(inspect.signature(fn).parameters))
    return fast_jit(fn, static_argnames=static)


def call(name: str, **kwargs):
    return jitted(name)(**kwargs)


def _val(x) -> float:
    return float(np.asarray(x))


def make_args(name: str, rng: np.random.Generator, b: int = B, k: int = K) -> dict:
    """Arguments of the loss's kind, with positives scored low enough that every example is
    active (each has at least one margin-violating negative)."""
    kind = LOSS_KINDS[name]
    if kind == "pointwise_rating":
        return {
            "scores": rng.uniform(1, 5, b).astype(np.float32),
            "ratings": rng.integers(1, 6, b).astype(np.float32),
        }
    if kind == "full_softmax":
        return {
            "scores": rng.normal(size=(b, N_ITEMS)).astype(np.float32),
            "pos_item_ids": rng.integers(0, N_ITEMS, b).astype(np.int32),
        }
    args = {
        "pos_scores": rng.uniform(-0.3, 0.3, b).astype(np.float32),
        "neg_scores": rng.uniform(-0.5, 0.5, (b, k)).astype(np.float32),
    }
    if kind == "sampled_softmax":
        args["pos_log_q"] = np.log(rng.uniform(0.01, 0.2, b)).astype(np.float32)
        args["neg_log_q"] = np.log(rng.uniform(0.01, 0.2, (b, k))).astype(np.float32)
    if get_loss(name).needs_num_items:
        args["num_items"] = 50
    return args


def take_rows(args: dict, rows) -> dict:
    """The same arguments for a sub-batch (per-example arrays are indexed on axis 0)."""
    return {k: (v[np.asarray(rows)] if isinstance(v, np.ndarray) else v) for k, v in args.items()}


# ----------------------------------------------------------------------------- registry
def test_registry_kinds_and_unknown_name():
    assert set(LOSS_KINDS.values()) == {
        "pairwise",
        "sampled_softmax",
        "full_softmax",
        "pointwise_rating",
    }
    for name in ALL:
        fn = get_loss(name)
        assert fn.kind == LOSS_KINDS[name]
        assert fn is getattr(losses, name)
    assert {n for n in ALL if get_loss(n).needs_num_items} == {"warp", "collie_warp"}
    with_meta = {n for n in ALL if get_loss(n).supports_metadata}
    assert with_meta == {n for n in ALL if LOSS_KINDS[n] == "pairwise"} - {"bce"}
    with pytest.raises(LossError, match=r"unknown loss 'bprr'.*bpr,"):
        get_loss("bprr")


# ----------------------------------------------------------------------------- hand values
def test_bce_value():
    # softplus(-2) = log(1 + e^-2) = 0.126928; negatives: softplus(-1) = 0.313262,
    # softplus(0.5) = 0.974077, mean 0.643670 -> 0.770598.
    got = call("bce", pos_scores=jnp.array([2.0]), neg_scores=jnp.array([[-1.0, 0.5]]))
    assert _val(got) == pytest.approx(0.770598, abs=1e-5)


def test_bce_is_stable_for_large_logits():
    # A confident, correct prediction costs ~0; a confident wrong one costs ~|logit|.
    good = call("bce", pos_scores=jnp.array([200.0]), neg_scores=jnp.array([[-200.0]]))
    bad = call("bce", pos_scores=jnp.array([-200.0]), neg_scores=jnp.array([[200.0]]))
    assert _val(good) == pytest.approx(0.0, abs=1e-6)
    assert _val(bad) == pytest.approx(400.0, rel=1e-6)


def test_mse_value():
    # (3 - 4)^2 = 1, (4.5 - 4)^2 = 0.25 -> mean 0.625; weights (1, 3): (1 + 0.75) / 4 = 0.4375.
    s, r = jnp.array([3.0, 4.5]), jnp.array([4.0, 4.0])
    assert _val(call("mse", scores=s, ratings=r)) == pytest.approx(0.625)
    assert _val(call("mse", scores=s, ratings=r, weights=jnp.array([1.0, 3.0]))) == pytest.approx(
        0.4375
    )


def test_bpr_value():
    # -log sigmoid(1 - 0) = softplus(-1) = 0.313262; -log sigmoid(1 - 2) = softplus(1) = 1.313262;
    # mean over the two negatives = 0.813262.
    got = call("bpr", pos_scores=jnp.array([1.0]), neg_scores=jnp.array([[0.0, 2.0]]))
    assert _val(got) == pytest.approx(0.813262, abs=1e-5)


def test_hinge_value():
    # max(0, 1 - 1 + 0.5) = 0.5, max(0, 1 - 1 - 1) = 0, max(0, 1 - 1 + 1.2) = 1.2 -> 1.7 / 3.
    got = call("hinge", pos_scores=jnp.array([1.0]), neg_scores=jnp.array([[0.5, -1.0, 1.2]]))
    assert _val(got) == pytest.approx(1.7 / 3, abs=1e-6)
    # margin 0.5: 0, 0, 0.7 -> 0.7 / 3.
    got = call(
        "hinge", pos_scores=jnp.array([1.0]), neg_scores=jnp.array([[0.5, -1.0, 1.2]]), margin=0.5
    )
    assert _val(got) == pytest.approx(0.7 / 3, abs=1e-6)


def test_adaptive_values():
    pos, neg = jnp.array([1.0]), jnp.array([[0.0, 2.0, -1.0]])
    # Hardest negative is 2: -log sigmoid(1 - 2) = softplus(1) = 1.313262.
    assert _val(call("adaptive_bpr", pos_scores=pos, neg_scores=neg)) == pytest.approx(
        1.313262, abs=1e-5
    )
    # max(0, 1 - 1 + 2) = 2.
    assert _val(call("adaptive_hinge", pos_scores=pos, neg_scores=neg)) == pytest.approx(2.0)


def test_blended_bpr_value_and_limits():
    pos, neg = jnp.array([1.0]), jnp.array([[0.0, 2.0, -1.0]])
    # Hardest: softplus(2 - 1) = 1.313262. Mean over the three: (softplus(-1) + softplus(1) +
    # softplus(-2)) / 3 = (0.313262 + 1.313262 + 0.126928) / 3 = 0.584484.
    got = call("blended_bpr", pos_scores=pos, neg_scores=neg, mean_weight=0.5)
    assert _val(got) == pytest.approx(1.313262 + 0.5 * 0.584484, abs=1e-5)
    # The default weight is 0.5; a weight of 0 is adaptive BPR.
    assert _val(call("blended_bpr", pos_scores=pos, neg_scores=neg)) == pytest.approx(_val(got))
    zero = call("blended_bpr", pos_scores=pos, neg_scores=neg, mean_weight=0.0)
    assert _val(zero) == pytest.approx(_val(call("adaptive_bpr", pos_scores=pos, neg_scores=neg)))
    # Masks, weights and partial credit reach both terms: the sum of the two losses, per row.
    rng = np.random.default_rng(3)
    pos, neg = jnp.asarray(rng.normal(size=6)), jnp.asarray(rng.normal(size=(6, 4)))
    kw = dict(
        neg_mask=jnp.asarray(rng.random((6, 4)) < 0.7).at[2].set(False),  # row 2: none valid
        weights=jnp.asarray(rng.random(6)),
        pos_meta=jnp.asarray(rng.integers(0, 3, 6)),
        neg_meta=jnp.asarray(rng.integers(0, 3, (6, 4))),
        metadata_weights=0.3,
        reduction="none",
    )
    args = dict(pos_scores=pos, neg_scores=neg, **kw)
    want = np.asarray(call("adaptive_bpr", **args)) + 2.0 * np.asarray(call("bpr", **args))
    got = np.asarray(call("blended_bpr", **args, mean_weight=2.0))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert got[2] == 0.0
    with pytest.raises(LossError, match="mean_weight must be >= 0"):
        losses.blended_bpr(pos_scores=pos, neg_scores=neg, mean_weight=-1.0)


def test_blended_bpr_trains_every_negative():
    # Adaptive BPR's gradient reaches only the hardest negative; the mean term reaches all.
    pos, neg = jnp.array([1.0]), jnp.array([[0.0, 2.0, -1.0]])
    grad = jax.grad(lambda n, w: losses.blended_bpr(pos_scores=pos, neg_scores=n, mean_weight=w))
    g0, g1 = np.asarray(grad(neg, 0.0)), np.asarray(grad(neg, 0.5))
    assert np.count_nonzero(g0) == 1 and g0[0, 1] > 0
    assert (g1 > 0).all()
    # d/dn_k of 0.5 * mean_k softplus(n_k - 1) = 0.5 / 3 * sigmoid(n_k - 1), plus the hardest's.
    want = 0.5 / 3 * scipy.special.expit(np.array([-1.0, 1.0, -2.0]))
    want[1] += scipy.special.expit(1.0)
    np.testing.assert_allclose(g1[0], want, rtol=1e-5)


def test_warp_value():
    # Violation: neg > pos - 1 = 0. Negatives -0.5 (no), 0.2 (yes: N = 2), 3.0 (never reached).
    # rank = floor((11 - 1) / 2) = 5; H(5) = 1 + 1/2 + 1/3 + 1/4 + 1/5 = 2.283333;
    # hinge of the first violator = 1 - 1 + 0.2 = 0.2 -> 0.456667. LightFM's log: log(5) * 0.2.
    args = dict(pos_scores=jnp.array([1.0]), neg_scores=jnp.array([[-0.5, 0.2, 3.0]]), num_items=11)
    assert _val(call("warp", **args)) == pytest.approx(2.283333 * 0.2, abs=1e-5)
    assert _val(call("warp", **args, rank_weight="log")) == pytest.approx(
        math.log(5) * 0.2, abs=1e-6
    )
    assert _val(call("warp", **args, rank_weight="log", max_weight=1.0)) == pytest.approx(0.2)
    # A huge catalogue: N = 1 -> rank 10^6, H(10^6) = 14.392727 (sum computed in numpy).
    big = call(
        "warp", pos_scores=jnp.array([0.0]), neg_scores=jnp.array([[0.0]]), num_items=10**6 + 1
    )
    assert _val(big) == pytest.approx(np.sum(1.0 / np.arange(1, 10**6 + 1)), rel=1e-6)
    # No violation at all -> 0.
    no_viol = call(
        "warp", pos_scores=jnp.array([5.0]), neg_scores=jnp.array([[0.0, 1.0]]), num_items=11
    )
    assert _val(no_viol) == 0.0


def test_warp_weights_early_violations_more():
    # The same violating negative found on the 1st trial implies a worse rank than on the 3rd.
    first = call(
        "warp", pos_scores=jnp.array([0.0]), neg_scores=jnp.array([[0.5, -9, -9]]), num_items=100
    )
    third = call(
        "warp", pos_scores=jnp.array([0.0]), neg_scores=jnp.array([[-9, -9, 0.5]]), num_items=100
    )
    # H(99) * 1.5 vs H(33) * 1.5.
    h = lambda n: sum(1 / i for i in range(1, n + 1))  # noqa: E731
    assert _val(first) == pytest.approx(h(99) * 1.5, rel=1e-5)
    assert _val(third) == pytest.approx(h(33) * 1.5, rel=1e-5)


def test_sampled_softmax_values():
    pos, neg = jnp.array([2.0]), jnp.array([[1.0, 0.0]])
    # log(e^2 + e^1 + e^0) - 2 = log(1 + e^-1 + e^-2) = log(1.503215) = 0.407606.
    assert _val(call("sampled_softmax", pos_scores=pos, neg_scores=neg)) == pytest.approx(
        0.407606, abs=1e-5
    )
    # log Q: positive 0.5, negatives 0.25 each. z = [2 + log 2, 1 + log 4, 0 + log 4]
    # = [2.693147, 2.386294, 1.386294]; loss = log(1 + e^-0.306853 + e^-1.306853)
    # = log(1 + 0.735759 + 0.270671) = log(2.006430) = 0.696357.
    got = call(
        "sampled_softmax",
        pos_scores=pos,
        neg_scores=neg,
        pos_log_q=jnp.log(jnp.array([0.5])),
        neg_log_q=jnp.log(jnp.array([[0.25, 0.25]])),
    )
    assert _val(got) == pytest.approx(0.696357, abs=1e-5)
    # Temperature 0.5 doubles the scores: log(1 + e^-2 + e^-4) = log(1.153650) = 0.142932.
    got = call("sampled_softmax", pos_scores=pos, neg_scores=neg, temperature=0.5)
    assert _val(got) == pytest.approx(0.142932, abs=1e-5)


# ----------------------------------------------------------------------------- Collie
def test_collie_documented_values():
    """The numbers printed in Collie's docs/source/loss.rst (Collie uses (K, B) negatives)."""
    one = lambda x: jnp.array([x])  # noqa: E731
    # l = 1 - sigmoid(3 - 1.5) = 0.182426; l + l^2 = 0.182426 + 0.033279 = 0.2157.
    assert _val(call("collie_bpr", pos_scores=one(3.0), neg_scores=one(1.5))) == pytest.approx(
        0.2157, abs=1e-4
    )
    assert _val(call("collie_hinge", pos_scores=one(3.0), neg_scores=one(1.5))) == 0.0
    # l = 1 - sigmoid(-1.5) = 0.817574; + 0.668427 = 1.4860.
    assert _val(call("collie_bpr", pos_scores=one(1.5), neg_scores=one(3.0))) == pytest.approx(
        1.4860, abs=1e-4
    )
    # l = 1 - (1.5 - 3) = 2.5; 2.5 + 6.25 = 8.75.
    assert _val(call("collie_hinge", pos_scores=one(1.5), neg_scores=one(3.0))) == pytest.approx(
        8.75
    )

    good = dict(pos_scores=one(3.0), neg_scores=jnp.array([[1.5, 0.5, 1.0]]))
    assert _val(call("collie_adaptive_bpr", **good)) == pytest.approx(0.2157, abs=1e-4)
    assert _val(call("collie_adaptive_hinge", **good)) == 0.0
    assert _val(call("collie_warp", **good, num_items=3)) == 0.0

    bad = dict(pos_scores=one(1.5), neg_scores=jnp.array([[2.0, 3.0, 2.5]]))
    assert _val(call("collie_adaptive_bpr", **bad)) == pytest.approx(1.4860, abs=1e-4)
    assert _val(call("collie_adaptive_hinge", **bad)) == pytest.approx(8.75)
    # First violator is the first negative (N = 1): l = log(3 / 1) * (1 - 1.5 + 2) = 1.098612 * 1.5
    # = 1.647918; + 2.715634 = 4.3636. With 30 items: l = 3.401197 * 1.5 = 5.101796; + 26.028
    # = 31.1301.
    assert _val(call("collie_warp", **bad, num_items=3)) == pytest.approx(4.3636, abs=1e-4)
    assert _val(call("collie_warp", **bad, num_items=30)) == pytest.approx(31.1301, abs=1e-3)

    mixed = dict(pos_scores=one(1.5), neg_scores=jnp.array([[1.0, 4.0, 1.49]]))
    # Hardest negative 4: l = 1 - sigmoid(-2.5) = 0.924142; + 0.854038 = 1.7782.
    assert _val(call("collie_adaptive_bpr", **mixed)) == pytest.approx(1.7782, abs=1e-4)
    # l = 1 - (1.5 - 4) = 3.5; 3.5 + 12.25 = 15.75.
    assert _val(call("collie_adaptive_hinge", **mixed)) == pytest.approx(15.75)
    # 1 - 1.5 + 1.0 = 0.5 > 0: the first negative already violates (N = 1).
    # l = log(3) * 0.5 = 0.549306; + 0.301737 = 0.8510. With 30: 1.700599 + 2.892036 = 4.5926.
    assert _val(call("collie_warp", **mixed, num_items=3)) == pytest.approx(0.8510, abs=1e-4)
    assert _val(call("collie_warp", **mixed, num_items=30)) == pytest.approx(4.5926, abs=1e-4)

    # Partial credit, genre weight 0.25: Star Wars (1.0) vs Star Trek (3.0, same genre) and
    # Legally Blonde (3.0, other genre). l = 1 - sigmoid(-2) = 0.880797; + 0.775803 = 1.6566.
    # Same genre: l = 0.75 - 0.119203 = 0.630797; + 0.397905 = 1.0287.
    meta = dict(pos_meta=jnp.array([0, 0]), neg_meta=jnp.array([[0], [1]]), metadata_weights=0.25)
    per = call(
        "collie_bpr",
        pos_scores=jnp.array([1.0, 1.0]),
        neg_scores=jnp.array([[3.0], [3.0]]),
        reduction="none",
        **meta,
    )
    np.testing.assert_allclose(np.asarray(per), [1.0287, 1.6566], atol=1e-4)


# Collie's own test fixtures (tests/fixtures/loss_fixtures.py): 20 item scores, positives are
# items 0..3, the single negatives items 4..7, the many negatives items 4..19 laid out (K, B).
_SCORES = np.array(
    [1.1, 1.3, 4.7, -7.234, -1.3, 0.7, 4.7, -2.2468, -4.7, 1.3, 3.56, -0.8924]
    + [4.01, 2.7, 3.7, -5.2468, 3.89, 12.8, -1.7, -0.8143],
    np.float32,
)
_META_A = np.array([0, 1, 1, 2, 0, 0, 0, 1, 2, 1, 1, 2, 0, 0, 1, 2, 0, 0, 1, 2])
_META_B = np.array([1, 2, 2, 3, 3, 2, 1, 3, 3, 2, 2, 2, 1, 1, 2, 2, 1, 1, 2, 2])
_POS_ITEMS = np.arange(4)
_NEG_ITEMS = np.arange(4, 8)
_MANY_NEG_ITEMS = np.arange(4, 20).reshape(4, 4).T  # (B, K): our layout is Collie's transposed


def test_collie_against_collies_test_suite():
    """Expected values copied from Collie's tests/test_losses.py."""
    pos, neg, many = _SCORES[_POS_ITEMS], _SCORES[_NEG_ITEMS], _SCORES[_MANY_NEG_ITEMS]
    cases = [
        (call("collie_bpr", pos_scores=pos, neg_scores=neg), (1.93074 + 1.36897) / 4),
        (call("collie_hinge", pos_scores=pos, neg_scores=neg), (7.3872 + 37.00656384) / 4),
        (call("collie_adaptive_bpr", pos_scores=pos, neg_scores=many), 6.592 / 4),
        (call("collie_adaptive_hinge", pos_scores=pos, neg_scores=many), 252.420 / 4),
        (call("collie_warp", pos_scores=pos, neg_scores=many, num_items=4), (11.366 + 72.385) / 4),
    ]
    one = dict(pos_meta=_META_A[_POS_ITEMS], neg_meta=_META_A[_NEG_ITEMS], metadata_weights=0.2)
    cases.append(
        (call("collie_bpr", pos_scores=pos, neg_scores=neg, **one), (1.73073 + 1.37570) / 4)
    )
    cases.append(
        (call("collie_hinge", pos_scores=pos, neg_scores=neg, **one), (7.3872 + 37.00656384) / 4)
    )
    two = dict(
        pos_meta={"a": _META_A[_POS_ITEMS], "b": _META_B[_POS_ITEMS]},
        neg_meta={"a": _META_A[_MANY_NEG_ITEMS], "b": _META_B[_MANY_NEG_ITEMS]},
        metadata_weights={"a": 0.2, "b": 0.3},
    )
    cases += [
        (call("collie_adaptive_bpr", pos_scores=pos, neg_scores=many, **two), (2.746 + 2.088) / 4),
        (call("collie_adaptive_hinge", pos_scores=pos, neg_scores=many, **two), 61.2829),
        (
            call("collie_warp", pos_scores=pos, neg_scores=many, num_items=4, **two),
            (10.390 + 65.063) / 4,
        ),
    ]
    for got, expected in cases:
        assert _val(got) == pytest.approx(expected, abs=1e-3)


def test_metadata_match_matches_collies_ideal_difference():
    # Collie's fixture metadata_a_and_2_diff holds the ideal differences 1 - match, (K, B).
    ideal = np.array(
        [[0.8, 0.7, 1, 0.7], [1, 0.5, 0.5, 0.8], [0.5, 1, 0.5, 0.8], [0.5, 1, 0.5, 0.8]]
    )
    match = losses.metadata_match(
        pos_meta={"a": _META_A[_POS_ITEMS], "b": _META_B[_POS_ITEMS]},
        neg_meta={"a": _META_A[_MANY_NEG_ITEMS], "b": _META_B[_MANY_NEG_ITEMS]},
        metadata_weights={"a": 0.2, "b": 0.3},
    )
    np.testing.assert_allclose(1 - np.asarray(match), ideal.T, atol=1e-6)
    # Missing categories (negative IDs) never match.
    missing = losses.metadata_match(
        pos_meta=jnp.array([-1, 2]), neg_meta=jnp.array([[-1], [2]]), metadata_weights=0.5
    )
    np.testing.assert_allclose(np.asarray(missing), [[0.0], [0.5]])


def test_metadata_errors():
    with pytest.raises(LossError, match="sum of metadata weights is 1.1"):
        losses.metadata_match(
            pos_meta={"a": jnp.zeros(2, int), "b": jnp.zeros(2, int)},
            neg_meta={"a": jnp.zeros((2, 1), int), "b": jnp.zeros((2, 1), int)},
            metadata_weights={"a": 0.2, "b": 0.9},
        )
    with pytest.raises(LossError, match="fields differ"):
        losses.metadata_match(
            pos_meta={"a": jnp.zeros(2, int)},
            neg_meta={"b": jnp.zeros((2, 1), int)},
            metadata_weights={"a": 0.2},
        )
    with pytest.raises(LossError, match="pass all of pos_meta"):
        call(
            "bpr", pos_scores=jnp.zeros(2), neg_scores=jnp.zeros((2, 1)), pos_meta=jnp.zeros(2, int)
        )


def test_partial_credit_penalises_same_genre_negative_less():
    # One positive (genre 0) against an equally scored same-genre and other-genre negative.
    pos = jnp.array([0.0, 0.0])
    neg = jnp.array([[0.2], [0.2]])
    meta = dict(pos_meta=jnp.array([0, 0]), neg_meta=jnp.array([[0], [1]]), metadata_weights=0.3)
    for name in ["bpr", "hinge", "adaptive_bpr", "adaptive_hinge", "collie_bpr", "collie_hinge"]:
        per = np.asarray(call(name, pos_scores=pos, neg_scores=neg, reduction="none", **meta))
        assert per[0] < per[1], name
    # hinge: margins 0.7 and 1.0 -> 0.7 - 0 + 0.2 = 0.9 and 1.2.
    per = call("hinge", pos_scores=pos, neg_scores=neg, reduction="none", **meta)
    np.testing.assert_allclose(np.asarray(per), [0.9, 1.2], atol=1e-6)
    # bpr with soft target y = 0.7 is minimised where sigmoid(pos - neg) = 0.7.
    d = jnp.linspace(-3, 3, 601)
    per = call(
        "bpr",
        pos_scores=d,
        neg_scores=jnp.zeros((601, 1)),
        pos_meta=jnp.zeros(601, int),
        neg_meta=jnp.zeros((601, 1), int),
        metadata_weights=0.3,
        reduction="none",
    )
    best = float(d[int(jnp.argmin(per))])
    assert best == pytest.approx(float(scipy.special.logit(0.7)), abs=0.01)
    # warp: a same-genre negative with margin 0.7 at 0.5 below the positive does not violate.
    kw = dict(pos_scores=jnp.array([0.0]), neg_scores=jnp.array([[-0.5]]), num_items=10)
    assert _val(call("warp", **kw)) > 0
    assert (
        _val(
            call(
                "warp",
                **kw,
                pos_meta=jnp.array([3]),
                neg_meta=jnp.array([[3]]),
                metadata_weights=0.6,
            )
        )
        == 0.0
    )


# ----------------------------------------------------------------------------- WARP reference
def _warp_reference(pos, neg, mask, num_items, rank_weight, margin=1.0):
    """LightFM's sequential WARP loop: sample until the first violation (masked = resampled)."""
    out = np.zeros(len(pos))
    for b in range(len(pos)):
        trials = 0
        for k in range(neg.shape[1]):
            if not mask[b, k]:
                continue
            trials += 1
            if neg[b, k] > pos[b] - margin:
                rank = max(1, (num_items - 1) // trials)
                if rank_weight == "harmonic":
                    w = sum(1.0 / i for i in range(1, rank + 1))
                else:
                    w = math.log(rank)
                out[b] = w * (margin - pos[b] + neg[b, k])
                break
    return out


@pytest.mark.parametrize("num_items", [2, 5, 37, 1000])
@pytest.mark.parametrize("rank_weight", ["harmonic", "log"])
def test_warp_matches_sequential_reference(num_items, rank_weight):
    rng = np.random.default_rng(num_items)
    b, k = 40, 6
    pos = rng.normal(size=b).astype(np.float32)
    neg = (rng.normal(size=(b, k)) - 1.0).astype(np.float32)
    mask = rng.random((b, k)) > 0.25
    mask[0] = False  # a row with no valid negative at all
    got = call(
        "warp",
        pos_scores=pos,
        neg_scores=neg,
        neg_mask=mask,
        num_items=num_items,
        rank_weight=rank_weight,
        reduction="none",
    )
    expected = _warp_reference(pos, neg, mask, num_items, rank_weight)
    found = (mask & (neg > pos[:, None] - 1.0)).any(axis=1)
    assert found.sum() > 10 and (~found).sum() > 3  # both cases exercised
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- softmax losses
def test_full_softmax_matches_scipy():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(6, 11)).astype(np.float32) * 3
    pos = rng.integers(0, 11, 6)
    expected = -scipy.special.log_softmax(scores.astype(np.float64), axis=1)[np.arange(6), pos]
    got = call("full_softmax", scores=scores, pos_item_ids=pos, reduction="none")
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5)
    got_t = call("full_softmax", scores=scores, pos_item_ids=pos, temperature=0.5, reduction="none")
    expected_t = -scipy.special.log_softmax(2 * scores.astype(np.float64), axis=1)[
        np.arange(6), pos
    ]
    np.testing.assert_allclose(np.asarray(got_t), expected_t, rtol=1e-5)
    # item_mask drops items from the normaliser (but never the positive).
    mask = rng.random((6, 11)) > 0.5
    got_m = call("full_softmax", scores=scores, pos_item_ids=pos, item_mask=mask, reduction="none")
    for row in range(6):
        keep = mask[row].copy()
        keep[pos[row]] = True
        ref = -scipy.special.log_softmax(scores[row, keep].astype(np.float64))
        assert float(got_m[row]) == pytest.approx(
            ref[np.flatnonzero(keep) == pos[row]][0], rel=1e-5
        )


def test_sampled_softmax_uniform_q_is_plain_softmax():
    rng = np.random.default_rng(1)
    pos = rng.normal(size=8).astype(np.float32)
    neg = rng.normal(size=(8, 5)).astype(np.float32)
    plain = call("sampled_softmax", pos_scores=pos, neg_scores=neg, reduction="none")
    c = np.float32(np.log(1 / 1682))
    uniform = call(
        "sampled_softmax",
        pos_scores=pos,
        neg_scores=neg,
        pos_log_q=np.full(8, c),
        neg_log_q=np.full((8, 5), c),
        reduction="none",
    )
    np.testing.assert_allclose(np.asarray(uniform), np.asarray(plain), rtol=1e-5)
    # Equals the full softmax over [pos, negs] (scipy), and a shared (K,) log Q also works.
    ref = -scipy.special.log_softmax(np.concatenate([pos[:, None], neg], 1), axis=1)[:, 0]
    np.testing.assert_allclose(np.asarray(plain), ref, rtol=1e-5)
    shared = call(
        "sampled_softmax",
        pos_scores=pos,
        neg_scores=neg,
        pos_log_q=np.full(8, c),
        neg_log_q=np.full(5, c),
    )
    assert _val(shared) == pytest.approx(float(np.mean(ref)), rel=1e-5)
    # A non-uniform Q does change the loss: popular negatives (high Q) count less.
    pop = call(
        "sampled_softmax",
        pos_scores=pos,
        neg_scores=neg,
        pos_log_q=np.full(8, c),
        neg_log_q=np.full((8, 5), 0.0),
    )
    assert _val(pop) < float(np.mean(ref))


def test_sampled_softmax_removes_accidental_hits():
    pos = jnp.array([1.0, 1.0])
    neg = jnp.array([[1.0, 0.0], [1.0, 0.0]])
    # Row 0's first "negative" is its own positive item 7: dropped by the IDs; the second row's
    # first negative is dropped by the mask. Both rows become log(1 + e^-1) = 0.313262.
    got = call(
        "sampled_softmax",
        pos_scores=pos,
        neg_scores=neg,
        pos_item_ids=jnp.array([7, 3]),
        neg_item_ids=jnp.array([[7, 2], [5, 4]]),
        neg_mask=jnp.array([[True, True], [False, True]]),
        reduction="none",
    )
    np.testing.assert_allclose(np.asarray(got), [0.313262, 0.313262], atol=1e-5)
    with pytest.raises(LossError, match="pass both pos_item_ids and neg_item_ids"):
        call("sampled_softmax", pos_scores=pos, neg_scores=neg, pos_item_ids=jnp.array([7, 3]))


# ----------------------------------------------------------------------------- every loss
# Each of these tests traces all its variants into one jitted program: one compile per loss
# instead of one per variant keeps the file fast.
@pytest.mark.parametrize("name", ALL)
def test_weights(name):
    fn = get_loss(name)
    args = make_args(name, np.random.default_rng(2))
    w0 = np.array([1, 0, 1, 1, 0], np.float32)
    w2 = np.array([2, 1, 1, 1, 1], np.float32)
    graded = np.array([1.2, 1.0, 0.5, 1.2, 0.5], np.float32)

    @fast_jit
    def variants(args, sub, dup):
        return {
            "per": fn(**args, reduction="none"),
            "mean": fn(**args),
            "sum": fn(**args, reduction="sum"),
            "w0": fn(**args, weights=w0),
            "sub": fn(**sub),
            "w2": fn(**args, weights=w2),
            "dup": fn(**dup),
            "graded": fn(**args, weights=graded, reduction="none"),
            "zeros": fn(**args, weights=jnp.zeros(B)),
        }

    out = jax.tree.map(
        np.asarray, variants(args, take_rows(args, [0, 2, 3]), take_rows(args, [0, 0, 1, 2, 3, 4]))
    )
    per = out["per"]
    assert per.shape == (B,)
    assert float(out["mean"]) == pytest.approx(per.mean(), rel=1e-5)
    assert float(out["sum"]) == pytest.approx(per.sum(), rel=1e-5)
    # Weight 0 removes an example: the same as the loss of the batch without it.
    assert float(out["w0"]) == pytest.approx(float(out["sub"]), rel=1e-5)
    # Weight 2 counts an example twice: the same as the batch with it duplicated.
    assert float(out["w2"]) == pytest.approx(float(out["dup"]), rel=1e-5)
    # Graded weights scale the per-example values ("none" returns w * l).
    np.testing.assert_allclose(out["graded"], graded * per, rtol=1e-5)
    # All-zero weights give 0, not NaN.
    assert float(out["zeros"]) == 0.0


@pytest.mark.parametrize("name", ALL)
def test_gradients_finite_with_expected_sign(name):
    fn = get_loss(name)
    args = make_args(name, np.random.default_rng(3))
    kind = LOSS_KINDS[name]
    key = "scores" if kind in ("full_softmax", "pointwise_rating") else "pos_scores"
    wrt = [key] if key == "scores" else [key, "neg_scores"]

    @fast_jit
    def grads(args):
        return [
            jax.grad(lambda x, k=k: fn(**{**args, k: x}, reduction="sum"))(args[k]) for k in wrt
        ]

    out = [np.asarray(g) for g in grads(args)]
    assert all(np.all(np.isfinite(g)) for g in out)
    if kind == "pointwise_rating":
        # Moving a prediction towards its rating lowers the loss.
        np.testing.assert_array_equal(np.sign(out[0]), np.sign(args["scores"] - args["ratings"]))
    elif kind == "full_softmax":
        assert np.all(out[0][np.arange(B), args["pos_item_ids"]] < 0)
    else:
        # Raising a positive's score lowers the loss; raising a negative's never lowers it.
        assert np.all(out[0] < 0)
        assert np.all(out[1] >= 0) and np.any(out[1] > 0)


# Every test above already runs each loss under jax.jit (num_items traced); this checks that
# eager calls (as in a notebook) agree, on one loss per code path to keep eager dispatch cheap.
@pytest.mark.parametrize(
    "name", ["bce", "adaptive_hinge", "warp", "collie_warp", "sampled_softmax"]
)
def test_jit_matches_eager(name):
    fn = get_loss(name)
    args = make_args(name, np.random.default_rng(4))
    args["weights"] = np.array([1.2, 1.0, 0.5, 0.0, 2.0], np.float32)
    eager = _val(fn(**args))
    jitted = _val(jax.jit(fn)(**args))  # every argument, num_items included, traced
    assert jitted == pytest.approx(eager, rel=1e-5)


@pytest.mark.parametrize("name", [n for n in ALL if LOSS_KINDS[n] == "pairwise"])
def test_neg_mask_equals_dropping_the_negative(name):
    fn = get_loss(name)
    args = make_args(name, np.random.default_rng(5), k=4)
    mask = np.ones((B, 4), bool)
    mask[:, 2] = False
    dropped = {**args, "neg_scores": np.delete(args["neg_scores"], 2, axis=1)}

    @fast_jit
    def variants(args, dropped):
        return (
            fn(**args, neg_mask=mask, reduction="none"),
            fn(**dropped, reduction="none"),
            fn(**args, neg_mask=np.zeros((B, 4), bool), reduction="none"),
        )

    masked, expected, no_negatives = (np.asarray(x) for x in variants(args, dropped))
    np.testing.assert_allclose(masked, expected, rtol=1e-5)
    # A row without any valid negative contributes nothing (bce keeps its positive term).
    if name != "bce":
        np.testing.assert_allclose(no_negatives, 0.0)


def test_single_negative_as_1d():
    pos, neg = jnp.array([0.3, -0.2]), jnp.array([0.1, 0.4])
    for name in ["bce", "bpr", "hinge", "collie_bpr", "adaptive_hinge", "sampled_softmax"]:
        fn = jitted(name)
        a = _val(fn(pos_scores=pos, neg_scores=neg))
        assert a == pytest.approx(_val(fn(pos_scores=pos, neg_scores=neg[:, None])), rel=1e-6)


def test_shape_errors_are_clear():
    with pytest.raises(LossError, match=r"bpr: neg_scores must have shape \(B, K\) = \(3, K\)"):
        call("bpr", pos_scores=jnp.zeros(3), neg_scores=jnp.zeros((4, 2)))
    with pytest.raises(LossError, match=r"hinge: weights must have shape \(3,\)"):
        call("hinge", pos_scores=jnp.zeros(3), neg_scores=jnp.zeros((3, 2)), weights=jnp.ones(4))
    with pytest.raises(LossError, match="reduction must be"):
        call("bce", pos_scores=jnp.zeros(3), neg_scores=jnp.zeros((3, 2)), reduction="avg")
    with pytest.raises(LossError, match="full_softmax: scores must have shape"):
        call("full_softmax", scores=jnp.zeros(3), pos_item_ids=jnp.zeros(3, int))
    with pytest.raises(LossError, match="rank_weight"):
        call(
            "warp",
            pos_scores=jnp.zeros(3),
            neg_scores=jnp.zeros((3, 2)),
            num_items=5,
            rank_weight="x",
        )
