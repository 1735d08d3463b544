"""The MNIST search path and download path, against a local HTTP server.

Small IDX files are generated here byte by byte (independently of the
package's writer) and served from 127.0.0.1; the checksum table is patched to
match them.  No test touches the internet.
"""

import gzip
import hashlib
import http.server
import os
import socket
import struct
import threading
import time

import numpy as np
import pytest

from fastsoftmax import datasets
from fastsoftmax.datasets import DataNotFoundError, load_mnist

NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def idx_bytes(array):
    """IDX bytes of a uint8 array, written out by hand from the format spec."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    return header + array.tobytes()


def make_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (6, 4, 4), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 6, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 4, 4), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 3, dtype=np.uint8),
    }


ARRAYS = make_arrays()
RAW = {name: idx_bytes(a) for name, a in ARRAYS.items()}
GOOD_TABLE = {name: (hashlib.md5(raw).hexdigest(), len(raw)) for name, raw in RAW.items()}


def write_files(folder, *, gz=True, only=NAMES, content=None):
    folder.mkdir(parents=True, exist_ok=True)
    for name in only:
        raw = RAW[name] if content is None else content
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)


def assert_is_fixture_data(X_train, y_train, X_test, y_test):
    np.testing.assert_array_equal(X_train, ARRAYS["train-images-idx3-ubyte"].reshape(6, 16))
    np.testing.assert_array_equal(y_train, ARRAYS["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(X_test, ARRAYS["t10k-images-idx3-ubyte"].reshape(3, 16))
    np.testing.assert_array_equal(y_test, ARRAYS["t10k-labels-idx1-ubyte"])


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real data, no real cache, no real mirrors, the fixture's checksums."""
    monkeypatch.delenv("FASTSOFTMAX_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(datasets, "MNIST_FILES", dict(GOOD_TABLE))
    monkeypatch.setattr(datasets, "MIRRORS", ())
    monkeypatch.setattr(datasets, "TIMEOUT", 5.0)


class Server:
    """A static file server on 127.0.0.1 that counts requests.

    ``routes`` maps a path prefix to a function ``reply(handler)`` that
    answers the requests under it (to misbehave); other paths get files.
    """

    def __init__(self, root, routes=None):
        self.root = root
        self.requests = []
        server = self
        routes = {"/cut/": _cut, **(routes or {})}

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):
                server.requests.append(self.path)
                for prefix, reply in routes.items():
                    if self.path.startswith(prefix):
                        return reply(self)
                return super().do_GET()

            def log_message(self, *args):  # keep pytest output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False  # don't wait for a reply the client gave up on
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def url(self, sub=""):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{sub}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def _cut(handler):
    """Promise 1000 bytes, send 10, hang up."""
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    handler.wfile.write(b"\x1f\x8b" + bytes(8))
    handler.close_connection = True


