"""The public Python API: configs, one experiment, a saved experiment, predictions, sweeps.

Everything a notebook needs is here and re-exported by :mod:`simcomp`::

    import simcomp
    cfg = simcomp.build_config(overrides={"train.steps": 200})
    result = simcomp.simulate(cfg)
    result.summary["comparison"]["gap"]
    rows = simcomp.sweep(cfg, grid={"data.modality.0.beta": [1.0, 2.0]}, seeds=2)

The ``simcomp`` command is a thin layer over these functions, so a result
from Python equals the command's (apart from the wall times and the
provenance block).  "Never" / "not applicable" is ``None`` everywhere.

Heavy modules (the kernels, the theory, matplotlib, dask) are imported
inside the functions, so that ``import simcomp`` stays light.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Mapping

from .config import Config, ConfigError
from .config_file import build_config as _build_config, config_to_toml
from .registry import has_rule

__all__ = ["Result", "FusionResult", "Predictions", "SweepResults", "SweepRows", "build_config",
           "simulate", "load", "predict", "sweep", "theory_curves", "run_sweep_into",
           "draw_sweep_figures"]


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays as Python values (np.float64(0.5) -> 0.5), lists element-wise.

    Values computed with NumPy (``np.linspace`` grids, ``np.int64`` seeds) are
    then taken as the Python numbers they are; numpy is not imported for it.
    """
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()  # a scalar's .tolist() is its Python value
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _override_list(overrides) -> list:
    if overrides is None:
        return []
    if isinstance(overrides, str):
        return [overrides]
    if isinstance(overrides, Mapping):
        return [(str(key), _plain(value)) for key, value in overrides.items()]
    return [(item[0], _plain(item[1])) if isinstance(item, tuple) and len(item) == 2 else item
            for item in overrides]


def build_config(path: str | Path | None = None, overrides=None) -> Config:
    """Build and validate a configuration.

    Parameters
    ----------
    path : str or Path, optional
        A TOML experiment file; None (default) starts from the embedded
        default (docs/model.md section 6).
    overrides : mapping, sequence or str, optional
        Values replacing those of the file, by dotted key: a dict
        ``{"train.steps": 200, "data.modality.0.beta": 1.5}``, a list of
        ``"KEY=VALUE"`` strings (the CLI's ``--set``, values in TOML syntax)
        or of ``(key, value)`` pairs.  Index ``K`` of ``data.modality``
        adds a modality, which starts from a copy of the last one's values
        (its name defaults to the next letter).

    Returns
    -------
    Config
        Frozen and validated.

    Raises
    ------
    simcomp.ConfigError
        A one-line message naming the offending key or value.

    Examples
    --------
    >>> import simcomp
    >>> cfg = simcomp.build_config(overrides={"train.steps": 200, "data.modality.1.beta": 1.2})
    >>> cfg.train.steps, cfg.data.modality[1].beta
    (200, 1.2)
    """
    return _build_config(path, _override_list(overrides))


def _warn_noop(cfg: Config) -> None:
    """Warn (:class:`~simcomp.method_config.MethodNoOpWarning`) about a method set to do nothing."""
    import warnings

    from .method_config import MethodNoOpWarning

    reason = cfg.method.noop_reason()
    if reason is not None:
        warnings.warn(f"{reason}: the joint run trains exactly as with method none",
                      MethodNoOpWarning, stacklevel=3)


def _as_config(config) -> Config:
    if config is None:
        return _build_config(None, [])
    if isinstance(config, Config):
        return config
    if isinstance(config, (str, Path)):
        return _build_config(config, [])
    raise ConfigError(f"config must be a simcomp Config, a TOML path or None, got "
                      f"{type(config).__name__}")


def _run_shells(cfg: Config, summary: dict) -> list:
    """Objects with ``name``, ``trained`` and ``learned_step`` (-1: never), from a summary."""
    import numpy as np

    runs = []
    for name, entry in summary.get("runs", {}).items():
        names = list(entry.get("trained_modalities", []))
        trained = [cfg.names.index(n) for n in names]
        learned = entry.get("learned_step", {})
        steps = np.array([-1 if learned.get(n) is None else int(learned[n]) for n in names],
                         dtype=np.int64)
        runs.append(SimpleNamespace(name=name, trained=trained, learned_step=steps))
    return runs


