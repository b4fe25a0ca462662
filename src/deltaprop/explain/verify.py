"""``--verify``: every gradient of a step against central finite differences of the engine's
own forward pass, in float64."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import deltaprop as dp
from deltaprop.autograd import central_difference
from deltaprop.explain.network import Network
from deltaprop.explain.records import Check, LayerRecord, Verification

EPS = 1e-6


def verify_step(
    net: Network,
    x_np: np.ndarray,
    t_np: np.ndarray,
    records: list[LayerRecord],
    dtype: np.dtype,
) -> Verification:
    """Compare every weight, bias and delta gradient with ``(E(p+eps) - E(p-eps)) / (2 eps)``.

    The finite differences run the same forward and loss in float64 (with ``no_grad``), with
    the step's dropout masks and the mini-batch statistics of batch norm, so the check does
    not depend on the trace's dtype.
    """
    f64 = np.float64
    x = dp.tensor(x_np, dtype=f64)
    t = dp.tensor(t_np, dtype=f64)
    masks = [None if r.mask is None else dp.tensor(r.mask, dtype=f64) for r in records]
    base = [
        (
            None if w is None else np.array(w.data, dtype=f64),
            None if b is None else np.array(b.data, dtype=f64),
        )
        for w, b in net.params()
    ]

    def energy(perturb: tuple[int, np.ndarray] | None = None) -> float:
        ps = [
            (
                None if w is None else dp.tensor(w, dtype=f64),
                None if b is None else dp.tensor(b, dtype=f64),
            )
            for w, b in base
        ]
        with dp.no_grad():
            _, nets, outs = net.forward(x, ps, masks, perturb)
            return float(net.loss(nets, outs, t).item())

    def central(arr: np.ndarray, j: int, fn: Callable[[], float]) -> float:
        return central_difference(arr.reshape(-1), j, fn, EPS)

    checks: list[Check] = []
    for li, rec in enumerate(records):
        w, b = base[li]
        for arr, grad, label in ((w, rec.weight_grad, "weight"), (b, rec.bias_grad, "bias")):
            if arr is None or grad is None:
                continue
            g = grad.reshape(-1)
            for j in range(arr.size):
                num = central(arr, j, energy)
                idx = np.unravel_index(j, arr.shape)
                checks.append(Check(li, label, tuple(map(int, idx)), float(g[j]), num))
        delta = rec.delta.reshape(-1)
        bump = np.zeros(rec.net.shape, dtype=f64)
        for j in range(bump.size):
            num = central(bump, j, lambda li=li, bump=bump: energy((li, bump)))
            idx = np.unravel_index(j, bump.shape)
            checks.append(Check(li, "delta", tuple(map(int, idx)), float(delta[j]), num))

    worst = max(checks, key=lambda c: c.error)
    tol_abs, tol_rel = (1e-6, 1e-5) if dtype == np.float64 else (1e-4, 1e-3)
    ok = all(c.error <= tol_abs + tol_rel * abs(c.numeric) for c in checks)
    return Verification(eps=EPS, count=len(checks), worst=worst, tolerance=tol_abs, ok=ok)
