"""Many devices (``hybridrec.sharding``): a run on 8 simulated CPU devices matches one device.

JAX fixes its device count when it starts, so the comparison runs in a subprocess started with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``; inside it, the same config runs with
``mesh.num_devices=1`` (no mesh) and ``8`` (ID tables sharded by rows, batches split). The loss
curves and the evaluation metrics must agree to float tolerance (the sums are reduced in another
order), the tables must really be sharded, and the run must load and score on one device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax
    import numpy as np
    from experiments.configs import hybrid, mf
    from hybridrec import train
    from hybridrec.checkpoint import Checkpointer

    assert len(jax.devices()) == 8, jax.devices()
    out = {}
    for name, module, sparse in (("mf", mf, None), ("hybrid", hybrid, None), ("mf_sgd", mf, True)):
        for devices in (1, 8):
            config = module.get_config("smoke")
            config.plots = False
            config.mesh.num_devices = devices
            if sparse:
                config.optimizer.embeddings = dict(name="sgd", learning_rate=0.5, sparse=sparse)
            workdir = f"{sys.argv[1]}/{name}-{devices}"
            metrics = train.train_and_evaluate(config, workdir)
            losses = [json.loads(l).get("train/loss") for l in open(f"{workdir}/metrics.jsonl")]
            out[f"{name}-{devices}"] = dict(
                metrics={k: v for k, v in metrics.items() if "time" not in k and "_s" not in k},
                losses=[l for l in losses if l is not None],
            )
    from hybridrec import sharding
    mesh = sharding.make_mesh(dict(num_devices=8))
    placed = sharding.Placement(mesh, row_counts=(64,)).put_state(
        dict(table=np.zeros((64, 4)), dense=np.zeros((5, 4)))
    )
    out["table_shards"] = [s.data.shape[0] for s in placed["table"].addressable_shards]
    out["dense_shards"] = [s.data.shape[0] for s in placed["dense"].addressable_shards]
    print("RESULT" + json.dumps(out))
    """
)


@pytest.mark.slow
def test_eight_simulated_devices_match_one(tmp_path, compile_cache):
    env = dict(os.environ)
    env.update(
        XLA_FLAGS="--xla_force_host_platform_device_count=8",
        JAX_COMPILATION_CACHE_DIR=str(compile_cache),
        HYBRIDREC_NO_DOWNLOAD="1",
        PYTHONPATH=str(REPO_ROOT),
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
    result = json.loads(line[len("RESULT") :])
    for name in ("mf", "hybrid", "mf_sgd"):
        one, many = result[f"{name}-1"], result[f"{name}-8"]
        assert len(one["losses"]) == len(many["losses"]) >= 2
        for a, b in zip(one["losses"], many["losses"]):
            assert b == pytest.approx(a, rel=1e-4, abs=1e-5), name
        for key, value in one["metrics"].items():
            if key.startswith("popularity/"):
                continue
            assert many["metrics"][key] == pytest.approx(value, rel=1e-3, abs=1e-4), (name, key)
    assert result["table_shards"] == [8] * 8  # an ID table: 8 rows on each device
    assert result["dense_shards"] == [5] * 8  # anything else: replicated
    # The 8-device run's model description has ID spaces padded to a multiple of 8.
    description = json.loads((tmp_path / "mf-8" / "model.json").read_text())
    assert description["num_users"] % 8 == 0 and description["num_items"] % 8 == 0
    # And it loads and scores on this single-device process.
    import hybridrec

    model = hybridrec.load(tmp_path / "mf-8")
    assert model.score(model.user_ids[:2]).shape == (2, model.num_items)
