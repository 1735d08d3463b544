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

import contextlib
import importlib
import json
import math
import os
import secrets
import stat
import warnings
import zipfile
from collections.abc import Callable
from typing import IO, Any, TypeVar

import numpy as np
from numpy.typing import NDArray

_Class = TypeVar("_Class", bound=type)

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "ModelFormatError", "load", "save"]

#: The value of ``__format__`` in every model file.
FORMAT_NAME = "fastsoftmax-model"
#: The format version written; files of a newer version are refused.
FORMAT_VERSION = 1


class ModelFormatError(ValueError):
    """The file is not a fastsoftmax model, or one this version cannot read."""


#: estimator class name -> class, filled by :func:`register`
_ESTIMATOR_CLASSES: dict[str, type[Any]] = {}


def register(cls: _Class) -> _Class:
    """Let :func:`save` and :func:`load` handle the estimator class ``cls`` (a class decorator).

    The class is stored by its ``__name__`` (the name written to the file);
    its constructor must accept the saved ``get_params()`` as keywords.
    """
    _ESTIMATOR_CLASSES[cls.__name__] = cls
    return cls


def _estimator_classes() -> dict[str, type[Any]]:
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
    def __init__(self) -> None:
        # Any: numpy's stubs would match a str -> ndarray dict against savez's allow_pickle
        self.arrays: dict[str, Any] = {}

    def array(self, value: NDArray[Any]) -> dict[str, Any]:
        key = f"a{len(self.arrays)}"
        if value.dtype.kind == "O" and value.size and all(v is None for v in value.flat):
            # e.g. LogisticRegressionCV's l1_ratio_ without an l1_ratio grid
            return {"__none_array__": list(value.shape)}
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

    def encode(self, value: Any, where: str) -> Any:
        from .learners import LEARNERS, Learner, Schedule

        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                return {"__float__": repr(value)}
            return value
        if isinstance(value, np.ndarray):
            return self.array(value)
        if _is_sparse(value):  # a sparsified coef_: stored dense, sparsified again on load
            if value.format != "csr":
                raise TypeError(f"cannot save {where}: a sparse {value.format} matrix (only CSR)")
            dense = np.ascontiguousarray(value.toarray())
            # by name: before scipy 1.11 a csr_array is a csr_matrix too (isspmatrix is True)
            sparray = type(value).__name__ == "csr_array"
            return {"__csr__": self.array(dense), "sparray": sparray}
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
            # the base class's kind, None, matches no learner
            if type(value) is not LEARNERS.get(value.kind):  # type: ignore[arg-type]
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


