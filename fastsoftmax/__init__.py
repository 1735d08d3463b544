"""fastsoftmax: fast softmax regression and logistic regression on the CPU.

The top-level names are imported lazily, so ``import fastsoftmax`` stays fast
and loads neither numba nor scipy until a kernel or estimator needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._threads import get_num_threads, set_num_threads
from ._backends import backends, get_backend, set_backend, use_backend

__version__ = "0.1.0"

# public name -> submodule that defines it
_LAZY = {
    "softmax": "functions",
    "log_softmax": "functions",
    "logsumexp": "functions",
    "linear": "functions",
    "cross_entropy": "functions",
    "softmax_cross_entropy_grad": "functions",
    "sigmoid": "functions",
    "binary_cross_entropy": "functions",
    "logistic_loss_grad": "functions",
    "classification_error": "functions",
    "log_expit": "functions",
    "linear_cross_entropy": "functions",
    "LogisticRegression": "estimators",
    "LogisticRegressionCV": "estimators",
    "SoftmaxRegression": "estimators",
    "load": "persistence",
    "Trainer": "trainer",
    "SoftmaxModel": "trainer",
}
_SUBMODULES = ("functions", "estimators", "learners", "trainer", "datasets", "persistence")

__all__ = [
    "backends",
    "get_backend",
    "get_num_threads",
    "set_backend",
    "set_num_threads",
    "use_backend",
    *_LAZY,
    *_SUBMODULES,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
