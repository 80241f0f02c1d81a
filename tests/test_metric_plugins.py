"""Metrics as plug-ins (``hybridrec.metrics.Metric``): by dotted path or registered name.

A researcher's metric reads the top-k list's per-position relevance; it is checked here against
brute force over every order of tied items (its expectation), against a built-in metric it
re-implements, end to end through ``evaluate`` and the trainer's config, and for its errors.
"""

from __future__ import annotations

import itertools
import sys
import textwrap

import jax
import numpy as np
import pytest

from hybridrec import evaluation
from hybridrec import metrics as M
from hybridrec.data.interactions import Interactions

RBP_P = 0.8


@pytest.fixture
def own_metrics(tmp_path, monkeypatch):
    (tmp_path / "my_metrics.py").write_text(
        textwrap.dedent(
            f"""
            import jax.numpy as jnp
            from hybridrec.metrics import Metric

            def rbp(top):
                # Rank-biased precision (Moffat & Zobel), persistence {RBP_P}, cut at k.
                weights = (1 - {RBP_P}) * {RBP_P} ** jnp.arange(top.k)
                return (top.relevance * weights).sum(-1)

            def my_precision(top):
                return top.relevance.sum(-1) / top.k

            misses = Metric(
                name="misses",
                fn=lambda top: top.k - top.relevance.sum(-1),
                higher_is_better=False,
            )

            def wrong_shape(top):
                return top.relevance
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_metrics"
    sys.modules.pop("my_metrics", None)


def _rbp_of_list(relevant_flags, k):
    return sum((1 - RBP_P) * RBP_P**j * flag for j, flag in enumerate(relevant_flags[:k]))


def _brute_force_rbp(scores, relevant, exclude, k):
    """RBP@k averaged over every order of the tied candidates."""
    cand = [i for i in range(len(scores)) if i not in exclude or i in relevant]
    values = []
    groups = [sorted(i for i in cand if scores[i] == v) for v in sorted({scores[i] for i in cand})]
    groups = groups[::-1]  # best score first
    for perms in itertools.product(*(itertools.permutations(g) for g in groups)):
        ranking = [i for perm in perms for i in perm]
        values.append(_rbp_of_list([i in relevant for i in ranking], k))
    return float(np.mean(values))


def test_a_linear_plug_in_metric_is_the_expectation_over_tie_orders(own_metrics):
    rng = np.random.default_rng(0)
    n, ks = 6, (1, 3, 8)
    ranked = jax.jit(
        lambda s, r, e: M.ranking_metrics(s, r, e, ks=ks, metrics=("precision", "my_metrics.rbp"))
    )
    for trial in range(6):
        scores = rng.integers(0, 3, size=(3, n)).astype(np.float32)  # many ties
        relevant = np.full((3, 3), -1, np.int32)
        exclude = np.full((3, 2), -1, np.int32)
        for row in range(3):
            nrel = rng.integers(1, 4)
            relevant[row, :nrel] = rng.choice(n, nrel, replace=False)
            nexcl = rng.integers(0, 3)  # may overlap the relevant items, which stay candidates
            exclude[row, :nexcl] = rng.choice(n, nexcl, replace=False)
        out = ranked(scores, relevant, exclude)
        for row in range(3):
            rel = {int(i) for i in relevant[row] if i >= 0}
            excl = {int(i) for i in exclude[row] if i >= 0}
            for k in ks:
                expected = _brute_force_rbp(scores[row].tolist(), rel, excl, k)
                np.testing.assert_allclose(
                    out[f"rbp@{k}"][row], expected, atol=2e-6, err_msg=f"trial {trial} row {row}"
                )


@pytest.mark.parametrize("ties", ["expected", "index"])
def test_a_plug_in_that_re_implements_precision_matches_the_built_in(own_metrics, ties):
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, size=(8, 30)).astype(np.float32)
    relevant = np.stack([rng.choice(30, 5, replace=False) for _ in range(8)]).astype(np.int32)
    relevant[::2, 3:] = -1
    fn = jax.jit(
        lambda s, r: M.ranking_metrics(
            s, r, ks=(5, 10), metrics=("precision", "my_metrics.my_precision"), ties=ties
        )
    )
    out = fn(scores, relevant)
    for k in (5, 10):
        np.testing.assert_allclose(out[f"my_precision@{k}"], out[f"precision@{k}"], atol=1e-6)


def _interactions(pairs, num_users, num_items):
    pairs = np.asarray(pairs, np.int32)
    return Interactions.from_arrays(
        pairs[:, 0], pairs[:, 1], num_users=num_users, num_items=num_items
    )


def test_evaluate_reports_plug_ins_per_user_and_per_segment(own_metrics):
    rng = np.random.default_rng(2)
    num_users, num_items = 12, 25
    train = _interactions(
        [(u, i) for u in range(num_users - 2) for i in rng.choice(num_items, 4, replace=False)],
        num_users,
        num_items,
    )
    train_sets = [set(train.item_ids[train.user_ids == u].tolist()) for u in range(num_users)]
    test_pairs = []
    for u in range(num_users):
        options = [i for i in range(num_items) if i not in train_sets[u]]
        test_pairs += [(u, int(i)) for i in rng.choice(options, 2, replace=False)]
    test = _interactions(test_pairs, num_users, num_items)
    table = rng.normal(size=(num_users, num_items)).astype(np.float32)  # no ties

    result = evaluation.evaluate(
        lambda user_ids: table[np.asarray(user_ids)],
        test,
        train=train,
        ks=(5,),
        metrics=("ndcg", "my_metrics.rbp", "my_metrics.misses"),
        mode="filtered",
        split_name="val",
        segments=("cold_users",),
    )
    per_user_rbp, per_user_misses = [], []
    for u in range(num_users):
        ranking = [int(i) for i in np.argsort(-table[u]) if int(i) not in train_sets[u]]
        flags = [i in {p[1] for p in test_pairs if p[0] == u} for i in ranking]
        per_user_rbp.append(_rbp_of_list(flags, 5))
        per_user_misses.append(5 - sum(flags[:5]))
    np.testing.assert_allclose(result.metrics["val/rbp@5"], np.mean(per_user_rbp), atol=1e-6)
    np.testing.assert_allclose(result.metrics["val/misses@5"], np.mean(per_user_misses), atol=1e-5)
    users, values = result.values("val/rbp@5")
    np.testing.assert_allclose(values, np.asarray(per_user_rbp)[users], atol=1e-6)
    # The two users without training items are the cold segment.
    np.testing.assert_allclose(
        result.metrics["val/cold_users/rbp@5"], np.mean(per_user_rbp[-2:]), atol=1e-6
    )


def test_registered_metric_by_its_name(own_metrics):
    import my_metrics

    metric = M.register(my_metrics.rbp, name="rbp_registered")
    try:
        assert M.resolve_metric("rbp_registered") is metric
        out = M.ranking_metrics(
            np.array([[3.0, 2.0, 1.0]]), np.array([[1]]), ks=(2,), metrics=("rbp_registered",)
        )
        assert float(out["rbp_registered@2"][0]) == pytest.approx((1 - RBP_P) * RBP_P)
    finally:
        M._REGISTRY.pop("rbp_registered", None)
    with pytest.raises(M.MetricsError, match="built-in"):
        M.register(my_metrics.rbp, name="ndcg")


def test_metric_errors_say_what_is_wrong(own_metrics):
    with pytest.raises(M.MetricsError, match="known metric names: .*auc.*ndcg.*dotted path"):
        M.check_metric_names(("ndgc",), (10,))
    with pytest.raises(M.MetricsError, match="no module 'nope'"):
        M.check_metric_names(("nope.metric",), (10,))
    with pytest.raises(M.MetricsError, match="has no 'missing'"):
        M.check_metric_names(("my_metrics.missing",), (10,))
    import my_metrics

    M.register(my_metrics.misses)
    try:
        with pytest.raises(M.MetricsError, match="both report as 'misses'"):
            # The registered "misses" and the dotted path to the same Metric report alike.
            M.check_metric_names(("my_metrics.misses", "misses"), (10,))
    finally:
        M._REGISTRY.pop("misses", None)


def test_a_plug_in_with_the_wrong_shape_is_refused(own_metrics):
    with pytest.raises(M.MetricsError, match="one value per user"):
        M.ranking_metrics(
            np.array([[3.0, 2.0, 1.0]]),
            np.array([[1]]),
            ks=(2,),
            metrics=("my_metrics.wrong_shape",),
        )


def test_compare_learns_a_plug_in_metric_direction(own_metrics):
    from experiments import compare

    assert compare.metric_direction("val/misses@10") is None
    compare._learn_plugin_directions({"eval.metrics": ["ndcg", "my_metrics.misses", "gone.x"]})
    try:
        assert compare.metric_direction("val/misses@10") == "min"
        assert compare.metric_direction("val/ndcg@10") == "max"
    finally:
        compare._PLUGIN_DIRECTIONS.clear()


def test_the_trainer_refuses_an_unknown_metric_before_loading_data(tmp_path):
    from experiments.configs import mf
    from hybridrec.train import train_and_evaluate

    config = mf.get_config("smoke")
    config.eval.metrics = ("ndcg", "ndgc")
    with pytest.raises(ValueError, match=r"config.eval.metrics: unknown metric 'ndgc'"):
        train_and_evaluate(config, str(tmp_path / "run"))