def theory_curves(cfg: Config, data, runs, predictions=None) -> dict:
    """The theory curve of each run, for the figures: the run's predicted dynamics.

    A run trained with a method (the joint run, unless the method is
    ``none`` or ``ume``) gets the method's reduced dynamics.

    The distribution-level noise-aware dynamics (docs/theory.md section 12:
    the configuration and the run's initial weights, never its drawn noise)
    where a trained modality of the run has noise or distractors and
    ``train.noise_theory`` is on, else the reduced dynamics -- the same
    theory as the run's ``predicted_*`` results (``prediction_theory``).

    Parameters
    ----------
    cfg : Config
    data : ExperimentData
    runs : sequence
        Objects with ``name``, ``trained`` and ``initial_alignment``.
    predictions : dict, optional
        Run name -> :class:`simcomp.theory.Prediction` already computed.

    Returns
    -------
    dict
        Run name -> ``(label, steps, leading_alignment)`` with
        ``leading_alignment`` of shape (records, K_run).
    """
    import numpy as np

    from .experiment import predict_run

    out = {}
    B, m = cfg.model.banks, cfg.model.width
    for run in runs:
        pred = (predictions or {}).get(run.name)
        if pred is None:
            trained = list(run.trained)
            alignment0 = np.asarray(run.initial_alignment, dtype=float).reshape(
                len(trained), B, m)
            pred = predict_run(cfg, data, trained, alignment0, tracked=False, name=run.name)
        method = getattr(pred, "method", None)
        if method is not None and has_rule(method.method):
            # the run is trained with the method: its curve is the method's dynamics (ume
            # trains no joint network of its own, its joint run is plain)
            dyn = method.dynamics
            out[run.name] = (f"theory: {method.method}'s reduced dynamics", dyn.steps,
                             dyn.leading_alignment)
        elif pred.noise_aware is not None:
            dyn = pred.noise_aware.dynamics
            out[run.name] = ("theory: noise-aware dynamics (distribution level)", dyn.steps,
                             dyn.leading_alignment)
        else:
            red = pred.reduced
            out[run.name] = ("theory: reduced dynamics", red.steps, red.leading_alignment)
    return out


def _save_trace(arrays: dict, path: Path) -> None:
    """Write one run's ``trace.npz`` (compressed), as :func:`simcomp.trace.load_trace` reads it."""
    import numpy as np

    with open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)


