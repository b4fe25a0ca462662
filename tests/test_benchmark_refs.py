"""The benchmarks' hand-written NumPy reference (benchmarks/numpy_ref.py) computes as PyTorch does.

Starting from the same weights and batch, a few training steps of numpy_ref and of
benchmarks/torch_ref.py must give the same losses and the same parameters after each SGD-momentum
update: in float64 to ~1e-12, and in float32 (the benchmarked precision) to float32 tolerance.
Synthetic batches keep the test independent of the MNIST files. No timing is checked here.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _import_bench(name: str):
    """Import a module of benchmarks/ without leaving its thread-pinning env vars behind."""
    saved = {k: os.environ.get(k) for k in THREAD_VARS}
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def nref():
    return _import_bench("numpy_ref")


@pytest.fixture(scope="module")
def tref():
    pytest.importorskip(
        "torch", reason="PyTorch is not installed: nothing to compare numpy_ref with"
    )
    return _import_bench("torch_ref")


def _batch(kind: str, dtype, seed: int = 0):
    rng = np.random.default_rng(seed)
    if kind == "mlp":
        return rng.standard_normal((32, 784)).astype(dtype), rng.integers(0, 10, 32)
    if kind == "lenet":
        return rng.standard_normal((8, 1, 28, 28)).astype(dtype), rng.integers(0, 10, 8)
    x = rng.uniform(-1, 1, (20, 2)).astype(dtype)
    return x, np.sin(x[:, :1] * 3).astype(dtype)


def _compare_steps(nref, tref, kind: str, dtype, loss_rtol: float, param_atol: float, steps=3):
    import torch

    torch.manual_seed(0)
    build = {"mlp": tref.mlp, "lenet": tref.lenet5, "tiny": tref.tiny_mlp}[kind]
    ref_class = {"mlp": nref.MLP, "lenet": nref.LeNet5, "tiny": nref.TinyMLP}[kind]
    model = build().to(torch.float64 if dtype == np.float64 else torch.float32)
    ours = ref_class(tref.state_dict_numpy(model), lr=0.05, momentum=0.9, dtype=dtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = torch.nn.functional.mse_loss if kind == "tiny" else torch.nn.functional.cross_entropy

    for step in range(steps):  # several steps: the momentum buffers take part from step 2 on
        x, y = _batch(kind, dtype, seed=step)
        ours_loss = ours.step(x, y)
        their_loss = tref.train_step(
            model, opt, loss_fn, torch.from_numpy(x), torch.from_numpy(y)
        ).item()
        assert ours_loss == pytest.approx(their_loss, rel=loss_rtol), f"loss, step {step}"
        theirs = tref.state_dict_numpy(model)
        mine = ours.state_dict()
        assert mine.keys() == theirs.keys()
        for name in theirs:
            assert mine[name].dtype == dtype
            np.testing.assert_allclose(
                mine[name], theirs[name], rtol=0, atol=param_atol, err_msg=f"{name}, step {step}"
            )


@pytest.mark.parametrize("kind", ["mlp", "lenet", "tiny"])
def test_float64_steps_match_torch(nref, tref, kind):
    _compare_steps(nref, tref, kind, np.float64, loss_rtol=1e-12, param_atol=1e-12)


@pytest.mark.parametrize("kind", ["mlp", "lenet"])
def test_float32_steps_match_torch(nref, tref, kind):
    _compare_steps(nref, tref, kind, np.float32, loss_rtol=1e-5, param_atol=1e-5)


def test_im2col_col2im_are_adjoint(nref):
    """<im2col(x), c> == <x, col2im(c)>: col2im is the exact transpose of im2col."""
    rng = np.random.default_rng(1)
    for pad in (0, 2):
        x = rng.standard_normal((3, 9, 8, 4))
        cols = nref.im2col_chwn(x, 5, pad)
        c = rng.standard_normal(cols.shape)
        back = nref.col2im_chwn(c, x.shape, 5, pad)
        assert back.shape == x.shape
        assert np.vdot(cols, c) == pytest.approx(np.vdot(x, back), rel=1e-12)


def test_maxpool_argmax_and_backward(nref):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 4, 3))  # (C, H, W, N)
    out, idx = nref.maxpool2_forward_chwn(x)
    windows = x.reshape(2, 3, 2, 2, 2, 3).transpose(0, 1, 3, 5, 2, 4).reshape(2, 3, 2, 3, 4)
    np.testing.assert_array_equal(out, windows.max(axis=-1))
    np.testing.assert_array_equal(idx, windows.argmax(axis=-1))
    g = rng.standard_normal(out.shape)
    dx = nref.maxpool2_backward_chwn(g, idx)
    assert dx.sum() == pytest.approx(g.sum())
    assert np.count_nonzero(dx) == g.size  # one position per window
    # ties: the first position in row-major order wins, as in PyTorch
    tie = np.zeros((1, 2, 2, 1))
    assert int(nref.maxpool2_forward_chwn(tie)[1].ravel()[0]) == 0


def test_tune_malloc_is_idempotent_bool():
    path = REPO / "src" / "deltaprop" / "_malloc.py"
    spec = importlib.util.spec_from_file_location("_malloc_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.tuned() is False
    first = mod.tune_malloc()
    assert isinstance(first, bool)
    assert mod.tune_malloc() is first
    assert mod.tuned() is first


def test_blocked_gemms_match_plain(nref):
    """The column-blocked products of the first conv layer equal the plain ones."""
    rng = np.random.default_rng(3)
    n = 2 * nref.GEMM_BLOCK + 123  # long enough to be blocked, with a ragged last block
    a, b, w = (
        rng.standard_normal((6, n)),
        rng.standard_normal((25, n)),
        rng.standard_normal((6, 25)),
    )
    np.testing.assert_allclose(nref.matmul_blocked(w, b), w @ b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(nref.matmul_nt_blocked(a, b), a @ b.T, rtol=1e-12, atol=1e-10)
