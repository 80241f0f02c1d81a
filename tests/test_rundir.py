"""Run directories as append-only history (``hybridrec.rundir``) and loading every run kind.

- A rerun with a changed config is refused before anything is written, listing the differing
  keys, and the old run stays loadable; ``new_run`` starts a sibling run instead.
- A failed run is marked failed and hidden from TensorBoard (its event files renamed).
- Ctrl-C finishes the epoch, checkpoints it and resumes to the same metrics.
- Provenance: versions, device, git revision, input hashes, counts; a resume on changed input
  files is refused.
- ``hybridrec.load`` restores parameters alone for dense and row-sparse runs and restores EASE,
  item-kNN and popularity runs from ``baseline.npz``; a workdir path with ``[`` loads.
"""

from __future__ import annotations

import json
import os
import signal
import stat

import numpy as np
import pandas as pd
import pytest

import hybridrec
from experiments.configs import ease, itemknn, mf, popularity
from hybridrec import rundir, train
from hybridrec.experiment import prepare_data
from hybridrec.models.baselines import get_baseline
from hybridrec.train import Interrupted, run_experiment, train_and_evaluate

TIMING = ("train/samples_per_s", "train/compile_s", "train/fit_s", "wall_time_s")


def smoke(**train_overrides):
    config = mf.get_config("smoke")
    config.plots = False
    for key, value in train_overrides.items():
        config.train[key] = value
    return config


def same_metrics(a, b):
    keys = (set(a) | set(b)) - set(TIMING)
    return {k: a.get(k) for k in keys} == {k: b.get(k) for k in keys}


def snapshot(workdir):
    """Every file's bytes under ``workdir`` (except TensorBoard events and status)."""
    out = {}
    for root, _, files in os.walk(workdir):
        for name in files:
            if "events" in name or name == rundir.STATUS_FILE:
                continue
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, workdir)] = f.read()
    return out


@pytest.fixture(scope="module")
def mf_run(tmp_path_factory):
    """One trained mf smoke run, shared by the tests that only read it."""
    workdir = str(tmp_path_factory.mktemp("runs") / "mf[1]")  # a '[' in the path on purpose
    metrics = train_and_evaluate(smoke(), workdir)
    return workdir, metrics


def test_changed_config_is_refused_before_anything_is_written(mf_run):
    workdir, _ = mf_run
    before = snapshot(workdir)
    config = smoke()
    config.model.embedding_dim = 64
    config.train.num_epochs = 3
    with pytest.raises(rundir.RunDirError) as err:
        train_and_evaluate(config, workdir)
    message = str(err.value)
    assert "model.embedding_dim: 8 (stored) -> 64 (now)" in message
    assert "train.num_epochs: 2 (stored) -> 3 (now)" in message
    assert "2 key(s) differ" in message
    assert snapshot(workdir) == before
    assert rundir.read_status(workdir)["state"] == "completed"
    # The old, valid model still loads (the path holds a '[').
    model = hybridrec.load(workdir)
    assert model.model.user_embedding.value.shape[1] == 8


def test_new_run_starts_beside_a_changed_config(mf_run, tmp_path):
    workdir, _ = mf_run
    config = smoke()
    config.seed = 1
    run = run_experiment(config, workdir, new_run=True)
    assert run.workdir == workdir + "-2"
    assert json.load(open(os.path.join(run.workdir, "config.json")))["seed"] == 1
    assert rundir.read_status(run.workdir)["state"] == "completed"


def test_load_restores_parameters_without_an_optimizer(mf_run, monkeypatch):
    workdir, metrics = mf_run
    import hybridrec.optim as optim

    def no_optimizer(*args, **kwargs):
        raise AssertionError("load built an optimizer")

    monkeypatch.setattr(optim, "build_optimizer", no_optimizer)
    model = hybridrec.load(workdir)
    assert model.step == 2
    users = model.user_ids[:3]
    assert model.score(users).shape == (3, model.num_items)


def test_failed_run_is_marked_failed_and_hidden_from_tensorboard(tmp_path):
    config = smoke()
    config.optimizer.embeddings.learning_rate = 1e30  # a non-finite loss in the first epoch
    config.optimizer.dense.learning_rate = 1e30
    config.optimizer.biases.learning_rate = 1e30
    workdir = str(tmp_path / "bad")
    with pytest.raises(train.TrainingError):
        train_and_evaluate(config, workdir)
    status = rundir.read_status(workdir)
    assert status["state"] == "failed"
    assert "TrainingError" in status["error"] and "non-finite loss" in status["error"]
    names = [n for _, _, files in os.walk(workdir) for n in files]
    assert not any("tfevents" in n for n in names), names
    assert any("failedevents" in n for n in names), names


