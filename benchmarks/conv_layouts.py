"""Scratch benchmark: memory layouts and GEMM shapes for im2col convolution (float32).

Times, for the two LeNet-5 conv layers (batch 64: 1->6 5x5 pad 2 on 28x28, 6->16 5x5 on 14x14),
one forward + backward pass (bias included; dX only for the second layer, as in a network) in
three internal layouts, each converting from / to the NCHW tensors the op receives and returns:

* ``chwn``: batch innermost. x -> (C, Hp, Wp, N); cols (C*kh*kw, Ho*Wo*N); one 2-D GEMM each way.
* ``cnhw``: batch second. x -> (C, N, Hp, Wp) (free when C == 1); cols (C*kh*kw, N*Ho*Wo).
* ``nchw``: batch outermost. cols (N, C*kh*kw, Ho*Wo); batched GEMMs.

and a few forms of the weight-gradient GEMM dW = gy (K, P) @ cols^T (P, C*kh*kw), whose
reduction axis P = N*Ho*Wo is long (50176 for the first layer). These raw-NumPy variants led to
the op's two layouts: ``chwn`` as is, and NCHW with one GEMM per sample (a batched matmul, whose
output is NCHW already; the ``nchw`` variant here uses tensordot instead), compared by
``--layouts`` below.

Run: ``python benchmarks/conv_layouts.py`` (2 BLAS threads unless DELTAPROP_BENCH_THREADS says
otherwise). Prints the best-of-blocks time per call in ms (the min: the machine is shared).

Other modes (both call ``deltaprop._malloc.tune_malloc()`` first, as the trainer does):

* ``--layouts``: the op itself (``Convolution2DFunction``, forward + backward through the Tensor
  API) in each of its two layouts, batch-innermost and NCHW, over batch sizes 1-256 and four layer
  shapes; the data behind ``deltaprop.ops.conv.choose_layout``.
* ``--vs-torch``: deltaprop's ``conv2d`` and ``max_pool2d`` against PyTorch CPU on the LeNet-5
  layers (batch 64), alternating the two in blocks in one process (median per call).

Add ``--cpu-time`` (with ``DELTAPROP_BENCH_THREADS=1``) on a shared machine: process CPU time
ignores other jobs' load, which inflates wall time, and the more so with 2 spinning threads.
"""

from __future__ import annotations

import sys  # noqa: E402
import time  # noqa: E402

import _common  # first: pins BLAS threads before NumPy loads
import numpy as np  # noqa: E402

LAYERS = {
    "conv1 (64,1,28,28) 6x5x5 pad 2": (64, 1, 28, 28, 6, 5, 2, False),
    "conv2 (64,6,14,14) 16x5x5": (64, 6, 14, 14, 16, 5, 0, True),
}


def best_ms(fn, calls: int = 20, repeats: int = 15) -> float:
    fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        out.append((time.perf_counter() - t0) / calls)
    return min(out) * 1e3


def make(layer):
    N, C, H, W, K, k, p, need_dx = layer
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = rng.standard_normal((K, C, k, k), dtype=np.float32)
    b = rng.standard_normal(K, dtype=np.float32)
    Ho, Wo = H + 2 * p - k + 1, W + 2 * p - k + 1
    gy = rng.standard_normal((N, K, Ho, Wo), dtype=np.float32)
    return x, w, b, gy


def step_chwn(x, w, b, gy, p, need_dx):
    N, C, H, W = x.shape
    K, _, kh, kw = w.shape
    Ho, Wo = gy.shape[2:]
    xp = np.zeros((C, H + 2 * p, W + 2 * p, N), np.float32)
    xp[:, p : p + H, p : p + W, :] = x.transpose(1, 2, 3, 0)
    cols = np.empty((C, kh, kw, Ho, Wo, N), np.float32)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = xp[:, i : i + Ho, j : j + Wo, :]
    cols = cols.reshape(C * kh * kw, -1)
    w2 = w.reshape(K, -1)
    y = w2 @ cols
    y += b[:, None]
    y = np.ascontiguousarray(y.reshape(K, Ho, Wo, N).transpose(3, 0, 1, 2))
    # backward
    g = np.ascontiguousarray(gy.transpose(1, 2, 3, 0)).reshape(K, -1)
    db = g.sum(axis=1)
    dw = (g @ cols.T).reshape(w.shape)
    if need_dx:
        dcols = (w2.T @ g).reshape(C, kh, kw, Ho, Wo, N)
        dxp = np.zeros((C, H + 2 * p, W + 2 * p, N), np.float32)
        for i in range(kh):
            for j in range(kw):
                dxp[:, i : i + Ho, j : j + Wo, :] += dcols[:, i, j]
        dx = np.ascontiguousarray(dxp[:, p : p + H, p : p + W].transpose(3, 0, 1, 2))
        return y, dw, db, dx
    return y, dw, db


