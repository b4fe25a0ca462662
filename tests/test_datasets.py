"""deltaprop.datasets: IDX/MNIST loading and validation, digits, CSV, synthetic data, load()."""

from __future__ import annotations

import gzip
import hashlib
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from deltaprop.data import DataLoader, TensorDataset
from deltaprop.datasets import (
    DATASET_NAMES,
    DatasetError,
    DatasetSplits,
    load,
    load_csv,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    load_moons,
    load_spirals,
    load_xor,
    make_moons,
    make_spirals,
    make_xor,
    read_digits,
    read_idx,
    read_idx_images,
    read_idx_labels,
)
from deltaprop.datasets import mnist as mnist_module
from deltaprop.datasets.base import stable_permutation, stratified_split
from deltaprop.datasets.mnist import IDX_FILES, IdxDatasetInfo, load_idx_dataset

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "mnist-10k"
DATA_DIR = Path(__file__).resolve().parents[1] / "src" / "deltaprop" / "datasets" / "data"


# ---------------------------------------------------------------- IDX helpers


def idx_images_bytes(images: np.ndarray, magic: int = 2051) -> bytes:
    n, rows, cols = images.shape
    header = b"".join(v.to_bytes(4, "big") for v in (magic, n, rows, cols))
    return header + images.astype(np.uint8).tobytes()


def idx_labels_bytes(labels: np.ndarray, magic: int = 2049) -> bytes:
    header = magic.to_bytes(4, "big") + len(labels).to_bytes(4, "big")
    return header + labels.astype(np.uint8).tobytes()


def write(path: Path, payload: bytes, gz: bool) -> Path:
    if gz:
        path = path.with_name(path.name + ".gz")
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    return path


def sample_images(n: int, rows: int = 5, cols: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, rows, cols), dtype=np.uint8)


def write_mnist_dir(directory: Path, gz: bool, n_train: int = 20, n_test: int = 10) -> dict:
    """Four small IDX files (5x4 images) in ``directory``; returns the arrays written."""
    arrays = {
        "train-images-idx3-ubyte": sample_images(n_train, seed=1),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": sample_images(n_test, seed=2),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) * 3) % 10,
    }
    for base, array in arrays.items():
        payload = idx_images_bytes(array) if "images" in base else idx_labels_bytes(array)
        write(directory / base, payload, gz)
    return arrays


# ---------------------------------------------------------------- IDX reading


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_idx_round_trip(tmp_path, gz):
    images = sample_images(7)
    labels = np.array([3, 1, 4, 1, 5, 9, 2])
    image_path = write(tmp_path / "images-idx3-ubyte", idx_images_bytes(images), gz)
    label_path = write(tmp_path / "labels-idx1-ubyte", idx_labels_bytes(labels), gz)
    read_images = read_idx_images(image_path)
    assert read_images.dtype == np.uint8 and read_images.shape == (7, 5, 4)
    assert np.array_equal(read_images, images)
    assert read_idx_labels(label_path).tolist() == labels.tolist()
    read_images[0, 0, 0] = 1  # arrays are writable copies, not views of the file bytes


def test_read_idx_other_dtypes_are_native_endian(tmp_path):
    values = np.array([[1, -2], [300, 4]], dtype=">i4")
    header = bytes([0, 0, 0x0C, 2]) + (2).to_bytes(4, "big") + (2).to_bytes(4, "big")
    path = tmp_path / "ints.idx"
    path.write_bytes(header + values.tobytes())
    out = read_idx(path)
    assert out.dtype == np.dtype("int32") and out.dtype.isnative
    assert out.tolist() == [[1, -2], [300, 4]]


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_wrong_magic_is_named(tmp_path, gz):
    labels_as_images = write(tmp_path / "train-images-idx3-ubyte", idx_labels_bytes(np.ones(3)), gz)
    with pytest.raises(
        DatasetError, match=r"wrong magic number 2049.*expected 2051.*label file"
    ) as e:
        read_idx_images(labels_as_images)
    assert str(labels_as_images) in str(e.value)
    garbage = write(tmp_path / "garbage", b"\x12\x34\x56\x78" + bytes(20), gz)
    with pytest.raises(DatasetError, match="wrong magic number"):
        read_idx_labels(garbage)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_truncated_data_is_named(tmp_path, gz):
    payload = idx_images_bytes(sample_images(6))
    path = write(tmp_path / "t10k-images-idx3-ubyte", payload[:-7], gz)
    with pytest.raises(DatasetError, match=r"truncated.*\(6, 5, 4\).*113 data bytes") as e:
        read_idx_images(path)
    assert str(path) in str(e.value)


