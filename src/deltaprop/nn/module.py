"""``Parameter`` and ``Module``: the containers of a network's learnable state.

A :class:`Module` registers what is assigned to it as an attribute, as PyTorch does:

* a :class:`Parameter` goes to ``_parameters`` (learnable: ``parameters()``, the optimizer, the
  state dict);
* a :class:`Module` goes to ``_modules`` (a child: its parameters are the parent's too, under the
  child's name, e.g. ``fc1.weight``);
* a tensor registered with :meth:`Module.register_buffer` goes to ``_buffers`` (state that is
  saved but not learned, e.g. BatchNorm's ``running_mean``).

``state_dict()`` flattens that tree into ``{"fc1.weight": tensor, ...}`` and ``load_state_dict``
copies such a dict back into the existing arrays, in place.

>>> import deltaprop as dp
>>> from deltaprop import nn
>>> class Net(nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.fc1 = nn.Linear(2, 3)
...         self.fc2 = nn.Linear(3, 1)
...     def forward(self, x):
...         return self.fc2(self.fc1(x).relu())
>>> net = Net()
>>> list(net.state_dict())
['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']
>>> net(dp.ones(4, 2)).shape
(4, 1)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from deltaprop.nn.utils import zero_grads
from deltaprop.tensor import RemovableHandle, Tensor, _to_array

__all__ = [
    "Parameter",
    "Module",
    "Buffer",
    "StateDictError",
    "IncompatibleKeys",
    "RemovableHandle",
]


class Parameter(Tensor):
    """A tensor that is a learnable parameter of a :class:`Module`.

    Assigning a ``Parameter`` as a module attribute registers it: it then appears in
    ``parameters()`` and in the ``state_dict``. It requires grad by default. Built from a Tensor
    or an ndarray it shares that memory (as ``torch.nn.Parameter``); Python data is converted
    (floats become float32).

    >>> import deltaprop as dp
    >>> p = dp.nn.Parameter(dp.tensor([1.0, 2.0]))
    >>> p
    Parameter containing:
    tensor([1., 2.], requires_grad=True)
    """

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            arr = np.empty((0,), dtype=np.float32)
        elif isinstance(data, Tensor):
            arr = data.data
        else:
            arr = _to_array(data, copy=False)
        self._init_leaf(arr, requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo: dict) -> Parameter:
        if id(self) in memo:
            return memo[id(self)]
        new = Parameter(self.data.copy(), self.requires_grad)
        if self.grad is not None:
            new.grad = Tensor(self.grad.data.copy(), dtype=self.grad.dtype)
        memo[id(self)] = new
        return new

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (Parameter, (self.data, self.requires_grad))


class Buffer(Tensor):
    """Marks a tensor assigned to a module attribute as a buffer (as ``torch.nn.Buffer``).

    ``module.x = Buffer(t)`` is the same as ``module.register_buffer("x", t)``; the module stores
    a plain Tensor sharing ``t``'s memory. ``persistent=False`` keeps it out of the state dict.
    """

    __slots__ = ("persistent",)

    def __init__(self, data: Any, *, persistent: bool = True) -> None:
        arr = data.data if isinstance(data, Tensor) else _to_array(data, copy=False)
        self.data = arr
        self.grad = None
        self._ctx = None
        self._retains_grad = False
        self.requires_grad = False
        self.persistent = persistent


class StateDictError(RuntimeError, ValueError):
    """``load_state_dict`` found missing, unexpected or wrongly shaped keys.

    A RuntimeError (as PyTorch raises) and a ValueError. The message names every offending key.
    """


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` returns: the keys that did not match."""

    missing_keys: list[str]
    unexpected_keys: list[str]

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return (
            f"IncompatibleKeys(missing_keys={self.missing_keys!r}, "
            f"unexpected_keys={self.unexpected_keys!r})"
        )

    __str__ = __repr__


