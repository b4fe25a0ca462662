"""``deltaprop.nn``: modules (layers, containers, losses), ``functional``, ``init``, ``utils``.

Names, constructor signatures, parameter names, default initialisation, ``state_dict`` keys and
``repr`` follow ``torch.nn``.

>>> import deltaprop as dp
>>> from deltaprop import nn
>>> model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
>>> model(dp.ones(4, 2)).shape
(4, 1)
"""

from deltaprop.errors import ShapeError
from deltaprop.nn import functional, init, parallel, utils
from deltaprop.nn.activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from deltaprop.nn.container import ModuleDict, ModuleList, Sequential
from deltaprop.nn.conv import Conv2d
from deltaprop.nn.dropout import Dropout
from deltaprop.nn.linear import Identity, Linear
from deltaprop.nn.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from deltaprop.nn.module import Buffer, IncompatibleKeys, Module, Parameter, StateDictError
from deltaprop.nn.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from deltaprop.nn.pool import AvgPool2d, MaxPool2d
from deltaprop.nn.shape import Flatten
from deltaprop.nn.sync_batchnorm import SyncBatchNorm
from deltaprop.tensor import RemovableHandle

__all__ = [
    "functional", "init", "utils", "Module", "Parameter", "Buffer", "StateDictError",
    "IncompatibleKeys", "RemovableHandle", "ShapeError", "Sequential", "ModuleList",
    "ModuleDict", "Identity", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten",
    "LayerNorm", "BatchNorm1d", "BatchNorm2d", "Dropout", "ReLU", "LeakyReLU", "GELU", "Sigmoid",
    "Tanh", "Softmax", "LogSoftmax", "MSELoss", "CrossEntropyLoss", "NLLLoss", "BCELoss",
    "BCEWithLogitsLoss",
    "SyncBatchNorm", "parallel",
]  # fmt: skip
