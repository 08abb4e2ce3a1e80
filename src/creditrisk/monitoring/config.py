"""The ``monitoring:`` section of the YAML config (pydantic-validated; the defaults below
are the documented ones, spelled out in ``configs/train.yaml``).

Standalone on purpose: :mod:`creditrisk.config` imports it, not the other way round.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Evidently 0.7 drift methods the config accepts (their names in Evidently).
DriftMethod = Literal[
    "wasserstein", "psi", "jensenshannon", "kl_div", "hellinger", "ks", "chisquare", "z",
    "anderson", "cramer_von_mises", "mannw", "t_test", "TVD", "g_test", "fisher_exact",
    "empirical_mmd", "ed", "es",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MethodConfig(_Strict):
    """A drift method and its threshold. Distances (wasserstein, psi, jensenshannon,
    hellinger, kl_div, TVD) flag drift at ``score >= threshold``; tests (ks, chisquare,
    z, ...) flag it at ``p-value < threshold``, as Evidently decides."""

    method: DriftMethod
    threshold: float = Field(gt=0)


class DriftConfig(_Strict):
    """Per-feature drift, by the contract's kinds.

    * numerical: ``money`` and ``integer`` features (LIMIT_BAL, BILL_AMT*, PAY_AMT*, AGE);
    * ordinal: the repayment status codes ``PAY_*`` (-2..9): ordered, so an order-aware
      distance on their values, not a categorical test;
    * categorical: the nominal codes SEX, EDUCATION, MARRIAGE.

    The normed Wasserstein distance (in reference standard deviations) and the
    Jensen-Shannon distance do not become hair-triggers on large windows as p-value tests do.
    """

    numerical: MethodConfig = MethodConfig(method="wasserstein", threshold=0.1)
    ordinal: MethodConfig = MethodConfig(method="wasserstein", threshold=0.1)
    categorical: MethodConfig = MethodConfig(method="jensenshannon", threshold=0.1)
    #: Drift of the predicted probability (current data from the prediction log).
    prediction: MethodConfig = MethodConfig(method="wasserstein", threshold=0.1)
    #: Per-feature overrides: {feature name: {method, threshold}}.
    per_feature: dict[str, MethodConfig] = Field(default_factory=dict)
    #: The data set has drifted when at least this share of features drifted.
    drift_share: float = Field(0.5, gt=0, le=1)
    #: Fewer current rows than this: exit 3, nothing pushed as a success.
    min_rows: int = Field(500, ge=1)
    #: Default window of the prediction log when neither --since nor --until is given.
    window: str = "24h"

    @field_validator("per_feature")
    @classmethod
    def _known_features(cls, v: dict[str, MethodConfig]) -> dict[str, MethodConfig]:
        from creditrisk.contract import FEATURE_NAMES

        unknown = sorted(set(v) - set(FEATURE_NAMES))
        if unknown:
            raise ValueError(f"not contract features: {unknown}")
        return v

    @field_validator("window")
    @classmethod
    def _span(cls, v: str) -> str:
        return _checked_span(v)


def _checked_span(v: str) -> str:
    from creditrisk.monitoring.window import WindowError, parse_span

    try:
        parse_span(v)
    except WindowError as exc:
        raise ValueError(str(exc)) from None
    return v


class PerformanceConfig(_Strict):
    #: Fewer labelled rows than this: exit 3.
    min_labelled_rows: int = Field(200, ge=1)
    #: Default window of the prediction log for the performance job (labels arrive late).
    window: str = "30d"

    @field_validator("window")
    @classmethod
    def _span(cls, v: str) -> str:
        return _checked_span(v)


class RetrainConfig(_Strict):
    #: Start the training pipeline when drift is detected (as --retrain does).
    on_drift: bool = False
    #: At most one retraining per this many hours (state: a registered-model tag).
    cooldown_hours: float = Field(24.0, ge=0)
    #: Training data of the retraining run (a path, or an s3:// URI on a cluster);
    #: default: the canonical data file of `creditrisk data fetch`.
    data: str | None = None


class StabilityConfig(_Strict):
    """The reading of a PSI/CSI on the frozen bins (:mod:`creditrisk.stability`): below
    ``watch`` stable, from ``watch`` to ``shift`` watch, above ``shift`` shifted. The
    alert rules (CreditRiskScorePsiShifted, CreditRiskScorePsiWatch) use the defaults."""

    watch: float = Field(0.10, gt=0)
    shift: float = Field(0.25, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> StabilityConfig:
        if self.watch >= self.shift:
            raise ValueError(f"stability.watch ({self.watch}) must be below "
                             f"stability.shift ({self.shift})")
        return self

    def bands(self) -> Any:
        from creditrisk.stability import StabilityBands

        return StabilityBands(watch=self.watch, shift=self.shift)


class ChallengerConfig(_Strict):
    """The champion/challenger evidence job (``creditrisk monitor challenger``)."""

    #: Fewer records scored by both models in the window: exit 3, nothing pushed.
    min_records: int = Field(500, ge=1)
    #: Default window of the prediction log for the challenger job.
    window: str = "7d"

    @field_validator("window")
    @classmethod
    def _span(cls, v: str) -> str:
        return _checked_span(v)


class MonitoringConfig(_Strict):
    drift: DriftConfig = DriftConfig()
    performance: PerformanceConfig = PerformanceConfig()
    retrain: RetrainConfig = RetrainConfig()
    stability: StabilityConfig = StabilityConfig()
    challenger: ChallengerConfig = ChallengerConfig()
