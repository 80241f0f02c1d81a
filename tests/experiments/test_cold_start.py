"""experiments.cold_start: the split, the runs it plans, the statistics, the report, end to end."""

from __future__ import annotations

import math
import os

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from experiments import cold_start
from experiments.cold_start import AblationError
from experiments.configs import hybrid, mf
from hybridrec.data import splits
from hybridrec.data.interactions import Interactions
from hybridrec.evaluation import confidence_interval


# ----------------------------------------------------------------------------------- the split
def _interactions(num_users=50, num_items=40, per_user=12, seed=0) -> Interactions:
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(num_users), per_user)
    items = np.concatenate(
        [rng.choice(num_items, size=per_user, replace=False) for _ in range(num_users)]
    )
    return Interactions.from_arrays(users, items, num_users=num_users, num_items=num_items)


def _pairs(x: Interactions) -> set[tuple[int, int]]:
    return set(zip(x.user_ids.tolist(), x.item_ids.tolist()))


@pytest.mark.parametrize("entity", ["item", "user"])
def test_cold_and_warm_split_holds_out_both(entity):
    x = _interactions()
    s = cold_start.cold_and_warm_split(x, entity=entity, test_p=0.2, val_p=0.1, seed=3)
    train, val, test = _pairs(s.train), _pairs(s.val), _pairs(s.test)
    # A partition of the interactions.
    assert train | val | test == _pairs(x)
    assert not (train & val) and not (train & test) and not (val & test)
    ids = (lambda p: {i for _, i in p}) if entity == "item" else (lambda p: {u for u, _ in p})
    cold = s.cold_items if entity == "item" else s.cold_users
    other = s.cold_users if entity == "item" else s.cold_items
    assert other is None
    # ceil(0.2 * 40) + ceil(0.1 * 40) items, or the same of the 50 users.
    n = x.num_items if entity == "item" else x.num_users
    assert len(cold) == math.ceil(0.2 * n) + math.ceil(0.1 * n)
    assert not (ids(train) & set(cold.tolist())), "a cold entity has a training interaction"
    # Both held-out parts have a cold and a warm portion; the warm one is seen in training.
    for part in (val, test):
        cold_part = {p for p in part if (p[1] if entity == "item" else p[0]) in set(cold.tolist())}
        warm_part = part - cold_part
        assert cold_part and warm_part
        assert ids(warm_part) <= ids(train)
    # Same seed, same split; another seed, another one.
    again = cold_start.cold_and_warm_split(x, entity=entity, test_p=0.2, val_p=0.1, seed=3)
    assert _pairs(again.test) == test
    other_seed = cold_start.cold_and_warm_split(x, entity=entity, test_p=0.2, val_p=0.1, seed=4)
    assert _pairs(other_seed.test) != test


def test_split_is_registered_only_while_the_ablation_runs():
    assert cold_start.SPLIT_NAME not in splits.SPLITS
    with cold_start._split_registered():
        s = splits.make_split(
            _interactions(), {"name": cold_start.SPLIT_NAME, "entity": "item", "seed": 1}
        )
        assert s.cold_items is not None
    assert cold_start.SPLIT_NAME not in splits.SPLITS
    with pytest.raises(splits.SplitError, match="entity"):
        cold_start.cold_and_warm_split(_interactions(), entity="both")


# ----------------------------------------------------------------------------------- the runs
def test_tower_subsets_of_the_hybrid_config():
    config = hybrid.get_config()
    items = cold_start.tower_subsets(config.model.item_towers)
    # ids first, one ids+<tower> per metadata tower (in the config's order), then all, metadata.
    names = list(items)
    assert names[0] == "ids" and names[-2:] == ["all", "metadata"]
    assert set(names[1:-2]) == {"ids+genres", "ids+year"}
    assert list(items["ids"]) == ["id"]
    assert set(items["ids+year"]) == {"id", "year"}
    assert set(items["metadata"]) == {"genres", "year"}
    assert set(items["all"]) == set(config.model.item_towers)
    users = cold_start.tower_subsets(config.model.user_towers)
    assert set(users) == {
        "ids", "ids+age", "ids+gender", "ids+occupation", "ids+history", "all", "metadata"
    }  # fmt: skip
    # One metadata tower: ids+<it> would be "all" again.
    one = cold_start.tower_subsets({"id": {"tower": "ids"}, "g": {"tower": "categorical"}})
    assert list(one) == ["ids", "all", "metadata"]
    assert list(cold_start.tower_subsets({"id": {"tower": "ids"}})) == ["ids"]
    with pytest.raises(AblationError, match="no ID tower"):
        cold_start.tower_subsets({"g": {"tower": "categorical", "field": "genres"}})


