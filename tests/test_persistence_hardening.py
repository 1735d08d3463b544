"""Issue 16, items 10, 11, 14 and 18: model files crafted or damaged by an adversary.

``load`` must read only what the manifest names, within sizes the file can
hold, never block, raise nothing but ModelFormatError for a bad file (so that
the CLI exits 2), and refuse models that ``fit`` could never have produced;
``save`` must behave like ``numpy.savez`` for permissions and symbolic links.
"""

import json
import os
import stat
import threading
import tracemalloc
import zipfile

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import LogisticRegression, SoftmaxRegression
from fastsoftmax.cli import main
from fastsoftmax.persistence import ModelFormatError, load, save

MiB = 1 << 20


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    X = (3.0 * rng.standard_normal((3, 4))[y] + rng.standard_normal((60, 4))).astype(np.float32)
    return X, y


@pytest.fixture
def model_path(data, tmp_path):
    return SoftmaxRegression(max_epochs=2, random_state=0).fit(*data).save(tmp_path / "m.npz")


def members(path):
    """name -> bytes of every member of a .npz file."""
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def write_members(path, contents, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in contents.items():
            archive.writestr(name, data)


def npy_bytes(array):
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_header(shape, descr="<f8"):
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def manifest_of(path):
    return json.loads(str(np.load(path, allow_pickle=False)["__manifest__"]))


def key_of(path, attribute):
    return manifest_of(path)["attributes"][attribute]["__array__"]


def rewrite(path, *, manifest=None, **arrays):
    """Rewrite a model file with a changed manifest and/or arrays (by archive key)."""
    with np.load(path, allow_pickle=False) as archive:
        contents = {k: archive[k] for k in archive.files}
    if manifest is not None:
        contents["__manifest__"] = np.array(json.dumps(manifest))
    contents.update(arrays)
    np.savez(path, **contents)


def peak_memory(function, *args):
    tracemalloc.start()
    try:
        try:
            result = function(*args)
        except Exception as exc:  # noqa: BLE001 - returned for the caller to check
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def assert_refused(path, *needles):
    with pytest.raises(ModelFormatError) as info:
        load(path)
    assert type(info.value) is ModelFormatError
    for needle in needles:
        assert needle in str(info.value), str(info.value)
    return info.value


# ----------------------------------------------------------------------------- item 10: bombs


def test_members_the_manifest_does_not_name_are_never_read(model_path):
    with zipfile.ZipFile(model_path, "a", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("junk.npy", "w") as member:  # 64 MiB of zeros in about 64 kB
            member.write(npy_header((64 * MiB,), "|u1"))
            for _ in range(64):
                member.write(bytes(MiB))
    assert os.path.getsize(model_path) < MiB
    result, peak = peak_memory(load, model_path)
    assert isinstance(result, SoftmaxRegression), result
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB"


def test_a_member_declaring_a_huge_shape_is_refused_before_reading(model_path):
    contents = members(model_path)
    coef = f"{key_of(model_path, 'coef_')}.npy"
    contents[coef] = npy_header((10**12,)) + bytes(64)
    write_members(model_path, contents)
    result, peak = peak_memory(load, model_path)
    assert type(result) is ModelFormatError, repr(result)
    assert "(1000000000000,)" in str(result) and "needs" in str(result)
    assert peak < 8 * MiB


def test_a_member_claiming_more_than_deflate_can_give_is_refused(model_path):
    contents = members(model_path)
    coef = f"{key_of(model_path, 'coef_')}.npy"
    write_members(model_path, contents)
    # patch the uncompressed size in the central directory (and local header): a lie
    raw = bytearray(open(model_path, "rb").read())
    with zipfile.ZipFile(model_path) as archive:
        info = archive.getinfo(coef)
    claimed = (1 << 31).to_bytes(4, "little")
    central = raw.rindex(coef.encode()) - 46  # central directory entry of the member
    raw[central + 24 : central + 28] = claimed
    raw[info.header_offset + 22 : info.header_offset + 26] = claimed
    open(model_path, "wb").write(bytes(raw))
    assert_refused(model_path, "claims 2147483648 bytes")


def test_a_manifest_naming_a_missing_array_is_refused(model_path):
    manifest = manifest_of(model_path)
    manifest["attributes"]["coef_"] = {"__array__": "a999"}
    rewrite(model_path, manifest=manifest)
    assert_refused(model_path, "no array 'a999'")


def test_compressed_model_files_still_load(data, model_path):
    write_members(model_path, members(model_path), zipfile.ZIP_DEFLATED)
    loaded = load(model_path)
    np.testing.assert_array_equal(loaded.predict(data[0]), load(model_path).predict(data[0]))


# ----------------------------------------------------------------------------- item 11: FIFO


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_a_named_pipe_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(peak_memory(load, fifo)[0]))
    thread.daemon = True
    thread.start()
    thread.join(5)
    if thread.is_alive():  # unblock the reader before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        pytest.fail("load() blocked on a named pipe")
    assert type(outcome[0]) is ModelFormatError
    assert "not a regular file" in str(outcome[0])


def test_a_directory_is_refused(tmp_path):
    (tmp_path / "dir.npz").mkdir()
    assert_refused(tmp_path / "dir.npz", "a directory")


# ----------------------------------------------------------------------------- item 14: errors


def test_a_damaged_central_directory_is_a_model_format_error(model_path):
    raw = bytearray(open(model_path, "rb").read())
    end = raw.rindex(b"PK\x05\x06")
    raw[end + 16 : end + 20] = (len(raw) - 30).to_bytes(4, "little")  # central dir offset
    open(model_path, "wb").write(bytes(raw))
    assert_refused(model_path)


def test_a_bad_crc_is_a_model_format_error(model_path):
    contents = members(model_path)
    coef = f"{key_of(model_path, 'coef_')}.npy"
    raw = bytearray(open(model_path, "rb").read())
    at = raw.index(contents[coef][-8:])  # flip a byte of coef_'s data, keep the CRC
    raw[at] ^= 0xFF
    open(model_path, "wb").write(bytes(raw))
    assert_refused(model_path, "damaged")


@pytest.mark.parametrize(
    "manifest",
    [
        [],
        {"params": [], "attributes": {}},
        {"params": {"max_epochs": {"__learner__": 5, "t": 0, "state": None}}, "attributes": {}},
        {"params": {"optimizer": {"__learner__": {"__dict__": [[1, 2]]}}}, "attributes": {}},
        {"params": {"nonsense": 1}, "attributes": {}},
        {"params": {}, "attributes": {"coef_": {"__tuple__": 5}}},
        {"params": {}, "attributes": {"coef_": {"__scalar__": {"__float__": "x"}}}},
        {"params": {}, "attributes": {"coef_": {"__dict__": [[[1], 2]]}}},
        {"params": {}, "attributes": {"coef_": {"what": 1}}},
        {"params": {}, "attributes": {"x": {"__array__": ["a0"]}}},
    ],
    ids=lambda m: json.dumps(m)[:40],
)
def test_crafted_manifests_give_model_format_errors(model_path, manifest):
    rewrite(model_path, manifest=manifest)
    assert_refused(model_path, "m.npz")


def test_a_deeply_nested_manifest_is_a_model_format_error(model_path):
    rewrite(model_path, __manifest__=np.array("[" * 100000 + "]" * 100000))
    assert_refused(model_path)
    for depth in (900, 5000):  # past _decode's recursion, then past json's
        deep = '{"__tuple__": [' * depth + "1" + "]}" * depth
        text = '{"params": {"l2": ' + deep + '}, "attributes": {}}'
        rewrite(model_path, __manifest__=np.array(text))
        assert_refused(model_path)


@pytest.mark.parametrize("key", ["__format__", "__version__", "__class__", "__manifest__"])
def test_markers_of_the_wrong_kind_are_refused(model_path, key):
    rewrite(model_path, **{key: np.zeros((2, 2))})
    assert_refused(model_path)


def test_an_object_array_member_is_refused(model_path):
    contents = members(model_path)
    coef = f"{key_of(model_path, 'coef_')}.npy"
    contents[coef] = npy_header((2,), "|O") + bytes(16)
    write_members(model_path, contents)
    assert_refused(model_path, "dtype object")


def test_the_cli_exits_2_in_one_line_on_a_crafted_file(model_path, tmp_path, capsys):
    rewrite(model_path, manifest={"params": [], "attributes": {}})
    np.save(tmp_path / "x.npy", np.zeros((1, 4)))
    code = main(["predict", str(model_path), str(tmp_path / "x.npy")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- item 14: validation


def test_classes_longer_than_the_rows_of_coef_are_refused(model_path):
    rewrite(model_path, **{key_of(model_path, "classes_"): np.arange(4)})
    assert_refused(model_path, "4 classes")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_coef_is_refused(model_path, value):
    coef = np.load(model_path)[key_of(model_path, "coef_")]
    rewrite(model_path, **{key_of(model_path, "coef_"): np.full_like(coef, value)})
    assert_refused(model_path, "coef_ holds non-finite values")


@pytest.mark.parametrize(
    "key, value, needle",
    [
        ("coef_", np.zeros((3, 4), np.int64), "float32 or float64"),
        ("coef_", np.zeros(12), "coef_ of shape (12,)"),
        ("coef_", np.zeros((3, 5)), "4 features"),
        ("intercept_", np.zeros(2), "intercept_ of shape (2,)"),
        ("intercept_", np.zeros(3, np.float64), "intercept_ is float64"),
        ("classes_", np.array([2, 1, 0]), "sorted and unique"),
        ("classes_", np.array([0, 0, 1]), "sorted and unique"),
        ("classes_", np.zeros((3, 1)), "classes_ must be an array"),
    ],
)
def test_inconsistent_fitted_arrays_are_refused(model_path, key, value, needle):
    rewrite(model_path, **{key_of(model_path, key): value})
    assert_refused(model_path, needle)


@pytest.mark.parametrize(
    "key, value",
    [("n_iter_", -1), ("n_iter_", "3"), ("best_epoch_", 1.5), ("history_", [1, 2]),
     ("history_", {"__dict__": [["train_loss", [1.0, "x"]]]}),
     ("history_", {"__dict__": [["train_loss", [1.0]], ["val_loss", []]]})],
)
def test_bad_counters_and_history_are_refused(model_path, key, value):
    manifest = manifest_of(model_path)
    manifest["attributes"][key] = value
    rewrite(model_path, manifest=manifest)
    assert_refused(model_path, key)


@pytest.mark.parametrize("name", ["predict", "fit", "__class__", "_fit_data", "coef", "max_epochs"])
def test_attributes_that_are_not_fitted_attributes_are_refused(model_path, name):
    manifest = manifest_of(model_path)
    manifest["attributes"][name] = 1
    rewrite(model_path, manifest=manifest)
    assert_refused(model_path, repr(name))


@pytest.mark.parametrize(
    "param, value",
    [
        ("max_epochs", "lots"),
        ("max_epochs", 0),
        ("batch_size", -3),
        ("learning_rate", -1.0),
        ("l2", -1.0),
        ("shuffle", "yes"),
        ("fit_intercept", "no"),
        ("optimizer", "teleport"),  # the learner's message names the value
        ("random_state", -1),
        ("validation_fraction", 2.0),
        ("class_weight", "some"),
    ],
)
@pytest.mark.parametrize("fitted", [True, False])
def test_invalid_hyper_parameters_are_refused(data, tmp_path, param, value, fitted):
    est = SoftmaxRegression(max_epochs=1, random_state=0)
    path = (est.fit(*data) if fitted else est).save(tmp_path / "m.npz")
    manifest = manifest_of(path)
    manifest["params"][param] = value
    rewrite(path, manifest=manifest)
    assert_refused(path, "teleport" if param == "optimizer" else param)


@pytest.mark.parametrize(
    "param, value",
    [("C", -1.0), ("C", "big"), ("max_iter", "lots"), ("solver", "teleport"), ("penalty", "l1"),
     ("tol", -1.0), ("warm_start", 3)],
)
def test_invalid_logistic_hyper_parameters_are_refused(data, tmp_path, param, value):
    X, y = data
    path = LogisticRegression().fit(X, y % 2).save(tmp_path / "m.npz")
    manifest = manifest_of(path)
    manifest["params"][param] = value
    rewrite(path, manifest=manifest)
    assert_refused(path, param)


@pytest.mark.parametrize(
    "class_weight, needle",
    [({"__dict__": [[99, 2.0]]}, "label 99"), ({"__dict__": [[0, -1.0]]}, "class_weight[0]"),
     ({"__dict__": [[0, 0.0], [1, 0.0], [2, 0.0]]}, "zero for every sample")],
)
def test_class_weights_that_do_not_fit_the_classes_are_refused(model_path, class_weight, needle):
    manifest = manifest_of(model_path)
    manifest["params"]["class_weight"] = class_weight
    rewrite(model_path, manifest=manifest)
    assert_refused(model_path, needle)


def test_valid_models_still_load_and_predict(data, tmp_path):
    X, y = data
    for est in (
        LogisticRegression(penalty=None),
        LogisticRegression(C=0.1),
        SoftmaxRegression(optimizer="adam", max_epochs=2, random_state=1, class_weight="balanced"),
    ):
        est.fit(X, y)
        loaded = load(est.save(tmp_path / "m.npz"))
        np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
        assert "_fit_data" not in vars(loaded)


# ----------------------------------------------------------------------------- item 18: saving


@pytest.fixture
def umask():
    previous = os.umask(0o022)
    try:
        yield lambda mask: os.umask(mask)
    finally:
        os.umask(previous)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_a_new_file_gets_the_mode_numpy_would_give(data, tmp_path, umask, mask):
    umask(mask)
    path = SoftmaxRegression(max_epochs=1).fit(*data).save(tmp_path / "m.npz")
    np.savez(tmp_path / "numpy.npz", a=np.zeros(1))
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "numpy.npz").st_mode) == 0o666 & ~mask


def test_an_existing_file_keeps_its_mode(data, tmp_path, umask):
    path = tmp_path / "m.npz"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    save(SoftmaxRegression(), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert isinstance(load(path), SoftmaxRegression)


def test_a_save_error_names_the_path_asked_for(tmp_path):
    path = tmp_path / "no-such-dir" / "m.npz"
    with pytest.raises(FileNotFoundError) as info:
        SoftmaxRegression().save(path)
    assert info.value.filename == str(path)
    assert str(path) in str(info.value) and ".tmp" not in str(info.value)


def test_a_write_error_names_the_path_and_leaves_no_file(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(OSError, match="No space left") as info:
        SoftmaxRegression().save(tmp_path / "m.npz")
    assert info.value.filename == str(tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links")
def test_saving_over_a_symlink_writes_through_to_its_target_like_numpy(data, tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "target.npz"
    target.write_bytes(b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    assert save(SoftmaxRegression(max_epochs=1).fit(*data), link) == str(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert isinstance(load(target), SoftmaxRegression)
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["target.npz"]
    # numpy does the same
    np.savez(link, a=np.zeros(1))
    assert link.is_symlink()


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links")
def test_saving_over_a_dangling_symlink_creates_its_target(tmp_path):
    target = tmp_path / "target.npz"
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    save(SoftmaxRegression(), link)
    assert link.is_symlink() and isinstance(load(target), SoftmaxRegression)


def test_round_trip_still_exact(data, tmp_path):
    est = SoftmaxRegression(max_epochs=2, random_state=0).fit(*data)
    loaded = fastsoftmax.load(est.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.coef_, est.coef_)
