"""Training and prediction on Dask arrays, with the fused kernels as the work of each block.

Private.  The design is Spark MLlib's: the data stay where their blocks live
(on the workers of a ``distributed`` cluster, or on disk), the small model
travels.

- :func:`fit_logistic` (``LogisticRegression.fit``): every evaluation of the
  objective runs the data kernel (``_objective.softmax_loss_grad`` /
  ``logistic_loss_grad`` with ``normalizer=1``: the plain sums, see
  :mod:`fastsoftmax._backends`) on every block where it lives, adds the sums
  in float64 and the solver of :mod:`fastsoftmax._solvers` steps on the
  client.  When X's blocks are held on a ``distributed`` cluster (persisted
  by the user, or ``fit(..., persist=True)``) the fit starts one Dask actor
  per worker (:class:`_WorkerBlockSums`) holding the blocks that worker
  holds, with their labels and weights as read (the actors check the blocks
  and encode the labels in place: the set-up is one scheduler round trip and
  a few direct calls), and an evaluation is one call to each actor (a direct
  request to its worker, the coefficients in it), which sums its blocks on
  the worker's threads; the few partial sums are added on the client.  Tasks would wait on
  Dask's batched messages (the client sends to the scheduler at most every
  10 ms, the scheduler to a worker every 5 ms): about 16 ms per evaluation,
  as much as the work itself on MNIST.  If an actor call fails (its worker
  lost: an actor is not recomputed), the rest of the fit runs on tasks: one
  task per worker thread over the blocks that worker holds
  (``client.submit``, ``pure=False``: no graph is built, hashed or
  optimised), which Dask recomputes when their blocks are lost; the
  coefficients travel in the task (or once per worker, ``client.scatter(...,
  broadcast=True)``, when large), and the partial sums are gathered and
  added on the client (by a tree of ``split_every``-ary tasks when there are
  more than ``SPLIT_EVERY``).  Otherwise (X read from its source at every
  evaluation, or the threaded scheduler) an evaluation is one delayed graph:
  a task per block, a tree of sums and the coefficients on top of X's own
  graph.
- :class:`Blocks.train_epoch` (``SoftmaxRegression.fit`` / ``partial_fit``):
  an epoch visits the blocks in a shuffled order, each trained by the
  compiled epoch kernel (:mod:`fastsoftmax._epoch_driver`), the trainer
  (model and learner state, small) handed from one block to the next.  On a
  cluster holding X the same actors train: one call per stretch of
  consecutive blocks one worker holds; if a call fails, the epoch starts again
  from the trainer before it on a chain of one task per block (as without a
  cluster holding X), with the same block order and seeds.
- :func:`predict`: the estimator's in-memory method mapped over the blocks
  (``map_blocks``): lazy, X is never gathered.

Input is checked once, by the estimators' own in-memory checks run on each
block in one pass over X (NaN, dtype, labels, weights), and the labels are
found over all of y in that pass.  The encoded labels and the weights (times
the class weights) are then kept on the cluster, next to their blocks of X
(1 / n_features of X's size); X itself is kept only when the user asks:
``fit(..., persist=True)`` (for this fit only), or ``X = X.persist()``
beforehand.  Otherwise every evaluation reads X again from its source, which
is what makes data larger than memory trainable.

Dask is imported only when a Dask collection is passed in: fastsoftmax
imports without it.  With a ``distributed`` client the work runs on its
cluster; without one, on Dask's default (threaded) scheduler.
"""

from __future__ import annotations

import copy
import functools
import math

import numpy as np

from . import _objective
from ._objective import l2_penalty
from ._validation import check_class_weight, check_sparse_matrix, float_dtype, is_sparse

#: the arity of the tree that adds the blocks' sums
SPLIT_EVERY = 8
#: X's blocks on a cluster: sum them through one actor per worker (else one task per thread)
USE_ACTORS = True
#: coefficients larger than this are scattered to the workers once per evaluation,
#: smaller ones travel as one key of the graph (saving the scatter's round trip)
_SCATTER_BYTES = 1 << 20
_KEPT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.uint8))


#: SoftmaxRegression's early_stopping splits the rows in memory
EARLY_STOPPING_NEEDS_VALIDATION_DATA = (
    "early_stopping on a Dask array needs validation_data=(X_val, y_val): the rows are not "
    "split across the blocks"
)


def is_dask_collection(x):
    """Whether ``x`` is a Dask collection (without importing Dask for anything else).

    The checked :class:`Blocks` and their cross-validation :class:`Fold` views
    count as Dask data too: the estimators send them here.
    """
    if isinstance(x, (Blocks, Fold)):
        return True
    if not type(x).__module__.startswith("dask"):
        return False
    from dask.base import is_dask_collection as _is_collection

    return _is_collection(x)


def _client():
    """The current ``distributed`` client, or None (threaded scheduler; also without distributed)."""
    import dask

    scheduler = dask.config.get("scheduler", None)  # e.g. dask.config.set(scheduler="threads")
    if isinstance(scheduler, str) and scheduler not in ("distributed", "dask.distributed"):
        return None
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# the checked data: blocks of rows


def _as_dask_array(a, name):
    import dask.array as da

    if isinstance(a, da.Array):
        return a
    if hasattr(a, "to_dask_array"):  # a dask DataFrame or Series
        return a.to_dask_array(lengths=True)
    raise TypeError(
        f"{name} is a {type(a).__name__}; fastsoftmax takes dask arrays (dask.array.Array) "
        "or dask DataFrames / Series"
    )