def step_cnhw(x, w, b, gy, p, need_dx):
    N, C, H, W = x.shape
    K, _, kh, kw = w.shape
    Ho, Wo = gy.shape[2:]
    xp = np.zeros((C, N, H + 2 * p, W + 2 * p), np.float32)
    xp[:, :, p : p + H, p : p + W] = x.transpose(1, 0, 2, 3)
    cols = np.empty((C, kh, kw, N, Ho, Wo), np.float32)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = xp[:, :, i : i + Ho, j : j + Wo]
    cols = cols.reshape(C * kh * kw, -1)
    w2 = w.reshape(K, -1)
    y = w2 @ cols
    y += b[:, None]
    y = np.ascontiguousarray(y.reshape(K, N, Ho, Wo).transpose(1, 0, 2, 3))
    g = np.ascontiguousarray(gy.transpose(1, 0, 2, 3)).reshape(K, -1)
    db = g.sum(axis=1)
    dw = (g @ cols.T).reshape(w.shape)
    if need_dx:
        dcols = (w2.T @ g).reshape(C, kh, kw, N, Ho, Wo)
        dxp = np.zeros((C, N, H + 2 * p, W + 2 * p), np.float32)
        for i in range(kh):
            for j in range(kw):
                dxp[:, :, i : i + Ho, j : j + Wo] += dcols[:, i, j]
        dx = np.ascontiguousarray(dxp[:, :, p : p + H, p : p + W].transpose(1, 0, 2, 3))
        return y, dw, db, dx
    return y, dw, db


def step_nchw(x, w, b, gy, p, need_dx):
    N, C, H, W = x.shape
    K, _, kh, kw = w.shape
    Ho, Wo = gy.shape[2:]
    xp = np.zeros((N, C, H + 2 * p, W + 2 * p), np.float32)
    xp[:, :, p : p + H, p : p + W] = x
    cols = np.empty((N, C, kh, kw, Ho, Wo), np.float32)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i : i + Ho, j : j + Wo]
    cols = cols.reshape(N, C * kh * kw, Ho * Wo)
    w2 = w.reshape(K, -1)
    y = w2 @ cols
    y += b[:, None]
    y = y.reshape(N, K, Ho, Wo)
    g = gy.reshape(N, K, Ho * Wo)
    db = g.sum(axis=(0, 2))
    dw = np.tensordot(g, cols, axes=([0, 2], [0, 2])).reshape(w.shape)
    if need_dx:
        dcols = (w2.T @ g).reshape(N, C, kh, kw, Ho, Wo)
        dxp = np.zeros((N, C, H + 2 * p, W + 2 * p), np.float32)
        for i in range(kh):
            for j in range(kw):
                dxp[:, :, i : i + Ho, j : j + Wo] += dcols[:, :, i, j]
        dx = dxp[:, :, p : p + H, p : p + W].copy()
        return y, dw, db, dx
    return y, dw, db


