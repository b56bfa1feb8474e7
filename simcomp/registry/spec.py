"""What a method is, as data: its settings and its flags (no numba, no kernels, no theory).

A :class:`MethodSpec` is everything simcomp knows about one mitigation method
that is not compiled code: the config keys it takes with their defaults and
bounds (:class:`Setting`), whether it draws random numbers, whether it trains
a joint network, what its compiled stage reads, the size of its per-run
state and the number of statistics it accumulates per step, where the
method was published and with which default, and the few pure-Python facts
the theory and the calibration need (its early-phase rate, its reduced
dynamics).  One module of :mod:`simcomp.registry` per method holds one spec;
:data:`simcomp.registry.REGISTRY` lists them.

This module imports nothing of simcomp but :mod:`simcomp.validation`, so that
the config can be validated without loading numba or the kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from ..validation import ConfigError, _need_bool, _need_float, _need_int

__all__ = ["Setting", "Calibration", "MethodSpec", "KINDS"]

# What a setting's value is:
#   float       one number (``lo``/``hi`` bounds);
#   int         one integer >= ``lo``;
#   stop        an integer > the method's ``start``, or None (never);
#   bool        true or false;
#   steps       an integer number of steps, or None (the run's ``train.steps``); not a
#               setting of the compiled rule (it schedules separate runs);
#   count       an integer >= ``lo``, or None (a fallback the setting's doc names, e.g. a
#               held-out size defaulting to data.n_train); the rule holds -1 for None;
#   modality    a list with one number per configured modality;
#   either      one number for every modality, or a list with one per modality.
KINDS = ("float", "int", "stop", "bool", "steps", "count", "modality", "either")


@dataclass(frozen=True)
class Setting:
    """One config key of a method (``method.<key>``).

    Attributes
    ----------
    key : str
        The config key; the same key in two methods must mean the same kind of value.
    kind : str
        One of :data:`KINDS`.
    default : Any
        The value a resolved config takes when the key is left out (for a
        ``modality`` key: the value of every entry).  ``None`` for ``stop``
        and ``steps`` (never / the run's steps).
    lo, hi : float or None
        Bounds of the value (or of each entry); ``lo_open`` makes ``lo``
        exclusive, ``hi_open`` makes ``hi`` exclusive.
    doc : str
        One line for the docs table and the error messages.
    """

    key: str
    kind: str
    default: Any = None
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    doc: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"setting {self.key}: kind must be one of {', '.join(KINDS)}")

    @property
    def per_modality(self) -> bool:
        """The compiled rule holds one value per trained modality."""
        return self.kind in ("modality", "either")

    @property
    def in_rule(self) -> bool:
        """The compiled rule carries this setting (``steps`` keys schedule runs instead)."""
        return self.kind != "steps"

    def number(self, label: str, value: Any) -> float:
        """One number checked against the bounds (``label`` names it in the error)."""
        value = _need_float(label, value, lo=self.lo, lo_open=self.lo_open)
        if self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi):
            lo = "(" if self.lo_open else "["
            hi = ")" if self.hi_open else "]"
            raise ConfigError(f"{label} must be in {lo}{self.lo:g}, {self.hi:g}{hi}, got {value:g}")
        return value

    def check(self, where: str, value: Any, start: int | None = None,
              steps_hi: int | None = None) -> Any:
        """The validated (and typed) value of ``method.<key>`` set to ``value``.

        ``None`` gives the default (left as None for ``stop`` and ``steps``, and for a
        ``modality`` key, whose length only the config knows).
        """
        label = f"method.{self.key} {where}"
        kind = self.kind
        if kind == "stop":
            return None if value is None else _need_int(label, value, lo=start + 1)
        if kind == "steps":
            return None if value is None else _need_int(label, value, lo=0, hi=steps_hi)
        if kind == "count":
            return None if value is None else _need_int(label, value, lo=int(self.lo or 0))
        if kind == "modality" and value is None:
            return None
        value = self.default if value is None else value
        if kind == "int":
            return _need_int(label, value, lo=int(self.lo or 0),
                             hi=None if self.hi is None else int(self.hi))
        if kind == "bool":
            return _need_bool(label, value)
        if kind == "float":
            return self.number(label, value)
        if isinstance(value, (list, tuple)):
            return tuple(self.number(f"method.{self.key}[{i}] {where}", v)
                         for i, v in enumerate(value))
        if kind == "modality":
            raise ConfigError(f"{label} must be a list with one number per modality, "
                              f"got {value!r}")
        return self.number(label, value)

    def rule_value(self, value: Any) -> float:
        """The float the compiled rule holds for a scalar setting (stop None: inf)."""
        if self.kind == "stop":
            return math.inf if value is None else float(value)
        if self.kind == "count":
            return -1.0 if value is None else float(int(value))
        if self.kind == "bool":
            return 1.0 if value else 0.0
        if self.kind == "int":
            return float(int(value))
        return float(value)


@dataclass(frozen=True)
class Calibration:
    """How ``simcomp calibrate`` runs the method: one main parameter, its grid and default.

    ``settings(value, start, K, winner, T)`` turns a value of the main
    parameter into the method's settings (per-modality lists of length K);
    see :mod:`simcomp.calibrate.methods`.  ``refused`` (non-empty): why calibrate
    cannot predict the method; its report names it with this reason instead of a gain.
    """

    param: str | None
    given: float | None
    grid: tuple
    settings: Callable[..., dict] = lambda value, start, K, winner, T: {}
    has_start: bool = False
    note: str = ""
    lo: float = 0.0
    hi: float | None = None
    lo_open: bool = False
    refused: str = ""


def _no_reason(settings: dict) -> str | None:
    return None


def _kappa(kappa, p, col, **_):
    return kappa.copy()


@dataclass(frozen=True)
class MethodSpec:
    """Everything about one method that is not compiled code.

    Attributes
    ----------
    name : str
        The value of ``method.name``.
    summary : str
        One line: what the method does (the docs table).
    settings : tuple of Setting
        The config keys it takes besides ``name``, in the order of the docs.
    source : str
        Where it was published (paper; repository and path of the official code).
    published_default : str
        Its published default setting, in words.
    stochastic : bool
        Its update draws random numbers (so the theory predicts its expected update).
    trains_joint : bool
        False for a method whose predictor is built from uni-modal runs only (ume).
    kernel : str or None
        The compiled rule it trains with (its own name; ``"none"`` for a method
        whose joint run, if any, is plain).
    reads_phi : bool
        Its compiled stage needs every sample's encoder outputs phi_{j,r} (the
        plain path does not compute them).
    reads_units : bool
        Its compiled stage needs every sample's unit outputs (umt).
    second_gradient : bool
        Its compiled stage back-propagates a second set of coefficients (mmpareto).
    table : str or None
        A per-sample table the rule carries, shape (K, B, m, n) (umt: ``"teacher_units"``).
    lr_setting : str or None
        The per-modality setting that is the step factor c_r (lr_scale).
    predictor_setting : str or None
        The per-modality setting that weights its predictor sum_r a_r phi_r (alternating).
    state_shape : callable
        ``state_shape(K, B, m, n, D) -> (rows, cols)``: the shape of its per-run
        state (float64, zeros at the start, kept across steps and segments; a
        stage may view a row as any shape, e.g. a weight snapshot as (K, B, m, D)
        in a (1, K B m D) state).
    accumulators : int
        Rows of the per-step statistics its block stage accumulates, (rows, K).
    dynamics : str
        The method whose reduced dynamics predicts it (ogm_ge: ogm's expected
        update; ume: the uni-modal runs, as alternating).
    exact_reduction : bool
        The reduced dynamics is exact (not only for the expected update).
    race_rate : callable
        ``race_rate(kappa, p, col, teacher_unit=, banks=, width=)``: its growth
        rates while every output is near 0 (``p`` the theory's resolved settings).
    analogue : bool
        It is an analogue on the toy network, not a transcription of the published
        method (greedy: the published signal and action live in layers the toy does
        not have); reports and the docs table name it so (``simcomp.registry.label``).
    holdout : bool
        It compares quantities on the training set and on a held-out sample
        (``simcomp.methods.holdout_dataset``; its size is the ``holdout`` setting).
    hook : str or None
        For a method that does work in Python between compiled segments (probe
        trainings, resets): the name of its class in :mod:`simcomp.method_hooks`
        (a name, not the class: that module needs the kernels, which the config must
        not load).  The trainer makes one per run (``cls(run)``, ``run`` a
        ``simcomp.train._Run``), stops at the steps its ``steps`` names and calls
        ``hook(run, step)`` with the run's weights at that step, before the step.
    theory_hook : callable or None
        The same for the reduced dynamics: ``theory_hook(p, steps, context)`` returns an
        object with ``steps`` and ``__call__(t, a, args)`` (see
        ``simcomp.theory.mitigation.method_dynamics``).
    noop : callable
        ``noop(method_config) -> str or None``: why these settings train exactly
        as plain training.
    calibration : Calibration or None
        How ``simcomp calibrate`` evaluates it (None: not evaluated).
    diverge_key : str or None
        The setting that makes its joint run blow up when too large (named by the
        command line's divergence message).
    needs_trainable_head : bool
        The method acts on the fusion head's weights (mmcosine): it runs only on the
        fusion engine with ``model.head = "trainable"``, and the fixed-head learner
        (and its theory) refuse it.
    validate : callable
        ``validate(method_config)``: checks that involve several settings (each
        setting's own bounds are checked before); raise ``ConfigError`` naming them.
    check_config : callable
        ``check_config(cfg)`` raises ConfigError (one line, naming the keys) for settings
        that are valid alone but not with the rest of the config (inforeg's stability
        bound involves train.lr).
    """

    name: str
    summary: str
    settings: tuple = ()
    source: str = ""
    published_default: str = ""
    stochastic: bool = False
    trains_joint: bool = True
    kernel: str | None = None
    reads_phi: bool = False
    reads_units: bool = False
    second_gradient: bool = False
    table: str | None = None
    lr_setting: str | None = None
    predictor_setting: str | None = None
    state_shape: Callable[..., tuple] = lambda K, B, m, n, D: (1, K)
    accumulators: int = 0
    dynamics: str = ""
    exact_reduction: bool = True
    race_rate: Callable[..., Any] = _kappa
    analogue: bool = False
    holdout: bool = False
    hook: str | None = None
    theory_hook: Callable[..., Any] | None = None
    noop: Callable[[Any], str | None] = _no_reason
    calibration: Calibration | None = None
    diverge_key: str | None = None
    validate: Callable[[Any], None] = lambda method: None
    needs_trainable_head: bool = False
    check_config: Callable[[Any], None] = lambda cfg: None
    _by_key: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_key", {s.key: s for s in self.settings})
        if not self.kernel:
            object.__setattr__(self, "kernel", self.name)
        if not self.dynamics:
            object.__setattr__(self, "dynamics", self.name)

    @property
    def keys(self) -> tuple[str, ...]:
        """Its config keys besides ``name``."""
        return tuple(s.key for s in self.settings)

    def setting(self, key: str) -> Setting:
        return self._by_key[key]

    def default(self, key: str) -> Any:
        return self._by_key[key].default
