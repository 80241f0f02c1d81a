"""Run logging: TensorBoard event files (no TensorFlow), ``metrics.jsonl``, ``config.json``, status.

TensorBoard scalars, hyperparameters and images are written with the ``tensorboard`` package's
own ``EventFileWriter``, protos and TF-free summary helpers, so tags stay exactly as given
(``val/ndcg@10``); tensorboardX would rewrite ``@`` and ``flax.metrics.tensorboard`` would import
TensorFlow (see NOTES.md). Every scalar also goes to ``metrics.jsonl`` (one JSON object per
logging call), which is easy to read back without TensorBoard.

Hyperparameters across runs
---------------------------
Each run writes only its own session start info (``summary_v2.hparams_pb``), never an experiment
description (``_hparams_/experiment``). TensorBoard's hparams plugin uses the first experiment
description it finds in the logdir, so one per run would show a single run's columns and hide
the rest; when there is none, it derives the experiment from every run's session start info
(``backend_context._compute_experiment_from_runs``): the union of all runs' hparams, each typed
from its values and marked ``differs`` when the runs disagree, and every scalar tag as a metric.
That is right for any set of runs, including a ``runs/`` folder that gains runs over weeks, with
nothing to rewrite when a run is added. (Runs written before this change carry an experiment
description; while one of them is in the logdir, TensorBoard still shows only its columns.)
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.compat.proto.types_pb2 import DT_STRING
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
from tensorboard.plugins.image import metadata as image_metadata
from tensorboard.summary.writer.event_file_writer import EventFileWriter

STATUS_FILE = "status.json"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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


def read_status(workdir: str | os.PathLike) -> dict[str, Any] | None:
    """Reads a run directory's ``status.json``.

    The trainer keeps it as ``{"state": "running" | "completed" | "failed" | "interrupted",
    "error": str | None, ...}``.

    Args:
      workdir: the run directory.

    Returns:
      The status as a dict; ``None`` when there is no ``status.json`` (a run from before statuses
      were kept). A file that cannot be read or parsed, or lacks a string ``state``, gives
      ``{"state": "unknown", "error": <what is wrong>}`` rather than raising, so a reader can
      report the run and go on.
    """
    path = os.path.join(os.fspath(workdir), STATUS_FILE)
    try:
        with open(path) as f:
            status = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        return {"state": "unknown", "error": f"{STATUS_FILE} unreadable ({e})"}
    if not isinstance(status, dict) or not isinstance(status.get("state"), str):
        return {"state": "unknown", "error": f"{STATUS_FILE} has no 'state': {status!r}"[:200]}
    return status


def hparam_value(value: Any) -> bool | int | float | str | None:
    """The typed TensorBoard value of one hyperparameter; ``None`` means "not logged".

    ``bool``, ``int``, ``float`` and ``str`` are kept (numpy scalars become them), so TensorBoard
    types the column (a number column can be filtered by interval and plotted). ``None`` (an unset
    option) is left out rather than written as the string ``"None"``: a run without the value shows
    an empty cell, and the column keeps the type of the runs that set it. Non-finite floats become
    the strings ``"nan"``, ``"inf"``, ``"-inf"`` (TensorBoard serves hparams as JSON, which has no
    such numbers). Lists and tuples become their JSON text; anything else its ``str``.
    """
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return json.dumps(_jsonable(value))
    return str(value)


def _png_size(png: bytes) -> tuple[int, int]:
    """``(width, height)`` from a PNG's header chunk (IHDR), without decoding the image."""
    if len(png) < 24 or not png.startswith(_PNG_SIGNATURE) or png[12:16] != b"IHDR":
        raise ValueError("not a PNG file (bad signature or header)")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def _encode_png(image: np.ndarray) -> bytes:
    from PIL import Image  # matplotlib's own dependency; imported only when an array is logged

    buffer = io.BytesIO()
    Image.fromarray(image, mode="RGBA" if image.shape[-1] == 4 else "RGB").save(buffer, "PNG")
    return buffer.getvalue()


