"""Shared test fixtures' data (tests/ is on sys.path under pytest's default import mode)."""

from simcomp.data import make_experiment_data


def poisoned_data(cfg, make=make_experiment_data):
    """Data whose second GD step overflows: two samples, equal but for their labels,
    with a huge off-signal coordinate.

    One of them is always misclassified by a huge margin, so the first step
    (finite) moves a weight by about 1e198 and the second overflows.
    """
    data = make(cfg)
    data.train.X[0][1] = data.train.X[0][0]
    data.train.X[1][1] = data.train.X[1][0]
    data.train.X[0][:2, 1] = 1e200
    data.train.y[1] = -data.train.y[0]
    return data