def test_ablation_runs_set_towers_dropout_and_split():
    base = hybrid.get_config()
    runs = cold_start.ablation_runs(base, seeds=(0, 1), id_dropout=0.4)
    by = {(r["split"], r["towers"], r["seed"]): r["config"] for r in runs}
    # 5 item subsets (ids, 2 x ids+tower, all, metadata) and 7 user subsets (4 metadata towers:
    # age, gender, occupation, history), plus popularity, for each of 2 seeds.
    assert len(runs) == 2 * (6 + 8)
    c = by[("cold_items", "ids+genres", 1)]
    assert set(c.model.item_towers) == {"id", "genres"}
    assert list(c.model.user_towers) == list(base.model.user_towers)  # the other side is kept
    assert c.model.id_dropout == 0.4 and c.seed == 1
    assert c.split.to_dict() == dict(
        name=cold_start.SPLIT_NAME, entity="item", seed=1, **cold_start.SPLIT_OPTIONS
    )
    assert tuple(c.eval.segments) == ("cold_items", "warm_items")
    assert by[("cold_items", "ids", 0)].model.id_dropout == 0.0  # nothing to fall back on
    meta = by[("cold_items", "metadata", 0)]
    assert "id" not in meta.model.item_towers and meta.model.item_bias is False
    u = by[("cold_users", "all", 0)]
    assert u.model.user_id_dropout == 0.4 and u.model.id_dropout == base.model.id_dropout
    assert tuple(u.eval.segments) == ("cold_users", "warm_users")
    pop = by[("cold_users", "popularity", 0)]
    assert pop.model.name == "popularity" and pop.features.schema is None
    assert base.model.id_dropout == hybrid.get_config().model.id_dropout != 0.4, (
        "the base config must not be modified"
    )

    # Without id_dropout, the cold side keeps the config's own rate (0.3 where it has none:
    # hybrid.py ships without ID dropout on either side).
    assert base.model.id_dropout == 0 and base.model.user_id_dropout == 0
    with_rate = hybrid.get_config()
    with_rate.model.id_dropout = 0.2
    own = {
        (r["split"], r["towers"]): r["config"]
        for r in cold_start.ablation_runs(with_rate, seeds=(0,))
    }
    assert own[("cold_items", "all")].model.id_dropout == 0.2
    assert own[("cold_users", "all")].model.user_id_dropout == cold_start.DEFAULT_ID_DROPOUT
    fallback = {
        (r["split"], r["towers"]): r["config"] for r in cold_start.ablation_runs(base, seeds=(0,))
    }
    assert fallback[("cold_items", "all")].model.id_dropout == cold_start.DEFAULT_ID_DROPOUT

    subset = cold_start.ablation_runs(base, seeds=(0,), subsets=["all", "ids+age"])
    assert {(r["split"], r["towers"]) for r in subset} == {
        ("cold_items", "ids"), ("cold_items", "all"),
        ("cold_users", "ids"), ("cold_users", "all"), ("cold_users", "ids+age"),
    }  # fmt: skip
    with pytest.raises(AblationError, match="unknown tower subset.*ids\\+genres"):
        cold_start.ablation_runs(base, subsets=["ids+nothing"])
    with pytest.raises(AblationError, match="hybrid"):
        cold_start.ablation_runs(mf.get_config())
    with pytest.raises(AblationError, match="unknown split"):
        cold_start.ablation_runs(base, split_kinds=["cold_everything"])


