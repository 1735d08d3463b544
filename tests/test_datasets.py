"""The IDX reader/writer, the digits loader and the real MNIST files."""

import gzip
import hashlib
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from fastsoftmax.datasets import IDXError, load_digits, load_mnist, read_idx, write_idx

# ----------------------------------------------------------------------------- IDX


def test_read_idx_hand_built_int32_big_endian(tmp_path):
    # magic 0x00000C02: int32, 2 dimensions; values stored most significant byte first
    data = struct.pack(">HBBII", 0, 0x0C, 2, 2, 2) + struct.pack(">4i", 1, -2, 70000, 2**31 - 1)
    (tmp_path / "m-idx2-int").write_bytes(data)
    array = read_idx(tmp_path / "m-idx2-int")
    assert array.dtype == np.int32 and array.dtype.isnative
    np.testing.assert_array_equal(array, [[1, -2], [70000, 2**31 - 1]])


def test_read_idx_gz_float64(tmp_path):
    data = struct.pack(">HBBI", 0, 0x0E, 1, 3) + struct.pack(">3d", 0.5, -1.25, 1e300)
    (tmp_path / "v.gz").write_bytes(gzip.compress(data))
    np.testing.assert_array_equal(read_idx(tmp_path / "v.gz"), [0.5, -1.25, 1e300])


