"""The training configuration: a YAML file validated into pydantic models.

The resolved configuration (defaults filled in) is logged with every run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    ValidationError,
    model_validator,
)

from creditrisk import metric_names as mn
from creditrisk.contract import FEATURE_NAMES, PAY_AMOUNTS, PAY_STATUS
from creditrisk.errors import ConfigError
from creditrisk.monitoring.config import MonitoringConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitConfig(_Strict):
    test_size: float = Field(0.2, gt=0, lt=1)


class CVConfig(_Strict):
    folds: int = Field(5, ge=2, le=20)


class BaselineConfig(_Strict):
    C: float = Field(0.5, gt=0)
    max_iter: int = Field(2000, ge=50)


#: Directions where credit practice defines one (``model.monotone``; creditrisk.monotone):
#: more months of delay, more risk; a higher limit or larger repayments, less.
MONOTONE_DIRECTIONS: dict[str, Literal[1, -1]] = {
    **dict.fromkeys(PAY_STATUS, 1), "LIMIT_BAL": -1, **dict.fromkeys(PAY_AMOUNTS, -1)}


def _monotone(value: dict[str, Literal[1, -1]]) -> dict[str, Literal[1, -1]]:
    unknown = sorted(set(value) - set(FEATURE_NAMES))
    if unknown:
        raise ValueError(f"not contract fields: {unknown}")
    return value


class MonotoneConfig(_Strict):
    """Monotone risk drivers (creditrisk.monotone). Off by default: measured, they cost
    more than 0.003 held-out ROC AUC (README, *Monotone risk drivers*)."""

    enabled: bool = False
    #: field -> +1 (more of it, more risk) or -1 (more of it, less risk).
    directions: Annotated[dict[str, Literal[1, -1]], AfterValidator(_monotone)] = Field(
        default_factory=lambda: dict(MONOTONE_DIRECTIONS))

    def active(self) -> dict[str, int]:
        """The directions the model is trained with ({} when disabled)."""
        return dict(self.directions) if self.enabled else {}


class ModelConfig(_Strict):
    kind: Literal["lightgbm"] = "lightgbm"
    #: LightGBM parameters; the search overrides those it tunes.
    params: dict[str, Any] = Field(
        default_factory=lambda: {
            "n_estimators": 400,
            "learning_rate": 0.03,
            "num_leaves": 15,
            "min_child_samples": 80,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 0.6,
            "reg_lambda": 5.0,
        }
    )
    n_jobs: int = Field(2, ge=1)
    monotone: MonotoneConfig = MonotoneConfig()


class SearchConfig(_Strict):
    enabled: bool = True
    n_trials: int = Field(30, ge=1, le=1000)
    timeout_s: float = Field(75.0, gt=0)
    folds: int = Field(3, ge=2, le=10)
    n_estimators: tuple[int, int] = (150, 700)
    learning_rate: tuple[float, float] = (0.01, 0.1)
    num_leaves: tuple[int, int] = (4, 48)
    min_child_samples: tuple[int, int] = (20, 300)
    colsample_bytree: tuple[float, float] = (0.3, 1.0)
    reg_lambda: tuple[float, float] = (1e-3, 30.0)


class CalibrationConfig(_Strict):
    #: Candidate methods; one is used only if it improves the out-of-fold Brier score.
    methods: list[Literal["isotonic", "sigmoid"]] = ["isotonic", "sigmoid"]
    min_brier_gain: float = Field(0.0002, ge=0)
    #: ... or if it lowers the out-of-fold ECE by this much, the Brier score rising by
    #: no more than ``max_brier_increase`` (creditrisk.calibration).
    min_ece_gain: float = Field(0.002, ge=0)
    max_brier_increase: float = Field(0.0002, ge=0)
    #: Isotonic regression only from this many training rows on (it follows noise below).
    isotonic_min_rows: int = Field(5000, ge=0)


class ThresholdConfig(_Strict):
    """Business cost of the two errors; the decision threshold minimises their sum."""

    cost_false_negative: float = Field(5.0, gt=0, description="a missed default")
    cost_false_positive: float = Field(1.0, gt=0, description="a good client declined")


class RiskBand(_Strict):
    name: str
    upper: float = Field(gt=0, le=1)


class MetricThreshold(_Strict):
    """One metric's gate, in the shape of MLflow's ``MetricThreshold``: an absolute
    ``threshold`` (``>=`` when greater is better, else ``<=``) and, against the current
    champion on the same test set, the largest tolerated worsening — absolute, or
    relative to the champion's value. (MLflow's ``min_absolute_change`` and
    ``min_relative_change`` demand an improvement; a retrain on new data is allowed to
    lose a little, so here they are the tolerated loss.)"""

    threshold: float | None = Field(None, ge=0)
    #: Omitted: the metric's own direction (:data:`creditrisk.metric_names.HIGHER_IS_BETTER`).
    greater_is_better: bool | None = None
    max_absolute_worsening: float | None = Field(None, ge=0)
    max_relative_worsening: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _checks_something(self) -> MetricThreshold:
        if (self.threshold is None and self.max_absolute_worsening is None
                and self.max_relative_worsening is None):
            raise ValueError("give at least one of threshold, max_absolute_worsening, "
                             "max_relative_worsening")
        return self


#: The gate keys of earlier configs, and where each went.
_RENAMED_GATE_KEYS = {
    "min_roc_auc": f"{mn.ROC_AUC}.threshold",
    "min_pr_auc": f"{mn.PR_AUC}.threshold",
    "max_brier": f"{mn.BRIER}.threshold",
    "max_auc_drop": f"{mn.ROC_AUC}.max_absolute_worsening",
}


def _evaluation_metric(name: str) -> str:
    if name not in mn.CLASSIFICATION:
        raise ValueError(f"{name!r} is not an evaluation metric (one of "
                         f"{', '.join(mn.CLASSIFICATION)})")
    return name


def _default_gate() -> dict[str, MetricThreshold | None]:
    return {
        mn.ROC_AUC: MetricThreshold(threshold=0.75, greater_is_better=True,
                                    max_absolute_worsening=0.005),
        mn.PR_AUC: MetricThreshold(threshold=0.5, greater_is_better=True),
        mn.BRIER: MetricThreshold(threshold=0.145, greater_is_better=False),
    }


class GateConfig(RootModel[dict[Annotated[str, AfterValidator(_evaluation_metric)],
                                MetricThreshold | None]]):
    """Promotion gate: evaluation metric name -> :class:`MetricThreshold`. A metric is
    gated by adding it here (``--set gate.ks.threshold=0.3``) and dropped by setting it
    to null (``--set gate.pr_auc=null``); :func:`creditrisk.registry.judge` checks
    every entry, in this order."""

    root: dict[Annotated[str, AfterValidator(_evaluation_metric)],
               MetricThreshold | None] = Field(default_factory=_default_gate)

    @model_validator(mode="before")
    @classmethod
    def _no_renamed_keys(cls, data: Any) -> Any:
        old = [k for k in data if k in _RENAMED_GATE_KEYS] if isinstance(data, dict) else []
        if old:
            raise ValueError("the gate is one entry per metric now: " + ", ".join(
                f"gate.{k} is gate.{_RENAMED_GATE_KEYS[k]}" for k in old))
        return data

    @model_validator(mode="after")
    def _directions_and_bounds(self) -> GateConfig:
        self.root = {k: v for k, v in self.root.items() if v is not None}
        for name, t in self.items():
            natural = mn.greater_is_better(name)
            if t.greater_is_better is None:
                t.greater_is_better = natural
            elif t.greater_is_better != natural:
                raise ValueError(f"gate.{name}.greater_is_better: {name} is "
                                 f"{'higher' if natural else 'lower'}-is-better")
            if name in mn.UNIT_INTERVAL and t.threshold is not None and t.threshold > 1:
                raise ValueError(f"gate.{name}.threshold: {t.threshold} is outside [0, 1]")
        return self

    def describe(self) -> str:
        """One line for logs: ``roc_auc >= 0.75 (champion - 0.005), ...``."""
        parts = []
        for name, t in self.items():
            op, sign = (">=", "-") if t.greater_is_better else ("<=", "+")
            champion = [f"champion {sign} {t.max_absolute_worsening}"
                        if t.max_absolute_worsening is not None else "",
                        f"champion {sign} {t.max_relative_worsening} × |champion|"
                        if t.max_relative_worsening is not None else ""]
            floor = f" {op} {t.threshold}" if t.threshold is not None else ""
            extra = ", ".join(c for c in champion if c)
            parts.append(f"{name}{floor}" + (f" ({op} {extra})" if extra else ""))
        return ", ".join(parts) or "no checks"

    def items(self) -> list[tuple[str, MetricThreshold]]:
        """(metric, threshold) pairs in the configured order."""
        return [(k, v) for k, v in self.root.items() if v is not None]

    def __getitem__(self, metric: str) -> MetricThreshold:
        t = self.root[metric]
        if t is None:
            raise KeyError(metric)
        return t


class GateEvidenceConfig(_Strict):
    """Live evidence the gate asks for (``creditrisk model promote N --evidence DIR``,
    DIR holding the ``challenger.json`` of ``creditrisk monitor challenger``): enough
    records shadow-scored by the candidate, enough of them labelled, and the candidate's
    ROC AUC on those labelled records no more than ``max_roc_auc_loss`` below the
    champion's on the same records. ``required``: refuse a promotion without evidence."""

    required: bool = False
    min_shadow_records: int = Field(1000, ge=1)
    min_labelled_records: int = Field(500, ge=1)
    max_roc_auc_loss: float = Field(0.005, ge=0, le=1)