def _check_X(X, name="X"):
    """X as a dask array of rows: 2-D, known chunk sizes, one chunk across the columns."""
    X = _as_dask_array(X, name)
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), got shape {X.shape}"
        )
    if any(math.isnan(c) for c in X.chunks[0]):
        raise ValueError(
            f"{name} has unknown chunk sizes along its rows (e.g. from a boolean mask or a "
            f"dask DataFrame); compute them first: {name}.compute_chunk_sizes(), or "
            "df.to_dask_array(lengths=True)"
        )
    if X.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} has dtype {X.dtype}")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numbers, got dtype {X.dtype}")
    if X.dtype not in _KEPT_DTYPES:  # as check_data_matrix: other numbers are read as floats
        X = X.astype(float_dtype(X.dtype))
    if len(X.chunks[1]) > 1:
        # every kernel call needs whole rows: one rechunk, part of X's graph (nothing is stored)
        X = X.rechunk({0: X.chunks[0], 1: -1})
    n, d = X.shape
    if n < 1 or d < 1:
        which = "sample" if n < 1 else "feature"
        raise ValueError(
            f"Found array with 0 {which}(s) (shape={X.shape}) while a minimum of 1 is required."
        )
    return X


def _rows_like(a, X, name):
    """``a`` (numpy or dask, 1-D with X's rows) as a dask array chunked as X's rows."""
    import dask.array as da

    a = _as_dask_array(a, name) if is_dask_collection(a) else np.asarray(a)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array with one entry per sample, got shape {a.shape}")
    if not isinstance(a, np.ndarray) and any(math.isnan(c) for c in a.chunks[0]):
        raise ValueError(f"{name} has unknown chunk sizes; compute them: {name}.compute_chunk_sizes()")
    if a.shape[0] != X.shape[0]:
        raise ValueError(
            "Found input variables with inconsistent numbers of samples: "
            f"{[int(X.shape[0]), int(a.shape[0])]}"
        )
    if isinstance(a, np.ndarray):
        return da.from_array(a, chunks=(X.chunks[0],))
    return a.rechunk((X.chunks[0],)) if a.chunks[0] != X.chunks[0] else a


def _inspect_block(X, y, sample_weight, dtype, block, checks):
    """Check one block as the in-memory fit checks its data; its labels and weighted counts."""
    from ._validation import check_sample_weight

    try:
        X = checks.rows(X)
        y = checks.labels(y, X.shape[0])
        sw = check_sample_weight(sample_weight, X.shape[0], dtype)
    except ValueError as exc:
        raise ValueError(f"{exc} (in block {block} of the rows)") from None
    try:
        labels, inverse = np.unique(y, return_inverse=True)
    except TypeError as exc:
        raise ValueError(f"Unknown label type: the labels of y cannot be sorted: {exc}") from None
    counts = np.bincount(inverse.reshape(-1), weights=sw, minlength=labels.shape[0])
    return labels, counts.astype(np.float64)


def _encode_block(y, classes, class_weights, sample_weight, dtype):
    """One block's label indices and weights (sample weights times class weights, or None)."""
    y_idx = np.ascontiguousarray(np.searchsorted(classes, np.asarray(y).reshape(-1)), dtype=np.intp)
    sw = None if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=dtype)
    if class_weights is not None:
        cw = class_weights.astype(dtype)[y_idx]
        sw = cw if sw is None else sw * cw
    return y_idx, sw


