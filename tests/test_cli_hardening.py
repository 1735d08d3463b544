"""Issue 16, items 16 and 19: CLI inputs, the thread count and the backend context.

Each test here reproduces one finding of the adversarial testing of issue 16.
"""

import asyncio
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _threads

from test_cli import assert_one_line_error, run  # the CLI tests' helpers


def cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count()


# ----------------------------------------------------------------------------- CLI (item 16)


@pytest.fixture(scope="module")
def fitted_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    X, y = rng.random((40, 64)), np.arange(40) % 3
    path = tmp_path_factory.mktemp("model") / "fitted.npz"
    fastsoftmax.SoftmaxRegression(max_epochs=1).fit(X, y).save(path)
    return path


def test_predict_with_an_unfitted_model_is_a_one_line_error(tmp_path, capsys):
    path = fastsoftmax.SoftmaxRegression().save(tmp_path / "unfitted")
    np.save(tmp_path / "x.npy", np.zeros((2, 64)))
    code, out, err = run(capsys, "predict", path, str(tmp_path / "x.npy"))
    assert_one_line_error(code, err, "not fitted", "unfitted.npz")
    assert out == ""


def test_evaluate_with_an_unfitted_model_is_a_one_line_error(tmp_path, capsys):
    path = fastsoftmax.SoftmaxRegression().save(tmp_path / "unfitted")
    code, _, err = run(capsys, "evaluate", path, "--dataset", "digits")
    assert_one_line_error(code, err, "not fitted")


@pytest.mark.parametrize("seed", ["-1", "x", "1.5"])
def test_a_bad_seed_names_the_option(capsys, seed):
    code, _, err = run(capsys, "train", "--dataset", "digits", "--seed", seed)
    assert code == 2
    assert "Traceback" not in err
    assert "--seed" in err and repr(seed) in err


def test_predict_on_an_empty_npy_is_a_clear_error(fitted_path, tmp_path, capsys):
    np.save(tmp_path / "empty.npy", np.zeros((0, 64), np.float32))
    code, out, err = run(capsys, "predict", str(fitted_path), str(tmp_path / "empty.npy"))
    assert_one_line_error(code, err, "empty.npy", "no images", "(0, 64)")
    assert "reshape" not in err
    assert out == ""


def test_predict_on_an_empty_image_stack_is_a_clear_error(fitted_path, tmp_path, capsys):
    np.save(tmp_path / "empty.npy", np.zeros((0, 8, 8), np.uint8))
    code, _, err = run(capsys, "predict", str(fitted_path), str(tmp_path / "empty.npy"))
    assert_one_line_error(code, err, "no images")


def test_predict_on_a_npy_declaring_a_huge_shape_is_a_clear_error(fitted_path, tmp_path, capsys):
    path = tmp_path / "huge.npy"
    with open(path, "wb") as f:
        header = {"descr": "<f8", "fortran_order": False, "shape": (10**12, 64)}
        np.lib.format.write_array_header_1_0(f, header)
        f.write(bytes(640))
    code, _, err = run(capsys, "predict", str(fitted_path), str(path))
    assert_one_line_error(code, err, "huge.npy", "not a readable .npy file")


# ----------------------------------------------------------------------------- threads (item 16)


def import_with_threads(value):
    env = dict(os.environ, FASTSOFTMAX_NUM_THREADS=value)
    code = "import fastsoftmax; print(fastsoftmax.get_num_threads())"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("value", ["abc", "-5", "0"])
def test_a_bad_thread_count_in_the_environment_warns_and_uses_all_cores(value):
    result = import_with_threads(value)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "FASTSOFTMAX_NUM_THREADS" in result.stderr and repr(value) in result.stderr
    assert int(result.stdout) == cpu_count()


def test_a_good_thread_count_in_the_environment_is_used():
    result = import_with_threads("2")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == 2
    assert result.stderr == ""


@pytest.mark.parametrize("value, expected", [("abc", None), ("-5", None), ("3", 3), ("-1", None)])
def test_the_environment_is_read_at_first_use(monkeypatch, value, expected):
    monkeypatch.setenv("FASTSOFTMAX_NUM_THREADS", value)
    monkeypatch.setattr(_threads, "_num_threads", None)
    monkeypatch.setattr(_threads, "_env_threads", None)
    if expected is None and value != "-1":
        with pytest.warns(RuntimeWarning, match="FASTSOFTMAX_NUM_THREADS"):
            assert fastsoftmax.get_num_threads() == cpu_count()
    else:
        assert fastsoftmax.get_num_threads() == (expected or cpu_count())


@pytest.mark.parametrize("n", [np.int64(2), np.int32(2), np.uint8(2)])
def test_set_num_threads_accepts_numpy_integers(n):
    before = fastsoftmax.get_num_threads()
    try:
        fastsoftmax.set_num_threads(n)
        assert fastsoftmax.get_num_threads() == 2
        assert type(fastsoftmax.get_num_threads()) is int
    finally:
        fastsoftmax.set_num_threads(before)


@pytest.mark.parametrize("n", [True, np.bool_(True), 2.0, "2", 0, -2, np.int64(0)])
def test_set_num_threads_still_refuses_non_counts(n):
    with pytest.raises(ValueError, match="positive int"):
        fastsoftmax.set_num_threads(n)


# ----------------------------------------------------------------------------- backends (item 19)


def test_use_backend_does_not_leak_between_asyncio_tasks():
    default = fastsoftmax.get_backend()
    other = "naive" if default != "naive" else "numpy"

    async def inside(entered, release):
        with fastsoftmax.use_backend(other):
            entered.set()
            await release.wait()
            return fastsoftmax.get_backend()

    async def outside(entered, release):
        await entered.wait()
        seen = fastsoftmax.get_backend()
        release.set()
        return seen

    async def both():
        entered, release = asyncio.Event(), asyncio.Event()
        return await asyncio.gather(inside(entered, release), outside(entered, release))

    seen_inside, seen_outside = asyncio.run(both())
    assert seen_inside == other
    assert seen_outside == default
    assert fastsoftmax.get_backend() == default


def test_use_backend_is_still_isolated_between_threads():
    default = fastsoftmax.get_backend()
    other = "naive" if default != "naive" else "numpy"
    seen = {}
    entered, release = threading.Event(), threading.Event()

    def worker():
        with fastsoftmax.use_backend(other):
            entered.set()
            release.wait(10)
            seen["worker"] = fastsoftmax.get_backend()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert entered.wait(10)
        seen["main"] = fastsoftmax.get_backend()
        with fastsoftmax.use_backend(other):  # a thread started in the block does not inherit it
            child = threading.Thread(
                target=lambda: seen.setdefault("child", fastsoftmax.get_backend())
            )
            child.start()
            child.join(10)
    finally:
        release.set()
        thread.join(10)
    assert seen == {"worker": other, "main": default, "child": default}
    assert fastsoftmax.get_backend() == default


def test_use_backend_nests_and_restores():
    default = fastsoftmax.get_backend()
    with fastsoftmax.use_backend("naive"):
        with fastsoftmax.use_backend("numpy"):
            assert fastsoftmax.get_backend() == "numpy"
        assert fastsoftmax.get_backend() == "naive"
    assert fastsoftmax.get_backend() == default
