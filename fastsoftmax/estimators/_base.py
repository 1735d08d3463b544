"""What both estimators share: the data checks and the base class :class:`_LinearClassifier`.

:class:`_LinearClassifier` validates the input, encodes the labels, weighs
the samples, predicts, scores and saves; the estimators add ``fit``.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import types
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .. import _dask, _threads, persistence
from .._objective import decision
from .._validation import as_compute_dtype, check_all_finite, check_class_weight
from .._validation import check_data_matrix, check_real
from .._validation import check_sample_weight, check_sparse_matrix, is_sparse, sparse_values
from ..functions import log_softmax, sigmoid, softmax
from ._compat import BASES, DataConversionWarning, NotFittedError


# ---------------------------------------------------------------------------
# data checks


def _check_X(X: Any, name: str = "X", *, screen_dense: bool = True) -> Any:
    """Validate a data matrix the way scikit-learn does, keeping float32 and uint8.

    A dense result is C-contiguous; a scipy.sparse matrix comes back as the
    CSR matrix of :func:`~fastsoftmax._validation.check_sparse_matrix` (never
    densified), its stored values checked like a dense array's.
    ``screen_dense=False`` leaves the NaN/inf screen of dense X to the caller
    (SoftmaxRegression folds it into the first epoch, which reads X anyway).
    """
    if is_sparse(X):
        X = check_sparse_matrix(X, name)
        return _check_size_and_values(X, sparse_values(X), name)
    try:
        arr = np.asarray(X)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(
            f"{name} must be a 2-D numeric array; could not convert it: {exc}"
        ) from None
    if arr.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} has dtype {arr.dtype}")
    if arr.dtype.kind == "O":  # e.g. object arrays of numbers
        try:
            arr = arr.astype(np.float64)
        except TypeError as exc:
            raise TypeError(
                f"{name} must hold numbers only; "
                f"float() argument must be a string or a number: {exc}"
            ) from None
        except ValueError as exc:
            raise ValueError(f"{name} must hold numbers only: {exc}") from None
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), got shape {arr.shape}. "
            f"Reshape your data with {name}.reshape(-1, 1) if it has a single feature or "
            f"{name}.reshape(1, -1) if it is a single sample."
        )
    X = np.ascontiguousarray(check_data_matrix(arr, name))
    return _check_size_and_values(X, X if screen_dense else None, name)


def _check_size_and_values(X: Any, values: Any, name: str) -> Any:
    # at least one sample and one feature; no NaN or infinity among the (stored) values
    n, d = X.shape
    if n < 1:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required."
        )
    if d < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is required."
        )
    if values is not None:
        check_all_finite(values, name)  # integer X (uint8 pixels) is not read
    return X


def _feature_names(X: Any) -> NDArray[Any] | None:
    """The column names of a data frame as an object array, if they are all strings.

    scikit-learn's rule: names that are all strings are kept, names of other
    types are ignored, a mix of strings and others is an error.
    """
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, np.ndarray) or not hasattr(X, "shape"):
        return None
    names = np.asarray(list(columns), dtype=object)
    if names.shape[0] == 0:
        return None
    types = sorted(t.__qualname__ for t in {type(v) for v in names})
    if len(types) > 1 and "str" in types:
        raise TypeError(
            "Feature names are only supported if all input features have string names, "
            f"but your input has {types} as feature name / column name types. "
            "If you want feature names to be stored and validated, you must convert "
            "them all to strings, by using X.columns = X.columns.astype(str) for "
            "example. Otherwise you can remove feature / column names from your input "
            "data, or convert them all to a non-string data type."
        )
    return names if types == ["str"] else None


def _list_names(names: Sequence[Any], limit: int = 5) -> str:
    listed = "".join(f"- {name}\n" for name in names[:limit])
    return listed + ("- ...\n" if len(names) > limit else "")


def _check_feature_names(estimator: Any, X: Any, *, reset: bool) -> None:
    """Set ``feature_names_in_`` (``reset``) or check X's names against it, as scikit-learn."""
    names = _feature_names(X)
    if reset:
        if names is not None:
            estimator.feature_names_in_ = names
        elif hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_  # refitted on data without names
        return
    fitted = getattr(estimator, "feature_names_in_", None)
    name = type(estimator).__name__
    if fitted is None and names is None:
        return
    if fitted is None:
        warnings.warn(f"X has feature names, but {name} was fitted without feature names",
                      UserWarning, stacklevel=4)  # fmt: skip
        return
    if names is None:
        warnings.warn(f"X does not have valid feature names, but {name} was fitted with "
                      "feature names", UserWarning, stacklevel=4)  # fmt: skip
        return
    if len(fitted) == len(names) and np.all(fitted == names):
        return
    message = "The feature names should match those that were passed during fit.\n"
    unexpected = sorted(set(names) - set(fitted))
    missing = sorted(set(fitted) - set(names))
    if unexpected:
        message += "Feature names unseen at fit time:\n" + _list_names(unexpected)
    if missing:
        message += "Feature names seen at fit time, yet now missing:\n" + _list_names(missing)
    if not unexpected and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    raise ValueError(message)


def _check_y(y: Any, n_samples: int) -> NDArray[Any]:
    """Validate classification labels: 1-D (a column vector is raveled with a warning)."""
    if y is None:
        raise ValueError("this classifier requires y to be passed, but the target y is None")
    if is_sparse(y):
        raise TypeError(
            f"y is a sparse matrix ({type(y).__name__}), but the labels must be a 1-D array; "
            "convert it with y.toarray().ravel()"
        )
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. Please change the shape "
            "of y to (n_samples,), for example using ravel().",
            DataConversionWarning,
            stacklevel=3,
        )
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"y must be a 1-D array of class labels, got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise ValueError(
            "Found input variables with inconsistent numbers of samples: "
            f"{[int(n_samples), int(y.shape[0])]}"
        )
    if y.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: y has dtype {y.dtype}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            raise ValueError("Input y contains NaN or infinity.")
        if np.any(y != np.floor(y)):
            raise ValueError(
                "Unknown label type: continuous. y holds non-integer numbers, but a classifier "
                "needs class labels (integers, strings, ...)."
            )
    if y.dtype.kind == "O":
        kinds = {type(v) for v in y.tolist()}
        numeric = all(issubclass(k, (numbers.Number, np.generic)) for k in kinds)
        if len(kinds) > 1 and not numeric:
            raise ValueError(
                f"Unknown label type: y mixes label types {sorted(k.__name__ for k in kinds)}; "
                "use labels of one type"
            )
        floats = [v for v in y.tolist() if isinstance(v, float) and math.isfinite(v)]
        if numeric and any(v != math.floor(v) for v in floats):
            raise ValueError("Unknown label type: continuous (y holds non-integer numbers)")
    return y


def _unique_small_ints(y: NDArray[Any]) -> tuple[NDArray[Any], NDArray[np.intp]] | None:
    """``np.unique(y, return_inverse=True)`` of integer labels in a small range, without a sort.

    A count per value in ``[min, max]`` (O(n), several times faster than
    sorting the labels); None for other labels, which ``np.unique`` encodes.
    """
    if y.dtype.kind not in "iu" or y.ndim != 1 or y.shape[0] == 0:
        return None
    low, high = y.min().item(), y.max().item()
    if high - low > max(1 << 16, y.shape[0]):
        return None
    # offsets from the min, in a dtype that holds them: intp, or y's own 64-bit one
    # (whose values may not fit intp, while their offsets do)
    work = np.dtype(np.intp) if y.dtype.itemsize < 8 else y.dtype
    shifted = y.astype(work, copy=False)
    if low:
        shifted = shifted - work.type(low)
    shifted = shifted.astype(np.intp, copy=False)
    present = np.bincount(shifted, minlength=high - low + 1) > 0
    classes = (np.flatnonzero(present).astype(work) + work.type(low)).astype(y.dtype)
    return classes, (np.cumsum(present) - 1)[shifted]


