"""A softmax-regression model and a minibatch Trainer for hand-written loops.

The workflow is the classic one: read a minibatch, train on it, report
progress; then test on held-out minibatches; then predict.

>>> import numpy as np
>>> from fastsoftmax import SoftmaxModel, Trainer
>>> rng = np.random.default_rng(0)
>>> centers = 3.0 * rng.standard_normal((3, 4))
>>> y = rng.integers(0, 3, size=300)
>>> X = (centers[y] + rng.standard_normal((300, 4))).astype(np.float32)
>>> model = SoftmaxModel(n_features=4, n_classes=3)
>>> trainer = Trainer(model, "sgd")
>>> for epoch in range(5):
...     for start in range(0, 200, 20):  # read a minibatch, train on it
...         loss = trainer.train_minibatch(X[start:start + 20], y[start:start + 20])
...     line = trainer.progress()  # report progress, e.g. print(line)
...     trainer.next_epoch()
>>> line[:22]
'epoch 4, minibatch 50:'
>>> errors = [trainer.test_minibatch(X[s:s + 50], y[s:s + 50]) for s in (200, 250)]
>>> bool(np.mean(errors) < 0.2)
True
>>> model.predict(X[:4]).shape
(4,)

``X`` may also be a scipy.sparse matrix (CSR, CSC, COO, ...): it is read as
CSR once, never densified, and trained by the Python minibatch loop (the
compiled whole-epoch kernels read dense rows); with plain SGD,
:meth:`Trainer.train_epoch` then updates only the weight rows of each
minibatch's features (the exact lazy L2 update, see
:class:`fastsoftmax.SoftmaxRegression`).

Labels here are class indices ``0 .. n_classes - 1``; the estimators
(:class:`fastsoftmax.SoftmaxRegression`) map arbitrary labels to indices and
drive this same machinery.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _epoch_driver
from ._backends import get_module, weight_total
from ._objective import cross_entropy_sum, decision, l2_penalty, softmax_loss_grad
from ._validation import as_compute_dtype, check_data_matrix, check_int, check_l2, check_labels
from ._validation import check_sample_weight, compute_dtype, is_sparse
from .functions import classification_error, cross_entropy, log_softmax, softmax
from ._solvers import l1_penalty
from .learners import get_learner, l1_orthant_project, l1_pseudo_gradient

__all__ = ["SoftmaxModel", "Trainer", "iter_minibatches"]

#: A 2-D array_like (float32, float64 or uint8) or a scipy.sparse CSR matrix.
DataMatrix = Any


class SoftmaxModel:
    r"""Multinomial logistic (softmax) regression ``z = X W + b``.

    Parameters
    ----------
    n_features : int
        Number of input features (>= 1).
    n_classes : int
        Number of classes (>= 2).
    dtype : {numpy.float32, numpy.float64}, default=numpy.float32
        dtype of ``W`` and ``b`` (and so of the training arithmetic on float32
        or uint8 data).
    l2 : float, default=0.0
        L2 penalty on ``W`` (not on ``b``): the loss is the mean
        cross-entropy plus ``0.5 * l2 * ||W||^2``.
    fit_intercept : bool, default=True
        Whether ``b`` is learned; if False it stays zero.
    l1 : float, default=0.0
        L1 penalty on ``W``: the loss gains ``l1 * ||W||_1``.  The
        :class:`Trainer` steps along its pseudo-gradient and stops weights at
        exactly 0 rather than letting them cross it
        (:func:`fastsoftmax.learners.l1_pseudo_gradient`), which makes small
        weights exactly 0.
    random_state : int, numpy.random.Generator or None, default=None
        Seed of the initial weights when ``init="normal"``.
    init : {"zeros", "normal"}, default="zeros"
        Initial ``W``: zeros (the loss is convex, so zeros are a good and
        deterministic start, as in scikit-learn) or small Gaussian values of
        standard deviation 0.01 drawn from ``random_state``.  ``b`` starts at
        zero.

    Attributes
    ----------
    coef : ndarray of shape (n_classes, n_features)
        The weights in the layout of the estimators' ``coef_``, C-contiguous.
    W : ndarray of shape (n_features, n_classes)
        The weights as the view ``coef.T``: writing into it writes ``coef``;
        assigning to it copies the values in (the shape must match).
    b : ndarray of shape (n_classes,)

    Notes
    -----
    With :math:`P = \mathrm{softmax}(XW + b)` row-wise and :math:`Y` the
    one-hot labels, the loss of a minibatch of :math:`n` samples is

    .. math::
        L = -\frac{1}{n} \sum_i \log P_{i y_i} + \frac{\lambda}{2} \|W\|^2

    References
    ----------
    .. [1] C. M. Bishop, "Pattern Recognition and Machine Learning",
       Springer, 2006, section 4.3.4.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import SoftmaxModel
    >>> model = SoftmaxModel(2, 3)
    >>> model.W.shape, model.b.shape, model.W.dtype
    ((2, 3), (3,), dtype('float32'))
    >>> model.coef.shape, bool(np.shares_memory(model.W, model.coef))
    ((3, 2), True)
    >>> model.predict_proba(np.array([[1.0, 2.0]], dtype=np.float32))
    array([[0.33333334, 0.33333334, 0.33333334]], dtype=float32)
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        *,
        dtype: DTypeLike = np.float32,
        l2: float = 0.0,
        fit_intercept: bool = True,
        random_state: int | np.random.Generator | None = None,
        init: str = "zeros",
        l1: float = 0.0,
    ) -> None:
        self.n_features = check_int("n_features", n_features, 1)
        self.n_classes = check_int("n_classes", n_classes, 2)
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        self.dtype = dtype
        self.l2 = check_l2(l2)
        self.l1 = check_l2(l1, "l1")
        self.fit_intercept = bool(fit_intercept)
        self.random_state = random_state
        if init == "zeros":
            coef = np.zeros((self.n_classes, self.n_features), dtype)
        elif init == "normal":
            rng = np.random.default_rng(random_state)
            # drawn as (n_features, n_classes), so that a seed gives the same W as ever
            W = 0.01 * rng.standard_normal((self.n_features, self.n_classes))
            coef = np.ascontiguousarray(W.T, dtype=dtype)
        else:
            raise ValueError(f"init must be 'zeros' or 'normal', got {init!r}")
        self.init = init
        self.coef = coef
        self.b = np.zeros(self.n_classes, dtype)

    @property
    def W(self) -> np.ndarray:
        """The weights, shape (n_features, n_classes): the view ``coef.T``."""
        return self.coef.T

    @W.setter
    def W(self, value: ArrayLike) -> None:
        value = np.asarray(value)
        if value.shape != (self.n_features, self.n_classes):
            raise ValueError(
                f"W must have shape {(self.n_features, self.n_classes)}, got shape {value.shape}"
            )
        self.coef.T[...] = value

    def parameters(self) -> list[np.ndarray]:
        """The arrays a learner updates: ``[W, b]``, or ``[W]`` without intercept.

        ``W`` is the view ``coef.T``, so in-place updates train ``coef``.
        """
        return [self.coef.T, self.b] if self.fit_intercept else [self.coef.T]

    def _intercept(self) -> np.ndarray | None:
        return self.b if self.fit_intercept else None

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a model pickled before coef existed holds W (n_features, n_classes) itself
        if "W" in state:
            state = dict(state)
            state["coef"] = np.ascontiguousarray(state.pop("W").T)
        self.__dict__.update(state)
        self.__dict__.setdefault("l1", 0.0)  # pickled before the L1 penalty existed

    def _check_X(self, X: DataMatrix) -> DataMatrix:
        X = check_data_matrix(X)
        if X.shape[1] != self.n_features:
            raise ValueError(
                f"X has {X.shape[1]} features, but the model expects {self.n_features} features"
            )
        return X

    def _compute_dtype(self, X: DataMatrix) -> np.dtype[Any]:
        # W's dtype, promoted with a floating X's (float64 data is never computed in float32)
        return self.dtype if X.dtype == np.uint8 else compute_dtype(self.dtype, X.dtype)

    def decision_function(self, X: DataMatrix) -> np.ndarray:
        """Logits ``X W + b`` of shape (n_samples, n_classes).

        The dtype is W's, promoted with X's when X is floating (float64 data
        is never computed in float32).
        """
        return self._decision(self._check_X(X))

    def _decision(self, X: DataMatrix) -> np.ndarray:
        """:meth:`decision_function` of a checked ``X`` (no validation)."""
        X, coef, b, _ = as_compute_dtype(X, self.coef, self._intercept())
        return decision(X, coef, b)

    def predict_proba(self, X: DataMatrix) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes)."""
        z = self.decision_function(X)
        return softmax(z, axis=1, out=z)

    def predict_log_proba(self, X: DataMatrix) -> np.ndarray:
        """Log class probabilities, shape (n_samples, n_classes)."""
        z = self.decision_function(X)
        return log_softmax(z, axis=1, out=z)

    def predict(self, X: DataMatrix) -> np.ndarray:
        """Predicted class indices (first maximum on ties), shape (n_samples,)."""
        return np.argmax(self.decision_function(X), axis=1)

    def loss_grad(
        self, X: DataMatrix, y: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> tuple[float, np.ndarray, np.ndarray | None]:
        """Loss of a minibatch and its gradients, in one fused pass.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : array_like of shape (n_samples,)
            Class indices in ``[0, n_classes)``.
        sample_weight : array_like of shape (n_samples,), optional
            Non-negative weights; the loss is then a weighted mean.

        Returns
        -------
        loss : float
        dW : ndarray of shape (n_features, n_classes)
        db : ndarray of shape (n_classes,)
            Zero when ``fit_intercept`` is False.
        """
        X = self._check_X(X)
        n = X.shape[0]
        y = check_labels(y, n, self.n_classes, "y", classes_from="W has")
        sample_weight = check_sample_weight(sample_weight, n, self._compute_dtype(X))
        loss, (dW, db) = self._param_grads(X, y, sample_weight, keep_intercept=True)
        return loss, dW, db

    def _param_grads(
        self,
        X: DataMatrix,
        y: Any,
        sample_weight: Any,
        normalizer: float | None = None,
        *,
        keep_intercept: bool = False,
    ) -> tuple[float, list[np.ndarray]]:
        """Loss and the gradients of :meth:`parameters` on checked data (no validation).

        ``normalizer`` divides the data term instead of the weight total (see
        :mod:`fastsoftmax._objective`).  The weight gradient is the (d, C)
        view of the objective's (C, d) one.
        """
        X, coef, b, sample_weight = as_compute_dtype(X, self.coef, self._intercept(), sample_weight)
        loss, coef_grad, intercept_grad = softmax_loss_grad(
            X, coef, b, y, sample_weight, self.l2, normalizer=normalizer
        )
        if not self.fit_intercept:
            if not keep_intercept:
                return loss, [coef_grad.T]
            intercept_grad[...] = 0
        return loss, [coef_grad.T, intercept_grad]

    def loss(self, X: DataMatrix, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """The training objective on ``(X, y)`` without the gradient (see Notes)."""
        X = self._check_X(X)
        n = X.shape[0]
        labels = check_labels(y, n, self.n_classes, classes_from="the model has")
        weights = check_sample_weight(sample_weight, n, self._compute_dtype(X))
        return self._loss_from_logits(self._decision(X), labels, weights)

    def _loss_from_logits(self, z: np.ndarray, labels: np.ndarray, weights: Any) -> float:
        # checked labels and weights: the mean cross-entropy by the private kernel, plus the penalty
        total = weight_total(weights, z.shape[0])
        loss = cross_entropy_sum(z, labels, weights) / total if total else 0.0
        if self.l2 or self.l1:
            loss += self._penalty()
        return float(loss)

    def _penalty(self) -> float:
        # the penalty terms of the objective, ``0.5 * l2 * ||W||^2 + l1 * ||W||_1``
        # (0.0 without a penalty)
        return l2_penalty(self.coef, self.l2) + l1_penalty(self.coef, self.l1)

    def __repr__(self) -> str:
        return (
            f"SoftmaxModel(n_features={self.n_features}, n_classes={self.n_classes}, "
            f"dtype={self.dtype.name}, l2={self.l2!r}, fit_intercept={self.fit_intercept}"
            + (f", l1={self.l1!r})" if self.l1 else ")")
        )


def iter_minibatches(
    n_samples: int,
    batch_size: int,
    *,
    shuffle: bool = False,
    random_state: int | np.random.Generator | None = None,
) -> Iterator[slice | np.ndarray]:
    """Yield index arrays (or slices) covering ``range(n_samples)`` in minibatches.

    Parameters
    ----------
    n_samples : int
    batch_size : int
        Size of every minibatch but possibly the last.
    shuffle : bool, default=False
        Visit the samples in a random order.
    random_state : int, numpy.random.Generator, numpy.random.RandomState or None
        Source of the order when ``shuffle`` is True.

    Yields
    ------
    slice or ndarray of int
        A slice (no shuffling: rows are taken without a copy) or an index array.

    Examples
    --------
    >>> from fastsoftmax.trainer import iter_minibatches
    >>> list(iter_minibatches(5, 2))
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    >>> sorted(int(i) for b in iter_minibatches(5, 2, shuffle=True, random_state=0) for i in b)
    [0, 1, 2, 3, 4]
    """
    n_samples = check_int("n_samples", n_samples, 0)
    batch_size = check_int("batch_size", batch_size, 1)
    order = _epoch_order(n_samples, shuffle, random_state)
    for start in range(0, n_samples, batch_size):
        if order is None:
            yield slice(start, min(start + batch_size, n_samples))
        else:
            yield order[start : start + batch_size]


def _epoch_order(
    n_samples: int, shuffle: bool, random_state: int | np.random.Generator | None
) -> np.ndarray | None:
    """The order of an epoch's samples: None (as they are) or a permutation."""
    if not shuffle:
        return None
    if isinstance(random_state, np.random.RandomState):
        return random_state.permutation(n_samples)
    return np.random.default_rng(random_state).permutation(n_samples)