class Blocks:
    """Checked training data: X's row blocks, and their label indices and weights, kept.

    ``shape``, ``dtype`` (of the parameters), ``weight_total`` and
    ``mean_weight`` (None unweighted) are known; the per-block work goes
    through :meth:`map_sum` and :meth:`train_epoch`.

    With a ``distributed`` client and X's blocks held on the cluster (X
    persisted by the user, or ``persist=True``), the blocks are futures, the
    actors start with them (``actors=True``) and every evaluation is one call
    to an actor per worker holding them (one task per worker thread if an
    actor is lost): no graph is built, tokenised or optimised per evaluation;
    :meth:`stop_actors` ends the actors.
    Otherwise (X read from its source each time, or no client) an evaluation
    is one small delayed graph on top of X's own.
    """

    def __init__(self, estimator, X, y, sample_weight, classes=None, *, reset=True, dtype=None,
                 persist=False, actors=True):  # fmt: skip
        checks = estimator._checks  # the estimators' own checks (estimators._base)
        checks.feature_names(estimator, X, reset=reset)  # a dask DataFrame's columns
        X = _check_X(X)
        estimator._check_n_features(X, reset=reset)
        self.dtype = np.dtype(estimator._param_dtype(X) if dtype is None else dtype)
        self.shape = X.shape
        if y is None:
            raise ValueError("this classifier requires y to be passed, but the target y is None")
        y = _rows_like(y, X, "y")
        sw = None if sample_weight is None else _rows_like(sample_weight, X, "sample_weight")
        keep = [i for i, rows in enumerate(X.chunks[0]) if rows > 0]
        self.client = client = _client()
        x_futures = None if client is None else _block_futures(client, X)
        if persist and x_futures is None:
            # the checked blocks (rechunked, cast) are kept, for this fit only: released with self
            if client is not None:
                x_futures = _persist_spread(client, X)
            else:
                X = X.persist()
        self._X = X  # holds the futures of a persisted X for as long as the fit runs
        x_parts = X.to_delayed().ravel() if x_futures is None else x_futures
        y_parts = y.to_delayed().ravel()
        sw_parts = [None] * len(y_parts) if sw is None else sw.to_delayed().ravel()
        self.x_parts = [x_parts[i] for i in keep]
        self.on_cluster = x_futures is not None
        self.row_counts = [X.chunks[0][i] for i in keep]
        self._block_sums = None  # the actors (None: not started, False: given up)
        self._groups = self._encoding = None
        self._y_parts = self._sw_parts = None  # the encoded labels and weights, see y_parts

        if self.on_cluster:
            # one client.compute for all of y (and the weights): each call is a message
            y_parts = client.compute([y_parts[i] for i in keep])
            sw_parts = ([None] * len(keep) if sw is None
                        else client.compute([sw_parts[i] for i in keep]))  # fmt: skip
            if persist:  # where the blocks are read decides where they are summed
                from distributed import wait

                wait(self.x_parts)
            self._groups = self._worker_groups(client.who_has(self.x_parts))
            if actors and USE_ACTORS:  # the actors check, encode and keep the blocks
                try:
                    self._block_sums = self._start_actors(y_parts, sw_parts)
                except Exception:  # noqa: BLE001 -- e.g. a worker lost: the tasks' path
                    self._give_up_actors()
        else:
            y_parts, sw_parts = [y_parts[i] for i in keep], [sw_parts[i] for i in keep]
        try:
            self._check_and_encode(estimator, checks, classes, y_parts, sw_parts, keep)
        except BaseException:
            self.stop_actors()
            raise

    def _check_and_encode(self, estimator, checks, classes, y_parts, sw_parts, keep):
        """One pass over X (every block checked, the labels of all of y found); the labels
        encoded and the weights (times the class weights) kept, next to their blocks."""
        import dask

        client = self.client
        found = None
        if self._block_sums:
            try:
                found = self._inspect_on_actors(checks, keep)
            except (ValueError, TypeError):  # the data's own errors, naming the block
                raise
            except Exception:  # noqa: BLE001 -- e.g. a worker lost: the tasks check the blocks
                self._give_up_actors()
        if found is None and self.on_cluster:
            found = client.gather([
                client.submit(_inspect_block, x, y_part, sw_part, self.dtype, i, checks,
                              pure=False)
                for i, x, y_part, sw_part in zip(keep, self.x_parts, y_parts, sw_parts)
            ])  # fmt: skip
        elif found is None:
            inspect = dask.delayed(_inspect_block, pure=True)
            found = dask.compute(*[
                inspect(x, y_part, sw_part, self.dtype, i, checks)
                for i, x, y_part, sw_part in zip(keep, self.x_parts, y_parts, sw_parts)
            ])  # fmt: skip
        labels = np.concatenate([labels for labels, _ in found])
        if classes is None:
            classes = checks.encode_labels(labels, estimator)[0]
        elif hasattr(estimator, "_encode_known"):  # partial_fit: no label outside classes_
            estimator._encode_known(labels)
        counts = np.zeros(classes.shape[0])
        for block_labels, block_counts in found:
            counts[np.searchsorted(classes, block_labels)] += block_counts
        class_weight = check_class_weight(getattr(estimator, "class_weight", None))
        class_weights = None
        if class_weight is not None:
            # the counts are already weighted by sample_weight: those of "balanced"
            class_weights = checks.class_weights(
                class_weight, classes, np.arange(classes.shape[0]), counts
            )
            counts = counts * class_weights
        self.classes = classes
        self.weighted = sw_parts[0] is not None or class_weights is not None
        n = self.shape[0]
        self.weight_total = float(np.sum(counts)) if self.weighted else float(n)
        if self.weighted and not self.weight_total > 0:
            raise ValueError(
                "sample_weight (times the class weights) is zero for every sample; "
                "at least one weight must be positive"
            )
        self.mean_weight = self.weight_total / n if self.weighted else None
        if not self.weighted:
            self._sw_parts = [None] * len(keep)

        # the labels and weights, encoded once and kept (they are 1 / n_features of X),
        # each next to its block of X when X is on the cluster: by its actor, or (for the
        # tasks) when first asked for
        if self._block_sums:
            calls = [actor.encode(classes, class_weights, self.dtype)
                     for _, actor in self._block_sums]  # fmt: skip
            try:
                for call in calls:
                    call.result()
            except Exception:  # noqa: BLE001 -- e.g. a worker lost: the tasks' path
                self._give_up_actors()
        if self.on_cluster:
            self._encoding = (y_parts, sw_parts, class_weights)
            return
        y_kept, sw_kept = self._encoded(y_parts, sw_parts, class_weights)
        if client is not None:  # the delayed graphs take them as keys
            kept = client.persist(y_kept + sw_kept)
        else:
            kept = [dask.delayed(part) for part in dask.compute(*y_kept, *sw_kept)]
        self._y_parts = kept[: len(keep)]
        if self.weighted:
            self._sw_parts = kept[len(keep) :]

    def _encoded(self, y_parts, sw_parts, class_weights):
        """The delayed label indices and weights (``[]`` unweighted) of every block."""
        import dask

        encode = dask.delayed(_encode_block, pure=True, nout=2)
        encoded = [encode(y_part, self.classes, class_weights, sw_part, self.dtype)
                   for y_part, sw_part in zip(y_parts, sw_parts)]  # fmt: skip
        return [part[0] for part in encoded], [part[1] for part in encoded] if self.weighted else []

    def _inspect_on_actors(self, checks, keep):
        calls = [actor.inspect(self.dtype, checks, keep) for _, actor in self._block_sums]
        found = dict(item for call in calls for item in call.result())
        return [found[i] for i in range(len(keep))]

    @property
    def y_parts(self):
        """The label indices of every block (futures next to their blocks on the cluster)."""
        if self._y_parts is None:
            self._encode_on_cluster()
        return self._y_parts

    @property
    def sw_parts(self):
        """The weights of every block (sample times class weights), or Nones unweighted."""
        if self._sw_parts is None:
            self._encode_on_cluster()
        return self._sw_parts

    @sw_parts.setter
    def sw_parts(self, parts):  # a cross-validation fold's own weights
        self._sw_parts = parts

    def _encode_on_cluster(self):
        """The encoded labels and weights as futures on the workers holding X's blocks.

        For the tasks (and the folds' actors): the fit's own actors encode
        and keep theirs; these are computed only when asked for, from the
        labels and weights read for the checks (so they are recomputed with
        them when a worker is lost).
        """
        y_kept, sw_kept = self._encoded(*self._encoding)
        kept = self._compute_next_to_x(self.client.who_has(self.x_parts), y_kept, sw_kept)
        self._y_parts = kept[: len(y_kept)]
        if self._sw_parts is None:
            self._sw_parts = kept[len(y_kept) :]

    def _compute_next_to_x(self, holders, y_kept, sw_kept):
        """``y_kept + sw_kept`` computed on the workers holding X's blocks: one call per worker."""
        by_holders = {}
        for i, x in enumerate(self.x_parts):
            by_holders.setdefault(tuple(sorted(holders.get(x.key, ()))), []).append(i)
        kept = [None] * (len(y_kept) + len(sw_kept))
        for where, blocks in by_holders.items():
            parts = [y_kept[i] for i in blocks] + [sw_kept[i] for i in blocks if sw_kept]
            futures = self.client.compute(parts, workers=list(where) or None,
                                          allow_other_workers=True)  # fmt: skip
            for j, i in enumerate(blocks):
                kept[i] = futures[j]
                if sw_kept:
                    kept[len(y_kept) + i] = futures[len(blocks) + j]
        return kept

    def __getitem__(self, rows):
        """The rows ``rows`` (integer indices) as a :class:`Fold` (LogisticRegressionCV's folds)."""
        rows = np.asarray(rows)
        if rows.ndim != 1 or rows.dtype.kind not in "iu":
            raise TypeError(f"the rows of a Dask fit are integer indices, got {rows.dtype} rows")
        return Fold(self, rows)

    def labels(self):
        """The label indices of all the rows, in memory (the splitters need them: 1 / d of X)."""
        import dask

        parts = self.client.gather(self.y_parts) if self.on_cluster else dask.compute(*self.y_parts)
        return np.concatenate(parts)

    def take(self, rows):
        """The rows ``rows`` of X and their weights (sample times class weights, None
        unweighted), in memory, fetched block by block (a small sample of X)."""
        import dask
        import scipy.sparse as sp

        bounds = np.cumsum([0] + list(self.row_counts))
        block_of = np.searchsorted(bounds, rows, side="right") - 1
        calls = [(self.x_parts[b], rows[block_of == b] - bounds[b], self.sw_parts[b])
                 for b in np.unique(block_of)]  # fmt: skip
        if self.on_cluster:
            futures = [self.client.submit(_take_rows, *call, pure=False) for call in calls]
            parts = self.client.gather(futures)
        else:
            parts = dask.compute(*[dask.delayed(_take_rows)(*call) for call in calls])
        blocks = [part[0] for part in parts]
        sample = sp.vstack(blocks, format="csr") if sp.issparse(blocks[0]) else np.vstack(blocks)
        weighted = parts[0][1] is not None
        return sample, np.concatenate([part[1] for part in parts]) if weighted else None

    def _per_block(self, values):
        """``values`` (one per row) split as the blocks, each where its block's labels are."""
        import dask

        bounds = np.cumsum([0] + self.row_counts)
        parts = [values[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        if not self.on_cluster:
            return [dask.delayed(part) for part in parts]
        return [self.client.scatter(part, workers=list(where) or None, hash=False)
                for part, where in zip(parts, self._label_holders())]  # fmt: skip

    def _label_holders(self):
        holders = self.client.who_has(self.y_parts)
        return [holders.get(part.key, ()) for part in self.y_parts]

    def _worker_groups(self, holders):
        """The blocks split evenly over the worker threads that sum them: ``[(worker, [block, ...])]``.

        A block goes to a thread of a worker holding it while those threads
        have less than their share, the others to the threads with the
        fewest (Dask copies those blocks there once): every evaluation waits
        for the busiest thread, and the scheduler may have put 5 blocks of 8
        on one of 2 workers.  Found once per fit; a block that moves later (a
        worker lost, work stolen) is fetched by the task, which may also run
        elsewhere.
        """
        slots = [(worker, t) for worker, n in sorted(self.client.nthreads().items())
                 for t in range(max(1, n))]  # fmt: skip
        if not slots:
            return [(None, list(range(len(self.x_parts))))]
        share = -(-len(self.x_parts) // len(slots))
        assigned = {slot: [] for slot in slots}
        elsewhere = []
        for i, x in enumerate(self.x_parts):
            where = holders.get(x.key, ())
            free = [slot for slot in slots if slot[0] in where and len(assigned[slot]) < share]
            if free:
                assigned[min(free, key=lambda slot: len(assigned[slot]))].append(i)
            else:
                elsewhere.append(i)
        for i in elsewhere:
            assigned[min(slots, key=lambda slot: len(assigned[slot]))].append(i)
        return [(worker, blocks) for (worker, _), blocks in assigned.items() if blocks]

    # -- the work on the blocks ----------------------------------------------------

    def _share(self, value):
        """``value`` as one dependency of the graph: a key, or a broadcast future when large."""
        import dask

        client = self.client
        large = client is not None and getattr(value, "nbytes", 0) > _SCATTER_BYTES
        if large:
            return client.scatter(value, broadcast=True, hash=False)
        return value if self.on_cluster else dask.delayed(value)

    def map_sum(self, func, *args):
        """``sum(func(X_b, y_b, sw_b, *args) for each block b)``: float64 vectors, added as a tree."""
        import dask

        if self.on_cluster:
            return self._map_sum_on_cluster(func, args)
        shared = [self._share(arg) for arg in args]
        call = dask.delayed(func, pure=True)
        parts = [
            call(x, y, sw, *shared) for x, y, sw in zip(self.x_parts, self.y_parts, self.sw_parts)
        ]
        add = dask.delayed(_add, pure=True)
        while len(parts) > 1:
            parts = [add(*parts[i : i + SPLIT_EVERY]) for i in range(0, len(parts), SPLIT_EVERY)]
        return parts[0].compute()

    def _map_sum_on_cluster(self, func, args):
        if USE_ACTORS and self._block_sums is not False:
            try:
                return self._map_sum_by_actors(func, args)
            except Exception:  # noqa: BLE001 -- e.g. a worker lost: the tasks below recover
                # an actor's state dies with its worker, Dask does not restart it; the tasks'
                # lost blocks are recomputed by Dask (or the tasks raise the real error again),
                # so the rest of the fit runs on them
                self._give_up_actors()
        return self._map_sum_by_tasks(func, [self._share(arg) for arg in args])

    def _map_sum_by_actors(self, func, args):
        # one call per worker, straight to its actor (no scheduler round trip, no batching)
        if self._block_sums is None:
            self._block_sums = self._start_actors()
        calls = [actor.map_sum(func, *args) for _, actor in self._block_sums]
        return _add(*[call.result() for call in calls])

    def _start_actors(self, y_parts=None, sw_parts=None):
        """One :class:`_WorkerBlockSums` actor per worker, holding the blocks that worker sums.

        Returns ``[(future, actor)]``: the futures keep the actors alive for as
        long as these blocks are used; ``self._holder[i]``: the position of
        the actor holding block ``i``.
        """
        client = self.client
        y_parts = self.y_parts if y_parts is None else y_parts
        sw_parts = self.sw_parts if sw_parts is None else sw_parts
        by_worker = {}
        for worker, blocks in self._groups:
            by_worker.setdefault(worker, []).append(blocks)
        started = []
        self._holder = {}
        for worker, groups in by_worker.items():
            held = [i for blocks in groups for i in blocks]
            parts = [(i, self.x_parts[i], y_parts[i], sw_parts[i]) for i in held]
            future = client.submit(_WorkerBlockSums, parts, groups, actor=True, pure=False,
                                   workers=None if worker is None else [worker])  # fmt: skip
            self._holder.update(dict.fromkeys(held, len(started)))
            started.append(future)
        return [(future, future.result()) for future in started]

    def _give_up_actors(self):
        """End the actors; the rest of the fit runs on tasks."""
        self.stop_actors()
        self._block_sums = False

    def stop_actors(self):
        """Release the actors (and their hold on the blocks) now.

        Dropping them is not enough: every call of an actor leaves a reference
        cycle to its handle (inside ``distributed``), which keeps the actor
        alive until Python's garbage collector runs.
        """
        if self._block_sums:  # None: not started, False: given up
            self.client.cancel([future for future, _ in self._block_sums])
        self._block_sums = None

    def _map_sum_by_tasks(self, func, shared):
        # one task per worker thread over the blocks it holds; the coefficients travel in the
        # task (or, large, as one broadcast future); pure=False: nothing is hashed
        client = self.client
        parts = [
            client.submit(_sum_blocks, func, [self.x_parts[i] for i in blocks],
                          [self.y_parts[i] for i in blocks], [self.sw_parts[i] for i in blocks],
                          *shared, workers=None if worker is None else [worker],
                          allow_other_workers=True, pure=False)
            for worker, blocks in self._groups
        ]  # fmt: skip
        while len(parts) > SPLIT_EVERY:  # many workers: the sums are added on the cluster
            parts = [client.submit(_add, *parts[i : i + SPLIT_EVERY], pure=False)
                     for i in range(0, len(parts), SPLIT_EVERY)]  # fmt: skip
        return _add(*client.gather(parts))

    def train_epoch(self, trainer, batch_size, shuffle, rng):
        """One epoch over the blocks, in a shuffled order; ``trainer`` is updated at the end.

        On the cluster, each worker's actor trains the blocks it holds, the
        trainer (model and learner state, small) handed from one to the next
        along the epoch's block order; else (or when an actor call fails: the
        epoch starts again from ``trainer``, with the same order and seeds) a
        chain of one task per block.  Returns the mean minibatch loss weighted
        by rows, as ``run_epoch``.
        """
        import dask

        n_blocks = len(self.x_parts)
        order = rng.permutation(n_blocks) if shuffle else np.arange(n_blocks)
        seeds = rng.integers(0, 2**63 - 1, size=n_blocks) if shuffle else [None] * n_blocks
        seeds = [seeds[i] for i in order]
        state = None
        if self.on_cluster and USE_ACTORS and self._block_sums is not False:
            try:
                state = self._train_by_actors(order, seeds, (trainer, 0.0), batch_size)
            except Exception:  # noqa: BLE001 -- e.g. a worker lost: as in _map_sum_on_cluster
                self._give_up_actors()
        if state is None and self.on_cluster:
            state = (trainer, 0.0)
            for i, seed in zip(order, seeds):
                state = self.client.submit(_train_block, self.x_parts[i], self.y_parts[i],
                                           self.sw_parts[i], state, seed, batch_size,
                                           self.mean_weight, pure=False)  # fmt: skip
            state = state.result()
        elif state is None:
            step = dask.delayed(_train_block, pure=True)
            state = dask.delayed((trainer, 0.0))
            for i, seed in zip(order, seeds):
                state = step(self.x_parts[i], self.y_parts[i], self.sw_parts[i], state, seed,
                             batch_size, self.mean_weight)  # fmt: skip
            state = state.compute()
        trained, loss_total = state
        _copy_trainer(trained, trainer)
        return loss_total / self.shape[0]

    def _train_by_actors(self, order, seeds, state, batch_size):
        """The epoch on the actors: one call per stretch of consecutive blocks one actor holds."""
        if self._block_sums is None:
            self._block_sums = self._start_actors()
        start = 0
        while start < len(order):
            holder = self._holder[order[start]]
            stop = start + 1
            while stop < len(order) and self._holder[order[stop]] == holder:
                stop += 1
            actor = self._block_sums[holder][1]
            state = actor.train(list(order[start:stop]), seeds[start:stop], state, batch_size,
                                self.mean_weight).result()  # fmt: skip
            start = stop
        return state


def _persist_spread(client, X):
    """X's row blocks computed and kept on the workers, spread in proportion to their threads.

    Each block is read where it will be summed, and every worker thread gets
    as many blocks as the others (the scheduler's own placement of root tasks
    may give one worker 5 blocks of 8 and the other 3: the fit would wait for
    the busier one at every evaluation).
    """
    threads = sorted(client.nthreads().items())
    slots = [worker for worker, n in threads for _ in range(max(1, n))]
    parts = X.to_delayed().ravel()
    return [
        client.compute(part, workers=[slots[i % len(slots)]], allow_other_workers=True)
        for i, part in enumerate(parts)
    ]


def _block_futures(client, X):
    """The futures of X's row blocks (in order) when ``client``'s cluster holds them all, else None."""
    from distributed import futures_of

    held = {future.key: future for future in futures_of(X) if future.client is client}
    keys = [row[0] for row in X.__dask_keys__()]  # one chunk across the columns
    if not held or any(key not in held for key in keys):
        return None
    return [held[key] for key in keys]


class Fold:
    """Some rows of a :class:`Blocks` (a cross-validation fold), without copying X.

    A fit on a fold runs over all of X's blocks, the rows outside the fold
    weighted zero (the same sums as a fit on the fold's rows alone);
    predictions on a fold come back in memory, one row per fold row (a test
    fold's scores, which scorers compare with the fold's labels).
    """

    def __init__(self, blocks, rows):
        self.blocks = blocks
        self.rows = rows
        self.shape = (rows.shape[0], blocks.shape[1])
        self.dtype = blocks.dtype

    def fit_data(self, estimator, y, sample_weight, classes):
        """The fold's :class:`Blocks` for ``estimator``; ``y``, ``sample_weight``: the fold's rows.

        The weights are the estimator's own (sample weights times its class
        weights, checked as in memory), zero outside the fold.
        """
        blocks = self.blocks
        classes = blocks.classes if classes is None else classes
        if not np.array_equal(classes, blocks.classes):
            raise ValueError("a fold's classes must be those of all the rows")
        estimator.classes_ = classes
        estimator._check_n_features(self, reset=True)
        n = blocks.shape[0]
        y_idx = np.ascontiguousarray(np.searchsorted(classes, np.asarray(y)), dtype=np.intp)
        sw = estimator._weights(y_idx, sample_weight, self.rows.shape[0], blocks.dtype)
        weights = np.zeros(n, blocks.dtype)
        weights[self.rows] = 1.0 if sw is None else sw
        blocks.y_parts  # noqa: B018 -- encoded once (on a cluster: when asked for), for all folds
        fold = copy.copy(blocks)
        fold.sw_parts = blocks._per_block(weights)
        fold._block_sums = None  # the fold's own actors, with its weights
        fold.weighted = True
        fold.weight_total = float(np.sum(weights, dtype=np.float64))
        fold.mean_weight = fold.weight_total / n
        return fold

    def predict(self, estimator, method):
        """``estimator.<method>`` of the fold's rows, in memory, in the fold's order."""
        import dask

        blocks = self.blocks
        bounds = np.cumsum([0] + blocks.row_counts)
        block_of = np.searchsorted(bounds, self.rows, side="right") - 1
        parts = []
        for b in np.unique(block_of):
            local = self.rows[block_of == b] - bounds[b]
            if blocks.on_cluster:
                parts.append(blocks.client.submit(_call_method_rows, blocks.x_parts[b], estimator,
                                                  method, local, pure=False))  # fmt: skip
            else:
                parts.append(dask.delayed(_call_method_rows)(blocks.x_parts[b], estimator, method,
                                                             local))  # fmt: skip
        done = blocks.client.gather(parts) if blocks.on_cluster else dask.compute(*parts)
        # the blocks' rows in block order, then the fold's own order
        order = np.argsort(block_of, kind="stable")
        out = np.empty((self.rows.shape[0],) + done[0].shape[1:], done[0].dtype)
        out[order] = np.concatenate(done)
        return out


def _take_rows(X, rows, sample_weight):
    """``X[rows]`` and their weights (None: unweighted): a block's share of a sample."""
    weights = None if sample_weight is None else np.asarray(sample_weight)[rows]
    return X[rows], weights


def _call_method_rows(X, estimator, method, rows):
    return getattr(estimator, method)(_block_rows(X)[rows])


def _block_rows(X):
    """A block as the kernels take it: C-contiguous, or CSR (scipy.sparse blocks)."""
    return check_sparse_matrix(X) if is_sparse(X) else np.ascontiguousarray(X)


def _add(*sums):
    total = sums[0].copy()
    for part in sums[1:]:
        total += part
    return total


def _sum_blocks(func, X_blocks, y_blocks, sw_blocks, *args):
    """``sum(func(X_b, y_b, sw_b, *args))`` over the blocks one worker thread holds."""
    return _add(*[func(X, y, sw, *args) for X, y, sw in zip(X_blocks, y_blocks, sw_blocks)])


class _WorkerBlockSums:
    """A Dask actor on one worker: the blocks it holds, one group of them per worker thread.

    ``blocks``: ``[(index, X, y_idx, sample_weight)]``, ``groups``: the
    indices each worker thread sums.  :meth:`map_sum` runs
    :func:`_sum_blocks` on every group in the worker's own thread pool and
    returns their sum; :meth:`train` trains a trainer on some of the blocks in
    a given order (an epoch's stretch of blocks held here).  A call is one
    direct request to the worker: an evaluation through tasks waits on Dask's
    batched messages (client to scheduler at most every 10 ms, scheduler to
    worker every 5 ms).
    """

    def __init__(self, blocks, groups):
        self.blocks = {index: (X, y, sw) for index, X, y, sw in blocks}
        self.groups = groups

    async def inspect(self, dtype, checks, numbers):
        """The checks of every block held (:func:`_inspect_block`): ``[(index, (labels, counts))]``.

        ``numbers[index]``: the block's number in X, for the error messages.
        """
        import asyncio

        found = await asyncio.gather(*[
            self._run(_inspect_blocks, [(i, *self.blocks[i]) for i in group], dtype, checks,
                      numbers)
            for group in self.groups
        ])  # fmt: skip
        return [item for part in found for item in part]

    async def encode(self, classes, class_weights, dtype):
        """Replace the labels and weights held by the label indices and the fit's weights."""
        for i, (X, y, sw) in list(self.blocks.items()):
            self.blocks[i] = (X, *_encode_block(y, classes, class_weights, sw, dtype))

    def _run(self, func, *args):
        import asyncio

        from distributed import get_worker

        executor = get_worker().executors["default"]
        return asyncio.get_running_loop().run_in_executor(executor, func, *args)

    async def map_sum(self, func, *args):
        import asyncio

        sums = await asyncio.gather(*[
            self._run(_sum_blocks, func, *zip(*[self.blocks[i] for i in group]), *args)
            for group in self.groups
        ])  # fmt: skip
        return _add(*sums)

    async def train(self, indices, seeds, state, batch_size, mean_weight):
        """``state`` (trainer, loss sum) after training on the blocks ``indices``, in order."""
        return await self._run(_train_blocks, [self.blocks[i] for i in indices], seeds, state,
                               batch_size, mean_weight)  # fmt: skip


def _inspect_blocks(blocks, dtype, checks, numbers):
    return [(i, _inspect_block(X, y, sw, dtype, numbers[i], checks)) for i, X, y, sw in blocks]


def _train_blocks(blocks, seeds, state, batch_size, mean_weight):
    for (X, y_idx, sw), seed in zip(blocks, seeds):
        state = _train_block(X, y_idx, sw, state, seed, batch_size, mean_weight)
    return state


def _train_block(X, y_idx, sample_weight, state, seed, batch_size, mean_weight):
    """Train a copy of the trainer on one block (the epoch kernel): ``(trainer, loss sum)``."""
    from . import _epoch_driver

    trainer, loss_total = state
    trainer = copy.deepcopy(trainer)  # the threaded scheduler shares objects: never update in place
    X = _block_rows(X)
    order = None if seed is None else np.random.default_rng(seed).permutation(X.shape[0])
    loss = _epoch_driver.run_epoch(trainer, X, y_idx, sample_weight, order, batch_size,
                                   mean_weight=mean_weight)  # fmt: skip
    return trainer, loss_total + loss * X.shape[0]


def _copy_trainer(source, target):
    """Copy a trained trainer's state into ``target``, keeping its model's arrays (and views)."""
    target.model.coef[...] = source.model.coef
    target.model.b[...] = source.model.b
    target.learner.__dict__.update(source.learner.__dict__)
    target.n_minibatches = source.n_minibatches
    target.n_samples_seen = source.n_samples_seen


# ---------------------------------------------------------------------------
# LogisticRegression


def _logistic_block_sums(X, y_idx, sample_weight, coef, intercept):
    """One block's data-term sums, flat float64: ``[loss, coef_grad, intercept_grad]``."""
    X = _block_rows(X)
    if coef.ndim == 1:  # the binary model
        loss, coef_grad, intercept_grad = _objective.logistic_loss_grad(
            X, coef, intercept, y_idx.astype(coef.dtype), sample_weight, normalizer=1.0
        )
    else:
        loss, coef_grad, intercept_grad = _objective.softmax_loss_grad(
            X, coef, intercept, y_idx, sample_weight, normalizer=1.0
        )
    out = np.empty(1 + coef.size + np.size(intercept_grad))
    out[0] = loss
    out[1 : 1 + coef.size] = coef_grad.reshape(-1)
    out[1 + coef.size :] = intercept_grad
    return out


def fit_data(estimator, X, y, sample_weight, classes=None, *, reset=True, dtype=None,
             persist=False, actors=True):  # fmt: skip
    """``_fit_data`` for a Dask ``X``: ``(Blocks, None, None, dtype)``; sets ``classes_``.

    The label indices and the weights are inside the :class:`Blocks`.
    ``actors=False``: no actors started with the blocks (their work is done
    on other views of them: the cross-validation folds).
    """
    data = Blocks(estimator, X, y, sample_weight, classes, reset=reset, dtype=dtype,
                  persist=persist, actors=actors)  # fmt: skip
    estimator.classes_ = data.classes
    return data, None, None, data.dtype


def release(data):
    """End the actors of a fit's :class:`Blocks` (nothing for other data)."""
    if isinstance(data, Blocks):
        data.stop_actors()


def atomic_on_dask(method):
    """Decorate ``fit(X, ...)``: on a Dask ``X``, a fit that raises leaves the estimator unchanged."""

    @functools.wraps(method)
    def wrapper(estimator, X, *args, **kwargs):
        if not is_dask_collection(X):
            return method(estimator, X, *args, **kwargs)
        with unchanged_on_error(estimator):
            return method(estimator, X, *args, **kwargs)

    return wrapper


def fit_logistic(estimator, X, y, sample_weight, classes, l1_unit, l2_unit, tol, max_iter,
                 fit_intercept, verbose, previous, *, persist=False):  # fmt: skip
    """``LogisticRegression._fit`` on a Dask array: the solver on the client, the sums on the blocks."""
    with unchanged_on_error(estimator):
        if isinstance(X, Blocks):  # LogisticRegressionCV's refit: all the rows
            X = X[np.arange(X.shape[0])]
        if isinstance(X, Fold):  # LogisticRegressionCV: y and sample_weight are the fold's
            data = X.fit_data(estimator, y, sample_weight, classes)
        else:
            data = fit_data(estimator, X, y, sample_weight, classes, persist=persist)[0]
        n_classes = data.classes.shape[0]
        k = 1 if n_classes == 2 else n_classes
        d, dtype, total = data.shape[1], data.dtype, data.weight_total
        l1, l2 = estimator._penalties(l1_unit, l2_unit, total, dtype)
        n_coef = k * d
        theta0 = estimator._initial_theta(previous, k, d, fit_intercept)

        def objective(theta):
            # the parameters in X's dtype, as in memory; the sums come back in float64
            coef = theta[:n_coef].reshape(k, d).astype(dtype, copy=False)
            if k == 1:
                intercept = float(theta[n_coef]) if fit_intercept else None
                sums = data.map_sum(_logistic_block_sums, coef[0], intercept)
            else:
                intercept = theta[n_coef:].astype(dtype) if fit_intercept else None
                sums = data.map_sum(_logistic_block_sums, coef, intercept)
            grad = sums[1:] / total
            if not fit_intercept:
                grad = grad[:n_coef]
            if l2:
                grad[:n_coef] += l2 * coef.reshape(-1)
            return sums[0] / total + l2_penalty(coef, l2), grad

        try:
            return estimator._solve(objective, theta0, l1, k, d, dtype, fit_intercept, tol,
                                    max_iter, verbose, stacklevel=6)  # fmt: skip
        finally:
            data.stop_actors()


class unchanged_on_error:
    """Restore the estimator's attributes when the fit raises: never a half-updated model."""

    def __init__(self, estimator):
        self.estimator = estimator

    def __enter__(self):
        self.saved = dict(vars(self.estimator))

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            state = vars(self.estimator)
            state.clear()
            state.update(self.saved)
        return False


# ---------------------------------------------------------------------------
# prediction


def _call_method(X, estimator, method):
    return getattr(estimator, method)(X)


def predict(estimator, X, method):
    """``estimator.<method>(X)`` block by block: a lazy dask array, X never gathered."""
    import dask

    estimator._checks.is_fitted(estimator)
    if isinstance(X, Fold):  # a cross-validation test fold: in memory
        return X.predict(estimator, method)
    estimator._checks.feature_names(estimator, X, reset=False)  # as scikit-learn's: warn or raise
    X = _check_X(X)
    estimator._check_n_features(X, reset=False)
    # the names were checked here: the blocks (numpy) go to a copy without them
    estimator = copy.copy(estimator)
    vars(estimator).pop("feature_names_in_", None)
    # the output of an empty block tells its dtype and columns
    sample = getattr(estimator, method)(np.zeros((1, X.shape[1]), X.dtype))
    model = dask.delayed(estimator)  # one key: the coefficients are not copied into every task
    columns = sample.shape[1:]
    return X.map_blocks(
        _call_method, model, method, dtype=sample.dtype,
        chunks=(X.chunks[0],) + tuple((c,) for c in columns),
        drop_axis=[] if columns else [1], meta=np.empty((0,) * sample.ndim, sample.dtype),
    )  # fmt: skip


def score(estimator, X, y, sample_weight=None):
    """Mean accuracy on dask ``X``: the predictions stay on the blocks, one float comes back."""
    import dask.array as da

    predicted = predict(estimator, X, "predict")
    if isinstance(X, Fold):  # a cross-validation test fold: y and the weights in memory
        return float(np.average(predicted == np.asarray(y), weights=sample_weight))
    X = _check_X(X)
    y = _rows_like(y, X, "y")
    correct = (predicted == y).astype(np.float64)
    if sample_weight is None:
        return float(correct.mean().compute())
    sw = _rows_like(sample_weight, X, "sample_weight").astype(np.float64)
    total, weights = da.compute((correct * sw).sum(), sw.sum())
    return float(total / weights)
