"""Issue 15, the CLI items: outputs checked before training, offline advice in the CLI's own
options, the plot-install hint, validation accuracy in the epoch bar, ``predict --proba`` and
``--output``, and the mode of saved model files."""

import os
import re
import stat
import sys

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import datasets

from test_cli import FAST, assert_one_line_error, run

pytest.importorskip("sklearn")  # the digits data set


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if the CLI reaches training (the check must come first)."""

    def fit(self, *args, **kwargs):
        raise AssertionError("trained before the check")

    monkeypatch.setattr(fastsoftmax.SoftmaxRegression, "fit", fit)


@pytest.fixture(scope="module")
def fitted_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    X, y = rng.random((60, 64)), np.arange(60) % 3
    path = tmp_path_factory.mktemp("model") / "fitted.npz"
    fastsoftmax.SoftmaxRegression(max_epochs=2, random_state=0).fit(X, y).save(path)
    return path


# ----------------------------------------------------------------------------- before training


@pytest.mark.parametrize("where", ["missing folder", "a file as folder", "a folder"])
def test_a_bad_save_path_fails_before_training_naming_it(capsys, tmp_path, no_training, where):
    (tmp_path / "file").write_text("")
    (tmp_path / "dir.npz").mkdir()
    save = {
        "missing folder": tmp_path / "no" / "such" / "model.npz",
        "a file as folder": tmp_path / "file" / "model",
        "a folder": tmp_path / "dir",  # .npz is appended: the folder dir.npz
    }[where]
    code, out, err = run(capsys, "train", *FAST, "-q", "--save", str(save))
    assert_one_line_error(code, err, "fastsoftmax train: error: --save", str(save))
    assert ".tmp" not in err and "training time" not in out


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_a_bad_plot_folder_fails_before_training(capsys, tmp_path, no_training, where):
    pytest.importorskip("matplotlib")
    (tmp_path / "file").write_text("")
    plot = tmp_path / "file" if where == "a file" else tmp_path / "file" / "plots"
    code, out, err = run(capsys, "train", *FAST, "-q", "--plot", str(plot))
    assert_one_line_error(code, err, "--plot", str(plot))
    assert "training time" not in out


def hide_matplotlib(monkeypatch):
    # None in sys.modules makes "import matplotlib..." raise ImportError
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)


def test_missing_matplotlib_fails_before_training(capsys, tmp_path, monkeypatch, no_training):
    hide_matplotlib(monkeypatch)
    code, out, err = run(capsys, "train", *FAST, "-q", "--plot", str(tmp_path / "plots"))
    assert_one_line_error(code, err, "matplotlib", "pip install matplotlib")
    assert "training time" not in out


def test_plot_hint_names_no_package_index_the_project_is_not_on(capsys, tmp_path, monkeypatch):
    hide_matplotlib(monkeypatch)
    from fastsoftmax.plotting import plot_learning_curves

    with pytest.raises(ImportError) as info:
        plot_learning_curves({"train_loss": [1.0]})
    assert "pip install matplotlib" in str(info.value)
    assert "fastsoftmax[" not in str(info.value)


def test_evaluate_checks_the_plot_folder_before_loading_data(capsys, fitted_path, tmp_path,
                                                            monkeypatch):
    (tmp_path / "file").write_text("")

    def load(*args, **kwargs):
        raise AssertionError("loaded the data before the check")

    monkeypatch.setattr("fastsoftmax.cli._load_dataset", load)
    code, _, err = run(capsys, "evaluate", str(fitted_path), "--dataset", "digits",
                       "--plot", str(tmp_path / "file"))
    assert_one_line_error(code, err, "--plot", str(tmp_path / "file"))


# ----------------------------------------------------------------------------- offline advice


@pytest.mark.parametrize("download", [False, True])
def test_offline_errors_advise_the_cli_options(capsys, tmp_path, monkeypatch, download):
    monkeypatch.delenv("FASTSOFTMAX_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "MIRRORS", [])  # offline without touching the network
    argv = ["train", "--data-dir", str(tmp_path / "nothing")]
    code, _, err = run(capsys, *argv, *([] if download else ["--no-download"]))
    assert_one_line_error(code, err, "MNIST files not found", "--data-dir DIR", "FASTSOFTMAX_DATA")
    assert ("--no-download, so nothing was downloaded" in err) is not download
    assert "load_mnist" not in err and "download=False" not in err and "data_home" not in err


def test_the_python_api_still_advises_its_arguments(tmp_path, monkeypatch):
    monkeypatch.delenv("FASTSOFTMAX_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(datasets.DataNotFoundError, match=r"download=False.*data_home=DIR") as info:
        datasets.load_mnist(tmp_path / "nothing", download=False)
    assert len(info.value.missing) == 4 and info.value.download_failures is None
    assert tmp_path / "nothing" in info.value.searched


# ----------------------------------------------------------------------------- the epoch bar


def test_epoch_bar_shows_validation_accuracy(capsys):
    code, out, err = run(capsys, "train", *FAST)
    assert code == 0, err
    final = re.findall(r"epoch 3: 100%.*loss=[0-9.]+, val_acc=([0-9.]+)%", err)
    assert final, err
    # the bar's figure is the validation accuracy the CLI prints after training
    printed = re.search(r"^validation accuracy: ([0-9.]+)%", out, re.MULTILINE).group(1)
    assert float(final[-1]) == pytest.approx(float(printed), abs=0.006)


def test_no_val_acc_without_validation_data(capsys):
    rng = np.random.default_rng(0)
    fastsoftmax.SoftmaxRegression(max_epochs=1, verbose=1).fit(rng.random((30, 4)), np.arange(30) % 2)
    err = capsys.readouterr().err
    assert "loss=" in err and "val_acc" not in err


# ----------------------------------------------------------------------------- predict


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    path = tmp_path_factory.mktemp("x") / "x.npy"
    np.save(path, np.random.default_rng(1).random((5, 64)).astype(np.float32))
    return path


def test_predict_proba_prints_classes_and_probabilities(capsys, fitted_path, images):
    code, out, err = run(capsys, "predict", str(fitted_path), str(images), "--proba")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "0,1,2"
    got = np.array([line.split(",") for line in lines[1:]], dtype=np.float64)
    model = fastsoftmax.load(fitted_path)
    expected = model.predict_proba(np.load(images))
    np.testing.assert_array_equal(got.astype(expected.dtype), expected)  # read back exactly


@pytest.mark.parametrize("proba", [False, True])
def test_predict_output_file_text_and_npy(capsys, fitted_path, images, tmp_path, proba):
    flag = ["--proba"] if proba else []
    code, stdout, err = run(capsys, "predict", str(fitted_path), str(images), *flag)
    assert code == 0, err
    code, out, err = run(capsys, "predict", str(fitted_path), str(images), *flag,
                         "-o", str(tmp_path / "out.txt"))
    assert code == 0 and out == "", err
    assert (tmp_path / "out.txt").read_text() == stdout
    code, out, err = run(capsys, "predict", str(fitted_path), str(images), *flag,
                         "--output", str(tmp_path / "out.npy"))
    assert code == 0 and out == "", err
    model = fastsoftmax.load(fitted_path)
    X = np.load(images)
    expected = model.predict_proba(X) if proba else model.predict(X)
    saved = np.load(tmp_path / "out.npy")
    assert saved.dtype == expected.dtype
    np.testing.assert_array_equal(saved, expected)


def test_predict_bad_output_path_is_a_one_line_error(capsys, fitted_path, images, tmp_path):
    bad = tmp_path / "no" / "such" / "out.txt"
    code, out, err = run(capsys, "predict", str(fitted_path), str(images), "-o", str(bad))
    assert_one_line_error(code, err, "--output", str(bad))
    assert out == ""


# ----------------------------------------------------------------------------- file mode


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_saved_model_has_the_usual_mode(capsys, tmp_path, umask):
    before = os.umask(umask)
    try:
        code, _, err = run(capsys, "train", *FAST, "-q", "--save", str(tmp_path / "m"))
        (tmp_path / "plain").write_bytes(b"")  # what open() gives under this umask
    finally:
        os.umask(before)
    assert code == 0, err
    mode = stat.S_IMODE(os.stat(tmp_path / "m.npz").st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE(os.stat(tmp_path / "plain").st_mode)