def _decode(value: Any, arrays: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        arr = arrays[value["__array__"]]
        return arr.astype(object) if value.get("object") else arr
    if "__csr__" in value:
        import scipy.sparse as sp

        dense = _decode(value["__csr__"], arrays)
        return sp.csr_array(dense) if value.get("sparray") else sp.csr_matrix(dense)
    if "__none_array__" in value:
        shape = tuple(int(n) for n in value["__none_array__"])
        return np.full(shape, None, dtype=object)
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


def _is_sparse(value: Any) -> bool:
    # scipy.sparse only when it is already imported: a model without one never loads it
    import sys

    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and bool(sparse.issparse(value))


def _hashable(key: Any) -> Any:
    return key.item() if isinstance(key, np.ndarray) and key.ndim == 0 else key


def _fitted_attributes(estimator: Any) -> dict[str, Any]:
    # scikit-learn's convention: fitted attributes end with "_" (and don't start with it);
    # the optimiser of SoftmaxRegression is kept too, for partial_fit after loading
    names = [k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")]
    names += [k for k in ("_learner",) if k in vars(estimator)]
    return {k: getattr(estimator, k) for k in names}


# ---------------------------------------------------------------------------
# reading an archive within bounds

#: Compression methods of model files: np.savez stores, np.savez_compressed deflates.
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
#: Most bytes one deflated byte can become (deflate's own limit is about 1032).
_MAX_INFLATION = 1100
#: Largest ``__format__``, ``__version__`` or ``__class__`` member, in bytes.
_MAX_MARKER_SIZE = 4096
#: Largest manifest member, in bytes: a JSON document of parameters and references.
_MAX_MANIFEST_SIZE = 64 << 20
#: Longest .npy header read (numpy's own default).
_MAX_HEADER_SIZE = 10000


class _Archive:
    """The members of a model file, each read only when named and only if its size is sane.

    Every member read must be stored or deflated, have a compressed size that
    fits in the file and an uncompressed size that deflate can reach from it,
    and hold a plain (non-object) .npy array whose header agrees with that
    size; the members read together may not claim more than the file holds.
    Memory use is so bounded by ``_MAX_INFLATION`` times the file's size.
    """

    def __init__(self, file: IO[bytes], path: str | os.PathLike[str]) -> None:
        self.path = path
        self.file_size = os.fstat(file.fileno()).st_size
        self.zip = zipfile.ZipFile(file)
        self.compressed_read = 0
        self.arrays: dict[str, NDArray[Any]] = {}

    def close(self) -> None:
        self.zip.close()

    def __contains__(self, key: str) -> bool:
        return f"{key}.npy" in self.zip.NameToInfo

    def damaged(self, what: str) -> ModelFormatError:
        return ModelFormatError(f"{self.path!r} is a damaged fastsoftmax model file: {what}")

    def array(self, key: str, max_size: int | None = None) -> NDArray[Any]:
        """The array stored under ``key`` (read once, then remembered)."""
        if key in self.arrays:
            return self.arrays[key]
        info = self.zip.NameToInfo.get(f"{key}.npy")
        if info is None:
            raise self.damaged(f"it has no array {key!r}")
        self._check_sizes(key, info, max_size)
        with self.zip.open(info) as member:
            shape, dtype = self._header(key, member)
            data_size = math.prod(shape) * dtype.itemsize  # Python integers: no wrapping
            if member.tell() + data_size != info.file_size:
                raise self.damaged(
                    f"array {key!r} of shape {shape} and dtype {dtype} needs "
                    f"{member.tell() + data_size} bytes, its member holds {info.file_size}"
                )
        with self.zip.open(info) as member:  # sizes agree: let NumPy read it
            array = np.lib.format.read_array(
                member, allow_pickle=False, max_header_size=_MAX_HEADER_SIZE
            )
        self.arrays[key] = array
        return array

    def _check_sizes(self, key: str, info: zipfile.ZipInfo, max_size: int | None) -> None:
        if info.compress_type not in _METHODS:
            raise self.damaged(f"member {key!r} uses compression method {info.compress_type}")
        self.compressed_read += info.compress_size
        if self.compressed_read > self.file_size:
            raise self.damaged(f"member {key!r} claims more bytes than the file holds")
        if info.compress_type == zipfile.ZIP_STORED:
            inflatable = info.compress_size
        else:
            inflatable = _MAX_INFLATION * info.compress_size + 1024
        if info.file_size > inflatable or (max_size is not None and info.file_size > max_size):
            raise self.damaged(
                f"member {key!r} claims {info.file_size} bytes, more than it can hold"
            )

    def _header(self, key: str, member: IO[bytes]) -> tuple[Any, Any]:
        version = np.lib.format.read_magic(member)
        if version not in ((1, 0), (2, 0)):  # 3.0 only serves structured dtypes
            raise self.damaged(f"array {key!r} has .npy format version {version}")
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(member, max_header_size=_MAX_HEADER_SIZE)
        if dtype.kind not in "biufcUS" or dtype.names is not None or dtype.shape != ():
            raise self.damaged(f"array {key!r} has dtype {dtype}, which model files never hold")
        return shape, dtype

    def string(self, key: str) -> str:
        value = self.array(key, _MAX_MANIFEST_SIZE if key == "__manifest__" else _MAX_MARKER_SIZE)
        if value.ndim != 0 or value.dtype.kind != "U":
            raise self.damaged(f"{key} is not a string")
        return str(value)


def _array_keys(manifest: Any, damaged: Callable[[str], Exception]) -> list[str]:
    """The archive keys the manifest refers to (``{"__array__": key}`` anywhere in it).

    ``damaged(what)`` makes the error raised for an invalid reference.
    """
    keys, pending = [], [manifest]
    while pending:  # iterative: a deeply nested manifest must not overflow the stack
        value = pending.pop()
        if isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, dict):
            if "__array__" in value:
                key = value["__array__"]
                if not isinstance(key, str) or key.startswith("__"):
                    raise damaged(f"the manifest refers to an invalid array {key!r}")
                keys.append(key)
            pending.extend(value.values())
    return keys


def _open_regular(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open ``path`` for reading, refusing anything but a regular file.

    O_NONBLOCK: opening a named pipe must not wait for a writer.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise ModelFormatError(f"{path!r} is not a fastsoftmax model file ({kind})")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_model_file(
    path: str | os.PathLike[str],
) -> tuple[str, dict[str, Any], dict[str, NDArray[Any]]]:
    """(class name, manifest, arrays) of a model file; ModelFormatError if it is not one."""
    with _open_regular(path) as f:  # FileNotFoundError and PermissionError as usual
        if f.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
            raise ModelFormatError(
                f"{path!r} is not a fastsoftmax model file (not a .npz archive)"
            )
        f.seek(0)
        try:
            archive = _Archive(f, path)
        except Exception as exc:  # BadZipFile, and whatever else a damaged directory gives
            raise ModelFormatError(
                f"{path!r} is not a fastsoftmax model file (a damaged .npz archive: {exc})"
            ) from None
        try:
            if "__format__" not in archive or archive.string("__format__") != FORMAT_NAME:
                raise ModelFormatError(
                    f"{path!r} is not a fastsoftmax model file (no {FORMAT_NAME!r} format marker)"
                )
            version = archive.array("__version__", _MAX_MARKER_SIZE)
            if version.ndim != 0 or version.dtype.kind not in "iu":
                raise archive.damaged("__version__ is not an integer")
            if int(version) > FORMAT_VERSION:
                raise ModelFormatError(
                    f"{path!r} was written in model format version {int(version)}, newer than "
                    f"the version {FORMAT_VERSION} this fastsoftmax reads; "
                    "upgrade fastsoftmax to load it"
                )
            name = archive.string("__class__")
            if name not in _estimator_classes():
                raise ModelFormatError(f"{path!r} holds an unknown estimator class {name!r}")
            manifest = json.loads(archive.string("__manifest__"))
            if not (
                isinstance(manifest, dict)
                and isinstance(manifest.get("params"), dict)
                and isinstance(manifest.get("attributes"), dict)
            ):
                raise archive.damaged("the manifest lacks its params and attributes")
            arrays = {key: archive.array(key) for key in _array_keys(manifest, archive.damaged)}
        except ModelFormatError:
            raise
        except Exception as exc:  # damaged members: bad CRC, deflate data, .npy headers, JSON
            raise archive.damaged(f"{type(exc).__name__}: {exc}") from exc
        finally:
            archive.close()
    return name, manifest, arrays


# ---------------------------------------------------------------------------
# checking a loaded estimator as fit would


class _ParametersChecked(Exception):
    """Raised in place of fit's first look at the data: its parameter checks all passed."""


def _check_parameters(estimator: Any) -> None:
    """Run the parameter checks of ``estimator.fit``, without fitting.

    ``fit`` checks every hyper-parameter before it reads the data (in
    ``_fit_data``), so ``fit`` is run with that step stopped; SoftmaxRegression
    builds its random generator and learner after the data, so those are built
    too.  Raises what ``fit`` would (TypeError, ValueError).
    """
    def stop(*args: Any, **kwargs: Any) -> None:
        raise _ParametersChecked

    estimator._fit_data = stop
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fit's warnings are for fitting time
            estimator.fit(None, None)
    except _ParametersChecked:
        pass
    finally:
        del estimator._fit_data
    # what fit checks only after looking at the data
    from ._validation import check_bool, check_class_weight, check_l2

    check_class_weight(estimator.class_weight)
    check_bool("fit_intercept", estimator.fit_intercept)
    if hasattr(estimator, "l2"):
        check_l2(estimator.l2)
    for build in ("_rng", "_make_learner"):
        if hasattr(estimator, build):
            getattr(estimator, build)()


def _check_attribute_names(estimator: Any, names: Any) -> None:
    for key in names:
        fitted = key.endswith("_") and not key.startswith("_") and key.isidentifier()
        if not (fitted or key == "_learner") or hasattr(type(estimator), key):
            raise ModelFormatError(
                f"the model file sets attribute {key!r}, which is not a fitted attribute "
                f"of {type(estimator).__name__}"
            )


def _is_number_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in value
    )


def _check_fitted_state(attributes: dict[str, Any], grid_n_iter: bool = False) -> None:
    """The fitted arrays of a linear classifier agree with each other and are finite.

    ``grid_n_iter``: ``n_iter_`` holds a count per grid point (LogisticRegressionCV).
    """
    if "coef_" not in attributes:
        return
    missing = {"classes_", "coef_", "intercept_", "n_features_in_"} - set(attributes)
    if missing:
        raise ModelFormatError(f"a fitted model lacks {', '.join(sorted(missing))}")
    classes, coef, intercept = (attributes[k] for k in ("classes_", "coef_", "intercept_"))
    if _is_sparse(coef):  # sparsify(): checked in its dense form
        coef = coef.toarray()
    n_features = attributes["n_features_in_"]
    for key, value in (("coef_", coef), ("intercept_", intercept)):
        if not (isinstance(value, np.ndarray) and value.dtype in (np.float32, np.float64)):
            raise ModelFormatError(f"{key} must be a float32 or float64 array")
        if not np.all(np.isfinite(value)):
            raise ModelFormatError(f"{key} holds non-finite values")
    if not (isinstance(classes, np.ndarray) and classes.ndim == 1 and classes.shape[0] >= 2):
        raise ModelFormatError("classes_ must be an array of at least 2 labels")
    if not np.all(classes[1:] > classes[:-1]):
        raise ModelFormatError("classes_ must be sorted and unique, as fit leaves it")
    if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
        raise ModelFormatError(f"n_features_in_ must be a positive int, got {n_features!r}")
    rows = 1 if classes.shape[0] == 2 else classes.shape[0]
    if coef.shape != (rows, n_features) or intercept.shape != (rows,):
        raise ModelFormatError(
            f"coef_ of shape {coef.shape} and intercept_ of shape {intercept.shape} do not fit "
            f"{classes.shape[0]} classes and {n_features} features (expected ({rows}, "
            f"{n_features}) and ({rows},))"
        )
    if intercept.dtype != coef.dtype:
        raise ModelFormatError(f"intercept_ is {intercept.dtype} but coef_ is {coef.dtype}")
    for key in ("n_iter_", "best_epoch_"):  # an int, or LogisticRegression's int array
        count = np.asarray(attributes.get(key, 0))
        if grid_n_iter and key == "n_iter_":  # an int array of any shape, one per grid point
            if count.dtype.kind not in "iu" or count.size < 1 or count.min() < 0:
                raise ModelFormatError(f"{key} must be an array of non-negative integers")
            continue
        if count.dtype.kind not in "iu" or count.size != 1 or count.item() < 0:
            raise ModelFormatError(f"{key} must be a non-negative integer")
    history = attributes.get("history_", {})
    if not (
        isinstance(history, dict)
        and all(_is_number_list(v) for v in history.values())
        and len({len(v) for v in history.values()}) <= 1
    ):
        raise ModelFormatError("history_ must map names to lists of numbers, one per epoch")


# ---------------------------------------------------------------------------
# writing


def _destination(path: str) -> str:
    """The file to replace: a symlink's target, as numpy's savez writes through links."""
    return os.path.realpath(path) if os.path.islink(path) else path


def _create_temporary(final: str) -> tuple[int, str]:
    """A new file next to ``final`` with the mode a plain ``open(final, "wb")`` would give.

    An existing file keeps its mode; a new one gets 0o666 minus the umask (the
    kernel applies the umask to os.open's mode, so it never has to be read).
    """
    directory, base = os.path.split(os.path.abspath(final))
    try:
        mode = stat.S_IMODE(os.stat(final).st_mode)
    except OSError:
        mode = None
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o666)
        except FileExistsError:
            continue
        if mode is not None:
            os.chmod(tmp, mode)
        return fd, tmp
    raise FileExistsError(f"could not create a temporary file in {directory}")


