"""Softmax regression by minibatch gradient descent: :class:`SoftmaxRegression`."""

from __future__ import annotations

import copy
import math
import time
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from .. import _dask, _epoch_driver
from .._validation import check_all_finite, check_bool, check_int, check_l2, check_real, check_verbose
from ..learners import Learner, get_learner, get_schedule
from ..persistence import register
from ..trainer import SoftmaxModel, Trainer
from ._base import _check_y, _encode_labels, _LinearClassifier, _plain

__all__ = ["SoftmaxRegression"]


# ---------------------------------------------------------------------------
# SoftmaxRegression


#: learning rates of ``learning_rate="auto"`` for the scale-free learners, tuned for
#: minibatch softmax regression; the others not here use their own defaults
_AUTO_LEARNING_RATE = {"adam": 0.01}
#: ``learning_rate="auto"`` of the SGD family: ``max(floor, c / lambda)``, with ``lambda``
#: the minibatches' curvature (:func:`_minibatch_curvature`), as ``{kind: (c, floor)}``.
#: The floors are the rates tuned on pixels in [0, 1] (MNIST, lambda = 37: 0.5 for SGD)
#: and kept on dense data (lambda of 10 standard-normal features: 2.0; 2 standardised blob
#: features: 1.3); rows that share few features (TF-IDF, lambda = 0.041) get the larger rate
#: their rarely updated weight rows need (24).  Never below the floor: a smaller shared rate
#: starves the intercepts, whose gradient does not grow with X (scikit-learn's
#: check_class_weight_classifiers, blobs of std 20, fails for every SGD rate under 0.5)
_AUTO_RATE_OVER_CURVATURE = {"sgd": (1.0, 0.5), "momentum": (0.02, 0.01),
                             "nesterov": (0.02, 0.01)}  # fmt: skip
_CURVATURE_SAMPLE_ROWS = 2048
_CURVATURE_GROUP_ROWS = 256
#: the schedule of ``schedule="auto"``: ``lr / sqrt(epoch + 1)``.  Its sum diverges, so
#: every further epoch still moves towards the optimum (a halving schedule stops after a
#: few epochs wherever it is), while its decay shrinks the minibatch noise
_AUTO_SCHEDULE = {"kind": "invscaling", "power_t": 0.5}


_Self = TypeVar("_Self", bound="SoftmaxRegression")


