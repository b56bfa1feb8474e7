"""Record the reduced-dynamics and noisy-race outputs checked by test_theory_golden.py.

Run from the repository root: ``PYTHONPATH=. python tests/theory_golden_gen.py``
(only to re-record deliberately changed outputs). The file carries the
signature of the machine's compiled code (tests/reference_files.py).
"""
import numpy as np
from reference_files import signature_arrays
from simcomp import theory as th
from simcomp.theory import reduced as th_red

def cases():
    rng = np.random.default_rng(12345)
    out = []
    # (name, alignment0, beta, presence, q, rho, eta, steps, learner, activation, thr, rec)
    out.append(("sym_q3_K2", rng.normal(0, 0.01, (2, 1, 8)), [2.0, 1.0], [0.8, 1.0], 3.0, 1.0, 1.0, 300, "symmetric", "srelu", None, 5))
    out.append(("sym_q2.5_K3", rng.normal(0, 0.02, (3, 1, 5)), [1.5, 1.2, 0.9], [0.6, 0.9, 1.0], 2.5, 0.7, 0.5, 400, "symmetric", "srelu", 1.3, 7))
    out.append(("sym_q2_K1", rng.normal(0, 0.05, (1, 1, 4)), [1.0], [1.0], 2.0, 1.0, 1.0, 200, "symmetric", "srelu", None, 1))
    out.append(("banks_srelu_K3", rng.normal(0, 0.01, (3, 2, 6)), [2.0, 1.0, 1.5], [0.7, 1.0, 0.5], 3.0, 1.0, 1.0, 300, "class_banks", "srelu", None, 10))
    out.append(("banks_relu_K2", rng.normal(0, 0.01, (2, 2, 8)), [1.0, 0.8], [0.9, 1.0], 3.0, 1.0, 0.3, 250, "class_banks", "relu", 0.8, 3))
    out.append(("banks_q4_K2", rng.normal(0, 0.05, (2, 2, 3)), [1.2, 2.0], [1.0, 0.4], 4.0, 0.5, 2.0, 150, "class_banks", "srelu", 2.0, 4))
    return out

def record():
    data = {}
    for name, a0, beta, pres, q, rho, eta, steps, learner, act, thr, rec in cases():
        pats = th.population_patterns(pres)
        for kind, fn in (("k", th.reduced_dynamics), ("np", th_red._reduced_dynamics_numpy)):
            r = fn(a0, beta, *pats, q, rho, eta, steps, learner, act, thr, rec)
            for f in ("steps", "alignment", "learned_step", "learned_step_bank", "final_alignment", "loss"):
                data[f"{name}/{kind}/{f}"] = getattr(r, f)
    g = np.array([[0.01, 0.02], [0.005, 0.03]])
    data["noisy_race"] = th.race_learn_step_noisy(g, [[1.0, 0.5], [0.4, 0.8]], [[2.0], [1.0]], 3.0, 1.0, 1.0,
                                                  [[0.02], [0.05]], [[0.11], [0.2]], None, True, 5000)
    data["noisy_race_banks"] = th.race_learn_step_noisy(g, [[1.0, 0.5], [0.4, 0.8]], [[2.0], [1.0]], 3.0, 1.0, 1.0,
                                                  [[0.02], [0.05]], [[0.11], [0.2]], 1.5, False, 5000)
    return data

if __name__ == "__main__":
    np.savez_compressed("tests/data/theory_golden.npz", **record(), **signature_arrays())
