"""experiments.compare: reads run directories into one table, finds the config keys that differ."""

import os

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from experiments import compare
from experiments.compare import RunNotFoundError
from hybridrec.logging import MetricWriter, write_json


def _config(dim=32, lr=0.01, model="mf", workdir="runs/x"):
    return {
        "data": {"dataset": "ml-100k", "min_rating": 4},
        "model": {"name": model, "embedding_dim": dim, "towers": ["ids"]},
        "optimizer": {"learning_rate": lr},
        "workdir": workdir,
        "seed": 0,
    }


def _make_run(
    run_dir, config, curve, final=None, *, hparams=None, keep_jsonl=True, keep_config=True
):
    """A run directory as the training loop writes it: config, events + jsonl, final metrics.

    ``curve`` maps step -> ndcg; train/loss is logged every step, val/ndcg@10 at the curve steps.
    """
    os.makedirs(run_dir, exist_ok=True)
    if keep_config:
        write_json(os.path.join(run_dir, "config.json"), config)
    with MetricWriter(str(run_dir)) as writer:
        if hparams:
            writer.write_hparams(hparams, ["val/ndcg@10"])
        for step, ndcg in curve.items():
            writer.write_scalars(step, {"train/loss": 1.0 / step})
            writer.write_scalars(step, {"val/ndcg@10": ndcg, "val/collie_map@10": ndcg / 2})
    if final is not None:
        write_json(os.path.join(run_dir, "metrics.json"), final)
    if not keep_jsonl:
        os.remove(os.path.join(run_dir, "metrics.jsonl"))
    os.makedirs(os.path.join(run_dir, "checkpoints", "3"), exist_ok=True)  # not a run
    return str(run_dir)


def _final(ndcg, wall):
    return {
        "val/ndcg@10": ndcg,
        "val/collie_map@10": ndcg / 2,
        "train/loss": 0.25,
        "wall_time_s": wall,
        "step": 4,
    }


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    _make_run(root / "mf", _config(workdir="runs/mf"), {2: 0.1, 4: 0.2}, _final(0.2, 10.0))
    _make_run(
        root / "hybrid",
        _config(dim=64, model="hybrid", workdir="runs/hybrid"),
        {2: 0.15, 4: 0.3},
        _final(0.3, 25.0),
    )
    _make_run(
        root / "sweep" / "lr1",  # nested one level deeper
        _config(lr=0.1, workdir="runs/sweep/lr1"),
        {2: 0.05, 4: 0.12},
        _final(0.125, 12.5),
    )
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not a run")
    return root


def test_table_values_and_differing_config_keys(runs):
    df = compare.compare_runs(
        [runs / "mf", runs / "hybrid", runs / "sweep" / "lr1"],
        metrics=["val/ndcg@10", "val/collie_map@10"],
    )
    assert list(df.index) == ["mf", "hybrid", "lr1"]
    assert df.index.name == "run"
    assert list(df.columns) == [
        "val/ndcg@10",
        "val/collie_map@10",
        "wall_time_s",
        "model.embedding_dim",
        "model.name",
        "optimizer.learning_rate",
    ]  # workdir differs too but names a location; data.*, seed and towers are equal
    np.testing.assert_allclose(df["val/ndcg@10"], [0.2, 0.3, 0.125])
    np.testing.assert_allclose(df["val/collie_map@10"], [0.1, 0.15, 0.0625])
    np.testing.assert_allclose(df["wall_time_s"], [10.0, 25.0, 12.5])
    assert df["model.embedding_dim"].tolist() == [32, 64, 32]
    assert df["model.name"].tolist() == ["mf", "hybrid", "mf"]
    assert df["optimizer.learning_rate"].tolist() == [0.01, 0.01, 0.1]
    assert "status" not in df.columns  # all complete
    # default metrics: evaluation first, then train/*; the step counter is not a metric
    default = compare.compare_runs([runs / "mf", runs / "hybrid"])
    assert default.attrs["metrics"] == ["val/collie_map@10", "val/ndcg@10", "train/loss"]
    assert default.attrs["config_keys"] == ["model.embedding_dim", "model.name"]


