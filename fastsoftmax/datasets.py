"""Data sets: MNIST from its original IDX files, and scikit-learn's 8x8 digits.

:func:`load_mnist` looks for the four MNIST files (raw or gzipped) in
``data_home``, then in ``$FASTSOFTMAX_DATA``, then in a per-user cache
directory (``$XDG_CACHE_HOME/fastsoftmax`` or ``~/.cache/fastsoftmax``); each
of these may hold the files directly or in a ``mnist/`` sub-folder.  Missing
files are downloaded from :data:`MIRRORS`, verified against
:data:`MNIST_FILES` (MD5 of the decompressed content, which is the same on
every mirror, unlike the gzip bytes) and written atomically.  A file that fails
its check is reported with a warning and never used.

:func:`read_idx` and :func:`write_idx` read and write single IDX files.

Examples
--------
>>> from fastsoftmax.datasets import load_digits
>>> digits = load_digits()
>>> digits.X_train.shape, digits.X_test.shape
((1437, 64), (360, 64))
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.client
import io
import logging
import math
import os
import struct
import tempfile
import time
import urllib.error
import urllib.request
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

__all__ = [
    "MIRRORS",
    "MNIST_FILES",
    "Bunch",
    "DataNotFoundError",
    "IDXError",
    "get_cache_dir",
    "load_digits",
    "load_mnist",
    "read_idx",
    "write_idx",
]

#: Base URLs the MNIST files are downloaded from, tried in order; each serves
#: ``<name>.gz``.  Overridable (tests point it at a local server).
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

_log = logging.getLogger(__name__)

#: Seconds to wait for a mirror to answer before trying the next one.
TIMEOUT = 30.0
#: Seconds one file's whole download may take: a mirror that trickles bytes more slowly
#: is abandoned (at most ``TIMEOUT`` late, the longest a single read may wait).
DEADLINE = 600.0

#: file name -> (MD5 of the decompressed file, its size in bytes).
MNIST_FILES = {
    "train-images-idx3-ubyte": ("6bbc9ace898e44ae57da46a324031adb", 47040016),
    "train-labels-idx1-ubyte": ("a25bea736e30d166cdddb491f175f624", 60008),
    "t10k-images-idx3-ubyte": ("2646ac647ad5339dbf082846283269ea", 7840016),
    "t10k-labels-idx1-ubyte": ("27ae3e4e09519cfbb04c329615203637", 10008),
}

# IDX type code -> big-endian dtype (the IDX format stores numbers MSB first)
_IDX_TYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_DTYPES = ("uint8", "float32", "float64")


class IDXError(ValueError):
    """A file is not a valid IDX file (wrong magic number, size or shape)."""


class DataNotFoundError(FileNotFoundError):
    """The data files are neither on disk nor downloadable.

    Raised by :func:`load_mnist` with the attributes ``missing`` (the file
    names), ``searched`` (the folders looked in) and ``download_failures``
    (one message a mirror tried, or None when downloading was off), so that
    a caller such as the ``fastsoftmax`` command can word its own advice.
    """

    missing: list[str]
    searched: list[Path]
    download_failures: list[str] | None


class Bunch(dict):
    """A dict whose keys are also attributes (like scikit-learn's Bunch).

    Examples
    --------
    >>> b = Bunch(a=1)
    >>> b.a, b["a"]
    (1, 1)
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self))


# --------------------------------------------------------------------------- IDX


#: Bytes read at a time from a file, a gzip stream or a download: no read allocates more,
#: whatever size a header or a server claims.
_CHUNK = 1 << 20


class _Reader(Protocol):
    """A binary stream: a file, a GzipFile, an HTTP response."""

    def read(self, size: int, /) -> bytes: ...


def _read_bounded(stream: _Reader, limit: int) -> bytearray:
    """Read ``stream`` to its end in chunks, stopping once past ``limit`` bytes.

    Returns at most ``limit + 1`` bytes: more than ``limit`` means "too long".
    """
    data = bytearray()
    while len(data) <= limit:
        chunk = stream.read(min(_CHUNK, limit + 1 - len(data)))
        if not chunk:
            break
        data += chunk
    return data


