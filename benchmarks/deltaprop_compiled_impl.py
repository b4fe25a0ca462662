"""The deltaprop workloads of ``deltaprop_impl.py``, each step wrapped in ``dp.compile``.

The same models, data and optimizer as the eager implementation; the first two calls record
the step, later calls replay it (see ``deltaprop.compiler``). The benchmarks' warm-up covers
the recording calls.
"""

from __future__ import annotations

import deltaprop_impl as eager

import deltaprop.compiler  # noqa: F401  (imported here: its code is not a step's memory)

NAME = "deltaprop compiled"
notes = eager.notes


def make_mlp_step(batches, lr: float, momentum: float):
    return eager.make_mlp_step(batches, lr, momentum, compiled=True)


def make_lenet_step(batches, lr: float, momentum: float):
    return eager.make_lenet_step(batches, lr, momentum, compiled=True)


def make_tiny_step(x, y, lr: float, momentum: float):
    return eager.make_tiny_step(x, y, lr, momentum, compiled=True)


def make_add_op(a, b):
    return eager.make_add_op(a, b, compiled=True)


def make_add_single_op(a, b):
    return eager.make_add_single_op(a, b, compiled=True)


def make_matmul_op(a, b):
    return eager.make_matmul_op(a, b, compiled=True)