# ---------------------------------------------------------------------------
# public API


def save(estimator: Any, path: str | os.PathLike[str]) -> str:
    """Save an estimator's parameters and fitted state to a ``.npz`` file.

    Parameters
    ----------
    estimator : LogisticRegression, LogisticRegressionCV or SoftmaxRegression
        Fitted or not.
    path : str or os.PathLike
        Destination; ``.npz`` is appended if the name lacks it.  The file is
        written atomically (a partial file never replaces an existing one),
        with the permissions ``numpy.savez`` would give it (an existing
        file's, else those the umask allows); a symbolic link is written
        through, replacing its target, as ``numpy.savez`` does.

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
    OSError
        If the file cannot be written; the error names ``path``.

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
    try:
        final = _destination(path)
        fd, tmp = _create_temporary(final)
    except OSError as exc:  # name the file asked for, not a temporary one
        raise OSError(exc.errno, exc.strerror, path) from exc
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
        os.replace(tmp, final)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OSError(exc.errno, exc.strerror, path) from exc
        raise
    return path


# Any: the class is the one named in the file (and the estimators import this module)
def load(path: str | os.PathLike[str]) -> Any:
    """Load an estimator saved by :meth:`~fastsoftmax.SoftmaxRegression.save` or :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npz`` model file.

    Returns
    -------
    estimator : LogisticRegression, LogisticRegressionCV or SoftmaxRegression
        With the saved parameters and fitted attributes.

    Raises
    ------
    OSError
        If the file cannot be opened (``FileNotFoundError``,
        ``PermissionError``).
    ModelFormatError
        (a ``ValueError``) For any other problem: the file is not a regular
        file or not a fastsoftmax model file, is damaged, was written in a
        newer format version than this fastsoftmax reads, or holds parameters
        or fitted arrays that ``fit`` would never produce.  Only the arrays
        the manifest names are read, after checking their declared sizes, so
        a crafted file cannot make ``load`` use much more memory than its own
        size allows.

    Examples
    --------
    See the module docstring.
    """
    path = os.fspath(path)
    name, manifest, arrays = _read_model_file(path)
    try:
        params = {k: _decode(v, arrays) for k, v in manifest["params"].items()}
        attributes = {k: _decode(v, arrays) for k, v in manifest["attributes"].items()}
        estimator = _estimator_classes()[name](**params)
        _check_parameters(estimator)
        _check_attribute_names(estimator, attributes)
        _check_fitted_state(attributes, grid_n_iter=getattr(estimator, "_grid_n_iter", False))
        for key, value in attributes.items():
            setattr(estimator, key, value)
        if "classes_" in attributes:  # class_weight against the classes, as fit checks it
            n_classes = len(estimator.classes_)
            estimator._weights(np.arange(n_classes), None, n_classes, estimator.coef_.dtype)
    except ModelFormatError as exc:
        raise ModelFormatError(f"{path!r} is a damaged fastsoftmax model file: {exc}") from None
    except Exception as exc:  # whatever a crafted manifest makes the decoding raise
        raise ModelFormatError(
            f"{path!r} is a damaged fastsoftmax model file: {type(exc).__name__}: {exc}"
        ) from exc
    return estimator
