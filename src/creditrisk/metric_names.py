"""Every name of a model-evaluation metric: one place.

The classification metrics :func:`creditrisk.evaluation.classification_metrics` computes,
which way each is better, and the keys a training run logs them under (``test_*`` on
the held-out split, ``baseline_test_*`` for the logistic-regression baseline, the
cross-validation keys ``cv_*``). The promotion gate (:class:`creditrisk.config.GateConfig`)
names metrics by these names; the registry tags versions with :data:`VERSION_TAGS`.

Prometheus names of the monitoring jobs live in :mod:`creditrisk.monitoring.names`.
Imports nothing of ours.
"""

from __future__ import annotations

# --- the classification metrics (keys of classification_metrics, in its order) --------
ROC_AUC = "roc_auc"
PR_AUC = "pr_auc"
BRIER = "brier"
LOG_LOSS = "log_loss"
KS = "ks"
ECE = "ece"

CLASSIFICATION: tuple[str, ...] = (ROC_AUC, PR_AUC, BRIER, LOG_LOSS, KS, ECE)
#: Metrics where a larger value is a better model; the others are lower-is-better.
HIGHER_IS_BETTER: frozenset[str] = frozenset({ROC_AUC, PR_AUC, KS})
LOWER_IS_BETTER: frozenset[str] = frozenset(CLASSIFICATION) - HIGHER_IS_BETTER
#: Metrics whose values lie in [0, 1] (all but the unbounded log loss).
UNIT_INTERVAL: frozenset[str] = frozenset(CLASSIFICATION) - {LOG_LOSS}


def greater_is_better(name: str) -> bool:
    """Whether a larger ``name`` is better (MLflow's ``greater_is_better``)."""
    if name not in CLASSIFICATION:
        raise KeyError(f"{name!r} is not an evaluation metric (one of "
                       f"{', '.join(CLASSIFICATION)})")
    return name in HIGHER_IS_BETTER


# --- prefixes of the run's logged metrics ----------------------------------------------
TEST = "test_"  # the model on the held-out split
BASELINE_TEST = "baseline_test_"  # the baseline on the held-out split
CV = "cv_"  # cross-validation on the training split
BASELINE_CV = "baseline_cv_"
#: Prefixes of the metrics a saved model carries in its metadata.
MODEL_METADATA_PREFIXES: tuple[str, ...] = (TEST, CV)


def test(name: str) -> str:
    """The run-metric key of ``name`` on the held-out split (``test_roc_auc``)."""
    return f"{TEST}{name}"


def baseline_test(name: str) -> str:
    """The run-metric key of the baseline's ``name`` on the held-out split."""
    return f"{BASELINE_TEST}{name}"


def unprefixed(key: str, prefix: str) -> str | None:
    """``key`` without ``prefix`` when it is a classification metric's key, else None:
    ``unprefixed("test_brier", TEST) == "brier"``, ``unprefixed("test_tp", TEST) is None``."""
    if key.startswith(prefix) and key[len(prefix):] in CLASSIFICATION:
        return key[len(prefix):]
    return None


TEST_ROC_AUC = test(ROC_AUC)
TEST_PR_AUC = test(PR_AUC)
TEST_BRIER = test(BRIER)
TEST_KS = test(KS)
TEST_ECE = test(ECE)
BASELINE_TEST_ROC_AUC = baseline_test(ROC_AUC)

# --- cross-validation (training.fit) and the search ------------------------------------
CV_ROC_AUC_MEAN = f"{CV}{ROC_AUC}_mean"
CV_ROC_AUC_STD = f"{CV}{ROC_AUC}_std"
CV_BRIER = f"{CV}{BRIER}"
CV_BRIER_UNCALIBRATED = f"{CV}{BRIER}_uncalibrated"
BASELINE_CV_ROC_AUC_MEAN = f"{BASELINE_CV}{ROC_AUC}_mean"
SEARCH_BEST_CV_ROC_AUC = f"best_{CV}{ROC_AUC}"  # in the search summary

# --- other run metrics -----------------------------------------------------------------
THRESHOLD = "threshold"  # the decision threshold (decline when p >= t)

#: Run metrics copied onto a registered version as tags (``creditrisk model show``).
VERSION_TAGS: tuple[str, ...] = (TEST_ROC_AUC, TEST_PR_AUC, TEST_BRIER, THRESHOLD)
