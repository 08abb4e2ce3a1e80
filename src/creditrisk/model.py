"""The model object: how it is built, saved, loaded and scored.

A trained model is an sklearn ``Pipeline([features, classifier])`` saved in MLflow's
sklearn flavour with skops serialisation, plus a metadata block (decision threshold,
risk bands, contract) that serving reads. Loading never trusts the type list stored in
the artifact: the trusted types are the ones this module names.

:class:`Scorer` is the fast path used by serving and batch scoring: it runs the very
same fitted objects (feature function, LightGBM booster, calibrator) without sklearn's
per-call overhead, and is checked against the pipeline on load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from creditrisk.contract import CATEGORICAL, FEATURE_NAMES, contract_as_dict, example_record
from creditrisk.errors import RegistryError
from creditrisk.features import OUTPUT_NAMES, FeatureEngineer, engineer, signed_log1p

#: Types beyond sklearn's own that a model file may contain.
TRUSTED_TYPES: list[str] = [
    "collections.OrderedDict",
    "creditrisk.features.FeatureEngineer",
    "creditrisk.features.signed_log1p",
    "creditrisk.model.CalibratedClassifier",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "numpy.sign",
    "numpy.log1p",
    "numpy.abs",
]

METADATA_KEY = "creditrisk"


# --------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


class CalibratedClassifier(ClassifierMixin, BaseEstimator):
    """A classifier whose probabilities go through a calibrator fitted on out-of-fold
    predictions (one fitted estimator, unlike an ensemble of fold models)."""

    def __init__(self, estimator: Any = None, method: str = "isotonic") -> None:
        self.estimator = estimator
        self.method = method

    def fit_from_oof(self, X: Any, y: Any, oof: np.ndarray) -> CalibratedClassifier:
        """Fit the calibrator on given out-of-fold scores and the estimator on all rows."""
        y = np.asarray(y)
        self.calibrator_ = fit_calibrator(self.method, oof, y)
        self.estimator_ = clone(self.estimator).fit(X, y)
        self.classes_ = self.estimator_.classes_
        return self

    def fit(self, X: Any, y: Any) -> CalibratedClassifier:
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        cv = StratifiedKFold(5, shuffle=True, random_state=0)
        oof = cross_val_predict(clone(self.estimator), X, y, cv=cv, method="predict_proba")
        return self.fit_from_oof(X, y, oof[:, 1])

    def predict_proba(self, X: Any) -> np.ndarray:
        raw = self.estimator_.predict_proba(X)[:, 1]
        p = apply_calibrator(self.calibrator_, raw)
        return np.column_stack((1 - p, p))

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def fit_calibrator(method: str, scores: np.ndarray, y: np.ndarray) -> Any:
    if method == "isotonic":
        return _centred_isotonic(np.asarray(scores, dtype=np.float64), np.asarray(y))
    if method == "sigmoid":
        return LogisticRegression(C=1e6, max_iter=1000).fit(_logit(scores)[:, None], y)
    raise ValueError(f"unknown calibration method {method!r}")


def _centred_isotonic(scores: np.ndarray, y: np.ndarray) -> IsotonicRegression:
    """Centred isotonic regression (Oron & Flournoy 2017): the isotonic fit's blocks
    become knots at their mean score, joined linearly. Plain isotonic regression is a
    step function: it ties every client of a block (on the development copy it left 60
    distinct probabilities and cost 0.01 PR AUC); joining the block centres keeps the
    scores' order (ROC and PR AUC unchanged) and calibrates as well. Stored as the
    ``IsotonicRegression`` fitted to the knots (strictly increasing, so its thresholds
    are the knots and it interpolates between them)."""
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, y)
    levels, block = np.unique(iso.predict(scores), return_inverse=True)
    centres = np.bincount(block, weights=scores) / np.bincount(block)
    return IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(centres, levels)


def apply_calibrator(calibrator: Any, scores: np.ndarray) -> np.ndarray:
    if isinstance(calibrator, IsotonicRegression):
        return np.asarray(calibrator.predict(scores), dtype=np.float64)
    z = _logit(scores) * calibrator.coef_[0, 0] + calibrator.intercept_[0]
    return 1.0 / (1.0 + np.exp(-z))


def make_lightgbm(params: dict[str, Any], *, seed: int, n_jobs: int) -> Any:
    import lightgbm as lgb

    return lgb.LGBMClassifier(
        **{"random_state": seed, "n_jobs": n_jobs, "verbose": -1, **params}
    )


def make_pipeline(classifier: Any) -> Pipeline:
    return Pipeline([("features", FeatureEngineer()), ("classifier", classifier)])


def make_baseline(*, C: float, max_iter: int, seed: int) -> Pipeline:
    """Logistic regression on one-hot codes and log-compressed numeric features."""
    cat_idx = [OUTPUT_NAMES.index(c) for c in CATEGORICAL]
    num_idx = [i for i in range(len(OUTPUT_NAMES)) if i not in cat_idx]
    pre = ColumnTransformer(
        [
            ("codes", OneHotEncoder(handle_unknown="ignore"), cat_idx),
            ("numeric", Pipeline([
                ("log", FunctionTransformer(signed_log1p)),
                ("scale", StandardScaler()),
            ]), num_idx),
        ]
    )
    return Pipeline(
        [
            ("features", FeatureEngineer()),
            ("prepare", pre),
            ("classifier", LogisticRegression(C=C, max_iter=max_iter, random_state=seed)),
        ]
    )


# --------------------------------------------------------------------------------------
# Saved model: MLflow sklearn flavour, skops
# --------------------------------------------------------------------------------------


@dataclass
class ModelMetadata:
    """What serving needs besides the estimator."""

    threshold: float
    risk_bands: list[dict[str, Any]]
    model_name: str
    calibration: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    contract: dict[str, Any] = field(default_factory=contract_as_dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "risk_bands": self.risk_bands,
            "model_name": self.model_name,
            "calibration": self.calibration,
            "metrics": self.metrics,
            "contract": self.contract,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelMetadata:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def input_example() -> Any:
    """The contract's example client as a one-row frame (MLflow's input example)."""
    import pandas as pd

    return pd.DataFrame([example_record()], columns=list(FEATURE_NAMES))


def save_model(pipeline: Pipeline, path: Path | str, metadata: ModelMetadata) -> Path:
    """Save in MLflow's sklearn flavour (skops) with signature, example and metadata."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    path = Path(path)
    example = input_example()
    # float64 for every input: clients may send 30.0 for an age; the contract checks it.
    signature = infer_signature(example.astype("float64"),
                                pipeline.predict_proba(example)[:, 1])
    mlflow.sklearn.save_model(
        pipeline,
        str(path),
        serialization_format="skops",
        skops_trusted_types=TRUSTED_TYPES,
        signature=signature,
        input_example=example,
        metadata={METADATA_KEY: metadata.as_dict()},
        pyfunc_predict_fn="predict_proba",
        # Stated, not inferred: inference loads the model in a subprocess (seconds).
        pip_requirements=model_requirements(),
    )
    return path


