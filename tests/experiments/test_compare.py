"""experiments.compare: runs grouped by dataset and split, metric directions, losses compared only
within a loss function, failed and unfinished runs skipped with the reason, compact and full
tables, learning curves by default. Run directories are built by hand (no training)."""

import os

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from experiments import compare
from experiments.compare import RunNotFoundError
from hybridrec.logging import MetricWriter, write_json

ML = {"name": "movielens-100k", "implicit_threshold": 4.0, "path": None, "download": None}
COLLIE = {"name": "collie", "test_p": 0.1, "seed": 42}
SMOKE_DATA = {
    "name": "synthetic",
    "implicit_threshold": None,
    "synthetic": {"num_users": 60, "num_items": 40, "flavour": "movies", "seed": 0},
}
STRATIFIED = {"name": "stratified", "test_p": 0.2, "seed": 0}


def _config(model="mf", dim=32, lr=0.01, loss="bpr", data=ML, split=COLLIE, **model_extra):
    return {
        "seed": 0,
        "progress": True,
        "data": dict(data),
        "split": dict(split),
        "model": {"name": model, "embedding_dim": dim, "towers": ["ids"], **model_extra},
        "train": {"loss": loss, "loss_options": {}},
        "optimizer": {"learning_rate": lr},
    }


def _make_run(
    run_dir,
    config,
    curve,
    final=None,
    *,
    state="completed",
    error=None,
    hparams=None,
    keep_jsonl=True,
    keep_config=True,
):
    """A run directory as the training loop writes it: config, events + jsonl, final metrics,
    status.json (``state=None``: a run from before statuses were kept).

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
    if state is not None:
        write_json(os.path.join(run_dir, "status.json"), {"state": state, "error": error})
    if not keep_jsonl:
        os.remove(os.path.join(run_dir, "metrics.jsonl"))
    os.makedirs(os.path.join(run_dir, "checkpoints", "3"), exist_ok=True)  # not a run
    return str(run_dir)


def _final(ndcg, wall, *, loss=0.25, compile_s=5.0):
    return {
        "val/ndcg@10": ndcg,
        "val/collie_map@10": ndcg / 2,
        "train/loss": loss,
        "train/compile_s": compile_s,
        "train/samples_per_s": 1000.0 / wall,
        "train/epochs": 4,
        "wall_time_s": wall,
        "step": 4,
    }


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    _make_run(root / "mf", _config(), {2: 0.1, 4: 0.2}, _final(0.2, 10.0, compile_s=5.0))
    _make_run(
        root / "hybrid",
        _config(model="hybrid", dim=64, loss="adaptive_bpr", combiner="sum"),
        {2: 0.15, 4: 0.3},
        _final(0.3, 25.0, loss=0.9, compile_s=9.0),
    )
    _make_run(
        root / "sweep" / "lr1",  # nested one level deeper; written before status.json existed
        _config(lr=0.1),
        {2: 0.05, 4: 0.12},
        _final(0.125, 12.5, loss=0.5, compile_s=4.0),
        state=None,
    )
    # A smoke run scores far higher on its tiny synthetic data: never ranked against the others.
    _make_run(
        root / "smoke",
        _config(data=SMOKE_DATA, split=STRATIFIED),
        {1: 0.5, 2: 0.9},
        _final(0.9, 2.0),
    )
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not a run")
    return root


@pytest.fixture
def unfinished(runs):
    """Adds a failed, an interrupted and an old unfinished run beside the finished ones."""
    _make_run(
        runs / "failed",
        _config(dim=8),
        {2: 0.99},
        state="failed",
        error="TrainingError: non-finite loss nan\nat epoch 1",
    )
    _make_run(
        runs / "stopped",
        _config(dim=16),
        {2: 0.07, 4: 0.09},
        state="interrupted",
        error="interrupted after epoch 4 of 20",
    )
    _make_run(runs / "old_partial", _config(dim=24), {2: 0.06}, state=None)
    return runs


ML_LABEL = "movielens-100k (implicit_threshold=4), split collie (seed=42, test_p=0.1)"
SMOKE_LABEL = (
    "synthetic (flavour=movies, num_items=40, num_users=60, seed=0), "
    "split stratified (seed=0, test_p=0.2)"
)


# ------------------------------------------------------------------------------------- groups
def test_runs_grouped_by_dataset_and_split_and_never_ranked_across(runs):
    result = compare.compare_runs([runs])
    assert list(result.tables) == [ML_LABEL, SMOKE_LABEL]
    ml, smoke = result.tables[ML_LABEL], result.tables[SMOKE_LABEL]
    assert list(ml.index) == ["hybrid", "mf", os.path.join("sweep", "lr1")]  # best ndcg first
    assert list(smoke.index) == ["smoke"]
    assert result.skipped == []
    text = compare.to_markdown(ml)
    assert "| hybrid | hybrid | **0.3000** | **0.1500** |" in text  # best of its own group
    # A group of one run has nothing to be best against.
    assert "**" not in compare.to_markdown(smoke)
    report = compare.report_markdown(result)
    assert report.index(f"## {ML_LABEL}") < report.index(f"## {SMOKE_LABEL}")
    assert "| smoke | mf | 0.9000 |" in report
    with pytest.raises(ValueError, match="different datasets or splits"):
        compare.runs_table(result.groups[ML_LABEL] + result.groups[SMOKE_LABEL])


@pytest.mark.parametrize(
    ("data", "split", "expected"),
    [
        (ML, COLLIE, ("movielens-100k (implicit_threshold=4)", "collie (seed=42, test_p=0.1)")),
        # where MovieLens is stored and whether it may be downloaded: the same data
        (
            {**ML, "name": "ml-100k", "path": "/data/ml-100k.zip", "download": False},
            COLLIE,
            ("movielens-100k (implicit_threshold=4)", "collie (seed=42, test_p=0.1)"),
        ),
        # another file is other data: its base name is part of the dataset
        (
            {"name": "beer", "path": "/home/me/data/beer_reviews.csv", "implicit_threshold": 3.0},
            {"name": "random", "test_p": 0.2},
            (
                "beer-advocate (implicit_threshold=3, path=beer_reviews.csv)",
                "random (test_p=0.2)",
            ),
        ),
        (
            {"name": "amazon", "path": "meta_Books.json.gz", "max_lines": 1000},
            {"name": "cold_items"},
            ("amazon-products (max_lines=1000, path=meta_Books.json.gz)", "cold_items"),
        ),
        ({}, {}, ("unknown dataset", "unknown split")),
    ],
)
def test_dataset_and_split_labels(data, split, expected):
    from hybridrec.logging import flatten_config

    assert compare.dataset_and_split(flatten_config({"data": data, "split": split})) == expected


def test_runs_of_different_synthetic_data_or_split_seeds_are_different_groups(tmp_path):
    a = _make_run(
        tmp_path / "a", _config(data=SMOKE_DATA, split=STRATIFIED), {1: 0.1}, _final(0.1, 1)
    )
    bigger = {**SMOKE_DATA, "synthetic": {**SMOKE_DATA["synthetic"], "num_users": 600}}
    b = _make_run(tmp_path / "b", _config(data=bigger, split=STRATIFIED), {1: 0.2}, _final(0.2, 1))
    c = _make_run(
        tmp_path / "c",
        _config(data=SMOKE_DATA, split={**STRATIFIED, "seed": 1}),
        {1: 0.3},
        _final(0.3, 1),
    )
    d = _make_run(
        tmp_path / "d", _config(data=SMOKE_DATA, split=STRATIFIED), {1: 0.4}, _final(0.4, 1)
    )
    result = compare.compare_runs([a, b, c, d])
    assert [list(df.index) for df in result.tables.values()] == [["d", "a"], ["b"], ["c"]]


# --------------------------------------------------------------------------------- directions
@pytest.mark.parametrize(
    ("metric", "direction"),
    [
        ("val/ndcg@10", "max"),
        ("test/collie_map@10", "max"),
        ("val/recall@20", "max"),
        ("val/precision@5", "max"),
        ("val/collie_mrr", "max"),
        ("val/collie_auc", "max"),
        ("cold_items/auc", "max"),
        ("val/hit_rate@10", "max"),
        ("val/hr@10", "max"),
        ("train/samples_per_s", "max"),
        ("val/rmse", "min"),
        ("val/mae", "min"),
        ("train/loss", "min"),
        ("wall_time_s", "min"),
        ("train/compile_s", "min"),
        ("train/epoch_time_s", "min"),
        ("train/fit_s", "min"),
        ("peak_memory_mb", "min"),
        ("train/epochs", None),
        ("train/lr_scale", None),
        ("val/num_users_evaluated", None),
    ],
)
def test_metric_direction(metric, direction):
    assert compare.metric_direction(metric) == direction


def test_markdown_bolds_by_direction_and_compares_losses_only_within_a_loss():
    df = pd.DataFrame(
        {
            "model.name": ["a|b", "c", "d"],
            "val/ndcg@10": [0.2, 0.3, np.nan],
            "train/loss": [0.5, 0.7, 0.6],
            "train/compile_s": [3.0, 9.0, 4.0],
            "train/epochs": [4.0, 8.0, 2.0],
            "wall_time_s": [10.0, np.nan, 30.0],
            "train.loss": ["bpr", "warp", "bpr"],
        },
        index=pd.Index(["r1", "r2", "r3"], name="run"),
    )
    df.attrs["metrics"] = ["val/ndcg@10", "train/loss", "train/compile_s", "train/epochs"]
    lines = compare.to_markdown(df).splitlines()
    assert lines[0] == (
        "| run | model.name | val/ndcg@10 | train/loss | train/compile_s | train/epochs "
        "| wall_time_s | train.loss |"
    )
    # The lowest compile time and wall time are best; the 0.5 loss beats 0.6 of the same loss
    # function (bpr) while warp's 0.7 has nothing to be compared with; epochs have no direction.
    assert lines[2] == "| r1 | a\\|b | 0.2000 | **0.5000** | **3.0000** | 4.0000 | **10.0** | bpr |"
    assert lines[3] == "| r2 | c | **0.3000** | 0.7000 | 9.0000 | 8.0000 | — | warp |"
    assert lines[4] == "| r3 | d | — | 0.6000 | 4.0000 | 2.0000 | 30.0 | bpr |"


def test_loss_column_with_different_losses_shows_the_loss_and_compares_within_it(runs):
    result = compare.compare_runs([runs], ["val/ndcg@10", "train/loss", "train/compile_s"])
    ml = result.tables[ML_LABEL]
    assert list(ml.columns) == [
        "model.name",
        "val/ndcg@10",
        "train/loss",
        "train/compile_s",
        "wall_time_s",
        "train.loss",  # added: the losses are of different functions
    ]
    assert ml["train.loss"].tolist() == ["adaptive_bpr", "bpr", "bpr"]
    text = compare.to_markdown(ml)
    # mf (bpr, 0.25) beats lr1 (bpr, 0.5); hybrid's adaptive_bpr loss of 0.9 is not compared;
    # the smallest compile time (lr1's 4 s) is best, not the largest.
    assert "| hybrid | hybrid | **0.3000** | 0.9000 | 9.0000 | 25.0 | adaptive_bpr |" in text
    assert "| mf | mf | 0.2000 | **0.2500** | 5.0000 | **10.0** | bpr |" in text
    assert (
        f"| {os.path.join('sweep', 'lr1')} | mf | 0.1250 | 0.5000 | **4.0000** | 12.5 | bpr |"
        in text
    )


# -------------------------------------------------------------------------------- columns
def test_compact_default_and_all_columns(runs):
    ml = compare.compare_runs([runs]).tables[ML_LABEL]
    # The key metrics, wall time; 4 config keys differ (more than 3): left to --all.
    assert list(ml.columns) == ["model.name", "val/ndcg@10", "val/collie_map@10", "wall_time_s"]
    assert ml.attrs["hidden_config_keys"] == [  # config.json's (sorted) order
        "model.combiner",
        "model.embedding_dim",
        "optimizer.learning_rate",
        "train.loss",
    ]
    np.testing.assert_allclose(ml["val/ndcg@10"], [0.3, 0.2, 0.125])
    np.testing.assert_allclose(ml["wall_time_s"], [25.0, 10.0, 12.5])
    assert ml["model.name"].tolist() == ["hybrid", "mf", "mf"]
    assert "status" not in ml.columns
    assert "4 more config keys differ between these runs (--all shows them)" in (
        compare.report_markdown(compare.compare_runs([runs]))
    )

    full = compare.compare_runs([runs], all_columns=True).tables[ML_LABEL]
    assert list(full.columns) == [
        "model.name",
        "val/collie_map@10",
        "val/ndcg@10",
        "train/compile_s",
        "train/epochs",
        "train/loss",
        "train/samples_per_s",
        "wall_time_s",
        "model.combiner",
        "model.embedding_dim",
        "optimizer.learning_rate",
        "train.loss",
    ]  # seed, data.*, split.*, towers are equal; progress only changes the display
    assert full["model.embedding_dim"].tolist() == [64, 32, 32]
    assert full["optimizer.learning_rate"].tolist() == [0.01, 0.01, 0.1]


def test_compact_table_shows_a_few_differing_config_keys(tmp_path):
    a = _make_run(tmp_path / "lr01", _config(lr=0.01), {1: 0.1}, _final(0.1, 1.0))
    b = _make_run(tmp_path / "lr1", _config(lr=0.1), {1: 0.2}, _final(0.2, 1.0))
    df = compare.compare_runs([a, b]).tables[ML_LABEL]
    assert list(df.columns) == [
        "model.name",
        "val/ndcg@10",
        "val/collie_map@10",
        "wall_time_s",
        "optimizer.learning_rate",
    ]
    assert df.attrs["hidden_config_keys"] == []


def test_key_metrics_prefer_test_then_known_names():
    def run(metrics):
        return {"metrics": metrics}

    both = [run({"val/ndcg@10": 1, "test/ndcg@10": 1, "test/recall@10": 1, "test/rmse": 1})]
    assert compare.key_metrics(both) == ["test/ndcg@10", "test/recall@10", "test/rmse"]
    many = [run({f"val/{m}": 1 for m in compare.KEY_METRICS})]
    assert compare.key_metrics(many) == [
        "val/ndcg@10",
        "val/collie_map@10",
        "val/recall@10",
        "val/collie_auc",
    ]
    other = [run({"val/ndcg@20": 1, "val/num_users_evaluated": 9, "train/loss": 1})]
    assert compare.key_metrics(other) == ["val/ndcg@20"]


# ------------------------------------------------------------------------------- which runs
def test_failed_interrupted_and_unfinished_runs_are_skipped_with_the_reason(unfinished):
    result = compare.compare_runs([unfinished])
    assert list(result.tables[ML_LABEL].index) == ["hybrid", "mf", os.path.join("sweep", "lr1")]
    reasons = dict(result.skipped)
    assert set(reasons) == {"failed", "stopped", "old_partial"}
    # the failed run's 0.99 would have been "best"
    assert reasons["failed"] == "failed: TrainingError: non-finite loss nan at epoch 1"
    assert reasons["stopped"] == (
        "interrupted: interrupted after epoch 4 of 20 (--partial shows it)"
    )
    assert reasons["old_partial"].startswith("unfinished: no metrics.json and no status.json")
    report = compare.report_markdown(result)
    assert report.endswith(
        "Skipped 3 runs:\n"
        "- failed: failed: TrainingError: non-finite loss nan at epoch 1\n"
        "- old_partial: unfinished: no metrics.json and no status.json (--partial shows it)\n"
        "- stopped: interrupted: interrupted after epoch 4 of 20 (--partial shows it)\n"
    )

    partial = compare.compare_runs([unfinished], ["val/ndcg@10"], partial=True)
    assert [name for name, _ in partial.skipped] == ["failed"]
    ml = partial.tables[ML_LABEL]
    assert list(ml.index) == [
        "hybrid",
        "mf",
        os.path.join("sweep", "lr1"),
        "stopped",
        "old_partial",
    ]
    assert ml.loc["stopped", "val/ndcg@10"] == 0.09  # its last logged value
    assert ml["status"].tolist() == [
        "complete",
        "complete",
        "complete",
        "partial (step 4)",
        "partial (step 2)",
    ]
    # Its wall time (the span of its logs, ~0 s here) is not a result: unfinished runs are never
    # marked best.
    stopped_line = next(
        x for x in compare.to_markdown(ml).splitlines() if x.startswith("| stopped")
    )
    assert "**" not in stopped_line and ml.loc["stopped", "wall_time_s"] < 10.0


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ({"state": "running", "error": None}, "running, or killed (status.json says running)"),
        ({"state": "completed"}, None),
        ({"state": "unknown", "error": "status.json unreadable (x)"}, "unknown: status.json"),
    ],
)
def test_skip_reason_of_states(status, reason):
    run = {"status": status, "complete": False, "history": []}
    got = compare.skip_reason(run)
    assert got == reason if reason is None else got.startswith(reason)


def test_a_run_that_failed_before_logging_is_listed(tmp_path):
    run = tmp_path / "runs" / "broken"
    run.mkdir(parents=True)
    write_json(str(run / "config.json"), _config())
    write_json(str(run / "status.json"), {"state": "failed", "error": "FileNotFoundError: x"})
    _make_run(tmp_path / "runs" / "ok", _config(), {1: 0.1}, _final(0.1, 1.0))
    result = compare.compare_runs([tmp_path / "runs"])
    assert result.skipped == [("broken", "failed: FileNotFoundError: x")]
    assert list(result.tables[ML_LABEL].index) == ["ok"]


# ----------------------------------------------------------------------------- reading runs
def test_differing_config_keys():
    configs = [
        {"a": 1, "b.c": "x", "d": 32, "out_dir": "/tmp/a", "e": "[1, 2]", "g": None},
        {"a": 1, "b.c": "y", "d": 32.0, "out_dir": "/tmp/b", "e": "[1, 2]", "f": True},
    ]
    # 32 vs 32.0 is the same setting (config.json vs TensorBoard hparams); a key only one run has
    # differs, but None is the same as absent; *_dir is a location
    assert compare.differing_config_keys(configs) == ["b.c", "f"]
    assert compare.differing_config_keys(configs[:1]) == []


def test_load_run_reads_all_files(runs):
    run = compare.load_run(runs / "hybrid")
    assert run["name"] == "hybrid" and run["complete"] and run["source"] == "metrics.json"
    assert run["status"] == {"state": "completed", "error": None}
    assert run["config"]["model"]["embedding_dim"] == 64
    assert run["flat_config"]["model.embedding_dim"] == 64
    assert run["metrics"]["val/ndcg@10"] == 0.3 and run["metrics"]["train/compile_s"] == 9.0
    assert run["wall_time_s"] == 25.0
    assert run["last_step"] == 4
    assert [r["step"] for r in run["history"]] == [2, 2, 4, 4]  # metrics.jsonl, one per call
    assert run["loss"] == "adaptive_bpr"
    assert (run["dataset"], run["split"]) == compare.dataset_and_split(run["flat_config"])
    assert compare.load_run(runs / "sweep" / "lr1")["status"] is None


def test_loss_label_includes_options():
    flat = {
        "train.loss": "warp",
        "train.loss_options.max_weight": 10.0,
        "train.loss_options.x": None,
    }
    assert compare._loss_label(flat) == "warp (max_weight=10)"
    assert compare._loss_label({}) is None


def test_fallback_to_tensorboard_events_for_interrupted_run(runs):
    # Interrupted and copied without the jsonl or config: only the events (scalars + hparams).
    _make_run(
        runs / "killed",
        {},
        {2: 0.11, 4: 0.21, 6: 0.27},
        hparams={
            "model.name": "mf",
            "model.embedding_dim": 128,
            "optimizer.learning_rate": 0.01,
            "data.name": "movielens-100k",
            "data.implicit_threshold": 4.0,
            "data.path": None,
            **{f"split.{k}": v for k, v in COLLIE.items()},
        },
        state=None,
        keep_jsonl=False,
        keep_config=False,
    )
    run = compare.load_run(runs / "killed")
    assert run["source"] == "events" and not run["complete"]
    assert run["last_step"] == 6
    assert run["metrics"]["val/ndcg@10"] == pytest.approx(0.27)  # float32 in the events
    assert run["metrics"]["train/loss"] == pytest.approx(1 / 6)
    assert run["flat_config"]["model.embedding_dim"] == 128  # from the HParams plugin
    assert "data.path" not in run["flat_config"]  # None is not logged
    assert [r["step"] for r in run["history"]] == [2, 4, 6]
    assert run["wall_time_s"] >= 0.0  # estimated from the event times

    assert "killed" in dict(compare.compare_runs([runs]).skipped)
    result = compare.compare_runs([runs / "mf", runs / "killed"], ["val/ndcg@10"], partial=True)
    df = result.tables[ML_LABEL]  # grouped with mf through the logged data.* and split.*
    assert df.loc["killed", "val/ndcg@10"] == pytest.approx(0.27)
    assert df["status"].tolist() == ["partial (step 6)", "complete"]


def test_events_without_hparams_read_with_empty_hparams(runs):
    # Killed before the hparams were logged (or written by another tool): scalars only.
    _make_run(runs / "bare", {}, {2: 0.11, 4: 0.2}, state=None, keep_jsonl=False, keep_config=False)
    records, hparams = compare.read_events(runs / "bare")
    assert hparams == {}
    assert [r["step"] for r in records] == [2, 4]
    assert records[-1]["val/ndcg@10"] == pytest.approx(0.2)
    run = compare.load_run(runs / "bare")
    assert run["metrics"]["val/ndcg@10"] == pytest.approx(0.2)
    assert (run["dataset"], run["split"]) == ("unknown dataset", "unknown split")


def test_parent_directory_discovery(runs):
    found = compare.find_runs(runs)
    assert [name for name, _ in found] == ["hybrid", "mf", "smoke", os.path.join("sweep", "lr1")]
    result = compare.compare_runs([runs, runs / "mf"])  # mf given twice: loaded once
    assert sum(len(df) for df in result.tables.values()) == 4


def test_colliding_names_use_paths(tmp_path):
    a = _make_run(tmp_path / "a" / "mf", _config(), {1: 0.1}, _final(0.1, 1.0))
    b = _make_run(tmp_path / "b" / "mf", _config(dim=8), {1: 0.2}, _final(0.2, 1.0))
    df = compare.compare_runs([a, b]).tables[ML_LABEL]
    assert list(df.index) == [os.path.normpath(b), os.path.normpath(a)]


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


# ------------------------------------------------------------------------- curves and the CLI
def test_learning_curves_split_the_loss_by_loss_function(runs):
    result = compare.compare_runs([runs])
    group = result.groups[ML_LABEL]
    histories, metrics = compare._group_histories(group, result.tables[ML_LABEL].attrs["metrics"])
    assert metrics == [
        "train/loss [adaptive_bpr]",
        "train/loss [bpr]",
        "val/ndcg@10",
        "val/collie_map@10",
    ]
    assert "train/loss [adaptive_bpr]" in histories["hybrid"][0]
    assert "train/loss" not in histories["hybrid"][0]
    assert histories["mf"][0]["train/loss [bpr]"] == 0.5
    same_loss = result.groups[SMOKE_LABEL]
    assert compare._group_histories(same_loss, ["val/ndcg@10"])[1] == ["train/loss", "val/ndcg@10"]


def test_main_prints_report_writes_md_csv_and_curves_by_default(runs, unfinished, tmp_path, capsys):
    out = tmp_path / "report" / "compare.md"
    assert compare.main([str(runs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed == out.read_text()
    assert f"## {ML_LABEL}\n\n3 runs\n\n| run | model.name | val/ndcg@10 |" in printed
    assert "| hybrid | hybrid | **0.3000** | **0.1500** | 25.0 |" in printed
    assert "- failed: failed: TrainingError" in printed
    # one PNG per group beside the report, linked from it
    assert "![learning curves](curves_movielens-100k_collie.png)" in printed
    assert "![learning curves](curves_synthetic_stratified.png)" in printed
    image = matplotlib.image.imread(out.parent / "curves_movielens-100k_collie.png")
    # two losses + ndcg + map: 4 subplots in a 2 x 3 grid of 4.5 x 3.2 inches at 100 dpi
    assert image.shape[:2] == (640, 1350)
    image = matplotlib.image.imread(out.parent / "curves_synthetic_stratified.png")
    assert image.shape[:2] == (320, 1350)  # loss, ndcg, map
    csv = pd.read_csv(tmp_path / "report" / "compare.csv", index_col="run")
    assert csv["dataset"].tolist() == ["movielens-100k (implicit_threshold=4)"] * 3 + [
        "synthetic (flavour=movies, num_items=40, num_users=60, seed=0)"
    ]
    assert "optimizer.learning_rate" in csv.columns  # every column, unlike the compact table
    np.testing.assert_allclose(csv["val/ndcg@10"], [0.3, 0.2, 0.125, 0.9])


def test_main_no_plot_and_default_plot_dir(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert compare.main([str(runs), "--no-plot", "--all"]) == 0
    printed = capsys.readouterr().out
    assert "learning curves" not in printed and not (tmp_path / "compare_plots").exists()
    assert "optimizer.learning_rate" in printed
    assert compare.main([str(runs)]) == 0
    assert sorted(os.listdir(tmp_path / "compare_plots")) == [
        "curves_movielens-100k_collie.png",
        "curves_synthetic_stratified.png",
    ]
    assert "![learning curves](compare_plots/curves_movielens-100k_collie.png)" in (
        capsys.readouterr().out
    )


def test_main_exits_with_a_clear_message(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        compare.main([str(tmp_path / "empty")])
    assert exit_info.value.code == 2
    assert "no run here or below" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        compare.main([str(tmp_path), "--plot", "x.png"])  # the old flag is not abbreviated
    assert "unrecognized arguments: --plot" in capsys.readouterr().err


def test_module_entry_point_has_help():
    with pytest.raises(SystemExit) as exit_info:
        compare.main(["--help"])
    assert exit_info.value.code == 0
