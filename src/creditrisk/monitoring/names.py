"""Every Prometheus name the monitoring jobs push, the Pushgateway job names, and the
names the alert rules and dashboards read: one place.

The serving metrics (requests, validation failures, probability histogram, decisions,
KServe's stage latencies) are defined in :mod:`creditrisk.serve.metrics`; re-exported
here by name so the dashboards and rules import one module.
"""

from __future__ import annotations

PREFIX = "creditrisk"

#: Pushgateway ``job`` labels (grouping key: job and ``model``).
DRIFT_JOB = f"{PREFIX}-drift"
PERFORMANCE_JOB = f"{PREFIX}-performance"
CHALLENGER_JOB = f"{PREFIX}-challenger"
#: The grouping-key label naming the registered model.
MODEL_LABEL = "model"

# --- the drift job ---------------------------------------------------------------------
DRIFT_SHARE = f"{PREFIX}_drift_share_drifted_features"
DRIFT_DETECTED = f"{PREFIX}_drift_detected"
DRIFT_FEATURE_SCORE = f"{PREFIX}_drift_feature_score"  # {feature}
DRIFT_FEATURE_DRIFTED = f"{PREFIX}_drift_feature_drifted"  # {feature}
DRIFT_PREDICTION_SCORE = f"{PREFIX}_drift_prediction_score"
DRIFT_ROWS = f"{PREFIX}_drift_rows"  # {dataset}
DRIFT_WINDOW_END = f"{PREFIX}_drift_window_end_timestamp_seconds"
DRIFT_LAST_SUCCESS = f"{PREFIX}_drift_last_success_timestamp_seconds"
DRIFT_MALFORMED = f"{PREFIX}_drift_malformed_log_lines"
#: Population stability on the model's frozen bins (creditrisk.stability).
PSI_SCORE = f"{PREFIX}_psi_score"
PSI_FEATURE = f"{PREFIX}_psi_feature"  # {feature}
#: Performance estimated from the window's probabilities (creditrisk.estimation).
ESTIMATED_ROC_AUC = f"{PREFIX}_estimated_roc_auc"
ESTIMATED_DEFAULT_RATE = f"{PREFIX}_estimated_default_rate"

# --- the live-performance job ----------------------------------------------------------
LIVE_ROC_AUC = f"{PREFIX}_live_roc_auc"
LIVE_PR_AUC = f"{PREFIX}_live_pr_auc"
LIVE_BRIER = f"{PREFIX}_live_brier"
LIVE_ECE = f"{PREFIX}_live_ece"
LIVE_LABELLED_ROWS = f"{PREFIX}_live_labelled_rows"
LIVE_DEFAULT_RATE = f"{PREFIX}_live_default_rate"
LIVE_APPROVAL_RATE = f"{PREFIX}_live_approval_rate"  # {attribute, group}
LIVE_GROUP_ROC_AUC = f"{PREFIX}_live_group_roc_auc"  # {attribute, group}
LIVE_LAST_SUCCESS = f"{PREFIX}_live_last_success_timestamp_seconds"
#: The champion's held-out figures, pushed beside the live ones.
CHAMPION_TEST_ROC_AUC = f"{PREFIX}_champion_test_roc_auc"
CHAMPION_TEST_BRIER = f"{PREFIX}_champion_test_brier"
CHAMPION_TEST_APPROVAL_RATE = f"{PREFIX}_champion_test_approval_rate"  # {attribute, group}
#: The score-band back-test (creditrisk.backtest), per risk band of the champion.
BAND_PREDICTED_DEFAULT_RATE = f"{PREFIX}_band_predicted_default_rate"  # {band}
BAND_OBSERVED_DEFAULT_RATE = f"{PREFIX}_band_observed_default_rate"  # {band}
#: The band's traffic light as a number: creditrisk.backtest.LIGHT_VALUES (green 0,
#: amber 1, red 2, insufficient -1: too few labels to judge, never read as a light).
BAND_LIGHT = f"{PREFIX}_band_light"  # {band}

