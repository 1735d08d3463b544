"""Save and load estimators as portable ``.npz`` files, without pickle.

A model file is an ordinary NumPy ``.npz`` archive (readable anywhere NumPy
is, with ``allow_pickle=False``) holding

* ``__format__``: the string ``"fastsoftmax-model"``;
* ``__version__``: the format version (an integer, :data:`FORMAT_VERSION`);
* ``__class__``: the estimator's class name;
* ``__manifest__``: a JSON document with the constructor parameters and the
  fitted attributes, in which every array is a reference ``{"__array__":
  key}`` to an array stored in the archive under ``key``.

Arrays keep their dtype; string labels are stored as unicode arrays (object
arrays of strings come back as object arrays).  Learner and schedule
parameters are stored through their ``get_config()``, and a
:class:`~fastsoftmax.SoftmaxRegression`'s optimiser state is kept so that
``partial_fit`` continues exactly after loading.

Examples
--------
>>> import os, tempfile
>>> import numpy as np
>>> import fastsoftmax
>>> X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
>>> clf = fastsoftmax.LogisticRegression(C=2.0).fit(X, ["b", "a", "b", "a"])
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = clf.save(os.path.join(tmp, "model"))
...     loaded = fastsoftmax.load(path)
>>> os.path.basename(path)
'model.npz'
>>> loaded.C, loaded.classes_
(2.0, array(['a', 'b'], dtype='<U1'))
>>> bool(np.array_equal(loaded.predict_proba(X), clf.predict_proba(X)))
True
"""

from __future__ import annotations

import importlib
import json
import math
import os
import tempfile
import zipfile

import numpy as np

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "ModelFormatError", "load", "save"]

#: The value of ``__format__`` in every model file.
FORMAT_NAME = "fastsoftmax-model"
#: The format version written; files of a newer version are refused.
FORMAT_VERSION = 1


class ModelFormatError(ValueError):
    """The file is not a fastsoftmax model, or one this version cannot read."""


#: estimator class name -> class, filled by :func:`register`
_ESTIMATOR_CLASSES = {}


def register(cls):
    """Let :func:`save` and :func:`load` handle the estimator class ``cls`` (a class decorator).

    The class is stored by its ``__name__`` (the name written to the file);
    its constructor must accept the saved ``get_params()`` as keywords.
    """
    _ESTIMATOR_CLASSES[cls.__name__] = cls
    return cls


def _estimator_classes():
    """The registered estimator classes by name.

    The built-in estimators register themselves when their package is
    imported; ``load`` may come first in a process, so the package is
    imported here by name: persistence needs none of its contents.
    """
    importlib.import_module(f"{__package__}.estimators")
    return _ESTIMATOR_CLASSES


# ---------------------------------------------------------------------------
# encoding: Python values <-> JSON plus named arrays


