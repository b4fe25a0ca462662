"""MNIST and Fashion-MNIST from the standard IDX files, downloaded when absent.

A data directory holds the four files (each raw or gzipped, ``.gz``)::

    train-images-idx3-ubyte   train-labels-idx1-ubyte
    t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte

Files you supply are read as they are (any number of samples; they are validated, not
checksummed). Missing files are downloaded, when ``download=True``, from public mirrors and
checked against the official MD5 sums; with no network the error says which files to put in
which directory.

MNIST: Yann LeCun, Corinna Cortes and Christopher J.C. Burges (CC BY-SA 3.0).
Fashion-MNIST: Han Xiao, Kashif Rasul and Roland Vollgraf, Zalando Research (MIT licence).

>>> from deltaprop.datasets import load_mnist
>>> splits = load_mnist("path/to/mnist")  # doctest: +SKIP
>>> splits.X_train.shape, splits.X_train.dtype  # doctest: +SKIP
((60000, 1, 28, 28), dtype('float32'))
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deltaprop.datasets.base import DatasetError, DatasetSplits, default_data_dir
from deltaprop.datasets.idx import read_idx_images, read_idx_labels

__all__ = ["load_mnist", "load_fashion_mnist", "IDX_FILES", "MNIST", "FASHION_MNIST"]

#: The four file names (without ``.gz``), in the order train images, train labels, test
#: images, test labels.
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class IdxDatasetInfo:
    """Where an IDX dataset comes from and what its classes are."""

    name: str
    title: str
    mirrors: tuple[str, ...]
    md5: dict[str, str]  # official MD5 of each gzipped file, keyed by the .gz file name
    class_names: tuple[str, ...]


MNIST = IdxDatasetInfo(
    name="mnist",
    title="MNIST",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    md5={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    class_names=tuple(str(d) for d in range(10)),
)

FASHION_MNIST = IdxDatasetInfo(
    name="fashion-mnist",
    title="Fashion-MNIST",
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    md5={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    class_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
)


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    timeout: float = 10.0,
) -> DatasetSplits:
    """Load MNIST: images ``(N, 1, 28, 28)`` float32 in [0, 1] (pixel / 255), labels int64.

    Args:
        data_dir: the directory with the four IDX files; default
            ``default_data_dir() / "mnist"`` (``$DELTAPROP_DATA/mnist``).
        download: fetch missing files from the public mirrors (MD5-checked).
        timeout: seconds to wait on the network per request.

    Raises:
        DatasetError: files missing (and not downloadable) or invalid; the message names them.
    """
    return load_idx_dataset(MNIST, data_dir, download=download, timeout=timeout)


def load_fashion_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    timeout: float = 10.0,
) -> DatasetSplits:
    """Load Fashion-MNIST: as :func:`load_mnist`, ten clothing classes.

    The default directory is ``default_data_dir() / "fashion-mnist"``.
    """
    return load_idx_dataset(FASHION_MNIST, data_dir, download=download, timeout=timeout)


def load_idx_dataset(
    info: IdxDatasetInfo,
    data_dir: str | os.PathLike[str] | None,
    *,
    download: bool = True,
    timeout: float = 10.0,
) -> DatasetSplits:
    """Load an MNIST-style dataset described by ``info`` from ``data_dir``."""
    directory = (
        Path(data_dir).expanduser() if data_dir is not None else default_data_dir() / info.name
    )
    if directory.exists() and not directory.is_dir():
        raise DatasetError(
            f"{directory}: is a file; the {info.name} data directory must be a directory "
            "holding the four IDX files"
        )
    paths = {base: find_idx_file(directory, base) for base in IDX_FILES}
    missing = [base for base, path in paths.items() if path is None]
    failures: list[str] = []
    if missing and download:
        unreachable: set[str] = set()  # mirrors that could not be contacted: not retried
        for base in missing:
            try:
                paths[base] = download_file(info, base + ".gz", directory, timeout, unreachable)
            except DatasetError as exc:
                failures.append(str(exc))
        missing = [base for base, path in paths.items() if path is None]
    if missing:
        raise DatasetError(_missing_files_message(info, directory, missing, download, failures))

    train_images_path, train_labels_path, test_images_path, test_labels_path = (
        paths[base] for base in IDX_FILES
    )
    X_train, y_train = _read_pair(train_images_path, train_labels_path, len(info.class_names))
    X_test, y_test = _read_pair(test_images_path, test_labels_path, len(info.class_names))
    for path, X in ((train_images_path, X_train), (test_images_path, X_test)):
        if len(X) == 0:
            raise DatasetError(f"{path}: holds 0 images; each split needs at least one sample")
    if X_train.shape[1:] != X_test.shape[1:]:
        raise DatasetError(
            f"{test_images_path}: test images are {X_test.shape[2]}x{X_test.shape[3]} but the "
            f"training images ({train_images_path}) are {X_train.shape[2]}x{X_train.shape[3]}"
        )
    return DatasetSplits(
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        num_classes=len(info.class_names),
        class_names=info.class_names,
        input_shape=tuple(X_train.shape[1:]),
        name=info.name,
    )


def find_idx_file(directory: Path, base: str) -> Path | None:
    """``directory/base`` or ``directory/base.gz``, whichever exists (raw first), else None."""
    for candidate in (directory / base, directory / (base + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _read_pair(
    images_path: Path, labels_path: Path, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Read and cross-check one split: images scaled to [0, 1], labels as int64."""
    images = read_idx_images(images_path)
    labels = read_idx_labels(labels_path)
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels; the counts must be equal"
        )
    if labels.size and int(labels.max()) >= num_classes:
        bad = int(np.argmax(labels >= num_classes))
        raise DatasetError(
            f"{labels_path}: label {int(labels[bad])} at index {bad} is not a class index "
            f"0..{num_classes - 1}"
        )
    X = images.reshape(images.shape[0], 1, images.shape[1], images.shape[2]).astype(np.float32)
    X /= np.float32(255.0)
    return X, labels.astype(np.int64)


