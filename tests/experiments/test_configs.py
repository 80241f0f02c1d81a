"""Every experiment config: its contract, and its smoke variant run end to end.

Configs are discovered from ``experiments/configs/*.py`` (files starting with ``_`` are helpers),
so a new config is tested with no new test code. The smoke runs take seconds each (JAX
compiles), so only two of them run by default; the rest are ``slow`` (CI runs them). One test
drives the real command line: a run, a resume by rerunning into the same workdir, and a
misspelt override.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import ml_collections
import pytest
from tensorboard.backend.event_processing import event_accumulator

from experiments import run as runner
from hybridrec import experiment, objectives

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "experiments" / "configs"
CONFIGS = sorted(p.stem for p in CONFIG_DIR.glob("*.py") if not p.name.startswith("_"))
# The trainer fits these in numpy: no training loop, checkpoints or plots (the trainer's own list).
BASELINES = experiment.BASELINES
# Smoke runs in the default suite: the cheapest baseline and the cheapest trained model.
FAST_SMOKE = ("popularity", "mf")
SECTIONS = ("data", "split", "features", "model", "train", "optimizer", "eval", "checkpoint")


def _module(name: str):
    return importlib.import_module(f"experiments.configs.{name}")


def test_discovers_the_configs():
    # Guards the discovery itself: these must always be found.
    assert {"hybrid", "mf", "ncf", "ease", "popularity", "item_pairs"} <= set(CONFIGS)
    assert not any(name.startswith("_") for name in CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_contract(name):
    module = _module(name)
    doc = module.__doc__ or ""
    # The docstring says what it trains, the command, the expected time and result.
    assert f"python -m experiments.run --config {name}.py" in doc, "docstring lacks the command"
    assert "Expected" in doc, "docstring lacks the expected time / metric"
    assert "TODO" not in doc
    if name != "base":
        # Every config derives from another (in the end from base.py) instead of copying it.
        source = Path(module.__file__).read_text()
        assert ".get_config(" in source.split("def get_config", 1)[1]

    for arg in (None, "smoke"):
        config = module.get_config(arg)
        assert isinstance(config, ml_collections.ConfigDict)
        for section in SECTIONS:
            assert section in config, f"{name}.py:{arg} has no {section!r} section"
        json.dumps(config.to_dict())  # config.json must be writable
        if config.model.name not in BASELINES:
            # The objective accepts the loss and its options (a derived config that swaps the
            # loss must not keep the parent's loss_options).
            objectives.build(config, num_items=10)

    smoke = module.get_config("smoke")
    assert smoke.data.name == "synthetic"
    assert smoke.train.num_epochs <= 2
    assert smoke.data.synthetic.get("num_items", 500) <= 100
    full = module.get_config()
    assert full.model.name == smoke.model.name, "smoke must exercise the same model"

    with pytest.raises(ValueError, match="smoke"):
        module.get_config("no-such-variant")


@pytest.mark.parametrize("name", CONFIGS)
def test_locked_config_rejects_a_misspelt_key(name):
    config = _module(name).get_config("smoke")
    config.lock()
    with pytest.raises(AttributeError, match="embeding_dim|did you mean"):
        config.model.embeding_dim = 3


def test_runner_resolves_bare_names():
    argv = runner.resolve_config_arg(["prog", "--config", "ncf.py:smoke", "--config=mf"])
    assert argv[2] == str(CONFIG_DIR / "ncf.py") + ":smoke"
    assert argv[3] == "--config=" + str(CONFIG_DIR / "mf.py")
    with pytest.raises(SystemExit, match="not found.*known: .*hybrid.py"):
        runner.resolve_config_arg(["prog", "--config", "no_such_config.py"])


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def _scalar_tags(workdir: Path) -> set[str]:
    """The scalar tags of a run's TensorBoard event files (read without TensorFlow)."""
    acc = event_accumulator.EventAccumulator(str(workdir), size_guidance={"scalars": 0})
    acc.Reload()
    return set(acc.Tags()["scalars"])


def check_run_dir(workdir: Path, *, trained: bool) -> dict:
    """Asserts the run directory the trainer promises; returns metrics.json."""
    config = json.loads((workdir / "config.json").read_text())
    assert "model" in config and "data" in config
    metrics = json.loads((workdir / "metrics.json").read_text())
    val = {k: v for k, v in metrics.items() if k.startswith("val/")}
    assert val, "no validation metrics"
    headline = [k for k in ("val/ndcg@10", "val/rmse", "val/pair_auc") if k in val]
    assert headline and all(_finite(val[k]) for k in headline), val
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert records and all("step" in r for r in records)
    assert list(workdir.glob("events.out.tfevents.*")), "no TensorBoard event file"
    tags = _scalar_tags(workdir)
    assert any(t.startswith("val/") for t in tags), f"no val scalars in the events: {tags}"
    if trained:
        assert "train/loss" in tags and _finite(metrics["train/loss"])
        steps = [p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()]
        assert steps, "no checkpoint"
        assert (workdir / "plots" / "learning_curves.png").exists()
    return metrics


