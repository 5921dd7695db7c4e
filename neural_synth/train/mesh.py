"""Device mesh and shardings for data parallelism on one or many hosts.

One 1-D mesh with axis `data` spans every device of every process: parameters
and optimizer state are replicated, batches are split along their first axis.
The same code runs on 1 or N devices (DESIGN.md: jit + NamedSharding, no pmap).
"""

from collections.abc import Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D `data` mesh over `devices` (default: all devices of all processes)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """A global batch must split evenly over devices and processes."""
    if batch_size % mesh.size:
        raise ValueError(
            f"batch_size {batch_size} does not divide over {mesh.size} devices; "
            f"set --config.train.batch_size to a multiple of {mesh.size}."
        )


def local_batch_size(batch_size: int) -> int:
    """The part of the global batch this process reads."""
    return batch_size // jax.process_count()


def global_batch(local: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assembles this process's rows of every array into global, data-sharded arrays."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}
