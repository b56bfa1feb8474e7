"""``greedy``: re-balancing steps for the under-used modality -- an analogue of Wu et al.'s
greedy-learner mitigation, not a transcription (late fusion has no cross-modal MMTM layers)."""

from .spec import Calibration, MethodSpec, Setting

SPEC = MethodSpec(
    name="greedy",
    summary="(analogue) when the modalities' utilisation rates differ by more than epsilon, "
            "the least used one trains for `window` steps against the others' mean output",
    settings=(Setting("epsilon", "float", 0.01, lo=0.0,
                      doc="threshold >= 0 on the spread of the utilisation rates"),
              Setting("window", "int", 5, lo=1, doc="re-balancing steps per trigger >= 1"),
              Setting("start", "int", 2, lo=0, doc="first step the controller measures")),
    source="analogue of Wu et al., ICML 2022, arXiv:2202.05306 (github.com/nyukat/"
           "greedy_multimodal_learning, src/callbacks.py, src/balanced_mmtm.py; "
           "BalanceBenchmark balancemm/trainer/Greedy_trainer.py)",
    published_default="epsilon = 0.01, window 5, from epoch 2 (training_guided.gin)",
    analogue=True,
    reads_phi=True,
    accumulators=3,
    # row 0: the mean outputs of the previous step; row 1: curating (0/1), cared modality, counter
    state_shape=lambda K, B, m, n, D: (2, max(K, 3)),
    calibration=Calibration(
        "epsilon", 0.01, (0.0, 0.01, 0.05, 0.2),
        settings=lambda value, start, K, winner, T: {"epsilon": value},
        note="an analogue of the greedy learner's re-balancing (not the published method); "
             "the published threshold epsilon, window 5 from step 2"),
)