def dw_variants(g: np.ndarray, cols: np.ndarray) -> dict:
    """Forms of dW = g (K, P) @ cols^T (P, M) with a long reduction axis P."""

    def chunked(n: int):
        def f():
            P = g.shape[1]
            step = -(-P // n)
            out = g[:, :step] @ cols[:, :step].T
            for s in range(step, P, step):
                out += g[:, s : s + step] @ cols[:, s : s + step].T
            return out

        return f

    return {
        "g @ cols.T": lambda: g @ cols.T,
        "(cols @ g.T).T": lambda: (cols @ g.T).T,
        "einsum": lambda: np.einsum("kp,mp->km", g, cols),
        "chunked 4": chunked(4),
        "chunked 8": chunked(8),
        "chunked 16": chunked(16),
    }


def vs_torch() -> None:
    """Forward + backward of the LeNet-5 conv layers and the 2x2 max-pool, deltaprop vs torch."""
    import torch
    import torch.nn.functional as F

    import deltaprop as dp
    from deltaprop._malloc import tune_malloc
    from deltaprop.ops.conv import conv2d
    from deltaprop.ops.pool import max_pool2d

    torch.set_num_threads(_common.BLAS_THREADS)
    print(_common.pin_threads(), "| malloc tuned:", tune_malloc())
    for line in _common.machine_lines():
        print(line)
    clock = _clock()
    rng = np.random.default_rng(0)

    def arr(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    cases = {
        # name: (x shape, x needs grad, weight shape or None (pool), padding)
        "conv1 1->6 5x5 pad 2, 28x28": ((64, 1, 28, 28), False, (6, 1, 5, 5), 2),
        "conv2 6->16 5x5, 14x14": ((64, 6, 14, 14), True, (16, 6, 5, 5), 0),
        "max_pool2d 2x2 (64,6,28,28)": ((64, 6, 28, 28), True, None, 0),
        "max_pool2d 2x2 (64,16,10,10)": ((64, 16, 10, 10), True, None, 0),
    }
    rows = []
    for name, (xs, x_grad, ws, pad) in cases.items():
        xa = arr(*xs)
        x, tx = dp.from_numpy(xa), torch.from_numpy(xa)
        if x_grad:
            x.requires_grad_(True)
            tx.requires_grad_(True)
        if ws is not None:
            wa, ba = arr(*ws), arr(ws[0])
            w, b = dp.from_numpy(wa).requires_grad_(), dp.from_numpy(ba).requires_grad_()
            tw, tb = torch.from_numpy(wa).requires_grad_(), torch.from_numpy(ba).requires_grad_()
            ga = arr(*F.conv2d(tx, tw, tb, padding=pad).shape)
            leaves, tleaves = [x, w, b], [tx, tw, tb]

            def run_dp(x=x, w=w, b=b, pad=pad, ga=ga, leaves=leaves):
                for t in leaves:
                    t.grad = None
                conv2d(x, w, b, padding=pad).backward(ga)

            tg = torch.from_numpy(ga)

            def run_torch(tx=tx, tw=tw, tb=tb, pad=pad, tg=tg, leaves=tleaves):
                for t in leaves:
                    t.grad = None
                F.conv2d(tx, tw, tb, padding=pad).backward(tg)
        else:
            ga = arr(xs[0], xs[1], xs[2] // 2, xs[3] // 2)

            def run_dp(x=x, ga=ga):
                x.grad = None
                max_pool2d(x, 2).backward(ga)

            tg = torch.from_numpy(ga)

            def run_torch(tx=tx, tg=tg):
                tx.grad = None
                F.max_pool2d(tx, 2).backward(tg)

        res = round_robin({"deltaprop": run_dp, "torch": run_torch}, clock)
        d, t = res["deltaprop"] * 1e3, res["torch"] * 1e3
        rows.append([name, f"{d:.3f}", f"{t:.3f}", f"{t / d:.2f}"])
    headers = ["fwd+bwd, batch 64", "deltaprop ms", "torch ms", "torch / deltaprop"]
    print(_common.markdown_table(headers, rows))


def _clock():
    """The timer the flags ask for: process CPU time (1 thread only) or wall time."""
    cpu = "--cpu-time" in sys.argv
    if cpu and _common.BLAS_THREADS != 1:
        raise SystemExit("--cpu-time needs DELTAPROP_BENCH_THREADS=1")
    print(f"clock: {'process CPU time' if cpu else 'wall time'}")
    return time.process_time if cpu else time.perf_counter


def layouts() -> None:
    """Forward + backward of Convolution2DFunction in each internal layout, over batch and shape."""
    import deltaprop as dp
    from deltaprop._malloc import tune_malloc
    from deltaprop.ops.conv import BATCH_INNER, BATCH_OUTER, Convolution2DFunction, choose_layout

    print(_common.pin_threads(), "| malloc tuned:", tune_malloc())
    clock = _clock()
    rng = np.random.default_rng(0)
    shapes = [  # (C, H, W, K, k, padding, x needs grad)
        (1, 28, 28, 6, 5, 2, False),
        (6, 14, 14, 16, 5, 0, True),
        (16, 16, 16, 32, 3, 1, True),
        (3, 64, 64, 16, 3, 1, False),
    ]
    rows = []
    for n in (1, 16, 64, 256):
        for c, h, w_, k, ks, p, x_grad in shapes:
            x = dp.from_numpy(rng.standard_normal((n, c, h, w_)).astype(np.float32))
            x.requires_grad_(x_grad)
            w = dp.from_numpy(rng.standard_normal((k, c, ks, ks)).astype(np.float32))
            b = dp.from_numpy(rng.standard_normal(k).astype(np.float32))
            w.requires_grad_()
            b.requires_grad_()
            wo = w_ + 2 * p - ks + 1
            g = np.ones((n, k, h + 2 * p - ks + 1, wo), np.float32)
            fns = {}
            for layout in (BATCH_INNER, BATCH_OUTER):

                def run(layout=layout, x=x, w=w, b=b, p=p, g=g):
                    x.grad = w.grad = b.grad = None
                    op = Convolution2DFunction((1, 1), (p,) * 4, (1, 1), 1, True, layout)
                    op.apply(x, w, b).backward(g)

                fns[layout] = run
            calls = max(1, 2000 // (n * h))
            res = round_robin(fns, clock, calls=calls, repeats=7)
            inner, outer = res[BATCH_INNER] * 1e3, res[BATCH_OUTER] * 1e3
            best = BATCH_INNER if inner < outer else BATCH_OUTER
            rows.append([f"N={n} C={c} {h}x{w_} K={k} {ks}x{ks} pad {p}", f"{wo}",
                         f"{inner:.3f}", f"{outer:.3f}", best, choose_layout(n, wo)])  # fmt: skip
    headers = ["layer", "Wo", "batch inner ms", "NCHW ms", "faster", "choose_layout"]
    print(_common.markdown_table(headers, rows))


def round_robin(fns: dict, clock, calls: int = 20, repeats: int = 15) -> dict:
    """Median seconds per call of each function, timing blocks of ``calls`` in alternation."""
    for fn in fns.values():
        for _ in range(3):
            fn()
    samples: dict = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names[r % 2 :] + names[: r % 2]:
            t0 = clock()
            for _ in range(calls):
                fns[name]()
            samples[name].append((clock() - t0) / calls)
    return {name: float(np.median(v)) for name, v in samples.items()}


def main() -> None:
    if "--vs-torch" in sys.argv:
        vs_torch()
        return
    if "--layouts" in sys.argv:
        layouts()
        return
    print(_common.pin_threads())
    for name, layer in LAYERS.items():
        x, w, b, gy = make(layer)
        p, need_dx = layer[6], layer[7]
        ref = step_chwn(x, w, b, gy, p, need_dx)
        for step in (step_cnhw, step_nchw):
            for a, r in zip(step(x, w, b, gy, p, need_dx), ref):
                np.testing.assert_allclose(a, r, rtol=1e-3, atol=1e-2)
        print(name)
        for step in (step_chwn, step_cnhw, step_nchw):
            args = (x, w, b, gy, p, need_dx)
            ms = best_ms(lambda step=step, args=args: step(*args))
            print(f"  {step.__name__:10s} fwd+bwd {ms:7.3f} ms")
        K, C, kh, kw = w.shape
        P = gy.size // K
        rng = np.random.default_rng(1)
        g = rng.standard_normal((K, P), dtype=np.float32)
        cols = rng.standard_normal((C * kh * kw, P), dtype=np.float32)
        for vname, fn in dw_variants(g, cols).items():
            print(f"  dW {vname:16s} {best_ms(fn):7.3f} ms")


if __name__ == "__main__":
    main()
