"""Circuits: an expression of scalar gates, run forward and backward on the engine.

A circuit is written as statements, the last one being the output::

    q = x + y; f = q * z          # or one expression: (x + y) * z

with operators ``+ - * / **``, unary ``-``, numbers, and the gates ``exp log sqrt sigmoid tanh
relu abs max(a, b) min(a, b)``. Every gate becomes one engine op on deltaprop tensors. After
``f.backward()`` the trace records, for every gate and every input of it:

* the forward value (the tensor's data) and the gradient ``df/dnode`` (its ``.grad``);
* the gate's local derivative ``dnode/dinput`` (``deltaprop.autograd.grad(node, input, 1)``) and
  the gradient that flows along the edge, ``df/dnode * dnode/dinput``
  (``deltaprop.autograd.grad(node, input, df/dnode)``), so a value that feeds several gates shows
  each contribution and their sum, its ``.grad``.

>>> tr = trace_circuit("q = x + y; f = q * z", {"x": -2.0, "y": 5.0, "z": -4.0})
>>> [(n.name, n.value, n.grad) for n in tr.nodes if n.op == "input"]
[('x', -2.0, -4.0), ('y', 5.0, -4.0), ('z', -4.0, 3.0)]
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

import numpy as np

import deltaprop as dp
from deltaprop.explain.explained import Explained
from deltaprop.explain.records import CircuitNode, CircuitRecord
from deltaprop.explain.specvalues import SpecError
from deltaprop.tensor import Tensor

FUNCTIONS = ("exp", "log", "sqrt", "sigmoid", "tanh", "relu", "abs", "max", "min")
_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow"}


@dataclass(repr=False)
class CircuitTrace(CircuitRecord, Explained):
    """A circuit run forward and backward; render it like a network trace."""

    @property
    def output_tensor(self) -> Tensor:
        return self.node(self.output).tensor

    def tensor_names(self) -> dict[int, str]:
        """``id(tensor) -> name`` for :func:`deltaprop.viz.graph`'s labels."""
        return {id(n.tensor): n.name for n in self.nodes if n.tensor is not None}

    def __repr__(self) -> str:
        out = self.node(self.output)
        return f"<CircuitTrace {self.expression!r}: {self.output} = {out.value:.6g}>"


class _Builder:
    """Evaluates the parsed statements on the engine, recording one node per gate."""

    def __init__(self, values: dict[str, float], dtype: np.dtype) -> None:
        self.values = values
        self.dtype = dtype
        self.nodes: list[CircuitNode] = []
        self.env: dict[str, CircuitNode] = {}
        self.auto = 0
        self.used: set[str] = set()

    def _new(self, op: str, inputs: list[CircuitNode], t: Tensor, name: str | None) -> CircuitNode:
        user_named = name is not None
        if name is None:
            self.auto += 1
            name = f"n{self.auto}"
            while name in self.used or name in self.values:
                self.auto += 1
                name = f"n{self.auto}"
        self.used.add(name)
        node = CircuitNode(
            name, op, [i.name for i in inputs], float(t.data), tensor=t, user_named=user_named
        )
        self.nodes.append(node)
        return node

    def leaf(self, name: str) -> CircuitNode:
        if name in self.env:
            return self.env[name]
        if name not in self.values:
            raise SpecError(
                f"circuit: variable {name!r} has no value; expected it in circuit.values "
                f'(or --values "{name}=...")'
            )
        t = dp.tensor(self.values[name], dtype=self.dtype, requires_grad=True)
        node = CircuitNode(name, "input", [], float(t.data), tensor=t, user_named=True)
        self.used.add(name)
        self.nodes.append(node)
        self.env[name] = node
        return node

    def const(self, v: float) -> CircuitNode:
        t = dp.tensor(v, dtype=self.dtype)
        name = _num(v)
        node = CircuitNode(name, "const", [], float(v), tensor=t)
        self.nodes.append(node)
        return node

    def eval(self, e: ast.expr, name: str | None = None) -> CircuitNode:
        if (
            isinstance(e, ast.Constant)
            and isinstance(e.value, (int, float))
            and not isinstance(e.value, bool)
        ):
            return self.const(float(e.value))
        if isinstance(e, ast.Name):
            return self.leaf(e.id)
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.UAdd):
            return self.eval(e.operand, name)
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub):
            if isinstance(e.operand, ast.Constant) and isinstance(e.operand.value, (int, float)):
                return self.const(-float(e.operand.value))
            a = self.eval(e.operand)
            return self._new("neg", [a], -a.tensor, name)
        if isinstance(e, ast.BinOp) and type(e.op) in _BINOPS:
            op = _BINOPS[type(e.op)]
            a = self.eval(e.left)
            b = self.eval(e.right)
            ta, tb = a.tensor, b.tensor
            if op == "add":
                t = ta + tb
            elif op == "sub":
                t = ta - tb
            elif op == "mul":
                t = ta * tb
            elif op == "div":
                t = ta / tb
            else:
                t = ta ** (b.value if b.op == "const" else tb)
                if b.op == "const":  # x ** p: a one-input gate (PowConst)
                    node = self._new("pow", [a], t, name)
                    node.inputs = [a.name, b.name]
                    return node
            return self._new(op, [a, b], t, name)
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and not e.keywords:
            fn = e.func.id
            if fn not in FUNCTIONS:
                raise SpecError(
                    f"circuit: unknown function {fn!r}; expected one of {', '.join(FUNCTIONS)}"
                )
            want = 2 if fn in ("max", "min") else 1
            if len(e.args) != want:
                raise SpecError(f"circuit: {fn}() takes {want} argument(s), got {len(e.args)}")
            args = [self.eval(a) for a in e.args]
            ts = [a.tensor for a in args]
            if fn == "max":
                t = dp.maximum(ts[0], ts[1])
            elif fn == "min":
                t = dp.minimum(ts[0], ts[1])
            else:
                t = getattr(ts[0], fn)()
            return self._new(fn, args, t, name)
        raise SpecError(
            f"circuit: unsupported syntax {ast.unparse(e)!r}; expected numbers, variables, "
            f"+ - * / **, and {', '.join(FUNCTIONS)}"
        )


