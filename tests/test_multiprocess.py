"""Several processes (``jax.distributed``): two CPU processes train like one process.

Two processes on this machine, each with 2 simulated CPU devices, find each other through
``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID`` and run the same
command with ``--config.mesh.distributed=True``: a 4-device mesh across both, ID tables sharded
by rows over it, gloo collectives between them. The run must write one run directory (process
0's), give the metrics of one process on 4 devices, and resume from a checkpoint written by both.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

REPO_ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int, **extra) -> dict[str, str]:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _run(workdir: Path, config: str, *, processes: int) -> list[str]:
    command = [
        sys.executable, "-m", "experiments.run", "--config", config, "--workdir", str(workdir),
        "--config.plots=False",
    ]  # fmt: skip
    if processes == 1:
        out = subprocess.run(
            command, cwd=REPO_ROOT, env=_env(4), capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        return [out.stdout]
    port = _free_port()
    procs = [
        subprocess.Popen(
            [*command, "--config.mesh.distributed=True"],
            cwd=REPO_ROOT,
            env=_env(
                2,
                JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                JAX_NUM_PROCESSES=processes,
                JAX_PROCESS_ID=i,
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(processes)
    ]
    outputs = []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        outputs.append(out)
        assert proc.returncode == 0, out[-4000:]
    return outputs


def _metrics(workdir: Path) -> dict[str, float]:
    metrics = json.loads((workdir / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if "time" not in k and not k.endswith("_s")}


def _loss_curve(workdir: Path) -> list[float]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [row["train/loss"] for row in map(json.loads, lines) if "train/loss" in row]


def _assert_trained_alike(single: Path, multi: Path) -> None:
    """The two runs agree to float rounding: loss curve, parameters, then metrics.

    The all-reduce of the replicated towers' gradients adds the devices' parts in another order
    across processes (gloo) than inside one, so the parameters differ in the last bits (about
    1e-7). Ranking metrics are not continuous in the scores: two items whose scores are one or
    two ulps apart can swap places between the runs (it happens in ``hybrid.py:smoke``, 3e-8
    apart). So a per-user value may differ for at most one user per metric, and the mean by
    no more than that user's share.
    """
    import hybridrec

    assert _loss_curve(multi) == pytest.approx(_loss_curve(single), rel=1e-5)
    params = [
        jax.tree.leaves(nnx.state(hybridrec.load(w).model, nnx.Param)) for w in (single, multi)
    ]
    for a, b in zip(*params, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)

    expected, got = _metrics(single), _metrics(multi)
    assert got.keys() == expected.keys()
    users_a, users_b = np.load(single / "per_user.npz"), np.load(multi / "per_user.npz")
    for name, value in expected.items():
        tolerance = 1e-6
        if name in users_a.files:
            a, b = users_a[name], users_b[name]
            assert np.array_equal(users_a[f"{name}:user_ids"], users_b[f"{name}:user_ids"])
            differ = ~np.isclose(b, a, rtol=1e-5, atol=1e-6)
            assert differ.sum() <= 1, (name, np.flatnonzero(differ))
            tolerance += np.abs(b - a).max() / len(a)
        assert got[name] == pytest.approx(value, rel=1e-5, abs=tolerance), name


@pytest.mark.slow
@pytest.mark.parametrize("config", ["mf.py:smoke", "hybrid.py:smoke"])
def test_two_processes_train_like_one_and_resume(tmp_path, config):
    single, multi = tmp_path / "one-process", tmp_path / "two-processes"
    _run(single, config, processes=1)
    outputs = _run(multi, config, processes=2)
    assert "4 x cpu (cpu), 2 processes" in outputs[0]
    got = _metrics(multi)

    _assert_trained_alike(single, multi)
    # One run directory, written by process 0 alone (process 1 logs to a scratch directory).
    assert len(list(multi.glob("events.out.tfevents.*"))) == 1
    assert json.loads((multi / "status.json").read_text())["state"] == "completed"
    attempts = json.loads((multi / "provenance.json").read_text())["attempts"]
    assert [a["device"]["processes"] for a in attempts] == [2]

    # Resume from the first epoch's checkpoint, written by both processes together.
    steps = sorted(int(p.name) for p in (multi / "checkpoints").iterdir() if p.name.isdigit())
    assert len(steps) >= 2
    shutil.rmtree(multi / "checkpoints" / str(steps[-1]))
    (multi / "metrics.json").unlink()
    outputs = _run(multi, config, processes=2)
    assert f"resumed from epoch {steps[-2]}" in outputs[0]
    # Resuming is bit-exact: the resumed run ends where the uninterrupted one did.
    resumed = _metrics(multi)
    assert resumed == got