class _Encoder:
    def __init__(self):
        self.arrays = {}

    def array(self, value):
        key = f"a{len(self.arrays)}"
        if value.dtype.kind == "O":
            items = value.tolist() if value.ndim else [value.item()]
            if not all(isinstance(v, str) for v in np.ravel(np.array(items, dtype=object))):
                raise TypeError(
                    "cannot save an object array unless it holds only strings "
                    f"(got {sorted({type(v).__name__ for v in np.ravel(value)})})"
                )
            self.arrays[key] = value.astype(str)
            return {"__array__": key, "object": True}
        if value.dtype.kind not in "biufcUS":
            raise TypeError(f"cannot save an array of dtype {value.dtype}")
        self.arrays[key] = value
        return {"__array__": key}

    def encode(self, value, where):
        from .learners import LEARNERS, Learner, Schedule

        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                return {"__float__": repr(value)}
            return value
        if isinstance(value, np.ndarray):
            return self.array(value)
        if isinstance(value, np.generic):
            return {"__scalar__": self.array(np.asarray(value))}
        if isinstance(value, (list, tuple)):
            items = [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return items if isinstance(value, list) else {"__tuple__": items}
        if isinstance(value, dict):
            # keys may be labels of any type (class_weight), so store pairs
            pairs = [
                [self.encode(k, where), self.encode(v, f"{where}[{k!r}]")] for k, v in value.items()
            ]
            return {"__dict__": pairs}
        if isinstance(value, Learner):
            if type(value) is not LEARNERS.get(value.kind):
                raise TypeError(
                    f"cannot save {where}: {type(value).__name__} is not a built-in learner, "
                    "and only built-in learners can be restored without pickle"
                )
            state = None if value.state is None else [dict(s) for s in value.state]
            return {
                "__learner__": self.encode(value.get_config(), where),
                "t": int(value.t),
                "state": self.encode(state, where),
            }
        if isinstance(value, Schedule):
            return {"__schedule__": self.encode(value.get_config(), where)}
        if isinstance(value, (np.random.Generator, np.random.RandomState)):
            raise TypeError(
                f"cannot save {where}: a {type(value).__name__} is not portable; "
                "use an integer seed (or None) for random_state"
            )
        raise TypeError(f"cannot save {where} of type {type(value).__name__}")


def _decode(value, arrays):
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        arr = arrays[value["__array__"]]
        return arr.astype(object) if value.get("object") else arr
    if "__scalar__" in value:
        return _decode(value["__scalar__"], arrays)[()]
    if "__float__" in value:
        return float(value["__float__"])
    if "__tuple__" in value:
        return tuple(_decode(v, arrays) for v in value["__tuple__"])
    if "__dict__" in value:
        return {_hashable(_decode(k, arrays)): _decode(v, arrays) for k, v in value["__dict__"]}
    if "__learner__" in value:
        from .learners import get_learner

        learner = get_learner(**_decode(value["__learner__"], arrays))
        learner.t = value["t"]
        state = _decode(value["state"], arrays)
        if state is not None:
            learner.init_state([next(iter(s.values())) for s in state] if all(state) else [])
            learner.state = state
        return learner
    if "__schedule__" in value:
        from .learners import get_schedule

        return get_schedule(_decode(value["__schedule__"], arrays))
    raise ModelFormatError(f"unknown entry in the model manifest: {sorted(value)}")


def _hashable(key):
    return key.item() if isinstance(key, np.ndarray) and key.ndim == 0 else key


def _fitted_attributes(estimator):
    # scikit-learn's convention: fitted attributes end with "_" (and don't start with it);
    # the optimiser of SoftmaxRegression is kept too, for partial_fit after loading
    names = [k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")]
    names += [k for k in ("_learner",) if k in vars(estimator)]
    return {k: getattr(estimator, k) for k in names}


# ---------------------------------------------------------------------------
# public API


def save(estimator, path):
    """Save an estimator's parameters and fitted state to a ``.npz`` file.

    Parameters
    ----------
    estimator : LogisticRegression or SoftmaxRegression
        Fitted or not.
    path : str or os.PathLike
        Destination; ``.npz`` is appended if the name lacks it.  The file is
        written atomically (a partial file never replaces an existing one).

    Returns
    -------
    path : str
        The file written.

    Raises
    ------
    TypeError
        If the estimator is not a fastsoftmax estimator, or a parameter has
        no portable form (e.g. a ``numpy.random.Generator`` as
        ``random_state``).

    Examples
    --------
    See the module docstring.
    """
    classes = _estimator_classes()
    name = type(estimator).__name__
    if classes.get(name) is not type(estimator):
        raise TypeError(
            f"save() expects a fastsoftmax estimator ({', '.join(classes)}), got {name}"
        )
    encoder = _Encoder()
    manifest = {
        "params": {k: encoder.encode(v, k) for k, v in estimator.get_params(deep=False).items()},
        "attributes": {k: encoder.encode(v, k) for k, v in _fitted_attributes(estimator).items()},
    }
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastsoftmax-", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                __format__=np.array(FORMAT_NAME),
                __version__=np.array(FORMAT_VERSION),
                __class__=np.array(name),
                __manifest__=np.array(json.dumps(manifest)),
                **encoder.arrays,
            )
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def load(path):
    """Load an estimator saved by :meth:`~fastsoftmax.SoftmaxRegression.save` or :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npz`` model file.

    Returns
    -------
    estimator : LogisticRegression or SoftmaxRegression
        With the saved parameters and fitted attributes.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ModelFormatError
        (a ``ValueError``) If the file is not a fastsoftmax model file, or was
        written in a newer format version than this fastsoftmax reads.

    Examples
    --------
    See the module docstring.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:  # FileNotFoundError as usual
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # every .npz is a zip archive
        raise ModelFormatError(f"{path!r} is not a fastsoftmax model file (not a .npz archive)")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelFormatError(
            f"{path!r} is not a fastsoftmax model file (a damaged .npz archive: {exc})"
        ) from None
    with archive:
        try:
            files = set(archive.files)
            if "__format__" not in files or str(archive["__format__"]) != FORMAT_NAME:
                raise ModelFormatError(
                    f"{path!r} is not a fastsoftmax model file (no {FORMAT_NAME!r} format marker)"
                )
            version = int(archive["__version__"])
            if version > FORMAT_VERSION:
                raise ModelFormatError(
                    f"{path!r} was written in model format version {version}, newer than the "
                    f"version {FORMAT_VERSION} this fastsoftmax reads; "
                    "upgrade fastsoftmax to load it"
                )
            name = str(archive["__class__"])
            classes = _estimator_classes()
            if name not in classes:
                raise ModelFormatError(f"{path!r} holds an unknown estimator class {name!r}")
            manifest = json.loads(str(archive["__manifest__"]))
            arrays = {k: archive[k] for k in files if not k.startswith("__")}
            params = {k: _decode(v, arrays) for k, v in manifest["params"].items()}
            attributes = {k: _decode(v, arrays) for k, v in manifest["attributes"].items()}
        except ModelFormatError:
            raise
        except (KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
            raise ModelFormatError(f"{path!r} is a damaged fastsoftmax model file: {exc}") from None
    estimator = classes[name](**params)
    for key, value in attributes.items():
        setattr(estimator, key, value)
    return estimator
