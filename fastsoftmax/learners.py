"""Learners: first-order optimisers that update parameters in place.

Every learner follows one contract, so the :class:`~fastsoftmax.Trainer` and
the estimators can use any of them:

``kind``
    Short name (``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adagrad"``,
    ``"adadelta"``, ``"rmsprop"``, ``"adam"``).
``learning_rate``, ``schedule``, ``lr_at(epoch)``
    The base learning rate, the per-epoch schedule applied to it, and the
    learning rate in force in a given (0-based) epoch.
``hyperparameters()``
    The other numeric hyper-parameters as a ``dict`` of floats.
``t``
    Number of update steps taken (one :meth:`~Learner.step` call is one step).
``state``
    ``None`` before the first step, then a list with one ``dict`` per
    parameter mapping a state name to an array of the parameter's shape and
    dtype, created by :meth:`~Learner.init_state`.
``step(params, grads, epoch=0)``
    Update every parameter in place from its gradient.
``reset()``
    Forget the state and the step count.

Updates are done with in-place ufuncs into preallocated scratch buffers, so a
step allocates no array once the state exists, and a float32 parameter is
updated in float32 (its state is float32 and the scalars are cast to float32).

The built-in learners form :data:`LEARNER_TABLE`, one row a learner: its
``kind``, its ``code`` in the compiled epoch kernels, the names of its state
arrays and of its hyper-parameters, each declared once, in the learner's class.
The update rules here are the reference; compiled copies of them, with the
same floating-point operations in the same order, run whole epochs in
``_learner_update`` of :mod:`fastsoftmax._backends.numba_epoch` and of
``src_cython/_cython_kernels.pyx`` (the ``cython`` backend), which switch on
the ``code`` and read the hyper-parameters as one float64 array in the order
of the row.  Adding a learner means its class here, listed in the table, and
a branch in each of those two switches; ``tests/test_train_epoch.py`` runs
every row of the table through both and demands the same steps as
:meth:`Learner.step`.

Learning-rate schedules (:class:`Constant`, :class:`StepDecay`,
:class:`ExponentialDecay`, :class:`InverseScaling`) map the base learning
rate and the epoch number to the learning rate of that epoch; learners accept
a schedule instance or its name (``"constant"``, ``"step"``,
``"exponential"``, ``"invscaling"``).

Examples
--------
>>> import numpy as np
>>> from fastsoftmax.learners import get_learner
>>> w = np.array([1.0, -2.0])
>>> opt = get_learner("momentum", learning_rate=0.1, momentum=0.5)
>>> opt.step([w], [np.array([1.0, 1.0])])
>>> w
array([ 0.9, -2.1])
>>> opt.step([w], [np.array([1.0, 1.0])])
>>> w
array([ 0.75, -2.25])
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validation import check_epoch as _epoch
from ._validation import check_finite_real as _real
from ._validation import check_int as _integer
from ._validation import check_positive as _positive
from ._validation import check_unit_interval as _unit_interval

__all__ = [
    "Learner",
    "SGD",
    "Momentum",
    "Nesterov",
    "Adagrad",
    "Adadelta",
    "RMSProp",
    "Adam",
    "Schedule",
    "Constant",
    "StepDecay",
    "ExponentialDecay",
    "InverseScaling",
    "get_learner",
    "get_schedule",
    "LEARNERS",
    "LEARNER_TABLE",
    "LearnerSpec",
    "learner_spec",
    "SCHEDULES",
    "l1_pseudo_gradient",
    "l1_orthant_project",
]


# --------------------------------------------------------------------------
# learning-rate schedules


class Schedule:
    """Base class of the per-epoch learning-rate schedules.

    A schedule is a callable ``schedule(learning_rate, epoch) -> float`` where
    ``epoch`` counts from 0; subclasses implement :meth:`factor`.
    """

    kind: str | None = None

    def factor(self, epoch: int) -> float:  # pragma: no cover - abstract
        """Multiplier of the base learning rate in ``epoch`` (0-based)."""
        raise NotImplementedError

    def __call__(self, learning_rate: float, epoch: int) -> float:
        return float(learning_rate) * self.factor(_epoch(epoch))

    def get_config(self) -> dict[str, Any]:
        """Plain description ``{"kind": ..., **parameters}`` (see :func:`get_schedule`)."""
        return {"kind": self.kind, **self._params()}

    def _params(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._params() == other._params()

    def __hash__(self) -> int:
        return hash((type(self), tuple(self._params().items())))


# what get_schedule accepts
_ScheduleLike: TypeAlias = "str | dict[str, Any] | Schedule | None"


class Constant(Schedule):
    """Constant learning rate: ``lr(epoch) = lr``.

    Examples
    --------
    >>> from fastsoftmax.learners import Constant
    >>> Constant()(0.1, 7)
    0.1
    """

    kind = "constant"

    def factor(self, epoch: int) -> float:
        return 1.0


class StepDecay(Schedule):
    """Step decay: ``lr(epoch) = lr * gamma ** (epoch // step_size)``.

    Parameters
    ----------
    step_size : int, default=10
        Number of epochs between two decays (as PyTorch's ``StepLR``).
    gamma : float, default=0.1
        Multiplicative decay, in (0, 1].

    Examples
    --------
    >>> from fastsoftmax.learners import StepDecay
    >>> s = StepDecay(step_size=2, gamma=0.5)
    >>> [s(1.0, e) for e in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    kind = "step"

    def __init__(self, step_size: int = 10, gamma: float = 0.1) -> None:
        self.step_size = _integer("step_size", step_size, 1)
        self.gamma = _decay("gamma", gamma)

    def factor(self, epoch: int) -> float:
        return self.gamma ** (epoch // self.step_size)

    def _params(self) -> dict[str, Any]:
        return {"step_size": self.step_size, "gamma": self.gamma}


def _decay(name: str, value: float) -> float:
    value = _real(name, value)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return value


class ExponentialDecay(Schedule):
    """Exponential decay: ``lr(epoch) = lr * gamma ** epoch``.

    Parameters
    ----------
    gamma : float, default=0.95
        Per-epoch multiplicative decay, in (0, 1].

    Examples
    --------
    >>> from fastsoftmax.learners import ExponentialDecay
    >>> s = ExponentialDecay(gamma=0.5)
    >>> [s(1.0, e) for e in range(4)]
    [1.0, 0.5, 0.25, 0.125]
    """

    kind = "exponential"

    def __init__(self, gamma: float = 0.95) -> None:
        self.gamma = _decay("gamma", gamma)

    def factor(self, epoch: int) -> float:
        return self.gamma**epoch

    def _params(self) -> dict[str, Any]:
        return {"gamma": self.gamma}


class InverseScaling(Schedule):
    """Inverse scaling: ``lr(epoch) = lr / (epoch + 1) ** power_t``.

    This is scikit-learn's ``"invscaling"`` schedule with its time step
    ``t = epoch + 1`` counted in epochs.

    Parameters
    ----------
    power_t : float, default=0.5
        Exponent, >= 0 (0 gives a constant rate).

    Examples
    --------
    >>> from fastsoftmax.learners import InverseScaling
    >>> s = InverseScaling(power_t=1.0)
    >>> [s(1.0, e) for e in range(4)]
    [1.0, 0.5, 0.3333333333333333, 0.25]
    """

    kind = "invscaling"

    def __init__(self, power_t: float = 0.5) -> None:
        power_t = _real("power_t", power_t)
        if power_t < 0:
            raise ValueError(f"power_t must be >= 0, got {power_t!r}")
        self.power_t = power_t

    def factor(self, epoch: int) -> float:
        return 1.0 / (epoch + 1.0) ** self.power_t

    def _params(self) -> dict[str, Any]:
        return {"power_t": self.power_t}


#: Schedule name -> class.
SCHEDULES = {
    cls.kind: cls for cls in (Constant, StepDecay, ExponentialDecay, InverseScaling)
}


def get_schedule(schedule: _ScheduleLike = None, **kwargs: Any) -> Schedule:
    """Return a schedule from an instance, a name or a config dict.

    Parameters
    ----------
    schedule : Schedule, str, dict or None
        A :class:`Schedule` (returned as is), one of the names ``"constant"``,
        ``"step"``, ``"exponential"``, ``"invscaling"``, a dict as returned by
        :meth:`Schedule.get_config`, or ``None`` for :class:`Constant`.
    **kwargs
        Parameters of the named schedule (e.g. ``gamma``, ``step_size``).

    Examples
    --------
    >>> from fastsoftmax.learners import get_schedule
    >>> get_schedule("step", step_size=3)
    StepDecay(step_size=3, gamma=0.1)
    >>> get_schedule({"kind": "exponential", "gamma": 0.5})
    ExponentialDecay(gamma=0.5)
    """
    if schedule is None:
        schedule = "constant"
    if isinstance(schedule, dict):
        config = dict(schedule)
        if "kind" not in config:
            raise ValueError(f"a schedule dict needs a 'kind' key, got keys {sorted(config)}")
        return get_schedule(config.pop("kind"), **config, **kwargs)
    if isinstance(schedule, Schedule):
        if kwargs:
            raise TypeError(
                f"schedule parameters {sorted(kwargs)} given with a Schedule instance; "
                "pass either an instance or a name with parameters"
            )
        return schedule
    if isinstance(schedule, str):
        key = schedule.strip().lower()
        if key not in SCHEDULES:
            raise ValueError(
                f"unknown schedule {schedule!r}; expected one of "
                f"{', '.join(map(repr, SCHEDULES))} or a Schedule instance"
            )
        return SCHEDULES[key](**kwargs)
    raise TypeError(
        f"schedule must be a Schedule instance, a name or None, got {type(schedule).__name__}"
    )


# --------------------------------------------------------------------------
# learners


class Learner:
    """Base class of the learners (see the module docstring for the contract).

    Subclasses set ``kind``, ``_state_names``, ``_hyperparameter_names``,
    ``_n_scratch`` and implement ``_update(p, g, state, scratch, lr)``, which
    must update ``p`` and the ``state`` arrays in place using only the
    ``scratch`` buffers.  The built-in learners also set ``_kernel_code``,
    their case in the compiled epoch kernels (see :data:`LEARNER_TABLE`).

    Parameters
    ----------
    learning_rate : float
        Base learning rate, > 0.
    schedule : Schedule, str, dict or None
        Per-epoch learning-rate schedule (see :func:`get_schedule`);
        ``None`` is a constant rate.
    """

    kind: str | None = None
    #: Case of the learner in the update switches of the compiled epoch kernels
    #: (None: the learner has no compiled copy and trains in the Python loop).
    _kernel_code: int | None = None
    #: Names of the state arrays kept per parameter, in the compiled kernels' order.
    _state_names: tuple[str, ...] = ()
    #: Names of the attributes returned by hyperparameters(), in the compiled kernels' order.
    _hyperparameter_names: tuple[str, ...] = ()
    _n_scratch = 0

    def __init__(self, learning_rate: float, schedule: _ScheduleLike = None) -> None:
        self.learning_rate = _positive("learning_rate", learning_rate)
        self.schedule = get_schedule(schedule)
        self.reset()

    # -- public API ---------------------------------------------------------

    def lr_at(self, epoch: int) -> float:
        """Learning rate in force in ``epoch`` (0-based), as a float."""
        return self.schedule(self.learning_rate, epoch)

    def hyperparameters(self) -> dict[str, float]:
        """The hyper-parameters other than the learning rate, as floats."""
        return {name: getattr(self, name) for name in self._hyperparameter_names}

    def get_config(self) -> dict[str, Any]:
        """Plain description of the learner, accepted back by :func:`get_learner`.

        Examples
        --------
        >>> from fastsoftmax.learners import Adam, get_learner
        >>> config = Adam(learning_rate=0.01).get_config()
        >>> config["kind"], config["learning_rate"], config["schedule"]
        ('adam', 0.01, {'kind': 'constant'})
        >>> get_learner(**config)
        Adam(learning_rate=0.01, schedule=Constant(), beta1=0.9, beta2=0.999, eps=1e-08)
        """
        return {
            "kind": self.kind,
            "learning_rate": self.learning_rate,
            "schedule": self.schedule.get_config(),
            **self.hyperparameters(),
        }

    def reset(self) -> None:
        """Forget the optimiser state and the step count."""
        self.t = 0
        self.state: list[dict[str, NDArray[Any]]] | None = None
        self._scratch: list[tuple[NDArray[Any], ...]] | None = None

    def init_state(self, params: Iterable[NDArray[Any]]) -> None:
        """Create zero state arrays (and scratch buffers) for ``params``.

        Parameters
        ----------
        params : sequence of ndarray
            The floating-point arrays that :meth:`step` will update.
        """
        params = self._check_params(params)
        # *_like keeps each parameter's memory layout (e.g. the F-ordered view
        # W = coef.T), so the element-wise updates stream through memory in
        # one order and the compiled epochs use the states without a copy.
        self.state = [{name: np.zeros_like(p) for name in self._state_names} for p in params]
        self._scratch = [tuple(np.empty_like(p) for _ in range(self._n_scratch)) for p in params]

    def step(
        self, params: Iterable[NDArray[Any]], grads: Iterable[ArrayLike], epoch: int = 0
    ) -> None:
        """Update every parameter in place from its gradient.

        Parameters
        ----------
        params : sequence of ndarray
            Floating-point arrays (float32 or float64), updated in place.
        grads : sequence of array_like
            Gradients of the loss, one per parameter, of the same shapes.
        epoch : int, default=0
            Current epoch (0-based), for the learning-rate schedule.
        """
        params = self._check_params(params)
        grads = list(grads)
        if len(grads) != len(params):
            raise ValueError(
                "expected one gradient per parameter: "
                f"got {len(params)} params and {len(grads)} grads"
            )
        lr = self.lr_at(epoch)
        if self.state is None or not self._state_matches(params):
            self.init_state(params)  # first step, or the parameters changed shape/dtype
        grads = [self._check_grad(i, p, g) for i, (p, g) in enumerate(zip(params, grads))]
        self.t += 1
        # init_state has set the state and the scratch buffers; grads holds checked arrays now
        for p, g, state, scratch in zip(
            params, grads, self.state, self._scratch  # type: ignore[arg-type]
        ):
            self._update(p, g, state, scratch, p.dtype.type(lr))  # type: ignore[arg-type]

    def __repr__(self) -> str:
        args = [f"learning_rate={self.learning_rate!r}", f"schedule={self.schedule!r}"]
        args += [f"{k}={v!r}" for k, v in self.hyperparameters().items()]
        return f"{type(self).__name__}({', '.join(args)})"

    # -- helpers ------------------------------------------------------------

    @staticmethod
    def _check_params(params: Iterable[NDArray[Any]]) -> list[NDArray[Any]]:
        params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, np.ndarray):
                raise TypeError(f"params[{i}] must be a numpy array, got {type(p).__name__}")
            if p.dtype not in (np.float32, np.float64):
                raise TypeError(
                    f"params[{i}] must be float32 or float64 to be updated in place, got {p.dtype}"
                )
            if not p.flags.writeable:
                raise ValueError(
                    f"params[{i}] is read-only; it must be writeable to be updated in place"
                )
        return params

    def _state_matches(self, params: list[NDArray[Any]]) -> bool:
        # called once the state (and with it the scratch buffers) is set
        if (
            len(self.state) != len(params)  # type: ignore[arg-type]
            or len(self._scratch) != len(params)  # type: ignore[arg-type]
        ):
            return False
        for p, scratch in zip(params, self._scratch):  # type: ignore[arg-type]
            if any(s.shape != p.shape or s.dtype != p.dtype for s in scratch):
                return False
        return all(
            a.shape == p.shape and a.dtype == p.dtype
            for p, state in zip(params, self.state)  # type: ignore[arg-type]
            for a in state.values()
        )

    @staticmethod
    def _check_grad(i: int, p: NDArray[Any], g: ArrayLike) -> NDArray[Any]:
        g = np.asarray(g)
        if g.shape != p.shape:
            raise ValueError(f"grads[{i}] has shape {g.shape} but params[{i}] has shape {p.shape}")
        if g.dtype != p.dtype:
            # keeps the update in the parameter's precision; a copy only on mismatch
            g = g.astype(p.dtype)
        return g

    def _update(
        self,
        p: NDArray[Any],
        g: NDArray[Any],
        state: dict[str, NDArray[Any]],
        scratch: tuple[NDArray[Any], ...],
        lr: np.floating[Any],
    ) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(Learner):
    r"""Plain stochastic gradient descent.

    Parameters
    ----------
    learning_rate : float, default=0.1
        Base learning rate (0.1 suits softmax regression on features scaled
        to [0, 1] with a mean loss).
    schedule : Schedule, str, dict or None, default=None
        Learning-rate schedule; ``None`` is constant.

    Notes
    -----
    .. math:: p \leftarrow p - \eta_t g

    References
    ----------
    .. [1] H. Robbins and S. Monro, "A stochastic approximation method",
       Ann. Math. Statist. 22(3), 1951.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax.learners import SGD
    >>> p = np.array([1.0, 2.0])
    >>> SGD(learning_rate=0.5).step([p], [np.array([1.0, -2.0])])
    >>> p
    array([0.5, 3. ])
    """

    kind = "sgd"
    _kernel_code = 0
    _n_scratch = 1

    def __init__(self, learning_rate: float = 0.1, schedule: _ScheduleLike = None) -> None:
        super().__init__(learning_rate, schedule)

    def _update(
        self,
        p: NDArray[Any],
        g: NDArray[Any],
        state: dict[str, NDArray[Any]],
        scratch: tuple[NDArray[Any], ...],
        lr: np.floating[Any],
    ) -> None:
        (tmp,) = scratch
        np.multiply(g, lr, out=tmp)
        p -= tmp


class Momentum(Learner):
    r"""SGD with (heavy-ball) momentum.

    Parameters
    ----------
    learning_rate : float, default=0.01
        Base learning rate.
    momentum : float, default=0.9
        Momentum coefficient :math:`\mu`, in [0, 1).
    schedule : Schedule, str, dict or None, default=None
        Learning-rate schedule.

    Notes
    -----
    State ``"velocity"`` :math:`v` (zero at start):

    .. math::
        v \leftarrow \mu v - \eta_t g, \qquad p \leftarrow p + v

    References
    ----------
    .. [1] B. T. Polyak, "Some methods of speeding up the convergence of
       iteration methods", USSR Comput. Math. Math. Phys. 4(5), 1964.
    .. [2] I. Sutskever, J. Martens, G. Dahl and G. Hinton, "On the importance
       of initialization and momentum in deep learning", ICML 2013.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax.learners import Momentum
    >>> p = np.array([0.0])
    >>> opt = Momentum(learning_rate=1.0, momentum=0.5)
    >>> for _ in range(3):
    ...     opt.step([p], [np.array([1.0])])
    >>> p  # -1, then -1 - 1.5, then -2.5 - 1.75
    array([-4.25])
    """

    kind = "momentum"
    _kernel_code = 1
    _state_names = ("velocity",)
    _hyperparameter_names = ("momentum",)
    _n_scratch = 1

    def __init__(
        self, learning_rate: float = 0.01, momentum: float = 0.9, schedule: _ScheduleLike = None
    ) -> None:
        self.momentum = _unit_interval("momentum", momentum)
        super().__init__(learning_rate, schedule)

    def _update(
        self,
        p: NDArray[Any],
        g: NDArray[Any],
        state: dict[str, NDArray[Any]],
        scratch: tuple[NDArray[Any], ...],
        lr: np.floating[Any],
    ) -> None:
        (tmp,) = scratch
        v = state["velocity"]
        v *= p.dtype.type(self.momentum)
        np.multiply(g, lr, out=tmp)
        v -= tmp
        p += v


class Nesterov(Momentum):
    r"""SGD with Nesterov's accelerated momentum.

    Parameters
    ----------
    learning_rate : float, default=0.01
        Base learning rate.
    momentum : float, default=0.9
        Momentum coefficient :math:`\mu`, in [0, 1).
    schedule : Schedule, str, dict or None, default=None
        Learning-rate schedule.

    Notes
    -----
    The reformulation of Sutskever et al. that needs the gradient at the
    current parameters only; state ``"velocity"`` :math:`v`:

    .. math::
        v' = \mu v - \eta_t g, \qquad
        p \leftarrow p - \mu v + (1 + \mu) v', \qquad v \leftarrow v'

    which is computed as :math:`p \leftarrow p + \mu^2 v - (1+\mu)\eta_t g`
    (the same value, without a copy of :math:`v`).

    References
    ----------
    .. [1] Y. Nesterov, "A method for solving the convex programming problem
       with convergence rate O(1/k^2)", Soviet Math. Dokl. 27, 1983.
    .. [2] I. Sutskever, J. Martens, G. Dahl and G. Hinton, "On the importance
       of initialization and momentum in deep learning", ICML 2013.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax.learners import Nesterov
    >>> p = np.array([0.0])
    >>> opt = Nesterov(learning_rate=1.0, momentum=0.5)
    >>> opt.step([p], [np.array([1.0])])
    >>> p  # v = -1, p = 0 - 0 + 1.5 * (-1)
    array([-1.5])
    """

    kind = "nesterov"
    _kernel_code = 2

    def _update(
        self,
        p: NDArray[Any],
        g: NDArray[Any],
        state: dict[str, NDArray[Any]],
        scratch: tuple[NDArray[Any], ...],
        lr: np.floating[Any],
    ) -> None:
        (tmp,) = scratch
        v = state["velocity"]
        mu = p.dtype.type(self.momentum)
        np.multiply(g, (1 + mu) * lr, out=tmp)
        p -= tmp
        np.multiply(v, mu * mu, out=tmp)
        p += tmp
        v *= mu
        np.multiply(g, lr, out=tmp)
        v -= tmp


class Adagrad(Learner):
    r"""Adagrad: per-coordinate rates scaled by the accumulated squared gradients.

    Parameters
    ----------
    learning_rate : float, default=0.01
        Base learning rate.
    eps : float, default=1e-8
        Added to the denominator for numerical stability, > 0.
    schedule : Schedule, str, dict or None, default=None
        Learning-rate schedule.

    Notes
    -----
    State ``"sum_sq"`` :math:`s` (zero at start):

    .. math::
        s \leftarrow s + g^2, \qquad
        p \leftarrow p - \eta_t \frac{g}{\sqrt{s} + \epsilon}

    References
    ----------
    .. [1] J. Duchi, E. Hazan and Y. Singer, "Adaptive subgradient methods for
       online learning and stochastic optimization", JMLR 12, 2011.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax.learners import Adagrad
    >>> p = np.array([1.0, 1.0])
    >>> Adagrad(learning_rate=0.5).step([p], [np.array([3.0, -4.0])])
    >>> p.round(6)  # each coordinate moves by lr against the sign of g
    array([0.5, 1.5])
    """

    kind = "adagrad"
    _kernel_code = 3
    _state_names = ("sum_sq",)
    _hyperparameter_names = ("eps",)
    _n_scratch = 1

    def __init__(
        self, learning_rate: float = 0.01, eps: float = 1e-8, schedule: _ScheduleLike = None
    ) -> None:
        self.eps = _positive("eps", eps)
        super().__init__(learning_rate, schedule)

    def _update(
        self,
        p: NDArray[Any],
        g: NDArray[Any],
        state: dict[str, NDArray[Any]],
        scratch: tuple[NDArray[Any], ...],
        lr: np.floating[Any],
    ) -> None:
        (tmp,) = scratch
        s = state["sum_sq"]
        np.multiply(g, g, out=tmp)
        s += tmp
        np.sqrt(s, out=tmp)
        tmp += p.dtype.type(self.eps)
        np.divide(g, tmp, out=tmp)
        tmp *= lr
        p -= tmp


class Adadelta(Learner):
    r"""Adadelta: a unit-correct adaptive rate from running averages.

    Parameters
    ----------
    learning_rate : float, default=1.0
        Scale of the update (1.0 is Zeiler's original method).
    rho : float, default=0.95
        Decay of the running averages, in [0, 1).
    eps : float, default=1e-6
        Added inside the square roots, > 0.
    schedule : Schedule, str, dict or None, default=None
        Learning-rate schedule.

    Notes
    -----
    States ``"sq_grad_avg"`` :math:`E[g^2]` and ``"sq_update_avg"``
    :math:`E[\Delta x^2]` (zero at start):

    .. math::
        E[g^2] &\leftarrow \rho E[g^2] + (1-\rho) g^2 \\
        \Delta x &= -\frac{\sqrt{E[\Delta x^2] + \epsilon}}{\sqrt{E[g^2] + \epsilon}} g \\
        E[\Delta x^2] &\leftarrow \rho E[\Delta x^2] + (1-\rho) \Delta x^2 \\
        p &\leftarrow p + \eta_t \Delta x

    References
    ----------
    .. [1] M. D. Zeiler, "ADADELTA: An adaptive learning rate method",
       arXiv:1212.5701, 2012.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax.learners import Adadelta
    >>> p = np.array([0.0])
    >>> Adadelta(rho=0.0, eps=1.0).step([p], [np.array([1.0])])
    >>> p.round(6)  # -sqrt(0 + 1) / sqrt(1 + 1) * 1
    array([-0.707107])
    """

    kind = "adadelta"
    _kernel_code = 4
    _state_names = ("sq_grad_avg", "sq_update_avg")
    _hyperparameter_names = ("rho", "eps")
    _n_scratch = 2

    def __init__(
        self,
        learning_rate: float = 1.0,
        rho: float = 0.95,
        eps: float = 1e-6,
        schedule: _ScheduleLike = None,
    ) -> None:
        self.rho = _unit_interval("rho", rho)
        self.eps = _positive("eps", eps)
        super().__init__(learning_rate, schedule)

    def _update(
        self,
        p: NDArray[Any],
        g: NDArray[Any],
        state: dict[str, NDArray[Any]],
        scratch: tuple[NDArray[Any], ...],
        lr: np.floating[Any],
    ) -> None:
        tmp, dx = scratch
        eg, edx = state["sq_grad_avg"], state["sq_update_avg"]
        rho = p.dtype.type(self.rho)
        one_minus_rho = p.dtype.type(1.0 - self.rho)
        eps = p.dtype.type(self.eps)
        _decayed_square_average(eg, g, rho, one_minus_rho, tmp)
        # dx = -sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) * g
        np.add(edx, eps, out=dx)
        np.sqrt(dx, out=dx)
        np.add(eg, eps, out=tmp)
        np.sqrt(tmp, out=tmp)
        np.divide(dx, tmp, out=dx)
        dx *= g
        np.negative(dx, out=dx)
        _decayed_square_average(edx, dx, rho, one_minus_rho, tmp)
        dx *= lr
        p += dx


def _decayed_square_average(
    avg: NDArray[Any], g: NDArray[Any], rho: Any, one_minus_rho: Any, tmp: NDArray[Any]
) -> None:
    """``avg = rho * avg + (1 - rho) * g**2`` in place, via the buffer ``tmp``."""
    np.multiply(g, g, out=tmp)
    tmp *= one_minus_rho
    avg *= rho
    avg += tmp


class RMSProp(Learner):
    r"""RMSProp: gradients divided by a running RMS of recent gradients.

    Parameters
    ----------
    learning_rate : float, default=1e-3
        Base learning rate.
    rho : float, default=0.9
        Decay of the running average of squared gradients, in [0, 1).
    eps : float, default=1e-8
        Added to the denominator, > 0.
    schedule : Schedule, str, dict or None, default=None
        Learning-rate schedule.

    Notes
    -----
    State ``"sq_grad_avg"`` :math:`E[g^2]` (zero at start):

    .. math::
        E[g^2] \leftarrow \rho E[g^2] + (1-\rho) g^2, \qquad
        p \leftarrow p - \eta_t \frac{g}{\sqrt{E[g^2]} + \epsilon}

    References
    ----------
    .. [1] T. Tieleman and G. Hinton, "Lecture 6.5 - RMSProp: Divide the
       gradient by a running average of its recent magnitude", COURSERA:
       Neural Networks for Machine Learning, 2012.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax.learners import RMSProp
    >>> p = np.array([0.0])
    >>> RMSProp(learning_rate=0.1, rho=0.75).step([p], [np.array([2.0])])
    >>> p.round(6)  # E = 0.25 * 4 = 1, p = -0.1 * 2 / 1
    array([-0.2])
    """

    kind = "rmsprop"
    _kernel_code = 5
    _state_names = ("sq_grad_avg",)
    _hyperparameter_names = ("rho", "eps")
    _n_scratch = 1

    def __init__(
        self,
        learning_rate: float = 1e-3,
        rho: float = 0.9,
        eps: float = 1e-8,
        schedule: _ScheduleLike = None,
    ) -> None:
        self.rho = _unit_interval("rho", rho)
        self.eps = _positive("eps", eps)
        super().__init__(learning_rate, schedule)

    def _update(
        self,
        p: NDArray[Any],
        g: NDArray[Any],
        state: dict[str, NDArray[Any]],
        scratch: tuple[NDArray[Any], ...],
        lr: np.floating[Any],
    ) -> None:
        (tmp,) = scratch
        eg = state["sq_grad_avg"]
        dtype = p.dtype.type
        _decayed_square_average(eg, g, dtype(self.rho), dtype(1.0 - self.rho), tmp)
        np.sqrt(eg, out=tmp)
        tmp += dtype(self.eps)
        np.divide(g, tmp, out=tmp)
        tmp *= lr
        p -= tmp


class Adam(Learner):
    r"""Adam: adaptive moment estimation with bias correction.

    Parameters
    ----------
    learning_rate : float, default=1e-3
        Base learning rate.
    beta1 : float, default=0.9
        Decay of the first-moment average, in [0, 1).
    beta2 : float, default=0.999
        Decay of the second-moment average, in [0, 1).
    eps : float, default=1e-8
        Added to the denominator, > 0.
    schedule : Schedule, str, dict or None, default=None
        Learning-rate schedule.

    Notes
    -----
    States ``"m"`` and ``"v"`` (zero at start); ``t`` counts the steps:

    .. math::
        t &\leftarrow t + 1 \\
        m &\leftarrow \beta_1 m + (1-\beta_1) g \\
        v &\leftarrow \beta_2 v + (1-\beta_2) g^2 \\
        p &\leftarrow p - \eta_t \frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon}

    References
    ----------
    .. [1] D. P. Kingma and J. Ba, "Adam: A method for stochastic
       optimization", ICLR 2015, arXiv:1412.6980.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax.learners import Adam
    >>> p = np.array([1.0, 1.0])
    >>> opt = Adam(learning_rate=0.1)
    >>> opt.step([p], [np.array([0.5, -3.0])])
    >>> p.round(6)  # the first step moves each coordinate by about lr
    array([0.9, 1.1])
    >>> opt.t
    1
    """

    kind = "adam"
    _kernel_code = 6
    _state_names = ("m", "v")
    _hyperparameter_names = ("beta1", "beta2", "eps")
    _n_scratch = 1

    def __init__(
        self,
        learning_rate: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        schedule: _ScheduleLike = None,
    ) -> None:
        self.beta1 = _unit_interval("beta1", beta1)
        self.beta2 = _unit_interval("beta2", beta2)
        self.eps = _positive("eps", eps)
        super().__init__(learning_rate, schedule)

    def _update(
        self,
        p: NDArray[Any],
        g: NDArray[Any],
        state: dict[str, NDArray[Any]],
        scratch: tuple[NDArray[Any], ...],
        lr: np.floating[Any],
    ) -> None:
        (tmp,) = scratch
        m, v = state["m"], state["v"]
        dtype = p.dtype.type
        # m = b1 m + (1 - b1) g
        np.multiply(g, dtype(1.0 - self.beta1), out=tmp)
        m *= dtype(self.beta1)
        m += tmp
        _decayed_square_average(v, g, dtype(self.beta2), dtype(1.0 - self.beta2), tmp)
        # bias corrections in float64 scalars, then cast once
        c1 = 1.0 - self.beta1**self.t
        c2 = 1.0 - self.beta2**self.t
        np.multiply(v, dtype(1.0 / c2), out=tmp)
        np.sqrt(tmp, out=tmp)
        tmp += dtype(self.eps)
        np.divide(m, tmp, out=tmp)
        tmp *= dtype(float(lr) / c1)
        p -= tmp


def l1_pseudo_gradient(p: NDArray[Any], g: NDArray[Any], l1: float) -> NDArray[np.int8]:
    """Turn ``g`` in place into the L1 pseudo-gradient at ``p``; return the orthant of the step.

    The L1 term ``l1 * ||p||_1`` of an objective with smooth gradient ``g``
    is handled as OWL-QN does it (Andrew and Gao, 2007), which works for
    every learner: ``g`` gains ``l1 * sign(p)``, and at ``p == 0`` the
    one-sided derivative that descends (``g + l1`` when it is negative,
    ``g - l1`` when it is positive, else 0: the weight stays at 0).  The
    learner steps along this pseudo-gradient, then
    :func:`l1_orthant_project` sets to exactly 0 the weights that left the
    returned orthant (``sign(p)``, or the sign of the descent direction at
    0), so that a weight crosses 0 only by stopping there first.  For
    :class:`SGD` a step that does not cross 0 is the proximal
    (soft-threshold) step of the penalty; the compiled epoch kernels run
    the same operations in ``p``'s dtype.

    Returns
    -------
    orthant : ndarray of int8, ``p``'s shape
        +1, -1 or 0 (the weight must stay at 0).

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax.learners import l1_orthant_project, l1_pseudo_gradient
    >>> p = np.array([0.5, -0.05, 0.0, 0.0])
    >>> g = np.array([0.2, -1.0, 0.05, -0.3])
    >>> orthant = l1_pseudo_gradient(p, g, 0.1)
    >>> g, orthant
    (array([ 0.3, -1.1,  0. , -0.2]), array([ 1, -1,  0,  1], dtype=int8))
    >>> p -= 0.1 * g  # an SGD step; the second weight would cross 0
    >>> l1_orthant_project(p, orthant)
    >>> p
    array([0.47, 0.  , 0.  , 0.02])
    """
    l1 = g.dtype.type(l1)
    plus, minus = g + l1, g - l1
    positive, negative = p > 0, p < 0
    up = ~positive & ~negative & (plus < 0)  # at 0, descending upwards
    down = ~positive & ~negative & ~up & (minus > 0)
    orthant = (positive | up).astype(np.int8) - (negative | down).astype(np.int8)
    g[...] = np.where(positive | up, plus, np.where(negative | down, minus, g.dtype.type(0)))
    return orthant


def l1_orthant_project(p: NDArray[Any], orthant: NDArray[np.int8]) -> None:
    """Set to 0, in place, the entries of ``p`` outside ``orthant`` (see :func:`l1_pseudo_gradient`)."""
    p[(orthant > 0) & ~(p > 0) | (orthant < 0) & ~(p < 0) | (orthant == 0)] = 0


# --------------------------------------------------------------------------
# the learner table


class LearnerSpec(NamedTuple):
    """One row of :data:`LEARNER_TABLE`: what the compiled epoch kernels need of a learner."""

    kind: str
    #: Case of the learner in the update switches of the compiled kernels.
    code: int
    #: Names of its state arrays; the kernels take them in this order.
    state_names: tuple[str, ...]
    #: Names of its hyper-parameters; the kernels read them, in this order,
    #: from one float64 array.
    hyperparameter_names: tuple[str, ...]
    cls: type[Learner]


def _table(classes: tuple[type[Learner], ...]) -> tuple[LearnerSpec, ...]:
    """The rows of ``classes``, checked: kinds and integer codes must be unique."""
    rows = tuple(
        # the base class's kind and code are None: a learner class sets both (code checked below)
        LearnerSpec(
            cls.kind,  # type: ignore[arg-type]
            cls._kernel_code,  # type: ignore[arg-type]
            cls._state_names,
            cls._hyperparameter_names,
            cls,
        )
        for cls in classes
    )
    for row in rows:
        if isinstance(row.code, bool) or not isinstance(row.code, int):
            raise RuntimeError(
                f"learner {row.kind!r} needs an integer _kernel_code, got {row.code!r}"
            )
    for field in ("kind", "code"):
        values = [getattr(row, field) for row in rows]
        if len(set(values)) != len(values):
            raise RuntimeError(f"the learner table repeats a {field}: {values}")
    return rows


#: The built-in learners, one :class:`LearnerSpec` a row.  A learner in this
#: table must have a branch of its ``code`` in both compiled epoch kernels
#: (``_learner_update`` of ``fastsoftmax/_backends/numba_epoch.py`` and of
#: ``src_cython/_cython_kernels.pyx``), which train it with the estimators.
LEARNER_TABLE = _table((SGD, Momentum, Nesterov, Adagrad, Adadelta, RMSProp, Adam))

#: Learner name -> class.
LEARNERS = {row.kind: row.cls for row in LEARNER_TABLE}


def learner_spec(kind: str) -> LearnerSpec:
    """The row of :data:`LEARNER_TABLE` of the learner named ``kind``.

    Raises
    ------
    ValueError
        If no built-in learner has that name.

    Examples
    --------
    >>> from fastsoftmax.learners import learner_spec
    >>> spec = learner_spec("adam")
    >>> spec.code, spec.state_names, spec.hyperparameter_names
    (6, ('m', 'v'), ('beta1', 'beta2', 'eps'))
    """
    for row in LEARNER_TABLE:
        if row.kind == kind:
            return row
    raise ValueError(
        f"unknown learner kind {kind!r}; expected one of {sorted(r.kind for r in LEARNER_TABLE)}"
    )


def get_learner(learner: str | Learner | type[Learner] = "sgd", **kwargs: Any) -> Learner:
    """Return a learner from an instance or a name.

    Parameters
    ----------
    learner : Learner or str, default="sgd"
        A :class:`Learner` (returned as is) or one of ``"sgd"``,
        ``"momentum"``, ``"nesterov"``, ``"adagrad"``, ``"adadelta"``,
        ``"rmsprop"``, ``"adam"`` (case-insensitive).
    **kwargs
        Constructor arguments of the named learner (``learning_rate``,
        ``schedule``, ``momentum``, ...). ``kind=`` may be given instead of
        ``learner`` so that ``get_learner(**learner.get_config())`` works.

    Returns
    -------
    Learner

    Examples
    --------
    >>> from fastsoftmax.learners import get_learner
    >>> get_learner("rmsprop", learning_rate=0.01, schedule="exponential")
    RMSProp(learning_rate=0.01, schedule=ExponentialDecay(gamma=0.95), rho=0.9, eps=1e-08)
    >>> get_learner("adamw")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown learner 'adamw'; expected one of 'sgd', 'momentum', ..., 'adam' or ...
    """
    if "kind" in kwargs:
        learner = kwargs.pop("kind")
    if isinstance(learner, Learner):
        if kwargs:
            raise TypeError(
                f"learner parameters {sorted(kwargs)} given with a Learner instance; "
                "pass either an instance or a name with parameters"
            )
        return learner
    if isinstance(learner, type) and issubclass(learner, Learner):
        return learner(**kwargs)
    if not isinstance(learner, str):
        raise TypeError(
            f"learner must be a Learner instance or a name, got {type(learner).__name__}"
        )
    key = learner.strip().lower()
    if key not in LEARNERS:
        raise ValueError(
            f"unknown learner {learner!r}; expected one of "
            f"{', '.join(map(repr, LEARNERS))} or a Learner instance"
        )
    cls = LEARNERS[key]
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise TypeError(f"invalid parameters for learner {key!r}: {exc}") from None
