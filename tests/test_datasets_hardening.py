"""Issue 16, items 12, 13 and 15: the MNIST download and the IDX reader under attack.

A misbehaving HTTP server on 127.0.0.1 (started and stopped by each test)
trickles bytes, announces huge sizes or serves gzip bombs; crafted IDX headers
declare absurd shapes.  Nothing here touches the internet, and every test is
bounded in time.
"""

import contextlib
import gzip
import re
import struct
import time
import tracemalloc

import numpy as np
import pytest

from fastsoftmax import datasets
from fastsoftmax.datasets import DataNotFoundError, IDXError, load_mnist, read_idx

# the fixture files, the file server and the autouse fixture `isolated` (no real data,
# cache or mirrors) of the download tests
from test_download import NAMES, RAW, Server, isolated, write_files  # noqa: F401

MiB = 1 << 20
# 32 MiB of zeros in about 32 kB: served or stored in place of a 20-byte file
BOMB = gzip.compress(bytes(32 * MiB), compresslevel=9)


def _reply(handler, body):
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _huge(handler):
    """Announce a gigabyte, send nothing."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(1 << 30))
    handler.end_headers()
    time.sleep(3)


def _trickle(handler):
    """1 byte every 20 ms, 150 bytes: 3 s in all."""
    handler.send_response(200)
    handler.send_header("Content-Length", "150")
    handler.end_headers()
    with contextlib.suppress(OSError):  # the client hung up
        for _ in range(150):
            handler.wfile.write(b"\0")
            handler.wfile.flush()
            time.sleep(0.02)


@pytest.fixture
def server(tmp_path):
    """good/ serves the fixture files; bomb/, huge/ and trickle/ misbehave."""
    write_files(tmp_path / "www" / "good")
    routes = {"/bomb/": lambda handler: _reply(handler, BOMB), "/huge/": _huge,
              "/trickle/": _trickle}
    with Server(tmp_path / "www", routes) as srv:
        yield srv


def peak_memory(function, *args, **kwargs):
    """(result or exception, peak bytes allocated by Python during the call)."""
    tracemalloc.start()
    try:
        try:
            result = function(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - returned for the caller to check
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ----------------------------------------------------------------------------- item 12: deadline


def test_a_trickling_mirror_is_abandoned_at_the_deadline(tmp_path, server, monkeypatch):
    monkeypatch.setattr(datasets, "MIRRORS", (server.url("trickle/"),))
    monkeypatch.setattr(datasets, "DEADLINE", 0.5, raising=False)  # absent before the fix
    start = time.perf_counter()
    with pytest.raises(DataNotFoundError, match=r"timed out.*within 0.5 s"):
        load_mnist(tmp_path)
    # one deadline for the mirror (then it counts as unreachable), not one per file
    assert time.perf_counter() - start < 2.0
    assert len(server.requests) == 1
    assert not (tmp_path / "mnist").exists() or list((tmp_path / "mnist").iterdir()) == []


def test_a_trickling_mirror_falls_back_to_the_next(tmp_path, server, monkeypatch):
    monkeypatch.setattr(datasets, "MIRRORS", (server.url("trickle/"), server.url("good/")))
    monkeypatch.setattr(datasets, "DEADLINE", 0.3, raising=False)  # absent before the fix
    start = time.perf_counter()
    X, *_ = load_mnist(tmp_path, return_X_y=True)
    assert X.shape == (6, 16)
    assert time.perf_counter() - start < 2.0


def test_the_download_shows_a_progress_bar_with_the_size(tmp_path, server, monkeypatch, capsys):
    monkeypatch.setattr(datasets, "MIRRORS", (server.url("good/"),))
    load_mnist(tmp_path)
    err = capsys.readouterr().err
    for name in NAMES:
        size = len(gzip.compress(RAW[name]))
        done = re.search(rf"{name}\.gz: 100%.*? ([0-9.]+)/([0-9.]+) ", err)
        assert done, err
        assert float(done[1]) == float(done[2]) == size


def test_progress_false_shows_no_bar(tmp_path, server, monkeypatch, capsys):
    monkeypatch.setattr(datasets, "MIRRORS", (server.url("good/"),))
    load_mnist(tmp_path, progress=False)
    err = capsys.readouterr().err  # may hold the CLI's "downloading" log lines, not a bar
    assert "%|" not in err and "B/s" not in err, err


# ----------------------------------------------------------------------------- item 13: bombs


def test_a_gzip_bomb_from_a_mirror_is_not_inflated(tmp_path, server, monkeypatch):
    monkeypatch.setattr(datasets, "MIRRORS", (server.url("bomb/"), server.url("good/")))
    result, peak = peak_memory(load_mnist, tmp_path, return_X_y=True)
    assert not isinstance(result, Exception), result
    assert result[0].shape == (6, 16)  # the good mirror's copy
    assert peak < 4 * MiB, f"peak {peak / MiB:.1f} MiB for 20-byte files"


def test_a_gzip_bomb_is_reported_with_the_expected_size(tmp_path, server, monkeypatch):
    monkeypatch.setattr(datasets, "MIRRORS", (server.url("bomb/"),))
    with pytest.raises(DataNotFoundError, match=r"more than the \d+ bytes expected"):
        load_mnist(tmp_path)


def test_an_announced_huge_body_is_refused_before_reading(tmp_path, server, monkeypatch):
    monkeypatch.setattr(datasets, "MIRRORS", (server.url("huge/"),))
    start = time.perf_counter()
    with pytest.raises(DataNotFoundError, match=r"announces 1073741824 bytes"):
        load_mnist(tmp_path)
    assert time.perf_counter() - start < 2.0


def test_a_gzip_bomb_in_the_cache_is_skipped_cheaply(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in NAMES:
        (folder / f"{name}.gz").write_bytes(gzip.compress(RAW[name]))
    (folder / f"{NAMES[1]}.gz").write_bytes(BOMB)

    def load():
        with pytest.warns(UserWarning, match="ignoring unusable MNIST file.*more than"):
            with pytest.raises(DataNotFoundError):
                load_mnist(tmp_path, download=False)

    result, peak = peak_memory(load)
    assert result is None
    assert peak < 4 * MiB, f"peak {peak / MiB:.1f} MiB"


# ----------------------------------------------------------------------------- item 15: IDX sizes


def header(*shape, code=0x08):
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


@pytest.mark.parametrize(
    "shape, code, needs",
    [
        ((65536,) * 4, 0x08, 20 + 2**64),
        ((2**32 - 1,) * 2, 0x08, 12 + (2**32 - 1) ** 2),
        ((2**32 - 1,) * 3, 0x0E, 16 + 8 * (2**32 - 1) ** 3),
        ((2**31, 2), 0x0C, 12 + 4 * 2**32),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_huge_declared_shapes_give_an_idx_error_with_the_true_size(
    tmp_path, shape, code, needs, gz
):
    data = header(*shape, code=code) + bytes(100)
    path = tmp_path / ("f.gz" if gz else "f")
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(IDXError) as info:
        read_idx(path)
    assert type(info.value) is IDXError
    message = str(info.value)
    assert f"needs {needs} bytes" in message and "truncated" in message
    assert "-" not in message.split("needs")[1]  # no wrapped-around negative count
    assert str(path) in message


def test_a_gzip_idx_with_a_bomb_of_trailing_bytes_stops_reading(tmp_path):
    path = tmp_path / "bomb-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(header(10) + bytes(32 * MiB), compresslevel=9))
    result, peak = peak_memory(read_idx, path)
    assert type(result) is IDXError and "trailing bytes" in str(result), result
    assert "more than 18" in str(result)
    assert peak < 4 * MiB, f"peak {peak / MiB:.1f} MiB"


@pytest.mark.parametrize("gz", [False, True])
def test_an_empty_shape_too_large_for_numpy_is_an_idx_error(tmp_path, gz):
    data = header(0, 2**31, 2**31, 2**31)
    path = tmp_path / ("e.gz" if gz else "e")
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(IDXError, match=r"shape \(0, 2147483648, .*too large for a NumPy array"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_still_reads_and_reports_exact_sizes(tmp_path, gz):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    data = header(2, 3, 4) + array.tobytes()
    path = tmp_path / ("a.gz" if gz else "a")
    path.write_bytes(gzip.compress(data) if gz else data)
    np.testing.assert_array_equal(read_idx(path), array)
    path.write_bytes(gzip.compress(data[:-1]) if gz else data[:-1])
    match = r"truncated: shape \(2, 3, 4\) of u1 needs 40 bytes, found 39"
    with pytest.raises(IDXError, match=match):
        read_idx(path)
    path.write_bytes(gzip.compress(data + b"x") if gz else data + b"x")
    with pytest.raises(IDXError, match="has trailing bytes"):
        read_idx(path)