class Result:
    """One experiment: its summary, traces and predictions.

    Attributes
    ----------
    summary : dict
        Exactly the object ``summary.json`` holds: ``format``, provenance,
        ``seed``, the resolved ``config``, ``runs`` (run name -> every
        quantity of :data:`simcomp.results.QUANTITIES`) and ``comparison``
        (None unless the mode is ``compare``).  Never-learned steps are None.
    traces : dict
        Run name (``joint``, ``unimodal-<M>``) -> ``{key: ndarray}`` in the
        ``trace.npz`` layout (``steps``, ``alignment``, ``test_error``,
        ``modality_test_error``, ...; see docs/model.md section 4).
    config : Config
        The resolved configuration.
    predictions : dict
        Run name -> :class:`simcomp.theory.Prediction` (race, reduced
        dynamics, predicted test errors).  For a loaded result it is
        recomputed from the config on first access (the data are redrawn
        from the seed).
    """

    def __init__(self, config: Config, summary: dict, traces: dict, predictions=None,
                 runs=None, data=None):
        self.config = config
        self.summary = summary
        self.traces = traces
        self._predictions = predictions
        self._runs = runs
        self._data = data

    def __repr__(self) -> str:
        comp = self.summary.get("comparison") or {}
        gap = comp.get("gap")
        return (f"<simcomp.Result seed={self.summary.get('seed')} runs={list(self.traces)}"
                + ("" if gap is None else f" gap={gap:+.4f}") + ">")

    def to_dataframe(self):
        """The per-modality results of every run, one row per (run, modality), as a DataFrame.

        Run-level values (``status``, ``test_error``, ``predicted_winner``, ...)
        repeat on the rows of their run; per-modality ones (``learned_step``,
        ``race_learned_step``, ``predicted_learned_step``, ...) are one column
        each.  Needs the optional dependency pandas (``pip install
        pandas``).

        Examples
        --------
        >>> import simcomp
        >>> result = simcomp.simulate(simcomp.build_config(overrides={"train.steps": 50}))
        >>> df = result.to_dataframe()                        # doctest: +SKIP
        >>> df[["run", "modality", "learned_step", "predicted_learned_step"]]  # doctest: +SKIP
        """
        from .frames import modality_rows_frame

        return modality_rows_frame([{"run": name, **entry}
                                    for name, entry in self.summary.get("runs", {}).items()])

    def trace_frame(self, run: str = "joint"):
        """One run's trace as a DataFrame: a row per recorded step (``step``, ``train_loss``,
        ``test_error``, ``leading_alignment_<M>``, ``modality_test_error_<M>``, ...).

        Needs the optional dependency pandas.

        Examples
        --------
        >>> result.trace_frame("joint").plot(x="step", y="test_error")  # doctest: +SKIP
        """
        from .frames import trace_frame

        if run not in self.traces:
            raise KeyError(f"no run {run!r}; the runs are {', '.join(self.traces)}")
        names = self.summary["runs"][run]["trained_modalities"]
        return trace_frame(self.traces[run], names)

    # -- lazily rebuilt parts of a loaded result
    def _experiment_data(self):
        if self._data is None:
            from .data import make_experiment_data

            self._data = make_experiment_data(self.config)
        return self._data

    def _initial_alignments(self) -> dict:
        from .trace import geometry

        data = self._experiment_data()
        return {run.name: geometry([data.init[r] for r in run.trained],
                                   [data.dictionaries[r] for r in run.trained])[0]
                for run in self.runs}

    @property
    def runs(self) -> list:
        """The runs: objects with ``name``, ``trained`` and ``learned_step`` (-1: never)."""
        if self._runs is None:
            self._runs = _run_shells(self.config, self.summary)
        return self._runs

    @property
    def predictions(self) -> dict:
        if self._predictions is None:
            from .experiment import predict_run

            data = self._experiment_data()
            a0 = self._initial_alignments()
            self._predictions = {run.name: predict_run(self.config, data, list(run.trained),
                                                       a0[run.name], name=run.name)
                                 for run in self.runs}
        return self._predictions

    def figure(self):
        """The run's figure: alignments of every neuron and test error against the step.

        A :class:`matplotlib.figure.Figure` on its own Agg canvas, not registered
        with pyplot (nothing to close; save it with ``fig.savefig(path)``).
        """
        from .plots import alignment_figure

        runs = self.runs
        if not all(hasattr(run, "initial_alignment") for run in runs):
            a0 = self._initial_alignments()
            runs = [SimpleNamespace(name=r.name, trained=r.trained, learned_step=r.learned_step,
                                    initial_alignment=a0[r.name]) for r in runs]
        curves = theory_curves(self.config, self._experiment_data(), runs, self.predictions)
        return alignment_figure(self.config, runs, self.traces, self.predictions, theory=curves)

    def save(self, path: str | Path, force: bool = False) -> Path:
        """Write the directory ``simcomp simulate --out`` writes.

        ``config.toml``, ``summary.json``, ``<run>/trace.npz`` and
        ``figures/alignment.png``, written to a hidden temporary directory
        and renamed into place.  A non-empty ``path`` is refused unless
        ``force`` (and then only a directory simcomp wrote is replaced).

        Returns
        -------
        Path
            ``path``.
        """
        from .outputs import AtomicDirectory, check_output_dir

        check_output_dir(path, force)
        with AtomicDirectory(path, force=force) as out:
            self._write_files(out.path)
            out.commit()
        return Path(path)

    def _write_files(self, root: Path) -> None:
        """The files of :meth:`save`, into the (new, empty) directory ``root``."""
        from .outputs import dumps_json
        from .plots import save_figure

        (root / "config.toml").write_text(config_to_toml(self.config), encoding="utf-8")
        (root / "summary.json").write_text(dumps_json(self.summary), encoding="utf-8")
        for name, arrays in self.traces.items():
            (root / name).mkdir()
            _save_trace(arrays, root / name / "trace.npz")
        (root / "figures").mkdir()
        save_figure(self.figure(), root / "figures" / "alignment.png")


