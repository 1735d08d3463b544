"""Fuzz tests (issue 16, "Done when"): ``load()`` and ``read_idx()`` on hostile files.

Hypothesis damages valid model files byte by byte, crafts manifests, arrays
and .npy headers, and writes IDX files with random headers (raw and gzipped).
Whatever the file, the readers may only return a result or raise their
documented error (ModelFormatError, IDXError), within a time limit and
without allocating more than a bound derived from the file's size.  The
examples are derandomized, so every run tries the same files, in a few
seconds.
"""

import contextlib
import gzip
import io
import json
import os
import re
import signal
import struct
import tempfile
import threading
import tracemalloc
import zipfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fastsoftmax import LogisticRegression, SoftmaxRegression  # noqa: E402
from fastsoftmax.datasets import IDXError, read_idx  # noqa: E402
from fastsoftmax.persistence import ModelFormatError, load  # noqa: E402

MiB = 1 << 20
#: Seconds any one read may take before it counts as a hang.
TIME_LIMIT = 5.0
#: Bytes one compressed byte may inflate to (deflate's limit is about 1032).
INFLATION = 1100

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", 60)),
    deadline=None,  # the time limit below interrupts real hangs instead
    derandomize="FUZZ_EXAMPLES" not in os.environ,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@contextlib.contextmanager
