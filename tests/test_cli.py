"""The fastsoftmax command: train, predict, evaluate, exit status and messages.

Most runs call ``fastsoftmax.cli.main`` in-process on the 8x8 digits (fast);
a few go through ``python -m fastsoftmax`` and the installed console script
to check the real entry points.
"""

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax.cli import main

pytest.importorskip("sklearn")  # the digits data set

FAST = ["--dataset", "digits", "--epochs", "3", "--learning-rate", "0.5", "--batch-size", "16"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def percent(label, text):
    match = re.search(rf"^{label} accuracy: ([0-9.]+)%", text, re.MULTILINE)
    assert match, f"no '{label} accuracy' line in:\n{text}"
    return float(match.group(1))


@pytest.fixture(scope="module")
def digits():
    from fastsoftmax.datasets import load_digits

    return load_digits(dtype="uint8")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A model trained and saved by `fastsoftmax train --save` (needs persistence)."""
    pytest.importorskip("fastsoftmax.persistence")
    path = tmp_path_factory.mktemp("model") / "digits.npz"
    assert main(["train", *FAST, "--quiet", "--save", str(path)]) == 0
    assert path.is_file()
    return path


def assert_one_line_error(code, err, *needles):
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]


# ----------------------------------------------------------------------------- train


def test_train_digits_reports_time_and_accuracies(capsys):
    code, out, err = run(capsys, "train", *FAST)
    assert code == 0, err
    assert out.startswith("digits: 1317 training, 120 validation, 360 test images of 8x8")
    assert re.search(r"^training time: [0-9.]+ s", out, re.MULTILINE)
    assert percent("validation", out) > 80
    assert percent("test", out) > 85
    # the estimator's progress bar (verbose=1): one per epoch, with the loss
    assert len(re.findall(r"epoch 3: 100%.*loss=[0-9.]+", err)) >= 1
    assert "epoch 1" in err and "epoch 2" in err


def test_train_is_reproducible_and_leaves_no_global_state(capsys):
    backend, threads = fastsoftmax.get_backend(), fastsoftmax.get_num_threads()
    first = run(capsys, "train", *FAST, "--quiet", "--backend", "numpy", "--threads", "1")
    second = run(capsys, "train", *FAST, "--quiet", "--backend", "numpy", "--threads", "1")
    assert first[0] == second[0] == 0
    strip_time = lambda out: re.sub(r"training time: .*\n", "", out)  # noqa: E731
    assert strip_time(first[1]) == strip_time(second[1])
    assert first[2] == ""  # --quiet: no progress bar
    assert fastsoftmax.get_backend() == backend and fastsoftmax.get_num_threads() == threads


def test_train_shows_backend_and_threads(capsys):
    code, out, _ = run(capsys, "train", *FAST, "--backend", "numpy", "--threads", "1", "--seed", "3")
    assert code == 0
    assert "backend numpy, 1 threads" in out
    assert "random_state=3" in out


def test_train_with_another_optimizer_and_l2(capsys):
    code, out, err = run(capsys, "train", *FAST[:4], "--optimizer", "adam", "--l2", "1e-4", "-q")
    assert code == 0, err
    assert percent("test", out) > 80


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "--epochs", "0"], "--epochs: expected a positive integer, got '0'"),
        (["train", "--optimizer", "lbfgs"], "invalid choice: 'lbfgs'"),
        (["train", "--backend", "gpu"], "invalid choice: 'gpu'"),
        (["train", "--learning-rate", "-1"], "expected a finite number >= 0"),
        (["train", "--validation-fraction", "1.5"], "fraction in (0, 1)"),
        (["train", "--dataset", "cifar"], "invalid choice: 'cifar'"),
        (["fly"], "invalid choice: 'fly'"),
        ([], "the following arguments are required: COMMAND"),
        (["predict", "model.npz"], "the following arguments are required: FILE"),
    ],
)
def test_bad_usage_exits_2(capsys, argv, needle):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "Traceback" not in err
    assert needle in err


def test_help_exits_0(capsys):
    code, out, _ = run(capsys, "train", "--help")
    assert code == 0
    for option in ("--optimizer", "--learning-rate", "--batch-size", "--epochs", "--l2",
                   "--backend", "--threads", "--seed", "--data-dir", "--dataset", "--save", "--plot"):
        assert option in out


def test_missing_mnist_is_one_line_exit_2(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("FASTSOFTMAX_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code, _, err = run(capsys, "train", "--data-dir", str(tmp_path / "nothing"), "--no-download")
    assert_one_line_error(code, err, "fastsoftmax train: error: MNIST files not found",
                          str(tmp_path / "nothing"), "FASTSOFTMAX_DATA")


def test_train_plot_writes_three_pngs(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    code, out, err = run(capsys, "train", *FAST, "-q", "--plot", str(tmp_path / "plots"))
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == ["confusion_matrix.png", "learning_curves.png", "weights.png"]
    assert "plots: " in out


def test_plot_without_matplotlib_says_what_to_install(capsys, tmp_path, monkeypatch):
    # None in sys.modules makes "import matplotlib..." raise ImportError
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    code, _, err = run(capsys, "train", *FAST, "-q", "--plot", str(tmp_path / "plots"))
    assert_one_line_error(code, err, "pip install matplotlib")


# ----------------------------------------------------------------------------- predict / evaluate


def test_predict_npy_uint8_matches_model(capsys, model_path, digits, tmp_path):
    images = digits.X_test[:7]  # raw 0..16 values: the CLI scales them like training
    np.save(tmp_path / "x.npy", images)
    code, out, err = run(capsys, "predict", str(model_path), str(tmp_path / "x.npy"))
    assert code == 0, err
    model = fastsoftmax.load(model_path)
    expected = model.predict(images.astype(np.float32) / 16)
    assert out.split() == [str(int(v)) for v in expected]


def test_predict_idx_images_and_float_npy_agree(capsys, model_path, digits, tmp_path):
    from fastsoftmax.datasets import write_idx

    images = digits.X_test[:20]
    write_idx(tmp_path / "img-idx3-ubyte.gz", images.reshape(20, 8, 8))
    np.save(tmp_path / "f.npy", images.astype(np.float64) / 16)
    code1, out1, _ = run(capsys, "predict", str(model_path), str(tmp_path / "img-idx3-ubyte.gz"))
    code2, out2, _ = run(capsys, "predict", str(model_path), str(tmp_path / "f.npy"))
    assert code1 == code2 == 0
    assert out1 == out2 and len(out1.split()) == 20
    # a trained model gets most of them right
    assert np.mean(np.array(out1.split(), dtype=int) == digits.y_test[:20]) > 0.8


def test_predict_bad_inputs_exit_2(capsys, model_path, tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros((3, 10)))
    (tmp_path / "junk.idx").write_bytes(b"not an idx file at all")
    cases = [
        (["predict", str(tmp_path / "none.npz"), str(tmp_path / "wrong.npy")], "model file not found"),
        (["predict", str(model_path), str(tmp_path / "none.npy")], "input file not found"),
        (["predict", str(model_path), str(tmp_path / "wrong.npy")], "expected images of 64 pixels"),
        (["predict", str(model_path), str(tmp_path / "junk.idx")], "junk.idx"),
        (["predict", str(tmp_path / "junk.idx"), str(tmp_path / "wrong.npy")], "junk.idx"),
    ]
    for argv, needle in cases:
        code, _, err = run(capsys, *argv)
        assert_one_line_error(code, err, f"fastsoftmax {argv[0]}: error:", needle)


def test_evaluate_prints_accuracy_and_confusion_matrix(capsys, model_path, digits):
    code, out, err = run(capsys, "evaluate", str(model_path))  # data set inferred: 64 features
    assert code == 0, err
    model = fastsoftmax.load(model_path)
    predicted = model.predict(digits.X_test.astype(np.float32) / 16)
    expected = 100 * np.mean(predicted == digits.y_test)
    assert percent("test", out) == pytest.approx(expected, abs=0.006)
    # the table: a header of 10 classes, then 10 rows "label counts..."; row sums = class counts
    rows = [line.split() for line in out.splitlines() if re.match(r"^\s+\d+(\s+\d+){10}$", line)]
    assert len(rows) == 10
    table = np.array(rows, dtype=int)[:, 1:]
    np.testing.assert_array_equal(table.sum(axis=1), np.bincount(digits.y_test, minlength=10))
    assert np.trace(table) == np.sum(predicted == digits.y_test)


def test_evaluate_with_wrong_dataset_exits_2(capsys, model_path):
    code, _, err = run(capsys, "evaluate", str(model_path), "--dataset", "mnist")
    assert_one_line_error(code, err, "the model expects 64 features but mnist images have 784")


# ----------------------------------------------------------------------------- entry points


def test_python_dash_m_runs_train(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "fastsoftmax", "train", *FAST, "-q"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "test accuracy:" in result.stdout


def test_console_script_bad_usage_exit_code(tmp_path):
    script = shutil.which("fastsoftmax", path=os.path.dirname(sys.executable) + os.pathsep
                          + os.environ.get("PATH", ""))
    if script is None:
        pytest.skip("the fastsoftmax console script is not installed")
    result = subprocess.run([script, "train", "--epochs", "zero"], capture_output=True,
                            text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 2
    assert "expected a positive integer, got 'zero'" in result.stderr
    version = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=300)
    assert version.returncode == 0 and version.stdout.strip() == f"fastsoftmax {fastsoftmax.__version__}"


@pytest.mark.mnist
def test_mnist_one_epoch_smoke(tmp_path):
    from fastsoftmax.datasets import DataNotFoundError, load_mnist

    try:
        load_mnist(download=False)
    except DataNotFoundError:
        pytest.skip("MNIST files not available (set FASTSOFTMAX_DATA)")
    result = subprocess.run(
        [sys.executable, "-m", "fastsoftmax", "train", "--epochs", "1", "--no-download"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("mnist: 55000 training, 5000 validation, 10000 test images of 28x28")
    assert "loss=" in result.stderr  # the progress bar
    assert percent("test", result.stdout) > 88
