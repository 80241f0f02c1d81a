"""Many devices through JAX's own sharding: tables split by rows, batches split across devices.

``config.mesh`` says how many devices a run uses (``num_devices=-1``: all that JAX sees), so the
same config runs on one CPU, eight simulated CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``), or a GPU host. With more than one
device:

- the model's ID-embedding tables and ID biases (every parameter whose leading dimension is the
  number of users or items) are sharded by rows over the mesh's ``data`` axis, as is the matching
  optimizer state; everything else (towers' dense layers, small vocabularies) is replicated;
- each step's batch is split across devices along the batch dimension, so the batch size must
  divide evenly;
- the training interactions, feature tables and the sampler are replicated (each device gathers
  its own batch's rows);
- XLA's SPMD partitioner inserts the collectives (``jax.jit`` with the shardings of its inputs
  and ``out_shardings`` pinned to them, so the state keeps its layout from step to step).

The ID spaces are padded to a multiple of the device count (rows never looked up): jax cannot
split 943 rows 8 ways. The padding leaves training unchanged: threefry's draws for a table of
``n + p`` rows begin with the draws for ``n`` rows, so the real rows start from the same values,
and the padded rows receive no gradient.

The mesh's axis is ``Auto`` (NOTES.md: with Explicit axes, indexing a row-sharded table fails).
Multi-host: with ``mesh.distributed=True`` the run calls ``jax.distributed.initialize()`` first
(coordinator, process count and index from its arguments' environment variables); see the
README's "Many devices" section.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "data"


class ShardingError(ValueError):
    """A mesh the run cannot use as configured; the message names the config key."""


def make_mesh(mesh_config: Mapping[str, Any] | None) -> Mesh | None:
    """The 1-D ``data`` mesh ``config.mesh`` asks for, or None for a single device.

    Args:
      mesh_config: ``{"num_devices": int, "distributed": bool}``; ``num_devices=-1`` (or
        None) means every device JAX sees, 1 means no mesh at all.
    """
    options = dict(mesh_config or {})
    if options.get("distributed"):
        if not jax.distributed.is_initialized():
            jax.distributed.initialize()
    devices = jax.devices()
    wanted = options.get("num_devices")
    wanted = len(devices) if wanted in (None, -1) else int(wanted)
    if wanted < 1 or wanted > len(devices):
        raise ShardingError(
            f"config.mesh.num_devices={options.get('num_devices')} but JAX sees {len(devices)} "
            f"device(s) ({devices[0].platform}); use -1 for all of them"
        )
    if wanted == 1:
        return None
    return jax.make_mesh((wanted,), (AXIS,), axis_types=(AxisType.Auto,), devices=devices[:wanted])


def padded(n: int, mesh: Mesh | None) -> int:
    """``n`` rounded up to a multiple of the mesh size (``n`` itself without a mesh)."""
    if mesh is None:
        return n
    return math.ceil(n / mesh.size) * mesh.size


@dataclasses.dataclass
class Placement:
    """Where a run's arrays live: state sharded by rows, batches split, data replicated.

    Without a mesh every method returns its input unchanged, so the single-device path is the
    code it always was.
    """

    mesh: Mesh | None
    row_counts: tuple[int, ...] = ()

    @property
    def num_devices(self) -> int:
        return 1 if self.mesh is None else self.mesh.size

    def _leaf_sharding(self, x) -> NamedSharding:
        shape = np.shape(x)
        if shape and shape[0] in self.row_counts and shape[0] % self.mesh.size == 0:
            return NamedSharding(self.mesh, P(AXIS, *([None] * (len(shape) - 1))))
        return NamedSharding(self.mesh, P())

    def state_shardings(self, tree):
        """The sharding of every leaf of a params / optimizer-state tree (None without mesh)."""
        if self.mesh is None:
            return None
        return jax.tree.map(self._leaf_sharding, tree)

    def put_state(self, tree):
        """Places params or optimizer state: ID tables by rows, the rest replicated."""
        if self.mesh is None:
            return tree
        return jax.device_put(tree, self.state_shardings(tree))

    def replicate(self, tree):
        """The same arrays on every device (training data, feature tables, the sampler)."""
        if self.mesh is None:
            return tree
        return jax.device_put(tree, NamedSharding(self.mesh, P()))

    def put_rows(self, rows: np.ndarray):
        """A chunk's ``(steps, B)`` row positions, split across devices along ``B``."""
        if self.mesh is None:
            return rows
        return jax.device_put(rows, NamedSharding(self.mesh, P(None, AXIS)))

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.num_devices:
            raise ShardingError(
                f"config.train.batch_size={batch_size} does not split evenly over "
                f"{self.num_devices} devices (config.mesh.num_devices); use a multiple of "
                f"{self.num_devices}"
            )
