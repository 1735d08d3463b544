"""The pictures: learning curves, weight templates and confusion matrix as PNG files."""

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from fastsoftmax.plotting import (
    confusion_matrix,
    plot_confusion_matrix,
    plot_learning_curves,
    plot_weights,
    save_plots,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- confusion_matrix (no matplotlib)


def test_confusion_matrix_counts_by_hand():
    cm = confusion_matrix([2, 0, 2, 2, 1], [2, 0, 1, 2, 1], n_classes=4)
    expected = np.zeros((4, 4), dtype=int)
    expected[0, 0] = 1
    expected[1, 1] = 1
    expected[2, 1] = 1
    expected[2, 2] = 2
    np.testing.assert_array_equal(cm, expected)


def test_confusion_matrix_errors_name_the_argument():
    with pytest.raises(ValueError, match="same length, got 2 and 3"):
        confusion_matrix([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="y_pred must hold class indices"):
        confusion_matrix([0, 1], [0.5, 1.0])
    with pytest.raises(ValueError, match="out of range for n_classes=2"):
        confusion_matrix([0, 2], [0, 1], n_classes=2)


# ----------------------------------------------------------------------------- figures

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason="matplotlib is not installed"
)


def assert_png(path, min_size):
    """A valid, decodable, non-blank PNG of at least min_size = (width, height) pixels."""
    import matplotlib.image as mpl_image

    assert path.is_file() and path.stat().st_size > 5000
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = mpl_image.imread(path)
    height, width = pixels.shape[:2]
    assert width >= min_size[0] and height >= min_size[1]
    assert width < 3000 and height < 3000
    # not a blank canvas: many distinct colours (axes, text, image content)
    rgb = (pixels[..., :3] * 255).astype(np.uint32)
    colours = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    assert len(np.unique(colours)) > 50
    return pixels


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A short real training run on the 8x8 digits, and its three pictures."""
    from fastsoftmax import SoftmaxRegression
    from fastsoftmax.datasets import load_digits

    pytest.importorskip("sklearn")
    d = load_digits()
    model = SoftmaxRegression(max_epochs=4, learning_rate=0.5, batch_size=16, random_state=0)
    model.fit(d.X_train, d.y_train, validation_data=(d.X_test[:100], d.y_test[:100]))
    directory = tmp_path_factory.mktemp("plots") / "sub"  # created by save_plots
    paths = save_plots(model, d.X_test, d.y_test, directory, image_shape=(8, 8))
    return model, d, paths


@needs_matplotlib
def test_save_plots_writes_three_valid_pngs(trained):
    _, _, paths = trained
    assert sorted(paths) == ["confusion_matrix", "learning_curves", "weights"]
    for name, path in paths.items():
        assert path.name == f"{name}.png"
        assert_png(path, (400, 300))


@needs_matplotlib
def test_weights_picture_shows_the_coefficients(trained):
    model, _, paths = trained
    fig = plot_weights(model.coef_, (8, 8))
    panels = [ax for ax in fig.axes if ax.get_images() and ax.get_title()]
    assert [ax.get_title() for ax in panels] == [f"class {k}" for k in range(10)]
    for k, ax in enumerate(panels):
        np.testing.assert_allclose(ax.get_images()[0].get_array(), model.coef_[k].reshape(8, 8),
                                   rtol=1e-6)
    colorbar = [ax for ax in fig.axes if ax.get_ylabel() == "weight"]
    assert len(colorbar) == 1  # one shared, labelled colour scale
    vmin, vmax = panels[0].get_images()[0].get_clim()
    assert vmin == -vmax == -np.abs(model.coef_).max()


@needs_matplotlib
def test_learning_curves_plot_the_history(trained):
    model, _, _ = trained
    fig = plot_learning_curves(model.history_)
    loss_ax, err_ax = fig.axes
    lines = {line.get_label(): line for line in loss_ax.get_lines()}
    np.testing.assert_allclose(lines["training"].get_ydata(), model.history_["train_loss"])
    np.testing.assert_allclose(lines["validation"].get_ydata(), model.history_["val_loss"])
    np.testing.assert_array_equal(lines["training"].get_xdata(), [1, 2, 3, 4])
    (err_line,) = err_ax.get_lines()
    np.testing.assert_allclose(err_line.get_ydata(), 100 * np.array(model.history_["val_error"]))
    assert loss_ax.get_xlabel() == "epoch" and "error" in err_ax.get_ylabel()


@needs_matplotlib
def test_confusion_matrix_picture(trained):
    model, d, _ = trained
    cm = confusion_matrix(d.y_test, model.predict(d.X_test), n_classes=10)
    fig = plot_confusion_matrix(cm)
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.get_images()[0].get_array(), cm)
    accuracy = 100 * np.mean(model.predict(d.X_test) == d.y_test)
    assert ax.get_title() == f"Confusion matrix (accuracy {accuracy:.2f}%)"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    # each diagonal count is written in its cell
    texts = {(round(t.get_position()[0]), round(t.get_position()[1])): t.get_text() for t in ax.texts}
    for k in range(10):
        assert texts[(k, k)] == str(cm[k, k])


@needs_matplotlib
def test_mnist_sized_weights_png(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "w.png"
    plot_weights(rng.standard_normal((10, 784)), (28, 28), path)
    assert_png(path, (800, 400))


@needs_matplotlib
def test_plot_errors():
    with pytest.raises(ValueError, match=r"coef must have shape \(n_classes, 784\).*got \(10, 64\)"):
        plot_weights(np.zeros((10, 64)), (28, 28))
    with pytest.raises(ValueError, match="no 'train_loss'"):
        plot_learning_curves({"train_loss": []})
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix(np.zeros((2, 3)))


@needs_matplotlib
def test_without_validation_the_error_panel_says_so():
    fig = plot_learning_curves({"train_loss": [1.0, 0.5]})
    assert "no validation data" in [t.get_text() for t in fig.axes[1].texts]


def test_missing_matplotlib_message(monkeypatch):
    # None in sys.modules makes "import matplotlib..." raise ImportError
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"pip install matplotlib"):
        plot_weights(np.zeros((2, 4)), (2, 2))


def test_importing_plotting_does_not_import_matplotlib():
    code = "import sys, fastsoftmax.plotting; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr
