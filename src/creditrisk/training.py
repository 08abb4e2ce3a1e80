"""Training: cross-validation, bounded hyper-parameter search, calibration, the decision
threshold, and the held-out evaluation, driven by a :class:`TrainConfig`.

Stage functions take keyword arguments and do no work at import time; the CLI and the
pipeline components call them.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from creditrisk import evaluation as ev
from creditrisk import metric_names as mn
from creditrisk.calibration import choose as choose_calibration
from creditrisk.config import TrainConfig
from creditrisk.contract import FEATURE_NAMES, TARGET
from creditrisk.data import split as split_frame
from creditrisk.errors import DataError
from creditrisk.model import (
    CalibratedClassifier,
    ModelMetadata,
    make_baseline,
    make_lightgbm,
    make_pipeline,
    save_model,
)
from creditrisk.monotone import lightgbm_params
from creditrisk.rundir import VALIDATION_HTML_ARTIFACT, RunDir
from creditrisk.settings import get_settings

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


def _noop(_: str) -> None:
    pass


def _xy(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    if TARGET not in df:
        raise DataError(f"the training data has no target column {TARGET!r}")
    return df.loc[:, list(FEATURE_NAMES)], df[TARGET].to_numpy()


def _oof(estimator: Any, X: pd.DataFrame, y: np.ndarray, *, folds: int, seed: int) -> np.ndarray:
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return np.asarray(cross_val_predict(clone(estimator), X, y, cv=cv,
                                        method="predict_proba")[:, 1])


def _fold_aucs(y: np.ndarray, oof: np.ndarray, *, folds: int, seed: int) -> list[float]:
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return [float(roc_auc_score(y[te], oof[te])) for _, te in cv.split(np.zeros(len(y)), y)]


def search_params(
    X: pd.DataFrame, y: np.ndarray, config: TrainConfig, progress: Progress = _noop
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Bounded Optuna (TPE) search of LightGBM parameters by CV ROC AUC."""
    import optuna

    s = config.search
    base = {**config.model.params, **lightgbm_params(config.model.monotone.active())}
    if not s.enabled:
        return base, {"enabled": False}
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        params = {
            **base,
            "n_estimators": trial.suggest_int("n_estimators", *s.n_estimators, step=50),
            "learning_rate": trial.suggest_float("learning_rate", *s.learning_rate, log=True),
            "num_leaves": trial.suggest_int("num_leaves", *s.num_leaves),
            "min_child_samples": trial.suggest_int("min_child_samples", *s.min_child_samples,
                                                   log=True),
            "colsample_bytree": trial.suggest_float("colsample_bytree", *s.colsample_bytree),
            "reg_lambda": trial.suggest_float("reg_lambda", *s.reg_lambda, log=True),
        }
        est = make_pipeline(make_lightgbm(params, seed=config.seed, n_jobs=config.model.n_jobs))
        oof = _oof(est, X, y, folds=s.folds, seed=config.seed)
        auc = float(roc_auc_score(y, oof))
        progress(f"search trial {trial.number + 1}/{s.n_trials}: cv auc {auc:.4f}")
        return auc

    sampler = optuna.samplers.TPESampler(seed=config.seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({k: base[k] for k in ("n_estimators", "learning_rate", "num_leaves",
                                               "min_child_samples", "colsample_bytree",
                                               "reg_lambda") if k in base})
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=s.n_trials, timeout=s.timeout_s)
    best = {**base, **study.best_params}
    summary = {
        "enabled": True,
        "trials": len(study.trials),
        mn.SEARCH_BEST_CV_ROC_AUC: float(study.best_value),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    return best, summary


@dataclass
class FitResult:
    """A fitted challenger and baseline, with what cross-validation measured."""

    model: Any
    baseline: Any
    params: dict[str, Any]
    calibration: str | None
    threshold: ev.ThresholdChoice
    cv: dict[str, float]
    search: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)


def fit(*, train: pd.DataFrame, config: TrainConfig, progress: Progress = _noop) -> FitResult:
    """Search, cross-validate, calibrate and fit the challenger and the baseline."""
    X, y = _xy(train)
    if len(np.unique(y)) < 2:
        raise DataError("the training data holds a single class; both outcomes are needed")
    seconds: dict[str, float] = {}
    folds, seed = config.cv.folds, config.seed

    t0 = time.perf_counter()
    progress("baseline: cross-validating logistic regression")
    baseline = make_baseline(C=config.baseline.C, max_iter=config.baseline.max_iter, seed=seed)
    base_oof = _oof(baseline, X, y, folds=folds, seed=seed)
    baseline.fit(X, y)
    seconds["baseline"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    progress("search: tuning LightGBM")
    params, search = search_params(X, y, config, progress)
    seconds["search"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    progress(f"cv: {folds}-fold cross-validation of the best parameters")
    lgbm = make_lightgbm(params, seed=seed, n_jobs=config.model.n_jobs)
    oof = _oof(make_pipeline(lgbm), X, y, folds=folds, seed=seed)
    aucs = _fold_aucs(y, oof, folds=folds, seed=seed)
    seconds["cv"] = time.perf_counter() - t0

    # Calibration, judged on out-of-fold predictions only (creditrisk.calibration).
    t0 = time.perf_counter()
    chosen = choose_calibration(oof, y, config.calibration, folds=folds, seed=seed)
    best_method, best_brier, brier_raw, scores = (chosen.method, chosen.brier,
                                                  chosen.brier_raw, chosen.scores)
    progress(f"calibration: {best_method or 'none'} (oof brier {brier_raw:.4f} -> "
             f"{best_brier:.4f}, ece {chosen.ece_raw:.4f} -> {chosen.ece:.4f})")

    progress("fit: final model on all training rows")
    if best_method:
        model = make_pipeline(CalibratedClassifier(lgbm, best_method))
        features = model.named_steps["features"].fit(X)
        model.named_steps["classifier"].fit_from_oof(features.transform(X), y, oof)
    else:
        model = make_pipeline(lgbm).fit(X, y)
    seconds["fit"] = time.perf_counter() - t0

    threshold = ev.choose_threshold(
        y, scores,
        cost_false_negative=config.threshold.cost_false_negative,
        cost_false_positive=config.threshold.cost_false_positive,
    )
    cv = {
        mn.CV_ROC_AUC_MEAN: float(np.mean(aucs)),
        mn.CV_ROC_AUC_STD: float(np.std(aucs)),
        mn.CV_BRIER: best_brier,
        mn.CV_BRIER_UNCALIBRATED: brier_raw,
        mn.BASELINE_CV_ROC_AUC_MEAN: float(np.mean(_fold_aucs(y, base_oof, folds=folds,
                                                              seed=seed))),
    }
    return FitResult(model=model, baseline=baseline, params=params, calibration=best_method,
                     threshold=threshold, cv=cv, search=search, seconds=seconds)


#: Files of a fit directory (:func:`save_fit`): the two fitted estimators, the summary.
FIT_FILES = {"model": "challenger.skops", "baseline": "baseline.skops", "summary": "fit.json"}


def save_fit(fitted: FitResult, fit_dir: Path | str, *,
             train_seconds: float | None = None) -> dict[str, Any]:
    """Write a fit (the challenger and baseline estimators, skops, and a JSON summary) to
    ``fit_dir`` and return the summary. This is the hand-over between the pipeline's
    train and evaluate steps, not a model artifact: the model is saved once, by
    :func:`evaluate_fit`."""
    import skops.io as sio

    path = Path(fit_dir)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    sio.dump(fitted.model, path / FIT_FILES["model"])
    sio.dump(fitted.baseline, path / FIT_FILES["baseline"])
    summary = {
        "params": fitted.params,
        "calibration": fitted.calibration,
        "threshold": asdict(fitted.threshold),
        "cv": fitted.cv,
        "search": fitted.search,
        "seconds": {k: round(v, 2) for k, v in fitted.seconds.items()},
        **({"train_seconds": round(train_seconds, 2)} if train_seconds is not None else {}),
    }
    (path / FIT_FILES["summary"]).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def load_fit(fit_dir: Path | str) -> tuple[FitResult, dict[str, Any]]:
    """The :class:`FitResult` and summary :func:`save_fit` wrote (trusted types only)."""
    import skops.io as sio

    from creditrisk.model import TRUSTED_TYPES

    path = Path(fit_dir)
    estimators = {}
    for key in ("model", "baseline"):
        file = path / FIT_FILES[key]
        untrusted = set(sio.get_untrusted_types(file=file)) - set(TRUSTED_TYPES)
        if untrusted:
            raise DataError(f"{file}: holds untrusted types {sorted(untrusted)}")
        estimators[key] = sio.load(file, trusted=TRUSTED_TYPES)
    summary = json.loads((path / FIT_FILES["summary"]).read_text())
    fitted = FitResult(model=estimators["model"], baseline=estimators["baseline"],
                       params=summary["params"], calibration=summary["calibration"],
                       threshold=ev.ThresholdChoice(**summary["threshold"]),
                       cv=summary["cv"], search=summary["search"],
                       seconds=summary["seconds"])
    return fitted, summary


def metadata_for(fit_result: FitResult, config: TrainConfig,
                 metrics: dict[str, float] | None = None) -> ModelMetadata:
    return ModelMetadata(
        threshold=fit_result.threshold.threshold,
        risk_bands=[b.model_dump() for b in config.risk_bands],
        model_name=get_settings().model_name,
        calibration=fit_result.calibration,
        metrics=metrics or {},
    )


def model_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The metrics a saved model carries in its metadata: the test and CV ones."""
    return {k: v for k, v in metrics.items() if k.startswith(mn.MODEL_METADATA_PREFIXES)}


def write_reference_bins(fitted: FitResult, run_dir: RunDir) -> Path:
    """Score the run's reference sample with the fitted model and freeze the PSI/CSI
    bins of the score and of every contract field on it (``reference/bins.json``,
    :func:`creditrisk.stability.freeze_bins`): every later window is compared with
    these bins."""
    from creditrisk.stability import freeze_bins

    reference = pd.read_parquet(run_dir.reference)
    p = fitted.model.predict_proba(reference.loc[:, list(FEATURE_NAMES)])[:, 1]
    return run_dir.write_reference_bins(freeze_bins(reference, p))


def write_validation_report(*, fitted: FitResult, config: TrainConfig, train: pd.DataFrame,
                            test: pd.DataFrame, run_dir: RunDir, data: dict[str, Any]) -> Path:
    """The validation report (:mod:`creditrisk.validation_report`), HTML and JSON, in
    the run directory (needs its frozen bins)."""
    from creditrisk import validation_report as vr

    report = vr.build(model=fitted.model, config=config, train=train, test=test,
                      bins=json.loads(run_dir.reference_bins.read_text()),
                      threshold=fitted.threshold.threshold,
                      calibration=fitted.calibration, data=data)
    run_dir.validation_json.parent.mkdir(parents=True, exist_ok=True)
    run_dir.validation_json.write_text(json.dumps(report, indent=1, default=str) + "\n")
    run_dir.validation_html.write_text(vr.render_html(
        report, f"Validation report: {get_settings().model_name}"))
    return run_dir.validation_html


# long-function: writes the run directory's parts in order, one call each
def evaluate_fit(
    *,
    fitted: FitResult,
    config: TrainConfig,
    train: pd.DataFrame,
    test: pd.DataFrame,
    run_dir: RunDir,
    default_rate: float,
    data_sha256: str | None = None,
    train_seconds: float | None = None,
) -> tuple[dict[str, Any], ev.Evaluation]:
    """Evaluate a fitted challenger and baseline on the held-out split and write the
    complete run directory: plots, model card, evaluation, config, both splits, the
    reference sample and its frozen bins, ``metrics.json`` and the model, saved once
    with its metadata complete (threshold, bands, test and CV metrics).

    :func:`run_training` calls it after fitting; so does the training pipeline's
    evaluate step, on the estimators its train step fitted.
    """
    run_dir.create()
    X_test, y_test = _xy(test)
    p = fitted.model.predict_proba(X_test)[:, 1]
    p_base = fitted.baseline.predict_proba(X_test)[:, 1]
    evaluation = ev.evaluate(X_test, y_test, p, threshold=fitted.threshold.threshold)
    base_metrics = ev.classification_metrics(y_test, p_base)

    metrics: dict[str, Any] = {
        **{mn.test(k): v for k, v in evaluation.metrics.items()},
        **fitted.cv,
        **{mn.baseline_test(k): v for k, v in base_metrics.items()},
        mn.THRESHOLD: fitted.threshold.threshold,
        "expected_cost_per_client_cv": fitted.threshold.expected_cost_per_client,
        **{mn.test(k): v for k, v in evaluation.confusion.items()},
        **({"train_seconds": round(train_seconds, 2)} if train_seconds is not None else {}),
        "train_rows": len(train),
        "test_rows": len(test),
    }
    ev.write_plots(y_test, p, fitted.threshold.threshold, run_dir.plots, baseline=p_base)
    summary = {
        "estimator": "LightGBM in a FeatureEngineer pipeline",
        "calibration": fitted.calibration,
        "params": fitted.params,
        **fitted.cv,
    }
    card = ev.model_card(
        model_name=get_settings().model_name, summary=summary, evaluation=evaluation,
        baseline=base_metrics, config=config.resolved(),
        data={"train_rows": len(train), "test_rows": len(test),
              "default_rate": default_rate, "sha256": data_sha256 or "n/a"},
        validation_report=VALIDATION_HTML_ARTIFACT,
    )
    run_dir.card.write_text(card)
    run_dir.evaluation.write_text(json.dumps(
        {**evaluation.as_dict(), "baseline": base_metrics, "search": fitted.search,
         "seconds": fitted.seconds}, indent=2))
    run_dir.write_config(config.resolved())
    train.to_parquet(run_dir.train_split, index=False)
    test.to_parquet(run_dir.test_split, index=False)
    run_dir.write_reference(train, max_rows=config.reference.max_rows, seed=config.seed)
    write_reference_bins(fitted, run_dir)
    write_validation_report(fitted=fitted, config=config, train=train, test=test,
                            run_dir=run_dir, data={"sha256": data_sha256 or "n/a",
                                                   "default_rate": default_rate})
    if run_dir.model.exists():
        shutil.rmtree(run_dir.model)
    save_model(fitted.model, run_dir.model, metadata_for(fitted, config, model_metrics(metrics)))
    run_dir.write_metrics(metrics)
    return metrics, evaluation


@dataclass
class TrainingRun:
    """The outputs of :func:`run_training`, all also written to ``run_dir``."""

    run_dir: RunDir
    metrics: dict[str, Any]
    fit: FitResult
    evaluation: ev.Evaluation

    @property
    def out_dir(self) -> Path:
        return self.run_dir.root

    @property
    def model_dir(self) -> Path:
        return self.run_dir.model

    @property
    def test_path(self) -> Path:
        return self.run_dir.test_split


def run_training(
    *,
    config: TrainConfig,
    data: pd.DataFrame,
    out_dir: Path,
    data_sha256: str | None = None,
    progress: Progress = _noop,
) -> TrainingRun:
    """Split, fit, evaluate on the held-out split and write the run directory
    (:class:`~creditrisk.rundir.RunDir`) at ``out_dir``."""
    t_start = time.perf_counter()
    run_dir = RunDir(out_dir).create()
    train, test = split_frame(data, test_size=config.split.test_size, seed=config.seed)
    fitted = fit(train=train, config=config, progress=progress)
    train_seconds = time.perf_counter() - t_start

    metrics, evaluation = evaluate_fit(
        fitted=fitted, config=config, train=train, test=test, run_dir=run_dir,
        default_rate=float(data[TARGET].mean()), data_sha256=data_sha256,
        train_seconds=train_seconds,
    )
    metrics["total_seconds"] = round(time.perf_counter() - t_start, 2)
    run_dir.write_metrics(metrics)
    return TrainingRun(run_dir=run_dir, metrics=metrics, fit=fitted, evaluation=evaluation)