def _addindent(s: str, num_spaces: int) -> str:
    """Indent every line but the first (PyTorch's helper for nested module reprs)."""
    lines = s.split("\n")
    if len(lines) == 1:
        return s
    first = lines.pop(0)
    return first + "\n" + "\n".join(num_spaces * " " + line for line in lines)


def _check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
    if name == "":
        raise KeyError(f'{kind} name can\'t be empty string ""')
    if "." in name:
        raise KeyError(f'{kind} name can\'t contain ".", got: {name}')


def _float_dtype(dtype: Any, where: str) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"{where} only accepts floating point dtypes, but got desired dtype={dt}")
    return dt


def _state_array(value: Any, key: str) -> np.ndarray | None:
    """The array behind a state-dict value (Tensor, ndarray or number), or None if unusable."""
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, (np.generic, int, float, bool, list, tuple)):
        arr = np.asarray(value)
    else:
        return None
    return arr if arr.dtype.kind in "biuf" else None


def _none_only(value: Any, slot: str, expected: str) -> None:
    """What may replace a registered parameter or module other than its own kind: only None."""
    if value is not None:
        raise TypeError(
            f"cannot assign '{type(value).__name__}' as {slot} ({expected} or None expected)"
        )


class Module:
    """Base class of every layer and network.

    Subclasses call ``super().__init__()`` first, assign parameters, buffers and sub-modules as
    attributes, and define ``forward``; calling the module runs ``forward`` (and any hooks).

    >>> from deltaprop import nn
    >>> model = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    >>> model
    Sequential(
      (0): Linear(in_features=2, out_features=3, bias=True)
      (1): ReLU()
    )
    >>> [name for name, _ in model.named_parameters()]
    ['0.weight', '0.bias']
    """

    training: bool

    def __init__(self) -> None:
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = {}
        d["_buffers"] = {}
        d["_non_persistent_buffers_set"] = set()
        d["_modules"] = {}
        d["_forward_hooks"] = {}
        d["_forward_pre_hooks"] = {}

    # -- forward -----------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f'Module [{type(self).__name__}] is missing the required "forward" function'
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not (self._forward_pre_hooks or self._forward_hooks):
            return self.forward(*args, **kwargs)
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    def register_forward_pre_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """``hook(module, args)`` runs before ``forward``; a non-None return replaces ``args``."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """``hook(module, args, output)`` runs after ``forward``; a non-None return replaces
        the output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    # -- registration ------------------------------------------------------------------------
    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or None, a declared but absent parameter such as a missing bias)."""
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        _check_name("parameter", name)
        if name in self.__dict__ or (hasattr(type(self), name) and name not in self._parameters):
            raise KeyError(f"attribute '{name}' already exists")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                "(deltaprop.nn.Parameter or None required)"
            )
        if param is not None and not param.is_leaf:
            raise ValueError(
                f"Cannot assign non-leaf Tensor to parameter '{name}'. Model parameters must be "
                "created explicitly (use .detach() to cut the tensor from its graph)."
            )
        self._buffers.pop(name, None)
        self._modules.pop(name, None)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a buffer: state saved in the state dict (unless ``persistent=False``) but not
        learned. ``tensor`` may be None (a declared but absent buffer)."""
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        _check_name("buffer", name)
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                "(deltaprop Tensor or None required)"
            )
        self._buffers[name] = self._plain(tensor) if tensor is not None else None
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    @staticmethod
    def _plain(t: Tensor) -> Tensor:
        if type(t) is Tensor:
            return t
        from deltaprop.tensor import _make

        return _make(t.data)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a child module (reachable as an attribute and in ``named_children``)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        _check_name("module", name)
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._modules[name] = module

    register_module = add_module

    def _free_name(self, name: str, kind: str, own: str) -> None:
        """Before ``name`` becomes a {kind} in registry ``own``: drop it from the instance dict
        and from the other registries (refused before ``Module.__init__``)."""
        d = self.__dict__
        if d.get(own) is None:
            raise AttributeError(f"cannot assign {kind} before Module.__init__() call")
        d.pop(name, None)
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry != own:
                d[registry].pop(name, None)
        d["_non_persistent_buffers_set"].discard(name)

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        params, modules, buffers = d.get("_parameters"), d.get("_modules"), d.get("_buffers")
        if isinstance(value, Parameter):
            self._free_name(name, "parameters", "_parameters")
            self.register_parameter(name, value)
        elif params is not None and name in params:
            params[name] = _none_only(value, f"parameter '{name}'", "deltaprop.nn.Parameter")
        elif isinstance(value, Module):
            self._free_name(name, "module", "_modules")
            modules[name] = value
        elif modules is not None and name in modules:
            modules[name] = _none_only(value, f"child module '{name}'", "deltaprop.nn.Module")
        elif isinstance(value, Buffer):
            if buffers is None:
                raise AttributeError("cannot assign buffer before Module.__init__() call")
            d.pop(name, None)
            self.register_buffer(name, value, persistent=value.persistent)
        elif buffers is not None and name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                    "(deltaprop Tensor or None expected)"
                )
            buffers[name] = self._plain(value) if value is not None else None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails: look in the registries
        d = self.__dict__
        if "_parameters" in d:
            if name in d["_parameters"]:
                return d["_parameters"][name]
            if name in d["_buffers"]:
                return d["_buffers"][name]
            if name in d["_modules"]:
                return d["_modules"][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for registry in ("_parameters", "_buffers", "_modules"):
            reg = self.__dict__.get(registry)
            if reg is not None and name in reg:
                del reg[name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        keys = list(super().__dir__())
        keys += list(self._parameters) + list(self._buffers) + list(self._modules)
        return sorted(set(k for k in keys if not k[:1].isdigit()))

    def get_submodule(self, target: str) -> Module:
        """The sub-module at a dotted path such as ``"encoder.0"`` (``""`` is the module)."""
        mod: Module = self
        if target == "":
            return mod
        for item in target.split("."):
            child = mod._modules.get(item) if isinstance(mod, Module) else None
            if child is None:
                raise AttributeError(f"{mod._get_name()} has no attribute `{item}`")
            mod = child
        return mod

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at a dotted path such as ``"fc1.weight"``."""
        mod_path, _, name = target.rpartition(".")
        mod = self.get_submodule(mod_path)
        p = mod._parameters.get(name)
        if p is None:
            raise AttributeError(f"`{name}` is not an nn.Parameter of {mod._get_name()}")
        return p

    def get_buffer(self, target: str) -> Tensor:
        """The buffer at a dotted path such as ``"bn.running_mean"``."""
        mod_path, _, name = target.rpartition(".")
        mod = self.get_submodule(mod_path)
        if name not in mod._buffers:
            raise AttributeError(f"`{name}` is not a buffer of {mod._get_name()}")
        return mod._buffers[name]

    # -- traversal ---------------------------------------------------------------------------
    def named_modules(
        self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """``(dotted name, module)`` for this module (name ``prefix``) and every descendant,
        depth first, each module once (unless ``remove_duplicate=False``)."""
        if memo is None:
            memo = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            if remove_duplicate:
                if id(mod) in memo:
                    continue
                memo.add(id(mod))
            yield name, mod
            children = [
                (name + ("." if name else "") + key, child)
                for key, child in mod._modules.items()
                if child is not None
            ]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        for _, mod in self.named_modules():
            yield mod

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        for name, mod in self._modules.items():
            if mod is not None and id(mod) not in seen:
                seen.add(id(mod))
                yield name, mod

    def children(self) -> Iterator[Module]:
        for _, mod in self.named_children():
            yield mod

    def _named_members(
        self, registry: str, prefix: str, recurse: bool, remove_duplicate: bool
    ) -> Iterator[tuple[str, Any]]:
        seen: set[int] = set()
        mods = (
            self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
            if recurse
            else [(prefix, self)]
        )
        for mod_prefix, mod in mods:
            for name, value in getattr(mod, registry).items():
                if value is None:
                    continue
                if remove_duplicate:
                    if id(value) in seen:
                        continue
                    seen.add(id(value))
                yield mod_prefix + ("." if mod_prefix else "") + name, value

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """``(dotted name, parameter)`` pairs, e.g. ``("fc1.weight", Parameter)``; a parameter
        shared by several modules is given once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Total number of scalar parameters (only those requiring grad if ``trainable_only``)."""
        return int(
            sum(p.data.size for p in self.parameters() if p.requires_grad or not trainable_only)
        )

    # -- modes and in-place changes ----------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode (affects Dropout and BatchNorm) here and in every descendant."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.__dict__["training"] = mode
        for child in self.children():
            child.train(mode)
        return self

    def eval(self) -> Module:
        """``train(False)``: evaluation mode."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all parameters: to None (default) or to zeros."""
        zero_grads(self.parameters(), set_to_none)

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every sub-module (children first) and then on this module.

        >>> from deltaprop import nn
        >>> def init_weights(m):
        ...     if isinstance(m, nn.Linear):
        ...         nn.init.ones_(m.weight)
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)).apply(init_weights)
        >>> float(net[1].weight.sum())
        4.0
        """
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def _cast(self, dtype: np.dtype) -> Module:
        """Convert every floating point parameter and buffer (and gradient) to ``dtype``, in
        place: the Parameter objects stay the same, so an optimizer holding them still works."""
        for mod in self.modules():
            for p in mod._parameters.values():
                if p is None or p.dtype.kind != "f" or p.dtype == dtype:
                    continue
                p.data = p.data.astype(dtype)
                if p.grad is not None:
                    p.grad = Tensor(p.grad.data, dtype=dtype)
            for b in mod._buffers.values():
                if b is not None and b.dtype.kind == "f" and b.dtype != dtype:
                    b.data = b.data.astype(dtype)
        return self

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """Convert floating point parameters and buffers to a dtype, in place.

        Accepts ``to(dtype)``, ``to(tensor)`` (its dtype), ``to("cpu")`` (deltaprop runs on the
        CPU: a no-op) and the keywords ``dtype=`` and ``device=``.
        """
        dtype = kwargs.pop("dtype", None)
        device = kwargs.pop("device", None)
        kwargs.pop("non_blocking", None)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                dtype = a.dtype
            elif isinstance(a, str) and (a == "cpu" or a.startswith("cpu:") or a == "meta"):
                device = a
            elif a is None:
                continue
            else:
                try:
                    dtype = np.dtype(a)
                except TypeError:
                    device = a
        if device is not None and str(device).split(":")[0] != "cpu":
            raise ValueError(f"to(): deltaprop runs on the CPU only, got device {device!r}")
        if dtype is None:
            return self
        return self._cast(_float_dtype(dtype, "Module.to"))

    def double(self) -> Module:
        """Convert floating point parameters and buffers to float64."""
        return self._cast(np.dtype(np.float64))

    def float(self) -> Module:
        """Convert floating point parameters and buffers to float32."""
        return self._cast(np.dtype(np.float32))

    def half(self) -> Module:
        """Convert floating point parameters and buffers to float16."""
        return self._cast(np.dtype(np.float16))

    def type(self, dst_type: Any) -> Module:
        return self._cast(_float_dtype(dst_type, "Module.type"))

    def cpu(self) -> Module:
        """A no-op (deltaprop runs on the CPU); returns self."""
        return self

    # -- state dict --------------------------------------------------------------------------
    def state_dict(
        self, *, destination: dict | None = None, prefix: str = "", keep_vars: bool = False
    ) -> OrderedDict[str, Tensor]:
        """Every parameter and persistent buffer under its dotted name, as PyTorch names them
        (``0.weight``, ``fc1.bias``, ``bn.running_mean``, ``bn.num_batches_tracked``).

        The values share memory with the module (detached tensors; the Parameters themselves
        with ``keep_vars=True``). A parameter shared by two modules appears under both names.
        """
        if destination is None:
            destination = OrderedDict()
        for mod_path, mod in self.named_modules(remove_duplicate=False):
            p = prefix + (mod_path + "." if mod_path else "")
            for name, param in mod._parameters.items():
                if param is not None:
                    destination[p + name] = param if keep_vars else param.detach()
            for name, buf in mod._buffers.items():
                if buf is not None and name not in mod._non_persistent_buffers_set:
                    destination[p + name] = buf if keep_vars else buf.detach()
        return destination

    def _state_slots(self) -> OrderedDict[str, Tensor]:
        """The tensors ``load_state_dict`` writes into, by key (no detaching)."""
        return self.state_dict(keep_vars=True)

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> IncompatibleKeys:
        """Copy ``state_dict``'s values into the parameters and buffers, in place.

        Values may be Tensors or NumPy arrays; each is copied into the existing array, which keeps
        its dtype (``assign=True`` instead replaces the array, taking the value's dtype). Every
        problem is reported in one error, and nothing is copied unless all keys load: missing
        keys and unexpected keys (when ``strict``), and shape mismatches (always). With
        ``strict=False`` the returned ``(missing_keys, unexpected_keys)`` lists them.

        >>> from deltaprop import nn
        >>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
        >>> b.load_state_dict(a.state_dict())
        <All keys matched successfully>
        >>> bool((a.weight == b.weight).all())
        True
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"Expected state_dict to be dict-like, got {type(state_dict).__name__}."
            )
        slots = self._state_slots()
        missing = [k for k in slots if k not in state_dict]
        unexpected = [k for k in state_dict if k not in slots]
        errors: list[str] = []
        plan: list[tuple[Tensor, np.ndarray]] = []
        for key, target in slots.items():
            if key not in state_dict:
                continue
            arr = _state_array(state_dict[key], key)
            if arr is None:
                errors.append(
                    f'While copying the parameter named "{key}", expected Tensor or ndarray from '
                    f"checkpoint but received {type(state_dict[key]).__name__}"
                )
                continue
            if target.ndim == 0 and arr.shape == (1,):
                arr = arr.reshape(())
            if arr.shape != target.shape:
                errors.append(
                    f"size mismatch for {key}: copying a param with shape {tuple(arr.shape)} from "
                    f"checkpoint, the shape in current model is {tuple(target.shape)}."
                )
                continue
            plan.append((target, arr))
        if strict:
            if unexpected:
                errors.insert(
                    0,
                    "Unexpected key(s) in state_dict: "
                    + ", ".join(f'"{k}"' for k in unexpected)
                    + ". ",
                )
            if missing:
                errors.insert(
                    0,
                    "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ". ",
                )
        if errors:
            raise StateDictError(
                f"Error(s) in loading state_dict for {self._get_name()}:\n\t" + "\n\t".join(errors)
            )
        done: set[int] = set()
        for target, arr in plan:
            if id(target) in done:  # a shared parameter listed under two keys
                continue
            done.add(id(target))
            if assign:
                target.data = np.array(arr, copy=True)
            else:
                np.copyto(target.data, arr, casting="unsafe")
        return IncompatibleKeys(missing, unexpected)

    # -- display -----------------------------------------------------------------------------
    def _get_name(self) -> str:
        return type(self).__name__

    def extra_repr(self) -> str:
        """The text between the parentheses of this module's repr (its settings)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [
            f"({key}): " + _addindent(repr(mod), 2) for key, mod in self._modules.items()
        ]
        lines = extra_lines + child_lines
        main = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                main += extra_lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"