def test_ctrl_c_checkpoints_the_epoch_and_resumes_to_the_same_end(tmp_path, monkeypatch):
    config = smoke(num_epochs=4)
    config.checkpoint.every_epochs = 10  # only the interrupt and the last epoch save
    reference = train_and_evaluate(config, str(tmp_path / "reference"))

    workdir = str(tmp_path / "interrupted")
    original = train.MetricWriter.write_scalars

    def write_scalars(self, step, scalars):
        original(self, step, scalars)
        if step == 2:  # Ctrl-C while epoch 2 is being logged
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(train.MetricWriter, "write_scalars", write_scalars)
    with pytest.raises(Interrupted, match="after epoch 2 of 4"):
        train_and_evaluate(config, workdir)
    assert rundir.read_status(workdir)["state"] == "interrupted"
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2"]
    # The interrupted run is loadable as it stands.
    assert hybridrec.load(workdir).step == 2
    monkeypatch.setattr(train.MetricWriter, "write_scalars", original)
    resumed = train_and_evaluate(config, workdir)
    assert same_metrics(resumed, reference)
    assert rundir.read_status(workdir)["state"] == "completed"
    assert rundir.read_status(workdir)["attempts"] == 2


def test_provenance_is_recorded_and_a_changed_input_refuses_resume(tmp_path):
    rng = np.random.default_rng(0)
    users = rng.integers(0, 30, 600)
    items = rng.integers(0, 20, 600)
    path = tmp_path / "interactions.csv"
    pd.DataFrame({"user_id": users, "item_id": items}).drop_duplicates().to_csv(path, index=False)
    config = smoke(num_epochs=1)
    config.data.name = "files"
    config.data.files = dict(interactions=str(path))
    config.features.schema = None
    workdir = str(tmp_path / "run")
    train_and_evaluate(config, workdir)
    with open(os.path.join(workdir, rundir.PROVENANCE_FILE)) as f:
        attempts = json.load(f)["attempts"]
    (record,) = attempts
    assert record["fresh"] is True
    assert record["input_sha256"] == {str(path): rundir.file_sha256(str(path))}
    assert record["counts"]["users"] == len(np.unique(users))
    assert record["versions"]["jax"] and record["device"]["platform"] == "cpu"
    assert record["git_revision"] is None or len(record["git_revision"]) >= 40
    assert stat.S_IMODE(os.stat(os.path.join(workdir, "metrics.json")).st_mode) & 0o044 == 0o044

    # A resume reads the same inputs: a second record. Changed inputs: refused, nothing written.
    train_and_evaluate(config, workdir)
    with open(os.path.join(workdir, rundir.PROVENANCE_FILE)) as f:
        assert [a["fresh"] for a in json.load(f)["attempts"]] == [True, False]
    with open(path, "a") as f:
        f.write("999,999\n")
    before = snapshot(workdir)
    with pytest.raises(rundir.RunDirError, match="input data changed"):
        train_and_evaluate(config, workdir)
    assert snapshot(workdir) == before
    assert rundir.read_status(workdir)["state"] == "completed"  # still a valid, visible run


def test_config_diff_lists_added_removed_and_changed_keys():
    stored = {"a": 1, "b": {"c": [1, 2], "d": "x"}, "progress": True}
    new = {"a": 1, "b": {"c": (1, 2), "e": None}, "progress": False}
    assert rundir.config_diff(stored, new) == {
        "b.d": ("x", "<absent>"),
        "b.e": ("<absent>", None),
    }


@pytest.mark.parametrize("module", [popularity, itemknn, ease], ids=lambda m: m.__name__)
def test_baseline_runs_load_and_recommend_like_the_fitted_baseline(module, tmp_path):
    config = module.get_config("smoke")
    config.plots = False
    workdir = str(tmp_path / "run")
    train_and_evaluate(config, workdir)
    loaded = hybridrec.load(workdir)
    data = prepare_data(config)
    options = {k: v for k, v in config.model.to_dict().items() if k != "name"}
    fitted = get_baseline(config.model.name, **options).fit(data.train)
    users = np.arange(5)
    np.testing.assert_allclose(loaded.score(loaded.user_ids[users]), fitted.score(users), rtol=1e-6)
    top = loaded.recommend(loaded.user_ids[0], k=5)
    assert len(top) == 5
    seen = set(loaded.seen_items(loaded.user_ids[0]))
    assert not seen & set(top["item_id"])
    with pytest.raises(hybridrec.serving.ServingError, match="baseline"):
        loaded.score_new_item({})


def test_a_row_sparse_run_resumes_and_loads_like_any_other(tmp_path):
    config = smoke(num_epochs=3)
    config.optimizer.embeddings = dict(name="adam", learning_rate=0.05, sparse=True)
    config.checkpoint.every_epochs = 1
    workdir = str(tmp_path / "sparse")
    metrics = train_and_evaluate(config, workdir)
    # The run's optimizer state is row-sparse (lazy Adam): load reads parameters only.
    model = hybridrec.load(workdir)
    assert model.step == 3
    top = model.recommend(model.user_ids[0], k=5)
    assert len(top) == 5 and not set(top.item_id) & set(model.seen_items(model.user_ids[0]))
    # Resuming from epoch 2 ends where the uninterrupted run did.
    import shutil

    shutil.rmtree(os.path.join(workdir, "checkpoints", "3"))
    os.remove(os.path.join(workdir, "metrics.json"))
    assert same_metrics(train_and_evaluate(config, workdir), metrics)