def model_requirements() -> list[str]:
    """Pinned packages a saved model needs to load (those installed here)."""
    from importlib.metadata import version

    return [f"{dist}=={version(dist)}" for dist in
            ("creditrisk", "scikit-learn", "lightgbm", "skops", "numpy", "pandas", "mlflow")]


@dataclass
class LoadedModel:
    pipeline: Pipeline
    metadata: ModelMetadata
    uri: str
    version: str | None = None
    scorer: Scorer = field(init=False)

    def __post_init__(self) -> None:
        self.scorer = Scorer(self.pipeline)
        self.scorer.verify()

    def predict_proba(self, X: Any) -> np.ndarray:
        """Default probabilities for raw inputs (frame or contract-ordered matrix)."""
        return self.scorer.predict_proba(X)


def load_model_dir(path: Path | str, *, uri: str | None = None,
                   version: str | None = None) -> LoadedModel:
    """Load a saved model directory (``MLmodel`` + ``model.skops``) with our trusted types."""
    import skops.io as sio
    import yaml

    path = Path(path)
    mlmodel = path / "MLmodel"
    if not mlmodel.exists():
        raise RegistryError(f"{path}: not an MLflow model directory (no MLmodel file)")
    spec = yaml.safe_load(mlmodel.read_text())
    meta = (spec.get("metadata") or {}).get(METADATA_KEY)
    if meta is None:
        raise RegistryError(f"{path}: the model carries no '{METADATA_KEY}' metadata")
    pickled = spec["flavors"]["sklearn"]["pickled_model"]
    untrusted = set(sio.get_untrusted_types(file=path / pickled)) - set(TRUSTED_TYPES)
    if untrusted:
        raise RegistryError(f"{path}: the model file holds untrusted types {sorted(untrusted)}")
    pipeline = sio.load(path / pickled, trusted=TRUSTED_TYPES)
    return LoadedModel(pipeline=pipeline, metadata=ModelMetadata.from_dict(meta),
                       uri=uri or str(path), version=version)


# --------------------------------------------------------------------------------------
# Fast scoring
# --------------------------------------------------------------------------------------


