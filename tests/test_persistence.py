"""Saving and loading estimators: portable .npz round trips, clear errors, pickle."""

import json
import pickle
import zipfile

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import LogisticRegression, SoftmaxRegression
from fastsoftmax.learners import Adam, Momentum, StepDecay
from fastsoftmax.persistence import FORMAT_NAME, FORMAT_VERSION, ModelFormatError, load


@pytest.fixture
def data(rng):
    centers = 3.0 * rng.standard_normal((3, 5))
    y = rng.integers(0, 3, size=120)
    X = (centers[y] + rng.standard_normal((120, 5))).astype(np.float32)
    return X, y


def _assert_same_state(a, b):
    """Same class, same constructor parameters, same fitted attributes (values and dtypes)."""
    assert type(a) is type(b)
    pa, pb = a.get_params(), b.get_params()
    assert pa.keys() == pb.keys()
    for key in pa:
        if key == "optimizer" and not isinstance(pa[key], str):
            assert pa[key].get_config() == pb[key].get_config()
        else:
            assert pa[key] == pb[key], key
    fitted = sorted(k for k in vars(a) if k.endswith("_") and not k.startswith("_"))
    assert fitted == sorted(k for k in vars(b) if k.endswith("_") and not k.startswith("_"))
    for key in fitted:
        va, vb = getattr(a, key), getattr(b, key)
        if isinstance(va, np.ndarray):
            assert va.dtype == vb.dtype and va.shape == vb.shape, key
            np.testing.assert_array_equal(va, vb)
        else:
            assert type(va) is type(vb), key
            np.testing.assert_equal(va, vb, err_msg=key)  # recursive; NaN equals NaN


@pytest.mark.parametrize(
    "labels",
    [
        np.array([3, 10, 42]),
        np.array(["ant", "bee", "cow"]),
        np.array(["ant", "bee", "cow"], dtype=object),
        np.array([1.0, 2.0, 4.0], dtype=np.float32),
    ],
    ids=["int", "str", "object", "float32"],
)
@pytest.mark.parametrize("Estimator", [LogisticRegression, SoftmaxRegression])
def test_round_trip(Estimator, labels, data, tmp_path):
    X, y_idx = data
    y = labels[y_idx]
    params = {"C": 0.5} if Estimator is LogisticRegression else {"max_epochs": 2, "random_state": 3}
    clf = Estimator(class_weight={labels.tolist()[0]: 2.0}, **params).fit(X, y)
    path = clf.save(tmp_path / "model.npz")
    assert path == str(tmp_path / "model.npz")
    loaded = fastsoftmax.load(path)
    _assert_same_state(clf, loaded)
    assert loaded.classes_.dtype == labels.dtype
    assert list(loaded.class_weight) == [labels.tolist()[0]]  # a key of the original type
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_round_trip_binary_and_history(data, tmp_path):
    X, y = data
    y = y % 2
    clf = SoftmaxRegression(max_epochs=3, random_state=0).fit(X, y, validation_data=(X, y))
    loaded = load(clf.save(tmp_path / "m.npz"))
    _assert_same_state(clf, loaded)
    assert loaded.coef_.shape == (1, 5)
    assert loaded.history_ == clf.history_  # lists of floats, NaN-free here
    assert loaded.best_epoch_ == clf.best_epoch_ and isinstance(loaded.best_epoch_, int)


def test_npz_suffix_is_added(data, tmp_path):
    clf = LogisticRegression().fit(*data)
    path = clf.save(tmp_path / "model")
    assert path.endswith("model.npz")
    assert zipfile.is_zipfile(path)
    assert (tmp_path / "model.npz").exists() and not (tmp_path / "model").exists()


def test_unfitted_round_trip(tmp_path):
    est = SoftmaxRegression(
        optimizer="momentum", learning_rate=0.05, schedule={"kind": "step", "step_size": 2}
    )
    loaded = load(est.save(tmp_path / "unfitted.npz"))
    _assert_same_state(est, loaded)
    assert not hasattr(loaded, "coef_")