@register
class SoftmaxRegression(_LinearClassifier):
    r"""Softmax (multinomial logistic) regression trained by minibatch gradient descent.

    The model is ``P = softmax(X W + b)`` with the mean cross-entropy plus
    ``0.5 * l2 * ||W||^2`` (or the elastic-net penalty of ``l1_ratio``) as the loss,
    trained for up to ``max_epochs``
    passes over shuffled minibatches with a learner from
    :mod:`fastsoftmax.learners`, until the loss stops improving by ``tol``.  The
    loop is per minibatch, each minibatch one fused kernel call, never per
    sample.  float32 data is trained in float32, and uint8 pixel arrays are
    read as they are (0..255; scale them, e.g. ``X / 255``, for the default
    learning rates).

    Parameters
    ----------
    optimizer : str or Learner, default="sgd"
        ``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adagrad"``,
        ``"adadelta"``, ``"rmsprop"``, ``"adam"`` or a
        :class:`~fastsoftmax.learners.Learner` instance (copied, never
        modified).
    learning_rate : float or "auto", default="auto"
        Base learning rate.  ``"auto"``: for ``"sgd"`` ``max(0.5, 1 / lam)``
        and for ``"momentum"`` and ``"nesterov"`` ``max(0.01, 0.02 / lam)``,
        where ``lam``, the minibatches' curvature, is the mean over groups
        ``B`` of ``min(batch_size, 256)`` training rows of
        ``lambda_max(X_B X_B^T) / |B|`` (in float64, on every
        ``ceil(n_samples / 2048)``-th row: the same rows for dense and sparse
        X; weighted by the sample and class weights).  ``lam`` is near the
        rows' mean squared norm when they point alike and near
        ``||x||^2 / |B|`` when they share no feature: 0.5 and 0.01 on dense
        data (MNIST pixels in [0, 1]: ``lam = 37``; standardised features),
        about 24 for SGD on TF-IDF rows, whose rarely updated weight rows need
        the larger steps.  Not below the floor, where ``lam`` is large: a
        smaller rate would starve the intercepts; scale such X (e.g. uint8
        pixels / 255).  ``partial_fit`` measures ``lam`` on its first call's
        X.  0.01 for Adam; the learner's own default for the other,
        scale-free, learners (an instance keeps its rate).
    schedule : str, dict, Schedule, None or "auto", default="auto"
        Per-epoch learning-rate schedule (see
        :func:`fastsoftmax.learners.get_schedule`; ``None`` is constant).
        ``"auto"``: ``learning_rate / sqrt(epoch + 1)``
        (``InverseScaling(0.5)``), under which more epochs keep improving the
        objective, except that an optimizer instance keeps its own schedule.
    batch_size : int, default=32
        Minibatch size (the last minibatch of an epoch may be smaller).
    max_epochs : int, default=100
        Maximum number of passes over the training data; training stops
        earlier when the loss has not improved by ``tol`` for
        ``n_iter_no_change`` epochs.
    shuffle : bool, default=True
        Visit the samples in a new random order every epoch.
    random_state : int, numpy Generator/RandomState or None, default=None
        Seed of the shuffling and of the validation split: the same seed
        gives the same model.
    l2 : float, default=0.0
        Strength of the penalty on the weights (not on the intercepts):
        ``0.5 * l2 * ||W||^2`` with the default ``l1_ratio=0``.
    l1_ratio : float, default=0.0
        The elastic-net mixing of the penalty, in ``[0, 1]``, as in
        scikit-learn's ``SGDClassifier``: the penalty is
        ``l2 * (l1_ratio * ||W||_1 + 0.5 * (1 - l1_ratio) * ||W||^2)``, so
        0 is L2, 1 is L1 (which sets weights to exactly 0) and values
        between are elastic-net.  The L1 part is applied after every learner
        step as a proximal step, soft-thresholding the weights by the
        epoch's learning rate times ``l2 * l1_ratio``
        (:func:`fastsoftmax.learners.l1_proximal_step`), in the compiled
        epoch kernels.
    fit_intercept : bool, default=True
        Learn the intercepts.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (or use
        ``validation_data``), stop when the validation loss has not improved
        by ``tol`` for ``n_iter_no_change`` epochs, and restore the weights of
        the best epoch.
    validation_fraction : float, default=0.1
        Fraction of the training data held out for early stopping, in (0, 1).
    n_iter_no_change : int, default=5
        Epochs without improvement before stopping.
    tol : float or None, default=1e-3
        Minimum decrease of the monitored loss that counts as improvement: the
        validation loss with ``early_stopping``, else the training loss (as
        scikit-learn's ``SGDClassifier``).  ``None`` runs all ``max_epochs``.
    class_weight : dict, "balanced" or None, default=None
        Weights ``{label: weight}`` multiplied into the sample weights.
    warm_start : bool, default=False
        Start ``fit`` from the previous coefficients.
    verbose : int, default=0
        0: silent; 1: a progress bar per epoch with the loss (and the validation
        accuracy, given ``validation_data``; tqdm);
        2: one line per epoch with the training loss, validation loss and
        error and the epoch's time.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        For two classes one row, the difference of the two softmax rows (the
        log-odds of ``classes_[1]``), as in scikit-learn.
    intercept_ : ndarray of shape (1,) or (n_classes,)
    n_iter_ : int
        Number of epochs run by the last ``fit`` (or ``partial_fit``) call.
    n_features_in_ : int
    history_ : dict of lists
        Per epoch: ``"train_loss"`` (mean minibatch loss), ``"val_loss"`` and
        ``"val_error"`` (NaN without validation data) and ``"epoch_time"``
        (seconds).
    best_epoch_ : int
        Index (into the ``history_`` lists) of the epoch with the lowest
        validation loss (training loss without validation data).

    Notes
    -----
    With a built-in learner, an epoch is one call of the backend's compiled
    whole-epoch kernel when it has one (the numba kernel is used under the
    Cython backend if that has none); otherwise the :class:`~fastsoftmax.Trainer`
    runs one fused kernel call per minibatch.  Both give the same model.

    On a scipy.sparse matrix with plain SGD (and no L1 term), each minibatch
    reads and writes only the weight rows of the features it contains (the
    lazy update: the L2 shrinkage of the other rows is caught up exactly when
    they are next used and at the end of each epoch), so an epoch costs
    O(nnz x n_classes) and gives the model of the dense input to rounding.
    The other optimizers keep the dense step on sparse input: their state of
    every weight moves at every step.  TF-IDF rows have norm 1, far smaller
    than pixel rows and the rows of a minibatch share few features: the
    ``"auto"`` rate, inversely proportional to the minibatches' curvature
    above its floor, is about 24 on them (rates up to about
    ``2 * batch_size / mean(||x||^2)`` train well).

    With ``sample_weight`` or ``class_weight`` the data term of each
    minibatch is ``sum_i s_i l_i / (batch_size * mean(s))``, an unbiased
    estimate of scikit-learn's weighted objective (so a weight of 2 acts like
    a duplicated sample), rather than the minibatch's weighted mean.

    See Also
    --------
    LogisticRegression : full-batch L-BFGS, scikit-learn's objective.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import SoftmaxRegression
    >>> rng = np.random.default_rng(0)
    >>> centers = np.array([[0.0, 2.0], [2.0, 0.0], [-2.0, -2.0]], dtype=np.float32)
    >>> y = rng.integers(0, 3, size=300)
    >>> X = centers[y] + rng.standard_normal((300, 2)).astype(np.float32)
    >>> clf = SoftmaxRegression(max_epochs=5, random_state=0).fit(X, y)
    >>> clf.coef_.shape, clf.coef_.dtype, len(clf.history_["train_loss"])
    ((3, 2), dtype('float32'), 5)
    >>> clf.score(X, y) > 0.9
    True
    """

    _uint8_dtype = np.float32  # pixels train in float32, the fast path

    def __init__(
        self,
        optimizer: str | Learner = "sgd",
        *,
        learning_rate: float | str = "auto",
        schedule: Any = "auto",
        batch_size: int = 32,
        max_epochs: int = 100,
        shuffle: bool = True,
        random_state: int | np.random.RandomState | np.random.Generator | None = None,
        l2: float = 0.0,
        l1_ratio: float = 0.0,
        fit_intercept: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 5,
        tol: float = 1e-3,
        class_weight: dict[Any, float] | str | None = None,
        warm_start: bool = False,
        verbose: int = 0,
    ) -> None:
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.schedule = schedule
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.shuffle = shuffle
        self.random_state = random_state
        self.l2 = l2
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.verbose = verbose

    # -- pieces -----------------------------------------------------------------

    def _make_learner(
        self, X: Any = None, sample_weight: NDArray[Any] | None = None, rows: Any = None
    ) -> Learner:
        """The learner of ``optimizer``, its ``"auto"`` rate measured on the training data.

        ``sample_weight``: the objective's weights of X's rows; ``rows``: the
        training rows of a validation split (None: all).  Without ``X`` (checking
        the parameters only) the SGD family's rate is its floor.
        """
        optimizer = self.optimizer
        auto_lr = isinstance(self.learning_rate, str) and self.learning_rate == "auto"
        auto_schedule = isinstance(self.schedule, str) and self.schedule == "auto"
        lr = None if auto_lr else check_real("learning_rate", self.learning_rate, low_open=True)
        if isinstance(optimizer, Learner):
            # a copy (of the user's class, which may be a subclass) with a fresh state;
            # the user's instance is never modified
            learner = copy.deepcopy(optimizer)
            learner.reset()
            if lr is not None:
                learner.learning_rate = lr
            if not auto_schedule:
                learner.schedule = get_schedule(self.schedule)
            return learner
        if not isinstance(optimizer, str):
            raise TypeError(
                "optimizer must be a learner name or a Learner instance, "
                f"got {type(optimizer).__name__}"
            )
        kind = optimizer.strip().lower()
        config: dict[str, Any] = {"kind": kind}
        if lr is not None:
            config["learning_rate"] = lr
        elif kind in _AUTO_RATE_OVER_CURVATURE:
            scale, floor = _AUTO_RATE_OVER_CURVATURE[kind]
            curvature = 0.0
            if X is not None:
                batch_size = check_int("batch_size", self.batch_size, 1)
                curvature = _minibatch_curvature(X, sample_weight, batch_size, rows,
                                                 enough=scale / floor)  # fmt: skip
            config["learning_rate"] = max(floor, scale / curvature) if curvature > 0 else floor
        elif kind in _AUTO_LEARNING_RATE:
            config["learning_rate"] = _AUTO_LEARNING_RATE[kind]
        config["schedule"] = dict(_AUTO_SCHEDULE) if auto_schedule else self.schedule
        return get_learner(**config)

    def _rng(self) -> np.random.Generator | np.random.RandomState:
        rs = self.random_state
        if isinstance(rs, (np.random.Generator, np.random.RandomState)):
            return rs
        if rs is not None:
            check_int("random_state", rs, 0)
        return np.random.default_rng(rs)

    def _new_model(self, n_features: int, dtype: Any) -> SoftmaxModel:
        strength = check_l2(self.l2)
        l1_ratio = check_real("l1_ratio", self.l1_ratio, high=1.0)
        return SoftmaxModel(
            n_features,
            max(2, self.classes_.shape[0]),
            dtype=dtype,
            # as SGDClassifier's elastic-net: l1_ratio of the strength on ||W||_1
            l2=strength * (1.0 - l1_ratio),
            l1=strength * l1_ratio,
            fit_intercept=check_bool("fit_intercept", self.fit_intercept),
        )

    def _load_params(self, model: SoftmaxModel) -> None:
        """Set the model's ``coef, b`` from ``coef_, intercept_`` (two classes: antisymmetric).

        From three classes on, ``coef_`` has the layout of the model's ``coef``
        and is copied in without a transpose; it is not trained in place, so a
        fit that fails part-way (a diverging loss) leaves the estimator as it was.
        """
        coef, intercept = self.coef_, self.intercept_
        if coef.shape[0] == 1:
            # the softmax gradient of a two-class model is antisymmetric, so training from
            # zero keeps W = [-c/2, c/2]: this is the exact training state, not an approximation
            half = coef[0] / 2
            model.coef[0], model.coef[1] = -half, half
            model.b[...] = [-intercept[0] / 2, intercept[0] / 2]
            return
        model.coef[...] = coef
        if model.fit_intercept:
            model.b[...] = intercept

    def _store_params(self, model: SoftmaxModel) -> None:
        """Take ``coef_, intercept_`` from the model (its ``coef`` itself from three classes on)."""
        coef, b = model.coef, model.b if model.fit_intercept else np.zeros_like(model.b)
        if coef.shape[0] == 2:
            self.coef_ = (coef[1] - coef[0])[None, :]
            self.intercept_ = np.array([b[1] - b[0]], dtype=coef.dtype)
        else:
            self.coef_ = coef  # the model is not used after fit: no copy
            self.intercept_ = b if model.fit_intercept else b.copy()

    def _encode_known(self, y: NDArray[Any], name: str = "y") -> NDArray[np.intp]:
        """Indices of labels ``y`` in ``classes_``; unknown labels raise."""
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, self.classes_.shape[0] - 1)
        unknown = self.classes_[idx] != y
        if np.any(unknown):
            raise ValueError(
                f"{name} contains label {_plain(y[unknown][0])!r}, which is not in classes_ "
                f"{self.classes_.tolist()}"
            )
        return np.ascontiguousarray(idx, dtype=np.intp)

    def _check_training_params(self) -> dict[str, Any]:
        return dict(
            batch_size=check_int("batch_size", self.batch_size, 1),
            max_epochs=check_int("max_epochs", self.max_epochs, 1),
            shuffle=check_bool("shuffle", self.shuffle),
            early_stopping=check_bool("early_stopping", self.early_stopping),
            validation_fraction=check_real(
                "validation_fraction", self.validation_fraction, low_open=True, high=1.0
            ),
            n_iter_no_change=check_int("n_iter_no_change", self.n_iter_no_change, 1),
            tol=None if self.tol is None else check_real("tol", self.tol),
            verbose=check_verbose(self.verbose),
            warm_start=check_bool("warm_start", self.warm_start),
        )

    # -- fitting ------------------------------------------------------------------

    def fit(
        self: _Self,
        X: ArrayLike,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
        validation_data: tuple[ArrayLike, ArrayLike] | None = None,
        *,
        persist: bool = False,
    ) -> _Self:
        """Train for ``max_epochs`` epochs (fewer with early stopping).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            float32, float64 or uint8 (read as 0..255, not scaled).
        y : array_like of shape (n_samples,)
            Class labels (ints, strings, ...).
        sample_weight : array_like of shape (n_samples,), optional
            Non-negative weights; each minibatch loss is a weighted mean.
        validation_data : tuple (X_val, y_val), optional
            Held-out data evaluated after every epoch (``history_``); with
            ``early_stopping`` it is the data monitored instead of a split of
            the training data.
        persist : bool, default=False
            Dask input only (ignored for in-memory X): keep X's checked blocks
            in the cluster's memory for the duration of this fit, so that the
            epochs do not read X from its source again (see
            :meth:`LogisticRegression.fit <fastsoftmax.LogisticRegression.fit>`).

        Returns
        -------
        self : SoftmaxRegression
        """
        # a fit that raises (NaN in X, found by the first epoch; a diverging loss) leaves
        # self as it was
        with _dask.unchanged_on_error(self):
            return self._fit(X, y, sample_weight, validation_data, persist)

    def _fit(
        self: _Self, X: Any, y: Any, sample_weight: Any, validation_data: Any, persist: bool
    ) -> _Self:
        opts = self._check_training_params()
        # warm start: _load_params reads coef_ and intercept_, which stay until _store_params
        previous = None
        if opts["warm_start"] and hasattr(self, "coef_"):
            previous = (self.classes_, self.n_features_in_)
        # the NaN/inf screen of dense float X would cost a read of X, about a third of a
        # one-epoch fit: the first epoch screens it instead (see _run_epochs)
        X, y_idx, sw, dtype = self._fit_data(X, y, sample_weight, persist=persist,
                                             screen_dense=False)  # fmt: skip
        unscreened = X if _screened_by_first_epoch(X, sw) else None
        if unscreened is None and isinstance(X, np.ndarray):
            check_all_finite(X)
        rng = self._rng()

        X_val = y_val = None
        if validation_data is not None:
            try:
                X_val, y_val = validation_data
            except (TypeError, ValueError):
                raise ValueError("validation_data must be a pair (X_val, y_val)") from None
            X_val = self._validate_X(X_val, reset=False)
            y_val = self._encode_known(_check_y(y_val, X_val.shape[0]), "validation_data's y")
        elif opts["early_stopping"]:
            if isinstance(X, _dask.Blocks):
                raise ValueError(_dask.EARLY_STOPPING_NEEDS_VALIDATION_DATA)
            n = X.shape[0]
            n_val = int(round(opts["validation_fraction"] * n))
            if n_val < 1 or n_val >= n:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} of {n} samples leaves "
                    f"{n_val} for validation and {n - n_val} for training; both need at least one"
                )
            order = rng.permutation(n)
            val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
            X_val, y_val = X[val], y_idx[val]
            if unscreened is not None:  # the epochs never read these rows
                check_all_finite(X_val)
            # the epochs visit the training rows of X in place: no copy of 90% of X
            opts["train_rows"] = train

        model = self._new_model(X.shape[1], dtype)
        # like LogisticRegression: other classes or features start again from zero
        if (
            previous is not None
            and np.array_equal(previous[0], self.classes_)
            and previous[1] == self.n_features_in_
        ):
            self._load_params(model)
        self._learner = self._make_learner(X, sw, opts.get("train_rows"))
        self.history_ = _new_history()
        try:
            self._run_epochs(model, X, y_idx, sw, X_val, y_val, opts, rng, opts["max_epochs"],
                             unscreened=unscreened)  # fmt: skip
        finally:
            _dask.release(X)  # the actors holding a Dask X's blocks end with the fit
        return self

    @_dask.atomic_on_dask
    def partial_fit(
        self: _Self,
        X: ArrayLike,
        y: ArrayLike,
        classes: ArrayLike | None = None,
        sample_weight: ArrayLike | None = None,
    ) -> _Self:
        """Train for one epoch on ``(X, y)``, continuing from the current state.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : array_like of shape (n_samples,)
        classes : array_like of shape (n_classes,), optional
            All the labels that will ever appear; required on the first call
            (and, if given later, equal to ``classes_``).
        sample_weight : array_like of shape (n_samples,), optional

        Returns
        -------
        self : SoftmaxRegression
        """
        opts = self._check_training_params()
        first = not hasattr(self, "_learner")
        if first:
            if classes is None:
                raise ValueError(
                    "classes must be given on the first call to partial_fit "
                    "(all the labels that will appear)"
                )
            classes = np.asarray(classes)
            if classes.ndim != 1:
                raise ValueError(
                    f"classes must be a 1-D array of labels, got shape {classes.shape}"
                )
            self.classes_, _ = _encode_labels(classes, self)
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(
                f"classes={np.unique(classes).tolist()} differs from "
                f"classes_={self.classes_.tolist()} of the first partial_fit call"
            )
        if self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' needs all the data; pass a dict to partial_fit, "
                "or use fit"
            )
        if _dask.is_dask_collection(X):  # checked block by block: fastsoftmax._dask.Blocks
            X, y_idx, sw, dtype = _dask.fit_data(self, X, y, sample_weight, self.classes_,
                                                 reset=first, dtype=None if first else self.coef_.dtype)  # fmt: skip
        else:
            X = self._validate_X(X, reset=first)
            y_idx = self._encode_known(_check_y(y, X.shape[0]))
            dtype = self._param_dtype(X) if first else self.coef_.dtype
            sw = self._weights(y_idx, sample_weight, X.shape[0], dtype)
        model = self._new_model(X.shape[1], dtype)
        if first:
            self._learner = self._make_learner(X, sw)
            self.history_ = _new_history()
        else:
            self._load_params(model)
        opts["early_stopping"] = False
        try:
            self._run_epochs(model, X, y_idx, sw, None, None, opts, self._rng(), 1)
        finally:
            _dask.release(X)
        return self

    def _run_epochs(
        self,
        model: SoftmaxModel,
        X: Any,
        y_idx: Any,
        sw: NDArray[Any] | None,
        X_val: Any,
        y_val: Any,
        opts: dict[str, Any],
        rng: np.random.Generator | np.random.RandomState,
        n_epochs: int,
        unscreened: NDArray[Any] | None = None,
    ) -> None:
        """The epoch loop: train, evaluate, record, report, stop early.

        ``unscreened``: X, not yet screened for NaN and infinity.  A NaN or an
        infinity in a row makes all its logits, and so the epoch's loss, NaN,
        so the exact screen runs only when the first epoch's loss is not finite.
        """
        trainer = Trainer(model, self._learner, track_train_error=False)
        history = self.history_
        first_epoch = len(history["train_loss"])
        monitor = history["val_loss"] if X_val is not None else history["train_loss"]
        # the stopping rule watches the validation loss only under early stopping (as
        # scikit-learn's SGDClassifier); validation_data alone is for the record
        watched = history["val_loss"] if opts["early_stopping"] else history["train_loss"]
        best_loss, best_params, stall = min(watched, default=math.inf), None, 0
        n_batches = -(-_n_train(X, opts) // opts["batch_size"])
        # partial_fit runs exactly its one epoch
        tol = opts["tol"] if n_epochs > 1 else None
        epochs_run = 0
        for epoch in range(first_epoch, first_epoch + n_epochs):
            start = time.perf_counter()
            trainer.epoch = epoch  # the learning-rate schedule is per epoch
            bar = None
            if opts["verbose"] == 1:
                from tqdm.auto import tqdm

                bar = tqdm(total=n_batches, desc=f"epoch {epoch + 1}", unit="batch", leave=True)
            # NaN or inf in unscreened X: no warnings of numpy's, the screen's ValueError
            with np.errstate(invalid="ignore" if unscreened is not None else None):
                train_loss = self._train_epoch(trainer, X, y_idx, sw, opts, rng, bar)
            if unscreened is not None:
                if not math.isfinite(train_loss):
                    check_all_finite(unscreened)  # "Input X contains NaN." or "... infinity."
                unscreened = None
            if not math.isfinite(train_loss):
                raise ValueError(
                    f"the training loss became {train_loss} in epoch {epoch + 1}: "
                    "the learning rate is too large for this data. Lower learning_rate or "
                    "scale X (e.g. pixels / 255, or sklearn.preprocessing.StandardScaler)."
                )
            val_loss = val_error = math.nan
            if X_val is not None:
                val_loss, val_error = trainer.evaluate(X_val, y_val, batch_size=65536)
            elapsed = time.perf_counter() - start
            history["train_loss"].append(float(train_loss))
            history["val_loss"].append(float(val_loss))
            history["val_error"].append(float(val_error))
            history["epoch_time"].append(float(elapsed))
            epochs_run += 1
            if bar is not None:
                postfix = {"loss": f"{train_loss:.4f}"}
                if X_val is not None:
                    postfix["val_acc"] = f"{1 - val_error:.2%}"
                bar.set_postfix(postfix)
                bar.close()
            elif opts["verbose"] >= 2:
                validation = "no validation data"
                if X_val is not None:
                    validation = f"val loss {val_loss:.4f}, val error {val_error:.2%}"
                line = f"epoch {epoch + 1}: train loss {train_loss:.4f}, {validation}"
                print(f"{line}, {elapsed:.2f} s")
            # as scikit-learn: improvement means beating the best by tol; the best is the minimum
            current = watched[-1]
            stall = stall + 1 if current > best_loss - (tol or 0.0) else 0
            if current < best_loss:
                best_loss = current
                if opts["early_stopping"]:
                    best_params = [model.coef.copy(), model.b.copy()]
            if tol is not None and stall >= opts["n_iter_no_change"]:
                if opts["verbose"]:
                    which = "validation" if opts["early_stopping"] else "training"
                    print(f"stopping: the {which} loss stalled for {stall} epochs")
                break
        if best_params is not None:  # restore the best epoch's weights
            model.coef[...], model.b[...] = best_params
        finite = np.isfinite(monitor).any()
        self.best_epoch_ = int(np.nanargmin(monitor)) if finite else len(monitor) - 1
        self.n_iter_ = epochs_run
        self._store_params(model)

    def _train_epoch(
        self,
        trainer: Trainer,
        X: Any,
        y_idx: Any,
        sw: NDArray[Any] | None,
        opts: dict[str, Any],
        rng: np.random.Generator | np.random.RandomState,
        bar: Any,
    ) -> float:
        """One pass over shuffled minibatches; returns the mean minibatch loss."""
        if isinstance(X, _dask.Blocks):  # a chain of one task per block, where the blocks live
            return X.train_epoch(trainer, opts["batch_size"], opts["shuffle"], rng)
        rows = opts.get("train_rows")  # the training rows of a validation split, else all
        order = rng.permutation(_n_train(X, opts)) if opts["shuffle"] else None
        if rows is not None:
            order = rows if order is None else rows[order]
        # a weighted minibatch's data term is divided by len(batch) * mean weight: an
        # unbiased estimate of scikit-learn's objective (a weight of 2 acts as a duplicate)
        train_sw: Any = sw if sw is None or rows is None else sw[rows]  # None only when sw is
        mean_weight = None if sw is None else float(np.mean(train_sw, dtype=np.float64))
        progress = None if bar is None else lambda done, loss: _report(bar, done, loss)
        return _epoch_driver.run_epoch(
            trainer, X, y_idx, sw, order, opts["batch_size"], mean_weight=mean_weight,
            progress=progress,
        )  # fmt: skip


def _screened_by_first_epoch(X: Any, sw: NDArray[Any] | None) -> bool:
    """Whether the first epoch can screen X for NaN and infinity (see ``_run_epochs``).

    Dense float X only (integer X is finite, CSR's values are screened
    already); every row is weighted, so that each NaN reaches the loss.
    """
    floating = isinstance(X, np.ndarray) and X.dtype.kind == "f"
    return floating and (sw is None or bool(np.all(sw > 0)))


def _minibatch_curvature(
    X: Any, sample_weight: Any, batch_size: int, rows: Any = None, enough: float = math.inf
) -> float:
    """The mean of ``lambda_max(X_B X_B^T) / |B|`` over minibatches B of the sample rows.

    It bounds the curvature of a minibatch's mean loss per unit step (times
    ``p (1 - p)``): near the rows' mean squared norm when they point alike
    (pixels), near ``||x||^2 / |B|`` when they share no feature (TF-IDF).  The
    sample: every ``ceil(n / 2048)``-th of ``rows`` (the training rows; all of X
    by default), in groups of ``min(batch_size, 256)`` consecutive rows, weighted
    by ``sqrt(w_i w_j)`` with the weights over their mean (0: no row).
    A lower bound of it, ``mean_B ||sum_B s_i x_i||^2 / |B|^2``, is returned
    instead when it reaches ``enough`` (the rate is then its floor: pixels),
    and 0 when the sample is not finite (the first epoch's screen reports that).
    """
    n_rows = X.shape[0] if rows is None else len(rows)
    step = max(1, -(-n_rows // _CURVATURE_SAMPLE_ROWS))  # every ceil(n / 2048)-th row
    picked = np.arange(0, n_rows, step, dtype=np.intp)
    if rows is not None:
        picked = np.asarray(rows)[picked]
    if picked.shape[0] == 0:
        return 0.0
    if isinstance(X, _dask.Blocks):  # the sample in memory, once (at most 2048 rows)
        X, sample_weight = X.take(picked)
        picked, step = np.arange(picked.shape[0]), 1
    scale = None
    if sample_weight is not None:  # over the mean weight of the whole sample
        weights = np.asarray(sample_weight, dtype=np.float64)[picked]
        mean = float(np.mean(weights))
        if not mean > 0:
            return 0.0
        scale = np.sqrt(weights / mean)
    group = min(batch_size, _CURVATURE_GROUP_ROWS, picked.shape[0])
    n_groups = picked.shape[0] // group  # whole groups only
    # lambda_max(G) >= 1^T G 1 / |B|: the groups' sums, far cheaper than their Gram matrices
    m = n_groups * group
    if rows is None and isinstance(X, np.ndarray):
        sample = X[: m * step : step]  # the rows picked[:m] as a view: no gather
    else:
        sample = X[picked[:m]]
    if scale is None and not sp.issparse(sample):
        sums = sample.reshape(n_groups, group, -1).sum(axis=1, dtype=np.float64)
    else:
        ones = np.ones(m) if scale is None else scale[:m]
        summing = sp.csr_matrix((ones, (np.arange(m) // group, np.arange(m))), shape=(n_groups, m))
        sums = summing @ sample
    squares = sums.multiply(sums).sum(axis=1) if sp.issparse(sums) else np.square(sums).sum(axis=1)
    bound = float(np.mean(squares)) / group**2
    if not math.isfinite(bound):
        return 0.0
    if bound >= enough:
        return bound
    grams = np.empty((n_groups, group, group))
    for g in range(n_groups):  # one group at a time: a float64 copy of at most 256 rows
        block = sample[g * group : (g + 1) * group]
        if sp.issparse(block):  # the product sums duplicate entries, as X means
            block = block.astype(np.float64)
            grams[g] = (block @ block.T).toarray()
        else:
            block = np.asarray(block, dtype=np.float64)
            grams[g] = block @ block.T
        if scale is not None:
            w = scale[g * group : (g + 1) * group]
            grams[g] *= w[:, None] * w[None, :]
    return float(np.mean(np.linalg.eigvalsh(grams)[:, -1])) / group


def _n_train(X: Any, opts: dict[str, Any]) -> int:
    """The number of training rows: those of a validation split, else all of X."""
    rows = opts.get("train_rows")
    return X.shape[0] if rows is None else rows.shape[0]


def _new_history() -> dict[str, list[float]]:
    """An empty ``history_``: one list a key, one entry an epoch."""
    return {"train_loss": [], "val_loss": [], "val_error": [], "epoch_time": []}


def _report(bar: Any, batches_done: int, running_loss: float) -> None:
    bar.update(batches_done - bar.n)
    bar.set_postfix(loss=f"{running_loss:.4f}", refresh=False)
