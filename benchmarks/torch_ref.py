"""The benchmark workloads in PyTorch (CPU, float32, 2 intra-op threads): the outside yardstick.

Importing this module raises ImportError when PyTorch is not installed; the scripts catch it and
leave PyTorch out of the comparison. Every workload is written the way a PyTorch user writes it:
``nn.Sequential``, ``F.cross_entropy`` / ``F.mse_loss``, ``torch.optim.SGD(momentum=0.9)``,
``opt.zero_grad(); loss.backward(); opt.step()``. Batches are wrapped once with
``torch.from_numpy`` (zero-copy) before timing, as a DataLoader would hand them over.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import cycle

import numpy as np
import torch
import torch.nn.functional as F
from _common import BLAS_THREADS, pin_threads
from torch import nn

NAME = "torch"


def configure_threads(n: int = BLAS_THREADS) -> None:
    """``torch.set_num_threads(n)``, and the same limit on every pool threadpoolctl sees (torch
    brings its own OpenMP runtime). The benchmark scripts call this once after importing."""
    torch.set_num_threads(n)
    pin_threads(n)


# ---------------------------------------------------------------------------------------------
# Models; parameter names match numpy_ref's state_dict keys
# ---------------------------------------------------------------------------------------------


def mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    )


def lenet5() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


def tiny_mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1)
    )


def load_state(model: nn.Module, state: dict[str, np.ndarray]) -> nn.Module:
    """Copy NumPy arrays (PyTorch layout) into ``model``'s parameters, keeping their dtype."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(torch.from_numpy(np.asarray(state[name])))
    return model


def state_dict_numpy(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def train_step(model: nn.Module, opt: torch.optim.Optimizer, loss_fn, x, y) -> torch.Tensor:
    """One step: forward, loss, zero_grad, backward, update. Returns the loss tensor."""
    loss = loss_fn(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


# ---------------------------------------------------------------------------------------------
# Benchmark entry points: each returns a zero-argument callable doing one step / one op
# ---------------------------------------------------------------------------------------------


def _train(model: nn.Module, loss_fn, batches, lr: float, momentum: float) -> Callable[[], object]:
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    data = cycle([(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches])

    def step():
        x, y = next(data)
        return train_step(model, opt, loss_fn, x, y)

    return step


def make_mlp_step(batches, lr: float, momentum: float):
    return _train(mlp(), F.cross_entropy, batches, lr, momentum)


def make_lenet_step(batches, lr: float, momentum: float):
    return _train(lenet5(), F.cross_entropy, batches, lr, momentum)


def make_tiny_step(x: np.ndarray, y: np.ndarray, lr: float, momentum: float):
    return _train(tiny_mlp(), F.mse_loss, [(x, y)], lr, momentum)


def make_add_op(a: np.ndarray, b: np.ndarray):
    """``(a + b).sum().backward()``; gradients accumulate in a.grad / b.grad."""
    ta = torch.tensor(a, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)

    def op():
        (ta + tb).sum().backward()

    return op


def make_add_single_op(a: np.ndarray, b: np.ndarray):
    """One op: ``c = a + b; c.backward(g)`` with g of ones; gradients accumulate."""
    ta = torch.tensor(a, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    g = torch.tensor(np.ones_like(a))

    def op():
        (ta + tb).backward(g)

    return op


def make_matmul_op(a: np.ndarray, b: np.ndarray):
    """``(a @ b).sum().backward()``; gradients accumulate in a.grad / b.grad."""
    ta = torch.tensor(a, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)

    def op():
        (ta @ tb).sum().backward()

    return op


# Forward only (graph recording included, no backward): the other half of the overhead split.


def make_add_forward(a: np.ndarray, b: np.ndarray):
    ta = torch.tensor(a, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    return lambda: (ta + tb).sum()


def make_matmul_forward(a: np.ndarray, b: np.ndarray):
    ta = torch.tensor(a, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    return lambda: (ta @ tb).sum()


def gemm_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of a float32 n x n matmul in PyTorch (its own BLAS), for context."""
    import time

    a = torch.randn(n, n)
    b = torch.randn(n, n)
    c = torch.empty(n, n)
    torch.matmul(a, b, out=c)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


# ---------------------------------------------------------------------------------------------
# Single layers, forward + backward (benchmarks/layers.py)
# ---------------------------------------------------------------------------------------------


def make_layer_op(kind: str, arrays: dict[str, np.ndarray], padding: int = 0):
    """Forward + ``.sum().backward()`` of one functional layer on tensors that require grad.

    ``cross_entropy`` is a scalar already. ``arrays``: x, and w / b / target as the layer needs.
    """
    t = {k: torch.tensor(v, requires_grad=(k != "target")) for k, v in arrays.items()}
    if kind == "conv2d":

        def op():
            F.conv2d(t["x"], t["w"], t["b"], 1, padding).sum().backward()

    elif kind == "max_pool2d":

        def op():
            F.max_pool2d(t["x"], 2).sum().backward()

    elif kind == "layer_norm":
        shape = (arrays["x"].shape[-1],)

        def op():
            F.layer_norm(t["x"], shape, t["w"], t["b"]).sum().backward()

    elif kind == "cross_entropy":

        def op():
            F.cross_entropy(t["x"], t["target"]).backward()

    else:
        raise ValueError(kind)
    return op
