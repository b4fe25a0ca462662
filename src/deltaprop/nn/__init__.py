"""``deltaprop.nn``: modules (layers, containers, losses), ``functional``, ``init``, ``utils``.

Names, constructor signatures, parameter names, default initialisation, ``state_dict`` keys and
``repr`` follow ``torch.nn``.

>>> import deltaprop as dp
>>> from deltaprop import nn
>>> model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
>>> model(dp.ones(4, 2)).shape
(4, 1)
"""

from deltaprop.nn import functional, init, utils
from deltaprop.nn.container import ModuleDict, ModuleList, Sequential
from deltaprop.nn.layers import (
    GELU,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    BCELoss,
    BCEWithLogitsLoss,
    Conv2d,
    CrossEntropyLoss,
    Dropout,
    Flatten,
    Identity,
    LayerNorm,
    LeakyReLU,
    Linear,
    LogSoftmax,
    MaxPool2d,
    MSELoss,
    NLLLoss,
    ReLU,
    ShapeError,
    Sigmoid,
    Softmax,
    Tanh,
)
from deltaprop.nn.module import (
    Buffer,
    IncompatibleKeys,
    Module,
    Parameter,
    RemovableHandle,
    StateDictError,
)

__all__ = [
    "functional", "init", "utils", "Module", "Parameter", "Buffer", "StateDictError",
    "IncompatibleKeys", "RemovableHandle", "ShapeError", "Sequential", "ModuleList",
    "ModuleDict", "Identity", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten",
    "LayerNorm", "BatchNorm1d", "BatchNorm2d", "Dropout", "ReLU", "LeakyReLU", "GELU", "Sigmoid",
    "Tanh", "Softmax", "LogSoftmax", "MSELoss", "CrossEntropyLoss", "NLLLoss", "BCELoss",
    "BCEWithLogitsLoss",
]  # fmt: skip