def test_differing_config_keys():
    configs = [
        {"a": 1, "b.c": "x", "d": 32, "out_dir": "/tmp/a", "e": "[1, 2]"},
        {"a": 1, "b.c": "y", "d": 32.0, "out_dir": "/tmp/b", "e": "[1, 2]", "f": True},
    ]
    # 32 vs 32.0 is the same setting (config.json vs TensorBoard hparams); a key only one run has
    # differs; *_dir is a location
    assert compare.differing_config_keys(configs) == ["b.c", "f"]
    assert compare.differing_config_keys(configs[:1]) == []


def test_load_run_reads_all_files(runs):
    run = compare.load_run(runs / "hybrid")
    assert run["name"] == "hybrid" and run["complete"] and run["source"] == "metrics.json"
    assert run["config"]["model"]["embedding_dim"] == 64
    assert run["flat_config"]["model.embedding_dim"] == 64
    assert run["metrics"] == {
        "val/ndcg@10": 0.3,
        "val/collie_map@10": 0.15,
        "train/loss": 0.25,
        "step": 4.0,
    }
    assert run["wall_time_s"] == 25.0
    assert run["last_step"] == 4
    assert [r["step"] for r in run["history"]] == [2, 2, 4, 4]  # metrics.jsonl, one per call


def test_fallback_to_tensorboard_events_for_interrupted_run(runs):
    # Interrupted and copied without the jsonl or config: only the events (scalars + hparams).
    _make_run(
        runs / "killed",
        {},
        {2: 0.11, 4: 0.21, 6: 0.27},
        hparams={"model.embedding_dim": 128, "model.name": "mf", "optimizer.learning_rate": 0.01},
        keep_jsonl=False,
        keep_config=False,
    )
    run = compare.load_run(runs / "killed")
    assert run["source"] == "events" and not run["complete"]
    assert run["last_step"] == 6
    assert run["metrics"]["val/ndcg@10"] == pytest.approx(0.27)  # float32 in the events
    assert run["metrics"]["train/loss"] == pytest.approx(1 / 6)
    assert run["flat_config"]["model.embedding_dim"] == 128  # from the HParams plugin
    assert [r["step"] for r in run["history"]] == [2, 4, 6]
    assert run["wall_time_s"] >= 0.0  # estimated from the event times

    df = compare.compare_runs([runs / "mf", runs / "killed"], metrics=["val/ndcg@10"])
    assert df.loc["killed", "val/ndcg@10"] == pytest.approx(0.27)
    assert df.loc["killed", "model.embedding_dim"] == 128
    assert df["status"].tolist() == ["complete", "partial (step 6)"]
    # the keys only config.json has (data.*, seed, towers) differ from the hparams-only run
    assert "model.name" not in df.columns and "data.dataset" in df.columns


def test_events_without_hparams_read_with_empty_hparams(runs):
    # Killed before the hparams were logged (or written by another tool): scalars only.
    _make_run(runs / "bare", {}, {2: 0.11, 4: 0.2}, keep_jsonl=False, keep_config=False)
    records, hparams = compare.read_events(runs / "bare")
    assert hparams == {}
    assert [r["step"] for r in records] == [2, 4]
    assert records[-1]["val/ndcg@10"] == pytest.approx(0.2)
    assert compare.load_run(runs / "bare")["metrics"]["val/ndcg@10"] == pytest.approx(0.2)


def test_interrupted_run_with_jsonl_uses_its_last_values(runs):
    _make_run(runs / "partial", _config(dim=16), {2: 0.07, 4: 0.09})
    run = compare.load_run(runs / "partial")
    assert run["source"] == "metrics.jsonl" and not run["complete"]
    assert run["metrics"]["val/ndcg@10"] == 0.09  # exact: jsonl keeps float64
    assert run["metrics"]["train/loss"] == 0.25