def _encode_labels(y: NDArray[Any], estimator: Any) -> tuple[NDArray[Any], NDArray[np.intp]]:
    encoded = _unique_small_ints(y)
    try:
        classes, y_idx = encoded if encoded is not None else np.unique(y, return_inverse=True)
    except TypeError as exc:
        raise ValueError(f"Unknown label type: the labels of y cannot be sorted: {exc}") from None
    if classes.shape[0] < 2:
        raise ValueError(
            f"{type(estimator).__name__} needs samples of at least 2 classes in the data, "
            f"but the data contains only one class: {_plain(classes[0])!r}"
        )
    return classes, np.ascontiguousarray(y_idx.reshape(-1), dtype=np.intp)


def _class_weights(
    class_weight: Any,
    classes: NDArray[Any],
    y_idx: NDArray[np.intp],
    sample_weight: NDArray[Any] | None,
) -> NDArray[np.float64]:
    """Per-class weights as scikit-learn's ``compute_class_weight``.

    "balanced" counts the samples of each class weighted by ``sample_weight``.
    """
    n_classes = classes.shape[0]
    if class_weight is None:
        return np.ones(n_classes)
    if class_weight == "balanced":
        counts = np.bincount(y_idx, weights=sample_weight, minlength=n_classes).astype(np.float64)
        present = counts > 0
        weights = np.ones(n_classes)
        weights[present] = counts.sum() / (np.count_nonzero(present) * counts[present])
        return weights
    weights = np.ones(n_classes)
    known = {_plain(c): i for i, c in enumerate(classes.tolist())}
    for label, weight in class_weight.items():
        key = _plain(label)
        if key not in known:
            raise ValueError(
                f"class_weight has label {label!r}, which is not a class in y "
                f"(classes: {classes.tolist()})"
            )
        weights[known[key]] = check_real(f"class_weight[{label!r}]", weight)
    return weights


def _plain(label: Any) -> Any:
    # numpy scalars hash like Python ones, but make dict lookups explicit
    return label.item() if isinstance(label, np.generic) else label


def check_n_jobs(n_jobs: int | None) -> int | None:
    """``n_jobs``: None (keep the current thread count), -1 (all cores) or an int >= 1."""
    if n_jobs is None:
        return None
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral):
        raise TypeError(f"n_jobs must be None or an integer, got {type(n_jobs).__name__} {n_jobs!r}")
    if n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs must be None, -1 or a positive integer, got {n_jobs!r}")
    return int(n_jobs)


@contextlib.contextmanager
def kernel_threads(n_threads: int | None) -> Iterator[None]:
    """Run the kernels with ``n_threads`` threads (:func:`fastsoftmax.set_num_threads`
    semantics; None leaves the setting alone), restoring the previous count afterwards."""
    if n_threads is None:
        yield
        return
    previous = _threads.get_num_threads()
    _threads.set_num_threads(n_threads)
    try:
        yield
    finally:
        _threads.set_num_threads(previous)


def _check_is_fitted(estimator: Any) -> None:
    if not hasattr(estimator, "coef_"):
        raise NotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with "
            "appropriate arguments before using this estimator."
        )


def _dense_coef(coef: Any) -> Any:
    """``coef_`` as a C-contiguous array: that of a sparsified model is densified."""
    if is_sparse(coef):
        return np.ascontiguousarray(coef.toarray())
    return coef


class _SparseCoefMixin:
    """scikit-learn's ``sparsify`` / ``densify`` (its ``SparseCoefMixin``): a CSR ``coef_``.

    Prediction, scoring and saving work on either form (a sparse ``coef_`` is
    densified for the kernels, a (k, d) copy per call); a warm-started refit
    starts from it and leaves a dense ``coef_``.
    """

    coef_: Any

    def densify(self: _SelfCoef) -> _SelfCoef:
        """Convert a sparse ``coef_`` back to a numpy array (no-op when it is one).

        Returns
        -------
        self
            The fitted estimator.

        See Also
        --------
        sparsify : the other way.

        Examples
        --------
        >>> from fastsoftmax import LogisticRegression
        >>> clf = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
        >>> type(clf.sparsify().densify().coef_).__name__
        'ndarray'
        """
        _check_fitted_for(self, "densifying")
        self.coef_ = _dense_coef(self.coef_)
        return self

    def sparsify(self: _SelfCoef) -> _SelfCoef:
        """Convert ``coef_`` to a scipy.sparse CSR matrix (the intercept stays an array).

        Worth it when most coefficients are 0 (an L1 penalty): a dense
        ``coef_`` takes more memory as a sparse matrix.  scikit-learn's
        ``sparse_interface`` setting ("sparray") gives a ``csr_array``.

        Returns
        -------
        self
            The fitted estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from fastsoftmax import LogisticRegression
        >>> X, y = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [2.0, 0.0]]), [0, 1, 0, 1]
        >>> clf = LogisticRegression().fit(X, y).sparsify()
        >>> type(clf.coef_).__name__, clf.predict(X).tolist()
        ('csr_matrix', [0, 1, 0, 1])
        """
        import scipy.sparse as sp

        _check_fitted_for(self, "sparsifying")
        try:
            from sklearn import get_config

            as_array = get_config().get("sparse_interface") == "sparray"
        except ImportError:
            as_array = False
        self.coef_ = sp.csr_array(self.coef_) if as_array else sp.csr_matrix(self.coef_)
        return self