class Scorer:
    """Scores raw contract-ordered inputs with the pipeline's own fitted parts.

    For a ``[FeatureEngineer, LGBMClassifier | CalibratedClassifier(LGBM)]`` pipeline it
    calls the feature function, the LightGBM booster and the calibrator directly (tens of
    microseconds a record; one record through LightGBM's single-row C API when the
    installed LightGBM is the one :mod:`creditrisk._lightgbm_compat` was written for);
    any other pipeline goes through ``predict_proba``. :meth:`verify` (run when a model
    loads) checks the fast path against the pipeline and drops it on any difference.
    """

    #: Largest difference from ``pipeline.predict_proba`` the fast path may show.
    TOLERANCE = 1e-9

    def __init__(self, pipeline: Pipeline) -> None:
        from creditrisk._lightgbm_compat import single_row_supported

        self.pipeline = pipeline
        self.booster: Any = None
        self.calibrator: Any = None
        steps = dict(pipeline.steps)
        clf = pipeline.steps[-1][1]
        if isinstance(clf, CalibratedClassifier):
            self.calibrator = clf.calibrator_
            clf = clf.estimator_
        if len(steps) == 2 and isinstance(steps.get("features"), FeatureEngineer) and hasattr(
            clf, "booster_"
        ):
            self.booster = clf.booster_
        self.single_row = single_row_supported() if self.booster is not None else False
        self._single: Any = None

    @property
    def fast(self) -> bool:
        return self.booster is not None

    def features(self, X: Any) -> np.ndarray:
        return engineer(X)

    def _pipeline_proba(self, X: Any) -> np.ndarray:
        import pandas as pd

        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(
            np.asarray(X, dtype=np.float64), columns=list(FEATURE_NAMES))
        return np.asarray(self.pipeline.predict_proba(frame)[:, 1], dtype=np.float64)

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.booster is None:
            return self._pipeline_proba(X)
        F = engineer(X)
        if F.shape[0] == 1 and self.single_row:  # one record: LightGBM's single-row C API
            if self._single is None:
                from creditrisk._lightgbm_compat import SingleRowPredictor

                self._single = SingleRowPredictor(self.booster, F.shape[1])
            raw = self._single.predict(F)
        else:
            raw = np.asarray(self.booster.predict(F, num_threads=1), dtype=np.float64)
        if self.calibrator is not None:
            raw = apply_calibrator(self.calibrator, raw)
        return raw

    def verify(self, X: np.ndarray | None = None) -> bool:
        """Score ``X`` (default: :func:`verification_rows`) with the fast path, batch and
        record by record, and with the pipeline; on any difference over
        :data:`TOLERANCE` drop the fast path (every call then goes through the pipeline)
        with one warning line. True when the fast path is kept."""
        if self.booster is None:
            return False
        X = verification_rows() if X is None else np.asarray(X, dtype=np.float64)
        want = self._pipeline_proba(X)
        try:
            got = [self.predict_proba(X), *(self.predict_proba(X[i:i + 1])
                                           for i in range(len(X)))]
            batch, single = got[0], np.concatenate(got[1:])
            worst = float(max(np.max(np.abs(batch - want)), np.max(np.abs(single - want))))
        except Exception as exc:  # the fast path cannot even run on this model
            worst, reason = float("inf"), f"{type(exc).__name__}: {exc}"
        else:
            reason = f"differs from the pipeline by up to {worst:.3g}"
        if worst <= self.TOLERANCE:
            return True
        import logging

        logging.getLogger(__name__).warning(
            "the fast scorer %s: scoring through the sklearn pipeline instead", reason)
        self.booster = self.calibrator = self._single = None
        return False

    def contributions(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Tree SHAP contributions in log-odds per model feature, and the bias column.

        Requires the LightGBM fast path.
        """
        if self.booster is None:
            raise TypeError("contributions need a LightGBM model")
        out = np.asarray(self.booster.predict(engineer(X), pred_contrib=True, num_threads=1))
        return out[:, :-1], out[:, -1]


def verification_rows(n: int = 16, seed: int = 0) -> np.ndarray:
    """``n`` contract-valid records in contract order spread over each field's domain
    (codes drawn from the field's codes, amounts on a log scale), for :meth:`Scorer.verify`."""
    from creditrisk.contract import FEATURES

    rng = np.random.default_rng(seed)
    X = np.empty((n, len(FEATURES)), dtype=np.float64)
    for j, f in enumerate(FEATURES):
        if f.codes is not None:
            X[:, j] = rng.choice(np.asarray(f.codes, dtype=np.float64), n)
        elif f.kind == "integer":
            X[:, j] = rng.integers(int(f.minimum or 0), int(f.maximum or 100) + 1, n)
        else:
            lo, hi = f.minimum or 0.0, min(f.maximum or 1e6, 1e6)
            X[:, j] = np.clip(np.round(np.expm1(rng.uniform(0, np.log1p(hi), n))), lo, hi)
    return X