# ----------------------------------------------------------------------------------- statistics
def _fake_runs(rng: np.random.Generator, effect: float = 0.2) -> list[dict]:
    """Per-user arrays as train.py writes them, for ids (reference) and all, 2 seeds."""
    runs = []
    for seed in (0, 1):
        users = np.sort(rng.choice(100, size=40, replace=False))
        base = rng.random(40)
        for towers, shift in (("ids", 0.0), ("all", effect)):
            per_user = {}
            for segment in ("cold_items", "warm_items"):
                for metric in cold_start.METRICS:
                    name = f"test/{segment}/{metric}"
                    noise = rng.normal(0, 0.05, 40)
                    delta = shift if segment == "cold_items" else 0.0
                    per_user[name] = base + delta + noise
                    per_user[f"{name}:user_ids"] = users
            # The validation split is there too, and must not be what is reported.
            per_user["val/cold_items/ndcg@10"] = np.full(40, 99.0)
            per_user["val/cold_items/ndcg@10:user_ids"] = users
            runs.append(dict(split="cold_items", towers=towers, seed=seed, per_user=per_user))
    return runs


def test_summarize_pools_seeds_and_tests_against_ids():
    rng = np.random.default_rng(0)
    runs = _fake_runs(rng)
    table = cold_start.summarize(runs)
    assert len(table) == 2 * 2 * len(cold_start.METRICS)  # towers x segments x metrics
    assert list(pd.unique(table["towers"])) == ["ids", "all"]

    row = table[
        (table.towers == "all") & (table.segment == "cold_items") & (table.metric == "ndcg@10")
    ].iloc[0]
    values = [r["per_user"]["test/cold_items/ndcg@10"] for r in runs if r["towers"] == "all"]
    ref = [r["per_user"]["test/cold_items/ndcg@10"] for r in runs if r["towers"] == "ids"]
    pooled = np.concatenate(values)
    mean, low, high = confidence_interval(pooled)
    assert (row["mean"], row["ci_low"], row["ci_high"]) == pytest.approx((mean, low, high))
    assert row["num_users"] == 80 and row["num_seeds"] == 2
    assert row["seed_sd"] == pytest.approx(np.std([v.mean() for v in values], ddof=1))
    # Same users within a seed: the paired difference is the mean of the per-pair differences.
    diffs = np.concatenate([a - b for a, b in zip(values, ref)])
    assert row["diff"] == pytest.approx(diffs.mean())
    assert row["p_value"] == pytest.approx(stats.ttest_rel(pooled, np.concatenate(ref)).pvalue)
    assert row["diff_ci_low"] < row["diff"] < row["diff_ci_high"]
    assert row["diff"] == pytest.approx(0.2, abs=0.03) and row["p_value"] < 1e-6

    warm = table[(table.towers == "all") & (table.segment == "warm_items")]
    assert (warm["p_value"] > 1e-3).all(), "no planted effect on warm items"
    assert table[table.towers == "ids"]["diff"].isna().all()


def test_summarize_pairs_only_common_users_and_skips_missing_segments():
    users = np.array([1, 2, 3, 4])
    ref = {
        "test/cold_items/auc": np.array([0.1, 0.2, 0.3, 0.4]),
        "test/cold_items/auc:user_ids": users,
    }
    # Model "all" saw users 2..5: only 2, 3, 4 are paired. Nobody had warm test items.
    other = {
        "test/cold_items/auc": np.array([0.5, 0.5, 0.5, 0.9]),
        "test/cold_items/auc:user_ids": np.array([2, 3, 4, 5]),
    }
    runs = [
        dict(split="cold_items", towers="ids", seed=0, per_user=ref),
        dict(split="cold_items", towers="all", seed=0, per_user=other),
    ]
    table = cold_start.summarize(runs, metrics=("auc",))
    assert set(table.segment) == {"cold_items"}
    row = table[table.towers == "all"].iloc[0]
    assert row["mean"] == pytest.approx(0.6)  # over all its users
    assert row["diff"] == pytest.approx(np.mean([0.3, 0.2, 0.1]))  # over the common ones
    assert math.isnan(row["seed_sd"])