def simulate(config=None, *, progress: bool | Callable[[int], None] = False) -> Result:
    """Train and trace every run of one experiment and predict each.

    Parameters
    ----------
    config : Config, path or None
        From :func:`build_config`; a TOML path; None for the embedded default.
    progress : bool or callable
        True draws a progress bar on stderr; a callable receives the number
        of GD steps just done.

    Returns
    -------
    Result
        ``result.summary`` is what ``summary.json`` holds; a run whose loss
        turned non-finite has ``status`` "nonfinite", one that blew up while
        finite "diverged" (no exception).

    Examples
    --------
    >>> import simcomp
    >>> result = simcomp.simulate(simcomp.build_config(overrides={"train.steps": 100}))
    >>> result.summary["runs"]["joint"]["winner"]                    # doctest: +SKIP
    'A'
    >>> result.to_dataframe()                                        # doctest: +SKIP
    """
    from contextlib import nullcontext

    from .experiment import run_experiment, total_steps
    from .outputs import SIMULATE_FORMAT
    from .progress import ProgressBar
    from .summary import summarize

    cfg = _as_config(config)
    _warn_noop(cfg)
    from .fusion_config import uses_fusion_engine

    if uses_fusion_engine(cfg.model):
        return _simulate_fusion(cfg)
    if callable(progress):
        bar = nullcontext(progress)
    else:
        bar = ProgressBar(total_steps(cfg), "simulate", enabled=bool(progress))
    with bar as callback:
        exp = run_experiment(cfg, progress=callback)
    summary = {"format": SIMULATE_FORMAT, **summarize(exp)}
    traces = {run.name: run.trace.arrays() for run in exp.runs}
    return Result(cfg, summary, traces, predictions=exp.predictions, runs=exp.runs,
                  data=exp.data)


class FusionResult(Result):
    """A :class:`Result` of the fusion engine (docs/architectures.md).

    ``summary["runs"]["joint"]`` holds ``total_weight``, ``half_step``,
    ``predicted_half_step``, ``misattribution`` and the theory beside them;
    ``traces["joint"]`` holds ``steps``, ``total_weight`` (records, K) and ``loss``.
    """

    def __init__(self, config: Config, summary: dict, traces: dict, prediction: dict):
        super().__init__(config, summary, traces)
        self._prediction = prediction

    def __repr__(self) -> str:
        run = self.summary["runs"]["joint"]
        return (f"<simcomp.FusionResult seed={self.summary.get('seed')} "
                f"half_step={run['half_step']}>")

    @property
    def runs(self) -> list:
        run = self.summary["runs"]["joint"]
        return [SimpleNamespace(name="joint", trained=list(range(self.config.K)),
                                status=run["status"], failed_step=run["failed_step"])]

    @property
    def predictions(self) -> dict:
        return {"joint": self._prediction}

    def figure(self):
        """Each modality's total weight against the step (predicted half steps dashed)."""
        from .fusion_result import total_weight_figure

        return total_weight_figure(self.config, self.traces["joint"], self._prediction)

    def _write_files(self, root: Path) -> None:
        from .outputs import dumps_json
        from .plots import save_figure

        (root / "config.toml").write_text(config_to_toml(self.config), encoding="utf-8")
        (root / "summary.json").write_text(dumps_json(self.summary), encoding="utf-8")
        (root / "joint").mkdir()
        _save_trace(self.traces["joint"], root / "joint" / "trace.npz")
        (root / "figures").mkdir()
        save_figure(self.figure(), root / "figures" / "total_weight.png")


def _simulate_fusion(cfg: Config) -> FusionResult:
    """Train and trace one fusion-engine run and set the theory beside it."""
    from .fusion_result import fusion_prediction, fusion_summary
    from .fusion_train import prepare, train_fusion

    run = prepare(cfg)
    res = train_fusion([cfg], [run])[0]
    pred = fusion_prediction(cfg, run)
    from .outputs import SIMULATE_FORMAT

    summary = {"format": SIMULATE_FORMAT, **fusion_summary(cfg, res, pred)}
    return FusionResult(cfg, summary, {"joint": res["trace"]}, pred)