def test_parent_directory_discovery(runs):
    found = compare.find_runs(runs)
    assert [name for name, _ in found] == ["hybrid", "mf", os.path.join("sweep", "lr1")]
    df = compare.compare_runs([runs, runs / "mf"])  # mf given twice: loaded once
    assert list(df.index) == ["hybrid", "mf", os.path.join("sweep", "lr1")]
    np.testing.assert_allclose(df["val/ndcg@10"], [0.3, 0.2, 0.125])


def test_colliding_names_use_paths(tmp_path):
    a = _make_run(tmp_path / "a" / "mf", _config(), {1: 0.1}, _final(0.1, 1.0))
    b = _make_run(tmp_path / "b" / "mf", _config(dim=8), {1: 0.2}, _final(0.2, 1.0))
    df = compare.compare_runs([a, b])
    assert list(df.index) == [os.path.normpath(a), os.path.normpath(b)]


def test_errors_for_paths_without_runs(tmp_path, runs):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunNotFoundError, match="empty: no run here or below"):
        compare.compare_runs([tmp_path / "empty"])
    with pytest.raises(RunNotFoundError, match="missing: no such directory"):
        compare.compare_runs([tmp_path / "missing"])
    with pytest.raises(RunNotFoundError, match="not a run directory"):
        compare.load_run(runs / "notes")
    with pytest.raises(KeyError, match=r"\['val/mrr'\] are in no run; available: val/collie"):
        compare.compare_runs([runs], metrics=["val/mrr"])
    (runs / "mf" / "metrics.json").write_text('{"val/ndcg@10": 0.2,\n oops}')
    with pytest.raises(RunNotFoundError, match=r"mf/metrics.json:2: not valid JSON"):
        compare.load_run(runs / "mf")


def test_markdown_marks_best_values():
    df = pd.DataFrame(
        {"val/ndcg@10": [0.2, 0.3], "train/loss": [0.5, 0.7], "wall_time_s": [10.0, np.nan]},
        index=pd.Index(["a", "b"], name="run"),
    )
    df["model.name"] = ["x|y", None]
    df.attrs["metrics"] = ["val/ndcg@10", "train/loss"]
    lines = compare.to_markdown(df).splitlines()
    assert lines[0] == "| run | val/ndcg@10 | train/loss | wall_time_s | model.name |"
    assert lines[2] == "| a | 0.2000 | **0.5000** | 10.0 | x\\|y |"
    assert lines[3] == "| b | **0.3000** | 0.7000 | — | — |"


def test_main_prints_table_writes_md_csv_and_plot(runs, tmp_path, capsys):
    out = tmp_path / "report" / "compare.md"
    plot = tmp_path / "curves.png"
    status = compare.main(
        [
            str(runs),
            "--metrics",
            "val/ndcg@10,val/collie_map@10",
            "--out",
            str(out),
            "--plot",
            str(plot),
        ]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert printed == out.read_text()
    assert "| hybrid | **0.3000** | **0.1500** | 25.0 | 64 | hybrid | 0.01 |" in printed
    csv = pd.read_csv(tmp_path / "report" / "compare.csv", index_col="run")
    np.testing.assert_allclose(csv["val/ndcg@10"], [0.3, 0.2, 0.125])
    image = matplotlib.image.imread(plot)
    # train/loss + the two metrics: 3 subplots of 4.5 x 3.2 inches at 100 dpi
    assert image.shape[:2] == (320, 1350)


def test_main_exits_with_a_clear_message(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        compare.main([str(tmp_path / "empty")])
    assert exit_info.value.code == 2
    assert "no run here or below" in capsys.readouterr().err


def test_module_entry_point_has_help():
    with pytest.raises(SystemExit) as exit_info:
        compare.main(["--help"])
    assert exit_info.value.code == 0
