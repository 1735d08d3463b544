"""Learners and schedules against hand-computed updates.

The expected numbers below were worked out by hand (or with a pocket
calculator) from the update formulas of each learner, on the tiny problem
p0 = [1, -2], g1 = [0.5, -1], g2 = [1, 2]: two steps.
"""

import pickle
import tracemalloc

import numpy as np
import pytest

from fastsoftmax import learners
from fastsoftmax.learners import (
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Constant,
    ExponentialDecay,
    InverseScaling,
    Momentum,
    Nesterov,
    RMSProp,
    StepDecay,
    get_learner,
    get_schedule,
)

P0 = [1.0, -2.0]
G1 = [0.5, -1.0]
G2 = [1.0, 2.0]

# learner, p after step 1, p after step 2, expected state after step 2
HAND_CASES = {
    # p -= 0.1 g
    "sgd": (SGD(learning_rate=0.1), [0.95, -1.9], [0.85, -2.1], {}),
    # v1 = -0.1 g1 = [-0.05, 0.1]; v2 = 0.5 v1 - 0.1 g2 = [-0.125, -0.15]
    "momentum": (
        Momentum(learning_rate=0.1, momentum=0.5),
        [0.95, -1.9],
        [0.825, -2.05],
        {"velocity": [-0.125, -0.15]},
    ),
    # p1 = p0 + 1.5 v1 = [0.925, -1.85];
    # p2 = p1 - 0.5 v1 + 1.5 v2 = p1 + [0.025 - 0.1875, -0.05 - 0.225]
    "nesterov": (
        Nesterov(learning_rate=0.1, momentum=0.5),
        [0.925, -1.85],
        [0.7625, -2.125],
        {"velocity": [-0.125, -0.15]},
    ),
    # s1 = [0.25, 1]: p -= 0.1 * [0.5/0.5, -1/1];
    # s2 = [1.25, 5]: p -= 0.1 * [1/sqrt(1.25), 2/sqrt(5)] = 0.1 * 0.894427191
    "adagrad": (
        Adagrad(learning_rate=0.1, eps=1e-8),
        [0.9, -1.9],
        [0.9 - 0.0894427191, -1.9 - 0.0894427191],
        {"sum_sq": [1.25, 5.0]},
    ),
    # rho = 0.5, eps = 1: coordinate 0: Eg1 = 0.125, dx1 = -0.5/sqrt(1.125),
    # Edx1 = dx1^2/2 = 1/9, Eg2 = 0.5625, dx2 = -sqrt(10/9)/1.25
    "adadelta": (
        Adadelta(learning_rate=1.0, rho=0.5, eps=1.0),
        [0.5285954792089682, -1.1835034190722737],
        [-0.3146785635025997, -2.464528649512971],
        {"sq_grad_avg": [0.5625, 2.25], "sq_update_avg": [0.4111111111111111, 0.9871794871794876]},
    ),
    # rho = 0.5: Eg1 = [0.125, 0.5], step 0.1 * g/sqrt(Eg) = +-0.1 sqrt(2);
    # Eg2 = [0.5625, 2.25], step 0.1 * [1/0.75, 2/1.5] = 0.1333...
    "rmsprop": (
        RMSProp(learning_rate=0.1, rho=0.5, eps=1e-8),
        [1 - 0.1414213562373095, -2 + 0.1414213562373095],
        [
            1 - 0.1414213562373095 - 0.13333333333333333,
            -2 + 0.1414213562373095 - 0.13333333333333333,
        ],
        {"sq_grad_avg": [0.5625, 2.25]},
    ),
    # b1 = 0.5, b2 = 0.75: step 1 moves by lr * sign(g); step 2:
    # m2 = [0.625, 0.75], v2 = [0.296875, 1.1875], c1 = 0.75, c2 = 0.4375
    "adam": (
        Adam(learning_rate=0.1, beta1=0.5, beta2=0.75, eps=1e-8),
        [0.9, -1.9],
        [0.798837170222186, -1.9606976978666883],
        {"m": [0.625, 0.75], "v": [0.296875, 1.1875]},
    ),
}


