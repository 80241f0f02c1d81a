"""Run directories as append-only history: refuse a changed rerun, mark failures, keep provenance.

A run directory (``runs/<config>-<time>/``) is written by one experiment and, when rerun with the
same config, resumed by it. What this module guarantees:

- **Nothing is touched before the rerun is known to be the same run.** ``open_run`` compares the
  stored ``config.json`` with the new config (and the stored input-file hashes with the data it
  is about to read) before any file is written; a difference is a ``RunDirError`` listing the
  differing keys, and the directory stays loadable. ``new_run=True`` starts a fresh sibling
  directory instead (``<workdir>-2``, ``-3``, ...).
- ``config.json`` (and, in the trainer, the fitted features and ``model.json``) are written only
  for a fresh run.
- ``status.json`` says ``running``, ``completed``, ``interrupted`` (Ctrl-C, after a checkpoint
  was saved) or ``failed`` (with the error). A failed run's TensorBoard event files are renamed
  (``...tfevents...`` -> ``...failedevents...``) so TensorBoard does not list it; ``compare``
  skips it. A later successful resume renames them back.
- ``provenance.json``: one record per attempt (fresh start or resume): dataset counts from
  ``Dataset.info`` (dropped, merged, unknown), input file hashes, package versions, device, git
  revision, command line. ``summary`` gives the few lines printed when a run starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

from hybridrec.logging import STATUS_FILE, flatten_config, read_status, write_json

CONFIG_FILE = "config.json"
PROVENANCE_FILE = "provenance.json"
# Config keys that may differ between a run and its resume: they change how the run is shown,
# never what it computes.
RESUMABLE_KEYS = ("progress",)
_EVENTS = "tfevents"
_HIDDEN_EVENTS = "failedevents"
_PACKAGES = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "orbax-checkpoint",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "ml-collections",
    "tensorboard",
)


class RunDirError(ValueError):
    """A run directory that cannot be (re)used as asked; nothing in it was changed."""


def config_diff(stored: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple]:
    """``{dotted key: (stored value, new value)}`` for every key that differs (or is missing)."""
    a, b = flatten_config(stored), flatten_config(new)
    missing = object()
    out = {}
    for key in sorted(set(a) | set(b)):
        if key in RESUMABLE_KEYS:
            continue
        va, vb = a.get(key, missing), b.get(key, missing)
        # JSON turns tuples into lists; compare as JSON would store them.
        if json.dumps(va, default=str, sort_keys=True) != json.dumps(
            vb, default=str, sort_keys=True
        ):
            out[key] = (
                "<absent>" if va is missing else va,
                "<absent>" if vb is missing else vb,
            )
    return out


def _next_free(workdir: str) -> str:
    for n in range(2, 10_000):
        candidate = f"{workdir.rstrip(os.sep)}-{n}"
        if not os.path.exists(candidate):
            return candidate
    raise RunDirError(f"no free run directory next to {workdir!r}")


def open_run(workdir: str, config: Mapping[str, Any], *, new_run: bool = False) -> tuple[str, bool]:
    """Checks ``workdir`` against ``config`` before anything is written; returns where to run.

    Args:
      workdir: the requested run directory.
      config: the experiment config as a plain dict (``ConfigDict.to_dict()``).
      new_run: if ``workdir`` already holds a run with another config, start a fresh sibling
        directory instead of refusing.

    Returns:
      ``(workdir, fresh)``: the directory to use and whether it is a fresh run (its
      ``config.json`` has just been written) rather than a resume of the same config.

    Raises:
      RunDirError: ``workdir`` holds a run of a different config (the message lists the keys),
        or is not a directory.
    """
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise RunDirError(f"workdir {workdir!r} exists and is not a directory")
    path = os.path.join(workdir, CONFIG_FILE)
    if os.path.isfile(path):
        try:
            with open(path) as f:
                stored = json.load(f)
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{path} cannot be read ({exc}); not touching {workdir!r}") from None
        diff = config_diff(stored, config)
        if not diff:
            return workdir, False
        if new_run:
            return open_run(_next_free(workdir), config)
        lines = [f"  {k}: {old!r} (stored) -> {new!r} (now)" for k, (old, new) in diff.items()]
        shown = lines[:20] + ([f"  ... and {len(lines) - 20} more"] if len(lines) > 20 else [])
        raise RunDirError(
            f"{workdir!r} holds a run of a different config, so it cannot be resumed; "
            f"{len(diff)} key(s) differ:\n" + "\n".join(shown) + "\nNothing was changed. Use "
            "another --workdir, or --new_run to start a fresh run beside it."
        )
    os.makedirs(workdir, exist_ok=True)
    write_json(path, config)
    return workdir, True


# ------------------------------------------------------------------------------------ status
def set_status(workdir: str, state: str, **extra: Any) -> None:
    """Writes ``status.json`` and shows or hides the run's event files to match the state."""
    previous = read_status(workdir) or {}
    record = {
        "state": state,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "attempts": int(previous.get("attempts", 0)) + (1 if state == "running" else 0),
        "error": None,
        **extra,
    }
    write_json(os.path.join(workdir, STATUS_FILE), record)
    _set_events_visible(workdir, visible=state != "failed")