class SweepResults:
    """A finished sweep directory, as :func:`load` opens it.

    Attributes
    ----------
    path : Path
    meta : dict
        ``sweep.json`` (definition, columns, counts, provenance).
    rows : list of dict
        The rows of ``results.csv`` with typed values (int, float, str,
        bool; None for empty cells), in plan order.

    Examples
    --------
    >>> import simcomp
    >>> sweep = simcomp.load("my-sweep")            # doctest: +SKIP
    >>> df = sweep.to_dataframe()                   # doctest: +SKIP
    >>> df.groupby("method.name")["gap"].mean()     # doctest: +SKIP
    """

    def __init__(self, path: Path, meta: dict, rows: list):
        self.path = Path(path)
        self.meta = meta
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __repr__(self) -> str:
        grids = [g.get("key") for g in self.meta.get("definition", {}).get("grids", [])]
        return f"<simcomp.SweepResults {str(self.path)!r}: {len(self.rows)} runs over {grids}>"

    @property
    def grid_keys(self) -> list:
        return [g["key"] for g in self.meta.get("definition", {}).get("grids", [])]

    def to_dataframe(self):
        """``results.csv`` as a pandas DataFrame (one row per run).

        Needs the optional dependency pandas (``pip install pandas``).
        """
        from .frames import records_frame

        return records_frame(self.rows)


def _load_sweep(root: Path) -> SweepResults:
    from .outputs import DamagedOutputError
    from .phase import PlotError, read_sweep

    try:
        meta, rows = read_sweep(root)
    except PlotError as exc:
        raise DamagedOutputError(str(exc)) from None
    return SweepResults(root, meta, rows)


def load(path: str | Path):
    """Read a directory written by ``simcomp simulate``, :meth:`Result.save` or a sweep.

    Parameters
    ----------
    path : str or Path
        A simulate directory (``summary.json``) or a finished sweep
        directory (``sweep.json`` and ``results.csv``).

    Returns
    -------
    Result or SweepResults

    Every file is checked first (simcomp.reading): summary.json, config.toml
    against the config recorded in summary.json, and each run's trace.npz.

    Raises
    ------
    simcomp.outputs.DamagedOutputError
        ``path`` is not such a directory, or a file in it is damaged, does
        not match the others or was edited; a one-line message names the
        file.  It is both a ``simcomp.OutputError`` and a ``ValueError``.

    Examples
    --------
    >>> import simcomp
    >>> result = simcomp.load("out")                  # doctest: +SKIP
    >>> result.summary["comparison"]["gap"]           # doctest: +SKIP
    >>> simcomp.load("seeds16").to_dataframe()        # doctest: +SKIP
    """
    from .reading import read_simulate_dir

    root = Path(path)
    if (root / "sweep.json").is_file() and not (root / "summary.json").exists():
        return _load_sweep(root)
    cfg, summary, traces = read_simulate_dir(root)
    if summary.get("engine") == "fusion":
        from .fusion_result import fusion_prediction
        from .fusion_train import prepare

        return FusionResult(cfg, summary, traces, fusion_prediction(cfg, prepare(cfg)))
    return Result(cfg, summary, traces)


class Predictions(dict):
    """What :func:`predict` returns: run name -> that run's predictions (a dict).

    Each entry holds the quantities known before training, keyed as in
    ``summary.json`` (``predicted_winner``, ``predicted_learned_step``,
    ``race_learned_step``, ...), ``method_prediction`` for the joint run
    (the config's training method; absent for ``none``), and the full
    :class:`simcomp.theory.Prediction` under ``"prediction"``.

    Attributes
    ----------
    comparison : dict or None
        ``predicted_gap``, ``predicted_best_unimodal`` and
        ``method_predicted_gap`` (compare mode; None otherwise).
    config : Config
    """

    def __init__(self, config: Config, entries: dict, comparison):
        super().__init__(entries)
        self.config = config
        self.comparison = comparison

    def __repr__(self) -> str:
        # an entry's Prediction holds every recorded alignment: show the headline only
        parts = [f"{name}: winner {entry.get('predicted_winner')} "
                 f"steps {entry.get('predicted_learned_step')}" for name, entry in self.items()]
        return f"<simcomp.Predictions seed={self.config.seed} " + "; ".join(parts) + ">"

    def to_json(self) -> dict:
        """The object ``simcomp theory --json`` prints (same keys, same values)."""
        from .outputs import to_jsonable

        runs = [{"run": name, **{k: v for k, v in entry.items() if k != "prediction"}}
                for name, entry in self.items()]
        return json.loads(json.dumps({"seed": self.config.seed, "config": self.config.to_dict(),
                                      "runs": to_jsonable(runs),
                                      "comparison": self.comparison}))

    def to_dataframe(self):
        """One row per (run, modality) of the per-modality predictions, as a pandas DataFrame.

        Needs the optional dependency pandas (``pip install pandas``).

        Examples
        --------
        >>> import simcomp
        >>> pred = simcomp.predict(simcomp.build_config(overrides={"train.steps": 50}))
        >>> pred.to_dataframe()[["run", "modality", "race_learned_step"]].shape[1]
        3
        """
        from .frames import modality_rows_frame

        return modality_rows_frame([{"run": name, **entry} for name, entry in self.items()])


