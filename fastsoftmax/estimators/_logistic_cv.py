"""Logistic regression with cross-validated ``C`` and ``l1_ratio``: :class:`LogisticRegressionCV`."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .. import _dask, _threads
from .._validation import check_bool, check_sample_weight
from ..persistence import register
from ._base import _class_weights, _LinearClassifier, check_n_jobs, kernel_threads
from ._logistic import LogisticRegression, _check_solver

__all__ = ["LogisticRegressionCV"]

_CV_PENALTY_DEPRECATION = (
    "'penalty' was deprecated in version 1.8 and will be removed in 1.10. To avoid this "
    "warning, leave 'penalty' set to its default value and use 'l1_ratios' and 'Cs' "
    "instead. Use l1_ratios=(0,) instead of penalty='l2', l1_ratios=(1,) instead of "
    "penalty='l1', l1_ratios set to floats between 0 and 1 instead of "
    "penalty='elasticnet', and Cs=(np.inf,) instead of penalty=None."
)


def _resolve_cv_penalty(estimator: LogisticRegressionCV) -> tuple[Any, Any, Any, bool]:
    """``(penalty, l1_ratios, scoring, use_legacy_attributes)`` as scikit-learn 1.9 reads them."""
    if isinstance(estimator.l1_ratios, str) and estimator.l1_ratios == "warn":
        l1_ratios = None
        warnings.warn(
            "The default value for l1_ratios will change from None to (0.0,) in version "
            "1.10. From version 1.10 onwards, only array-like with values in [0, 1] will be "
            "allowed, None will be forbidden. To avoid this warning, explicitly set a value, "
            "e.g. l1_ratios=(0,).",
            FutureWarning,
            stacklevel=3,
        )
    else:
        l1_ratios = estimator.l1_ratios
    if estimator.penalty == "deprecated":
        if estimator.l1_ratios is None:
            warnings.warn(
                "'l1_ratios=None' was deprecated in version 1.8 and will trigger an error in "
                "1.10. Use an array-like with valuesin [0, 1] instead.",
                FutureWarning,
                stacklevel=3,
            )
        if l1_ratios is None or np.all(np.asarray(l1_ratios) == 0):
            penalty = "l2"
        elif np.all(np.asarray(l1_ratios) == 1):
            penalty = "l1"
        else:
            penalty = "elasticnet"
    else:
        if estimator.penalty not in ("l1", "l2", "elasticnet"):
            raise ValueError(
                "The 'penalty' parameter of LogisticRegressionCV must be a str among "
                f"{{'elasticnet', 'l1', 'l2'}}. Got {estimator.penalty!r} instead."
            )
        penalty = estimator.penalty
        warnings.warn(_CV_PENALTY_DEPRECATION, FutureWarning, stacklevel=3)
    if isinstance(estimator.scoring, str) and estimator.scoring == "warn":
        warnings.warn(
            "The default value of the parameter 'scoring' will change from None, i.e. "
            "accuracy, to 'neg_log_loss' in version 1.11. To silence this warning, "
            "explicitly set the scoring parameter: scoring='neg_log_loss' for the new, "
            "scoring='accuracy' or scoring=None for the old default.",
            FutureWarning,
            stacklevel=3,
        )
        scoring = None
    else:
        scoring = estimator.scoring
    legacy = estimator.use_legacy_attributes
    if isinstance(legacy, str) and legacy == "warn":
        name = type(estimator).__name__
        warnings.warn(
            f"The fitted attributes of {name} will be simplified in scikit-learn 1.10 to "
            "remove redundancy. Set`use_legacy_attributes=False` to enable the new behavior "
            "now, or set it to `True` to silence this warning during the transition period "
            "while keeping the deprecated behavior for the time being. The default value of "
            "use_legacy_attributes will change from True to False in scikit-learn 1.10. See "
            f"the docstring of {name} for more details.",
            FutureWarning,
            stacklevel=3,
        )
        legacy = True
    legacy = check_bool("use_legacy_attributes", legacy)
    _check_solver(estimator.solver, penalty, check_bool("dual", estimator.dual))
    if penalty == "elasticnet":
        if (
            l1_ratios is None
            or len(l1_ratios) == 0
            or any(
                isinstance(r, bool) or not isinstance(r, (int, float, np.number)) or not 0 <= r <= 1
                for r in l1_ratios
            )
        ):
            raise ValueError(
                "l1_ratios must be an array-like of numbers between 0 and 1; got "
                f"(l1_ratios={l1_ratios!r})"
            )
    elif l1_ratios is not None and estimator.penalty != "deprecated":
        warnings.warn(
            f"l1_ratios parameter is only used when penalty is 'elasticnet'. Got "
            f"(penalty={penalty})",
            UserWarning,
            stacklevel=3,
        )
    return penalty, l1_ratios, scoring, legacy


_Self = TypeVar("_Self", bound="LogisticRegressionCV")

try:  # scikit-learn's marker: score's sample_weight is the scorer's, not the estimator's
    from sklearn.utils.metadata_routing import UNUSED as _UNUSED
except ImportError:
    _UNUSED = None


@register
class LogisticRegressionCV(_LinearClassifier):
    """Logistic regression with ``C`` (and ``l1_ratio``) chosen by cross-validation.

    A drop-in replacement for :class:`sklearn.linear_model.LogisticRegressionCV`
    (scikit-learn 1.9's signature, warnings and attributes), with the fits done
    by :class:`LogisticRegression`.  For every fold and ``l1_ratio`` the
    regularisation path over ``Cs_`` is fitted in the given order, each fit
    warm-started from the previous one; the grid point with the best mean score
    over the folds is then refitted on all the data, warm-started from the mean
    of the folds' coefficients there (``refit=True``), or the folds' best
    coefficients are averaged (``refit=False``).  Needs scikit-learn (its
    cross-validation splitters and scorers).

    Parameters
    ----------
    Cs : int or array_like of float, default=10
        The grid of ``C``; an int ``n`` is ``numpy.logspace(-4, 4, n)``.
    l1_ratios : array_like of float in [0, 1] or None, default="warn"
        The grid of ``l1_ratio`` (0: L2, 1: L1; positive values need
        ``solver="saga"``).  The default warns as scikit-learn 1.9 and means
        None (the L2 penalty, and attributes without the ``l1_ratio`` axis).
    fit_intercept : bool, default=True
    cv : int, cross-validation generator or iterable, default=None
        As :func:`sklearn.model_selection.check_cv` (5 stratified folds).
    dual : bool, default=False
        Only ``False`` (scikit-learn's error otherwise).
    penalty : {"l1", "l2", "elasticnet"}, default="deprecated"
        Deprecated as in scikit-learn 1.8+; use ``l1_ratios``.
    scoring : str, callable or None, default="warn"
        A scikit-learn scorer; None (and the warning default) is accuracy.
    solver : str, default="lbfgs"
        As :class:`LogisticRegression`.
    tol : float, default=1e-4
    max_iter : int, default=100
    class_weight : dict, "balanced" or None, default=None
        "balanced" is computed once on all of ``y``.
    n_jobs : int or None, default=None
        The cores of ``fit``: the paths of the folds (and ``l1_ratios``) are
        fitted in ``min(n_jobs, n_folds * n_l1_ratios)`` Python threads at
        once, each running the kernels with ``n_jobs // n_threads`` threads,
        so that the cores are not oversubscribed, and the final refit runs the
        kernels with ``n_jobs`` threads.  -1 is all cores; None fits the paths
        one after another with the current kernel thread count
        (:func:`fastsoftmax.get_num_threads`).  The results do not depend on
        ``n_jobs`` beyond the kernels' thread count: ``n_jobs=1`` and any
        ``n_jobs`` up to ``n_folds * n_l1_ratios`` give the same model
        (every path on one kernel thread).
    verbose : int, default=0
    refit : bool, default=True
    intercept_scaling : float, default=1.0
        Accepted for compatibility (liblinear's).
    random_state : int, RandomState instance or None, default=None
        Unused by the solvers (deterministic).
    use_legacy_attributes : bool, default="warn"
        scikit-learn 1.9's transition flag: True (and the warning default)
        gives the per-class dicts ``scores_``, ``coefs_paths_`` and the arrays
        ``C_``, ``l1_ratio_``; False the plain arrays and floats.

    Attributes
    ----------
    classes_, coef_, intercept_, n_features_in_, feature_names_in_
        As :class:`LogisticRegression`.
    Cs_ : ndarray of shape (n_cs,)
    l1_ratios_ : ndarray of shape (n_l1_ratios,)
    coefs_paths_ : dict or ndarray
        The coefficients (intercept last) along the path, per fold.
    scores_ : dict or ndarray
        The score of every fold and grid point.
    C_ : ndarray or float
    l1_ratio_ : ndarray or float
    n_iter_ : ndarray
        Iterations of every fold and grid point (at least 1: a fit
        warm-started at its optimum counts its one gradient evaluation).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from fastsoftmax import LogisticRegressionCV
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = LogisticRegressionCV(Cs=4, l1_ratios=(0,), scoring="accuracy",
    ...                            use_legacy_attributes=False, max_iter=500).fit(X, y)
    >>> clf.Cs_.shape, clf.scores_.shape, clf.coefs_paths_.shape
    ((4,), (5, 1, 4), (5, 1, 4, 3, 5))
    >>> clf.score(X, y) > 0.9
    True
    """

    #: n_iter_ is an array over the folds and the grid (see fastsoftmax.persistence)
    _grid_n_iter = True
    if _UNUSED is not None:  # as scikit-learn 1.9: with routing, score() routes it to the scorer
        __metadata_request__score = {"sample_weight": _UNUSED}

    def __init__(
        self,
        *,
        Cs: int | Sequence[float] | NDArray[Any] = 10,
        l1_ratios: Sequence[float] | NDArray[Any] | str | None = "warn",
        fit_intercept: bool = True,
        cv: Any = None,
        dual: bool = False,
        penalty: str | None = "deprecated",
        scoring: Any = "warn",
        solver: str = "lbfgs",
        tol: float = 1e-4,
        max_iter: int = 100,
        class_weight: dict[Any, float] | str | None = None,
        n_jobs: int | None = None,
        verbose: int = 0,
        refit: bool = True,
        intercept_scaling: float = 1.0,
        random_state: int | np.random.RandomState | np.random.Generator | None = None,
        use_legacy_attributes: bool | str = "warn",
    ) -> None:
        self.Cs = Cs
        self.l1_ratios = l1_ratios
        self.fit_intercept = fit_intercept
        self.cv = cv
        self.dual = dual
        self.penalty = penalty
        self.scoring = scoring
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.refit = refit
        self.intercept_scaling = intercept_scaling
        self.random_state = random_state
        self.use_legacy_attributes = use_legacy_attributes

    def _scorer(self, scoring: Any) -> Any:
        from sklearn.metrics import get_scorer

        return None if scoring is None else get_scorer(scoring)

    def _fold_scorer(self, scoring: Any) -> Any:
        """The scorer of the folds: told all the labels, as a test fold may lack some.

        scikit-learn's own way: a scorer whose metric takes ``labels`` is rebuilt
        with ``labels=classes_`` (and, for two classes, ``pos_label=classes_[1]``).
        """
        import inspect

        from sklearn.metrics import make_scorer

        scorer = self._scorer(scoring)
        metric = getattr(scorer, "_score_func", None)
        if metric is None or "labels" not in inspect.signature(metric).parameters:
            return scorer
        extra = {}
        if self.classes_.shape[0] <= 2 and "pos_label" in inspect.signature(metric).parameters:
            extra["pos_label"] = self.classes_[-1]
        return make_scorer(
            metric,
            greater_is_better=scorer._sign == 1,
            **_response_of(scorer),
            labels=self.classes_,
            **extra,
            **getattr(scorer, "_kwargs", {}),
        )

    def _estimator(
        self, C: float, l1_ratio: float, class_weight: Any, warm_start: bool
    ) -> LogisticRegression:
        """The LogisticRegression of one grid point (penalty given as l1_ratio: no warnings)."""
        return LogisticRegression(
            C=C, l1_ratio=l1_ratio, tol=self.tol, fit_intercept=self.fit_intercept,
            intercept_scaling=self.intercept_scaling, class_weight=class_weight,
            solver=self.solver, max_iter=self.max_iter, verbose=max(0, self.verbose - 1),
            warm_start=warm_start,
        )  # fmt: skip

    def _path(
        self,
        X: Any,
        y: NDArray[Any],
        sw: NDArray[Any] | None,
        train: NDArray[np.intp],
        test: NDArray[np.intp],
        Cs: NDArray[np.float64],
        l1_ratio: float,
        class_weight: Any,
        scorer: Any,
        score_params: dict[str, Any],
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[Any]]:
        # every fold is fitted with the classes of all the data, even if it lacks some
        """Fit the path over ``Cs`` on one fold, warm-starting each fit from the previous."""
        est = self._estimator(Cs[0], l1_ratio, class_weight, warm_start=True)
        sw_train = None if sw is None else sw[train]
        fold_score_params = _rows_of(score_params, X.shape[0], test)
        coefs, scores, n_iter = [], [], []
        for C in Cs:
            est.set_params(C=C)._fit_with_classes(X[train], y[train], sw_train, self.classes_)
            coefs.append(_with_intercept(est))
            # a fit warm-started at its optimum stops after its first gradient: one iteration
            n_iter.append(max(1, int(est.n_iter_[0])))
            if scorer is None:
                scores.append(est.score(X[test], y[test], **fold_score_params))
            else:
                scores.append(scorer(est, X[test], y[test], **fold_score_params))
        return np.array(coefs), np.array(scores, dtype=np.float64), np.array(n_iter)

    def fit(
        self: _Self,
        X: ArrayLike,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
        **params: Any,
    ) -> _Self:
        """Cross-validate the grid, then fit the best point (``refit``).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : array_like of shape (n_samples,)
        sample_weight : array_like of shape (n_samples,), optional
        **params : dict
            Passed to the splitter's ``split`` (e.g. ``groups``); only with
            scikit-learn's ``enable_metadata_routing=True``, as in scikit-learn.

        Returns
        -------
        self : LogisticRegressionCV
        """
        from sklearn.model_selection import check_cv

        _refuse_unrouted_params(self, "fit", params)
        penalty, l1_ratios, scoring, legacy = _resolve_cv_penalty(self)
        refit = check_bool("refit", self.refit)
        n_threads = check_n_jobs(self.n_jobs)
        if n_threads == -1:
            n_threads = _threads._cpu_count()
        if penalty == "elasticnet" or l1_ratios is not None:
            l1_ratios_ = list(l1_ratios)
        else:
            l1_ratios_ = [None]
        # the share of L1 of each grid point, as scikit-learn's solvers read the penalty
        shares = [
            {"l1": 1.0, "l2": 0.0}.get(penalty, r if r is not None else 0.0) for r in l1_ratios_
        ]

        if isinstance(self.Cs, (int, np.integer)) and not isinstance(self.Cs, bool):
            Cs = np.logspace(-4, 4, int(self.Cs))
        else:
            Cs = np.asarray(self.Cs, dtype=np.float64).reshape(-1)
        # the data is read after every parameter check (persistence relies on that order)
        X, y_idx, _, _ = self._fit_data(X, y, None, actors=False)  # a Dask X: the folds' actors
        if isinstance(X, _dask.Blocks):  # the folds are views of the blocks: X is not copied
            y_idx = X.labels()
        classes = self.classes_
        y = classes[y_idx]  # the labels, checked
        n_classes = classes.shape[0]
        is_binary = n_classes == 2
        # checked once here: the folds' fits and scorers get its rows
        sw = check_sample_weight(sample_weight, X.shape[0], np.float64)
        class_weight = self.class_weight
        if isinstance(class_weight, str) and class_weight == "balanced":
            # computed once on all of y, as scikit-learn
            weights = _class_weights("balanced", classes, y_idx, sw)
            class_weight = {c: float(w) for c, w in zip(classes.tolist(), weights)}
        scorer = self._fold_scorer(scoring)
        if _routing_enabled():  # sample_weight and params go where they are requested
            from sklearn.utils.metadata_routing import process_routing

            routed = process_routing(self, "fit", sample_weight=sw, **params)
            split_params, score_params = routed.splitter.split, routed.scorer.score
        else:  # the weights are the scorer's too, as in scikit-learn
            split_params = {}
            score_params = {} if sw is None else {"sample_weight": sw}
        cv = check_cv(self.cv, y, classifier=True)
        folds = list(cv.split(X, y, **split_params))

        tasks = [(train, test, share) for train, test in folds for share in shares]

        def path(task: tuple[Any, Any, float]) -> Any:
            train, test, share = task
            return self._path(X, y, sw, train, test, Cs, share, class_weight, scorer,
                              score_params)  # fmt: skip

        if n_threads is None or n_threads == 1 or len(tasks) <= 1:
            with kernel_threads(n_threads):
                paths = [path(task) for task in tasks]
        else:
            # the paths in threads (the kernels release the GIL), the cores shared out
            # between them: each path's kernels get n_jobs // workers threads
            workers = min(n_threads, len(tasks))
            with kernel_threads(max(1, n_threads // workers)):
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    paths = list(pool.map(path, tasks))
        n_folds, n_l1, n_cs = len(folds), len(l1_ratios_), Cs.shape[0]
        k = 1 if is_binary else n_classes
        n_dof = X.shape[1] + int(bool(self.fit_intercept))
        # (n_folds, n_l1_ratios, n_cs, k, n_dof), (n_folds, n_l1_ratios, n_cs)
        coefs = np.array([p[0] for p in paths]).reshape(n_folds, n_l1, n_cs, k, n_dof)
        scores = np.array([p[1] for p in paths]).reshape(n_folds, n_l1, n_cs)
        n_iter = np.array([p[2] for p in paths], dtype=np.int32).reshape(n_folds, n_l1, n_cs)
        self.Cs_ = Cs
        self.l1_ratios_ = np.asarray(l1_ratios_)

        if refit:
            mean_scores = scores.sum(axis=0)  # (n_l1, n_cs)
            best_l1, best_c = np.unravel_index(np.argmax(mean_scores), mean_scores.shape)
            C_, share = Cs[best_c], shares[best_l1]
            best_ratio = l1_ratios_[best_l1]
            start = coefs[:, best_l1, best_c].mean(axis=0)
            est = self._estimator(C_, share, class_weight, warm_start=True)
            est.classes_ = classes
            est.coef_ = np.ascontiguousarray(start[:, : X.shape[1]])
            est.intercept_ = start[:, -1] if self.fit_intercept else np.zeros(k)
            with kernel_threads(n_threads):
                est.fit(X, y, sample_weight=sample_weight)
            coef, intercept = est.coef_, est.intercept_
        else:
            flat = scores.transpose(0, 2, 1).reshape(n_folds, -1)  # (n_folds, n_cs * n_l1)
            best = np.argmax(flat, axis=1)
            best_c, best_l1 = np.unravel_index(best, (n_cs, n_l1))
            w = np.mean([coefs[i, best_l1[i], best_c[i]] for i in range(n_folds)], axis=0)
            coef = w[:, : X.shape[1]]
            intercept = w[:, -1] if self.fit_intercept else np.zeros(k)
            C_ = float(np.mean(Cs[best_c]))
            if penalty == "elasticnet":
                best_ratio = float(np.mean(np.asarray(l1_ratios_, dtype=float)[best_l1]))
            else:
                best_ratio = 0.0
        self.coef_ = np.ascontiguousarray(coef)
        self.intercept_ = np.asarray(intercept, dtype=self.coef_.dtype)
        self._set_path_attributes(coefs, scores, n_iter, C_, best_ratio, l1_ratios, legacy)
        return self

    def _set_path_attributes(
        self,
        coefs: NDArray[np.float64],
        scores: NDArray[np.float64],
        n_iter: NDArray[Any],
        C_: float,
        l1_ratio_: Any,
        l1_ratios: Any,
        legacy: bool,
    ) -> None:
        """``coefs_paths_``, ``scores_``, ``n_iter_``, ``C_``, ``l1_ratio_`` in scikit-learn's layouts."""
        n_classes = self.classes_.shape[0]
        keys = self.classes_[1:] if n_classes == 2 else self.classes_
        if not legacy:
            # (n_folds, n_l1_ratios, n_cs, k, n_dof), (n_folds, n_l1_ratios, n_cs)
            self.coefs_paths_: NDArray[Any] | dict[Any, NDArray[Any]] = coefs
            self.scores_: NDArray[Any] | dict[Any, NDArray[Any]] = scores
            self.n_iter_ = n_iter
            self.C_: float | NDArray[np.float64] = float(C_)
            if l1_ratios is None:
                self.l1_ratio_: float | NDArray[Any] = 1.0 if self.penalty == "l1" else 0.0
            else:
                self.l1_ratio_ = float(l1_ratio_)
            return
        # legacy: per class, (n_folds, n_cs, n_l1_ratios, n_dof); n_iter_ (1, n_folds, n_cs, n_l1)
        paths = np.moveaxis(coefs, (3, 0, 2, 1), (0, 1, 2, 3))  # (k, n_folds, n_cs, n_l1, n_dof)
        per_class_scores = np.swapaxes(scores, 1, 2)  # (n_folds, n_cs, n_l1)
        legacy_n_iter = np.swapaxes(n_iter, 1, 2)[None, ...]
        if l1_ratios is None:  # no l1_ratio axis
            paths, per_class_scores = paths[:, :, :, 0], per_class_scores[:, :, 0]
            legacy_n_iter = legacy_n_iter[:, :, :, 0]
        self.coefs_paths_ = dict(zip(keys.tolist(), paths))
        self.scores_ = {key: per_class_scores.copy() for key in keys.tolist()}
        self.n_iter_ = legacy_n_iter
        repeat = 1 if n_classes == 2 else n_classes
        self.C_ = np.full(repeat, C_, dtype=np.float64)
        self.l1_ratio_ = np.asarray([l1_ratio_] * repeat)  # None for no l1_ratios, as sklearn

    def score(
        self,
        X: ArrayLike,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
        **score_params: Any,
    ) -> float:
        """The ``scoring`` of the fitted model on ``(X, y)`` (accuracy by default).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : array_like of shape (n_samples,)
        sample_weight : array_like of shape (n_samples,), optional
        **score_params : dict
            Passed to the scorer; only with scikit-learn's
            ``enable_metadata_routing=True``.

        Returns
        -------
        score : float
        """
        _refuse_unrouted_params(self, "score", score_params)
        if _routing_enabled():
            from sklearn.utils.metadata_routing import process_routing

            if sample_weight is not None:
                score_params["sample_weight"] = sample_weight
            routed = process_routing(self, "score", **score_params)
            return float(self._get_scorer()(self, X, y, **routed.scorer.score))
        scoring = None if isinstance(self.scoring, str) and self.scoring == "warn" else self.scoring
        scorer = self._scorer(scoring)
        if scorer is None:
            return super().score(X, y, sample_weight=sample_weight)
        kwargs = dict(score_params)
        if sample_weight is not None:
            kwargs["sample_weight"] = sample_weight
        return float(scorer(self, X, y, **kwargs))


    def _get_scorer(self) -> Any:
        """scikit-learn's ``_get_scorer``: that of ``scoring`` (None and "warn": accuracy)."""
        from sklearn.metrics import get_scorer

        scoring = None if isinstance(self.scoring, str) and self.scoring == "warn" else self.scoring
        return get_scorer(scoring or "accuracy")

    def get_metadata_routing(self) -> Any:
        """The metadata routing of ``fit`` and ``score``, as scikit-learn's LogisticRegressionCV.

        With ``sklearn.set_config(enable_metadata_routing=True)``: ``fit``'s
        ``sample_weight`` weighs the fits and goes to the scorer if it requests
        it, other ``fit`` parameters go to the splitter's ``split`` or the
        scorer, and ``score``'s to the scorer.

        Returns
        -------
        routing : sklearn.utils.metadata_routing.MetadataRouter

        Examples
        --------
        >>> from fastsoftmax import LogisticRegressionCV
        >>> routing = LogisticRegressionCV().get_metadata_routing()
        >>> type(routing).__name__
        'MetadataRouter'
        """
        from sklearn.utils.metadata_routing import MetadataRouter, MethodMapping

        return (
            MetadataRouter(owner=type(self).__name__)
            .add_self_request(self)
            .add(splitter=self.cv, method_mapping=MethodMapping().add(caller="fit", callee="split"))
            .add(
                scorer=self._get_scorer(),
                method_mapping=MethodMapping()
                .add(caller="score", callee="score")
                .add(caller="fit", callee="score"),
            )
        )


def _routing_enabled() -> bool:
    """scikit-learn's ``enable_metadata_routing`` setting (False without scikit-learn)."""
    try:
        from sklearn import get_config
    except ImportError:
        return False
    return bool(get_config().get("enable_metadata_routing", False))


def _rows_of(params: dict[str, Any], n_samples: int, rows: NDArray[np.intp]) -> dict[str, Any]:
    """``params`` for a subset of the rows: per-sample values indexed, others as they are.

    scikit-learn's rule (``_check_method_params``): a value is per-sample when
    it is array-like (a sequence, or has ``shape`` or ``__array__``) with
    ``n_samples`` entries.
    """
    out = {}
    for key, value in params.items():
        if hasattr(value, "iloc") and len(value) == n_samples:  # pandas: by position
            value = value.iloc[rows]
        elif not isinstance(value, (str, bytes, dict)) and (
            hasattr(value, "__len__") or hasattr(value, "shape") or hasattr(value, "__array__")
        ):
            array = np.asarray(value)
            if array.ndim >= 1 and array.shape[0] == n_samples:
                value = array[rows]
        out[key] = value
    return out


def _refuse_unrouted_params(estimator: Any, method: str, params: dict[str, Any]) -> None:
    """scikit-learn's error for extra keyword arguments without metadata routing."""
    if params and not _routing_enabled():
        raise ValueError(
            f"Passing extra keyword arguments to {type(estimator).__name__}.{method} is only "
            "supported if enable_metadata_routing=True, which you can set using "
            "`sklearn.set_config`. See the User Guide "
            "<https://scikit-learn.org/stable/metadata_routing.html> for more details. "
            f"Extra parameters passed are: {set(params)}"
        )


def _with_intercept(est: LogisticRegression) -> NDArray[np.float64]:
    """``coef_`` with the intercept as a last column (when fitted), in float64."""
    coef = est.coef_.astype(np.float64)
    if not est.fit_intercept:
        return coef
    return np.column_stack([coef, est.intercept_.astype(np.float64)])


def _response_of(scorer: Any) -> dict[str, Any]:
    """``make_scorer``'s keywords for the method a built-in scorer calls."""
    response = getattr(scorer, "_response_method", None)
    if response is not None:
        return {"response_method": response}
    # scikit-learn < 1.4: the scorer's class names it
    kind = type(scorer).__name__
    return {"needs_proba": kind == "_ProbaScorer", "needs_threshold": kind == "_ThresholdScorer"}
