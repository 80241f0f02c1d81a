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

import pytest

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


@pytest.mark.slow
@pytest.mark.parametrize("config", ["mf.py:smoke", "hybrid.py:smoke"])
def test_two_processes_train_like_one_and_resume(tmp_path, config):
    single, multi = tmp_path / "one-process", tmp_path / "two-processes"
    _run(single, config, processes=1)
    outputs = _run(multi, config, processes=2)
    assert "4 x cpu (cpu), 2 processes" in outputs[0]

    expected = _metrics(single)
    got = _metrics(multi)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
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
    resumed = _metrics(multi)
    for name, value in expected.items():
        assert resumed[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
