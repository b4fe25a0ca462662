"""``deltaprop.nn.functional``: the stateless ops of ``torch.nn.functional``, same names and
signatures (``from deltaprop.nn import functional as F``).

Each function validates its arguments and applies one fused op with a hand-derived backward
(see the module of each for the formulas):

- linear: :mod:`deltaprop.ops.linear`;  conv2d: :mod:`deltaprop.ops.conv`;
  max_pool2d, avg_pool2d: :mod:`deltaprop.ops.pool`
- relu, leaky_relu, gelu, sigmoid, tanh, softmax, log_softmax: :mod:`deltaprop.ops.activation`
- layer_norm, batch_norm: :mod:`deltaprop.ops.norm`;  dropout: :mod:`deltaprop.ops.dropout`
- mse_loss, binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, nll_loss:
  :mod:`deltaprop.ops.loss`

>>> import deltaprop as dp
>>> from deltaprop.nn import functional as F
>>> logits = F.linear(dp.ones(2, 3), dp.ones(4, 3))
>>> F.cross_entropy(logits, dp.tensor([0, 3]))   # 4 equal logits: log 4
tensor(1.3863)
"""

from deltaprop.ops.activation import gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from deltaprop.ops.conv import conv2d
from deltaprop.ops.dropout import dropout
from deltaprop.ops.linear import linear
from deltaprop.ops.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    mse_loss,
    nll_loss,
)
from deltaprop.ops.norm import batch_norm, layer_norm
from deltaprop.ops.pool import avg_pool2d, max_pool2d

__all__ = [
    "linear", "conv2d", "max_pool2d", "avg_pool2d", "layer_norm", "batch_norm", "dropout",
    "relu", "leaky_relu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax", "mse_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "nll_loss",
]  # fmt: skip
