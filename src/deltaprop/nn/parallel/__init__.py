"""Parallel training wrappers (``deltaprop.nn.parallel``): :class:`DistributedDataParallel`.

See :mod:`deltaprop.distributed` for starting the processes.
"""

from deltaprop.nn.parallel.distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
