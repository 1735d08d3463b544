"""Fit and predict on Dask arrays (issue 12), on a real LocalCluster and on the threaded scheduler.

The cluster (2 worker processes with nannies, 1 thread each) is started once
for the module and closed at its end.  ``scheduler`` runs a test on both:
"threads" sets Dask's threaded scheduler (no client), "cluster" the client.
"""

import gc
import itertools
import os
import threading
import time
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

from fastsoftmax import LogisticRegression, LogisticRegressionCV, SoftmaxRegression

TOL = 1e-8  # tight: the Dask fit must take the in-memory fit's L-BFGS path


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        memory_limit="1GiB",
    )  # fmt: skip
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(params=["threads", "cluster"])
def scheduler(request):
    if request.param == "threads":
        with dask.config.set(scheduler="threads"):
            yield None
    else:
        client = request.getfixturevalue("client")
        with client.as_current():
            yield client


def _problem(n=1500, d=8, n_classes=3, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((d, n_classes))
    y = np.argmax(X @ W + rng.standard_normal((n, n_classes)), axis=1)
    return X.astype(dtype), y, rng.uniform(0.5, 2.0, n)


def _assert_same_fit(got, ref, rtol=1e-6, atol=1e-6):
    assert got.coef_.dtype == ref.coef_.dtype
    np.testing.assert_array_equal(got.classes_, ref.classes_)
    np.testing.assert_allclose(got.coef_, ref.coef_, rtol=rtol, atol=atol)
    np.testing.assert_allclose(got.intercept_, ref.intercept_, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------
# LogisticRegression.fit: the coefficients of the in-memory fit


@pytest.mark.parametrize("n_classes", [2, 3])
def test_logistic_fit_equals_in_memory(scheduler, n_classes):
    X, y, sw = _problem(n_classes=n_classes)
    ref = LogisticRegression(tol=TOL, max_iter=500).fit(X, y, sample_weight=sw)
    assert ref.n_iter_[0] < 40
    Xd = da.from_array(X, chunks=(400, 8))
    if scheduler is not None:
        Xd = Xd.persist()
    got = LogisticRegression(tol=TOL, max_iter=500).fit(
        Xd, da.from_array(y, chunks=300), sample_weight=da.from_array(sw, chunks=400)
    )
    _assert_same_fit(got, ref)
    assert got.n_iter_[0] == ref.n_iter_[0]


@pytest.mark.parametrize(
    "params",
    [
        {"solver": "saga", "l1_ratio": 0.5, "C": 0.2},
        {"solver": "saga", "l1_ratio": 1.0, "C": 0.05},
        {"class_weight": "balanced"},
        {"class_weight": {0: 3.0}},
        {"C": np.inf},
        {"fit_intercept": False},
    ],
    ids=["elasticnet", "l1", "balanced", "dict", "none", "no-intercept"],
)
def test_logistic_penalties_and_class_weights(params):
    X, y, _ = _problem(n_classes=3)
    ref = LogisticRegression(tol=TOL, max_iter=500, **params).fit(X, y)
    with dask.config.set(scheduler="threads"):
        got = LogisticRegression(tol=TOL, max_iter=500, **params).fit(
            da.from_array(X, chunks=500), y
        )
    _assert_same_fit(got, ref)
    if params.get("l1_ratio"):  # the exact zeros of the L1 optimum
        np.testing.assert_array_equal(got.coef_ == 0, ref.coef_ == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_logistic_keeps_float32_and_uint8(scheduler, dtype, monkeypatch):
    X, y, _ = _problem(n_classes=3)
    if dtype == np.uint8:
        X = np.clip(np.round(X + 3), 0, 6)  # small pixel values: a well-conditioned problem
    X = X.astype(dtype)
    seen = []
    from fastsoftmax import _dask

    block_sums = _dask._logistic_block_sums

    def spy(Xb, *args):  # the blocks reach the kernel in their own dtype
        seen.append(np.asarray(Xb).dtype)
        return block_sums(Xb, *args)

    C, tol = 1.0, (1e-3 if dtype == np.uint8 else 1e-6)  # uint8: about 20 iterations
    ref = LogisticRegression(tol=tol, max_iter=300, C=C).fit(X, y)
    if scheduler is None:  # the spy only sees the blocks in this process
        monkeypatch.setattr(_dask, "_logistic_block_sums", spy)
    got = LogisticRegression(tol=tol, max_iter=300, C=C).fit(da.from_array(X, chunks=400), y)
    assert got.n_iter_[0] == ref.n_iter_[0] < 40
    _assert_same_fit(got, ref, rtol=2e-3, atol=2e-4)
    assert got.coef_.dtype == (np.float32 if dtype == np.float32 else np.float64)
    if scheduler is None:
        assert set(seen) == {np.dtype(dtype)}


def test_logistic_warm_start_and_float32_sums_in_float64():
    X, y, _ = _problem(n=3000, n_classes=3, dtype=np.float32)
    Xd = da.from_array(X, chunks=250)  # 12 blocks: two levels of the sum tree
    with dask.config.set(scheduler="threads"):
        first = LogisticRegression(max_iter=5, warm_start=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first.fit(Xd, y)
        first.set_params(max_iter=300, tol=1e-6).fit(Xd, y)
    ref = LogisticRegression(max_iter=300, tol=1e-6).fit(X, y)
    _assert_same_fit(first, ref, rtol=1e-3, atol=1e-4)


def test_graph_per_iteration_is_small(monkeypatch):
    """One task per block, a few reduction tasks and the coefficients: X's graph is not rebuilt."""
    X, y, _ = _problem(n=2000, n_classes=3)
    Xd = da.from_array(X, chunks=100).persist(scheduler="threads")  # 20 blocks, in memory
    sizes = []
    from dask.delayed import Delayed

    original = Delayed.compute

    def counting(self, **kwargs):
        sizes.append(len(dict(self.__dask_graph__())))
        return original(self, **kwargs)

    with dask.config.set(scheduler="threads"):
        from fastsoftmax import _dask

        model = LogisticRegression(max_iter=3)
        monkeypatch.setattr(Delayed, "compute", counting)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(Xd, y)
    assert _dask.SPLIT_EVERY == 8
    # per evaluation: 20 blocks of X and 20 of labels (persisted), 20 block tasks, 3 + 1 sums,
    # the coefficients and the intercept
    assert len(sizes) >= 3 and set(sizes) == {20 + 20 + 20 + 4 + 2}, sizes


class _Names(list):
    pass


def _record_evaluations(monkeypatch):
    """Patch the client and the blocks: ``(submitted, graphs, actor_calls)``, filled by the fit.

    ``submitted``: the functions submitted during an evaluation; ``graphs``:
    for every delayed graph computed, whether during an evaluation;
    ``actor_calls``: for every evaluation on actors, the number of actors called.
    """
    from dask.delayed import Delayed

    from fastsoftmax import _dask

    submitted, graphs, actor_calls, evaluating, everything = _Names(), [], [], [False], []
    submit, compute, map_sum = distributed.Client.submit, Delayed.compute, _dask.Blocks.map_sum
    by_actors = _dask.Blocks._map_sum_by_actors

    def counting_submit(self, func, *args, **kwargs):
        if evaluating[0]:
            submitted.append(func.__name__)
        everything.append(func.__name__)
        return submit(self, func, *args, **kwargs)

    def counting_compute(self, **kwargs):
        graphs.append(evaluating[0])
        return compute(self, **kwargs)

    def counting_map_sum(self, *args):
        evaluating[0] = True
        try:
            return map_sum(self, *args)
        finally:
            evaluating[0] = False

    def counting_by_actors(self, *args):
        result = by_actors(self, *args)
        actor_calls.append(len(self._block_sums))
        return result

    monkeypatch.setattr(distributed.Client, "submit", counting_submit)
    monkeypatch.setattr(Delayed, "compute", counting_compute)
    monkeypatch.setattr(_dask.Blocks, "map_sum", counting_map_sum)
    monkeypatch.setattr(_dask.Blocks, "_map_sum_by_actors", counting_by_actors)
    submitted.everything = everything  # every function submitted, during an evaluation or not
    return submitted, graphs, actor_calls


def _fit_held_on_cluster(client, monkeypatch):
    """A weighted fit of X persisted on the cluster, equal to the in-memory fit; and its records."""
    X, y, sw = _problem(n=2000, n_classes=3)
    ref = LogisticRegression(tol=TOL, max_iter=500).fit(X, y, sample_weight=sw)
    records = _record_evaluations(monkeypatch)
    with client.as_current():
        Xd = da.from_array(X, chunks=100).persist()  # 20 blocks on 2 workers of 1 thread
        distributed.wait(Xd)
        got = LogisticRegression(tol=TOL, max_iter=500).fit(Xd, y, sample_weight=sw)
    _assert_same_fit(got, ref)
    return got, records


def test_blocks_on_the_cluster_one_task_per_worker_thread(client, monkeypatch):
    """X held on the cluster, without actors: an evaluation is one task per worker thread, and no graph."""
    from fastsoftmax import _dask

    monkeypatch.setattr(_dask, "USE_ACTORS", False)
    got, (submitted, graphs, _) = _fit_held_on_cluster(client, monkeypatch)
    n_evaluations = len(submitted) // 2
    assert n_evaluations >= got.n_iter_[0] and submitted == ["_sum_blocks"] * (2 * n_evaluations)
    assert True not in graphs  # no delayed graph built for an evaluation


def test_blocks_on_the_cluster_one_actor_call_per_worker(client, monkeypatch):
    """X held on the cluster: an evaluation is one call per worker to its actor; no task, no graph."""
    got, (submitted, graphs, actor_calls) = _fit_held_on_cluster(client, monkeypatch)
    # the actors started once, one per worker, with the blocks (they check and encode them),
    # then every evaluation is one call to each: no task
    assert submitted.everything.count("_WorkerBlockSums") == 2, submitted.everything
    assert submitted == [], submitted[:3]
    assert len(actor_calls) >= got.n_iter_[0] and set(actor_calls) == {2}, set(actor_calls)
    assert True not in graphs
    with client.as_current():  # the actors are gone with the fit
        deadline = time.monotonic() + 10
        while any("_WorkerBlockSums" in str(k) for k in client.who_has()):
            assert time.monotonic() < deadline, client.who_has()
            time.sleep(0.05)


def test_unevenly_held_blocks_are_summed_evenly(client, monkeypatch):
    """6 blocks on one worker, 2 on the other: each worker's actor sums 4 (Dask copies 2 over)."""
    from fastsoftmax import _dask

    X, y, _ = _problem(n=1600, n_classes=3)
    ref = LogisticRegression(tol=TOL, max_iter=500).fit(X, y)
    workers = sorted(client.nthreads())
    Xd = da.from_array(X, chunks=200)
    parts = Xd.to_delayed().ravel()
    held = [client.compute(part, workers=[workers[0] if i < 6 else workers[1]])
            for i, part in enumerate(parts)]  # fmt: skip
    distributed.wait(held)
    start, groups = _dask.Blocks._start_actors, []

    def spy(self, *args):
        groups.append(self._groups)
        return start(self, *args)

    monkeypatch.setattr(_dask.Blocks, "_start_actors", spy)
    with client.as_current():
        Xh = da.concatenate([da.from_delayed(f, shape=(200, 8), dtype=X.dtype) for f in held])
        where = [w for ws in client.who_has(held).values() for w in ws]
        assert sorted(where.count(w) for w in workers) == [2, 6], where
        got = LogisticRegression(tol=TOL, max_iter=500).fit(Xh.persist(), y)
    _assert_same_fit(got, ref)
    assert sorted(len(blocks) for _, blocks in groups[0]) == [4, 4], groups


def test_large_coefficients_are_broadcast(client, monkeypatch):
    """Coefficients above the threshold reach the tasks as one broadcast future per evaluation."""
    from fastsoftmax import _dask

    X, y, _ = _problem(n=800, n_classes=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 2 iterations: not converged
        ref = LogisticRegression(tol=0.0, max_iter=2).fit(X, y)
    scatter, scattered = distributed.Client.scatter, []

    def counting_scatter(self, data, *args, **kwargs):
        scattered.append(kwargs.get("broadcast"))
        return scatter(self, data, *args, **kwargs)

    monkeypatch.setattr(_dask, "_SCATTER_BYTES", 0)
    monkeypatch.setattr(_dask, "USE_ACTORS", False)  # the tasks' path (actors take the values)
    monkeypatch.setattr(distributed.Client, "scatter", counting_scatter)
    with client.as_current(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = LogisticRegression(tol=0.0, max_iter=2).fit(da.from_array(X, chunks=200).persist(), y)
    _assert_same_fit(got, ref)
    assert len(scattered) >= 2 * 2 and set(scattered) == {True}  # coef and intercept


def _count_reads(path, start, stop, log):
    """``_read_rows``, and one line appended to ``log`` for every read (workers are processes)."""
    with open(log, "a") as f:
        f.write(f"{start}\n")
    return _read_rows(path, start, stop)


@pytest.mark.parametrize("Estimator", [LogisticRegression, SoftmaxRegression])
def test_persist_reads_X_once(scheduler, tmp_path, Estimator):
    """fit(..., persist=True): every block read from disk once, released after the fit."""
    X, y, _ = _problem(n=2000, d=8, n_classes=3, dtype=np.float32)
    np.save(tmp_path / "X.npy", X)
    log = tmp_path / "reads.log"
    read = dask.delayed(_count_reads, pure=True)
    Xd = da.concatenate([
        da.from_delayed(read(str(tmp_path / "X.npy"), s, s + 500, str(log)), shape=(500, 8),
                        dtype=X.dtype)
        for s in range(0, 2000, 500)
    ])  # fmt: skip
    params = {"max_iter": 40, "tol": 1e-6} if Estimator is LogisticRegression else {
        "max_epochs": 3, "random_state": 0, "tol": None}  # fmt: skip
    ref = Estimator(**params).fit(X, y)
    from fastsoftmax import _dask

    spread, placed = _dask._persist_spread, []

    def spy(client, X):
        futures = spread(client, X)
        distributed.wait(futures)
        where = [w for workers in client.who_has(futures).values() for w in workers]
        placed.append(sorted(where.count(w) for w in set(where)))
        return futures

    with warnings.catch_warnings(), pytest.MonkeyPatch.context() as patch:
        warnings.simplefilter("ignore")
        patch.setattr(_dask, "_persist_spread", spy)
        got = Estimator(**params).fit(Xd, y, persist=True)
    assert sorted(int(line) for line in log.read_text().split()) == [0, 500, 1000, 1500]
    assert placed == ([] if scheduler is None else [[2, 2]])  # the blocks spread over the workers
    if Estimator is LogisticRegression:
        _assert_same_fit(got, ref, rtol=1e-4, atol=1e-5)
    else:
        assert abs(got.score(X, y) - ref.score(X, y)) < 0.03
    if scheduler is not None:  # nothing of X is left on the cluster
        held = [str(key) for keys in scheduler.has_what().values() for key in keys]
        assert not any(key.startswith(("concatenate", "_count_reads")) for key in held), held
    log.unlink()
    Estimator(**params).fit(X, y, persist=True)  # in-memory X: nothing to persist
    assert not log.exists()


def test_sparse_blocks():
    sp = pytest.importorskip("scipy.sparse")
    X, y, sw = _problem(n_classes=3)
    X[X < 0.5] = 0.0
    Xd = da.from_array(X, chunks=(300, 8)).map_blocks(sp.csr_matrix, dtype=X.dtype,
                                                      meta=sp.csr_matrix((0, 0)))
    ref = LogisticRegression(tol=TOL, max_iter=500).fit(sp.csr_matrix(X), y, sample_weight=sw)
    with dask.config.set(scheduler="threads"):
        got = LogisticRegression(tol=TOL, max_iter=500).fit(Xd, y, sample_weight=sw)
        np.testing.assert_array_equal(got.predict(Xd).compute(), ref.predict(X))
    _assert_same_fit(got, ref)


# ---------------------------------------------------------------------------
# prediction: lazy, block by block


def test_predictions_are_lazy_and_equal(scheduler):
    X, y, sw = _problem(n_classes=3)
    model = LogisticRegression().fit(X, y)
    Xd = da.from_array(X, chunks=(400, 4))  # also split across the columns
    for method in ["predict", "predict_proba", "predict_log_proba", "decision_function"]:
        lazy = getattr(model, method)(Xd)
        assert isinstance(lazy, da.Array), method
        expected = getattr(model, method)(X)
        assert lazy.shape == expected.shape and lazy.dtype == expected.dtype
        np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-12, err_msg=method)
    assert model.score(Xd, da.from_array(y, chunks=300)) == model.score(X, y)
    assert model.score(Xd, y, sample_weight=sw) == pytest.approx(model.score(X, y, sw))


def test_binary_predictions_and_strings():
    X, y, _ = _problem(n_classes=2)
    labels = np.array(["no", "yes"])[y]
    model = LogisticRegression().fit(X, labels)
    with dask.config.set(scheduler="threads"):
        Xd = da.from_array(X, chunks=500)
        got = LogisticRegression().fit(Xd, da.from_array(labels, chunks=500))
        np.testing.assert_array_equal(got.classes_, ["no", "yes"])
        np.testing.assert_array_equal(got.predict(Xd).compute(), model.predict(X))
        assert got.decision_function(Xd).ndim == 1
        assert got.predict_proba(Xd).shape == (X.shape[0], 2)


def test_predict_checks_features():
    X, y, _ = _problem()
    model = LogisticRegression().fit(X, y)
    with pytest.raises(ValueError, match="X has 7 features"):
        model.predict(da.from_array(X[:, :7], chunks=500))


def test_feature_names_of_dask_dataframes():
    """A dask DataFrame's columns are fitted names: predictions check them as scikit-learn's."""
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    X, y, _ = _problem(n=600, d=4)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    Xdd = dd.from_pandas(frame, npartitions=3)
    with dask.config.set(scheduler="threads"):
        model = LogisticRegression().fit(Xdd, y)
        np.testing.assert_array_equal(model.feature_names_in_, ["a", "b", "c", "d"])
        np.testing.assert_array_equal(model.predict(Xdd).compute(), model.predict(frame))
        with pytest.raises(ValueError, match="The feature names should match"):
            model.predict(dd.from_pandas(frame[["b", "a", "c", "d"]], npartitions=3))
        with pytest.warns(UserWarning, match="X does not have valid feature names"):
            model.predict_proba(da.from_array(X, chunks=200))
        plain = LogisticRegression().fit(da.from_array(X, chunks=200), y)
        assert not hasattr(plain, "feature_names_in_")
        with pytest.warns(UserWarning, match="X has feature names, but LogisticRegression"):
            plain.decision_function(Xdd)
        model.fit(da.from_array(X, chunks=200), y)  # refitted without names: they are dropped
        assert not hasattr(model, "feature_names_in_")


@pytest.mark.parametrize("params", [{"scoring": "accuracy"}, {"scoring": "neg_log_loss",
                                    "class_weight": "balanced", "scheduler": "threads"}],
                         ids=["accuracy", "log-loss-balanced"])  # fmt: skip
def test_logistic_cv_folds_over_the_blocks(request, params):
    """LogisticRegressionCV on dask X: the folds of the in-memory CV, each fitted on the blocks."""
    X, y, sw = _problem(n=900, n_classes=3)
    on_cluster = params.pop("scheduler", "cluster") == "cluster"
    params = {"Cs": 2, "tol": 1e-6, "max_iter": 300, "cv": 3, "l1_ratios": (0.0,),
              "use_legacy_attributes": False, **params}  # fmt: skip
    ref = LogisticRegressionCV(**params).fit(X, y, sample_weight=sw)
    Xd = da.from_array(X, chunks=250)
    if on_cluster:
        with request.getfixturevalue("client").as_current():
            got = LogisticRegressionCV(**params).fit(Xd.persist(), y, sample_weight=sw)
    else:
        with dask.config.set(scheduler="threads"):
            got = LogisticRegressionCV(**params).fit(Xd, y, sample_weight=sw)
    np.testing.assert_allclose(got.scores_, ref.scores_, rtol=1e-6, atol=1e-9)
    assert got.C_ == ref.C_
    _assert_same_fit(got, ref, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# SoftmaxRegression: epochs over a shuffled chain of blocks


def test_softmax_fit_accuracy_matches_in_memory(scheduler):
    X, y, _ = _problem(n=3000, d=10, n_classes=4, dtype=np.float32, seed=1)
    X_train, y_train, X_test, y_test = X[:2400], y[:2400], X[2400:], y[2400:]
    params = {"max_epochs": 8, "batch_size": 32, "random_state": 0, "tol": None}
    ref = SoftmaxRegression(**params).fit(X_train, y_train)
    got = SoftmaxRegression(**params).fit(da.from_array(X_train, chunks=300), y_train)
    assert got.coef_.dtype == np.float32 and got.n_iter_ == 8
    assert len(got.history_["train_loss"]) == 8
    assert abs(got.score(X_test, y_test) - ref.score(X_test, y_test)) <= 0.003 + 1e-12
    assert got.history_["train_loss"][-1] == pytest.approx(ref.history_["train_loss"][-1], rel=0.02)


class _RecordingActor:
    """An actor's handle that records its ``train`` calls: ``(holder, block indices)``."""

    def __init__(self, actor, holder, calls):
        self.actor, self.holder, self.calls = actor, holder, calls

    def train(self, indices, *args):
        self.calls[-1].append((self.holder, list(indices)))
        return self.actor.train(indices, *args)

    def __getattr__(self, name):
        return getattr(self.actor, name)


def _softmax_fit_held_on_cluster(client, monkeypatch, Xd, y, sw, use_actors=True, n_epochs=8):
    """A SoftmaxRegression fit of the persisted ``Xd``; the functions submitted, and for every
    epoch on the actors its calls ``(holder, block indices)`` and the tasks submitted in it."""
    from fastsoftmax import _dask

    monkeypatch.setattr(_dask, "USE_ACTORS", use_actors)
    submitted, epochs, submitted_in_epoch = [], [], []
    submit, by_actors, start = (distributed.Client.submit, _dask.Blocks._train_by_actors,
                                _dask.Blocks._start_actors)  # fmt: skip

    def counting_submit(self, func, *args, **kwargs):
        submitted.append(getattr(func, "__name__", func))
        return submit(self, func, *args, **kwargs)

    def recording_by_actors(self, *args):
        epochs.append([])
        before = len(submitted)
        state = by_actors(self, *args)
        submitted_in_epoch.append(submitted[before:])
        return state

    def recording_start(self, *args):
        return [(future, _RecordingActor(actor, holder, epochs))
                for holder, (future, actor) in enumerate(start(self, *args))]  # fmt: skip

    monkeypatch.setattr(distributed.Client, "submit", counting_submit)
    monkeypatch.setattr(_dask.Blocks, "_train_by_actors", recording_by_actors)
    monkeypatch.setattr(_dask.Blocks, "_start_actors", recording_start)
    with client.as_current():
        model = SoftmaxRegression(max_epochs=n_epochs, batch_size=32, random_state=0, tol=None)
        model.fit(Xd, y, sample_weight=sw)
    monkeypatch.undo()
    return model, submitted, epochs, submitted_in_epoch


def test_softmax_epochs_on_actors(client, monkeypatch):
    """X held on the cluster: every epoch runs on the workers' actors (no task), the weights
    handed along the shuffled block order, one call per stretch of blocks one worker holds;
    the in-memory accuracy, the same model as the chain of tasks; the actors end with the fit."""
    X, y, sw = _problem(n=3000, d=10, n_classes=4, dtype=np.float32, seed=1)
    X_train, y_train, X_test, y_test = X[:2400], y[:2400], X[2400:], y[2400:]
    # as test_softmax_fit_accuracy_matches_in_memory
    ref = SoftmaxRegression(max_epochs=8, batch_size=32, random_state=0, tol=None)
    ref.fit(X_train, y_train)
    with client.as_current():
        Xd = da.from_array(X_train, chunks=300).persist()  # 8 blocks on 2 workers
        distributed.wait(Xd)
    got, submitted, epochs, in_epoch = _softmax_fit_held_on_cluster(
        client, monkeypatch, Xd, y_train, None)  # fmt: skip
    assert got.coef_.dtype == np.float32 and got.n_iter_ == 8
    # the actors started once, one per worker, with the blocks; no task in any epoch
    assert submitted.count("_WorkerBlockSums") == 2 and in_epoch == [[]] * 8, in_epoch
    orders = [[i for _, blocks in calls for i in blocks] for calls in epochs]
    assert len(orders) == 8 and all(sorted(order) == list(range(8)) for order in orders)
    assert len({tuple(order) for order in orders}) > 1  # shuffled: not the same order each epoch
    for calls in epochs:  # a new call only where the next block is held by the other worker
        holders = [holder for holder, _ in calls]
        assert all(a != b for a, b in itertools.pairwise(holders)), calls
    assert abs(got.score(X_test, y_test) - ref.score(X_test, y_test)) <= 0.003 + 1e-12
    assert got.history_["train_loss"][-1] == pytest.approx(ref.history_["train_loss"][-1], rel=0.02)
    with client.as_current():  # the actors are gone with the fit
        deadline = time.monotonic() + 10
        while any("_WorkerBlockSums" in str(k) for k in client.who_has()):
            assert time.monotonic() < deadline, client.who_has()
            time.sleep(0.05)
    # weighted, 2 epochs: the actors train what the chain of tasks trains
    by_actors = _softmax_fit_held_on_cluster(client, monkeypatch, Xd, y_train, sw[:2400],
                                             n_epochs=2)[0]  # fmt: skip
    by_tasks, submitted, epochs, _ = _softmax_fit_held_on_cluster(
        client, monkeypatch, Xd, y_train, sw[:2400], use_actors=False, n_epochs=2)  # fmt: skip
    assert epochs == [] and submitted.count("_train_block") == 2 * 8
    np.testing.assert_allclose(by_actors.coef_, by_tasks.coef_, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(by_actors.intercept_, by_tasks.intercept_, rtol=1e-6, atol=1e-7)
    assert by_actors.history_["train_loss"] == pytest.approx(by_tasks.history_["train_loss"],
                                                             rel=1e-6)  # fmt: skip


def test_softmax_validation_data_and_weights():
    X, y, sw = _problem(n=2000, n_classes=3, dtype=np.float32)
    with dask.config.set(scheduler="threads"):
        Xd = da.from_array(X[:1600], chunks=400)
        model = SoftmaxRegression(max_epochs=20, early_stopping=True, n_iter_no_change=2,
                                  random_state=0)  # fmt: skip
        model.fit(Xd, y[:1600], sample_weight=da.from_array(sw[:1600], chunks=400),
                  validation_data=(da.from_array(X[1600:], chunks=200), y[1600:]))  # fmt: skip
        assert np.isfinite(model.history_["val_loss"]).all()
        ref = SoftmaxRegression(max_epochs=20, early_stopping=True, n_iter_no_change=2,
                                random_state=0)  # fmt: skip
        ref.fit(X[:1600], y[:1600], sample_weight=sw[:1600], validation_data=(X[1600:], y[1600:]))
        assert abs(model.score(X[1600:], y[1600:]) - ref.score(X[1600:], y[1600:])) < 0.03
        with pytest.raises(ValueError, match="validation_data"):
            SoftmaxRegression(early_stopping=True).fit(Xd, y[:1600])


def test_softmax_partial_fit(scheduler):
    X, y, _ = _problem(n=2000, n_classes=3, dtype=np.float32)
    model, ref = SoftmaxRegression(random_state=0), SoftmaxRegression(random_state=0)
    Xd = da.from_array(X, chunks=500)
    for _ in range(3):
        model.partial_fit(Xd, y, classes=[0, 1, 2])
        ref.partial_fit(X, y, classes=[0, 1, 2])
    assert len(model.history_["train_loss"]) == 3
    assert model.history_["train_loss"][2] < model.history_["train_loss"][0]
    assert abs(model.score(X, y) - ref.score(X, y)) < 0.02
    with pytest.raises(ValueError, match="label 7"):
        model.partial_fit(Xd, np.where(y == 2, 7, y))


def test_softmax_partial_fit_on_actors(client, monkeypatch):
    """partial_fit on X held on the cluster: each call's epoch on the actors, the model of the
    chain of tasks; a label outside classes_ raises and leaves the model as it was."""
    from fastsoftmax import _dask

    X, y, _ = _problem(n=2000, n_classes=3, dtype=np.float32)
    with client.as_current():
        Xd = da.from_array(X, chunks=500).persist()
        distributed.wait(Xd)
        models = []
        for use_actors in (True, False):
            monkeypatch.setattr(_dask, "USE_ACTORS", use_actors)
            model = SoftmaxRegression(random_state=0)
            for _ in range(2):
                model.partial_fit(Xd, y, classes=[0, 1, 2])
            models.append(model)
        monkeypatch.undo()
        by_actors, by_tasks = models
        np.testing.assert_allclose(by_actors.coef_, by_tasks.coef_, rtol=1e-6, atol=1e-7)
        assert by_actors.history_["train_loss"] == pytest.approx(by_tasks.history_["train_loss"],
                                                                 rel=1e-6)  # fmt: skip
        before = by_actors.coef_.copy()
        with pytest.raises(ValueError, match="label 7"):
            by_actors.partial_fit(Xd, np.where(y == 2, 7, y))
        np.testing.assert_array_equal(by_actors.coef_, before)
        assert len(by_actors.history_["train_loss"]) == 2


def test_incremental_wrapper():
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, y, _ = _problem(n=2000, n_classes=3, dtype=np.float32)
    with dask.config.set(scheduler="threads"):
        inc = wrappers.Incremental(SoftmaxRegression(random_state=0))
        inc.fit(da.from_array(X, chunks=500), da.from_array(y, chunks=500), classes=[0, 1, 2])
        assert inc.score(da.from_array(X, chunks=500), da.from_array(y, chunks=500)) > 0.7


# ---------------------------------------------------------------------------
# bad input


def test_unknown_chunk_sizes_raise():
    X, y, _ = _problem()
    Xd = da.from_array(X, chunks=500)
    masked = Xd[da.from_array(y, chunks=500) >= 0]  # unknown row counts
    model = LogisticRegression()
    with pytest.raises(ValueError, match="unknown chunk sizes.*compute_chunk_sizes"):
        model.fit(masked, y)
    assert not hasattr(model, "coef_")
    with dask.config.set(scheduler="threads"):
        model.fit(masked.compute_chunk_sizes(), y)  # the remedy the message names
    assert model.coef_.shape == (3, 8)


@pytest.mark.parametrize("Estimator", [LogisticRegression, SoftmaxRegression])
def test_nan_in_one_block(Estimator):
    X, y, _ = _problem()
    bad = X.copy()
    bad[1234, 3] = np.nan
    model = Estimator(warm_start=True).fit(X, y)
    before = {k: np.copy(v) for k, v in vars(model).items() if isinstance(v, np.ndarray)}
    with dask.config.set(scheduler="threads"):
        with pytest.raises(ValueError, match=r"Input X contains NaN\. \(in block 3 of the rows\)"):
            model.fit(da.from_array(bad, chunks=400), y)
        for name, value in before.items():  # a warm-started estimator is unchanged
            np.testing.assert_array_equal(getattr(model, name), value)
        fresh = Estimator()
        with pytest.raises(ValueError, match="NaN"):
            fresh.fit(da.from_array(bad, chunks=400), y)
    assert not hasattr(fresh, "coef_") and not hasattr(fresh, "classes_")


def test_bad_blocks_on_the_actors(client):
    """X held on the cluster: the actors check the blocks (the errors name the block, counted
    with the empty ones) and encode the labels with the class weights; a failed set-up leaves
    the estimator unchanged and no actor behind."""
    X, y, sw = _problem(n=1500)
    chunks = ((300, 0, 400, 400, 400), (8,))
    bad = X.copy()
    bad[1234, 3] = np.nan
    params = {"class_weight": "balanced", "tol": TOL, "max_iter": 500}
    ref = LogisticRegression(**params).fit(X, y, sample_weight=sw)
    with client.as_current():
        Xd, Xbad = (da.from_array(a, chunks=chunks).persist() for a in (X, bad))
        distributed.wait([Xd, Xbad])
        _assert_same_fit(LogisticRegression(**params).fit(Xd, y, sample_weight=sw), ref)
        model = LogisticRegression()
        gc.disable()  # the actors are ended by the failed fit, not by the garbage collector
        try:
            with pytest.raises(ValueError, match=r"contains NaN\. \(in block 4 of the rows\)"):
                model.fit(Xbad, y)
            with pytest.raises(ValueError, match="zero for every sample"):
                model.fit(Xd, y, sample_weight=np.zeros_like(sw))
            assert not hasattr(model, "coef_") and not hasattr(model, "classes_")
            deadline = time.monotonic() + 5
            while any("_WorkerBlockSums" in str(k) for k in client.who_has()):
                assert time.monotonic() < deadline, client.who_has()
                time.sleep(0.05)
        finally:
            gc.enable()


@pytest.mark.parametrize("failing", ["_start_actors", "_inspect_on_actors"])
def test_actors_lost_in_the_set_up(client, monkeypatch, failing):
    """The actors fail to start or to check the blocks (not the data's fault: e.g. a worker
    lost): the blocks are checked and summed by tasks, the fit is right, no actor is left."""
    from fastsoftmax import _dask

    X, y, sw = _problem(n=1200)
    ref = LogisticRegression(tol=TOL, max_iter=500).fit(X, y, sample_weight=sw)
    original, tasks, by_tasks = getattr(_dask.Blocks, failing), _dask.Blocks._map_sum_by_tasks, []

    def lost(self, *args):
        if failing == "_inspect_on_actors":
            original(self, *args)  # the actors exist, then their worker is "lost"
        raise OSError("Unable to contact Actor's worker")

    def counting_by_tasks(self, *args):
        by_tasks.append(self._block_sums)
        return tasks(self, *args)

    monkeypatch.setattr(_dask.Blocks, failing, lost)
    monkeypatch.setattr(_dask.Blocks, "_map_sum_by_tasks", counting_by_tasks)
    with client.as_current():
        Xd = da.from_array(X, chunks=300).persist()
        distributed.wait(Xd)
        got = LogisticRegression(tol=TOL, max_iter=500).fit(Xd, y, sample_weight=sw)
    _assert_same_fit(got, ref)
    assert len(by_tasks) >= got.n_iter_[0] and set(by_tasks) == {False}
    with client.as_current():
        deadline = time.monotonic() + 10
        while any("_WorkerBlockSums" in str(k) for k in client.who_has()):
            assert time.monotonic() < deadline, client.who_has()
            time.sleep(0.05)


def test_labels_unseen_in_some_blocks():
    """Each block holds only some classes: the classes come from all of y."""
    X, y, _ = _problem(n=1500, n_classes=3)
    order = np.argsort(y, kind="stable")  # sorted labels: blocks of one or two classes
    X, y = X[order], y[order]
    ref = LogisticRegression(tol=TOL, max_iter=500).fit(X, y)
    with dask.config.set(scheduler="threads"):
        got = LogisticRegression(tol=TOL, max_iter=500).fit(da.from_array(X, chunks=250), y)
    _assert_same_fit(got, ref)
    with pytest.raises(ValueError, match="only one class"):
        LogisticRegression().fit(da.from_array(X[:200], chunks=100), y[:200])


def test_mismatched_lengths_and_shapes():
    X, y, sw = _problem()
    Xd = da.from_array(X, chunks=500)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        LogisticRegression().fit(Xd, y[:-1])
    with pytest.raises(ValueError, match="sample_weight must be a 1-D array"):
        LogisticRegression().fit(Xd, y, sample_weight=da.from_array(np.c_[sw, sw], chunks=100))
    with pytest.raises(ValueError, match="2-D"):
        LogisticRegression().fit(Xd[:, 0], y)


def test_negative_weight_in_one_block():
    X, y, sw = _problem()
    sw[900] = -1.0
    with dask.config.set(scheduler="threads"), pytest.raises(ValueError, match="non-negative"):
        LogisticRegression().fit(da.from_array(X, chunks=500), y, sample_weight=sw)


# ---------------------------------------------------------------------------
# out of core: blocks read from a file on disk, never persisted


def _read_rows(path, start, stop):
    """Rows ``start:stop`` of a .npy file, copied out of a memory map that is closed at once."""
    return np.array(np.load(path, mmap_mode="r")[start:stop])


def on_disk(path, rows_per_block):
    """A dask array of the rows of the .npy file ``path``, one read task per block."""
    header = np.load(path, mmap_mode="r")
    n, d = header.shape
    read = dask.delayed(_read_rows, pure=True)
    blocks = [
        da.from_delayed(read(str(path), s, min(s + rows_per_block, n)),
                        shape=(min(s + rows_per_block, n) - s, d), dtype=header.dtype)
        for s in range(0, n, rows_per_block)
    ]
    return da.concatenate(blocks)


def test_out_of_core_on_disk(client, tmp_path):
    X, y, _ = _problem(n=4000, d=16, n_classes=3, dtype=np.float32)
    path = tmp_path / "X.npy"
    np.save(path, X)
    Xd = on_disk(path, 500)
    ref = LogisticRegression(tol=1e-6, max_iter=300).fit(X, y)
    with client.as_current():
        got = LogisticRegression(tol=1e-6, max_iter=300).fit(Xd, y)
        assert not client.has_what() or all(
            not str(key).startswith(("concatenate", "_read_rows")) for keys in
            client.has_what().values() for key in keys
        )  # fmt: skip
    _assert_same_fit(got, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(os.environ.get("FASTSOFTMAX_LONG_TESTS") != "1",
                    reason="minutes and GBs of disk: set FASTSOFTMAX_LONG_TESTS=1")  # fmt: skip
def test_out_of_core_4x_memory_limit(tmp_path):
    """X on disk is 4x the workers' memory limit; the fit completes; peak worker memory is reported."""
    # a worker's RSS after importing fastsoftmax, dask and their dependencies is about 300 MiB,
    # and distributed pauses a worker at 80% of its limit
    memory_limit = 1024 * 2**20
    n_features, rows_per_block = 784, 8192
    n = 4 * memory_limit // (n_features * 4) * 1 + rows_per_block
    rng = np.random.default_rng(0)
    path = tmp_path / "big.npy"
    W = rng.standard_normal((n_features, 10)).astype(np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, n_features))
    y = np.empty(n, dtype=np.intp)
    for s in range(0, n, 65536):
        block = rng.standard_normal((min(65536, n - s), n_features), dtype=np.float32)
        out[s : s + block.shape[0]] = block
        y[s : s + block.shape[0]] = np.argmax(block @ W, axis=1)
    out.flush()
    del out
    assert path.stat().st_size >= 4 * memory_limit
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, memory_limit=memory_limit,
                                       dashboard_address=None)  # fmt: skip
    with cluster, distributed.Client(cluster) as client:
        peaks = {}

        def sample():
            while not done:
                for addr, rss in client.run(lambda: __import__("psutil").Process().memory_info().rss).items():
                    peaks[addr] = max(peaks.get(addr, 0), rss)
                time.sleep(0.5)

        done = False
        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            model = LogisticRegression(max_iter=5)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(on_disk(path, rows_per_block), y)
        finally:
            done = True
            sampler.join()
    print(f"\nX on disk: {path.stat().st_size / 2**20:.0f} MiB, memory_limit "
          f"{memory_limit / 2**20:.0f} MiB, peak worker RSS "
          f"{max(peaks.values()) / 2**20:.0f} MiB")  # fmt: skip
    assert model.coef_.shape == (10, n_features)
    assert max(peaks.values()) < memory_limit


# ---------------------------------------------------------------------------
# faults (last: the restarted worker imports fastsoftmax again)


def test_worker_killed_mid_fit(client):
    """A worker killed during the fit: Dask recomputes its blocks, the fit completes and is right."""
    X, y, _ = _problem(n=4000, d=8, n_classes=3)
    ref = LogisticRegression(tol=0.0, max_iter=60).fit(X, y)
    Xd = da.from_array(X, chunks=250)  # not persisted: the lost blocks are read again
    pids = list(client.run(os.getpid).values())
    killed = []

    def kill_one():
        time.sleep(0.8)
        os.kill(pids[0], 9)
        killed.append(True)

    model = LogisticRegression(tol=0.0, max_iter=60)
    killer = threading.Thread(target=kill_one)
    with client.as_current():
        killer.start()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(Xd, y)
        except Exception as exc:  # noqa: BLE001 -- failing is allowed, half-updating is not
            print(f"the fit failed: {exc!r}")
            assert not hasattr(model, "coef_")
        else:
            print(f"the fit completed after a worker was killed: {killed}")
            _assert_same_fit(model, ref, rtol=1e-5, atol=1e-6)
        finally:
            killer.join()
    assert killed
    client.wait_for_workers(2, timeout=30)  # the nanny restarts it for the next tests


def test_worker_killed_mid_fit_on_actors(client, monkeypatch):
    """X persisted, a worker killed between two evaluations: its actor is lost, the rest of the
    fit runs on tasks (Dask recomputes the lost blocks) and the fit is right."""
    from fastsoftmax import _dask

    X, y, _ = _problem(n=4000, d=8, n_classes=3)
    ref = LogisticRegression(tol=0.0, max_iter=60).fit(X, y)
    pids = list(client.run(os.getpid).values())
    by_actors, by_tasks, calls = _dask.Blocks._map_sum_by_actors, _dask.Blocks._map_sum_by_tasks, []

    def killing_by_actors(self, *args):
        calls.append("actors")
        if len(calls) == 5:  # the worker dies: its actor with it
            os.kill(pids[0], 9)
            client.wait_for_workers(2, timeout=30)  # its nanny restarts it
        return by_actors(self, *args)

    def counting_by_tasks(self, *args):
        calls.append("tasks")
        return by_tasks(self, *args)

    monkeypatch.setattr(_dask.Blocks, "_map_sum_by_actors", killing_by_actors)
    monkeypatch.setattr(_dask.Blocks, "_map_sum_by_tasks", counting_by_tasks)
    with client.as_current():
        Xd = da.from_array(X, chunks=250).persist()
        distributed.wait(Xd)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = LogisticRegression(tol=0.0, max_iter=60).fit(Xd, y)
    _assert_same_fit(model, ref, rtol=1e-5, atol=1e-6)
    # the actors until the kill, then the tasks to the end
    assert calls[:6] == ["actors"] * 5 + ["tasks"] and set(calls[6:]) == {"tasks"}, calls


def test_worker_killed_mid_epoch_on_actors(client, monkeypatch):
    """SoftmaxRegression, X persisted, a worker killed in the middle of an epoch on the actors:
    that epoch starts again from the weights before it on tasks (same block order, same seeds;
    Dask recomputes the lost blocks), the rest of the fit too: the model of an unbroken fit."""
    from fastsoftmax import _dask

    X, y, _ = _problem(n=4000, d=8, n_classes=3, dtype=np.float32)
    params = {"max_epochs": 4, "batch_size": 64, "random_state": 0, "tol": None}
    client.wait_for_workers(2, timeout=30)  # the last test's killed worker back
    pids = list(client.run(os.getpid).values())
    with client.as_current():
        Xd = da.from_array(X, chunks=250).persist()  # 16 blocks
        distributed.wait(Xd)
        ref = SoftmaxRegression(**params).fit(Xd, y)  # on the actors, unbroken
    start, submit = _dask.Blocks._start_actors, distributed.Client.submit
    epochs, tasks = [], []

    class KillingActor:  # the 3rd call of the 2nd epoch kills a worker first
        def __init__(self, actor):
            self.actor = actor

        def train(self, *args):
            epochs[-1] += 1
            if len(epochs) == 2 and epochs[-1] == 3:
                os.kill(pids[0], 9)
                client.wait_for_workers(2, timeout=30)  # its nanny restarts it
            return self.actor.train(*args)

        def __getattr__(self, name):
            return getattr(self.actor, name)

    def counting_start(self, *args):
        return [(future, KillingActor(actor)) for future, actor in start(self, *args)]

    by_actors = _dask.Blocks._train_by_actors

    def counting_by_actors(self, *args):
        epochs.append(0)
        return by_actors(self, *args)

    def counting_submit(self, func, *args, **kwargs):
        tasks.append((len(epochs), getattr(func, "__name__", func)))
        return submit(self, func, *args, **kwargs)

    monkeypatch.setattr(_dask.Blocks, "_start_actors", counting_start)
    monkeypatch.setattr(_dask.Blocks, "_train_by_actors", counting_by_actors)
    monkeypatch.setattr(distributed.Client, "submit", counting_submit)
    with client.as_current():
        model = SoftmaxRegression(**params).fit(Xd, y)
    monkeypatch.undo()
    assert len(epochs) == 2 and epochs[1] >= 3, epochs  # the actors until the kill
    trained = [epoch for epoch, name in tasks if name == "_train_block"]
    assert trained == [2] * (3 * 16), tasks  # epochs 2 (again), 3 and 4 on tasks
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.intercept_, ref.intercept_, rtol=1e-6, atol=1e-7)
    assert model.history_["train_loss"] == pytest.approx(ref.history_["train_loss"], rel=1e-6)