@contextlib.contextmanager
def _gzip_errors(name: object) -> Iterator[None]:
    """Report a truncated or damaged gzip stream as an IDXError naming the file."""
    try:
        yield
    except (EOFError, OSError, zlib.error) as exc:
        raise IDXError(f"{name}: damaged gzip data ({exc})") from None


def _decompress(data: bytes | bytearray, name: object, limit: int) -> bytes | bytearray:
    """The content of ``data``, gunzipped if it is gzip; IDXError past ``limit`` bytes.

    Decompressed as a stream, so that a small gzip file inflating to gigabytes
    (a "gzip bomb") costs no more than ``limit`` bytes.
    """
    if data[:2] == _GZIP_MAGIC:
        with _gzip_errors(name), gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            data = _read_bounded(stream, limit)
    if len(data) > limit:
        raise IDXError(f"{name}: more than the {limit} bytes expected (decompressed)")
    return data


def _parse_header(
    data: bytes | bytearray, name: object
) -> tuple[np.dtype[Any], tuple[int, ...], int, int]:
    """Element type, shape, header size and total size of the IDX file starting with ``data``."""
    if len(data) < 4:
        raise IDXError(f"{name}: not an IDX file (only {len(data)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _IDX_TYPES or ndim == 0:
        raise IDXError(
            f"{name}: not an IDX file (magic number 0x{bytes(data[:4]).hex()}; expected "
            "0x0000 then a type code in 08 09 0B 0C 0D 0E and a dimension count >= 1)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"{name}: truncated IDX header ({len(data)} of {header} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_TYPES[code]
    # Python integers: dims up to 2**32 - 1 each must not wrap around
    return dtype, shape, header, header + math.prod(shape) * dtype.itemsize


def _size_error(
    name: object,
    dtype: np.dtype[Any],
    shape: tuple[int, ...],
    expected: int,
    found: int,
    *,
    exact: bool = True,
) -> IDXError:
    what = "truncated" if found < expected else "has trailing bytes"
    return IDXError(
        f"{name}: IDX file {what}: shape {shape} of {dtype.str[1:]} needs "
        f"{expected} bytes, found {found if exact else f'more than {expected}'}"
    )


def _to_array(
    data: bytes | bytearray, dtype: np.dtype[Any], shape: tuple[int, ...], offset: int, name: object
) -> np.ndarray:
    # frombuffer: no copy of the (possibly 47 MB) payload
    array = np.frombuffer(data, dtype=dtype, offset=offset)
    try:
        array = array.reshape(shape)
    except ValueError:  # e.g. (0, 2**31, 2**31, 2**31): empty, but more dims than NumPy indexes
        raise IDXError(f"{name}: shape {shape} is too large for a NumPy array") from None
    return array.astype(dtype.newbyteorder("="), copy=False)


def _parse_idx(data: bytes | bytearray, name: object) -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file into an array (a view of ``data``)."""
    dtype, shape, header, expected = _parse_header(data, name)
    if len(data) != expected:
        raise _size_error(name, dtype, shape, expected, len(data))
    return _to_array(data, dtype, shape, header, name)


def _read_idx_stream(stream: _Reader, name: object) -> np.ndarray:
    """Read an IDX file from a binary stream, never reading past what its header declares."""
    data = bytearray(stream.read(4))
    if len(data) == 4:
        data += stream.read(4 * data[3])
    dtype, shape, header, expected = _parse_header(data, name)
    data += _read_bounded(stream, expected - header)
    if len(data) != expected:  # a longer stream was read only one byte past the end
        raise _size_error(name, dtype, shape, expected, len(data), exact=len(data) < expected)
    return _to_array(data, dtype, shape, header, name)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (raw or gzipped) into a NumPy array.

    Parameters
    ----------
    path : str or os.PathLike
        An IDX file such as ``train-images-idx3-ubyte`` or its ``.gz``.

    Returns
    -------
    ndarray
        With the file's shape and element type (native byte order).

    Raises
    ------
    IDXError
        If the file is not IDX, is truncated, or has trailing bytes; the
        message names the file.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from fastsoftmax.datasets import read_idx, write_idx
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "a-idx2-ubyte.gz")
    ...     write_idx(path, np.arange(6, dtype=np.uint8).reshape(2, 3))
    ...     read_idx(path)
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        if f.peek(2)[:2] != _GZIP_MAGIC:
            return _read_idx_stream(f, path).copy()  # own the memory, writeable
        with _gzip_errors(path), gzip.GzipFile(fileobj=f) as stream:
            return _read_idx_stream(stream, path).copy()


def write_idx(path: str | os.PathLike[str], array: ArrayLike) -> None:
    """Write ``array`` as an IDX file, gzipped if ``path`` ends with ``.gz``.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file.
    array : array_like
        Of dtype uint8, int8, int16, int32, float32 or float64, at least 1-D.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from fastsoftmax.datasets import read_idx, write_idx
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "labels-idx1-ubyte")
    ...     write_idx(path, np.array([7, 2, 1], dtype=np.uint8))
    ...     os.path.getsize(path)  # 8-byte header + 3 labels
    11
    """
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in _IDX_TYPES.items()}
    dtype = array.dtype.newbyteorder("=")
    if dtype not in codes or array.ndim == 0:
        raise ValueError(
            f"array must be at least 1-D of dtype uint8, int8, int16, int32, float32 or "
            f"float64, got a {array.ndim}-D array of dtype {array.dtype}"
        )
    header = struct.pack(f">HBB{array.ndim}I", 0, codes[dtype], array.ndim, *array.shape)
    data = header + array.astype(dtype.newbyteorder(">"), copy=False).tobytes()
    if os.fspath(path).endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    with open(path, "wb") as f:
        f.write(data)


# --------------------------------------------------------------------------- MNIST files


def get_cache_dir() -> Path:
    """Return the per-user cache directory of fastsoftmax (it may not exist).

    ``$XDG_CACHE_HOME/fastsoftmax`` if ``XDG_CACHE_HOME`` is set, else
    ``~/.cache/fastsoftmax``.

    Examples
    --------
    >>> get_cache_dir().name
    'fastsoftmax'
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastsoftmax"


def _search_dirs(data_home: str | os.PathLike[str] | None) -> list[Path]:
    """The folders to look in, in order: each root, then its ``mnist/``."""
    roots = []
    if data_home is not None:
        roots.append(Path(data_home).expanduser())
    if os.environ.get("FASTSOFTMAX_DATA"):
        roots.append(Path(os.environ["FASTSOFTMAX_DATA"]).expanduser())
    roots.append(get_cache_dir())
    dirs = []
    for root in roots:
        for d in (root, root / "mnist"):
            if d not in dirs:
                dirs.append(d)
    return dirs


def _stored_size_limit(size: int) -> int:
    """The most bytes a file of ``size`` bytes takes stored raw or gzipped.

    Deflate adds 5 bytes per stored block of 64 KiB to incompressible data; the
    rest is room for gzip's header (which may hold a file name) and trailer.
    """
    return size + 5 * (size // 65535 + 1) + 65536


def _fetch(url: str, limit: int, progress: bool) -> bytes | bytearray:
    """The body of ``url``, read in chunks within :data:`DEADLINE` seconds.

    Raises TimeoutError past the deadline, IDXError if the body (or the size
    the server announces) is larger than ``limit`` bytes, and what urlopen
    raises.
    """
    from tqdm.auto import tqdm

    deadline = time.monotonic() + DEADLINE
    with urllib.request.urlopen(url, timeout=min(TIMEOUT, DEADLINE)) as response:
        length = response.headers.get("Content-Length", "")
        total = int(length) if length.isdigit() else None
        if total is not None and total > limit:
            raise IDXError(f"the server announces {total} bytes, more than {limit} expected")
        data = bytearray()
        name = url.rsplit("/", 1)[-1]
        with tqdm(
            total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
            disable=not progress,
        ) as bar:
            # read1: whatever has arrived, so that a trickle cannot outlive the deadline
            while chunk := response.read1(_CHUNK):
                data += chunk
                bar.update(len(chunk))
                if len(data) > limit:
                    raise IDXError(f"more than the {limit} bytes expected")
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"timed out: the download did not finish within {DEADLINE:g} s "
                        f"({len(data)} of {total or 'unknown'} bytes received)"
                    )
    if total is not None and len(data) < total:
        raise http.client.IncompleteRead(bytes(data[-16:]), total - len(data))
    return data


def _check(name: str, raw: bytes | bytearray) -> None:
    """Verify the decompressed bytes of MNIST file ``name``; raise IDXError if wrong."""
    md5, size = MNIST_FILES[name]
    if len(raw) != size:
        raise IDXError(f"{len(raw)} bytes, expected {size} (incomplete, or not {name})")
    digest = hashlib.md5(raw).hexdigest()
    if digest != md5:
        raise IDXError(f"MD5 checksum {digest} does not match {name}'s {md5}")


@functools.lru_cache(maxsize=8)
def _load_verified(
    path: str, mtime_ns: int, size: int, name: str, checksums: tuple[Any, ...]
) -> np.ndarray:
    """Read, verify and parse one MNIST file; cached per (path, mtime, size).

    ``checksums`` is part of the key so that a changed table is never served
    stale results.  The returned array is read-only: callers copy it.
    """
    size = MNIST_FILES[name][1]
    with open(path, "rb") as f:
        data = _read_bounded(f, _stored_size_limit(size))
    raw = _decompress(data, path, size)
    try:
        _check(name, raw)
    except IDXError as exc:
        raise IDXError(f"{path}: {exc}") from None
    array = _parse_idx(raw, path)
    array.flags.writeable = False
    return array


def _read_verified(path: Path, name: str) -> np.ndarray:
    st = os.stat(path)
    return _load_verified(
        str(path), st.st_mtime_ns, st.st_size, name, tuple(sorted(MNIST_FILES.items()))
    )


def _find(name: str, dirs: list[Path]) -> np.ndarray | None:
    """First valid copy of ``name`` in ``dirs``; invalid copies are reported and skipped."""
    for d in dirs:
        for candidate in (d / name, d / f"{name}.gz"):
            if not candidate.is_file():
                continue
            try:
                return _read_verified(candidate, name)
            except (IDXError, OSError) as exc:
                warnings.warn(f"ignoring unusable MNIST file: {exc}", stacklevel=4)
    return None


def _download(
    name: str, target_dir: Path, unreachable: set[str], progress: bool = False
) -> np.ndarray:
    """Fetch ``name`` from the first mirror that delivers a verified copy.

    Returns the parsed array, or raises DataNotFoundError listing every
    mirror's failure.  Mirrors that failed at the network level are added to
    the set ``unreachable`` and not tried again for the other files, so that
    being offline costs one timeout per mirror, not one per file.
    ``progress`` shows a progress bar with the size (tqdm, on stderr).
    """
    size = MNIST_FILES[name][1]
    failures = []
    for mirror in MIRRORS:
        url = f"{mirror}{name}.gz"
        if mirror in unreachable:
            continue
        _log.info("downloading %s", url)
        try:
            data = _fetch(url, _stored_size_limit(size), progress)
        except IDXError as exc:
            failures.append(f"{url}: {exc}")
            continue
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, cut transfers
            if isinstance(exc, OSError) and not isinstance(exc, urllib.error.HTTPError):
                unreachable.add(mirror)
            failures.append(f"{url}: {getattr(exc, 'reason', None) or exc}")
            continue
        try:
            _check(name, _decompress(data, url, size))
        except IDXError as exc:
            failures.append(f"{url}: {exc}")
            continue
        target_dir.mkdir(parents=True, exist_ok=True)
        final = target_dir / (f"{name}.gz" if data[:2] == _GZIP_MAGIC else name)
        # temp file in the same folder + os.replace: readers never see a partial file
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=target_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        # the other spelling (raw vs .gz) may be a stale corrupted copy that would
        # shadow the new one on the next search
        other = target_dir / (name if final.name.endswith(".gz") else f"{name}.gz")
        if other.is_file():
            with contextlib.suppress(OSError):
                other.unlink()
        return _read_verified(final, name)
    if not failures:
        failures = ["no reachable mirror" if MIRRORS else "no mirrors configured (MIRRORS is empty)"]
    raise DataNotFoundError("; ".join(failures))


def _mnist_arrays(
    data_home: str | os.PathLike[str] | None, download: bool, progress: bool
) -> dict[str, np.ndarray]:
    dirs = _search_dirs(data_home)
    # downloads go into data_home/mnist if given, else the per-user cache
    target = (Path(data_home).expanduser() if data_home is not None else get_cache_dir()) / "mnist"
    arrays: dict[str, np.ndarray] = {}
    missing: list[str] = []
    errors: list[str] = []
    unreachable: set[str] = set()
    for name in MNIST_FILES:
        array = _find(name, dirs)
        if array is None and download:
            try:
                array = _download(name, target, unreachable, progress)
            except DataNotFoundError as exc:
                errors.append(str(exc))
        if array is None:
            missing.append(name)
        else:
            arrays[name] = array
    if missing:
        error = DataNotFoundError()
        error.missing, error.searched = missing, dirs
        error.download_failures = errors if download else None
        error.args = (_not_found_message(error, "load_mnist(data_home=DIR)", "download=False"),)
        raise error
    return arrays


def _not_found_message(
    error: DataNotFoundError, data_dir_option: str, no_download_option: str
) -> str:
    """The message of a :class:`DataNotFoundError`, naming the caller's own options."""
    looked = ", ".join(str(d) for d in error.searched)
    how = (
        f"{no_download_option}, so nothing was downloaded"
        if error.download_failures is None
        else "download failed: " + "; ".join(error.download_failures)
    )
    return (
        f"MNIST files not found: {', '.join(error.missing)} (raw or .gz). Looked in: {looked}. "
        f"{how}. To use existing files, pass {data_dir_option} or set the "
        "environment variable FASTSOFTMAX_DATA=DIR, where DIR holds the four IDX files "
        "or a mnist/ folder with them."
    )


def _check_dtype(dtype: DTypeLike) -> str:
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    return name


def _scale(X: np.ndarray, dtype: str, maxval: int) -> np.ndarray:
    """uint8 -> the raw values (a copy); float -> values / maxval in [0, 1]."""
    if dtype == "uint8":
        return np.array(X, dtype=np.uint8)
    return np.divide(X, maxval, dtype=dtype)


def load_mnist(
    data_home: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    dtype: DTypeLike = "uint8",
    return_X_y: bool = False,
    progress: bool = True,
) -> Bunch | tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load the MNIST handwritten digits (60,000 training and 10,000 test images).

    Parameters
    ----------
    data_home : str or os.PathLike, optional
        A folder holding the four IDX files (raw or ``.gz``) or a ``mnist/``
        folder with them; searched first.  Then ``$FASTSOFTMAX_DATA``, then
        :func:`get_cache_dir`.  Downloads go to ``data_home/mnist`` if given,
        else to the cache.
    download : bool, default True
        Download missing files from :data:`MIRRORS`.
    dtype : {"uint8", "float32", "float64"}, default "uint8"
        ``"uint8"``: the raw pixels 0..255; a float type: pixels / 255.
    return_X_y : bool, default False
        Return ``(X_train, y_train, X_test, y_test)`` instead of a
        :class:`Bunch`.
    progress : bool, default True
        Show a progress bar with the size of each file downloaded (tqdm, on
        stderr).  Each download must finish within :data:`DEADLINE` seconds.

    Returns
    -------
    Bunch or tuple
        ``X_train`` (60000, 784), ``y_train`` (60000,) int64, ``X_test``
        (10000, 784), ``y_test`` (10000,) int64; the Bunch also has
        ``image_shape`` ``(28, 28)``, ``classes`` and ``name``.

    Raises
    ------
    DataNotFoundError
        If a file is neither found nor downloadable; the message says where
        it looked and how to point at existing files.

    Examples
    --------
    >>> mnist = load_mnist(dtype="float32")  # doctest: +SKIP
    >>> mnist.X_train.shape, mnist.X_train.dtype, mnist.y_train[:5]  # doctest: +SKIP
    ((60000, 784), dtype('float32'), array([5, 0, 4, 1, 9]))
    """
    dtype = _check_dtype(dtype)
    arrays = _mnist_arrays(data_home, download, progress)
    images = {"train": arrays["train-images-idx3-ubyte"], "test": arrays["t10k-images-idx3-ubyte"]}
    labels = {"train": arrays["train-labels-idx1-ubyte"], "test": arrays["t10k-labels-idx1-ubyte"]}
    out = {}
    for part in ("train", "test"):
        X, y = images[part], labels[part]
        # the checksums pin the content, but a patched table (tests) must still give sane shapes
        if X.ndim != 3 or y.ndim != 1 or X.shape[0] != y.shape[0]:
            raise IDXError(
                f"MNIST {part} files disagree: images of shape {X.shape}, labels of shape {y.shape}"
            )
        out[f"X_{part}"] = _scale(X.reshape(X.shape[0], -1), dtype, 255)
        out[f"y_{part}"] = y.astype(np.int64)
    if return_X_y:
        return out["X_train"], out["y_train"], out["X_test"], out["y_test"]
    return Bunch(
        **out, image_shape=tuple(images["train"].shape[1:]), classes=np.arange(10), name="mnist"
    )


# --------------------------------------------------------------------------- digits


def load_digits(
    *,
    dtype: DTypeLike = "float32",
    test_size: float = 0.2,
    random_state: int | None = 0,
    return_X_y: bool = False,
) -> Bunch | tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load scikit-learn's 8x8 digits (1,797 images), split into train and test.

    A small data set that needs no download, for quick runs and tests.

    Parameters
    ----------
    dtype : {"float32", "float64", "uint8"}, default "float32"
        ``"uint8"``: the raw values 0..16; a float type: values / 16.
    test_size : float, default 0.2
        Fraction of the images held out as the test set (a seeded shuffle).
    random_state : int, default 0
        Seed of the shuffle; the split is the same on every call.
    return_X_y : bool, default False
        Return ``(X_train, y_train, X_test, y_test)`` instead of a Bunch.

    Returns
    -------
    Bunch or tuple
        Like :func:`load_mnist`, with rows of 64 and ``image_shape`` (8, 8).

    Raises
    ------
    ImportError
        If scikit-learn is not installed.

    Examples
    --------
    >>> X_train, y_train, X_test, y_test = load_digits(return_X_y=True)
    >>> X_train.shape, X_train.dtype, float(X_train.max())
    ((1437, 64), dtype('float32'), 1.0)
    >>> sorted(set(y_test.tolist())) == list(range(10))
    True
    """
    dtype = _check_dtype(dtype)
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as exc:
        raise ImportError(
            "load_digits needs scikit-learn (pip install scikit-learn); "
            "load_mnist needs nothing extra"
        ) from exc
    X, y = sk_load_digits(return_X_y=True)
    order = np.random.default_rng(random_state).permutation(len(y))
    n_test = math.ceil(test_size * len(y))  # as scikit-learn's train_test_split
    test, train = order[:n_test], order[n_test:]
    X = X.astype(np.uint8)  # the values are the integers 0..16
    out = {
        "X_train": _scale(X[train], dtype, 16),
        "y_train": y[train].astype(np.int64),
        "X_test": _scale(X[test], dtype, 16),
        "y_test": y[test].astype(np.int64),
    }
    if return_X_y:
        return out["X_train"], out["y_train"], out["X_test"], out["y_test"]
    return Bunch(**out, image_shape=(8, 8), classes=np.arange(10), name="digits")