def test_truncated_header_extra_bytes_and_tiny_files(tmp_path):
    header_only = tmp_path / "short-header"
    header_only.write_bytes((2051).to_bytes(4, "big") + (6).to_bytes(4, "big"))
    with pytest.raises(DatasetError, match="truncated header"):
        read_idx_images(header_only)
    extra = tmp_path / "extra"
    extra.write_bytes(idx_labels_bytes(np.arange(5)) + b"\x00")
    with pytest.raises(DatasetError, match="extra bytes"):
        read_idx_labels(extra)
    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"\x00\x00")
    with pytest.raises(DatasetError, match="too short"):
        read_idx_labels(tiny)


def test_corrupt_gzip_stream_is_named(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_labels_bytes(np.arange(100)))[:-12])
    with pytest.raises(DatasetError, match="gzip") as e:
        read_idx_labels(path)
    assert str(path) in str(e.value)


# ---------------------------------------------------------------- MNIST loader


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_load_mnist_from_a_directory(tmp_path, gz):
    arrays = write_mnist_dir(tmp_path, gz)
    splits = load_mnist(tmp_path, download=False)
    assert isinstance(splits, DatasetSplits)
    assert splits.X_train.shape == (20, 1, 5, 4) and splits.X_test.shape == (10, 1, 5, 4)
    assert splits.X_train.dtype == np.float32 and splits.y_train.dtype == np.int64
    assert np.allclose(splits.X_train[:, 0] * 255, arrays["train-images-idx3-ubyte"])
    assert 0.0 <= splits.X_train.min() and splits.X_train.max() <= 1.0
    assert splits.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert splits.input_shape == (1, 5, 4) and splits.num_classes == 10 and splits.name == "mnist"


def test_load_fashion_mnist_has_clothing_class_names(tmp_path):
    write_mnist_dir(tmp_path, gz=True)
    splits = load_fashion_mnist(tmp_path, download=False)
    assert splits.name == "fashion-mnist"
    assert splits.class_names[0] == "T-shirt/top" and splits.class_names[9] == "Ankle boot"


def test_count_mismatch_names_both_files(tmp_path):
    write_mnist_dir(tmp_path, gz=False)
    write(tmp_path / "train-labels-idx1-ubyte", idx_labels_bytes(np.arange(19) % 10), gz=False)
    with pytest.raises(DatasetError, match="20 images but .*19 labels") as e:
        load_mnist(tmp_path, download=False)
    assert "train-images-idx3-ubyte" in str(e.value) and "train-labels-idx1-ubyte" in str(e.value)


def test_corrupt_file_in_the_directory_is_named(tmp_path):
    write_mnist_dir(tmp_path, gz=False)
    good = (tmp_path / "t10k-images-idx3-ubyte").read_bytes()
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(good[:100])
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte: file truncated"):
        load_mnist(tmp_path, download=False)


def test_label_out_of_range_and_mismatched_image_sizes(tmp_path):
    write_mnist_dir(tmp_path, gz=False)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_labels_bytes(np.array([0] * 9 + [12])), False)
    with pytest.raises(DatasetError, match="label 12 at index 9"):
        load_mnist(tmp_path, download=False)
    write_mnist_dir(tmp_path, gz=False)
    write(tmp_path / "t10k-images-idx3-ubyte", idx_images_bytes(sample_images(10, 6, 6)), False)
    with pytest.raises(DatasetError, match="6x6 but the training images"):
        load_mnist(tmp_path, download=False)


def test_missing_files_without_download_say_what_to_put_where(tmp_path):
    write(tmp_path / "train-images-idx3-ubyte", idx_images_bytes(sample_images(3)), True)
    with pytest.raises(DatasetError) as e:
        load_mnist(tmp_path, download=False)
    message = str(e.value)
    assert "3 of the 4 IDX files missing" in message and str(tmp_path) in message
    for base in IDX_FILES[1:]:
        assert base + ".gz" in message
    assert "- train-images-idx3-ubyte" not in message
    assert "download=False" in message