def test_learner_and_schedule_parameters(data, tmp_path):
    X, y = data
    est = SoftmaxRegression(
        optimizer=Momentum(learning_rate=0.02, momentum=0.8),
        schedule=StepDecay(3, 0.5),
        max_epochs=2,
    )
    loaded = load(est.fit(X, y).save(tmp_path / "m.npz"))
    assert isinstance(loaded.optimizer, Momentum)
    assert loaded.optimizer.get_config() == est.optimizer.get_config()
    assert loaded.schedule == StepDecay(3, 0.5)
    assert loaded.get_params()["max_epochs"] == 2


def test_partial_fit_continues_exactly_after_load(data, tmp_path):
    """The optimiser state (Adam's moments and step count) is saved too."""
    X, y = data
    clf = SoftmaxRegression(optimizer=Adam(learning_rate=0.01), random_state=0)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    loaded = load(clf.save(tmp_path / "m.npz"))
    assert loaded._learner.t == clf._learner.t > 0
    clf.partial_fit(X, y)
    loaded.partial_fit(X, y)
    np.testing.assert_array_equal(loaded.coef_, clf.coef_)
    np.testing.assert_array_equal(loaded.intercept_, clf.intercept_)


def test_file_contents_are_portable(data, tmp_path):
    """A plain NumPy reader sees the format marker, version and a JSON manifest; no pickle."""
    clf = LogisticRegression().fit(*data)
    path = clf.save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as archive:
        assert str(archive["__format__"]) == FORMAT_NAME
        assert int(archive["__version__"]) == FORMAT_VERSION
        assert str(archive["__class__"]) == "LogisticRegression"
        manifest = json.loads(str(archive["__manifest__"]))
        assert manifest["params"]["C"] == 1.0
        assert all(archive[k].dtype != object for k in archive.files)


def test_pickle(data):
    X, y = data
    for clf in (LogisticRegression(), SoftmaxRegression(max_epochs=2, random_state=0)):
        clf.fit(X, y)
        again = pickle.loads(pickle.dumps(clf))
        np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


# ----------------------------------------------------------------------------- errors


def test_not_a_model_file(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelFormatError, match="notes.txt.*is not a fastsoftmax model file"):
        load(text)
    npy = tmp_path / "array.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(ValueError, match="is not a fastsoftmax model file"):
        load(npy)
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.zeros(3))
    with pytest.raises(ValueError, match="no 'fastsoftmax-model' format marker"):
        load(other)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(b"PK\x03\x04 and then nothing useful")
    with pytest.raises(ValueError, match="is not a fastsoftmax model file"):
        load(truncated)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.npz")


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays.update(changes)
    np.savez(path, **arrays)


def test_newer_format_version_is_refused(data, tmp_path):
    path = LogisticRegression().fit(*data).save(tmp_path / "m.npz")
    _rewrite(path, __version__=np.array(FORMAT_VERSION + 1))
    match = f"format version {FORMAT_VERSION + 1}, newer than.*upgrade fastsoftmax"
    with pytest.raises(ModelFormatError, match=match):
        load(path)


def test_unknown_class_and_damaged_manifest(data, tmp_path):
    path = LogisticRegression().fit(*data).save(tmp_path / "m.npz")
    _rewrite(path, __class__=np.array("RandomForest"))
    with pytest.raises(ModelFormatError, match="unknown estimator class 'RandomForest'"):
        load(path)
    _rewrite(path, __class__=np.array("LogisticRegression"), __manifest__=np.array("{not json"))
    with pytest.raises(ModelFormatError, match="damaged fastsoftmax model file"):
        load(path)


def test_unsaveable_parameters(tmp_path):
    est = SoftmaxRegression(random_state=np.random.default_rng(0))
    with pytest.raises(TypeError, match="random_state.*Generator is not portable"):
        est.save(tmp_path / "m.npz")
    assert not list(tmp_path.iterdir())  # no partial file left behind

    class MyAdam(Adam):
        pass

    with pytest.raises(TypeError, match="optimizer: MyAdam is not a built-in learner"):
        SoftmaxRegression(optimizer=MyAdam()).save(tmp_path / "m.npz")
    with pytest.raises(TypeError, match="expects a fastsoftmax estimator"):
        fastsoftmax.persistence.save(object(), tmp_path / "m.npz")
