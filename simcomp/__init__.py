"""simcomp: modality competition in late-fusion networks, simulated and predicted.

The public API (numpydoc in :mod:`simcomp.api`)::

    import simcomp

    cfg = simcomp.build_config(overrides={"train.steps": 200})  # the embedded default, changed
    result = simcomp.simulate(cfg)        # train the joint and uni-modal networks, predict each
    result.summary                        # exactly what summary.json holds
    result.traces["joint"]["test_error"]  # traces as NumPy arrays, keyed by run
    result.save("out")                    # the directory `simcomp simulate --out out` writes
    simcomp.load("out")                   # ... read back
    simcomp.predict(cfg)                  # the theory alone, no training
    rows = simcomp.sweep(cfg, grid={"data.modality.0.beta": [1.0, 2.0]}, seeds=4)
    cal = simcomp.calibrate("my-model.toml")  # real measurements -> the toy's answers (docs/calibration.md)

"Never" (a modality not learned by the horizon, a quantity that does not
apply) is ``None`` everywhere.  Importing simcomp loads neither the compiled
kernels nor matplotlib nor dask; the functions import what they need.
"""

import sys as _sys

if _sys.argv[:1] == ["-m"] or _sys.argv[0].endswith(("/simcomp", "\\simcomp", "simcomp.exe")):
    # The `simcomp` command (`python -m simcomp.cli` while runpy imports the package, or the
    # console script): Ctrl-C during the imports below (NumPy, ...), before the command
    # installs its own handlers (simcomp.interrupts.guard), ends it with one line instead of a
    # traceback; nothing is written yet.  The C module: `signal` itself takes a while to import.
    import _signal

    def _interrupted_while_importing(signum, frame):
        import os

        # Also in place again after the command ends: a second Ctrl-C that arrives once the
        # first was reported ends the process with the first one's code and no second line.
        interrupts = _sys.modules.get("simcomp.interrupts")
        done = getattr(interrupts, "raised_signal", lambda: None)()
        ended = getattr(interrupts, "ended_code", lambda: None)()
        if done is None and ended is not None:
            # The command has ended and said what it did; only the shutdown was left, so the
            # signal cuts that short, keeping the command's code (not "nothing written").
            os._exit(ended)
        if done is None:
            what = {_signal.SIGTERM: b"terminated (SIGTERM)",
                    getattr(_signal, "SIGHUP", -1): b"hung up (SIGHUP)"}.get(signum, b"interrupted")
            os.write(2, b"simcomp: " + what + b"; no complete output was written\n")
        os._exit(128 + (done or signum))

    # SIGTERM and SIGHUP too (a batch system's time limit, a closed terminal): one line and
    # their own exit code instead of a silent death; a signal the caller ignores (nohup)
    # stays ignored.
    for _signum in (_signal.SIGINT, _signal.SIGTERM, getattr(_signal, "SIGHUP", None)):
        if _signum is not None and _signal.getsignal(_signum) not in (_signal.SIG_IGN, None):
            _signal.signal(_signum, _interrupted_while_importing)

import types as _types

from ._version import __version__
from .api import Result, build_config, load, predict, simulate
from .config import Config, ConfigError


def __getattr__(name):
    # OutputError's module imports numpy: loaded on first use.
    if name == "OutputError":
        from .outputs import OutputError

        return OutputError
    # ``simcomp.calibrate``: the package, callable as :func:`simcomp.calibrate.calibrate`.
    if name == "calibrate":
        import importlib

        return importlib.import_module(".calibrate", __name__)
    raise AttributeError(f"module 'simcomp' has no attribute {name!r}")


class _Package(_types.ModuleType):
    """The simcomp package, whose name ``sweep`` is always :func:`simcomp.api.sweep`.

    The engine of sweeps is the subpackage ``simcomp/sweep/`` (imported as
    ``from simcomp.sweep import run_sweep``), and importing a subpackage
    binds its name in the parent package: without this property, the first
    ``import simcomp.sweep...`` anywhere would replace the public function
    by the module.  The binding is ignored; the module stays in
    ``sys.modules["simcomp.sweep"]``.
    """

    @property
    def sweep(self):
        from .api import sweep

        return sweep

    @sweep.setter
    def sweep(self, value):
        pass  # the import system binding the subpackage: simcomp.sweep stays the function


_sys.modules[__name__].__class__ = _Package


__all__ = [
    "__version__",
    "Config",
    "ConfigError",
    "OutputError",
    "Result",
    "build_config",
    "simulate",
    "load",
    "predict",
    "sweep",
    "calibrate",
]