@pytest.mark.parametrize("name", list(HAND_CASES))
def test_hand_computed_two_steps(name):
    opt, after1, after2, state = HAND_CASES[name]
    opt.reset()
    p = np.array(P0)
    g1, g2 = np.array(G1), np.array(G2)
    g1_copy = g1.copy()
    opt.step([p], [g1])
    np.testing.assert_allclose(p, after1, rtol=1e-7, atol=1e-12)
    opt.step([p], [g2])
    np.testing.assert_allclose(p, after2, rtol=1e-7, atol=1e-12)
    np.testing.assert_array_equal(g1, g1_copy)  # gradients are not modified
    assert opt.t == 2
    assert opt.kind == name
    assert sorted(opt.state[0]) == sorted(state)
    for key, expected in state.items():
        np.testing.assert_allclose(opt.state[0][key], expected, rtol=1e-7)


@pytest.mark.parametrize("name", list(HAND_CASES))
def test_several_params_updated_independently(name):
    """Two params in one step give the same result as two learners on one each."""
    p = np.array(P0)
    q = np.array([[3.0, 0.5], [-1.0, 2.0]])
    gq = np.array([[0.1, -0.2], [0.3, 0.0]])
    opt = get_learner(**HAND_CASES[name][0].get_config())
    opt.step([p, q], [np.array(G1), gq])
    ref_p = np.array(P0)
    p_only = get_learner(**opt.get_config())
    q_only = get_learner(**opt.get_config())
    q_ref = np.array([[3.0, 0.5], [-1.0, 2.0]])
    p_only.step([ref_p], [np.array(G1)])
    q_only.step([q_ref], [gq])
    np.testing.assert_allclose(p, ref_p, rtol=1e-12)
    np.testing.assert_allclose(q, q_ref, rtol=1e-12)
    assert [s[k].shape for s in opt.state for k in s] == [
        a.shape for s in p_only.state + q_only.state for a in s.values()
    ]


@pytest.mark.parametrize("name", list(learners.LEARNERS))
def test_float32_kept(name):
    opt = get_learner(name)
    W = np.ones((3, 2), dtype=np.float32)
    b = np.zeros(2, dtype=np.float32)
    for _ in range(3):
        # a float64 gradient must not upcast the float32 parameter or state
        opt.step([W, b], [np.full((3, 2), 0.5), np.full(2, -0.5, dtype=np.float32)])
    assert W.dtype == np.float32 and b.dtype == np.float32
    assert len(opt.state) == 2
    for p, state in zip((W, b), opt.state):
        for arr in state.values():
            assert arr.dtype == np.float32
            assert arr.shape == p.shape
    assert np.all(W < 1) and np.all(b > 0)  # moved against the gradient


@pytest.mark.parametrize("name", list(learners.LEARNERS))
def test_step_allocates_nothing_in_steady_state(name):
    opt = get_learner(name)
    p = np.zeros(50_000)
    g = np.full(50_000, 0.25)
    opt.step([p], [g])  # creates the state
    tracemalloc.start()
    try:
        opt.step([p], [g])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < p.nbytes // 10, f"{name} allocated {peak} bytes in a step"


def test_state_names_and_reset():
    expected = {
        "sgd": set(),
        "momentum": {"velocity"},
        "nesterov": {"velocity"},
        "adagrad": {"sum_sq"},
        "adadelta": {"sq_grad_avg", "sq_update_avg"},
        "rmsprop": {"sq_grad_avg"},
        "adam": {"m", "v"},
    }
    assert set(learners.LEARNERS) == set(expected)
    for name, names in expected.items():
        opt = get_learner(name)
        assert opt.state is None and opt.t == 0
        p = np.zeros((2, 3))
        opt.init_state([p])
        assert set(opt.state[0]) == names
        assert all(np.array_equal(a, np.zeros((2, 3))) for a in opt.state[0].values())
        opt.step([p], [np.ones((2, 3))])
        assert opt.t == 1
        opt.reset()
        assert opt.state is None and opt.t == 0