@pytest.fixture
def server(tmp_path):
    """Serves good/ (valid files), bad/ (wrong content) and short/ (truncated gzip)."""
    root = tmp_path / "www"
    write_files(root / "good")
    write_files(root / "bad", content=RAW["train-images-idx3-ubyte"][::-1])
    short = root / "short"
    short.mkdir()
    for name in NAMES:
        data = gzip.compress(RAW[name])
        (short / f"{name}.gz").write_bytes(data[: len(data) // 2])
    with Server(root) as srv:
        yield srv


def unreachable_url():
    """A URL on a local port that nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# ----------------------------------------------------------------------------- search path


def test_finds_files_in_data_home_raw_and_gz(tmp_path):
    write_files(tmp_path / "d", gz=False, only=NAMES[:2])
    write_files(tmp_path / "d", gz=True, only=NAMES[2:])
    assert_is_fixture_data(*load_mnist(tmp_path / "d", download=False, return_X_y=True))


def test_finds_mnist_subfolder_of_env_dir(tmp_path, monkeypatch):
    write_files(tmp_path / "env" / "mnist")
    monkeypatch.setenv("FASTSOFTMAX_DATA", str(tmp_path / "env"))
    bunch = load_mnist(download=False)
    assert_is_fixture_data(bunch.X_train, bunch.y_train, bunch.X_test, bunch.y_test)
    assert bunch.image_shape == (4, 4)
    assert bunch.y_train.dtype == np.int64 and bunch.X_train.dtype == np.uint8


def test_finds_user_cache_dir(tmp_path):
    write_files(tmp_path / "xdg-cache" / "fastsoftmax" / "mnist")
    assert_is_fixture_data(*load_mnist(download=False, return_X_y=True))


def test_data_home_comes_before_env_before_cache(tmp_path, monkeypatch):
    for folder in ("home", "env", "xdg-cache/fastsoftmax"):
        write_files(tmp_path / folder)
    monkeypatch.setenv("FASTSOFTMAX_DATA", str(tmp_path / "env"))
    read = []
    original = datasets._read_verified
    monkeypatch.setattr(
        datasets, "_read_verified", lambda path, name: read.append(path) or original(path, name)
    )
    load_mnist(tmp_path / "home", download=False)
    assert {p.parent for p in read} == {tmp_path / "home"}
    read.clear()
    load_mnist(download=False)
    assert {p.parent for p in read} == {tmp_path / "env"}


def test_float32_is_pixels_over_255(tmp_path):
    write_files(tmp_path)
    X, _, Xt, _ = load_mnist(tmp_path, download=False, dtype="float32", return_X_y=True)
    assert X.dtype == np.float32 and Xt.dtype == np.float32
    expected = ARRAYS["train-images-idx3-ubyte"].reshape(6, 16).astype(np.float64) / 255.0
    np.testing.assert_allclose(X, expected, rtol=1e-6)


def test_returned_arrays_are_private_copies(tmp_path):
    write_files(tmp_path)
    X, *_ = load_mnist(tmp_path, download=False, return_X_y=True)
    X[:] = 0  # must not poison the in-process cache
    X2, *_ = load_mnist(tmp_path, download=False, return_X_y=True)
    np.testing.assert_array_equal(X2, ARRAYS["train-images-idx3-ubyte"].reshape(6, 16))


def test_bad_dtype_names_argument(tmp_path):
    with pytest.raises(ValueError, match="dtype must be one of uint8, float32, float64, got 'int8'"):
        load_mnist(tmp_path, dtype="int8")


def test_corrupted_local_copy_is_reported_and_skipped(tmp_path, monkeypatch):
    write_files(tmp_path / "home", only=NAMES[:1], content=b"\x00\x00\x08\x01garbage")
    write_files(tmp_path / "env")
    monkeypatch.setenv("FASTSOFTMAX_DATA", str(tmp_path / "env"))
    with pytest.warns(UserWarning, match="ignoring unusable MNIST file.*train-images-idx3-ubyte"):
        data = load_mnist(tmp_path / "home", download=False, return_X_y=True)
    assert_is_fixture_data(*data)


# ----------------------------------------------------------------------------- download


def test_download_writes_verified_files_atomically(tmp_path, server, monkeypatch):
    monkeypatch.setattr(datasets, "MIRRORS", (server.url("good/"),))
    data = load_mnist(tmp_path / "home", return_X_y=True)
    assert_is_fixture_data(*data)
    target = tmp_path / "home" / "mnist"
    assert sorted(p.name for p in target.iterdir()) == sorted(f"{n}.gz" for n in NAMES)
    for name in NAMES:  # the stored files are the served ones, complete
        assert gzip.decompress((target / f"{name}.gz").read_bytes()) == RAW[name]
    assert len(server.requests) == 4
    # a second call reads the cache and asks nobody
    assert_is_fixture_data(*load_mnist(tmp_path / "home", return_X_y=True))
    assert len(server.requests) == 4


def test_download_defaults_to_user_cache_and_logs(tmp_path, server, monkeypatch, caplog):
    monkeypatch.setattr(datasets, "MIRRORS", (server.url("good/"),))
    with caplog.at_level("INFO", logger="fastsoftmax.datasets"):
        load_mnist()
    assert [r.getMessage() for r in caplog.records] == [
        f"downloading {server.url('good/')}{name}.gz" for name in datasets.MNIST_FILES
    ]
    cached = tmp_path / "xdg-cache" / "fastsoftmax" / "mnist"
    assert sorted(p.name for p in cached.iterdir()) == sorted(f"{n}.gz" for n in NAMES)


def test_only_missing_files_are_downloaded(tmp_path, server, monkeypatch):
    write_files(tmp_path / "home", only=NAMES[1:])
    monkeypatch.setattr(datasets, "MIRRORS", (server.url("good/"),))
    assert_is_fixture_data(*load_mnist(tmp_path / "home", return_X_y=True))
    assert server.requests == [f"/good/{NAMES[0]}.gz"]


@pytest.mark.parametrize("broken", ["bad/", "short/", "cut/", "missing/"])
def test_bad_mirror_falls_back_to_next(tmp_path, server, monkeypatch, broken):
    monkeypatch.setattr(datasets, "MIRRORS", (server.url(broken), server.url("good/")))
    assert_is_fixture_data(*load_mnist(tmp_path, return_X_y=True))
    assert sum(r.startswith(f"/{broken}") for r in server.requests) == 4
    assert not list((tmp_path / "mnist").glob("*.part"))


@pytest.mark.parametrize(("broken", "reason"), [("bad/", "checksum|bytes"), ("short/", "gzip")])
def test_only_bad_mirrors_fail_and_write_nothing(tmp_path, server, monkeypatch, broken, reason):
    monkeypatch.setattr(datasets, "MIRRORS", (server.url(broken),))
    with pytest.raises(DataNotFoundError, match=reason):
        load_mnist(tmp_path / "home")
    target = tmp_path / "home" / "mnist"
    assert not target.exists() or list(target.iterdir()) == []


@pytest.mark.parametrize("how", ["garbage", "truncated-raw", "truncated-gz"])
def test_corrupted_cached_file_is_fetched_again(tmp_path, server, monkeypatch, how):
    target = tmp_path / "home" / "mnist"
    write_files(target)
    name = NAMES[0]
    if how == "garbage":
        (target / f"{name}.gz").write_bytes(gzip.compress(b"\x89PNG not an IDX file"))
    elif how == "truncated-raw":  # e.g. an interrupted copy
        (target / f"{name}.gz").unlink()
        (target / name).write_bytes(RAW[name][:-5])
    else:
        data = (target / f"{name}.gz").read_bytes()
        (target / f"{name}.gz").write_bytes(data[:-10])
    monkeypatch.setattr(datasets, "MIRRORS", (server.url("good/"),))
    with pytest.warns(UserWarning, match=f"ignoring unusable MNIST file.*{name}"):
        data = load_mnist(tmp_path / "home", return_X_y=True)
    assert_is_fixture_data(*data)
    assert server.requests == [f"/good/{name}.gz"]
    # the bad copy was replaced: no more warnings, no more requests
    assert sorted(p.name for p in target.iterdir()) == sorted(f"{n}.gz" for n in NAMES)
    assert gzip.decompress((target / f"{name}.gz").read_bytes()) == RAW[name]


def test_interrupted_write_leaves_no_file(tmp_path, server, monkeypatch):
    monkeypatch.setattr(datasets, "MIRRORS", (server.url("good/"),))

    def crash(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(datasets.os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        load_mnist(tmp_path / "home")
    # neither a final file nor a temporary one is left behind
    assert list((tmp_path / "home" / "mnist").iterdir()) == []


def test_offline_error_says_where_it_looked_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTSOFTMAX_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(datasets, "MIRRORS", (unreachable_url(),))
    with pytest.raises(DataNotFoundError) as info:
        load_mnist(tmp_path / "home")
    message = str(info.value)
    for where in (tmp_path / "home", tmp_path / "env", tmp_path / "xdg-cache" / "fastsoftmax"):
        assert str(where) in message
    assert "data_home=" in message and "FASTSOFTMAX_DATA" in message
    assert "refused" in message.lower()
    assert "\n" not in message  # one line


def test_download_false_asks_nobody(tmp_path, server, monkeypatch):
    monkeypatch.setattr(datasets, "MIRRORS", (server.url("good/"),))
    with pytest.raises(DataNotFoundError, match="download=False"):
        load_mnist(tmp_path, download=False)
    assert server.requests == []


def test_silent_mirror_times_out(tmp_path, monkeypatch):
    # a socket that listens but never answers: the connection opens, the read hangs
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        url = f"http://127.0.0.1:{s.getsockname()[1]}/"
        monkeypatch.setattr(datasets, "MIRRORS", (url,))
        monkeypatch.setattr(datasets, "TIMEOUT", 0.2)
        start = time.perf_counter()
        with pytest.raises(DataNotFoundError, match="timed out"):
            load_mnist(tmp_path)
    # one timeout for the mirror, not one per file
    assert time.perf_counter() - start < 0.7


def test_in_process_cache_rereads_changed_files(tmp_path, monkeypatch):
    write_files(tmp_path)
    assert_is_fixture_data(*load_mnist(tmp_path, download=False, return_X_y=True))
    other = make_arrays(seed=2)
    raw = idx_bytes(other[NAMES[1]])
    (tmp_path / f"{NAMES[1]}.gz").write_bytes(gzip.compress(raw))
    # a different mtime/size/table must not be served from the cache
    os.utime(tmp_path / f"{NAMES[1]}.gz", ns=(1, 1))
    table = dict(GOOD_TABLE)
    table[NAMES[1]] = (hashlib.md5(raw).hexdigest(), len(raw))
    monkeypatch.setattr(datasets, "MNIST_FILES", table)
    _, y, _, _ = load_mnist(tmp_path, download=False, return_X_y=True)
    np.testing.assert_array_equal(y, other[NAMES[1]])
