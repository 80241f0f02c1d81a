"""Runs one experiment from a Python config file.

Usage (from the repository root)::

    python -m experiments.run --config hybrid.py
    python -m experiments.run --config hybrid.py:smoke --config.model.embedding_dim=64 --workdir runs/x

A bare config name resolves to ``experiments/configs/``; ``:arg`` is passed to ``get_config(arg)``;
dotted overrides change the locked config (a misspelt key is an error). ``--workdir`` defaults to
``runs/<config>-<time>``; rerunning the same config into the same workdir resumes from its last
checkpoint, and a changed config is refused with the differing keys (``--new_run`` starts a fresh
run beside it). Ctrl-C finishes the epoch, saves a checkpoint and exits with status 130.
"""

from __future__ import annotations

import ast
import os
import sys
import time
import warnings

from absl import app, flags, logging
from ml_collections import config_flags

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def resolve_config_arg(argv: list[str]) -> list[str]:
    """Maps ``--config NAME[.py][:arg]`` to a path under ``experiments/configs/`` when NAME is bare.

    ``config_flags`` resolves paths from the current directory (NOTES.md), so a bare name that is
    not a file there is looked up among the shipped configs instead.
    """
    out = list(argv)
    for i, token in enumerate(out):
        if token == "--config" and i + 1 < len(out):
            out[i + 1] = _resolve(out[i + 1])
        elif token.startswith("--config="):
            out[i] = "--config=" + _resolve(token.split("=", 1)[1])
    return out


def _resolve(value: str) -> str:
    path, sep, arg = value.partition(":")
    if os.path.exists(path):
        return value
    name = path if path.endswith(".py") else f"{path}.py"
    candidate = os.path.join(CONFIG_DIR, os.path.basename(name))
    if os.path.exists(candidate):
        return candidate + sep + arg
    known = sorted(f for f in os.listdir(CONFIG_DIR) if f.endswith(".py") and not f.startswith("_"))
    raise SystemExit(
        f"error: config {path!r} not found here or in experiments/configs/ (known: {', '.join(known)})"
    )


def default_workdir(config_arg: str) -> str:
    name = os.path.splitext(os.path.basename(config_arg.partition(":")[0]))[0]
    variant = config_arg.partition(":")[2]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return os.path.join("runs", f"{name}{'-' + variant if variant else ''}-{stamp}")


FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file.", lock_config=True
)
flags.DEFINE_string("workdir", None, "Run directory (default: runs/<config>-<time>).")
flags.DEFINE_bool(
    "new_run",
    False,
    "If --workdir holds a run of another config, start a fresh run beside it (<workdir>-2) "
    "instead of refusing.",
)


def main(argv: list[str]) -> None:
    del argv
    # Orbax logs every checkpoint step at INFO through absl; keep the console for results.
    logging.set_verbosity(logging.WARNING)
    # A warning is one line ("warning: only 3 optimizer steps an epoch ..."), not a source line.
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"
    from hybridrec.rundir import RunDirError
    from hybridrec.train import Interrupted, print_metrics_table, run_experiment

    config = _CONFIG.value
    if config is None:
        raise app.UsageError("--config is required, e.g. --config hybrid.py")
    config_arg = next(
        (a.split("=", 1)[1] if a.startswith("--config=") else sys.argv[i + 1])
        for i, a in enumerate(sys.argv)
        if a == "--config" or a.startswith("--config=")
    )
    workdir = FLAGS.workdir or default_workdir(config_arg)
    # The whole config is in <workdir>/config.json; the console gets one line.
    print(f"config {config_arg} -> workdir {workdir}", flush=True)
    try:
        run = run_experiment(config, workdir, new_run=FLAGS.new_run)
    except RunDirError as err:
        raise SystemExit(f"error: {err}") from None
    except Interrupted as err:
        print(f"\n{err}", file=sys.stderr)
        raise SystemExit(130) from None
    if run.workdir != workdir:
        print(f"workdir {run.workdir} (a new run beside {workdir})")
    print_metrics_table(run.metrics)


def parse_flags(argv: list[str]) -> list[str]:
    """Parses flags; a bad override (a misspelt key, a wrong type) is one clear line, not a traceback."""
    try:
        return FLAGS(argv)
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as err:
        message = str(err)
        if message[:1] in "'\"":  # KeyError/AttributeError messages are reprs of the text
            try:
                message = ast.literal_eval(message)
            except (ValueError, SyntaxError):
                pass
        # An error raised inside the config file arrives with its traceback: keep the last line.
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        message = lines[-1] if "Traceback" in message else " ".join(lines)
        raise SystemExit(f"error: bad --config: {message}") from None


if __name__ == "__main__":
    app.run(main, argv=resolve_config_arg(sys.argv), flags_parser=parse_flags)
