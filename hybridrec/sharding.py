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
Several processes: with ``mesh.distributed=True`` the run calls ``jax.distributed.initialize()``
first (``initialize_distributed``: the cluster's own detection, or ``JAX_COORDINATOR_ADDRESS``,
``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``), the mesh spans every process's devices, and each
process builds its shards of every global array from its own copy of the host values (``_put``).
Process 0 writes the run directory; see ``hybridrec.train`` and the README's "Many devices".
"""

from __future__ import annotations

import dataclasses
import math
import os
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
        initialize_distributed()
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


def initialize_distributed() -> None:
    """``jax.distributed.initialize()``, once, from the cluster's environment.

    On SLURM, Open MPI or a TPU pod JAX finds the coordinator, the process count and this
    process's index by itself. Elsewhere (several processes on one machine, a cluster JAX does not
    detect) they come from ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0),
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``: environment variables rather than config keys,
    so that every process runs the very same config. On CPU the processes exchange data through
    gloo (XLA's CPU collectives).
    """
    if jax.distributed.is_initialized():
        return
    kwargs: dict[str, Any] = {}
    if os.environ.get("JAX_NUM_PROCESSES"):
        missing = [v for v in ("JAX_COORDINATOR_ADDRESS", "JAX_PROCESS_ID") if v not in os.environ]
        if missing:
            raise ShardingError(
                f"JAX_NUM_PROCESSES is set but {', '.join(missing)} is not: a multi-process run "
                "needs the coordinator's host:port and each process's index (0 .. n-1)"
            )
        kwargs = dict(
            coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
            process_id=int(os.environ["JAX_PROCESS_ID"]),
        )
    # Only the CPU client reads it (asking for the backend here would start it too early).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**kwargs)


def is_primary() -> bool:
    """Whether this process writes the run's files (process 0; always true on one process)."""
    return jax.process_index() == 0


def share_run_dir(workdir: str | None = None, fresh: bool = False) -> tuple[str, bool]:
    """Process 0 passes the run directory it opened (and whether it is fresh) to the others.

    Every process calls it: process 0 with its values, the others without; all get process 0's.
    It is also the barrier behind which the others wait until the directory exists.
    """
    from jax.experimental import multihost_utils

    size = 4096
    encoded = np.zeros(size + 1, np.uint8)
    if is_primary():
        raw = os.path.abspath(workdir).encode()
        if len(raw) > size:
            raise ShardingError(f"run directory path longer than {size} bytes: {workdir}")
        encoded[: len(raw)] = np.frombuffer(raw, np.uint8)
        encoded[size] = int(fresh)
    shared = np.asarray(multihost_utils.broadcast_one_to_all(encoded))
    path = bytes(shared[:size]).rstrip(b"\0").decode()
    return path, bool(shared[size])


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
        return _put(tree, self.state_shardings(tree))

    def replicate(self, tree):
        """The same arrays on every device (training data, feature tables, the sampler)."""
        if self.mesh is None:
            return tree
        return _put(tree, jax.tree.map(lambda _: NamedSharding(self.mesh, P()), tree))

    def put_rows(self, rows: np.ndarray):
        """A chunk's ``(steps, B)`` row positions, split across devices along ``B``."""
        if self.mesh is None:
            return rows
        return _put(rows, NamedSharding(self.mesh, P(None, AXIS)))

    def gather(self, tree):
        """Every leaf replicated on every device, so that any process can read it whole.

        For what the host reads or an evaluation scores from (parameters); identity without a
        mesh or on one process, where the host reads sharded arrays directly.
        """
        if self.mesh is None or jax.process_count() == 1:
            return tree
        replicated = jax.tree.map(lambda _: NamedSharding(self.mesh, P()), tree)
        return jax.jit(lambda t: t, out_shardings=replicated)(tree)

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.num_devices:
            raise ShardingError(
                f"config.train.batch_size={batch_size} does not split evenly over "
                f"{self.num_devices} devices (config.mesh.num_devices); use a multiple of "
                f"{self.num_devices}"
            )


def _put(tree, shardings):
    """``jax.device_put`` on one process; with several, each process places its own shards.

    Every process holds the same host values (the same data, the same seeded initialisation),
    so each one builds the addressable part of the global array from its copy.
    """
    if jax.process_count() == 1:
        return jax.device_put(tree, shardings)

    def leaf(x, sharding):
        if jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key):
            data = np.asarray(jax.random.key_data(x))
            impl = jax.random.key_impl(x)
            # A spec shorter than the array leaves the key's data dimension unsplit.
            out = jax.make_array_from_callback(data.shape, sharding, lambda i: data[i])
            return jax.random.wrap_key_data(out, impl=impl)
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda i: host[i])

    return jax.tree.map(leaf, tree, shardings)