def test_write_report(tmp_path):
    table = cold_start.summarize(_fake_runs(np.random.default_rng(1)))
    paths = cold_start.write_report(table, str(tmp_path), hparams={"config": "fake.py"})
    text = open(paths["markdown"]).read()
    assert "### cold_items split" in text
    assert "| all | cold_items |" in text and "| ids | warm_items |" in text
    assert "**+0.2" in text  # a significant difference is bold
    csv = pd.read_csv(paths["csv"])
    pd.testing.assert_frame_equal(csv, table, check_dtype=False)
    assert len(paths["plots"]) == len(cold_start.METRICS)
    for path in paths["plots"]:
        assert matplotlib.image.imread(path).shape[0] > 100
    summary_runs = sorted(os.listdir(paths["summary"]))
    assert summary_runs == ["cold_items-all", "cold_items-ids"]
    from experiments.compare import read_events

    history, hparams = read_events(os.path.join(paths["summary"], "cold_items-all"))
    assert hparams["towers"] == "all" and hparams["config"] == "fake.py"
    row = table[(table.towers == "all") & (table.segment == "cold_items") & (table.metric == "auc")]
    assert history[0]["cold_items/auc"] == pytest.approx(float(row["mean"].iloc[0]), rel=1e-6)


def test_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit) as err:
        cold_start.main(["--config", "mf.py", "--out", "/nonexistent/never-written"])
    assert err.value.code == 2
    assert "hybrid" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cold_start.main(["--config", "no_such_config.py"])
    assert "not found" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_smoke_ablation_end_to_end(tmp_path):
    out = tmp_path / "ablation"
    args = [
        "--smoke",
        "--seeds",
        "1",
        "--subsets",
        "ids,all,metadata,popularity",
        "--no-peer",  # the LightFM row has its own test
        "--out",
        str(out),
    ]
    assert cold_start.main(args) == 0
    table = pd.read_csv(out / "ablation.csv")
    expected = {
        (split, towers, segment)
        for split, segments in (
            ("cold_items", ("cold_items", cold_start.AMONG_COLD, "warm_items")),
            ("cold_users", ("cold_users", "warm_users")),
        )
        for towers in ("ids", "all", "metadata", "popularity")
        for segment in segments
    }
    assert set(zip(table.split, table.towers, table.segment)) == expected
    assert set(table.metric) == set(cold_start.METRICS)
    assert np.isfinite(table[["mean", "ci_low", "ci_high"]].to_numpy()).all()
    assert np.isfinite(table[table.towers != "ids"][["diff", "p_value"]].to_numpy()).all()
    for split in ("cold_items", "cold_users"):
        assert (out / f"ablation_{split}_ndcg_at_10.png").exists()
        for towers in ("ids", "all", "metadata", "popularity"):
            run = out / split / towers / "seed0"
            assert (run / "metrics.json").exists() and (run / "per_user.npz").exists()
            assert list(run.glob("events.out.tfevents.*"))
    # Popularity scores every cold item 0: among themselves they all tie (AUC 1/2, or 0 for a
    # user whose every cold candidate is relevant).
    with np.load(out / "cold_items" / "popularity" / "seed0" / "per_user.npz") as f:
        auc = f[f"test/{cold_start.AMONG_COLD}/auc"]
    assert len(auc) > 10 and np.isin(auc, [0.0, 0.5]).all()
    # Rerunning into the same directory reuses the finished runs.
    mtime = os.path.getmtime(out / "cold_items" / "all" / "seed0" / "metrics.json")
    assert cold_start.main(args) == 0
    assert os.path.getmtime(out / "cold_items" / "all" / "seed0" / "metrics.json") == mtime