# --- the champion/challenger job (shadow scoring's evidence) ----------------------------
CHALLENGER_SHADOW_RECORDS = f"{PREFIX}_challenger_shadow_records"
CHALLENGER_LABELLED_RECORDS = f"{PREFIX}_challenger_labelled_records"
CHALLENGER_AGREEMENT = f"{PREFIX}_challenger_decision_agreement"
CHALLENGER_SWAPS = f"{PREFIX}_challenger_swaps"  # {band, direction}: swap_in / swap_out
CHALLENGER_CORRELATION = f"{PREFIX}_challenger_score_correlation"
CHALLENGER_PSI = f"{PREFIX}_challenger_psi"
CHALLENGER_ROC_AUC = f"{PREFIX}_challenger_roc_auc"  # {scorer}: champion / challenger
CHALLENGER_BRIER = f"{PREFIX}_challenger_brier"  # {scorer}: champion / challenger
CHALLENGER_LAST_SUCCESS = f"{PREFIX}_challenger_last_success_timestamp_seconds"

#: ``attribute`` value of the overall approval rate (beside SEX, EDUCATION, AGE_BAND).
ALL_GROUPS = "ALL"


def serving_names() -> dict[str, str]:
    """Names of the serving metrics as Prometheus exposes them (counters with
    ``_total``), read from :mod:`creditrisk.serve.metrics` and KServe."""
    from kserve.metrics import POST_HIST_TIME, PRE_HIST_TIME, PREDICT_HIST_TIME

    from creditrisk.serve import metrics as m

    return {
        "requests": f"{m.REQUESTS._name}_total",
        "validation_failures": f"{m.VALIDATION_FAILURES._name}_total",
        "model_info": m.MODEL_INFO._name,
        "predlog_records": f"{m.PREDLOG_RECORDS._name}_total",
        "predictor_errors": f"{m.PREDICTOR_ERRORS._name}_total",
        "probability": f"{m.PREFIX}_predicted_probability",
        "decisions": f"{m.PREFIX}_decisions_total",
        "shadow_requests": f"{m.SHADOW_REQUESTS._name}_total",
        "challenger_probability": f"{m.PREFIX}_challenger_predicted_probability",
        "preprocess_seconds": PRE_HIST_TIME._name,
        "predict_seconds": PREDICT_HIST_TIME._name,
        "postprocess_seconds": POST_HIST_TIME._name,
    }

# --- schedules of the jobs (the CronJobs and the staleness alerts read these) -----------
#: The drift job runs hourly; its staleness alert fires after twice that without success.
DRIFT_SCHEDULE = "15 * * * *"
DRIFT_INTERVAL_S = 3600
#: The live-performance job runs daily (labels arrive late).
PERFORMANCE_SCHEDULE = "30 2 * * *"
PERFORMANCE_INTERVAL_S = 86400
#: The champion/challenger job runs daily (its CronJob: manifests/components/challenger,
#: the chart's challenger.evidence.schedule); its staleness alert allows two runs.
CHALLENGER_SCHEDULE = "15 3 * * *"
CHALLENGER_INTERVAL_S = 86400
#: Scrape ``job`` names of the servers (the rules and dashboards match them by regex
#: ``.*transformer.*`` / ``.*predictor.*``, so a cluster's ServiceMonitor names fit too).
TRANSFORMER_JOB = f"{PREFIX}-transformer"
PREDICTOR_JOB = f"{PREFIX}-predictor"
PUSHGATEWAY_JOB = f"{PREFIX}-pushgateway"
#: The challenger's predictor (shadow scoring): a name matching neither regex, so the
#: champion's predictor alerts and panels never read the challenger's series.
CHALLENGER_SERVER_JOB = f"{PREFIX}-challenger-server"
