"""Feeding data to a model: datasets, the ``DataLoader`` and array transforms.

Names follow ``torch.utils.data``:

>>> import numpy as np
>>> from deltaprop.data import DataLoader, TensorDataset, random_split
>>> ds = TensorDataset(np.random.rand(100, 4).astype(np.float32), np.arange(100) % 3)
>>> train, val = random_split(ds, [0.8, 0.2], generator=0)
>>> for x, y in DataLoader(train, batch_size=32, shuffle=True, generator=0):
...     pass
>>> tuple(x.shape), y.dtype == np.int64
((16, 4), True)
"""

from deltaprop.data.dataset import Dataset, Subset, TensorDataset, random_split
from deltaprop.data.distributed import DistributedSampler
from deltaprop.data.loader import DataLoader, batch_to_tensor, default_collate
from deltaprop.data.transforms import Compose, Flatten, Normalize, ToFloat

__all__ = [
    "Dataset",
    "TensorDataset",
    "Subset",
    "random_split",
    "DistributedSampler",
    "DataLoader",
    "default_collate",
    "batch_to_tensor",
    "Compose",
    "ToFloat",
    "Normalize",
    "Flatten",
]
