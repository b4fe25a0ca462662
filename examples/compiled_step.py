"""One training step, eager and compiled: the same numbers, less Python per batch.

    python examples/compiled_step.py

A small convolutional network on the bundled 8x8 digits is trained twice from the same seed and
the same batches: once eagerly, once with the step wrapped in ``dp.compile``. The compiled step
records the first calls and then replays only their NumPy work (see ``docs/compile.md``). The
script prints both runs' losses, checks that the two models end with bit-identical parameters,
and reports the time per step of each.
"""

from __future__ import annotations

import time

import numpy as np

import deltaprop as dp
from deltaprop import nn, optim
from deltaprop.data import DataLoader, TensorDataset
from deltaprop.datasets import load_digits
from deltaprop.nn import functional as F


def small_cnn() -> nn.Sequential:
    """(N, 1, 8, 8) -> conv 3x3 -> ReLU -> 2x2 max pool -> (N, 8, 4, 4) -> linear -> 10 logits."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10),
    )  # fmt: skip


def train(compiled: bool, epochs: int) -> tuple[nn.Module, list[float], float]:
    """Train from seed 0: (model, mean loss of each epoch, seconds per step)."""
    dp.manual_seed(0)
    splits = load_digits()
    mean, std = splits.X_train.mean(), splits.X_train.std()
    data = TensorDataset((splits.X_train - mean) / std, splits.y_train)
    loader = DataLoader(data, batch_size=32, shuffle=True, generator=0)
    model = small_cnn()
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def step(x: dp.Tensor, y: dp.Tensor) -> dp.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    if compiled:
        step = dp.compile(step)  # records the first calls, then replays
    losses, steps, start = [], 0, time.perf_counter()
    for _ in range(epochs):
        total, seen = 0.0, 0
        for x, y in loader:
            loss = step(x, y)
            total += float(loss) * len(y)  # outside the step: reading the loss is fine here
            seen += len(y)
            steps += 1
        losses.append(total / seen)
    return model, losses, (time.perf_counter() - start) / steps


def main(epochs: int = 5) -> bool:
    eager_model, eager_losses, eager_s = train(compiled=False, epochs=epochs)
    compiled_model, compiled_losses, compiled_s = train(compiled=True, epochs=epochs)
    for epoch, (a, b) in enumerate(zip(eager_losses, compiled_losses), 1):
        print(f"epoch {epoch}  eager loss {a:.6f}  compiled loss {b:.6f}")
    same = all(
        np.array_equal(p.detach().numpy(), q.detach().numpy())
        for p, q in zip(eager_model.parameters(), compiled_model.parameters())
    )
    print(f"parameters bit-identical after {epochs} epochs: {same}")
    print(
        f"time per step: eager {eager_s * 1e6:.0f} µs, compiled {compiled_s * 1e6:.0f} µs "
        f"(the first calls of each batch shape run eagerly while recording)"
    )
    return same


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