def predict(config=None) -> Predictions:
    """The theory's predictions for a config and seed, without training.

    Exactly what ``simcomp theory --json`` reports (both call
    :func:`simcomp.experiment.predict_experiment`), method-aware: the joint
    run carries the prediction under the config's training method.

    Parameters
    ----------
    config : Config, path or None

    Returns
    -------
    Predictions
        Run name -> the quantities known before training, keyed as in
        ``summary.json``; ``.comparison`` the predicted gaps.

    Examples
    --------
    >>> import simcomp
    >>> cfg = simcomp.build_config(overrides={"method.name": "aux", "train.steps": 100})
    >>> pred = simcomp.predict(cfg)
    >>> pred["joint"]["method_prediction"]["method"]
    'aux'
    """
    from .experiment import predict_experiment

    cfg = _as_config(config)
    _warn_noop(cfg)
    planned = predict_experiment(cfg)
    out = {}
    for row in planned.rows:
        entry = {k: v for k, v in row.items() if k != "run"}
        entry["prediction"] = planned.predictions[row["run"]]
        out[row["run"]] = entry
    return Predictions(cfg, out, planned.comparison)


def _grid_specs(grid) -> list[str]:
    from .sweep.grid import GridAxis

    if grid is None:
        return []
    if isinstance(grid, (str, GridAxis)):
        return [grid]
    if isinstance(grid, Mapping):
        from .config_file import _toml_value

        specs = []
        for key, values in grid.items():
            if isinstance(values, str):
                specs.append(f"{key}={values}")  # "START:STOP:NUM" or "V1,V2"
                continue
            try:
                values = [_plain(v) for v in _plain(values)]
                text = ",".join(_toml_value(v) for v in values)
            except TypeError:
                raise ConfigError(f"grid {key}: expected a list of values or 'START:STOP:NUM', "
                                  f"got {values!r}") from None
            specs.append(f"{key}={text}")
        return specs
    try:
        return list(grid)
    except TypeError:
        raise ConfigError(f"grid must be a mapping of keys to values, a list of 'KEY=...' "
                          f"strings or None, got {grid!r} ({type(grid).__name__})") from None


class SweepRows(list):
    """What :func:`sweep` returns: the rows of results.csv (dicts), with :meth:`to_dataframe`."""

    def to_dataframe(self):
        """The rows as a pandas DataFrame (needs the optional dependency pandas)."""
        from .frames import records_frame

        return records_frame(self)


