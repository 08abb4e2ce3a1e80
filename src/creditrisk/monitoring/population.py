"""The credit-risk part of the drift job: population and characteristic stability on the
model's frozen bins (:mod:`creditrisk.stability`) and the performance estimated from
the window's probabilities before the labels arrive (:mod:`creditrisk.estimation`).

Which model (:class:`ModelSource`): ``--model URI_OR_DIR``, else the registered version
whose reference sample is compared, else ``@champion``; loaded only when something needs
it: scoring a data file without probabilities, scoring the reference, the threshold.

Which bins (:func:`reference_bins`): the ones logged with the registered version
(``reference/bins.json``); a version registered before bins were logged, or a
``--reference FILE``, gets bins frozen now from that reference (a warning says so for
the former).

Which threshold: the model's (its metadata) when the job was given ``--model`` or loaded
the model anyway; else, for a log window, the one the logged decisions imply (the
smallest declined probability: the same decisions on the window), said in the report;
else the model's, loaded for it; without either, no estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from creditrisk.contract import FEATURE_NAMES
from creditrisk.errors import CreditRiskError
from creditrisk.stability import SCORE

#: Seed of the estimate's label draws (a report is reproducible).
ESTIMATE_SEED = 0


@dataclass
class ModelSource:
    """The model of one drift run, loaded at most once (see module)."""

    uri: str | None = None
    version: str | None = None
    _model: Any = None
    _error: str | None = None
    loaded: bool = False

    def describe(self) -> str:
        if self.uri:
            return self.uri
        return f"version {self.version}" if self.version else "@champion"

    def get(self) -> Any:
        """The :class:`~creditrisk.model.LoadedModel`; raises the loading error."""
        if self._model is None and self._error is None:
            from creditrisk.registry import load_model
            from creditrisk.settings import get_settings

            uri = self.uri or (get_settings().version_uri(self.version) if self.version
                               else None)
            try:
                self._model = load_model(uri)
                self.loaded = True
            except CreditRiskError as exc:
                self._error = str(exc)
        if self._model is None:
            raise CreditRiskError(f"cannot load the model ({self.describe()}): "
                                  f"{self._error}")
        return self._model

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.get().predict_proba(frame.loc[:, list(FEATURE_NAMES)]),
                          dtype=np.float64)


def reference_bins(reference: pd.DataFrame, version: str | None, model: ModelSource,
                   warnings: list[str]) -> tuple[dict[str, Any] | None, str]:
    """(frozen bins, where they came from); None when they cannot be had (said in
    ``warnings``)."""
    from creditrisk.stability import freeze_bins

    if version is not None:
        from creditrisk.registry import download_bins

        bins = download_bins(version)
        if bins is not None:
            return bins, f"reference/bins.json of version {version}"
        warnings.append(f"version {version} was registered without frozen bins "
                        "(reference/bins.json): bins frozen now from its reference sample")
    if SCORE in reference.columns:
        return freeze_bins(reference), "frozen from the reference (its probabilities)"
    try:
        p = model.score(reference)
    except CreditRiskError as exc:
        warnings.append(f"no stability: cannot score the reference ({exc})")
        return None, "none"
    return freeze_bins(reference, p), f"frozen from the reference, scored by {model.describe()}"


def window_scores(current: pd.DataFrame, model: ModelSource, warnings: list[str]
                  ) -> tuple[np.ndarray | None, str]:
    """The window's probabilities: logged (or the data file's ``probability`` column),
    else scored by the model; None (with a warning) when neither can be had."""
    if SCORE in current.columns:
        return current[SCORE].to_numpy(dtype=np.float64), "logged"
    try:
        return model.score(current), f"scored by {model.describe()}"
    except CreditRiskError as exc:
        warnings.append(f"no score stability and no estimated performance: the window "
                        f"has no probabilities and {exc}; pass --model URI_OR_DIR")
        return None, "none"


def decision_threshold(current: pd.DataFrame, model: ModelSource, warnings: list[str]
                       ) -> tuple[float | None, str]:
    """The decision threshold (see module): (value, where it came from)."""
    if not (model.loaded or model.uri) and "decision" in current.columns and len(current):
        from creditrisk.monitoring.performance import served_threshold

        p = current[SCORE].to_numpy(dtype=np.float64)
        return served_threshold(p, current["decision"].astype(str).to_numpy()), \
            "implied by the logged decisions"
    try:
        return float(model.get().metadata.threshold), f"the model's ({model.describe()})"
    except CreditRiskError as exc:
        warnings.append(f"no estimated performance: no decision threshold ({exc})")
        return None, "none"


@dataclass
class Population:
    """What the drift job adds to ``drift.json``: ``stability`` and
    ``estimated_performance``, the data of the stability page, and the messages."""

    stability: dict[str, Any] | None
    estimated: dict[str, Any] | None
    bins: dict[str, Any] | None
    frame: pd.DataFrame | None
    messages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _frame_with_scores(current: pd.DataFrame, scores: np.ndarray | None,
                       bins: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The window's contract fields and score; bins without the score when there are
    no scores on either side."""
    frame = current.loc[:, list(FEATURE_NAMES)]
    if scores is not None and SCORE in bins["columns"]:
        return frame.assign(**{SCORE: scores}), bins
    return frame, {**bins, "columns": {k: v for k, v in bins["columns"].items()
                                       if k != SCORE}}


def population(current: pd.DataFrame, reference: pd.DataFrame, *, version: str | None,
               model: ModelSource, bands: Any) -> Population:
    """Stability and estimated performance of ``current`` (see module)."""
    from creditrisk.estimation import ASSUMPTION, estimate
    from creditrisk.stability import stability

    warnings: list[str] = []
    bins, bins_source = reference_bins(reference, version, model, warnings)
    scores, scored = window_scores(current, model, warnings)
    out = Population(None, None, None, None, warnings=warnings)
    if bins is not None:
        frame, used = _frame_with_scores(current, scores, bins)
        stab = {**stability(used, frame, bands), "bins": bins_source, "scores": scored}
        out.stability, out.bins, out.frame = stab, used, frame
        score, features = stab["score"], stab["features"]
        shifted = sorted((n for n, f in features.items() if f["band"] != "stable"),
                         key=lambda n: -features[n]["psi"])
        out.messages.append(
            "stability: score PSI " + ("n/a" if score is None else
                                       f"{score['psi']:.4f} ({score['band']})")
            + f"; features not stable: {', '.join(shifted) or 'none'}")
        if score is not None and score["band"] != "stable":
            warnings.append(f"the score's PSI is {score['psi']:.3f} ({score['band']}): the "
                            "population moved; the estimated performance assumes it did not")
    if scores is not None:
        threshold, source = decision_threshold(current.assign(**{SCORE: scores}), model,
                                               warnings)
        if threshold is not None:
            est = estimate(scores, threshold=threshold, seed=ESTIMATE_SEED)
            out.estimated = {**est.as_dict(), "threshold_source": source,
                             "assumption": ASSUMPTION}
            lo, hi = est.roc_auc_interval
            out.messages.append(
                f"estimated (no labels): ROC AUC {est.roc_auc:.4f} [{lo:.4f}, {hi:.4f}], "
                f"default rate {est.default_rate:.4f}, approval rate "
                f"{est.approval_rate:.3f} at threshold {threshold:.4f}")
    return out