@pytest.mark.slow
def test_metadata_beats_ids_on_cold_items_with_planted_signal(tmp_path):
    # Synthetic movies whose item traits are mostly explained by their metadata: the towers
    # must carry that to items never seen in training; the ID-only model cannot.
    config = hybrid.get_config("smoke")
    config.data.synthetic = dict(
        num_users=300, num_items=200, num_interactions=9000, flavour="movies", seed=0,
        metadata_strength=0.9, user_metadata_strength=0.0,
    )  # fmt: skip
    config.model.embedding_dim = 16
    config.model.item_towers = dict(
        id=dict(tower="ids"),
        genres=dict(tower="categorical", field="genres", pooling="mean"),
        freebase=dict(tower="text", field="freebase"),
    )
    config.train.num_epochs = 8
    config.train.steps_per_dispatch = 16
    config.optimizer.plateau = None
    config.optimizer.schedule = dict(name="constant")  # a fixed setup, whatever hybrid.py tunes
    runs = cold_start.ablation_runs(
        config, seeds=(0,), split_kinds=["cold_items"], subsets=["ids", "all"]
    )
    table = cold_start.summarize(cold_start.run_ablation(runs, str(tmp_path), log=lambda _: None))
    rows = table[table.towers == "all"].set_index(["segment", "metric"])
    # Among the cold items, the ID-only model ties them all: AUC 1/2.
    ids = table[(table.towers == "ids") & (table.segment == cold_start.AMONG_COLD)]
    assert float(ids[ids.metric == "auc"]["mean"].iloc[0]) == pytest.approx(0.5, abs=0.01)
    among = rows.loc[cold_start.AMONG_COLD]
    assert among.loc["auc", "mean"] > 0.65, among
    # Ranked against the whole (warm) catalogue, cold items' top-10 metrics are tiny for both;
    # their AUC still improves.
    for segment, metric in (
        (cold_start.AMONG_COLD, "ndcg@10"),
        (cold_start.AMONG_COLD, "auc"),
        ("cold_items", "auc"),
    ):
        row = rows.loc[(segment, metric)]
        assert row["diff"] > 0 and row["p_value"] < 0.01, (segment, metric, row)


# ----------------------------------------------------------------------------------- the peer
def test_ablation_runs_with_field_dropout_peer_and_warm_rows():
    base = hybrid.get_config()
    runs = cold_start.ablation_runs(
        base, seeds=(0, 1), subsets=["all"], field_dropout=0.1, peer=True, warm=True
    )
    by = {(r["split"], r["towers"], r["seed"]): r["config"] for r in runs}
    assert {(k, t) for k, t, _ in by} == {
        ("cold_items", "ids"), ("cold_items", "all"), ("cold_items", "all+fd0.1"),
        ("cold_items", "lightfm"),
        ("cold_users", "ids"), ("cold_users", "all"), ("cold_users", "all+fd0.1"),
        ("standard", "hybrid"), ("standard", "hybrid+fd0.1"), ("standard", "ease"),
        ("standard", "lightfm"),
    }  # fmt: skip
    assert len(runs) == 2 * 11
    fd, plain = by[("cold_items", "all+fd0.1", 1)], by[("cold_items", "all", 1)]
    assert fd.model.field_dropout == 0.1 and fd.model.user_field_dropout == 0.1
    # The plain row keeps the config's own rates (hybrid.py: users 0.1, items 0).
    assert plain.model.get("field_dropout", 0.0) == base.model.get("field_dropout", 0.0)
    assert plain.model.get("user_field_dropout") == base.model.get("user_field_dropout")
    assert fd.split == plain.split and fd.seed == plain.seed == 1
    # LightFM is fitted on the data, split and features of the runs of its seed, with the item
    # metadata of the config's towers.
    peer = by[("cold_items", "lightfm", 1)]
    assert peer.split == plain.split and peer.features == plain.features
    assert peer.model.item_towers == base.model.item_towers
    only_ids = cold_start.ablation_runs(base, seeds=(0,), subsets=["ids"], peer=True)
    assert [r["towers"] for r in only_ids] == ["ids", "lightfm", "ids"]
    assert sorted(cold_start._item_fields(peer)) == ["genres", "release_year"]
    # The warm rows keep the config's own split; EASE has no features.
    for towers in ("hybrid", "hybrid+fd0.1", "ease", "lightfm"):
        assert by[("standard", towers, 0)].split == base.split
    assert by[("standard", "ease", 0)].model.name == "ease"
    assert by[("standard", "ease", 0)].features.schema is None
    assert by[("standard", "hybrid", 0)].model == base.model
    assert base.model == hybrid.get_config().model, "the base config must not be modified"
    no_peer = cold_start.ablation_runs(base, seeds=(0,), subsets=["all"])
    assert all(r["towers"] != "lightfm" and r["split"] != "standard" for r in no_peer)