def test_defaults_and_hyperparameters():
    assert SGD().learning_rate == 0.1
    assert Momentum().hyperparameters() == {"momentum": 0.9}
    assert Nesterov().learning_rate == 0.01
    assert Adagrad().learning_rate == 0.01 and Adagrad().hyperparameters() == {"eps": 1e-8}
    assert Adadelta().learning_rate == 1.0
    assert Adadelta().hyperparameters() == {"rho": 0.95, "eps": 1e-6}
    assert RMSProp().learning_rate == 1e-3
    assert RMSProp().hyperparameters() == {"rho": 0.9, "eps": 1e-8}
    assert Adam().learning_rate == 1e-3
    assert Adam().hyperparameters() == {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    assert isinstance(SGD().schedule, Constant)


def test_schedules():
    assert [Constant()(0.5, e) for e in (0, 3, 100)] == [0.5, 0.5, 0.5]
    s = StepDecay(step_size=3, gamma=0.5)
    assert [s(2.0, e) for e in range(7)] == [2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 0.5]
    s = ExponentialDecay(gamma=0.9)
    assert s(1.0, 0) == 1.0
    assert s(1.0, 2) == pytest.approx(0.81)
    s = InverseScaling(power_t=0.5)
    assert s(1.0, 0) == 1.0
    assert s(1.0, 3) == pytest.approx(0.5)  # 1 / sqrt(4)
    assert InverseScaling(power_t=0)(0.3, 9) == 0.3


def test_learner_uses_schedule_per_epoch():
    opt = SGD(learning_rate=1.0, schedule="step")  # step_size 10, gamma 0.1
    assert opt.lr_at(9) == 1.0
    assert opt.lr_at(10) == pytest.approx(0.1)
    p = np.array([0.0])
    opt.step([p], [np.array([1.0])], epoch=10)  # lr 0.1
    opt.step([p], [np.array([1.0])], epoch=0)  # lr 1.0
    np.testing.assert_allclose(p, [-1.1])
    opt = Adam(learning_rate=0.1, schedule=ExponentialDecay(0.5))
    q = np.array([0.0])
    opt.step([q], [np.array([2.0])], epoch=1)  # Adam's first step moves by lr = 0.05
    np.testing.assert_allclose(q, [-0.05])


@pytest.mark.parametrize(
    "name,cls,kwargs",
    [
        ("constant", Constant, {}),
        ("step", StepDecay, {"step_size": 4}),
        ("exponential", ExponentialDecay, {"gamma": 0.8}),
        ("invscaling", InverseScaling, {"power_t": 0.25}),
        ("  Step ", StepDecay, {}),
    ],
)
def test_get_schedule_by_name(name, cls, kwargs):
    s = get_schedule(name, **kwargs)
    assert type(s) is cls
    assert get_schedule(s.get_config()) == s
    assert get_schedule(s) is s
    if not kwargs:
        assert SGD(schedule=name).schedule == cls()


def test_get_schedule_errors():
    with pytest.raises(ValueError, match="unknown schedule 'cosine'.*'constant', 'step'"):
        get_schedule("cosine")
    with pytest.raises(TypeError, match="schedule must be"):
        get_schedule(0.5)
    with pytest.raises(ValueError, match="gamma must be in \\(0, 1\\], got 0.0"):
        StepDecay(gamma=0.0)
    with pytest.raises(ValueError, match="gamma must be in"):
        ExponentialDecay(gamma=1.5)
    with pytest.raises(ValueError, match="step_size must be >= 1, got 0"):
        StepDecay(step_size=0)
    with pytest.raises(TypeError, match="step_size must be an integer"):
        StepDecay(step_size=2.5)
    with pytest.raises(ValueError, match="power_t must be >= 0"):
        InverseScaling(power_t=-1)
    with pytest.raises(ValueError, match="epoch must be >= 0, got -1"):
        Constant()(0.1, -1)
    with pytest.raises(TypeError, match="epoch must be an integer"):
        SGD().lr_at(1.5)
    with pytest.raises(TypeError, match="with a Schedule instance"):
        get_schedule(Constant(), gamma=0.5)


def test_get_learner():
    assert isinstance(get_learner("ADAM"), Adam)
    assert isinstance(get_learner(), SGD)
    opt = Momentum()
    assert get_learner(opt) is opt
    assert isinstance(get_learner(Nesterov, momentum=0.5), Nesterov)
    step2 = {"kind": "step", "step_size": 2}
    opt = get_learner("rmsprop", learning_rate=0.5, rho=0.5, schedule=step2)
    assert (opt.learning_rate, opt.rho, opt.schedule) == (0.5, 0.5, StepDecay(2))
    with pytest.raises(ValueError, match="unknown learner 'lbfgs'; expected one of 'sgd', 'mom"):
        get_learner("lbfgs")
    with pytest.raises(TypeError, match="invalid parameters for learner 'sgd'.*momentum"):
        get_learner("sgd", momentum=0.9)
    with pytest.raises(TypeError, match="with a Learner instance"):
        get_learner(Adam(), learning_rate=0.1)
    with pytest.raises(TypeError, match="learner must be a Learner instance or a name"):
        get_learner(3)


@pytest.mark.parametrize(
    "factory,message",
    [
        (lambda: SGD(learning_rate=0), "learning_rate must be > 0, got 0.0"),
        (lambda: Adam(learning_rate=-1e-3), "learning_rate must be > 0"),
        (lambda: SGD(learning_rate=float("nan")), "learning_rate must be finite"),
        (lambda: Momentum(momentum=1.0), "momentum must be in \\[0, 1\\), got 1.0"),
        (lambda: Nesterov(momentum=-0.1), "momentum must be in \\[0, 1\\)"),
        (lambda: Adagrad(eps=0), "eps must be > 0"),
        (lambda: Adadelta(rho=1.0), "rho must be in \\[0, 1\\)"),
        (lambda: RMSProp(rho=1.5), "rho must be in \\[0, 1\\)"),
        (lambda: Adam(beta1=1.0), "beta1 must be in \\[0, 1\\)"),
        (lambda: Adam(beta2=-0.5), "beta2 must be in \\[0, 1\\)"),
        (lambda: Adam(eps=-1e-8), "eps must be > 0"),
    ],
)
def test_bad_hyperparameters_raise(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


def test_bad_hyperparameter_types_raise():
    with pytest.raises(TypeError, match="learning_rate must be a real number, got str"):
        SGD(learning_rate="0.1")
    with pytest.raises(TypeError, match="momentum must be a real number"):
        Momentum(momentum=True)


def test_bad_step_arguments_raise():
    opt = SGD()
    p = np.zeros(3)
    with pytest.raises(ValueError, match="one gradient per parameter: got 1 params and 2 grads"):
        opt.step([p], [np.zeros(3), np.zeros(3)])
    message = "grads\\[0\\] has shape \\(2,\\) but params\\[0\\] has shape \\(3,\\)"
    with pytest.raises(ValueError, match=message):
        opt.step([p], [np.zeros(2)])
    with pytest.raises(TypeError, match="params\\[0\\] must be float32 or float64"):
        opt.step([np.zeros(3, dtype=int)], [np.zeros(3)])
    with pytest.raises(TypeError, match="params\\[0\\] must be a numpy array"):
        opt.step([[0.0, 0.0]], [np.zeros(2)])
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        opt.step([ro], [np.zeros(3)])


def test_pickle_keeps_state():
    opt = Adam(learning_rate=0.1)
    p = np.array([1.0, 2.0])
    opt.step([p], [np.array([0.5, 0.5])])
    clone = pickle.loads(pickle.dumps(opt))
    q = p.copy()
    opt.step([p], [np.array([1.0, -1.0])])
    clone.step([q], [np.array([1.0, -1.0])])
    np.testing.assert_array_equal(p, q)
    assert clone.t == 2
    assert "Adam(learning_rate=0.1" in repr(clone)
