"""The ``fastsoftmax`` command: train, predict, evaluate.

``fastsoftmax train`` (or ``python -m fastsoftmax train``) trains a
:class:`~fastsoftmax.SoftmaxRegression` on MNIST (or the 8x8 digits), shows a
progress bar with the loss per epoch, then the training time and the
validation and test accuracy; ``--save`` stores the model, ``--plot`` draws
its pictures (both checked before training starts, so that a bad path or a
missing matplotlib costs no training run).  ``fastsoftmax predict MODEL FILE``
prints the predicted label (``--proba``: the class probabilities) of every
image of an IDX or ``.npy`` file, or writes them to ``--output``;
``fastsoftmax evaluate MODEL`` prints the test accuracy and the confusion
matrix.

Exit status: 0 on success, 2 on bad usage or bad input (one line on stderr,
no traceback).

Examples
--------
>>> from fastsoftmax.cli import main
>>> main(["train", "--dataset", "digits", "--epochs", "2", "--quiet"])  # doctest: +ELLIPSIS
training time: ... s (... s per epoch)
validation accuracy: ...%
test accuracy: ...%
0
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["main"]

#: data set name -> (number of features, image shape, largest raw pixel value)
DATASETS = {
    "mnist": (784, (28, 28), 255),
    "digits": (64, (8, 8), 16),
}
# what to show the user when the loader fails: which errors are "bad input"
_USER_ERRORS = (ValueError, OSError, ImportError)


class UsageError(Exception):
    """Bad input found after argument parsing: reported in one line, exit 2."""


# --------------------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _fraction(text: str) -> float:
    value = _nonnegative_float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1), got {text!r}")
    return value


def _data_options(parser: argparse.ArgumentParser, *, default_dataset: str | None) -> None:
    parser.add_argument(
        "--dataset",
        choices=sorted(DATASETS),
        default=default_dataset,
        help="data set (default: %(default)s"
        + (")" if default_dataset else "; inferred from the model's number of features)"),
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder with the MNIST IDX files (default: $FASTSOFTMAX_DATA, then the user cache)",
    )
    parser.add_argument(
        "--no-download", action="store_true", help="never download MNIST, fail if it is missing"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fastsoftmax`` command."""
    from . import __version__
    from ._backends import BACKEND_NAMES
    from .learners import LEARNERS

    parser = argparse.ArgumentParser(
        prog="fastsoftmax",
        description="Fast softmax regression on the CPU: train on MNIST, predict, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train a softmax regression model", description="Train a softmax "
        "regression model (pixels / max as float32) and report validation and test accuracy."
    )
    _data_options(train, default_dataset="mnist")
    train.add_argument("--optimizer", choices=list(LEARNERS), default="sgd",
                       help="update rule (default: %(default)s)")
    train.add_argument("--learning-rate", type=_nonnegative_float, metavar="LR",
                       help="base learning rate (default: the optimizer's)")
    train.add_argument("--batch-size", type=_positive_int, metavar="N",
                       help="minibatch size (default: the estimator's)")
    train.add_argument("--epochs", type=_positive_int, default=10, metavar="N",
                       help="number of passes over the data (default: %(default)s)")
    train.add_argument("--l2", type=_nonnegative_float, default=0.0,
                       help="L2 penalty on the weights (default: %(default)s)")
    train.add_argument("--backend", choices=BACKEND_NAMES,
                       help="kernel backend (default: the fastest available)")
    train.add_argument("--threads", type=_positive_int, metavar="N",
                       help="threads of the compiled kernels (default: all cores)")
    train.add_argument("--seed", type=_nonnegative_int, default=0, metavar="N",
                       help="seed of initialisation, shuffling and the validation split")
    train.add_argument("--validation-fraction", type=_fraction, default=1 / 12, metavar="F",
                       help="part of the training set held out for validation "
                       "(default: 1/12, i.e. 5000 MNIST images)")
    train.add_argument("--save", metavar="MODEL.npz", help="save the trained model there")
    train.add_argument("--plot", metavar="DIR",
                       help="write learning curves, weight templates and confusion matrix "
                       "as PNG files into DIR (needs matplotlib)")
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    predict = commands.add_parser(
        "predict", help="print the predicted label of every image in a file",
        description="Print one predicted label per line for the images in FILE (an IDX file, "
        "raw or .gz, or a .npy array) of shape (n, features) or (n, height, width). Integer "
        "pixels are scaled like the training data.",
    )
    predict.add_argument("model", metavar="MODEL.npz")
    predict.add_argument("file", metavar="FILE")
    predict.add_argument("--proba", action="store_true",
                         help="the probability of every class instead of the label: a header "
                         "line with the classes, then one line per image, comma-separated")
    predict.add_argument("-o", "--output", metavar="OUT",
                         help="write to OUT instead of the standard output (OUT.npy: a NumPy "
                         "array of the labels or probabilities)")

    evaluate = commands.add_parser(
        "evaluate", help="print test accuracy and confusion matrix of a saved model",
    )
    evaluate.add_argument("model", metavar="MODEL.npz")
    _data_options(evaluate, default_dataset=None)
    evaluate.add_argument("--plot", metavar="DIR", help="also draw the confusion matrix into DIR")
    return parser


