"""Every number of a trace as plain Python data: the JSON contract of ``--format json``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deltaprop.explain.network_doc import check_label
from deltaprop.explain.records import CircuitRecord, NetworkRecord


def _clean(x: Any) -> Any:
    """Arrays to nested lists; NaN/inf to None (JSON has no NaN)."""
    if x is None:
        return None
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _squeeze_channels(arr: np.ndarray | None, squeeze: bool) -> np.ndarray | None:
    if arr is None or not squeeze or arr.ndim != 4 or arr.shape[1] != 1:
        return arr
    return arr[:, 0]


def to_dict(tr: Any) -> dict[str, Any]:
    """Every number of the trace as plain Python data (the JSON contract).

    Networks: ``{"steps": [{"loss": float, "layers": [{"net": [[..]], "out": [[..]],
    "delta": [[..]], "weight_grad": [[..]], "bias_grad": [..], "weights_after": [[..]],
    "biases_after": [..], ...}, ...], ...}, ...], ...}`` with one row per sample in
    net/out/delta and the matrices shaped as in the spec (rows = neurons, columns = inputs; a
    conv kernel given as one kh x kw matrix stays a matrix). Extra keys add detail (inputs,
    targets, weights_before, out_grad, the im2col matrices, the argmax mask, verification).
    Circuits: ``{"kind": "circuit", "steps": [{"loss": f, "nodes": [...]}], ...}``.
    """
    if isinstance(tr, CircuitRecord):
        nodes = []
        for n in tr.nodes:
            nodes.append(
                {
                    "name": n.name,
                    "op": n.op,
                    "inputs": list(n.inputs),
                    "expression": n.expression if n.op not in ("input", "const") else None,
                    "value": _clean(n.value),
                    "grad": _clean(n.grad),
                    "local_grads": _clean(n.locals),
                    "edge_grads": _clean(n.contribs),
                }
            )
        out_node = tr.node(tr.output)
        return {
            "kind": "circuit",
            "title": tr.title,
            "expression": tr.expression,
            "output": tr.output,
            "dtype": tr.dtype,
            "steps": [{"loss": _clean(out_node.value), "nodes": nodes}],
        }
    assert isinstance(tr, NetworkRecord)
    squeeze = bool(tr.extra.get("squeeze_channels", False))
    steps = []
    for st in tr.steps:
        layers = []
        for rec in st.layers:
            as_matrix = rec.type == "conv2d" and rec.kernel_as_matrix

            def w_shape(a: np.ndarray | None, as_matrix: bool = as_matrix) -> Any:
                """Weights shaped as in the spec (a single conv kernel stays a matrix)."""
                if a is None:
                    return None
                return _clean(a[0, 0] if as_matrix else a)

            m = st.inputs.shape[0]
            flat = rec.type == "linear"
            d: dict[str, Any] = {
                "type": rec.type,
                "activation": rec.activation,
                "names": list(rec.names) if rec.names else None,
                "net": _clean(
                    rec.net.reshape(m, -1) if flat else _squeeze_channels(rec.net, squeeze)
                ),
                "out": _clean(
                    rec.out.reshape(m, -1) if flat else _squeeze_channels(rec.out, squeeze)
                ),
                "delta": _clean(
                    rec.delta.reshape(m, -1) if flat else _squeeze_channels(rec.delta, squeeze)
                ),
                "out_grad": _clean(
                    rec.out_grad
                    if flat or rec.out_grad is None
                    else _squeeze_channels(rec.out_grad, squeeze)
                ),
                "local_grad": _clean(
                    rec.local
                    if flat or rec.local is None
                    else _squeeze_channels(rec.local, squeeze)
                ),
                "weight_grad": w_shape(rec.weight_grad),
                "bias_grad": _clean(rec.bias_grad),
                "weights_before": w_shape(rec.weights),
                "biases_before": _clean(rec.biases),
                "weights_after": w_shape(rec.weights_after),
                "biases_after": _clean(rec.biases_after),
            }
            if rec.conv is not None:
                c = rec.conv
                d["im2col"] = {
                    "cols": _clean(c.cols),
                    "rows": c.row_labels,
                    "columns": c.col_labels,
                    "wmat": _clean(c.wmat),
                    "gemm": _clean(c.gemm),
                    "dy": _clean(c.dy),
                    "dw": _clean(c.dw),
                    "dcols": _clean(c.dcols),
                    "col2im": _clean(_squeeze_channels(c.dx, squeeze)),
                }
            if rec.pool is not None:
                p = rec.pool
                d["kernel_size"] = list(rec.kernel_size)
                if p.mask is not None:
                    d["argmax_mask"] = _clean(_squeeze_channels(p.mask, squeeze))
                d["routes"] = [
                    {
                        "output": list(o),
                        "inputs": [list(c) for c in cells],
                        "grad": _clean(g),
                        "share": p.share,
                    }
                    | ({"input": list(cells[0])} if p.kind == "max" else {})  # the argmax
                    for o, cells, g in p.routes
                ]
                d["input_grad"] = _clean(_squeeze_channels(p.dx, squeeze))
            if rec.norm is not None:
                nd = rec.norm
                d["eps"] = rec.eps
                d["normalization"] = {
                    "over": nd.over,
                    "n": nd.n,
                    "mean": _clean(nd.mean),
                    "var": _clean(nd.var),
                    "std": _clean(nd.std),
                    "xhat": _clean(nd.xhat),
                    "g": _clean(nd.g),
                    "dvar": _clean(nd.dvar),
                    "dmean": _clean(nd.dmean),
                    "part_xhat": _clean(nd.part_xhat),
                    "part_mean": _clean(nd.part_mean),
                    "part_var": _clean(nd.part_var),
                    "input_grad": _clean(nd.dx),
                }
            if rec.mask is not None:
                d["p"] = rec.p
                d["mask"] = _clean(rec.mask)
            if rec.input_grad is not None and "input_grad" not in d:
                d["input_grad"] = _clean(rec.input_grad)
            layers.append(d)
        step: dict[str, Any] = {
            "step": st.index,
            "samples": list(st.samples),
            "inputs": _clean(_squeeze_channels(st.inputs, squeeze)),
            "targets": _clean(st.targets.reshape(st.targets.shape[0], -1)),
            "loss": float(st.loss),
            "layers": layers,
        }
        if st.verification is not None:
            v = st.verification
            step["verify"] = {
                "eps": v.eps,
                "count": v.count,
                "ok": v.ok,
                "max_abs_error": v.worst.error,
                "where": check_label(st, v.worst),
                "analytic": v.worst.analytic,
                "numeric": v.worst.numeric,
            }
        steps.append(step)
    return {
        "kind": "network",
        "title": tr.title,
        "loss_function": tr.loss,
        "reduction": tr.reduction,
        "lr": tr.lr,
        "train_biases": tr.train_biases,
        "dtype": tr.dtype,
        "batch_size": tr.batch_size,
        "n_samples": tr.n_samples,
        "optimizer": tr.optimizer,
        "steps": steps,
    }
