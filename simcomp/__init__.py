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

from ._version import __version__
from .api import Result, build_config, load, predict, simulate
from .config import Config, ConfigError


def __getattr__(name):
    # OutputError's module imports numpy: loaded on first use.
    if name == "OutputError":
        from .outputs import OutputError

        return OutputError
    # ``simcomp.sweep`` is both the sweep package and, called, the API function
    # :func:`simcomp.api.sweep` (the package is callable); imported on first use.
    if name == "sweep":
        import importlib

        return importlib.import_module(".sweep", __name__)
    # ``simcomp.calibrate`` likewise: the package, callable as :func:`simcomp.calibrate.calibrate`.
    if name == "calibrate":
        import importlib

        return importlib.import_module(".calibrate", __name__)
    raise AttributeError(f"module 'simcomp' has no attribute {name!r}")


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
