"""Array-API input: arrays of other libraries come back in their own namespace, as SciPy does.

A public function wrapped by :func:`caller_namespace` accepts, besides NumPy
arrays, any array that exports DLPack (a PyTorch CPU tensor, a JAX array, an
array-api-strict array, ...).  Such arguments are read with
:func:`numpy.from_dlpack` (no copy when the memory is on the CPU), the
function runs on NumPy arrays, and its array results are handed back through
the caller's namespace's ``from_dlpack`` (no copy either; ``asarray`` where that
fails).  A scalar result (a float loss) becomes a 0-d array of the caller's
namespace, in the dtype of the first array result or else the input's.  An
``out=`` array of the caller's namespace is written through its DLPack view
and returned itself.

Detection is lazy and costs a type check per argument: no array library is
imported here (the caller's is found in ``sys.modules`` or through
``__array_namespace__``), and NumPy input takes the unchanged path.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
from numpy import ndarray

__all__ = ["caller_namespace", "array_namespace"]

_Function = TypeVar("_Function", bound=Callable[..., Any])


def _is_foreign(value: object) -> bool:
    """Whether ``value`` is an array of another library (it exports DLPack and is no NumPy array)."""
    return hasattr(type(value), "__dlpack__") and not isinstance(value, (np.ndarray, np.generic))


def array_namespace(value: object) -> Any:
    """The namespace of a foreign array (``__array_namespace__``, else its top-level module), or None."""
    get_namespace = getattr(value, "__array_namespace__", None)
    if get_namespace is not None:
        return get_namespace()
    module = sys.modules.get(type(value).__module__.split(".")[0])
    if module is not None and hasattr(module, "from_dlpack"):
        return module
    return None


def _to_numpy(value, name):
    try:
        return np.from_dlpack(value)
    except Exception as exc:  # e.g. a tensor that requires grad, or on a GPU
        try:
            return np.asarray(value)
        except Exception:
            pass
        raise TypeError(
            f"{name} ({type(value).__module__}.{type(value).__name__}) could not be read as a "
            f"NumPy array through DLPack: {exc}"
        ) from None


def _from_numpy(xp, arr):
    try:
        return xp.from_dlpack(arr)
    except Exception:  # a read-only or unaligned array, a dtype DLPack lacks
        return xp.asarray(arr)


def _first_array_dtype(result):
    items = result.values() if isinstance(result, dict) else result
    for item in items:
        if isinstance(item, np.ndarray):
            return item.dtype
    return None


def _convert_result(xp, result, scalar_dtype):
    if isinstance(result, np.ndarray):
        return _from_numpy(xp, result)
    if isinstance(result, (np.generic, float, int)) and not isinstance(result, bool):
        dtype = result.dtype if isinstance(result, np.generic) else scalar_dtype
        return _from_numpy(xp, np.asarray(result, dtype=dtype))
    if isinstance(result, tuple):
        dtype = _first_array_dtype(result) or scalar_dtype
        return tuple(_convert_result(xp, item, dtype) for item in result)
    if isinstance(result, dict):
        return {key: _convert_result(xp, item, scalar_dtype) for key, item in result.items()}
    return result


def _scalar_dtype(array):
    dtype = array.dtype
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def caller_namespace(func: _Function) -> _Function:
    """Decorate a public function so that foreign arrays come back in their own namespace."""
    names = list(inspect.signature(func).parameters)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        # the NumPy path: one cheap check per argument
        for value in args:
            if type(value) is not ndarray and _is_foreign(value):
                break
        else:
            for value in kwargs.values():
                if type(value) is not ndarray and _is_foreign(value):
                    break
            else:
                return func(*args, **kwargs)
        return _call_with_foreign(func, names, args, kwargs)

    return cast(_Function, wrapper)


def _call_with_foreign(func, names, args, kwargs):
    """Call ``func`` on NumPy views of the foreign arrays; results back in their namespace."""
    foreign = [i for i, value in enumerate(args) if _is_foreign(value)]
    foreign_kw = [key for key, value in kwargs.items() if _is_foreign(value)]
    values = [args[i] for i in foreign] + [kwargs[key] for key in foreign_kw]
    namespaces = {id(ns): ns for ns in map(array_namespace, values) if ns is not None}
    if len(namespaces) > 1:
        raise TypeError(
            "arrays of different array libraries were passed together: "
            f"{', '.join(sorted({type(v).__module__ for v in values}))}"
        )
    xp = next(iter(namespaces.values()), None)
    args = list(args)
    for i in foreign:
        args[i] = _to_numpy(args[i], names[i] if i < len(names) else f"argument {i}")
    out = kwargs.get("out")
    for key in foreign_kw:
        kwargs[key] = _to_numpy(kwargs[key], key)
    result = func(*args, **kwargs)
    if xp is None:
        return result
    if out is not None and _is_foreign(out) and result is kwargs["out"]:
        return out  # written through its DLPack view
    primary = args[foreign[0]] if foreign else kwargs[foreign_kw[0]]
    return _convert_result(xp, result, _scalar_dtype(primary))
