"""``SyncBatchNorm``: batch normalisation with the statistics of the whole global batch.

With data parallelism each rank sees only its b samples; ``BatchNorm`` would normalise each rank
with its own batch's statistics, so N ranks would not compute what one process with the N*b
samples computes. ``SyncBatchNorm`` combines the ranks' statistics in the forward pass, and the
two sums the backward pass needs, so that N ranks compute exactly the single-process batch norm.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deltaprop.distributed import backend as _backend
from deltaprop.errors import ShapeError
from deltaprop.nn.common import as_input, named_error
from deltaprop.nn.module import Module
from deltaprop.nn.norm import _BatchNorm
from deltaprop.ops.common import check_float, check_same_dtype
from deltaprop.ops.norm import BatchNormFunction, RunningStats
from deltaprop.tensor import Tensor

__all__ = ["SyncBatchNorm", "SyncBatchNormFunction"]


class SyncBatchNormFunction(BatchNormFunction):
    r"""Batch normalization of ``x (N, C, *)`` per channel, the batch being all ranks' inputs.

    Forward: each rank r has ``n_r`` values per channel with mean ``m_r`` and sum of squared
    deviations ``M_r``; one ``Allgather`` of ``(n_r, m_r, M_r)`` gives the global
    ``n = sum n_r``, ``mu = sum n_r m_r / n`` and ``var = sum (M_r + n_r (m_r - mu)^2) / n``
    (Chan's parallel variance: no cancellation), then
    ``y = gamma * (x - mu) / sqrt(var + eps) + beta``, and the running statistics are updated
    with ``mu`` and the unbiased ``var * n / (n - 1)`` (identically on every rank).

    Backward (``xhat = (x - mu) rstd``; sums over the global batch, one ``Allreduce``)::

        gx = gamma rstd (gy - sum(gy) / n - xhat * sum(gy * xhat) / n)
        ggamma = sum_local gy * xhat,   gbeta = sum_local gy

    The parameter gradients are this rank's own sums: ``DistributedDataParallel`` averages
    them over the ranks with the rest. With each rank's loss the mean over its own b samples,
    the ranks' input gradients are N times the single-process ones, which the averaging of
    the parameter gradients (1/N) turns into exactly the single-process parameter gradients.
    Training mode only (evaluation needs no communication: ``BatchNormFunction``).
    """

    twin = None  # no double backward

    def __init__(
        self, eps: float, comm: Any, has_weight: bool, has_bias: bool, running: RunningStats
    ) -> None:
        super().__init__(True, eps, has_weight, has_bias, running)
        self.comm = comm

    def _batch_statistics(self, x3: np.ndarray) -> tuple:
        """The global batch's statistics (see the class docstring), in float64; ``x3 - mean``
        and ``rstd`` in ``x3``'s dtype."""
        c = x3.shape[1]
        n_local = x3.shape[0] * x3.shape[2]
        mine = np.zeros((3, c), dtype=np.float64)
        mine[0] = n_local
        if n_local:
            mine[1] = x3.mean(axis=(0, 2), dtype=np.float64)
            dev = x3 - mine[1][:, None].astype(x3.dtype)
            mine[2] = np.einsum("ncl,ncl->c", dev, dev, dtype=np.float64)
        table = np.empty((self.comm.Get_size(), 3, c), dtype=np.float64)
        self.comm.Allgather(mine, table)
        counts, means, m2s = table[:, 0], table[:, 1], table[:, 2]
        n = counts[:, 0].sum()
        if n <= 1:
            raise ValueError(
                "SyncBatchNorm: expected more than 1 value per channel over all ranks when "
                f"training, got {int(n)}"
            )
        mean = (counts * means).sum(axis=0) / n
        var = (m2s + counts * (means - mean) ** 2).sum(axis=0) / n
        rstd = (1.0 / np.sqrt(var + self.eps)).astype(x3.dtype)
        return mean, var, n, x3 - mean.astype(x3.dtype)[:, None], rstd

    def _mean_sums(self, gb: np.ndarray, gw: np.ndarray, n: float, dtype: Any) -> tuple:
        """The two sums over all ranks' batches (one ``Allreduce``), divided by ``n``."""
        sums = np.concatenate([gb, gw]).astype(np.float64)
        self.comm.Allreduce(_backend.mpi().IN_PLACE, sums)
        c = gb.shape[0]
        return (sums[:c] / n).astype(dtype), (sums[c:] / n).astype(dtype)

    def backward(self, gy):
        if isinstance(gy, Tensor):
            raise RuntimeError(
                "SyncBatchNorm: double backward (create_graph=True) is not supported"
            )
        return super().backward(gy)


class SyncBatchNorm(_BatchNorm):
    r"""Batch normalisation whose training statistics are those of all ranks' batches together
    (as ``torch.nn.SyncBatchNorm``).

    ``y = (x - mean) / sqrt(var + eps) * gamma + beta`` per channel ``C``, with the mean and the
    biased variance over ``N`` and the spatial dims *of every rank's input*; the running
    statistics are updated with them (the unbiased variance for ``running_var``), identically on
    every rank. The backward pass sums ``dL/dy`` and ``dL/dy * xhat`` over all ranks too. In
    evaluation mode, or without an initialised process group (or with one process), it is
    exactly ``BatchNorm``. Accepts ``(N, C)``, ``(N, C, L)``, ``(N, C, H, W)``, ... inputs.

    Parameters: ``weight`` (gamma) and ``bias`` (beta) of shape ``(C,)``; buffers
    ``running_mean``, ``running_var``, ``num_batches_tracked`` (the same state dict keys as
    BatchNorm, so checkpoints move between the two).

    >>> import deltaprop as dp
    >>> bn = dp.nn.SyncBatchNorm(3)
    >>> bn
    SyncBatchNorm(3, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
    >>> bn(dp.randn(4, 3, 2, 2)).shape     # one process: BatchNorm
    (4, 3, 2, 2)
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group: Any = None,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        _backend._check_group(process_group)
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype,
                         bias=bias)  # fmt: skip

    def _check_input_dim(self, x: Tensor) -> None:
        if x.ndim < 2:
            raise ShapeError(
                f"{self!r}: expected at least 2D input (N, C, *), got {x.ndim}D input of shape "
                f"{tuple(x.shape)}"
            )

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or not _backend.is_initialized():
            return super().forward(input)
        comm = _backend.comm()
        if comm.Get_size() == 1:
            return super().forward(input)
        x = as_input(self, input)
        self._check_input_dim(x)
        if x.shape[1] != self.num_features:
            raise ShapeError(
                f"{self!r}: expected input with {self.num_features} channels (dim 1), got shape "
                f"{tuple(x.shape)}"
            )
        weight, bias = self._parameters["weight"], self._parameters["bias"]
        params = [p for p in (weight, bias) if p is not None]
        try:
            check_float("SyncBatchNorm", "input", x)
            for p in params:
                check_same_dtype("SyncBatchNorm", x, "weight/bias", p)
        except (ValueError, TypeError) as e:
            raise named_error(self, e) from None
        buffers = self._buffers  # (None when track_running_stats=False)
        running = RunningStats(
            buffers["running_mean"],
            buffers["running_var"],
            self.momentum,
            buffers["num_batches_tracked"],
        )
        fn = SyncBatchNormFunction(
            float(self.eps), comm, weight is not None, bias is not None, running
        )
        return fn.apply(x, *params)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group: Any = None) -> Module:
        """Replace every ``BatchNorm1d``/``BatchNorm2d`` in ``module`` by a ``SyncBatchNorm``
        sharing its parameters and running statistics (returns the converted module; the
        module itself when it is a batch norm).

        >>> import deltaprop as dp
        >>> net = dp.nn.Sequential(dp.nn.Conv2d(1, 4, 3), dp.nn.BatchNorm2d(4), dp.nn.ReLU())
        >>> dp.nn.SyncBatchNorm.convert_sync_batchnorm(net)[1]
        SyncBatchNorm(4, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
        """
        out = module
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            out = cls(module.num_features, module.eps, module.momentum, module.affine,
                      module.track_running_stats, process_group,
                      bias=module.bias is not None or not module.affine)  # fmt: skip
            for name, p in module._parameters.items():
                out.register_parameter(name, p)
            for name, buf in module._buffers.items():
                out.register_buffer(name, buf)
            out.training = module.training
        for name, child in module.named_children():
            out.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return out
