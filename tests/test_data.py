"""deltaprop.data: TensorDataset, Subset, random_split, DataLoader and the array transforms."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.data import (
    Compose,
    DataLoader,
    Dataset,
    Flatten,
    Normalize,
    Subset,
    TensorDataset,
    ToFloat,
    default_collate,
    random_split,
)


def make_dataset(n: int = 10, features: int = 3) -> TensorDataset:
    """Row i of X is filled with the value i, so every batch shows which samples it holds."""
    X = np.repeat(np.arange(n, dtype=np.float32)[:, None], features, axis=1)
    y = np.arange(n, dtype=np.int32) % 4
    return TensorDataset(X, y)


def epoch_ids(loader: DataLoader) -> list[int]:
    """The sample ids (first feature of each row) of one epoch, in the order seen."""
    return [int(v) for x, _ in loader for v in x.numpy()[:, 0]]


# ---------------------------------------------------------------- TensorDataset, Subset


def test_tensor_dataset_len_and_items():
    ds = make_dataset(6)
    assert len(ds) == 6
    x, y = ds[4]
    assert x.tolist() == [4.0, 4.0, 4.0]
    assert int(y) == 0


def test_tensor_dataset_rejects_mismatched_first_dimension():
    with pytest.raises(ValueError, match=r"\(5, 2\), \(4,\)"):
        TensorDataset(np.zeros((5, 2)), np.zeros(4))


def test_tensor_dataset_rejects_scalars_and_nothing():
    with pytest.raises(ValueError, match="at least one array"):
        TensorDataset()
    with pytest.raises(ValueError, match="scalar"):
        TensorDataset(np.zeros(3), np.float32(1.0))


def test_tensor_dataset_accepts_tensors_without_copying():
    X = dp.from_numpy(np.zeros((4, 2), dtype=np.float32))
    ds = TensorDataset(X, np.arange(4))
    X.data[2, 1] = 7.0
    assert ds[2][0][1] == 7.0
    assert np.shares_memory(ds.arrays[0], X.data)


def test_dataset_base_class_is_abstract():
    with pytest.raises(NotImplementedError):
        len(Dataset())
    with pytest.raises(NotImplementedError):
        Dataset()[0]


def test_subset_maps_indices_and_rejects_out_of_range():
    ds = make_dataset(10)
    sub = Subset(ds, [7, 2, 5])
    assert len(sub) == 3
    assert sub[0][0][0] == 7.0
    assert [a.tolist() for a in sub.get_batch(np.array([2, 1]))][1] == [5 % 4, 2 % 4]
    with pytest.raises(IndexError, match=r"\[0, 10\)"):
        Subset(ds, [3, 10])


# ---------------------------------------------------------------- random_split


def test_random_split_integer_lengths_partition_the_dataset():
    parts = random_split(make_dataset(10), [6, 4], generator=0)
    assert [len(p) for p in parts] == [6, 4]
    all_indices = np.concatenate([p.indices for p in parts])
    assert sorted(all_indices.tolist()) == list(range(10))


def test_random_split_fractions_follow_pytorch_rounding():
    # floor(10 * 0.33) = 3 each; the one remaining sample goes to the first subset.
    assert [len(p) for p in random_split(make_dataset(10), [0.33, 0.33, 0.34], 0)] == [4, 3, 3]
    assert [len(p) for p in random_split(make_dataset(10), [0.5, 0.3, 0.2], 0)] == [5, 3, 2]


def test_random_split_is_reproducible_with_a_seed():
    first = random_split(make_dataset(50), [25, 25], generator=3)[0].indices
    again = random_split(make_dataset(50), [25, 25], generator=3)[0].indices
    other = random_split(make_dataset(50), [25, 25], generator=4)[0].indices
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_random_split_rejects_bad_lengths():
    with pytest.raises(ValueError, match="sum to 9"):
        random_split(make_dataset(10), [5, 4])
    with pytest.raises(ValueError, match="fractions"):
        random_split(make_dataset(10), [0.5, 0.6])


# ---------------------------------------------------------------- DataLoader


@pytest.mark.parametrize(
    ("n", "batch_size", "drop_last", "expected_len", "expected_sizes"),
    [
        (10, 4, False, 3, [4, 4, 2]),
        (10, 4, True, 2, [4, 4]),
        (8, 4, False, 2, [4, 4]),
        (8, 4, True, 2, [4, 4]),
        (3, 5, True, 0, []),
        (3, 5, False, 1, [3]),
    ],
)
def test_loader_len_and_batch_sizes(n, batch_size, drop_last, expected_len, expected_sizes):
    loader = DataLoader(make_dataset(n), batch_size=batch_size, drop_last=drop_last)
    assert len(loader) == expected_len
    assert [x.shape[0] for x, _ in loader] == expected_sizes


def test_loader_batches_are_tensors_with_the_right_dtypes():
    x, y = next(iter(DataLoader(make_dataset(10), batch_size=4)))
    assert isinstance(x, dp.Tensor) and isinstance(y, dp.Tensor)
    assert x.dtype == np.float32  # features keep their dtype
    assert y.dtype == np.int64  # int32 labels become int64
    assert tuple(x.shape) == (4, 3)


def test_loader_without_shuffle_keeps_order_and_pairs():
    loader = DataLoader(make_dataset(10), batch_size=3)
    assert epoch_ids(loader) == list(range(10))
    for x, y in loader:
        assert (x.numpy()[:, 0].astype(int) % 4 == y.numpy()).all()


def test_shuffled_epoch_sees_every_sample_exactly_once_with_pairs_intact():
    loader = DataLoader(make_dataset(103), batch_size=10, shuffle=True, generator=0)
    for _ in range(2):
        ids = epoch_ids(loader)
        assert sorted(ids) == list(range(103))
        assert ids != list(range(103))
    for x, y in loader:
        assert (x.numpy()[:, 0].astype(int) % 4 == y.numpy()).all()


def test_shuffle_is_reproducible_with_an_int_seed_and_differs_between_epochs():
    first = DataLoader(make_dataset(40), batch_size=8, shuffle=True, generator=123)
    second = DataLoader(make_dataset(40), batch_size=8, shuffle=True, generator=123)
    epoch1, epoch2 = epoch_ids(first), epoch_ids(first)
    assert epoch1 == epoch_ids(second)
    assert epoch2 == epoch_ids(second)
    assert epoch1 != epoch2


def test_shuffle_accepts_a_numpy_generator():
    a = DataLoader(
        make_dataset(30), batch_size=30, shuffle=True, generator=np.random.default_rng(5)
    )
    b = DataLoader(
        make_dataset(30), batch_size=30, shuffle=True, generator=np.random.default_rng(5)
    )
    assert epoch_ids(a) == epoch_ids(b)


def test_shuffle_without_generator_follows_manual_seed():
    loader = DataLoader(make_dataset(30), batch_size=7, shuffle=True)
    dp.manual_seed(11)
    first = epoch_ids(loader)
    dp.manual_seed(11)
    assert epoch_ids(loader) == first
    dp.manual_seed(12)
    assert epoch_ids(loader) != first


def test_drop_last_drops_only_the_incomplete_batch():
    loader = DataLoader(make_dataset(10), batch_size=4, shuffle=True, drop_last=True, generator=1)
    ids = epoch_ids(loader)
    assert len(ids) == 8 and len(set(ids)) == 8


class SpyDataset(TensorDataset):
    """Records how the loader reads the data."""

    def __init__(self, *arrays):
        super().__init__(*arrays)
        self.batch_calls: list[np.ndarray] = []
        self.item_calls = 0

    def get_batch(self, indices):
        self.batch_calls.append(np.array(indices))
        return super().get_batch(indices)

    def __getitem__(self, index):
        self.item_calls += 1
        return super().__getitem__(index)


def test_fast_path_fancy_indexes_one_batch_at_a_time():
    X = np.arange(50, dtype=np.float32).reshape(25, 2)
    y = np.arange(25)
    ds = SpyDataset(X, y)
    batches = list(DataLoader(ds, batch_size=8, shuffle=True, generator=0))
    assert ds.item_calls == 0
    assert [len(i) for i in ds.batch_calls] == [8, 8, 8, 1]
    for indices, (xb, yb) in zip(ds.batch_calls, batches):
        assert np.array_equal(xb.numpy(), X[indices])
        assert np.array_equal(yb.numpy(), y[indices])
        # a batch is a new array (fancy index), not a view the model could write through
        assert not np.shares_memory(xb.numpy(), X)


def test_an_epoch_never_copies_the_whole_dataset():
    X = np.ones((32768, 32), dtype=np.float32)  # 4 MiB
    y = np.zeros(32768, dtype=np.int64)
    loader = DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True, generator=0)
    tracemalloc.start()
    try:
        count = sum(1 for _ in loader)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 512
    # the permutation (256 KiB) and a few batches (8 KiB each) are fine; a copy is 4 MiB
    assert peak < 1.5 * 2**20, f"peak {peak} bytes during one epoch"


def test_subset_uses_the_fast_path_with_composed_indices():
    X = np.arange(20, dtype=np.float32)[:, None]
    ds = SpyDataset(X, np.arange(20))
    train, _ = random_split(ds, [15, 5], generator=2)
    ids = [int(v) for x, _ in DataLoader(train, batch_size=4) for v in x.numpy()[:, 0]]
    assert ids == train.indices.tolist()
    assert ds.item_calls == 0 and len(ds.batch_calls) == 4


class PairsDataset(Dataset):
    """A generic dataset: Python tuples of (array, int label, float weight)."""

    def __len__(self):
        return 5

    def __getitem__(self, i):
        return np.full((2, 2), i, dtype=np.float32), i % 2, 0.5 * i


def test_generic_path_collates_tuples_into_tensors():
    batches = list(DataLoader(PairsDataset(), batch_size=2))
    assert len(batches) == 3
    x, label, weight = batches[0]
    assert tuple(x.shape) == (2, 2, 2) and x.dtype == np.float32
    assert label.dtype == np.int64 and label.numpy().tolist() == [0, 1]
    assert weight.dtype == np.float32 and weight.numpy().tolist() == [0.0, 0.5]
    assert batches[2][0].shape[0] == 1


def test_generic_and_fast_paths_give_the_same_batches():
    ds = make_dataset(13)
    fast = list(DataLoader(ds, batch_size=5, shuffle=True, generator=9))
    slow = list(DataLoader(ds, batch_size=5, shuffle=True, generator=9, collate_fn=default_collate))
    for (xf, yf), (xs, ys) in zip(fast, slow):
        assert np.array_equal(xf.numpy(), xs.numpy())
        assert np.array_equal(yf.numpy(), ys.numpy())
        assert yf.dtype == ys.dtype == np.int64


def test_custom_collate_fn_receives_the_list_of_samples():
    batches = list(DataLoader(make_dataset(5), batch_size=2, collate_fn=list))
    assert [len(b) for b in batches] == [2, 2, 1]
    assert isinstance(batches[0][0], tuple) and batches[0][1][0][0] == 1.0


def test_default_collate_dicts_tensors_strings_and_shape_errors():
    batch = default_collate(
        [{"x": dp.tensor([1.0, 2.0]), "name": "a"}, {"x": np.ones(2), "name": "b"}]
    )
    assert tuple(batch["x"].shape) == (2, 2)
    assert batch["name"] == ["a", "b"]
    with pytest.raises(ValueError, match=r"sample 1 has shape \(3,\)"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(ValueError, match="sample 1"):
        default_collate([(1, 2), (1,)])


def test_loader_rejects_bad_batch_size_and_generator():
    with pytest.raises(ValueError, match="positive"):
        DataLoader(make_dataset(), batch_size=0)
    with pytest.raises(TypeError, match="positive int"):
        DataLoader(make_dataset(), batch_size=2.5)
    with pytest.raises(TypeError, match="generator"):
        DataLoader(make_dataset(), shuffle=True, generator="seed")


# ---------------------------------------------------------------- transforms


def test_to_float_scales_uint8_by_255_and_other_scales_on_request():
    out = ToFloat()(np.array([0, 255, 51], dtype=np.uint8))
    assert out.dtype == np.float32
    assert np.allclose(out, [0.0, 1.0, 0.2])
    assert np.allclose(ToFloat(scale=16)(np.array([16, 8])), [1.0, 0.5])
    assert ToFloat()(np.array([2, 3])).tolist() == [2.0, 3.0]  # non-uint8: no scaling


def test_normalize_scalar_per_channel_and_per_feature():
    images = np.stack([np.full((2, 3, 3), 1.0), np.full((2, 3, 3), 3.0)]).astype(np.float32)
    images[:, 1] += 10.0  # channel 1 is shifted
    out = Normalize([2.0, 12.0], [1.0, 2.0])(images)
    assert out.shape == images.shape and out.dtype == np.float32
    assert np.allclose(out[0, 0], -1.0) and np.allclose(out[1, 1], 0.5)
    assert np.allclose(Normalize(0.5, 0.25)(np.array([[0.5, 1.0]], np.float32)), [[0.0, 2.0]])
    table = np.array([[1.0, 100.0], [3.0, 300.0]])
    assert np.allclose(Normalize([2.0, 200.0], [1.0, 100.0])(table), [[-1, -1], [1, 1]])


def test_normalize_rejects_mismatched_channels_and_bad_std():
    with pytest.raises(ValueError, match="3 mean/std values"):
        Normalize([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])(np.zeros((4, 2, 5, 5)))
    with pytest.raises(ValueError, match="positive"):
        Normalize(0.0, 0.0)


def test_flatten_and_compose_apply_in_order():
    images = np.full((4, 1, 8, 8), 16, dtype=np.uint8)
    assert Flatten()(images).shape == (4, 64)
    assert Flatten(start_dim=2)(images).shape == (4, 1, 64)
    pipeline = Compose([ToFloat(scale=16), Normalize(0.5, 0.5), Flatten()])
    out = pipeline(images)
    assert out.shape == (4, 64) and np.allclose(out, 1.0)
    # order matters: normalizing the raw 0..16 values first gives something else
    assert not np.allclose(Compose([Normalize(0.5, 0.5), ToFloat(scale=16)])(images), 1.0)


def test_dataloader_takes_its_order_from_a_sampler():
    ds = TensorDataset(np.arange(10, dtype=np.float32), np.arange(10))
    loader = DataLoader(ds, batch_size=2, sampler=[9, 7, 5, 3, 1])
    assert len(loader) == 3
    assert [y.numpy().tolist() for _, y in loader] == [[9, 7], [5, 3], [1]]
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(ds, batch_size=2, shuffle=True, sampler=[0])
