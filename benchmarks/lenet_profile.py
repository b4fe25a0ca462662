"""Where the time of one LeNet-5 training step goes: deltaprop vs hand-written NumPy vs PyTorch.

    python benchmarks/lenet_profile.py              # per-op table, 2 threads
    python benchmarks/lenet_profile.py --cprofile   # also cProfile's top functions (deltaprop)
    DELTAPROP_BENCH_THREADS=1 python benchmarks/lenet_profile.py --cpu-time   # busy machine

The workload is ``benchmarks/run.py``'s ``lenet`` (batch 64, float32, SGD momentum 0.9, real
MNIST digits). Three tables of milliseconds per step, each the median over several blocks:

* deltaprop: every ``Function``'s ``forward`` and ``backward`` wrapped with a timer (per op
  class and input shape), plus ``zero_grad``, ``opt.step`` and the remainder of the step (graph
  bookkeeping, module calls, the backward walk itself);
* hand-written NumPy (``numpy_ref.LeNet5.step``) cut into the same stages by a copy of its code
  with timers;
* PyTorch: ``torch.profiler`` self CPU time per ATen op (its own overhead inflates small ops).

The instrumented steps run a little slower than the plain ones; the last line of each table
gives the uninstrumented step time measured in the same process, in alternation.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from itertools import cycle

import _common as C  # first: pins BLAS threads before NumPy loads
import numpy as np

# ---------------------------------------------------------------------------------------------
# timing helpers
# ---------------------------------------------------------------------------------------------

CLOCK = time.perf_counter


class Stopwatch:
    """Accumulates seconds per label over a step; ``steps`` collects one dict per step."""

    def __init__(self) -> None:
        self.cur: dict[str, float] = defaultdict(float)
        self.steps: list[dict[str, float]] = []
        self.order: list[str] = []

    def add(self, label: str, seconds: float) -> None:
        if label not in self.cur and label not in self.order:
            self.order.append(label)
        self.cur[label] += seconds

    def end_step(self) -> None:
        self.steps.append(dict(self.cur))
        self.cur = defaultdict(float)

    def medians(self) -> dict[str, float]:
        """Median milliseconds per step of each label."""
        return {k: statistics.median(s.get(k, 0.0) for s in self.steps) * 1e3 for k in self.order}


def median_step_ms(fn, steps: int) -> float:
    """Median wall (or CPU) milliseconds of ``fn()`` over ``steps`` single calls."""
    out = []
    for _ in range(steps):
        t0 = CLOCK()
        fn()
        out.append(CLOCK() - t0)
    return statistics.median(out) * 1e3


# ---------------------------------------------------------------------------------------------
# deltaprop, instrumented through Function.forward / backward
# ---------------------------------------------------------------------------------------------


def deltaprop_profile(batches, steps: int, watch: Stopwatch):
    """(instrumented step, plain step): both train their own model on the same batches."""
    import deltaprop_impl as D

    from deltaprop import optim
    from deltaprop.nn import functional as F
    from deltaprop.tensor import Function

    def instrument(cls) -> None:
        fwd, bwd = cls.forward, cls.backward

        def forward(self, *xs, **kw):
            t0 = CLOCK()
            y = fwd(self, *xs, **kw)
            shape = "x".join(map(str, xs[0].shape)) if xs and hasattr(xs[0], "shape") else ""
            self._prof_label = f"{cls.__name__}({shape})"
            watch.add(self._prof_label + " fwd", CLOCK() - t0)
            return y

        def backward(self, gy):
            label = getattr(self, "_prof_label", cls.__name__)
            t0 = CLOCK()
            g = bwd(self, gy)
            watch.add(label + " bwd", CLOCK() - t0)
            return g

        cls.forward, cls.backward = forward, backward

    def all_subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from all_subclasses(sub)

    # import every op module so that every Function subclass exists before instrumenting
    import deltaprop.ops.conv  # noqa: F401
    import deltaprop.ops.pool  # noqa: F401

    plain_model, model = D.lenet5(), D.lenet5()
    for cls in set(all_subclasses(Function)):
        if "forward" in cls.__dict__ or "backward" in cls.__dict__:
            instrument(cls)

    def make(model, timed: bool):
        opt = optim.SGD(model.parameters(), lr=C.LR, momentum=C.MOMENTUM)
        data = cycle([(D.dp.from_numpy(x), D.dp.from_numpy(y)) for x, y in batches])

        def step():
            t_start = CLOCK()
            x, y = next(data)
            loss = F.cross_entropy(model(x), y)
            t0 = CLOCK()
            opt.zero_grad()
            t1 = CLOCK()
            loss.backward()
            t2 = CLOCK()
            opt.step()
            t3 = CLOCK()
            if timed:
                watch.add("optimizer zero_grad", t1 - t0)
                watch.add("optimizer step", t3 - t2)
                watch.add("(whole step)", t3 - t_start)
                watch.end_step()

        return step

    return make(model, True), make(plain_model, False)


# ---------------------------------------------------------------------------------------------
# hand-written NumPy, the same code as numpy_ref.LeNet5.step with timers between stages
# ---------------------------------------------------------------------------------------------


def numpy_profile(batches, watch: Stopwatch):
    import numpy_ref as R

    model, plain = R.LeNet5(), R.LeNet5()
    it = cycle(batches)
    it_plain = cycle(batches)

    def step():
        x, y = next(it)
        p = model.p
        n = x.shape[0]
        t = [CLOCK()]

        def lap(label):
            now = CLOCK()
            watch.add(label, now - t[0])
            t[0] = now

        x_chwn = x.transpose(1, 2, 3, 0)
        cols1 = R.im2col_chwn(x_chwn, 5, 2)
        lap("conv1 im2col fwd")
        a1 = R.matmul_blocked(p["0.weight"], cols1)
        lap("conv1 GEMM fwd")
        a1 += p["0.bias"][:, None]
        a1 = a1.reshape(6, 28, 28, n)
        np.maximum(a1, 0, out=a1)
        lap("conv1 bias+relu fwd")
        p1, idx1 = R.maxpool2_forward_chwn(a1)
        lap("pool1 fwd")
        cols2 = R.im2col_chwn(p1, 5, 0)
        lap("conv2 im2col fwd")
        a2 = R.matmul_blocked(p["3.weight"], cols2)
        lap("conv2 GEMM fwd")
        a2 += p["3.bias"][:, None]
        a2 = a2.reshape(16, 10, 10, n)
        np.maximum(a2, 0, out=a2)
        lap("conv2 bias+relu fwd")
        p2, idx2 = R.maxpool2_forward_chwn(a2)
        lap("pool2 fwd")
        flat_t = p2.reshape(400, n)
        f1 = flat_t.T @ p["7.weight"]
        f1 += p["7.bias"]
        np.maximum(f1, 0, out=f1)
        f2 = f1 @ p["9.weight"]
        f2 += p["9.bias"]
        np.maximum(f2, 0, out=f2)
        logits = f2 @ p["11.weight"]
        logits += p["11.bias"]
        lap("fc layers fwd")
        loss, g = R.softmax_cross_entropy(logits, y)
        lap("cross entropy fwd+bwd")
        grads = {}
        grads["11.weight"], grads["11.bias"], g = R.linear_backward(f2, p["11.weight"], g)
        R.relu_backward_(g, f2)
        grads["9.weight"], grads["9.bias"], g = R.linear_backward(f1, p["9.weight"], g)
        R.relu_backward_(g, f1)
        grads["7.weight"] = flat_t @ g
        grads["7.bias"] = g.sum(axis=0)
        g = (p["7.weight"] @ g.T).reshape(16, 5, 5, n)
        lap("fc layers bwd")
        g = R.maxpool2_backward_chwn(g, idx2)
        lap("pool2 bwd")
        R.relu_backward_(g, a2)
        g = g.reshape(16, -1)
        grads["3.bias"] = g.sum(axis=1)
        lap("conv2 relu+bias bwd")
        grads["3.weight"] = R.matmul_nt_blocked(g, cols2)
        lap("conv2 GEMM dW")
        dcols = p["3.weight"].T @ g
        lap("conv2 GEMM dcols")
        g = R.col2im_chwn(dcols, p1.shape, 5, pad=0)
        lap("conv2 col2im bwd")
        g = R.maxpool2_backward_chwn(g, idx1)
        lap("pool1 bwd")
        R.relu_backward_(g, a1)
        g = g.reshape(6, -1)
        grads["0.bias"] = g.sum(axis=1)
        lap("conv1 relu+bias bwd")
        grads["0.weight"] = R.matmul_nt_blocked(g, cols1)
        lap("conv1 GEMM dW")
        model._update(grads)
        lap("optimizer step")
        watch.end_step()
        return loss

    def plain_step():
        return plain.step(*next(it_plain))

    return step, plain_step


# ---------------------------------------------------------------------------------------------
# PyTorch: torch.profiler self CPU time per op
# ---------------------------------------------------------------------------------------------


def torch_profile(batches, steps: int) -> tuple[list[tuple[str, float]], float]:
    import torch
    import torch_ref as T

    T.configure_threads()
    step = T.make_lenet_step(batches, C.LR, C.MOMENTUM)
    for _ in range(10):
        step()
    plain_ms = median_step_ms(step, steps)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    rows = []
    for ev in prof.key_averages():
        ms = ev.self_cpu_time_total / 1e3 / steps
        if ms >= 0.005:
            rows.append((ev.key, ms))
    rows.sort(key=lambda r: -r[1])
    del torch
    return rows, plain_ms


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------


def table(title: str, rows: list[tuple[str, float]], total: float | None = None) -> None:
    print(f"\n### {title}\n")
    print("| stage | ms/step | share |")
    print("|---|---:|---:|")
    denom = total or sum(ms for _, ms in rows)
    for label, ms in rows:
        print(f"| {label} | {ms:.3f} | {100 * ms / denom:.1f}% |")


def main() -> None:
    global CLOCK
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200, help="timed steps per implementation")
    ap.add_argument("--cprofile", action="store_true", help="cProfile of the deltaprop step")
    ap.add_argument("--cpu-time", action="store_true", help="process CPU time (1 thread only)")
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()
    if args.cpu_time:
        if C.BLAS_THREADS != 1:
            raise SystemExit("--cpu-time needs DELTAPROP_BENCH_THREADS=1")
        CLOCK = time.process_time
    print(C.pin_threads())
    for line in C.machine_lines():
        print(line)
    batches = C.mnist_batches(64, flat=False, limit=20)

    dw, nw = Stopwatch(), Stopwatch()
    d_step, d_plain = deltaprop_profile(batches, args.steps, dw)
    n_step, n_plain = numpy_profile(batches, nw)
    for fn in (d_step, d_plain, n_step, n_plain):
        for _ in range(10):
            fn()
    dw.steps.clear()
    nw.steps.clear()
    # alternate blocks of the four so that load drifts hit all of them alike
    plain = {"deltaprop": [], "numpy": []}
    block = 20
    for _ in range(max(1, args.steps // block)):
        for _ in range(block):
            d_step()
        for _ in range(block):
            n_step()
        plain["deltaprop"].append(median_step_ms(d_plain, block))
        plain["numpy"].append(median_step_ms(n_plain, block))

    d = dw.medians()
    whole = d.pop("(whole step)")
    rows = sorted(d.items(), key=lambda r: -r[1])
    rows.append(("(rest: module calls, graph, backward walk)", whole - sum(d.values())))
    table(f"deltaprop (instrumented step {whole:.3f} ms)", rows, whole)
    n = nw.medians()
    table(f"hand-written NumPy (instrumented step {sum(n.values()):.3f} ms)", list(n.items()))
    d_ms, n_ms = statistics.median(plain["deltaprop"]), statistics.median(plain["numpy"])
    print(f"\nplain steps: deltaprop {d_ms:.3f} ms ({64e3 / d_ms:,.0f} samples/s), numpy "
          f"{n_ms:.3f} ms ({64e3 / n_ms:,.0f} samples/s)")  # fmt: skip

    if not args.no_torch:
        try:
            rows, t_ms = torch_profile(batches, args.steps)
        except ImportError as e:
            print(f"\ntorch: unavailable ({e})")
        else:
            table(f"PyTorch self CPU time per op (profiler; plain step {t_ms:.3f} ms)", rows[:30])
            print(f"\nplain step: torch {t_ms:.3f} ms ({64e3 / t_ms:,.0f} samples/s)")

    if args.cprofile:
        import cProfile
        import pstats

        pr = cProfile.Profile()
        pr.enable()
        for _ in range(args.steps):
            d_plain()
        pr.disable()
        pstats.Stats(pr, stream=sys.stdout).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