def _fetch(url: str, timeout: float) -> bytes:
    """The body of ``url`` (a separate function so tests can replace the network)."""
    import http.client
    import urllib.request  # imported here: it is slow to import and rarely needed

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except http.client.HTTPException as exc:  # e.g. IncompleteRead: not an OSError
        raise OSError(f"{type(exc).__name__}: {exc}") from exc


def download_file(
    info: IdxDatasetInfo,
    filename: str,
    directory: Path,
    timeout: float,
    unreachable: set[str] | None = None,
) -> Path:
    """Download ``filename`` from the first mirror that serves it with the official MD5.

    The file is written to ``directory`` only after its checksum matched. Mirrors in
    ``unreachable`` are skipped, and a mirror that cannot be contacted (no answer, as opposed
    to an HTTP error) is added to it, so that an offline machine waits once per mirror, not
    once per file.

    Raises:
        DatasetError: no mirror gave the file with the right checksum; the message lists why.
    """
    import urllib.error

    expected_md5 = info.md5[filename]
    if unreachable is None:
        unreachable = set()
    reasons = []
    for mirror in info.mirrors:
        url = mirror + filename
        if mirror in unreachable:
            reasons.append(f"{url}: skipped, {mirror} did not answer before")
            continue
        try:
            body = _fetch(url, timeout)
        except (OSError, ValueError) as exc:  # URLError and timeouts are OSErrors
            if not isinstance(exc, urllib.error.HTTPError):
                unreachable.add(mirror)
            reasons.append(f"{url}: {getattr(exc, 'reason', exc)}")
            continue
        digest = hashlib.md5(body).hexdigest()
        if digest != expected_md5:
            reasons.append(f"{url}: MD5 {digest} does not match the official {expected_md5}")
            continue
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / filename
        partial = directory / (filename + ".part")
        partial.write_bytes(body)
        os.replace(partial, target)
        return target
    raise DatasetError(f"could not download {filename}: " + "; ".join(reasons))


def _missing_files_message(
    info: IdxDatasetInfo,
    directory: Path,
    missing: list[str],
    download: bool,
    failures: list[str],
) -> str:
    lines = [
        f"{info.title}: {len(missing)} of the 4 IDX files missing in {directory}:",
        *(f"  - {base}.gz (or {base} uncompressed)" for base in missing),
    ]
    if download:
        lines.append("Downloading them failed (is the network reachable?):")
        lines.extend(f"  {reason}" for reason in failures)
    else:
        lines.append("Downloading was turned off (download=False).")
    lines.append(
        f"Put the files in {directory} (or point to the directory holding them: "
        "--data-dir DIR on the command line, data_dir=DIR in Python); "
        f"they are published at {info.mirrors[0]}"
    )
    return "\n".join(lines)
