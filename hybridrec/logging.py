"""Run logging: TensorBoard event files (no TensorFlow), ``metrics.jsonl`` and ``config.json``.

TensorBoard scalars and hyperparameters are written with the ``tensorboard`` package's own
``EventFileWriter`` and protos, so tags stay exactly as given (``val/ndcg@10``); tensorboardX would
rewrite ``@`` and ``flax.metrics.tensorboard`` would import TensorFlow (see NOTES.md). Every scalar
also goes to ``metrics.jsonl`` (one JSON object per logging call), which is easy to read back
without TensorBoard.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter


def _to_float(value: Any) -> float:
    return float(np.asarray(value))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.generic, np.ndarray)) or hasattr(value, "__array__"):
        arr = np.asarray(value)
        return arr.item() if arr.ndim == 0 else arr.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_json(path: str, data: Mapping[str, Any]) -> None:
    """Writes ``data`` as indented JSON, atomically (a crash never leaves half a file)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(_jsonable(data), f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def _hparams_summary(tag: str, **plugin_data: Any) -> Summary:
    content = plugin_data_pb2.HParamsPluginData(version=0, **plugin_data).SerializeToString()
    meta = SummaryMetadata(
        plugin_data=SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME, content=content)
    )
    return Summary(value=[Summary.Value(tag=tag, metadata=meta)])


class MetricWriter:
    """Writes scalars to TensorBoard and ``metrics.jsonl`` in ``workdir``.

    Args:
      workdir: the run directory; event files go directly in it so that
        ``tensorboard --logdir runs/`` shows one run per directory.
    """

    def __init__(self, workdir: str):
        os.makedirs(workdir, exist_ok=True)
        self.workdir = workdir
        self._events = EventFileWriter(workdir)
        self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")  # noqa: SIM115

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        """Logs ``{tag: value}`` at ``step``; tags look like ``train/loss`` or ``val/ndcg@10``."""
        values = {tag: _to_float(v) for tag, v in scalars.items()}
        summary = Summary(value=[Summary.Value(tag=t, simple_value=v) for t, v in values.items()])
        self._events.add_event(Event(wall_time=time.time(), step=int(step), summary=summary))
        record = {
            "step": int(step),
            "time": time.time(),
            **{t: _jsonable(v) for t, v in values.items()},
        }
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()

    def write_hparams(self, hparams: Mapping[str, Any], metric_tags: list[str] = ()) -> None:
        """Logs hyperparameters (flat ``{name: number | str | bool}``) for TensorBoard's HParams tab."""
        start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
        infos = []
        for name, value in hparams.items():
            if isinstance(value, bool):
                start.hparams[name].bool_value = value
                kind = api_pb2.DATA_TYPE_BOOL
            elif isinstance(value, (int, float, np.number)):
                start.hparams[name].number_value = float(value)
                kind = api_pb2.DATA_TYPE_FLOAT64
            else:
                start.hparams[name].string_value = str(value)
                kind = api_pb2.DATA_TYPE_STRING
            infos.append(api_pb2.HParamInfo(name=name, type=kind))
        experiment = api_pb2.Experiment(
            hparam_infos=infos,
            metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=t)) for t in metric_tags],
        )
        for summary in (
            _hparams_summary(metadata.EXPERIMENT_TAG, experiment=experiment),
            _hparams_summary(metadata.SESSION_START_INFO_TAG, session_start_info=start),
        ):
            self._events.add_event(Event(wall_time=time.time(), step=0, summary=summary))

    def flush(self) -> None:
        self._events.flush()
        self._jsonl.flush()

    def close(self) -> None:
        self._events.close()
        self._jsonl.close()

    def __enter__(self) -> MetricWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"embedding_dim": 32}}`` -> ``{"model.embedding_dim": 32}`` (for hparams)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) or hasattr(value, "items") and not isinstance(value, str):
            out.update(flatten_config(dict(value.items()), f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(_jsonable(value))
        elif value is None:
            out[name] = "None"
        else:
            out[name] = value
    return out