class Trainer:
    """Minibatch training loop pieces: train, test, running averages.

    Parameters
    ----------
    model : SoftmaxModel
        The model whose parameters are trained in place.
    learner : Learner or str, default="sgd"
        A learner from :mod:`fastsoftmax.learners`, or its name (created with
        its default hyper-parameters).
    track_train_error : bool, default=True
        Compute the classification error of each training minibatch (before
        its update).  This costs one extra ``X W`` per minibatch; turn it off
        for the fastest training.

    Attributes
    ----------
    epoch : int
        The current epoch (0-based), given to the learner's schedule;
        advanced by :meth:`next_epoch` (and :meth:`train_epoch`).
    n_minibatches : int
        Training minibatches seen.
    n_samples_seen : int
        Training samples seen.
    last_loss, last_error : float
        Loss and error of the last training minibatch (NaN before any).
    last_test_error : float
        Error of the last tested minibatch (NaN before any).

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import SoftmaxModel, Trainer
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    >>> trainer = Trainer(SoftmaxModel(2, 2), "sgd")
    >>> round(trainer.train_minibatch(X, [0, 1]), 6)  # log(2), before the update
    0.693147
    >>> trainer.test_minibatch(X, [0, 1])
    0.0
    >>> trainer.test_minibatch(X, [1, 1])
    0.5
    >>> trainer.n_minibatches, trainer.learner.t
    (1, 1)
    """

    def __init__(self, model: Any, learner: Any = "sgd", *, track_train_error: bool = True) -> None:
        for attr in ("parameters", "loss_grad", "decision_function"):
            if not callable(getattr(model, attr, None)):
                raise TypeError(
                    f"model must provide {attr}() like SoftmaxModel, got {type(model).__name__}"
                )
        self.model = model
        # a SoftmaxModel (whose loss_grad and decision_function are its own) is trained
        # through its private, non-validating methods and may use a compiled epoch kernel
        self._fused = isinstance(model, SoftmaxModel) and all(
            getattr(type(model), attr) is getattr(SoftmaxModel, attr)
            for attr in ("parameters", "loss_grad", "decision_function")
        )
        self.learner = get_learner(learner)
        self.track_train_error = bool(track_train_error)
        self.epoch = 0
        self.n_minibatches = 0
        self.n_samples_seen = 0
        self.last_loss = math.nan
        self.last_error = math.nan
        self.last_test_error = math.nan
        self.reset_running()

    # -- running averages ------------------------------------------------------

    def reset_running(self) -> None:
        """Restart the running averages (e.g. at the start of an epoch)."""
        self._loss_sum = 0.0
        self._loss_weight = 0.0
        self._error_sum = 0.0
        self._error_count = 0
        self._test_error_sum = 0.0
        self._test_count = 0

    @property
    def running_loss(self) -> float:
        """Mean training loss per sample since :meth:`reset_running` (NaN if none).

        Minibatch losses are weighted by their size (or total sample weight),
        so at the end of an epoch this is the epoch's mean minibatch loss.
        """
        return self._loss_sum / self._loss_weight if self._loss_weight else math.nan

    @property
    def running_error(self) -> float:
        """Training classification error since :meth:`reset_running` (NaN if none)."""
        return self._error_sum / self._error_count if self._error_count else math.nan

    @property
    def running_test_error(self) -> float:
        """Error over the samples tested since :meth:`reset_running` (NaN if none)."""
        return self._test_error_sum / self._test_count if self._test_count else math.nan

    # -- the loop ---------------------------------------------------------------

    def train_minibatch(
        self, X: DataMatrix, y: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> float:
        """One learner step on a minibatch.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : array_like of shape (n_samples,)
            Class indices.
        sample_weight : array_like of shape (n_samples,), optional

        Returns
        -------
        loss : float
            The minibatch's loss before the update.
        """
        model = self.model
        X = check_data_matrix(X)
        n = X.shape[0]
        y = check_labels(y, n, model.n_classes, classes_from="the model has")
        if self._fused:
            X = model._check_X(X)
            sample_weight = check_sample_weight(sample_weight, n, model._compute_dtype(X))
        return self._train_step(X, y, sample_weight)

    def _train_step(
        self,
        X: DataMatrix,
        y: Any,
        sample_weight: Any,
        normalizer: float | None = None,
    ) -> float:
        """:meth:`train_minibatch` on checked data (no validation for a SoftmaxModel).

        ``normalizer`` divides the minibatch's data term instead of its weight
        total (see :mod:`fastsoftmax._objective`).
        """
        model = self.model
        n = X.shape[0]
        if self.track_train_error:
            # error of the same parameters the loss is measured at (before the step)
            if self._fused:  # the backend's kernel on logits and labels checked already
                error = float(get_module().classification_error(model._decision(X), y))
            else:
                error = classification_error(model.decision_function(X), y)
        if self._fused:
            loss, grads = model._param_grads(X, y, sample_weight, normalizer)
        else:  # a model of the user's: its public methods
            loss, dW, db = model.loss_grad(X, y, sample_weight)
            grads = [dW, db]
        params = model.parameters()
        l1 = getattr(model, "l1", 0.0)
        if l1:  # the learner steps along the L1 pseudo-gradient, within its orthant
            loss += l1_penalty(params[0], l1)
            grads = [np.array(grads[0], dtype=params[0].dtype), *grads[1:]]
            orthant = l1_pseudo_gradient(params[0], grads[0], l1)
        self.learner.step(params, grads[: len(params)], epoch=self.epoch)
        if l1:
            l1_orthant_project(params[0], orthant)
        self._record_step(loss, error if self.track_train_error else math.nan, n, sample_weight)
        return loss

    def _record_step(self, loss: float, error: float, n: int, sample_weight: Any) -> None:
        """Book one trained minibatch of ``n`` rows: running averages, last values, counters."""
        weight = n if sample_weight is None else float(np.sum(sample_weight, dtype=np.float64))
        self._loss_sum += loss * weight
        self._loss_weight += weight
        self.last_loss = loss
        if self.track_train_error:
            self.last_error = error
            self._error_sum += error * n
            self._error_count += n
        self.n_minibatches += 1
        self.n_samples_seen += n

    def test_minibatch(self, X: DataMatrix, y: ArrayLike) -> float:
        """Classification error of the model on a minibatch (no update).

        Returns
        -------
        error : float
            Fraction misclassified, in [0, 1].
        """
        z = self.model.decision_function(X)
        error = classification_error(z, y)
        n = z.shape[0]
        self.last_test_error = error
        self._test_error_sum += error * n
        self._test_count += n
        return error

    def evaluate(
        self,
        X: DataMatrix,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
        *,
        batch_size: int | None = None,
    ) -> tuple[float, float]:
        """Loss and error of the model on a dataset, without updating it.

        Parameters
        ----------
        X, y, sample_weight
            As for :meth:`train_minibatch`.
        batch_size : int, optional
            Evaluate in chunks of this many rows to bound memory; ``None``
            evaluates at once.

        Returns
        -------
        loss : float
            The training objective (mean cross-entropy plus the L2 term).
        error : float
            Fraction misclassified.
        """
        model = self.model
        X = check_data_matrix(X)
        n = X.shape[0]
        labels = check_labels(y, n, model.n_classes, classes_from="the model has")
        weights = check_sample_weight(sample_weight, n, model.dtype)
        decide = model.decision_function
        if self._fused:  # the model's private kernels on checked data: no check per chunk
            X, decide = model._check_X(X), model._decision
        if batch_size is not None:
            batch_size = check_int("batch_size", batch_size, 1)
        if batch_size is None or n <= batch_size:
            chunks: Iterator[tuple[Any, np.ndarray, Any]] = iter([(X, labels, weights)])
        else:  # slices of X (a copy of each chunk's rows only for CSR)
            chunks = ((X[idx], labels[idx], None if weights is None else weights[idx])
                      for idx in iter_minibatches(n, batch_size))  # fmt: skip
        ce_sum = wrong = 0.0
        for X_chunk, y_chunk, w_chunk in chunks:
            z = decide(X_chunk)
            if self._fused:
                ce_sum += cross_entropy_sum(z, y_chunk, w_chunk)
            else:
                ce_sum += float(cross_entropy(z, y_chunk, reduction="sum", sample_weight=w_chunk))
            wrong += classification_error(z, y_chunk) * z.shape[0]
        total = weight_total(weights, n)
        loss = ce_sum / total if total else 0.0
        if model.l2 or getattr(model, "l1", 0.0):
            loss += model._penalty()
        return loss, wrong / n if n else classification_error(z, labels)

    def next_epoch(self) -> None:
        """Advance the epoch counter (the learning-rate schedule is per epoch)."""
        self.epoch += 1

    def train_epoch(
        self,
        X: DataMatrix,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
        *,
        batch_size: int = 256,
        shuffle: bool = True,
        random_state: int | np.random.Generator | None = None,
    ) -> float:
        """Train on every minibatch of ``(X, y)`` once, then advance the epoch.

        The loop is per minibatch (each one a few vectorised kernel calls),
        never per sample.  The running averages are reset first, so after the
        call :attr:`running_loss` is the epoch's mean training loss.

        Parameters
        ----------
        X, y, sample_weight
            As for :meth:`train_minibatch`.
        batch_size : int, default=256
        shuffle : bool, default=True
            Visit the samples in a new random order.
        random_state : int, numpy.random.Generator, numpy.random.RandomState or None
            Source of the order; pass a Generator to get a new order each epoch.

        Returns
        -------
        loss : float
            Mean training loss of the epoch (each minibatch's loss before its
            update).
        """
        model = self.model
        X = check_data_matrix(X)
        n = X.shape[0]
        y = check_labels(y, n, model.n_classes, classes_from="the model has")
        batch_size = check_int("batch_size", batch_size, 1)
        if self._fused:
            X = model._check_X(X)
            if not is_sparse(X):
                X = np.ascontiguousarray(X)  # one copy at most, not one a minibatch
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, n, model.dtype)
        self.reset_running()
        # the Python loop: the Trainer records each minibatch's loss (and error)
        _epoch_driver.run_epoch(
            self, X, y, sample_weight, _epoch_order(n, shuffle, random_state), batch_size,
            compiled=False,
        )  # fmt: skip
        self.next_epoch()
        return self.running_loss

    def progress(self) -> str:
        """One line of training progress, e.g. for printing every k minibatches.

        Examples
        --------
        >>> import numpy as np
        >>> from fastsoftmax import SoftmaxModel, Trainer
        >>> trainer = Trainer(SoftmaxModel(2, 2))
        >>> _ = trainer.train_minibatch(np.eye(2, dtype=np.float32), [0, 1])
        >>> trainer.progress()
        'epoch 0, minibatch 1: loss 0.6931 (running 0.6931), error 50.00% (running 50.00%)'
        """
        line = (
            f"epoch {self.epoch}, minibatch {self.n_minibatches}: "
            f"loss {self.last_loss:.4f} (running {self.running_loss:.4f})"
        )
        if self.track_train_error:
            line += f", error {self.last_error:.2%} (running {self.running_error:.2%})"
        if self._test_count:
            line += f", test error {self.running_test_error:.2%}"
        return line

    def __repr__(self) -> str:
        return f"Trainer(model={self.model!r}, learner={self.learner!r})"
