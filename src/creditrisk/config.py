"""The training configuration: a YAML file validated into pydantic models.

The resolved configuration (defaults filled in) is logged with every run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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


class ThresholdConfig(_Strict):
    """Business cost of the two errors; the decision threshold minimises their sum."""

    cost_false_negative: float = Field(5.0, gt=0, description="a missed default")
    cost_false_positive: float = Field(1.0, gt=0, description="a good client declined")


class RiskBand(_Strict):
    name: str
    upper: float = Field(gt=0, le=1)


class GateConfig(_Strict):
    """Promotion gate: absolute floors, and the tolerated loss against the champion."""

    min_roc_auc: float = Field(0.75, ge=0, le=1)
    min_pr_auc: float = Field(0.50, ge=0, le=1)
    max_brier: float = Field(0.145, ge=0, le=1)
    max_auc_drop: float = Field(0.005, ge=0, le=1)


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
    ``{"gate": {"min_roc_auc": 0.78}}``."""
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
                          f'{{"gate": {{"min_roc_auc": 0.78}}}}, got {text!r}')
    return raw


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    """``--set`` options (``gate.min_roc_auc=0.78``) as nested config overrides; each
    value is read as YAML (numbers, booleans, lists)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. gate.min_roc_auc=0.78")
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
