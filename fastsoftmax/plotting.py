"""Pictures of a trained model: learning curves, weight templates, confusion matrix.

matplotlib is an optional dependency (``pip install matplotlib``, or the ``plot`` extra) and is
imported only when a figure is drawn.  Figures are built as
:class:`matplotlib.figure.Figure` objects rendered by the Agg backend, so
nothing here touches pyplot's global state or needs a display.

Examples
--------
>>> import numpy as np
>>> from fastsoftmax.plotting import confusion_matrix
>>> confusion_matrix([0, 1, 1, 2], [0, 2, 1, 2])
array([[1, 0, 0],
       [0, 1, 1],
       [0, 0, 1]])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "confusion_matrix",
    "plot_confusion_matrix",
    "plot_learning_curves",
    "plot_weights",
    "save_plots",
]


def _require_matplotlib() -> tuple[Any, Any]:
    """Import what plotting needs; a clear ImportError, with what to install, if it is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        # fastsoftmax is not on a package index, so `pip install 'fastsoftmax[plot]'` would
        # fail: name the package itself
        raise ImportError(
            "plotting needs matplotlib, an optional dependency of fastsoftmax: "
            "pip install matplotlib"
        ) from exc
    return Figure, FigureCanvasAgg


def _figure(**kwargs: Any) -> Figure:
    """A new Agg-backed Figure; a clear ImportError if matplotlib is missing."""
    Figure, FigureCanvasAgg = _require_matplotlib()
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike[str] | None) -> Figure:
    if path is not None:
        fig.savefig(os.fspath(path), dpi=100)
    return fig


def confusion_matrix(
    y_true: ArrayLike, y_pred: ArrayLike, n_classes: int | None = None
) -> np.ndarray:
    """Count matrix ``C[i, j]`` = number of samples of class ``i`` predicted as ``j``.

    Parameters
    ----------
    y_true, y_pred : array_like of int
        Class indices ``>= 0``, of the same length.
    n_classes : int, optional
        Size of the matrix; default: 1 + the largest index seen.

    Returns
    -------
    ndarray of int64, shape (n_classes, n_classes)

    Examples
    --------
    >>> confusion_matrix([0, 0, 1], [0, 1, 1], n_classes=3)
    array([[1, 1, 0],
           [0, 1, 0],
           [0, 0, 0]])
    """
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must have the same length, got {y_true.size} and {y_pred.size}"
        )
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0):
            raise ValueError(f"{name} must hold class indices >= 0, got dtype {y.dtype}")
    if n_classes is None:
        n_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    elif y_true.size and max(y_true.max(), y_pred.max()) >= n_classes:
        raise ValueError(f"class index out of range for n_classes={n_classes}")
    flat = np.bincount(y_true.astype(np.int64) * n_classes + y_pred, minlength=n_classes**2)
    return flat.reshape(n_classes, n_classes)