def test_missing_files_without_network_report_the_failure(tmp_path, monkeypatch):
    calls = []

    def offline(url, timeout):
        calls.append((url, timeout))
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(mnist_module, "_fetch", offline)
    with pytest.raises(DatasetError) as e:
        load_mnist(tmp_path / "nowhere", download=True, timeout=2.0)
    message = str(e.value)
    assert "4 of the 4 IDX files missing" in message and "network" in message
    assert "Name or service not known" in message
    assert str(tmp_path / "nowhere") in message
    # each mirror is tried once: an unreachable one is not asked for the other files
    assert len(calls) == len(mnist_module.MNIST.mirrors)
    assert all(url.startswith("https://ossci-datasets") or "cvdf" in url for url, _ in calls)
    assert {timeout for _, timeout in calls} == {2.0}


def fake_source(tmp_path: Path) -> tuple[IdxDatasetInfo, dict[str, bytes]]:
    """A dataset description whose 'official' MD5s are those of small generated files."""
    source = tmp_path / "source"
    source.mkdir()
    write_mnist_dir(source, gz=True)
    bodies = {p.name: p.read_bytes() for p in source.iterdir()}
    info = IdxDatasetInfo(
        name="fake",
        title="Fake",
        mirrors=("https://bad.example/", "https://good.example/"),
        md5={name: hashlib.md5(body).hexdigest() for name, body in bodies.items()},
        class_names=tuple(str(d) for d in range(10)),
    )
    return info, bodies


def test_download_checks_md5_and_falls_back_to_the_next_mirror(tmp_path, monkeypatch):
    info, bodies = fake_source(tmp_path)

    def fetch(url, timeout):
        name = url.rsplit("/", 1)[1]
        if url.startswith("https://bad.example/"):
            return b"not the file"
        return bodies[name]

    monkeypatch.setattr(mnist_module, "_fetch", fetch)
    target = tmp_path / "downloaded"
    splits = load_idx_dataset(info, target, download=True)
    assert splits.X_train.shape == (20, 1, 5, 4)
    assert sorted(p.name for p in target.iterdir()) == sorted(bodies)


def test_download_with_wrong_checksum_everywhere_writes_nothing(tmp_path, monkeypatch):
    info, _ = fake_source(tmp_path)
    monkeypatch.setattr(mnist_module, "_fetch", lambda url, timeout: b"tampered")
    target = tmp_path / "downloaded"
    with pytest.raises(DatasetError, match="does not match the official"):
        load_idx_dataset(info, target, download=True)
    assert not target.exists() or not any(target.iterdir())


def test_user_files_are_not_checksummed(tmp_path, monkeypatch):
    write_mnist_dir(tmp_path, gz=True)  # md5s differ from the official ones

    def no_network(url, timeout):
        raise AssertionError("present files must not trigger a download")

    monkeypatch.setattr(mnist_module, "_fetch", no_network)
    assert load_mnist(tmp_path, download=True).X_train.shape[0] == 20


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason=f"shared MNIST subset not at {SHARED_MNIST}")
def test_shared_mnist_10k_subset():
    splits = load_mnist(SHARED_MNIST, download=False)
    assert splits.X_train.shape == (10000, 1, 28, 28)
    assert splits.X_test.shape == (10000, 1, 28, 28)
    assert splits.X_train.dtype == np.float32 and splits.X_train.max() == 1.0
    assert splits.X_train.min() == 0.0
    assert set(np.unique(splits.y_train).tolist()) == set(range(10))
    assert np.bincount(splits.y_train).min() > 800  # about 1,000 per class (863 to 1,127)
    assert np.bincount(splits.y_test).tolist()[:3] == [980, 1135, 1032]  # official test set
    test_md5 = hashlib.md5((SHARED_MNIST / "t10k-images-idx3-ubyte.gz").read_bytes()).hexdigest()
    assert test_md5 == mnist_module.MNIST.md5["t10k-images-idx3-ubyte.gz"]
    train_md5 = hashlib.md5((SHARED_MNIST / "train-images-idx3-ubyte.gz").read_bytes()).hexdigest()
    assert train_md5 != mnist_module.MNIST.md5["train-images-idx3-ubyte.gz"]


# ---------------------------------------------------------------- digits


def test_digits_shapes_classes_and_split_sizes():
    splits = load_digits()
    assert splits.X_train.shape == (1437, 1, 8, 8) and splits.X_test.shape == (360, 1, 8, 8)
    assert splits.X_train.dtype == np.float32 and splits.y_train.dtype == np.int64
    assert splits.X_train.min() == 0.0 and splits.X_train.max() == 1.0
    assert splits.num_classes == 10 and splits.class_names == tuple("0123456789")
    assert splits.input_shape == (1, 8, 8) and splits.name == "digits"
    # stratified: each digit has its share (about 20%) in the test split
    expected_test_counts = [36, 37, 35, 37, 36, 36, 36, 36, 35, 36]
    assert np.bincount(splits.y_test, minlength=10).tolist() == expected_test_counts


def test_digits_split_is_fixed_and_partitions_the_file():
    pixels, labels = read_digits()
    assert pixels.shape == (1797, 8, 8) and int(pixels.max()) == 16
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    a, b = load_digits(), load_digits()
    assert np.array_equal(a.X_test, b.X_test) and np.array_equal(a.y_train, b.y_train)
    everything = np.concatenate([a.X_train, a.X_test]).reshape(1797, 64) * 16
    assert sorted(map(bytes, everything.astype(np.uint8))) == sorted(
        map(bytes, pixels.reshape(1797, 64))
    )
    # pinned: the documented split must not move between versions
    train_rows, test_rows = stratified_split(labels, 0.2, seed=0)
    assert test_rows[:6].tolist() == [2, 3, 11, 13, 15, 20]
    assert np.array_equal(a.y_test, labels[test_rows])
    assert load_digits(seed=1).y_test.tolist() != a.y_test.tolist()


def test_digits_attribution_is_bundled():
    readme = (DATA_DIR / "README.md").read_text()
    assert "CC BY 4.0" in readme and "Alpaydin" in readme and "UCI" in readme
    digest = hashlib.md5((DATA_DIR / "digits.csv.gz").read_bytes()).hexdigest()
    assert digest in readme


def test_digits_train_dataset_feeds_a_loader():
    splits = load_digits()
    train = splits.train_dataset()
    assert isinstance(train, TensorDataset) and np.shares_memory(train.arrays[0], splits.X_train)
    seen = 0
    for x, y in DataLoader(train, batch_size=256, shuffle=True, generator=0):
        assert tuple(x.shape[1:]) == (1, 8, 8) and y.dtype == np.int64
        seen += x.shape[0]
    assert seen == 1437


# ---------------------------------------------------------------- splits helpers


def test_stable_permutation_is_a_permutation_and_seeded():
    p = stable_permutation(100, seed=3)
    assert sorted(p.tolist()) == list(range(100))
    assert np.array_equal(p, stable_permutation(100, seed=3))
    assert not np.array_equal(p, stable_permutation(100, seed=4))
    assert stable_permutation(5, seed=0).tolist() == [3, 2, 1, 0, 4]  # pinned across versions


def test_stratified_split_validates_fraction_and_size():
    with pytest.raises(ValueError, match="between 0 and 1"):
        stratified_split(np.arange(10), 1.0, seed=0)
    with pytest.raises(DatasetError, match="cannot split 1"):
        stratified_split(np.array([0]), 0.5, seed=0)


def test_dataset_splits_validates_its_arrays():
    with pytest.raises(DatasetError, match="3 samples but 2 labels"):
        DatasetSplits(
            np.zeros((3, 2)), np.zeros(2), np.zeros((1, 2)), np.zeros(1), 2, ("a", "b"), (2,), "t"
        )
    with pytest.raises(DatasetError, match="class names"):
        DatasetSplits(
            np.zeros((3, 2)), np.zeros(3), np.zeros((1, 2)), np.zeros(1), 3, ("a", "b"), (2,), "t"
        )


# ---------------------------------------------------------------- CSV


