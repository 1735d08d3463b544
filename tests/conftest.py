"""Shared fixtures: a seeded random generator and backend selection with skipping.

Kept deliberately small: each test file defines the fixtures only it needs.
"""

import os

import numpy as np
import pytest

import fastsoftmax

# Tests that probe crashes run `python -c` in a subprocess, which puts the working
# directory first on sys.path: from a clone's root that is the source tree, without the
# compiled extension.  PYTHONSAFEPATH (Python >= 3.11) makes the subprocesses import the
# installed package, as the tests themselves do.
os.environ["PYTHONSAFEPATH"] = "1"
import sys  # noqa: E402
from fastsoftmax._backends import BACKEND_NAMES, get_module


def require_backend(name):
    """Return the kernel module of backend ``name``; skip the test if it is not available."""
    try:
        return get_module(name)
    except ImportError as exc:  # e.g. the Cython extension is not built here
        pytest.skip(str(exc))


@pytest.fixture(autouse=True, scope="session")
def _single_threaded_blas():
    """Tests use small problems: BLAS threads would only contend for the cores."""
    try:
        import threadpoolctl
    except ImportError:  # installed with scikit-learn; without it BLAS keeps its threads
        yield
        return
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        yield


@pytest.fixture(autouse=True, scope="session")
def _outside_the_source_tree(tmp_path_factory):
    """Python 3.10 has no PYTHONSAFEPATH: run the session from a temporary folder instead."""
    if sys.version_info >= (3, 11) or not os.path.isfile(os.path.join("fastsoftmax", "__init__.py")):
        yield
        return
    before = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    try:
        yield
    finally:
        os.chdir(before)


@pytest.fixture
def rng():
    """A NumPy generator with a fixed seed, fresh for every test."""
    return np.random.default_rng(20240229)


@pytest.fixture(params=BACKEND_NAMES)
def backend_name(request):
    """Every backend name in turn; tests of an unavailable backend are skipped."""
    require_backend(request.param)
    return request.param


@pytest.fixture
def restore_num_threads():
    """Let a test call ``fastsoftmax.set_num_threads`` and restore the setting afterwards."""
    before = fastsoftmax.get_num_threads()
    yield
    fastsoftmax.set_num_threads(before)


