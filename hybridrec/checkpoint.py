"""Checkpoints through orbax's ``CheckpointManager``: save every n epochs, resume from the latest.

A checkpoint step holds three items: ``params`` (the model parameters), ``opt_state`` (the
optimizer's state, dense or row-sparse alike) and ``host`` (the trainer's JSON counters). The
parameters are an item of their own so that ``hybridrec.load`` restores them without building an
optimizer. Orbax writes to a temporary directory and renames it when complete,
so a process killed mid-save leaves the previous checkpoint as the latest one (NOTES.md).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


def _quiet_orbax(record: logging.LogRecord) -> bool:
    # Orbax warns on every save that it found no OCDBT parts to merge; with OCDBT off (see
    # Checkpointer) that is expected, and it would print twice per checkpoint.
    return "Skipping merge of OCDBT" not in record.getMessage()


logging.getLogger("absl").addFilter(_quiet_orbax)


def _arrays(state: Any) -> Any:
    # Orbax stores arrays; Python and numpy scalars become 0-d arrays. With several processes,
    # an array that lives on one local device (a scalar the host set, e.g. the learning-rate
    # scale) is the same on every process: orbax takes it as numpy, written once.
    several = jax.process_count() > 1

    def leaf(x):
        if isinstance(x, (int, float, np.generic)):
            return np.asarray(x)
        if several and isinstance(x, jax.Array) and x.is_fully_addressable:
            return np.asarray(x)
        return x

    return jax.tree.map(leaf, state)


def _placed(target: Any) -> Any:
    """Abstract target leaves without a sharding get this process's first device.

    Orbax otherwise restores an array onto the devices it was saved from, which fails when a
    run trained on 8 devices is loaded on one ("Topology mismatch").
    """
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])

    def leaf(x):
        if isinstance(x, jax.ShapeDtypeStruct) and x.sharding is None:
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device)
        return x

    return jax.tree.map(leaf, target)


class Checkpointer:
    """Saves and restores training state under ``<workdir>/checkpoints``.

    Args:
      workdir: the run directory.
      max_to_keep: how many recent checkpoints to keep.
    """

    def __init__(self, workdir: str, max_to_keep: int = 2):
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        # One tensorstore file per array rather than an OCDBT database: orbax finds OCDBT's
        # per-process parts with a glob, which silently misses them under a path holding glob
        # characters ("runs/mf[1]"), and our checkpoints hold only a handful of arrays.
        handler = lambda: ocp.StandardCheckpointHandler(use_ocdbt=False)  # noqa: E731
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
            item_handlers=dict(
                params=handler(), opt_state=handler(), host=ocp.JsonCheckpointHandler()
            ),
        )

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, or None."""
        return self._manager.latest_step()

    def save(
        self,
        step: int,
        *,
        params: Any,
        opt_state: Any = None,
        host: dict[str, Any] | None = None,
    ) -> None:
        """Saves a step and waits until it is written.

        Args:
          step: the step (the trainer uses the number of finished epochs).
          params: the model parameters (a pytree of arrays); stored as their own item, so
            ``restore_params`` reads them without the optimizer.
          opt_state: the optimizer state (a pytree of arrays), or None (nothing to resume).
          host: JSON-able trainer state (counters, the last metrics) saved beside them.
        """
        items = dict(
            params=ocp.args.StandardSave(_arrays(params)), host=ocp.args.JsonSave(host or {})
        )
        if opt_state is not None:
            items["opt_state"] = ocp.args.StandardSave(_arrays(opt_state))
        self._manager.save(step, args=ocp.args.Composite(**items))
        self._manager.wait_until_finished()

    def restore(
        self, *, params: Any, opt_state: Any = None, step: int | None = None
    ) -> tuple[Any, Any, dict[str, Any]]:
        """Restores into the structures of ``params`` and ``opt_state``; newest step by default.

        Returns:
          ``(params, opt_state, host)``; ``opt_state`` is None when no target was given.
        """
        step = self._step(step)
        items = dict(params=ocp.args.StandardRestore(params), host=ocp.args.JsonRestore())
        if opt_state is not None:
            items["opt_state"] = ocp.args.StandardRestore(opt_state)
        restored = self._manager.restore(step, args=ocp.args.Composite(**items))
        return (
            restored["params"],
            restored["opt_state"] if opt_state is not None else None,
            dict(restored["host"] or {}),
        )

    def restore_params(self, params: Any, step: int | None = None) -> Any:
        """The parameters alone (no optimizer is built or read), e.g. for serving."""
        step = self._step(step)
        restored = self._manager.restore(
            step, args=ocp.args.Composite(params=ocp.args.StandardRestore(_placed(params)))
        )
        return restored["params"]

    def _step(self, step: int | None) -> int:
        step = self.latest_step() if step is None else int(step)
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        if step not in self._manager.all_steps():
            raise FileNotFoundError(
                f"no checkpoint of step {step} in {self.directory} "
                f"(steps: {sorted(self._manager.all_steps())})"
            )
        return step

    def close(self) -> None:
        self._manager.close()
