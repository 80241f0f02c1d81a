"""TensorBoard/JSONL logging keeps tags as given; checkpoints round-trip and keep the latest."""

import json

import jax.numpy as jnp
import numpy as np
import tbparse

from hybridrec.checkpoint import Checkpointer
from hybridrec.logging import MetricWriter, flatten_config


def test_scalars_and_hparams_round_trip(tmp_path):
    with MetricWriter(str(tmp_path)) as writer:
        writer.write_hparams(
            {"model.embedding_dim": 32, "model.name": "mf", "x": True}, ["val/ndcg@10"]
        )
        writer.write_scalars(1, {"train/loss": 0.5, "val/ndcg@10": jnp.asarray(0.25)})
        writer.write_scalars(2, {"train/loss": 0.4})
    reader = tbparse.SummaryReader(str(tmp_path))
    scalars = reader.scalars
    assert set(scalars["tag"]) == {"train/loss", "val/ndcg@10"}  # '@' kept
    assert scalars[scalars["tag"] == "train/loss"]["value"].tolist() == [0.5, 0.4000000059604645]
    hparams = dict(zip(reader.hparams["tag"], reader.hparams["value"]))
    assert hparams["model.embedding_dim"] == 32 and hparams["model.name"] == "mf"
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["step"] == 1 and lines[0]["val/ndcg@10"] == 0.25


def test_flatten_config():
    flat = flatten_config({"model": {"dim": 3, "towers": {"id": {"tower": "ids"}}}, "ks": (1, 5)})
    assert flat == {"model.dim": 3, "model.towers.id.tower": "ids", "ks": "[1, 5]"}


def test_checkpoint_round_trip_keeps_latest(tmp_path):
    ckpt = Checkpointer(str(tmp_path), max_to_keep=2)
    assert ckpt.latest_step() is None
    state = {"params": {"w": jnp.arange(6.0).reshape(2, 3)}, "epoch": 1}
    for step in (1, 2, 3):
        ckpt.save(step, {**state, "epoch": step}, host={"best": 0.5 * step})
    assert ckpt.latest_step() == 3
    assert sorted(
        int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()
    ) == [2, 3]
    restored, host = ckpt.restore({"params": {"w": jnp.zeros((2, 3))}, "epoch": np.asarray(0)})
    assert host == {"best": 1.5}
    np.testing.assert_array_equal(restored["params"]["w"], state["params"]["w"])
    assert int(restored["epoch"]) == 3