def test_lightfm_item_features_from_encoded_bags():
    sp = pytest.importorskip("scipy.sparse")
    table = {
        "ids": np.arange(3),
        # item 0: values 2 and 3; item 1: value 3 and padding; item 2: missing (id 1)
        "genres/ids": np.array([[2, 3], [3, 0], [1, 0]], np.int32),
        "genres/weights": np.array([[1.0, 1.0], [1.0, 0.0], [1.0, 0.0]], np.float32),
        "title/ids": np.array([[4], [2], [0]], np.int32),
        "title/weights": np.array([[0.5], [2.0], [0.0]], np.float32),
        "year": np.zeros((3, 2), np.float32),  # dense only: left out with a note
    }
    matrix, notes = cold_start.lightfm_item_features(
        table, ["genres", "title", "year"], normalize=False
    )
    assert sp.issparse(matrix) and matrix.dtype == np.float32
    # 3 identity columns, then genres ids 0..3, then title ids 0..4 (0 and 1 never used).
    expected = np.zeros((3, 3 + 4 + 5), np.float32)
    expected[[0, 1, 2], [0, 1, 2]] = 1.0
    expected[0, 3 + 2] = expected[0, 3 + 3] = expected[1, 3 + 3] = 1.0
    expected[0, 7 + 4], expected[1, 7 + 2] = 0.5, 2.0
    np.testing.assert_array_equal(matrix.toarray(), expected)
    assert len(notes) == 1 and "'year'" in notes[0]
    normalized, _ = cold_start.lightfm_item_features(table, ["genres", "title"])
    np.testing.assert_allclose(np.asarray(normalized.sum(axis=1)).ravel(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(normalized.toarray()[0], expected[0] / expected[0].sum(), 1e-6)


def test_lightfm_missing_explains_the_skipped_row(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "lightfm", None)  # `import lightfm` raises ImportError
    note = cold_start.lightfm_missing()
    assert "LightFM row skipped" in note and "requirements-peers.txt" in note


def test_summarize_the_warm_benchmark_against_the_peer():
    rng = np.random.default_rng(2)
    users = np.arange(30)
    base = rng.random(30)
    runs = []
    for towers, shift in (("lightfm", 0.0), ("hybrid", 0.1), ("ease", 0.0)):
        per_user = {f"val/{m}": base + shift + rng.normal(0, 0.01, 30) for m in cold_start.METRICS}
        per_user.update({f"val/{m}:user_ids": users for m in cold_start.METRICS})
        runs.append(dict(split="standard", towers=towers, seed=0, per_user=per_user))
    table = cold_start.summarize(runs, reference="lightfm")
    assert set(table.segment) == {"all"} and len(table) == 3 * len(cold_start.METRICS)
    row = table[(table.towers == "hybrid") & (table.metric == "auc")].iloc[0]
    assert row["diff"] == pytest.approx(0.1, abs=0.01) and row["p_value"] < 1e-6
    assert table[table.towers == "lightfm"]["diff"].isna().all()
    text = cold_start.to_markdown(table, reference="lightfm")
    assert "### standard split" in text and "Δauc vs lightfm" in text
    assert "| hybrid | all |" in text


@pytest.mark.slow
def test_smoke_benchmark_with_lightfm_end_to_end(tmp_path):
    pytest.importorskip("lightfm")
    out = tmp_path / "peer"
    args = ["--smoke", "--seeds", "1", "--splits", "cold_items", "--subsets", "ids", "--warm"]
    assert cold_start.main([*args, "--lightfm-epochs", "2", "--out", str(out)]) == 0
    table = pd.read_csv(out / "ablation_vs_lightfm.csv")
    rows = set(zip(table.split, table.towers, table.segment))
    for segment in ("cold_items", cold_start.AMONG_COLD, "warm_items"):
        assert ("cold_items", "lightfm", segment) in rows
        assert ("cold_items", "ids", segment) in rows
    assert {t for s, t, _ in rows if s == "standard"} == {"hybrid", "ease", "lightfm"}
    others = table[table.towers != "lightfm"]
    assert np.isfinite(others[["diff", "p_value"]].to_numpy()).all()
    assert np.isfinite(table[["mean", "ci_low", "ci_high"]].to_numpy()).all()
    facts = (out / "cold_items" / "lightfm" / "seed0" / "lightfm.json").read_text()
    assert '"no_components": 64' in facts and '"epochs": 2' in facts
    assert "Against lightfm" in (out / "ablation.md").read_text()