_SelfCoef = TypeVar("_SelfCoef", bound=_SparseCoefMixin)


def _check_fitted_for(estimator: Any, doing: str) -> None:
    # scikit-learn's message for sparsify / densify
    if not hasattr(estimator, "coef_"):
        raise NotFittedError(
            f"Estimator, {type(estimator).__name__}, must be fitted before {doing}."
        )


# ---------------------------------------------------------------------------
# the shared base class


class _LinearClassifier(*BASES):  # type: ignore[misc]  # mypy: a base tuple chosen at import
    """Validation, label encoding, prediction, scoring and saving for a linear classifier.

    Subclasses implement ``fit`` and set ``classes_``, ``coef_`` (``(1, d)``
    for two classes, else ``(n_classes, d)``), ``intercept_``, ``n_iter_`` and
    ``n_features_in_``.
    """

    #: dtype of the parameters for uint8 data (float data keeps its own dtype)
    _uint8_dtype: type[np.floating[Any]] = np.float64
    #: the data checks, for fastsoftmax._dask (which does not import the estimators)
    _checks = types.SimpleNamespace(
        rows=_check_X, labels=_check_y, encode_labels=_encode_labels,
        class_weights=_class_weights, is_fitted=_check_is_fitted,
        feature_names=_check_feature_names,
    )  # fmt: skip

    def _param_dtype(self, X: Any) -> np.dtype[Any]:
        return np.dtype(self._uint8_dtype) if X.dtype == np.uint8 else X.dtype

    def _validate_X(self, X: Any, *, reset: bool, screen_dense: bool = True) -> Any:
        _check_feature_names(self, X, reset=reset)
        X = _check_X(X, screen_dense=screen_dense)
        self._check_n_features(X, reset=reset)
        return X

    def _check_n_features(self, X: Any, *, reset: bool) -> None:
        """Set ``n_features_in_`` (``reset``) or check X's number of columns against it."""
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )

    def _fit_data(
        self, X: Any, y: Any, sample_weight: Any, classes: NDArray[Any] | None = None,
        *, persist: bool = False, actors: bool = True, screen_dense: bool = True,
    ) -> tuple[Any, NDArray[np.intp], NDArray[Any] | None, np.dtype[Any]]:
        """Validate training data: ``(X, y_idx, sample_weight with class weights, dtype)``.

        ``classes`` (sorted, e.g. those of all the data when fitting a
        cross-validation fold) fixes ``classes_``; y may then lack some of them.
        ``persist`` keeps a Dask X's blocks on the cluster for the fit;
        ``actors=False``: no Dask actors started with them (see ``_dask.fit_data``);
        ``screen_dense=False`` leaves the NaN/inf screen of dense X to the caller.
        """
        if _dask.is_dask_collection(X):  # checked block by block: fastsoftmax._dask.Blocks
            return _dask.fit_data(self, X, y, sample_weight, classes, persist=persist,
                                  actors=actors)  # fmt: skip
        X = self._validate_X(X, reset=True, screen_dense=screen_dense)
        y = _check_y(y, X.shape[0])
        if classes is None:
            self.classes_, y_idx = _encode_labels(y, self)
        else:
            self.classes_ = classes
            y_idx = np.ascontiguousarray(np.searchsorted(classes, y), dtype=np.intp)
        dtype = self._param_dtype(X)
        sw = self._weights(y_idx, sample_weight, X.shape[0], dtype)
        return X, y_idx, sw, dtype

    def _weights(
        self, y_idx: NDArray[np.intp], sample_weight: Any, n: int, dtype: Any
    ) -> NDArray[Any] | None:
        sw = check_sample_weight(sample_weight, n, dtype)
        class_weight = check_class_weight(self.class_weight)
        if class_weight is not None:
            cw = _class_weights(class_weight, self.classes_, y_idx, sw).astype(dtype)[y_idx]
            sw = cw if sw is None else sw * cw  # a new array: the user's weights are never modified
        if sw is not None and not np.sum(sw, dtype=np.float64) > 0:
            raise ValueError(
                "sample_weight (times the class weights) is zero for every sample; "
                "at least one weight must be positive"
            )
        return sw

    # -- prediction ------------------------------------------------------------

    def decision_function(self, X: ArrayLike) -> NDArray[np.floating[Any]]:
        """Confidence scores ``X @ coef_.T + intercept_``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            For two classes, the log-odds of ``classes_[1]`` (1-D), as in
            scikit-learn; otherwise one column per class.
        """
        if _dask.is_dask_collection(X):  # lazy, block by block
            return _dask.predict(self, X, "decision_function")
        _check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        # coef_ is used in its own layout: no copy unless X's dtype is wider than coef_'s
        X, coef, intercept, _ = as_compute_dtype(X, _dense_coef(self.coef_), self.intercept_)
        # an intercept_ set by hand may be a strided view (e.g. a column of coefs_paths_)
        intercept = None if intercept is None else np.ascontiguousarray(intercept)
        scores = decision(X, coef, intercept)
        return scores.ravel() if coef.shape[0] == 1 else scores

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """Predicted class labels, taken from ``classes_``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        if _dask.is_dask_collection(X):  # lazy, block by block
            return _dask.predict(self, X, "predict")
        scores = self.decision_function(X)
        index = (scores > 0).astype(np.intp) if scores.ndim == 1 else np.argmax(scores, axis=1)
        return self.classes_[index]

    def predict_proba(self, X: ArrayLike) -> NDArray[np.floating[Any]]:
        """Class probabilities (columns ordered as ``classes_``).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        if _dask.is_dask_collection(X):  # lazy, block by block
            return _dask.predict(self, X, "predict_proba")
        scores = self.decision_function(X)
        if scores.ndim == 1:
            p = sigmoid(scores)
            return np.column_stack([1 - p, p])
        return softmax(scores, axis=1, out=scores)

    def predict_log_proba(self, X: ArrayLike) -> NDArray[np.floating[Any]]:
        """Logarithm of the class probabilities, computed without underflow.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        if _dask.is_dask_collection(X):  # lazy, block by block
            return _dask.predict(self, X, "predict_log_proba")
        scores = self.decision_function(X)
        if scores.ndim == 1:  # log sigmoid of (-z, z) = log_softmax of (0, z)
            scores = np.column_stack([np.zeros_like(scores), scores])
        return log_softmax(scores, axis=1, out=scores)

    def score(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Mean accuracy on ``(X, y)`` (weighted by ``sample_weight`` if given).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : array_like of shape (n_samples,)
        sample_weight : array_like of shape (n_samples,), optional

        Returns
        -------
        accuracy : float
        """
        if _dask.is_dask_collection(X):  # only the accuracy is computed
            return _dask.score(self, X, y, sample_weight)
        predicted = self.predict(X)
        y = _check_y(y, predicted.shape[0])
        # numpy's stubs refuse complex or str weights, which it refuses at run time too
        return float(np.average(predicted == y, weights=sample_weight))  # type: ignore[arg-type]

    # -- persistence --------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> str:
        """Save the estimator (parameters and fitted state) to a portable ``.npz`` file.

        Load it back with :func:`fastsoftmax.load`.  No pickle is involved.

        Parameters
        ----------
        path : str or os.PathLike
            Destination; ``.npz`` is appended if the name lacks it.

        Returns
        -------
        path : str
            The file written.
        """
        return persistence.save(self, path)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = False
        return tags