def _label_confusion_matrix(classes: ArrayLike, y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """:func:`confusion_matrix` of labels, taken as indices into the sorted ``classes``.

    Mapping labels to indices of ``classes_`` makes any label values work.
    """
    classes = np.asarray(classes)
    return confusion_matrix(
        np.searchsorted(classes, np.asarray(y_true)),
        np.searchsorted(classes, np.asarray(y_pred)),
        n_classes=len(classes),
    )


def plot_learning_curves(
    history: Mapping[str, Sequence[float]], path: str | os.PathLike[str] | None = None
) -> Figure:
    """Loss and error per epoch, from an estimator's ``history_``.

    Parameters
    ----------
    history : dict of lists
        With ``"train_loss"`` and optionally ``"val_loss"``, ``"val_error"``
        and ``"train_error"`` (one value per epoch; errors as fractions).
    path : str or os.PathLike, optional
        Save the figure there (PNG).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_learning_curves({"train_loss": [0.9, 0.5], "val_loss": [0.8, 0.6],
    ...                             "val_error": [0.2, 0.15]})
    >>> [ax.get_title() for ax in fig.axes]
    ['Loss', 'Error']
    """
    if not history.get("train_loss"):
        raise ValueError("history has no 'train_loss' values: was the model fitted?")
    fig = _figure(figsize=(10, 4), layout="constrained")
    loss_ax, err_ax = fig.subplots(1, 2)
    for key, label, style in (("train_loss", "training", "-o"), ("val_loss", "validation", "-s")):
        values = history.get(key) or []
        if len(values):
            loss_ax.plot(np.arange(1, len(values) + 1), values, style, label=label, markersize=3)
    loss_ax.set(title="Loss", xlabel="epoch", ylabel="cross-entropy loss")
    loss_ax.legend()
    plotted = False
    for key, label, style in (("train_error", "training", "-o"), ("val_error", "validation", "-s")):
        values = history.get(key) or []
        if len(values):
            percent = 100 * np.asarray(values, dtype=float)
            err_ax.plot(np.arange(1, len(values) + 1), percent, style, label=label, markersize=3)
            plotted = True
    err_ax.set(title="Error", xlabel="epoch", ylabel="classification error (%)")
    if plotted:
        err_ax.legend()
    else:
        err_ax.text(0.5, 0.5, "no validation data", ha="center", va="center",
                    transform=err_ax.transAxes)
    for ax in (loss_ax, err_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    return _save(fig, path)


def plot_weights(
    coef: ArrayLike,
    image_shape: tuple[int, int],
    path: str | os.PathLike[str] | None = None,
    *,
    classes: Sequence[Any] | np.ndarray | None = None,
) -> Figure:
    """The weight vector of each class, drawn as an image (a linear model's templates).

    Parameters
    ----------
    coef : array_like, shape (n_classes, n_features)
        ``coef_`` of a fitted estimator; ``n_features`` = prod(image_shape).
    image_shape : tuple of int
        E.g. ``(28, 28)`` for MNIST, ``(8, 8)`` for the 8x8 digits.
    path : str or os.PathLike, optional
        Save the figure there (PNG).
    classes : sequence, optional
        Class names for the panel titles; default ``0 .. n_classes-1``.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_weights(np.zeros((10, 64)), (8, 8))
    >>> len(fig.axes)  # ten panels and a colorbar
    11
    """
    coef = np.asarray(coef, dtype=float)
    if coef.ndim != 2 or coef.shape[1] != int(np.prod(image_shape)):
        raise ValueError(
            f"coef must have shape (n_classes, {int(np.prod(image_shape))}) for images of "
            f"shape {tuple(image_shape)}, got {coef.shape}"
        )
    n = coef.shape[0]
    classes = list(range(n)) if classes is None else list(classes)
    ncols = min(n, 5)
    nrows = -(-n // ncols)
    fig = _figure(figsize=(2.2 * ncols + 1, 2.3 * nrows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    # one symmetric scale for all panels: red = evidence for the class, blue = against
    vmax = float(np.abs(coef).max()) or 1.0
    for k, ax in enumerate(axes):
        ax.set_axis_off()
        if k < n:
            image = ax.imshow(coef[k].reshape(image_shape), cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            ax.set_title(f"class {classes[k]}")
    fig.colorbar(image, ax=axes.tolist(), shrink=0.8, label="weight")
    fig.suptitle("Learned weight templates")
    return _save(fig, path)


def plot_confusion_matrix(
    cm: ArrayLike,
    path: str | os.PathLike[str] | None = None,
    *,
    classes: Sequence[Any] | np.ndarray | None = None,
    title: str | None = None,
) -> Figure:
    """Draw a confusion matrix (rows: true class, columns: predicted) with counts.

    Parameters
    ----------
    cm : array_like of int, shape (n_classes, n_classes)
        E.g. from :func:`confusion_matrix`.
    path : str or os.PathLike, optional
        Save the figure there (PNG).
    classes : sequence, optional
        Tick labels; default ``0 .. n_classes-1``.
    title : str, optional
        Default: "Confusion matrix (accuracy X%)".

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_confusion_matrix([[5, 1], [0, 4]])
    >>> fig.axes[0].get_title()
    'Confusion matrix (accuracy 90.00%)'
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"cm must be a square matrix, got shape {cm.shape}")
    n = cm.shape[0]
    classes = list(range(n)) if classes is None else list(classes)
    total = cm.sum()
    if title is None:
        accuracy = np.trace(cm) / total if total else float("nan")
        title = f"Confusion matrix (accuracy {100 * accuracy:.2f}%)"
    fig = _figure(figsize=(1.0 + 0.6 * n, 0.6 + 0.6 * n) if n > 6 else (5, 4.2),
                  layout="constrained")
    ax = fig.subplots()
    # log-like colour scale would hide the diagonal's size; a linear one with
    # annotations shows both the diagonal and the few confusions
    image = ax.imshow(cm, cmap="Blues")
    fig.colorbar(image, ax=ax, label="number of samples")
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(n):
        for j in range(n):
            if cm[i, j] == 0 and i != j:  # blank cells make the few confusions stand out
                continue
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > threshold else "black")
    ax.set_xticks(range(n), [str(c) for c in classes])
    ax.set_yticks(range(n), [str(c) for c in classes])
    ax.set(title=title, xlabel="predicted class", ylabel="true class")
    return _save(fig, path)


def save_plots(
    estimator: Any,
    X_test: ArrayLike,
    y_test: ArrayLike,
    directory: str | os.PathLike[str],
    *,
    image_shape: tuple[int, int],
) -> dict[str, Path]:
    """Write learning_curves.png, weights.png and confusion_matrix.png for a fitted model.

    Parameters
    ----------
    estimator : fitted SoftmaxRegression
        Uses ``history_``, ``coef_``, ``classes_`` and ``predict``.
    X_test, y_test : array_like
        Data for the confusion matrix.
    directory : str or os.PathLike
        Created if missing.
    image_shape : tuple of int
        Shape of one image, e.g. ``(28, 28)``.

    Returns
    -------
    dict of str to pathlib.Path
        ``{"learning_curves": ..., "weights": ..., "confusion_matrix": ...}``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    classes = np.asarray(estimator.classes_)
    paths = {
        name: directory / f"{name}.png" for name in ("learning_curves", "weights", "confusion_matrix")
    }
    plot_learning_curves(estimator.history_, paths["learning_curves"])
    plot_weights(estimator.coef_, image_shape, paths["weights"], classes=classes)
    cm = _label_confusion_matrix(classes, y_test, estimator.predict(X_test))
    plot_confusion_matrix(cm, paths["confusion_matrix"], classes=classes)
    return paths
