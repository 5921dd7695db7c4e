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


def initialize_processes(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    timeout_s: int = 300,
) -> None:
    """Joins a multi-process (multi-host) run before any JAX computation.

    With no arguments JAX detects the cluster (SLURM, Open MPI, Kubernetes,
    cloud TPU); otherwise every process passes the same `coordinator_address`
    (HOST:PORT of process 0) and `num_processes`, and its own `process_id`.
    CPU processes exchange data through gloo collectives.
    """
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=timeout_s,
    )


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
            f"set train.batch_size to a multiple of {mesh.size}."
        )


def process_rows(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """This process's rows of a global host batch (process p holds the p-th equal slice).

    The mesh lists every process's devices in process order, so these are the
    rows that `global_batch` places on this process's devices.
    """
    count, index = jax.process_count(), jax.process_index()
    return {k: v[len(v) // count * index : len(v) // count * (index + 1)] for k, v in batch.items()}


def global_batch(local: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assembles this process's rows of every array into global, data-sharded arrays."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}
