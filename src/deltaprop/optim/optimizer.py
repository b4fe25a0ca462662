"""The ``Optimizer`` base class: parameter groups, per-parameter state, state dicts.

An optimizer holds ``param_groups``, a list of dicts, each with its ``params`` (a list of
tensors) and its own hyper-parameters (``lr``, ``momentum``, ...; the constructor's values fill
what a group leaves out), and ``state``, a dict from parameter to that parameter's buffers
(momentum, moment estimates). ``step()`` updates every parameter that has a gradient, in place
(``p.data`` is modified; the Parameter objects stay the same).

``state_dict()`` has PyTorch's layout: ``{"state": {index: {...}}, "param_groups": [{...,
"params": [indices]}]}``, where parameters are numbered in group order.

>>> import deltaprop as dp
>>> from deltaprop import nn, optim
>>> model = nn.Linear(2, 1)
>>> opt = optim.SGD([
...     {"params": [model.weight]},
...     {"params": [model.bias], "lr": 0.5},
... ], lr=0.1, momentum=0.9)
>>> [g["lr"] for g in opt.param_groups]
[0.1, 0.5]
"""

from __future__ import annotations

import copy
import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from deltaprop.nn.utils import zero_grads
from deltaprop.tensor import Tensor, _make, enable_grad

__all__ = ["Optimizer", "required"]


