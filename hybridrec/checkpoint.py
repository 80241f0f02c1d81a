"""Checkpoints through orbax's ``CheckpointManager``: save every n epochs, resume from the latest.

A checkpoint holds one pytree of arrays (model state, optimizer state, RNG keys, the epoch and the
trainer's host-side counters). Orbax writes to a temporary directory and renames it when complete,
so a process killed mid-save leaves the previous checkpoint as the latest one (NOTES.md).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class Checkpointer:
    """Saves and restores training state under ``<workdir>/checkpoints``.

    Args:
      workdir: the run directory.
      max_to_keep: how many recent checkpoints to keep.
    """

    def __init__(self, workdir: str, max_to_keep: int = 2):
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        )

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, or None."""
        return self._manager.latest_step()

    def save(self, step: int, state: Any, host: dict[str, Any] | None = None) -> None:
        """Saves ``state`` (a pytree of arrays and scalars) as ``step`` and waits until written.

        ``host`` is JSON-able trainer state (counters, the last metrics) saved beside it.
        """
        # Orbax stores arrays; Python and numpy scalars become 0-d arrays.
        state = jax.tree.map(
            lambda x: np.asarray(x) if isinstance(x, (int, float, np.generic)) else x, state
        )
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), host=ocp.args.JsonSave(host or {})
            ),
        )
        self._manager.wait_until_finished()

    def restore(self, target: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Restores into the structure of ``target``; newest step by default.

        Returns:
          ``(state, host)``: the restored pytree and the JSON host state saved with it.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target), host=ocp.args.JsonRestore()
            ),
        )
        return restored["state"], dict(restored["host"] or {})

    def close(self) -> None:
        self._manager.close()