# Tests whose reference is another library's behaviour, with the oldest release of that
# library which behaves as fastsoftmax does (fastsoftmax follows the current releases: SciPy's
# logsumexp semantics of 1.17, scikit-learn's signatures, warnings and solver settings of
# 1.8).  With an older release installed, the comparison says nothing about fastsoftmax, so
# these tests are skipped, with the reason; the minimum-versions CI run
# (.ci/min-versions.txt) has them.  Entries: (test file, test function, texts that the
# test's id must all contain: the parameters that differ).
_REFERENCE_VERSIONS = {
    "scipy": ("1.17", [
        # the cases that fail with SciPy 1.10 - 1.15 (older scipy returns arrays for 0-d
        # input, rejects booleans, loses log1p accuracy near 0, differs on signs)
        ("test_scipy_compat.py", "test_every_axis_form", ("-()-", "logsumexp")),
        ("test_scipy_compat.py", "test_logsumexp_keepdims", ("-()-",)),
        ("test_scipy_compat.py", "test_python_scalars_and_lists", ("logsumexp",)),
        *(("test_scipy_compat.py", "test_logsumexp_b_and_sign", (f"-{n}-",)) for n in (8, 9, 11, 12)),
        ("test_scipy_compat.py", "test_logsumexp_sign_without_b", ()),
        ("test_scipy_compat.py", "test_logsumexp_near_zero_keeps_relative_accuracy", ()),
        # complex input: older scipy picks another branch of the imaginary part
        ("test_torch_options.py", "test_complex_logsumexp_equals_scipy", ()),
        ("test_torch_options.py", "test_complex_logsumexp_edge_values_equal_scipy", ()),
        # fastsoftmax._lbfgs takes the steps (and gives the messages) of scipy's C L-BFGS-B;
        # older scipy ran the Fortran code, with other messages and rounding
        *(("test_sparse_lbfgs.py", name, ()) for name in (
            "test_max_iter_as_scipy", "test_rosenbrock_same_path_as_scipy",
            "test_logistic_same_iterates_as_scipy", "test_relative_reduction_stop_as_scipy",
            "test_minimize_smooth_uses_it_for_wide_problems",
            "test_logistic_regression_wide_matches_sklearn",
            "test_preconditioned_wide_reaches_sklearn_optimum",
        )),
    ]),
    # mypy reads NumPy's type stubs: the annotations are checked against NumPy 2's
    "numpy": ("2.0", [("test_typing.py", "test_mypy_passes_on_the_package", ())]),
    "sklearn": ("1.8", [
        *(("test_sklearn_api.py", name, ()) for name in (
            "test_penalty_deprecation_path_is_sklearns", "test_signature_is_sklearns",
            "test_sklearn_params_construct_ours",
        )),
        *(("test_sklearn_cv.py", name, ()) for name in (
            "test_attributes_have_sklearns_layout", "test_elastic_net_grid_matches_sklearn_saga",
            "test_scores_and_choice_match_sklearn", "test_signature_is_sklearns",
            "test_warnings_and_errors_are_sklearns", "test_folds_missing_classes_use_all_classes",
        )),
        *(("test_sklearn_penalties.py", name, ()) for name in (
            "test_binary_matches_saga", "test_multinomial_blobs_matches_saga",
            "test_multinomial_digits_matches_saga", "test_no_intercept_matches_saga",
            "test_sample_weight_matches_saga",
        )),
        ("test_sklearn_upstream.py", "test_sklearn_test_logistic_passes_on_fastsoftmax", ()),
        *(("test_logistic_regression.py", name, ()) for name in (
            "test_matches_sklearn", "test_class_weight_matches_sklearn",
            "test_binary_class_weight_and_sample_weight_match_sklearn",
            "test_no_intercept_matches_sklearn", "test_no_penalty_matches_sklearn",
            "test_string_labels_match_sklearn", "test_default_settings_same_path",
        )),
        ("test_sparse_estimators.py", "test_logistic_regression_sparse_equals_dense_and_sklearn", ()),
        ("test_estimators.py", "test_sklearn_compatible", ()),  # the older check_estimator
        # scikit-learn's newton solvers as of 1.8 (multinomial newton-cholesky needs >= 1.6)
        *(("test_sklearn_newton.py", name, ()) for name in (
            "test_same_coefficients_and_iterations_as_sklearn",
            "test_sample_and_class_weights_match_sklearn",
            "test_float32_stays_float32_and_matches_sklearn",
            "test_singular_hessian_falls_back_to_lbfgs_as_sklearn",
        )),
        # LogisticRegressionCV's routing as scikit-learn's (owner names, messages)
        *(("test_sklearn_cv_routing.py", name, ()) for name in (
            "test_sample_weight_reaches_the_scorer_only_when_requested",
            "test_without_routing_sample_weight_is_the_scorers_too",
            "test_groups_reach_the_splitter",
        )),
    ]),
}


def _older_than(module_name, version):
    try:
        module = __import__(module_name)
    except ImportError:
        return None  # the tests skip themselves
    installed = tuple(int(part) for part in module.__version__.split(".")[:2])
    return module.__version__ if installed < tuple(int(p) for p in version.split(".")) else None


def pytest_collection_modifyitems(config, items):
    for module_name, (version, tests) in _REFERENCE_VERSIONS.items():
        installed = _older_than(module_name, version)
        if installed is None:
            continue
        skip = pytest.mark.skip(
            reason=f"compares with {module_name} >= {version}, whose behaviour fastsoftmax "
            f"follows; {module_name} {installed} is installed"
        )
        for item in items:
            name = getattr(item, "originalname", item.name)
            if any(item.path.name == file and name == function
                   and all(text in item.name for text in texts)
                   for file, function, texts in tests):
                item.add_marker(skip)
