"""scikit-learn, when it is installed: the estimators' base classes and warnings.

With scikit-learn the estimators derive from its ``BaseEstimator`` and
``ClassifierMixin`` and raise its ``ConvergenceWarning``, ``NotFittedError``
and ``DataConversionWarning``; without it, a small base class in its style
provides ``get_params``/``set_params``/``repr``, and the warnings are defined
here.
"""

from __future__ import annotations

import inspect
from typing import Any, TypeVar

_Params = TypeVar("_Params", bound="_ParamsBase")

__all__ = ["BASES", "ConvergenceWarning", "DataConversionWarning", "NotFittedError"]

try:  # scikit-learn is optional; with it the estimators are genuine sklearn estimators
    from sklearn.base import BaseEstimator as _SklearnBase
    from sklearn.base import ClassifierMixin as _SklearnClassifierMixin
    from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError

    BASES: tuple[type, ...] = (_SklearnClassifierMixin, _SklearnBase)
except ImportError:  # pragma: no cover - exercised by a test in a subprocess

    class ConvergenceWarning(UserWarning):  # type: ignore[no-redef]
        """The solver stopped before reaching its convergence criterion."""

    class DataConversionWarning(UserWarning):  # type: ignore[no-redef]
        """The input was converted (e.g. a column-vector ``y`` was raveled)."""

    class NotFittedError(ValueError, AttributeError):  # type: ignore[no-redef]
        """The estimator is used before ``fit``."""

    class _ParamsBase:
        """``get_params``/``set_params``/``repr`` in scikit-learn's style, without it."""

        @classmethod
        def _get_param_names(cls) -> list[str]:
            signature = inspect.signature(cls.__init__)
            return sorted(
                p.name
                for p in signature.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            )

        def get_params(self, deep: bool = True) -> dict[str, Any]:
            return {name: getattr(self, name) for name in self._get_param_names()}

        def set_params(self: _Params, **params: Any) -> _Params:
            valid = self._get_param_names()
            for name, value in params.items():
                if name not in valid:
                    raise ValueError(
                        f"Invalid parameter {name!r} for estimator {type(self).__name__}; "
                        f"valid parameters are {valid}"
                    )
                setattr(self, name, value)
            return self

        def __repr__(self) -> str:
            defaults = {
                p.name: p.default
                for p in inspect.signature(type(self).__init__).parameters.values()
            }
            changed = [
                f"{name}={value!r}"
                for name, value in self.get_params().items()
                if not (defaults.get(name) is value or _equal(defaults.get(name), value))
            ]
            return f"{type(self).__name__}({', '.join(changed)})"

    BASES = (_ParamsBase,)


def _equal(a: object, b: object) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. arrays: not a plain default
        return False

