"""Plug-ins by name (``hybridrec.plugins``): built-in names and dotted paths, for every kind.

A researcher's own loss, baseline, tower and model live in a module outside hybridrec and are
named by dotted path; a bad name lists what exists.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

from hybridrec import losses, models, plugins, towers
from hybridrec.models.baselines import BaselineError, Popularity, get_baseline


@pytest.fixture
def own_module(tmp_path, monkeypatch):
    (tmp_path / "my_plugins.py").write_text(
        textwrap.dedent(
            """
            import jax.numpy as jnp
            from hybridrec.losses import register
            from hybridrec.models.baselines import Popularity

            @register("my_squared_hinge", kind="pairwise")
            def squared_hinge(*, pos_scores, neg_scores, weights=None):
                margin = jnp.maximum(0.0, 1.0 - pos_scores[:, None] + neg_scores) ** 2
                return margin.mean()

            def untagged(*, pos_scores, neg_scores, weights=None):
                return 0.0

            class Everyone(Popularity):
                name = "everyone"

            def load_mine(num_users=20):
                from hybridrec.data.datasets import make_synthetic
                return make_synthetic(num_users=num_users, num_items=10, num_interactions=100)

            def not_a_loader():
                return 3
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_plugins"
    sys.modules.pop("my_plugins", None)


def test_a_loss_by_dotted_path_computes_the_hand_value(own_module):
    import jax.numpy as jnp

    loss = losses.get_loss("my_plugins.squared_hinge")
    assert loss.kind == "pairwise"
    # margins 1 - 2 + 1 = 0 and 1 - 2 + 3 = 2 -> squares 0 and 4 -> mean 2
    value = loss(pos_scores=jnp.array([2.0]), neg_scores=jnp.array([[1.0, 3.0]]))
    assert float(value) == pytest.approx(2.0)
    with pytest.raises(losses.LossError, match="no `kind`"):
        losses.get_loss("my_plugins.untagged")


def test_bad_names_list_what_exists(own_module):
    with pytest.raises(losses.LossError, match="known loss names: .*bpr.*dotted path"):
        losses.get_loss("bprr")
    with pytest.raises(losses.LossError, match="no module 'nope'"):
        losses.get_loss("nope.loss")
    with pytest.raises(losses.LossError, match="has no 'missing'"):
        losses.get_loss("my_plugins.missing")
    with pytest.raises(BaselineError, match="known baseline names: ease, itemknn, popularity"):
        get_baseline("eas")
    with pytest.raises(models.ModelError, match="available models: .*mf"):
        models.load("mff")
    with pytest.raises(towers.TowerError, match="available towers: .*categorical"):
        towers.load("categoricl")


def test_a_baseline_by_dotted_path(own_module):
    baseline = get_baseline("my_plugins.Everyone")
    assert isinstance(baseline, Popularity) and baseline.name == "everyone"


def test_resolve_aliases_and_registry():
    registry = {"a": 1}
    assert plugins.resolve("a", registry, what="thing", error=KeyError) == 1
    assert plugins.resolve("b", registry, what="thing", error=KeyError, aliases={"b": "a"}) == 1
    assert (
        plugins.resolve("os.path.join", registry, what="thing", error=KeyError).__name__ == "join"
    )


def test_a_dataset_by_dotted_path(own_module):
    from hybridrec.data.datasets import load_dataset

    dataset = load_dataset({"name": "my_plugins.load_mine", "options": {"num_users": 12}})
    assert dataset.interactions.num_users <= 12
    with pytest.raises(ValueError, match="returned int, not a hybridrec"):
        load_dataset({"name": "my_plugins.not_a_loader"})
    with pytest.raises(ValueError, match="known dataset names: .*movielens-100k"):
        load_dataset({"name": "movielens-1m"})