def sweep(config=None, *, grid=None, seeds: int = 1, out: str | Path | None = None,
          workers: int | None = None, scheduler: Any = None, force: bool = False,
          progress: bool | None = None, plot: bool = True, paired=None) -> list[dict]:
    """Run a grid of configs times seeds; the rows of ``results.csv``.

    Parameters
    ----------
    config : Config, path or None
        The base configuration.
    grid : mapping or sequence, optional
        Axes: ``{"data.modality.0.beta": [1.0, 2.0], "data.modality.0.presence":
        "0.5:1:3"}`` (a list of values, or ``START:STOP:NUM`` / ``V1,V2``
        text), or a list of ``KEY=...`` strings as the CLI's ``--grid``.
    seeds : int
        Runs per grid point, each with its own seed derived from the base seed.
    out : path, optional
        Write the sweep directory (``results.csv``, ``sweep.json``, ``runs/``,
        ``figures/``) there; rerunning resumes.  None: a temporary directory
        that is removed afterwards.
    workers : int, optional
        Parallel worker processes (default: the number of cores).
    scheduler : str or distributed.Client, optional
        A dask scheduler address, ``"local"`` or a client.
    force : bool
        Start over in an existing sweep directory.
    progress : bool, optional
        Draw a progress bar on stderr (runs done, time left). None (the
        default) or True: where a person watches -- stderr is a terminal, or
        this is a notebook (IPython kernel) -- and never where stderr is
        redirected to a file or pipe (scripts, logs get no control
        characters). False: never.
    plot : bool
        Draw the phase diagrams into ``out/figures`` (when ``out`` is given
        and the grid has a numeric axis).
    paired : list of str or bool, optional
        Grid keys whose values share seeds at a grid point (paired
        comparisons); default the ``method.*`` axes; False: none.

    Returns
    -------
    SweepRows
        A list with one dict per run in plan order (grid point, then
        repeat): the grid values, ``repeat``, ``seed`` and every results.csv
        column, with Python values (int, float, str, bool) and None for
        empty cells; ``.to_dataframe()`` gives a pandas DataFrame.

    Examples
    --------
    >>> import simcomp
    >>> cfg = simcomp.build_config(overrides={"train.steps": 100})
    >>> rows = simcomp.sweep(cfg, grid={"method.name": ["none", "aux"]}, seeds=4,
    ...                      out="methods")                           # doctest: +SKIP
    >>> rows.to_dataframe().groupby("method.name")["gap"].mean()     # doctest: +SKIP
    """
    from .progress import ProgressBar

    state: dict[str, Any] = {}

    def on_start(done_before: int, pending: int) -> None:
        # None (the default) and True draw where someone watches (ProgressBar checks).
        wanted = progress is None or bool(progress)
        state["bar"] = ProgressBar(pending, "sweep", enabled=wanted and pending > 0)

    def advance(amount: int) -> None:
        if "bar" in state:
            state["bar"].update(amount)

    def run_into(directory):
        from .outputs import OutputError
        from .sweep import SweepError

        try:
            return run_sweep_into(config, grid, _plain(seeds), directory, workers=_plain(workers),
                                  scheduler=scheduler, force=force, progress=advance,
                                  on_start=on_start, paired=paired)
        except (SweepError, OutputError, ConfigError) as exc:
            raise _for_python(exc) from None
        finally:
            if "bar" in state:
                state["bar"].close()

    if out is None:
        with tempfile.TemporaryDirectory(prefix="simcomp-sweep-") as tmp:
            result = run_into(Path(tmp) / "sweep")
    else:
        result = run_into(out)
        if plot:
            draw_sweep_figures(out)
    return SweepRows(dict(row) for row in result.rows)


# The command's flags in messages meant for both; a Python caller reads the arguments.
_FLAG_WORDS = (("--max-runs N", "max_runs=N"), ("--max-runs", "max_runs="), ("--seeds", "seeds"),
               ("--grid", "grid"), ("--force", "force=True"), ("--out", "out"),
               ("--workers", "workers"), ("--scheduler", "scheduler"),
               ("--batch-size", "batch_size"))


def _for_python(exc: Exception) -> Exception:
    """The same exception with the command's flags named as this API's arguments."""
    import re

    text = str(exc)
    # "pass --max-runs 120 (plan_sweep(..., max_runs=120) from Python)": keep the Python half
    text = re.sub(r"pass --max-runs (\d+) \(plan_sweep\(\.\.\., max_runs=\d+\) from Python\)",
                  r"pass max_runs=\1", text)
    for flag, word in _FLAG_WORDS:
        text = text.replace(flag, word)
    new = type(exc)(text)
    return new


def run_sweep_into(config, grid, seeds: int, out: str | Path, *, max_runs: int | None = None,
                   paired=None, **options):
    """Plan the sweep of ``config`` x ``grid`` x ``seeds`` and run it into ``out``.

    What :func:`sweep` and ``simcomp sweep`` both run; ``options`` go to
    :func:`simcomp.sweep.run_sweep` (workers, scheduler, batch_size, force,
    progress, log, on_start, connect_timeout).  Returns its
    :class:`~simcomp.sweep.SweepResult`.
    """
    from .sweep import MAX_RUNS, plan_sweep, run_sweep

    plan = plan_sweep(_as_config(config), _grid_specs(grid), seeds,
                      max_runs=MAX_RUNS if max_runs is None else max_runs, paired=paired)
    return run_sweep(plan, out, **options)


def draw_sweep_figures(path: str | Path) -> list[Path]:
    """Draw a complete sweep's phase diagrams into ``path/figures`` (none without numeric axes)."""
    from .phase import NoAxes, phase_figures

    try:
        return phase_figures(path)
    except NoAxes:
        return []