def write_csv(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


IRIS_LIKE = "sepal,petal,kind\n" + "".join(
    f"{i * 0.1:.1f},{i % 7},{['setosa', 'virginica', 'versicolor'][i % 3]}\n" for i in range(30)
)


def test_csv_header_and_string_labels(tmp_path):
    splits = load_csv(write_csv(tmp_path, IRIS_LIKE))
    assert splits.class_names == ("setosa", "versicolor", "virginica")  # sorted
    assert splits.num_classes == 3 and splits.input_shape == (2,)
    assert splits.X_train.shape == (24, 2) and splits.X_test.shape == (6, 2)
    assert splits.X_train.dtype == np.float32 and splits.y_train.dtype == np.int64
    # row 1 of the file is (0.1, 1, virginica) and virginica is class 2
    X = np.concatenate([splits.X_train, splits.X_test])
    y = np.concatenate([splits.y_train, splits.y_test])
    assert y[np.isclose(X[:, 0], 0.1)].tolist() == [2]
    assert np.bincount(splits.y_test).tolist() == [2, 2, 2]
    assert splits.name == "csv:data.csv"


def test_csv_split_is_seeded(tmp_path):
    path = write_csv(tmp_path, IRIS_LIKE)
    a, b = load_csv(path, seed=0), load_csv(path, seed=0)
    assert np.array_equal(a.X_test, b.X_test)
    assert not np.array_equal(load_csv(path, seed=1).X_test, a.X_test)


def test_csv_without_header_and_integer_labels(tmp_path):
    path = write_csv(tmp_path, "".join(f"{i},{2 * i},{1 + i % 3}\n" for i in range(10)))
    splits = load_csv(path, test_fraction=0.3)
    assert splits.class_names == ("1", "2", "3")  # labels 1..3 become classes 0..2
    assert splits.X_train.shape[0] + splits.X_test.shape[0] == 10
    X = np.concatenate([splits.X_train, splits.X_test])
    y = np.concatenate([splits.y_train, splits.y_test])
    assert ((X[:, 0].astype(int) % 3) == y).all()


def test_csv_named_or_indexed_label_column(tmp_path):
    path = write_csv(tmp_path, "kind,a,b\ncat,1,2\ndog,3,4\ncat,5,6\ndog,7,8\n")
    by_name = load_csv(path, label_column="kind", test_fraction=0.5)
    by_index = load_csv(path, label_column=0, test_fraction=0.5)
    assert by_name.class_names == ("cat", "dog") and by_name.input_shape == (2,)
    assert np.array_equal(by_name.X_train, by_index.X_train)
    with pytest.raises(DatasetError, match="no column named 'colour'"):
        load_csv(path, label_column="colour")
    with pytest.raises(DatasetError, match="out of range"):
        load_csv(path, label_column=5)


def test_csv_forced_header_flag(tmp_path):
    path = write_csv(tmp_path, "1,2,0\n3,4,1\n5,6,0\n7,8,1\n9,10,0\n")
    splits = load_csv(path, header=True)  # the first row "1,2,0" is taken as names
    assert splits.X_train.shape[0] + splits.X_test.shape[0] == 4
    assert load_csv(path).X_train.shape[0] + load_csv(path).X_test.shape[0] == 5
    with pytest.raises(DatasetError, match="has no header row"):
        load_csv(path, label_column="label")


def test_csv_separate_test_file(tmp_path):
    train = write_csv(tmp_path, "x,y\n0.5,a\n1.5,b\n2.5,a\n", "train.csv")
    test = write_csv(tmp_path, "x,y\n3.5,b\n4.5,b\n", "test.csv")
    splits = load_csv(train, test_path=test)
    assert splits.X_train.shape == (3, 1) and splits.X_test[:, 0].tolist() == [3.5, 4.5]
    assert splits.y_test.tolist() == [1, 1]
    unknown = write_csv(tmp_path, "x,y\n3.5,c\n", "unknown.csv")
    with pytest.raises(DatasetError, match=r"unknown.csv, line 2: label 'c' does not occur"):
        load_csv(train, test_path=unknown)
    wider = write_csv(tmp_path, "x,z,y\n3.5,1,b\n", "wider.csv")
    with pytest.raises(DatasetError, match="2 feature columns"):
        load_csv(train, test_path=wider)


def test_csv_ragged_row_names_file_and_line(tmp_path):
    path = write_csv(tmp_path, "a,b,label\n1,2,x\n\n# a comment\n3,4\n")
    with pytest.raises(DatasetError, match=r"data.csv, line 5: 2 fields, expected 3"):
        load_csv(path)


def test_csv_non_numeric_feature_names_line_and_column(tmp_path):
    path = write_csv(tmp_path, "a,b,label\n1,2,x\n3,oops,y\n")
    with pytest.raises(DatasetError, match=r"line 3, column 2 \('b'\): 'oops' is not a number"):
        load_csv(path)
    missing = write_csv(tmp_path, "1,2,x\n3,,y\n", "missing.csv")
    with pytest.raises(DatasetError, match=r"missing.csv, line 2, column 2: missing value"):
        load_csv(missing)


def test_csv_empty_and_header_only_files(tmp_path):
    with pytest.raises(DatasetError, match="empty file"):
        load_csv(write_csv(tmp_path, "\n\n", "empty.csv"))
    with pytest.raises(DatasetError, match="no data rows"):
        load_csv(write_csv(tmp_path, "a,b,label\n", "header.csv"))
    with pytest.raises(DatasetError, match="file not found"):
        load_csv(tmp_path / "absent.csv")


def test_csv_rejects_regression_targets(tmp_path):
    path = write_csv(tmp_path, "1,0.25\n2,0.5\n3,0.75\n")
    with pytest.raises(DatasetError, match="line 1: label '0.25' is a non-integer number"):
        load_csv(path)


# ---------------------------------------------------------------- synthetic


@pytest.mark.parametrize("make", [make_xor, make_moons, make_spirals])
def test_synthetic_data_is_seeded(make):
    X1, y1 = make(seed=7)
    X2, y2 = make(seed=7)
    X3, _ = make(seed=8)
    assert np.array_equal(X1, X2) and np.array_equal(y1, y2)
    assert not np.array_equal(X1, X3)
    assert X1.dtype == np.float32 and y1.dtype == np.int64 and X1.shape[1] == 2


def test_xor_labels_follow_the_signs():
    X, y = make_xor(200, noise=0.0, seed=0)
    assert ((X[:, 0] * X[:, 1] < 0).astype(int) == y).all()
    assert 60 < y.sum() < 140


def test_moons_and_spirals_are_balanced_and_shaped():
    X, y = make_moons(101, noise=0.0)
    assert X.shape == (101, 2) and np.bincount(y).tolist() == [50, 51]
    assert np.allclose(np.hypot(X[y == 0, 0], X[y == 0, 1]), 1.0, atol=1e-6)  # the upper arc
    X, y = make_spirals(300, n_classes=3, noise=0.0)
    assert np.bincount(y).tolist() == [100, 100, 100] and np.abs(X).max() <= 1.0
    _, y2 = make_spirals(10, n_classes=2)
    assert np.bincount(y2).tolist() == [5, 5]
    with pytest.raises(ValueError, match="n_classes"):
        make_spirals(10, n_classes=1)


def test_synthetic_splits():
    for splits, classes in ((load_xor(), 2), (load_moons(), 2), (load_spirals(), 3)):
        n = splits.X_train.shape[0] + splits.X_test.shape[0]
        assert splits.X_test.shape[0] == int(np.ceil(0.2 * n))
        assert splits.num_classes == classes and splits.input_shape == (2,)
        assert set(np.unique(splits.y_test).tolist()) == set(range(classes))


# ---------------------------------------------------------------- load()


def test_load_dispatches_by_name(tmp_path):
    assert load("digits").X_test.shape == (360, 1, 8, 8)
    assert load("  Moons ").name == "moons"
    assert load("xor").name == "xor"
    assert load("spirals").num_classes == 3
    path = write_csv(tmp_path, IRIS_LIKE)
    assert load(f"csv:{path}").class_names == ("setosa", "versicolor", "virginica")
    mnist_dir = tmp_path / "mnist"
    mnist_dir.mkdir()
    write_mnist_dir(mnist_dir, gz=True)
    assert load("mnist", mnist_dir, download=False).X_train.shape == (20, 1, 5, 4)
    assert load("fashion_mnist", mnist_dir, download=False).name == "fashion-mnist"
    assert load("fashion-mnist", mnist_dir, download=False).class_names[1] == "Trouser"


def test_load_unknown_name_lists_the_choices():
    with pytest.raises(DatasetError, match="unknown dataset 'cifar'.*digits, mnist"):
        load("cifar")
    with pytest.raises(DatasetError, match="needs a file path"):
        load("csv:")
    assert "csv:PATH" in DATASET_NAMES


def test_http_errors_do_not_blacklist_a_mirror(tmp_path, monkeypatch):
    info, bodies = fake_source(tmp_path)
    asked = []

    def fetch(url, timeout):
        asked.append(url)
        name = url.rsplit("/", 1)[1]
        if url.startswith("https://bad.example/") and name.startswith("train"):
            raise urllib.error.HTTPError(url, 404, "Not Found", None, None)
        return bodies[name]  # the first mirror has the test files, the second everything

    monkeypatch.setattr(mnist_module, "_fetch", fetch)
    splits = load_idx_dataset(info, tmp_path / "downloaded", download=True)
    assert splits.X_test.shape == (10, 1, 5, 4)
    # a 404 means the mirror answered: it is still asked for the files after the first
    assert sum(url.startswith("https://bad.example/") for url in asked) == 4
    assert sum(url.startswith("https://good.example/") for url in asked) == 2