class _RequiredParameter:
    """Marks a hyper-parameter every group must give (``lr`` when it has no default)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


def check_hyperparameter(
    value: Any, message: str, low: float = 0.0, high: float | None = None
) -> None:
    """Raise ``ValueError(message: value ...)`` unless ``value`` is a finite real number in
    ``[low, high)`` (``[low, inf)`` when ``high`` is None). NaN and infinity are refused: they
    would turn every parameter into NaN at the first step.

    >>> check_hyperparameter(float("inf"), "Invalid learning rate")
    Traceback (most recent call last):
    ...
    ValueError: Invalid learning rate: inf (expected a finite number >= 0.0)
    """
    ok = (
        isinstance(value, (int, float, np.floating, np.integer))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= low
        and (high is None or value < high)
    )
    if not ok:
        allowed = f"in [{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"{message}: {value!r} (expected a finite number {allowed})")


#: The message of each hyperparameter that :func:`check_hyperparameters` refuses (PyTorch's).
_INVALID = {
    "lr": "Invalid learning rate",
    "eps": "Invalid epsilon value",
    "momentum": "Invalid momentum value",
    "weight_decay": "Invalid weight_decay value",
    "alpha": "Invalid alpha value",
}


def check_hyperparameters(**values: Any) -> None:
    """:func:`check_hyperparameter` for each finite non-negative setting given by name
    (``lr``, ``eps``, ``momentum``, ``weight_decay``, ``alpha``)."""
    for name, value in values.items():
        check_hyperparameter(value, _INVALID[name])


def implementation_flags(optimizer: str, **flags: Any) -> dict[str, Any]:
    """PyTorch's keyword flags of an optimizer, as group defaults (in the order given).

    ``maximize`` is implemented and ``foreach`` accepted (every update is one NumPy loop either
    way); ``differentiable``, ``fused`` and ``capturable`` are device/graph options that only
    take False/None here.

    >>> implementation_flags("SGD", maximize=True, foreach=None, fused=None)
    {'maximize': True, 'foreach': None, 'fused': None}
    >>> implementation_flags("SGD", fused=True)
    Traceback (most recent call last):
    ...
    NotImplementedError: SGD: fused=True is a PyTorch device/graph option ...
    """
    for flag in ("differentiable", "fused", "capturable"):
        if flags.get(flag):
            raise NotImplementedError(
                f"{optimizer}: {flag}=True is a PyTorch device/graph option that deltaprop does "
                "not implement (the flag is accepted for compatibility with False/None only)"
            )
    return flags


class Optimizer:
    """Base class of the optimizers.

    Subclasses call ``super().__init__(params, defaults)`` and implement
    ``_update_group(group)``, the update of one parameter group (``step`` runs the closure and
    calls it for each group), or ``step(closure=None)`` itself.
    ``params`` is an iterable of tensors, of ``(name, tensor)`` pairs (e.g.
    ``model.named_parameters()``), or of dicts defining parameter groups.
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or "
                f"dicts, but got {type(params).__name__}"
            )
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        self._scratch_buffers: dict[tuple, np.ndarray] = {}
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    @staticmethod
    def _with_grads(group: dict[str, Any]) -> Iterator[tuple[Tensor, np.ndarray, np.ndarray]]:
        """``(param, param array, gradient array)`` for each parameter of ``group`` that has a
        gradient (those without one are skipped, as PyTorch does)."""
        for p in group["params"]:
            if p.grad is not None:
                yield p, p.data, p.grad.data

    @staticmethod
    def _effective_grad(
        d: np.ndarray, g: np.ndarray, weight_decay: float, maximize: bool
    ) -> tuple[np.ndarray, bool]:
        """The gradient an update uses, as PyTorch: ``-g`` when maximizing, plus the L2 term
        ``weight_decay * param``. Returns ``(g, owned)``; ``owned`` is True when ``g`` is a new
        array the caller may modify in place (``p.grad`` itself is never modified)."""
        owned = False
        if maximize:
            g, owned = np.negative(g), True
        if weight_decay != 0:
            t = d * weight_decay
            t += g
            g, owned = t, True
        return g, owned

    def _scratch(self, like: np.ndarray) -> np.ndarray:
        """A reusable temporary shaped like ``like``, so that a step allocates no new arrays.

        One buffer per (shape, dtype), shared by all parameters of that shape: it only ever holds
        an intermediate value inside one parameter's update and never escapes ``step``.
        """
        key = (like.shape, like.dtype.str, like.flags.f_contiguous and not like.flags.c_contiguous)
        buf = self._scratch_buffers.get(key)
        if buf is None:
            buf = self._scratch_buffers[key] = np.empty_like(like)
        return buf

    def _state_of(self, p: Tensor, buffers: Iterable[str]) -> dict[str, Any]:
        """``self.state[p]``, created at the parameter's first update: a float32 ``step``
        counter and a zero buffer shaped like the parameter for each name in ``buffers``."""
        state = self.state[p]
        if len(state) == 0:
            state["step"] = _make(np.array(0.0, dtype=np.float32))
            for name in buffers:
                state[name] = _make(np.zeros_like(p.data))
        return state

    # -- groups ------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyper-parameters (defaults fill the rest).

        >>> import deltaprop as dp
        >>> from deltaprop import nn, optim
        >>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
        >>> opt = optim.SGD(a.parameters(), lr=0.1)
        >>> opt.add_param_group({"params": b.parameters(), "lr": 0.01})
        >>> len(opt.param_groups), opt.param_groups[1]["lr"]
        (2, 0.01)
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        else:
            params = list(params)
        tensors, names = [], []
        for p in params:
            if isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str):
                names.append(p[0])
                p = p[1]
            tensors.append(p)
        if names and len(names) != len(tensors):
            raise ValueError(
                "all optimizer params should be with/without names. Some param names are missing"
            )
        for p in tensors:
            if not isinstance(p, Tensor):
                raise TypeError(
                    "optimizer can only optimize Tensors, but one of the params is "
                    f"{type(p).__name__}"
                )
            if not (p.is_leaf or p.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
            if p.dtype.kind != "f":
                raise TypeError(
                    f"optimizer can only optimize floating point tensors, got {p.dtype}"
                )
        param_group["params"] = tensors
        if names:
            param_group["param_names"] = names
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(
                    "parameter group didn't specify a value of required optimization parameter "
                    f"{name}"
                )
            param_group.setdefault(name, default)
        if len({id(p) for p in tensors}) != len(tensors):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; "
                "in future, this will cause an error",
                stacklevel=3,
            )
        seen: set[int] = set()
        for group in self.param_groups:
            seen.update(id(p) for p in group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                raise ValueError(
                    "all optimizer param groups should be with/without names. cannot add param "
                    "group with names to the optimizer (or without names to one with names)"
                )
        if any(id(p) in seen for p in tensors):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    # -- gradients ---------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of the optimized tensors: to None (default) or to zeros."""
        zero_grads((p for group in self.param_groups for p in group["params"]), set_to_none)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns ``closure()`` if given.

        ``closure`` (re-evaluates the model and returns the loss) runs first, with gradients
        enabled; then :meth:`_update_group` updates each parameter group in turn.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._step_called = True  # (lets a scheduler warn when stepped first, as PyTorch does)
        for group in self.param_groups:
            self._update_group(group)
        return loss

    def _update_group(self, group: dict[str, Any]) -> None:  # pragma: no cover
        """The update of one parameter group, with its own hyper-parameters (subclasses)."""
        raise NotImplementedError

    # -- state dict --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {name: tensor or value}}, "param_groups": [...]}`` as PyTorch.

        Parameters are replaced by their index (numbered across groups in order). The state
        tensors are the optimizer's own (not copies), as in PyTorch.
        """
        mapping: dict[int, int] = {}
        start = 0
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                mapping.setdefault(id(p), i)
            packed["params"] = [mapping[id(p)] for p in group["params"]]
            start += len(packed["params"])
            groups.append(packed)
        state = {(mapping[id(k)] if isinstance(k, Tensor) else k): v for k, v in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict from :meth:`state_dict` (of an optimizer of the same structure).

        Hyper-parameters of the groups are replaced by the saved ones; state tensors are copied
        (cast to each parameter's dtype; ``step`` counters kept as they are), so training
        continues exactly where the saved optimizer stopped.
        """
        if (
            not isinstance(state_dict, dict)
            or "state" not in state_dict
            or ("param_groups" not in state_dict)
        ):
            raise ValueError(
                "optimizer state dict must be a dict with keys 'state' and 'param_groups'"
            )
        groups = self.param_groups
        saved_groups = copy.deepcopy(list(state_dict["param_groups"]))
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for g, s in zip(groups, saved_groups):
            if len(g["params"]) != len(s["params"]):
                raise ValueError(
                    "loaded state dict contains a parameter group that doesn't match the size of "
                    "optimizer's group"
                )
        id_map: dict[Any, Tensor] = {}
        for g, s in zip(groups, saved_groups):
            for saved_id, p in zip(s["params"], g["params"]):
                id_map[saved_id] = p
        state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        for k, v in state_dict["state"].items():
            key = int(k) if isinstance(k, str) and k.isdigit() else k
            if key in id_map:
                param = id_map[key]
                state[param] = _cast_state(param, v, key)
            else:
                state[key] = copy.deepcopy(v)
        new_groups = []
        for g, s in zip(groups, saved_groups):
            s["params"] = g["params"]
            if "param_names" in g and "param_names" not in s:
                s["param_names"] = g["param_names"]
            new_groups.append(s)
        self.state = state
        self.param_groups = new_groups

    def __repr__(self) -> str:
        s = type(self).__name__ + " ("
        for i, group in enumerate(self.param_groups):
            s += f"\nParameter Group {i}\n"
            for key in sorted(group):
                if key != "params":
                    s += f"    {key}: {group[key]}\n"
        return s + ")"


def _cast_state(param: Tensor, value: Any, index: Any, key: Any = None) -> Any:
    """A copy of one saved state entry, tensors cast to the parameter's dtype (``step`` as is)."""
    if isinstance(value, (Tensor, np.ndarray)):
        arr = value.data if isinstance(value, Tensor) else value
        if key == "step":
            return _make(np.array(arr, copy=True))
        if arr.ndim > 0 and arr.shape != param.shape:
            raise ValueError(
                f"loaded optimizer state for parameter {index}: {key!r} has shape "
                f"{tuple(arr.shape)}, but the parameter has shape {tuple(param.shape)}"
            )
        dtype = param.dtype if arr.dtype.kind == "f" else arr.dtype
        return _make(np.array(arr, dtype=dtype, copy=True))
    if isinstance(value, dict):
        return {k: _cast_state(param, v, index, k) for k, v in value.items()}
    return copy.deepcopy(value)