class MetricWriter:
    """Writes scalars, hparams and images to TensorBoard, and scalars to ``metrics.jsonl``.

    Args:
      workdir: the run directory; event files go directly in it so that
        ``tensorboard --logdir runs/`` shows one run per directory.
    """

    def __init__(self, workdir: str):
        os.makedirs(workdir, exist_ok=True)
        self.workdir = workdir
        self._events = EventFileWriter(workdir)
        self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")  # noqa: SIM115

    def _add(self, step: int, summary: Summary) -> None:
        self._events.add_event(Event(wall_time=time.time(), step=int(step), summary=summary))

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        """Logs ``{tag: value}`` at ``step``; tags look like ``train/loss`` or ``val/ndcg@10``."""
        values = {tag: _to_float(v) for tag, v in scalars.items()}
        self._add(
            step, Summary(value=[Summary.Value(tag=t, simple_value=v) for t, v in values.items()])
        )
        record = {
            "step": int(step),
            "time": time.time(),
            **{t: _jsonable(v) for t, v in values.items()},
        }
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()

    def write_hparams(self, hparams: Mapping[str, Any], metric_tags: Sequence[str] = ()) -> None:
        """Logs this run's hyperparameters for TensorBoard's HParams tab.

        Writes the run's session start info only (``summary_v2.hparams_pb``); TensorBoard derives
        the experiment, the union of every run's hparams with the differing ones marked, from all
        runs in the logdir (see the module docstring). Values are typed by :func:`hparam_value`;
        ``None`` values are left out.

        Args:
          hparams: flat ``{name: value}``, e.g. from :func:`flatten_config`.
          metric_tags: accepted for existing callers and not written: with no experiment
            description, TensorBoard lists every scalar tag of the runs as a metric column.
        """
        del metric_tags  # see the docstring
        values = {}
        for name, value in hparams.items():
            typed = hparam_value(value)
            if typed is not None:
                values[str(name)] = typed
        self._add(0, hparams_summary.hparams_pb(values))

    def write_image(self, step: int, tag: str, image: str | os.PathLike | np.ndarray) -> None:
        """Logs one image for TensorBoard's Images tab (the images plugin's tensor format).

        Args:
          step: the step it is shown at.
          tag: e.g. ``plots/learning_curves``.
          image: a PNG file's path (its bytes are logged as they are), or an ``(H, W, 3)`` or
            ``(H, W, 4)`` uint8 array (RGB or RGBA), encoded as PNG.

        Raises:
          ValueError: a file that is not a PNG, or an array of another shape or dtype.
        """
        if isinstance(image, (str, os.PathLike)):
            with open(image, "rb") as f:
                png = f.read()
            try:
                width, height = _png_size(png)
            except ValueError as e:
                raise ValueError(f"{os.fspath(image)}: {e}") from None
        else:
            array = np.asarray(image)
            if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] not in (3, 4):
                raise ValueError(
                    f"image for {tag!r}: expected an (H, W, 3|4) uint8 array, got shape "
                    f"{array.shape} and dtype {array.dtype}"
                )
            height, width = array.shape[:2]
            png = _encode_png(np.ascontiguousarray(array))
        tensor = TensorProto(
            dtype=DT_STRING,
            tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=3)]),
            # The images plugin's layout: width and height as decimal strings, then the images.
            string_val=[str(width).encode(), str(height).encode(), png],
        )
        meta = image_metadata.create_summary_metadata(display_name=tag, description="")
        self._add(step, Summary(value=[Summary.Value(tag=tag, metadata=meta, tensor=tensor)]))

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


def write_plot_images(
    writer: MetricWriter, plots_dir: str | os.PathLike, step: int, *, prefix: str = "plots/"
) -> list[str]:
    """Sends every PNG under ``plots_dir`` to TensorBoard as an image.

    Args:
      writer: the run's writer.
      plots_dir: the run's plot directory (``<workdir>/plots``); a missing one logs nothing.
      step: the step the images are shown at (e.g. the last epoch).
      prefix: prepended to each tag.

    Returns:
      The tags written, sorted: ``prefix`` + the PNG's path below ``plots_dir`` without
      ``.png`` (``plots/learning_curves``, ``plots/val_roc_pr``).
    """
    plots_dir = os.fspath(plots_dir)
    if not os.path.isdir(plots_dir):
        return []
    paths = []
    for root, subdirs, files in os.walk(plots_dir):
        subdirs.sort()
        paths += [os.path.join(root, f) for f in files if f.lower().endswith(".png")]
    tags = []
    for path in sorted(paths):
        tag = prefix + os.path.splitext(os.path.relpath(path, plots_dir))[0].replace(os.sep, "/")
        writer.write_image(step, tag, path)
        tags.append(tag)
    writer.flush()
    return tags


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"embedding_dim": 32}}`` -> ``{"model.embedding_dim": 32}`` (for hparams).

    Lists and tuples become their JSON text (``"[1, 5]"``); ``None`` stays ``None``
    (:meth:`MetricWriter.write_hparams` leaves it out).
    """
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) or hasattr(value, "items") and not isinstance(value, str):
            out.update(flatten_config(dict(value.items()), f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(_jsonable(value))
        else:
            out[name] = value
    return out
