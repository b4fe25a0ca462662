"""``deltaprop.optim``: optimizers and learning-rate schedulers, with PyTorch's update rules.

>>> import deltaprop as dp
>>> from deltaprop import nn, optim
>>> model = nn.Linear(3, 1)
>>> opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
>>> loss = model(dp.ones(4, 3)).pow(2).mean()
>>> opt.zero_grad()
>>> loss.backward()
>>> opt.step()
"""

from deltaprop.optim import lr_scheduler
from deltaprop.optim.adam import Adam, AdamW
from deltaprop.optim.optimizer import Optimizer
from deltaprop.optim.rmsprop import RMSprop
from deltaprop.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "lr_scheduler"]