def _set_events_visible(workdir: str, *, visible: bool) -> None:
    old, new = (_HIDDEN_EVENTS, _EVENTS) if visible else (_EVENTS, _HIDDEN_EVENTS)
    for root, _, files in os.walk(workdir):
        for name in files:
            if old in name:
                os.replace(os.path.join(root, name), os.path.join(root, name.replace(old, new)))


# ------------------------------------------------------------------------------------ provenance
def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def input_files(data_config: Mapping[str, Any]) -> list[str]:
    """The local files a data config reads (its path-like values that exist), sorted."""
    found = set()

    def visit(value):
        if isinstance(value, Mapping):
            for v in value.values():
                visit(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                visit(v)
        elif isinstance(value, str) and value and os.path.exists(value):
            if os.path.isfile(value):
                found.add(os.path.abspath(value))
            elif os.path.isdir(value):
                for root, _, files in os.walk(value):
                    found.update(os.path.abspath(os.path.join(root, f)) for f in files)

    visit(dict(data_config))
    return sorted(found)


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("hybridrec", *_PACKAGES):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_revision() -> str | None:
    """The hybridrec checkout's commit (``+dirty`` with uncommitted changes), or None."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rev = subprocess.run(
            ["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _jsonable_info(info: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(info), default=str))


def check_inputs(workdir: str, data_config: Mapping[str, Any], *, fresh: bool) -> dict[str, str]:
    """Hashes the files ``config.data`` names; on a resume, refuses inputs that changed.

    Runs before the data is loaded, so a changed file is reported as a change (not as whatever
    the loader makes of it) and nothing in the run directory is touched.

    Returns:
      ``{absolute path: sha256}`` of the config's input files.

    Raises:
      RunDirError: a resume whose input files hash differently from the first attempt's.
    """
    hashes = {path: file_sha256(path) for path in input_files(data_config)}
    path = os.path.join(workdir, PROVENANCE_FILE)
    if fresh or not os.path.isfile(path):
        return hashes
    with open(path) as f:
        attempts = json.load(f).get("attempts", [])
    if attempts:
        first = {k: v for k, v in attempts[0].get("input_sha256", {}).items() if os.path.isabs(k)}
        changed = sorted(k for k in set(first) | set(hashes) if first.get(k) != hashes.get(k))
        if changed:
            raise RunDirError(
                f"{workdir!r}: the input data changed since this run started, so it cannot be "
                f"resumed on it; files differing: {changed[:5]}. Nothing was changed."
            )
    return hashes


def record_provenance(
    workdir: str,
    *,
    fresh: bool,
    input_sha256: Mapping[str, str],
    dataset_info: Mapping[str, Any],
    counts: Mapping[str, Any],
    notes: list[str],
) -> dict[str, Any]:
    """Appends this attempt's record to ``provenance.json``.

    Args:
      workdir: the run directory.
      fresh: whether this is the run's first attempt.
      input_sha256: the config's input files' hashes (``check_inputs``); the loader's own
        digests (``dataset_info["sha256"]``, e.g. the files inside a zip) are added.
      dataset_info: the loaded ``Dataset.info`` (counts of what the loader dropped or merged).
      counts: sizes of the prepared data (users, items, train/val/test interactions).
      notes: what preparation dropped, merged or ignored.

    Returns:
      The record written.
    """
    import jax

    path = os.path.join(workdir, PROVENANCE_FILE)
    history = []
    if os.path.isfile(path):
        with open(path) as f:
            history = json.load(f).get("attempts", [])
    hashes = dict(input_sha256)
    digests = dataset_info.get("sha256")
    if isinstance(digests, Mapping):
        hashes.update({str(k): str(v) for k, v in digests.items()})
    devices = jax.devices()
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "fresh": bool(fresh),
        "command": sys.argv,
        "git_revision": git_revision(),
        "versions": _versions(),
        "device": {
            "platform": devices[0].platform,
            "kind": devices[0].device_kind,
            "count": len(devices),
            "processes": jax.process_count(),
        },
        "host": platform.node(),
        "input_sha256": hashes,
        "counts": dict(counts),
        "dataset_info": _jsonable_info(dataset_info),
        "notes": list(notes),
    }
    write_json(path, {"attempts": [*history, record]})
    return record


def summary(record: Mapping[str, Any]) -> str:
    """The few lines printed when a run starts: data, device, versions, revision, notes."""
    counts = record["counts"]
    device = record["device"]
    versions = record["versions"]
    lines = [
        "data   "
        + ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in counts.items()),
        f"device {device['count']} x {device['kind']} ({device['platform']})"
        + (f", {device['processes']} processes" if device.get("processes", 1) > 1 else ""),
        "stack  "
        + ", ".join(f"{k} {versions[k]}" for k in ("jax", "flax", "optax") if k in versions)
        + f"; hybridrec {record.get('git_revision') or versions.get('hybridrec', '?')}",
    ]
    lines += [f"note   {n}" for n in record.get("notes", [])]
    return "\n".join(lines)