def time_limit(seconds):
    """Raise TimeoutError in the main thread if the block runs longer than ``seconds``."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    if not hasattr(signal, "setitimer") or not in_main_thread:
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"took more than {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def bounded_call(function, path, allowed, memory_bound):
    """Call ``function(path)``: return its result or its allowed error, checking the bounds."""
    tracemalloc.start()
    try:
        with time_limit(TIME_LIMIT):
            try:
                result = function(path)
            except allowed as exc:
                result = exc
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= memory_bound, f"peak {peak} bytes for a file of {os.path.getsize(path)}"
    return result


# ----------------------------------------------------------------------------- model files


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _models():
    rng = np.random.default_rng(0)
    y = np.arange(30) % 3
    X = rng.standard_normal((30, 4)).astype(np.float32)
    softmax = SoftmaxRegression(optimizer="adam", max_epochs=1, random_state=0).fit(X, y)
    binary = LogisticRegression(class_weight={0: 2.0}).fit(X.astype(np.float64), y % 2)
    return softmax, binary


SOFTMAX, BINARY = _models()


def model_bytes(estimator, compression):
    """(the model file with its members stored or deflated, {member name: bytes})."""
    with tempfile.TemporaryDirectory() as tmp:
        path = estimator.save(os.path.join(tmp, "valid.npz"))
        with zipfile.ZipFile(path) as archive:
            contents = {info.filename: archive.read(info) for info in archive.infolist()}
        write_zip(path, contents, compression)
        with open(path, "rb") as f:
            return f.read(), contents


def write_zip(path, contents, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in contents.items():
            archive.writestr(name, data)


VALID = {
    (name, compression): model_bytes(estimator, compression)
    for name, estimator in (("softmax", SOFTMAX), ("binary", BINARY))
    for compression in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
}


def check_load(path):
    """load() returns a usable estimator or raises ModelFormatError, within the bounds."""
    bound = INFLATION * os.path.getsize(path) + 4 * MiB
    result = bounded_call(load, path, ModelFormatError, bound)
    if isinstance(result, ModelFormatError):
        assert type(result) is ModelFormatError
        return
    assert isinstance(result, (SoftmaxRegression, LogisticRegression))
    if hasattr(result, "coef_"):  # validated as fit leaves it: it predicts
        X = np.zeros((2, result.n_features_in_), dtype=result.coef_.dtype)
        assert result.predict_proba(X).shape == (2, len(result.classes_))


@FUZZ
@given(
    which=st.sampled_from(sorted(VALID)),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.floats(0, 1)),
)
def test_load_survives_damaged_bytes(folder, which, edits, cut):
    raw = bytearray(VALID[which][0])
    for where, value in edits:
        raw[int(where * len(raw))] = value
    if cut is not None:
        raw = raw[: int(cut * len(raw))]
    path = folder / "damaged.npz"
    path.write_bytes(bytes(raw))
    check_load(path)


KEYS = ["__array__", "__tuple__", "__dict__", "__learner__", "__schedule__", "__float__",
        "__scalar__", "object", "t", "state", "kind", "learning_rate", "a0", "a1"]
ATTRIBUTES = ["coef_", "intercept_", "classes_", "n_features_in_", "n_iter_", "history_",
              "_learner", "best_epoch_", "predict", "x_"]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**65), 2**65) | st.floats()
    | st.sampled_from(["a0", "a1", "a2", "nan", "inf", "sgd", "adam", "auto", ""]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS), children, max_size=3),
    max_leaves=12,
)
ARRAYS = st.one_of(
    st.builds(
        lambda dtype, shape: np.zeros(shape, dtype),
        st.sampled_from(["f4", "f8", ">f8", "i8", "u1", "?", "c16", "U3", "S2"]),
        st.lists(st.integers(0, 4), max_size=3).map(tuple),
    ),
    st.builds(lambda v: np.array(v), st.sampled_from([np.nan, np.inf, 0.0, 1.5, "x"])),
)


@FUZZ
@given(
    which=st.sampled_from(sorted(VALID)),
    params=st.dictionaries(st.sampled_from(["max_epochs", "optimizer", "l2", "C", "schedule",
                                            "learning_rate", "class_weight", "random_state"]),
                           JSON, max_size=2),
    attributes=st.dictionaries(st.sampled_from(ATTRIBUTES), JSON, max_size=3),
    arrays=st.dictionaries(st.sampled_from(["a0", "a1", "a2", "a3"]), ARRAYS, max_size=3),
)
def test_load_survives_crafted_manifests_and_arrays(folder, which, params, attributes, arrays):
    contents = dict(VALID[which][1])
    manifest = json.loads(str(np.load(io.BytesIO(contents["__manifest__.npy"]))))
    manifest["params"].update(params)
    manifest["attributes"].update(attributes)
    contents["__manifest__.npy"] = npy(np.array(json.dumps(manifest)))
    for key, value in arrays.items():
        contents[f"{key}.npy"] = npy(value)
    path = folder / "crafted.npz"
    write_zip(path, contents)
    check_load(path)


def npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


DESCRS = ["<f8", "<f4", ">f8", "|u1", "<i8", "|O", "<U5", "|S3", "<c16", "|V8", "[('a', '<f8')]"]


@FUZZ
@given(
    which=st.sampled_from(sorted(VALID)),
    member=st.sampled_from(["a0", "a1", "a2", "__manifest__", "__version__", "__format__"]),
    descr=st.sampled_from(DESCRS),
    shape=st.lists(st.one_of(st.integers(0, 8), st.integers(0, 2**64)), max_size=4).map(tuple),
    payload=st.integers(0, 300),
    compression=st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]),
)
def test_load_survives_crafted_npy_headers(
    folder, which, member, descr, shape, payload, compression
):
    contents = dict(VALID[which][1])
    header = io.BytesIO()
    fields = f"{{'descr': {descr if descr.startswith('[') else repr(descr)}, " \
             f"'fortran_order': False, 'shape': {shape!r}, }}"
    text = fields.ljust(118) + "\n"
    header.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1"))
    contents[f"{member}.npy"] = header.getvalue() + bytes(payload)
    path = folder / "header.npz"
    write_zip(path, contents, compression)
    check_load(path)


def test_load_survives_special_files(folder):
    assert isinstance(bounded_call(load, folder, ModelFormatError, 4 * MiB), ModelFormatError)
    if hasattr(os, "mkfifo"):
        fifo = folder / "pipe.npz"
        os.mkfifo(fifo)
        assert isinstance(bounded_call(load, fifo, ModelFormatError, 4 * MiB), ModelFormatError)


# ----------------------------------------------------------------------------- IDX files


ITEMSIZE = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}


def check_read_idx(path, gz, code, dims):
    """read_idx returns the declared array or raises IDXError, within the bounds.

    Memory: the array (copied twice at most: byte order, then ownership) of
    the size the header declares, and never more than the file can inflate to.
    ``dims`` is None when the header takes its dimensions from the payload.
    """
    size = os.path.getsize(path)
    inflatable = INFLATION * size if gz else size
    declared = None if dims is None else int(np.prod(dims, dtype=object)) * ITEMSIZE.get(code, 8)
    bound = 3 * (inflatable if declared is None else min(inflatable, declared)) + 4 * MiB
    result = bounded_call(read_idx, path, IDXError, bound)
    needs = re.search(r"needs (-?\d+) bytes", str(result))
    if needs and dims is not None:  # the size computed from the header, not a wrapped one
        assert int(needs[1]) == 4 + 4 * len(dims) + declared, str(result)
    if not isinstance(result, IDXError):
        assert isinstance(result, np.ndarray)
        if dims is not None:
            assert result.shape == tuple(dims) and result.itemsize == ITEMSIZE[code]


@FUZZ
@given(
    zero=st.sampled_from([b"\0\0", b"\0\1", b"\xff\xff"]),
    code=st.one_of(st.sampled_from(sorted(ITEMSIZE)), st.integers(0, 255)),
    ndim=st.one_of(st.none(), st.integers(0, 255)),  # None: as many as dims
    dims=st.lists(st.one_of(st.integers(0, 6), st.integers(2**15, 2**32 - 1)), max_size=5),
    payload=st.integers(0, 400),
    gz=st.booleans(),
    cut=st.one_of(st.none(), st.integers(0, 40)),
)
@example(zero=b"\0\0", code=8, ndim=None, dims=[65536] * 4, payload=0, gz=False, cut=None)
@example(zero=b"\0\0", code=8, ndim=None, dims=[2**32 - 1] * 2, payload=0, gz=True, cut=None)
@example(zero=b"\0\0", code=8, ndim=None, dims=[0] + [2**31] * 3, payload=0, gz=False, cut=None)
def test_read_idx_survives_damaged_headers(folder, zero, code, ndim, dims, payload, gz, cut):
    ndim = len(dims) if ndim is None else ndim
    data = zero + bytes([code, ndim]) + b"".join(struct.pack(">I", d) for d in dims)
    data += bytes(range(256)) * (payload // 256) + bytes(range(payload % 256))
    if gz:
        data = gzip.compress(data)
    if cut is not None:
        data = data[: max(0, len(data) - cut)]
    path = folder / ("f-idx.gz" if gz else "f-idx")
    path.write_bytes(data)
    check_read_idx(path, gz, code, dims[:ndim] if len(dims) >= ndim else None)


@FUZZ
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), extra=st.integers(0, 32 * MiB))
@example(shape=[2, 3], extra=32 * MiB)
def test_read_idx_stops_at_what_the_header_declares(folder, shape, extra):
    data = bytes([0, 0, 0x08, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape)
    data += bytes(int(np.prod(shape)) + extra)
    path = folder / "long-idx.gz"
    path.write_bytes(gzip.compress(data, compresslevel=1))
    check_read_idx(path, True, 0x08, shape)