# --------------------------------------------------------------------------- helpers


def _load_dataset(name: str, data_dir: str | None, download: bool, progress: bool = True) -> Any:
    from . import datasets

    if name == "mnist":
        try:
            return datasets.load_mnist(
                data_dir, download=download, dtype="float32", progress=progress
            )
        except datasets.DataNotFoundError as exc:  # advise this command's options
            raise UsageError(
                datasets._not_found_message(exc, "--data-dir DIR", "--no-download")
            ) from None
    return datasets.load_digits(dtype="float32")


def _check_writable_file(path: str, option: str) -> None:
    """Fail now, not after the work, if ``path`` cannot be written (names the user's path)."""
    if os.path.isdir(path):
        raise UsageError(f"{option} {path}: is a folder; expected a file name")
    # the folder a new file (or a symbolic link's target) goes into must take one
    directory = os.path.dirname(os.path.realpath(path))
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot write there ({exc.strerror or exc})") from None


def _check_plot_folder(path: str, option: str = "--plot") -> None:
    """Create the plot folder and check that it takes files and that matplotlib is there."""
    from .plotting import _require_matplotlib

    _require_matplotlib()
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot write there ({exc.strerror or exc})") from None


def _split(
    X: np.ndarray, y: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeded random split of the training set into training and validation parts."""
    order = np.random.default_rng(seed).permutation(len(y))
    n_val = max(1, int(round(fraction * len(y))))
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    return X[train], y[train], X[val], y[val]


def _load_model(path: str) -> Any:
    from . import load

    if not os.path.isfile(path):
        raise UsageError(f"model file not found: {path}")
    try:
        model = load(path)
    except (ValueError, OSError, KeyError) as exc:
        raise UsageError(f"cannot load model {path}: {exc}") from None
    if not hasattr(model, "coef_"):
        raise UsageError(
            f"the model in {path} is not fitted: train it first (fastsoftmax train --save)"
        )
    return model


def _n_features(model: Any) -> int:
    return int(np.shape(model.coef_)[1])


def _dataset_of(model: Any, requested: str | None) -> str:
    n = _n_features(model)
    if requested is not None:
        if DATASETS[requested][0] != n:
            raise UsageError(
                f"the model expects {n} features but {requested} images have "
                f"{DATASETS[requested][0]}"
            )
        return requested
    for name, (features, _, _) in DATASETS.items():
        if features == n:
            return name
    raise UsageError(f"the model has {n} features, which matches no known data set: "
                     f"pass --dataset")


def _read_inputs(path: str, n_features: int) -> np.ndarray:
    """Images of an IDX or .npy file as float32 rows, scaled like the training data."""
    from .datasets import read_idx

    if not os.path.isfile(path):
        raise UsageError(f"input file not found: {path}")
    if path.endswith(".npy"):
        try:
            # memory-mapped: a header declaring more data than the file holds is an error
            # here, not an attempt to allocate it
            X = np.load(path, allow_pickle=False, mmap_mode="r")
        except (ValueError, OSError) as exc:
            raise UsageError(f"{path}: not a readable .npy file ({exc})") from None
    else:
        X = read_idx(path)
    if X.ndim == 1 and X.size == n_features:
        X = X.reshape(1, -1)  # a single image
    elif X.ndim >= 2:
        X = X.reshape(X.shape[0], math.prod(X.shape[1:]))  # -1 fails on 0 images
    if X.ndim != 2 or X.shape[1] != n_features:
        raise UsageError(
            f"{path}: expected images of {n_features} pixels, got an array of shape "
            f"{np.shape(X)}"
        )
    if X.shape[0] == 0:
        raise UsageError(f"{path}: holds no images (an array of shape {X.shape})")
    if np.issubdtype(X.dtype, np.integer):
        # the model was trained on pixels / max: do the same here
        maxval = next((m for f, _, m in DATASETS.values() if f == n_features), 255)
        return np.divide(X, maxval, dtype=np.float32)
    if not np.issubdtype(X.dtype, np.floating):
        raise UsageError(f"{path}: expected numeric pixels, got dtype {X.dtype}")
    return X if X.dtype in (np.float32, np.float64) else X.astype(np.float32)


def _format_confusion(cm: np.ndarray, classes: Sequence[Any]) -> str:
    width = max(5, len(str(cm.max())) + 1, max(len(str(c)) for c in classes) + 1)
    lines = ["confusion matrix (rows: true class, columns: predicted class):"]
    lines.append(" " * 6 + "".join(f"{c!s:>{width}}" for c in classes))
    for c, row in zip(classes, cm):
        lines.append(f"{c!s:>5} " + "".join(f"{v:>{width}d}" for v in row))
    return "\n".join(lines)


# --------------------------------------------------------------------------- commands


def _train(args: argparse.Namespace) -> int:
    import fastsoftmax

    # scoped, so that main() called in-process (tests, notebooks) leaves no global change
    threads = fastsoftmax.get_num_threads()
    try:
        if args.threads is not None:
            fastsoftmax.set_num_threads(args.threads)
        with fastsoftmax.use_backend(args.backend or fastsoftmax.get_backend()):
            return _train_in_context(args)
    finally:
        fastsoftmax.set_num_threads(threads)


def _train_in_context(args: argparse.Namespace) -> int:
    import fastsoftmax

    if args.save:
        # the name persistence.save writes: .npz appended when missing
        _check_writable_file(args.save if args.save.endswith(".npz") else args.save + ".npz",
                             "--save")
    if args.plot:
        _check_plot_folder(args.plot)
    data = _load_dataset(args.dataset, args.data_dir, not args.no_download, not args.quiet)
    X, y, X_val, y_val = _split(data.X_train, data.y_train, args.validation_fraction, args.seed)
    params = dict(
        optimizer=args.optimizer,
        max_epochs=args.epochs,
        l2=args.l2,
        random_state=args.seed,
        verbose=0 if args.quiet else 1,
    )
    if args.learning_rate is not None:
        params["learning_rate"] = args.learning_rate
    if args.batch_size is not None:
        params["batch_size"] = args.batch_size
    model = fastsoftmax.SoftmaxRegression(**params)
    if not args.quiet:
        print(
            f"{args.dataset}: {len(y)} training, {len(y_val)} validation, "
            f"{len(data.y_test)} test images of {data.image_shape[0]}x{data.image_shape[1]}; "
            f"backend {fastsoftmax.get_backend()}, {fastsoftmax.get_num_threads()} threads"
        )
        print(model)
        sys.stdout.flush()  # before the progress bars (stderr)
    start = time.perf_counter()
    model.fit(X, y, validation_data=(X_val, y_val))
    elapsed = time.perf_counter() - start
    epochs = max(1, len(model.history_.get("train_loss", [])))
    print(f"training time: {elapsed:.2f} s ({elapsed / epochs:.3f} s per epoch)")
    print(f"validation accuracy: {100 * model.score(X_val, y_val):.2f}%")
    print(f"test accuracy: {100 * model.score(data.X_test, data.y_test):.2f}%")
    if args.save:
        print(f"model saved to {model.save(args.save)}")
    if args.plot:
        from .plotting import save_plots

        paths = save_plots(model, data.X_test, data.y_test, args.plot, image_shape=data.image_shape)
        print("plots: " + ", ".join(str(p) for p in paths.values()))
    return 0


def _predict(args: argparse.Namespace) -> int:
    if args.output:
        _check_writable_file(args.output, "--output")
    model = _load_model(args.model)
    X = _read_inputs(args.file, _n_features(model))
    result = np.asarray(model.predict_proba(X) if args.proba else model.predict(X))
    if args.output and args.output.endswith(".npy"):
        try:
            np.save(args.output, result, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--output {args.output}: cannot write it ({exc})") from None
        return 0
    if args.proba:
        # float32 needs 9 significant digits to read back the same, float64 17
        digits = 9 if result.dtype == np.float32 else 17
        lines = [",".join(str(c) for c in np.asarray(model.classes_).tolist())]
        lines += [",".join(f"{p:.{digits}g}" for p in row) for row in result.tolist()]
    else:
        lines = [str(label) for label in result.tolist()]
    text = "".join(f"{line}\n" for line in lines)
    if not args.output:
        sys.stdout.write(text)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise UsageError(f"--output {args.output}: cannot write it ({exc.strerror or exc})") from None
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .plotting import _label_confusion_matrix, plot_confusion_matrix

    model = _load_model(args.model)
    name = _dataset_of(model, args.dataset)
    if args.plot:
        _check_plot_folder(args.plot)
    data = _load_dataset(name, args.data_dir, not args.no_download)
    classes = np.asarray(model.classes_)
    y_pred = np.asarray(model.predict(data.X_test))
    accuracy = float(np.mean(y_pred == data.y_test))
    cm = _label_confusion_matrix(classes, data.y_test, y_pred)
    print(f"test accuracy: {100 * accuracy:.2f}% ({len(data.y_test)} {name} test images)")
    print(_format_confusion(cm, classes.tolist()))
    if args.plot:
        path = os.path.join(args.plot, "confusion_matrix.png")
        plot_confusion_matrix(cm, path, classes=classes.tolist())
        print(f"plot: {path}")
    return 0


def _show_downloads() -> None:
    """Let the MNIST loader say on stderr what it downloads (it may take a while)."""
    import logging

    class StderrHandler(logging.StreamHandler):
        # the sys.stderr of the moment, not of the handler's creation (main() may run
        # again under another redirection, e.g. in tests)
        stream = property(lambda self: sys.stderr, lambda self, value: None)

    logger = logging.getLogger("fastsoftmax.datasets")
    if not logger.handlers:
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fastsoftmax`` command with ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit status: 0 on success, 2 on bad usage or bad input.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    command = {"train": _train, "predict": _predict, "evaluate": _evaluate}[args.command]
    if not getattr(args, "quiet", False):
        _show_downloads()
    try:
        return command(args)
    except BrokenPipeError:  # e.g. `fastsoftmax predict ... | head`: not an error
        # stop Python from complaining again when it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UsageError, *_USER_ERRORS) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"fastsoftmax {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