class ReferenceConfig(_Strict):
    """The reference sample logged with every registered model (drift monitoring's
    baseline): the training split, or a stratified sample of at most ``max_rows``."""

    max_rows: int = Field(50_000, ge=100)


class TrainConfig(_Strict):
    seed: int = 42
    split: SplitConfig = SplitConfig()
    cv: CVConfig = CVConfig()
    baseline: BaselineConfig = BaselineConfig()
    model: ModelConfig = ModelConfig()
    search: SearchConfig = SearchConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    threshold: ThresholdConfig = ThresholdConfig()
    risk_bands: list[RiskBand] = [
        RiskBand(name="low", upper=0.15),
        RiskBand(name="medium", upper=0.35),
        RiskBand(name="high", upper=0.6),
        RiskBand(name="very_high", upper=1.0),
    ]
    gate: GateConfig = GateConfig()
    gate_evidence: GateEvidenceConfig = GateEvidenceConfig()
    reference: ReferenceConfig = ReferenceConfig()
    monitoring: MonitoringConfig = MonitoringConfig()

    @model_validator(mode="after")
    def _bands_cover_unit_interval(self) -> TrainConfig:
        uppers = [b.upper for b in self.risk_bands]
        if not uppers or uppers != sorted(uppers) or uppers[-1] != 1.0:
            raise ValueError("risk_bands must be ordered by 'upper' and end at upper: 1.0")
        return self

    def resolved(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in, mappings merged key by key."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def parse_overrides(text: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """Config overrides given as a mapping, or as its JSON/YAML text (empty: none), e.g.
    ``{"gate": {"roc_auc": {"threshold": 0.78}}}``."""
    if text is None:
        return {}
    if isinstance(text, Mapping):
        return dict(text)
    if not text.strip():
        return {}
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config overrides: not valid JSON/YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config overrides must be a mapping such as "
                          f'{{"gate": {{"roc_auc": {{"threshold": 0.78}}}}}}, got {text!r}')
    return raw


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    """``--set`` options (``gate.roc_auc.threshold=0.78``) as nested config overrides; each
    value is read as YAML (numbers, booleans, lists)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. "
                              "gate.roc_auc.threshold=0.78")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML: {exc}") from exc
        nested: dict[str, Any] = {}
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = parsed
        out = merge(out, nested)
    return out


def validate_config(raw: dict[str, Any], *, source: str,
                    overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Validate a config mapping with ``overrides`` merged in; errors name ``source``
    and each failing field."""
    if overrides:
        raw = merge(raw, overrides)
        source = f"{source} (with overrides {json.dumps(dict(overrides), default=str)})"
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or '<root>'}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"{source}: invalid config: {problems}") from exc


def read_config_text(text: str, *, source: str) -> dict[str, Any]:
    """The mapping of a YAML config's text; ``source`` names it in errors."""
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    return raw


def default_config_path() -> Path:
    """The packaged default config (``creditrisk/configs/train.yaml``): what
    ``creditrisk train`` and ``creditrisk pipeline run training`` use without
    ``--config``, wherever they run."""
    return Path(__file__).parent / "configs" / "train.yaml"


def load_config(path: Path | str | None,
                overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Read and validate a YAML config (``None``: the packaged default,
    :func:`default_config_path`), with ``overrides`` merged in."""
    p = Path(path) if path is not None else default_config_path()
    if not p.exists():
        raise ConfigError(f"{p}: no such config file")
    return validate_config(read_config_text(p.read_text(), source=str(p)), source=str(p),
                           overrides=overrides)