def parse_statements(source: str) -> list[tuple[str | None, ast.expr]]:
    """``[(target or None, expression), ...]`` of ``a = ...; b = ...; expr``."""
    try:
        tree = ast.parse(source.replace("^", "**"), mode="exec")
    except SyntaxError as e:
        raise SpecError(f"circuit: cannot parse {source!r} ({e.msg})") from None
    out: list[tuple[str | None, ast.expr]] = []
    for k, st in enumerate(tree.body):
        if (
            isinstance(st, ast.Assign)
            and len(st.targets) == 1
            and isinstance(st.targets[0], ast.Name)
        ):
            out.append((st.targets[0].id, st.value))
        elif isinstance(st, ast.Expr) and k == len(tree.body) - 1:
            out.append((None, st.value))
        else:
            raise SpecError(
                f"circuit: statement {k + 1} ({ast.unparse(st)!r}) must be 'name = expression' "
                "(only the last one may be a bare expression)"
            )
    if not out:
        raise SpecError("circuit: the expression is empty")
    return out


def trace_circuit(
    expression: str,
    values: dict[str, float],
    title: str = "circuit",
    dtype: Any = np.float64,
    description: str = "",
) -> CircuitTrace:
    """Run ``expression`` forward and backward on the engine and record every gate."""
    dtype = np.dtype(dtype)
    b, last = _evaluate(expression, values, dtype)
    if last.op in ("input", "const"):
        raise SpecError("circuit: the output must be computed by at least one gate")
    if not last.user_named:
        last.name = _fresh("f", b)
        last.user_named = True
    out = last.tensor
    gates = [n for n in b.nodes if n.op not in ("input", "const")]
    for n in gates:
        n.tensor.retain_grad()
    out.backward(retain_graph=True)
    by_name = {n.name: n for n in b.nodes}
    for n in b.nodes:
        if n.tensor.grad is not None:
            n.grad = float(n.tensor.grad.data)
    for n in gates:
        distinct = list(dict.fromkeys(n.inputs))
        n.inputs = distinct
        for inp in distinct:
            src = by_name[inp]
            if not src.tensor.requires_grad:
                n.locals.append(None)
                n.contribs.append(None)
                continue
            (loc,) = dp.autograd.grad(
                n.tensor, src.tensor, grad_outputs=dp.ones_like(n.tensor), retain_graph=True
            )
            (con,) = dp.autograd.grad(
                n.tensor, src.tensor, grad_outputs=n.tensor.grad, retain_graph=True
            )
            n.locals.append(float(loc.data))
            n.contribs.append(float(con.data))
    return CircuitTrace(
        title=title,
        expression=expression,
        nodes=b.nodes,
        output=last.name,
        dtype=str(dtype),
        description=description,
    )


def _evaluate(
    expression: str, values: dict[str, float], dtype: np.dtype
) -> tuple[_Builder, CircuitNode]:
    """Run the statements on the engine: the builder (all nodes) and the output node."""
    b = _Builder(values, dtype)
    last: CircuitNode | None = None
    for target, e in parse_statements(expression):
        if target is not None and target in b.env:
            raise SpecError(f"circuit: {target!r} is assigned twice")
        if target is not None and target in values:
            raise SpecError(f"circuit: {target!r} is both a variable in values and assigned")
        node = b.eval(e, target)
        if target is not None:  # (`g = x` makes g another name of x)
            b.env[target] = node
        last = node
    assert last is not None
    return b, last


def finite_differences(tr: CircuitTrace, eps: float = 1e-6) -> list[tuple[str, float, float]]:
    """``(input, backprop gradient, (f(x + eps) - f(x - eps)) / (2 eps))`` for every input,
    re-running the circuit on the engine in float64."""
    base = {n.name: n.value for n in tr.nodes if n.op == "input"}
    out = []

    def f(vals: dict[str, float]) -> float:
        with dp.no_grad():
            _, last = _evaluate(tr.expression, vals, np.dtype(np.float64))
        return last.value

    for n in tr.nodes:
        if n.op != "input" or n.grad is None:
            continue
        plus = dict(base, **{n.name: base[n.name] + eps})
        minus = dict(base, **{n.name: base[n.name] - eps})
        out.append((n.name, n.grad, (f(plus) - f(minus)) / (2 * eps)))
    return out


def _fresh(base: str, b: _Builder) -> str:
    name = base
    k = 1
    while name in b.used or name in b.values:
        k += 1
        name = f"{base}{k}"
    return name


def _num(v: float) -> str:
    return f"{v:g}"
