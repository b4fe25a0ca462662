"""The benchmark workloads written with deltaprop's public API, exactly as a user writes them.

Importing this module raises (ImportError or whatever the framework's import raises) while the
framework, or a part of its API used here, is missing; the scripts catch that and report
"deltaprop: unavailable (...)". The package is taken from this checkout's ``src/`` when it is
there, so the benchmark measures the working tree rather than some installed copy.
"""

from __future__ import annotations

import sys
from itertools import cycle

import numpy as np
from _common import REPO_ROOT

_SRC = REPO_ROOT / "src"
if (_SRC / "deltaprop" / "__init__.py").exists() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

import deltaprop as dp  # noqa: E402
from deltaprop import nn, optim  # noqa: E402
from deltaprop.nn import functional as F  # noqa: E402

NAME = "deltaprop"


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


def mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    )


def lenet5() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, stride=1, padding=2),
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


def param_dtypes(model) -> set[str]:
    """The dtypes of a model's parameters, to flag a run that is not float32 end to end."""
    try:
        return {str(np.dtype(p.dtype)) for p in model.parameters()}
    except (AttributeError, TypeError):  # a Tensor without a NumPy-compatible .dtype
        return {"unknown"}


# ---------------------------------------------------------------------------------------------
# Benchmark entry points: each returns a zero-argument callable doing one step / one op
# ---------------------------------------------------------------------------------------------

#: Notes gathered while building the workloads (e.g. parameters not in float32), for the report.
notes: list[str] = []


def _train(model, loss_fn, batches, lr: float, momentum: float, compiled: bool = False):
    """One training step per call, cycling over ``batches``: ``step(x, y)`` as a user writes
    it, eager or through ``dp.compile``."""
    dtypes = param_dtypes(model)
    if dtypes != {"float32"}:  # reported under the table, not an error
        notes.append(f"deltaprop {type(model).__name__} parameters are {sorted(dtypes)}")
    opt = optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    data = cycle([(dp.from_numpy(x), dp.from_numpy(y)) for x, y in batches])

    def step(x, y):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    fn = dp.compile(step) if compiled else step
    return lambda: fn(*next(data))


def make_mlp_step(batches, lr: float, momentum: float, compiled: bool = False):
    return _train(mlp(), F.cross_entropy, batches, lr, momentum, compiled)


def make_lenet_step(batches, lr: float, momentum: float, compiled: bool = False):
    return _train(lenet5(), F.cross_entropy, batches, lr, momentum, compiled)


def make_tiny_step(x: np.ndarray, y: np.ndarray, lr: float, momentum: float, compiled=False):
    return _train(tiny_mlp(), F.mse_loss, [(x, y)], lr, momentum, compiled)


def make_add_op(a: np.ndarray, b: np.ndarray, compiled: bool = False):
    """``(a + b).sum().backward()``; gradients accumulate in a.grad / b.grad."""
    ta = dp.tensor(a, requires_grad=True)
    tb = dp.tensor(b, requires_grad=True)

    def op():
        (ta + tb).sum().backward()

    return dp.compile(op) if compiled else op


def make_add_single_op(a: np.ndarray, b: np.ndarray, compiled: bool = False):
    """One op: ``c = a + b; c.backward(g)`` with g of ones; gradients accumulate."""
    ta = dp.tensor(a, requires_grad=True)
    tb = dp.tensor(b, requires_grad=True)
    g = dp.tensor(np.ones_like(a))

    def op():
        (ta + tb).backward(g)

    return dp.compile(op) if compiled else op


def make_matmul_op(a: np.ndarray, b: np.ndarray, compiled: bool = False):
    """``(a @ b).sum().backward()``; gradients accumulate in a.grad / b.grad."""
    ta = dp.tensor(a, requires_grad=True)
    tb = dp.tensor(b, requires_grad=True)

    def op():
        (ta @ tb).sum().backward()

    return dp.compile(op) if compiled else op


# Forward only (graph recording included, no backward): the other half of the overhead split.


def make_add_forward(a: np.ndarray, b: np.ndarray):
    ta = dp.tensor(a, requires_grad=True)
    tb = dp.tensor(b, requires_grad=True)
    return lambda: (ta + tb).sum()


def make_matmul_forward(a: np.ndarray, b: np.ndarray):
    ta = dp.tensor(a, requires_grad=True)
    tb = dp.tensor(b, requires_grad=True)
    return lambda: (ta @ tb).sum()


# ---------------------------------------------------------------------------------------------
# Single layers, forward + backward (benchmarks/layers.py)
# ---------------------------------------------------------------------------------------------


def make_layer_op(kind: str, arrays: dict[str, np.ndarray], padding: int = 0):
    """Forward + ``.sum().backward()`` of one functional layer on tensors that require grad.

    ``cross_entropy`` is a scalar already. ``arrays``: x, and w / b / target as the layer needs.
    """
    t = {
        k: (dp.from_numpy(v) if k == "target" else dp.tensor(v, requires_grad=True))
        for k, v in arrays.items()
    }
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