def test_read_idx_result_is_writeable(tmp_path):
    (tmp_path / "l").write_bytes(struct.pack(">HBBI", 0, 8, 1, 2) + b"\x01\x02")
    array = read_idx(tmp_path / "l")
    array[0] = 9  # a private copy, not a view of read-only bytes
    assert array.tolist() == [9, 2]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not an IDX file"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "not an IDX file .magic number 0x89504e47"),
        (struct.pack(">HBB", 0, 0x07, 1) + bytes(8), "not an IDX file"),  # unknown type code
        (struct.pack(">HBBI", 0, 8, 3, 10), "truncated IDX header"),
        (struct.pack(">HBBII", 0, 8, 2, 3, 4) + bytes(11), r"truncated: shape \(3, 4\)"),
        (struct.pack(">HBBI", 0, 8, 1, 3) + bytes(4), "trailing bytes"),
        (gzip.compress(struct.pack(">HBBI", 0, 8, 1, 300) + bytes(300))[:-12], "damaged gzip"),
    ],
)
def test_read_idx_rejects_bad_files_naming_them(tmp_path, content, message):
    path = tmp_path / "broken-file-idx"
    path.write_bytes(content)
    with pytest.raises(IDXError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_write_then_read_roundtrip(tmp_path, dtype, suffix):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    path = tmp_path / f"a{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == array.dtype and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)
    raw = path.read_bytes()
    if suffix:
        raw = gzip.decompress(raw)
    assert raw[:4] == bytes([0, 0, {"uint8": 8, "int8": 9, "int16": 11, "int32": 12,
                                    "float32": 13, "float64": 14}[dtype], 3])


def test_write_idx_rejects_int64_and_scalars(tmp_path):
    with pytest.raises(ValueError, match="dtype int64"):
        write_idx(tmp_path / "x", np.arange(3))
    with pytest.raises(ValueError, match="0-D"):
        write_idx(tmp_path / "x", np.uint8(3))


# ----------------------------------------------------------------------------- digits


def test_load_digits_split_is_a_partition_of_sklearn_digits():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    X, y = sklearn_datasets.load_digits(return_X_y=True)
    d = load_digits(dtype="uint8")
    assert d.X_train.shape == (1437, 64) and d.X_test.shape == (360, 64)
    assert d.X_train.dtype == np.uint8 and d.y_train.dtype == np.int64
    assert d.image_shape == (8, 8) and d.name == "digits"
    # every (image, label) pair of sklearn appears exactly once across train + test
    ours = np.vstack([d.X_train, d.X_test]).astype(np.float64)
    labels = np.concatenate([d.y_train, d.y_test])
    key = lambda Z, t: sorted(zip(map(bytes, Z.astype(np.uint8)), t.tolist()))  # noqa: E731
    assert key(ours, labels) == key(X, y)
    assert set(d.y_test.tolist()) == set(range(10))


def test_load_digits_float_is_scaled_and_deterministic():
    pytest.importorskip("sklearn")
    a = load_digits()
    b = load_digits(dtype="uint8")
    assert a.X_train.dtype == np.float32
    np.testing.assert_allclose(a.X_train, b.X_train / 16.0, rtol=1e-6)
    np.testing.assert_array_equal(load_digits().y_test, a.y_test)
    assert not np.array_equal(load_digits(random_state=1).y_test, a.y_test)


def test_load_digits_without_sklearn_says_what_to_install(monkeypatch):
    # None in sys.modules makes "import sklearn..." raise ImportError
    for name in ("sklearn", "sklearn.datasets"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        load_digits()


def test_load_digits_bad_test_size():
    with pytest.raises(ValueError, match="test_size must be in"):
        load_digits(test_size=1.5)


# ----------------------------------------------------------------------------- real MNIST

# from the data set's documentation (/work/shared/data/mnist/README.md), not from the package
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
# the class counts of MNIST's training set (LeCun et al.)
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture(scope="module")
def mnist_dir():
    env = os.environ.get("FASTSOFTMAX_DATA")
    if not env:
        pytest.skip("FASTSOFTMAX_DATA is not set: no MNIST files")
    for d in (Path(env), Path(env) / "mnist"):
        if all((d / n).is_file() or (d / f"{n}.gz").is_file() for n in MNIST_MD5):
            return d
    pytest.skip(f"no MNIST files in {env}")


@pytest.mark.mnist
def test_real_mnist_checksums(mnist_dir):
    for name, md5 in MNIST_MD5.items():
        path = mnist_dir / name
        raw = path.read_bytes() if path.is_file() else gzip.decompress(path.with_suffix(".gz").read_bytes())
        assert hashlib.md5(raw).hexdigest() == md5


@pytest.mark.mnist
def test_real_mnist_contents(mnist_dir):
    X, y, Xt, yt = load_mnist(download=False, return_X_y=True)
    assert X.shape == (60000, 784) and Xt.shape == (10000, 784)
    assert X.dtype == np.uint8 and y.dtype == np.int64 and yt.dtype == np.int64
    assert y[:5].tolist() == [5, 0, 4, 1, 9] and yt[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(y).tolist() == TRAIN_COUNTS
    assert yt.min() == 0 and yt.max() == 9
    assert X.max() == 255 and X.min() == 0


@pytest.mark.mnist
def test_real_mnist_float32_and_in_process_cache(mnist_dir, monkeypatch):
    from fastsoftmax import datasets

    load_mnist(download=False)  # warm the in-process cache
    # a second load neither reads nor decompresses the files again
    monkeypatch.setattr(datasets, "_decompress", lambda *a: pytest.fail("files read again"))
    bunch = load_mnist(download=False, dtype="float32")
    assert bunch.X_train.dtype == np.float32 and bunch.X_test.dtype == np.float32
    assert bunch.image_shape == (28, 28)
    assert float(bunch.X_train.max()) == 1.0
    # the first and last images against the file's bytes (16-byte header, then 784 per image)
    path = mnist_dir / "train-images-idx3-ubyte"
    raw = path.read_bytes() if path.is_file() else gzip.decompress(path.with_suffix(".gz").read_bytes())
    first = np.frombuffer(raw[16 : 16 + 784], np.uint8)
    last = np.frombuffer(raw[-784:], np.uint8)
    np.testing.assert_allclose(bunch.X_train[0] * 255, first, atol=1e-4)
    np.testing.assert_allclose(bunch.X_train[-1] * 255, last, atol=1e-4)