@pytest.mark.parametrize(
    "name",
    [n if n in FAST_SMOKE else pytest.param(n, marks=pytest.mark.slow) for n in CONFIGS],
)
def test_smoke_run(name, tmp_path):
    from hybridrec.train import train_and_evaluate

    config = _module(name).get_config("smoke")
    metrics = train_and_evaluate(config, str(tmp_path))
    stored = check_run_dir(tmp_path, trained=name not in BASELINES)
    for key in ("val/ndcg@10", "val/rmse", "val/pair_auc"):
        if key in metrics:
            assert stored[key] == pytest.approx(metrics[key])


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "experiments.run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HYBRIDREC_NO_DOWNLOAD": "1"},
    )


def test_cli_misspelt_override_fails_clearly(tmp_path):
    result = _cli(
        "--config", "hybrid.py:smoke", "--config.model.embeding_dim=4", "--workdir", str(tmp_path)
    )
    assert result.returncode != 0
    assert "embeding_dim" in result.stderr and "embedding_dim" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "metrics.json").exists()


def test_cli_switches_on_plateau_and_early_stopping(tmp_path):
    # Both watchers are off in hybrid.py (metric None) and switched on by one dotted override.
    result = _cli(
        "--config", "hybrid.py:smoke", "--config.train.num_epochs=1", "--workdir", str(tmp_path),
        "--config.optimizer.plateau.metric=val/ndcg@10",
        "--config.eval.early_stopping.metric=val/recall@10",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["optimizer"]["plateau"]["metric"] == "val/ndcg@10"
    assert config["eval"]["early_stopping"]["metric"] == "val/recall@10"
    from hybridrec.optim import ReduceOnPlateau
    from hybridrec.train import _EarlyStopping, _watcher

    assert isinstance(_watcher(ReduceOnPlateau, config["optimizer"]["plateau"]), ReduceOnPlateau)
    stopper = _watcher(_EarlyStopping, config["eval"]["early_stopping"])
    assert stopper.metric == "val/recall@10" and stopper.patience == 3
    defaults = _module("hybrid").get_config()
    assert _watcher(ReduceOnPlateau, defaults.optimizer.plateau) is None
    assert _watcher(_EarlyStopping, defaults.eval.early_stopping) is None


def test_hybrid_compact_changes_only_the_recipe_it_names():
    from hybridrec.logging import flatten_config

    base, compact = (flatten_config(_module("hybrid").get_config(a)) for a in (None, "compact"))
    changed = {k for k in base.keys() | compact.keys() if base.get(k) != compact.get(k)}
    assert changed == {
        "model.embedding_dim",
        "optimizer.embeddings.weight_decay",
        "train.loss",
        "train.loss_options.mean_weight",
        "train.num_negatives",
        "train.user_weighting",
    }
    got = [compact[k] for k in ("model.embedding_dim", "train.loss", "train.num_negatives")]
    assert got == [16, "adaptive_bpr", 5]
    assert "train.loss_options.mean_weight" not in compact
    assert base["train.loss"] == "blended_bpr" and base["train.loss_options.mean_weight"] == 1.0


@pytest.mark.slow
def test_cli_runs_and_resumes(tmp_path):
    workdir = tmp_path / "run"
    args = ("--config", "hybrid.py:smoke", "--config.train.num_epochs=2", "--workdir", str(workdir))
    first = _cli(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "val/ndcg@10" in first.stdout
    check_run_dir(workdir, trained=True)

    # A changed config is refused with the differing key, and nothing is touched.
    refused = _cli(
        "--config", "hybrid.py:smoke", "--config.train.num_epochs=3", "--workdir", str(workdir)
    )
    assert refused.returncode != 0
    assert "train.num_epochs: 2 (stored) -> 3 (now)" in refused.stderr

    # As if the process had died after epoch 1: the same command resumes and trains epoch 2 only.
    shutil.rmtree(workdir / "checkpoints" / "2")
    (workdir / "metrics.json").unlink()
    second = _cli(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from epoch 1" in second.stdout
    metrics = check_run_dir(workdir, trained=True)
    assert metrics["train/epochs"] == 2
    steps = [
        json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()
    ]
    # Step 0 is the untrained model; no epoch is logged twice.
    assert sorted(set(steps)) == [0, 1, 2]
    assert steps.count(0) == 1 and steps.count(1) == 1, "the resumed run logged an epoch again"
    assert json.loads((workdir / "config.json").read_text())["train"]["num_epochs"] == 2
