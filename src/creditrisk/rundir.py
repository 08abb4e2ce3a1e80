"""The training run directory: one type owns its layout.

``creditrisk train`` writes one, the training pipeline's evaluate step writes one, and
the registry logs one as an MLflow run. Nobody else spells out a file name of it::

    <root>/
      metrics.json        the run's metrics (test_*, cv_*, baseline_*, threshold, rows)
      evaluation.json     held-out evaluation, fairness slices, search, seconds
      model_card.md       the model card
      config.yaml         the resolved training config
      plots/*.png         ROC, PR, calibration, confusion matrix
      train.parquet       the training split        (not logged; see reference/)
      test.parquet        the held-out split        -> artifact data/test.parquet
      reference/reference.parquet
                          the reference sample for drift monitoring: the training split's
                          contract columns and target (a stratified sample when it is
                          larger than the config's ``reference.max_rows``)
      reference/bins.json the bins frozen on that sample for PSI/CSI monitoring: the
                          score's and every contract field's (creditrisk.stability)
      validation/report.html, validation/report.json
                          the validation report (creditrisk.validation_report)
      model/              the model, MLflow sklearn flavour (skops), saved once, complete

The MLflow artifact paths of a logged run are :data:`REFERENCE_ARTIFACT`,
:data:`REFERENCE_BINS_ARTIFACT`, :data:`TEST_SPLIT_ARTIFACT` and :data:`MODEL_ARTIFACT`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from creditrisk.stability import BINS_FILE

#: The reference sample of a logged run (contract features + target), read by monitoring.
REFERENCE_ARTIFACT = "reference/reference.parquet"
#: The frozen PSI/CSI bins of that sample, beside it (absent in runs before issue 14).
REFERENCE_BINS_ARTIFACT = f"reference/{BINS_FILE}"
#: The held-out split of a logged run; the promotion gate's default test set.
TEST_SPLIT_ARTIFACT = "data/test.parquet"
#: The model of a logged run (``runs:/<run id>/model``).
MODEL_ARTIFACT = "model"
#: The validation report of a logged run (HTML page and JSON data).
VALIDATION_HTML_ARTIFACT = "validation/report.html"
VALIDATION_JSON_ARTIFACT = "validation/report.json"


def reference_sample(train: pd.DataFrame, *, max_rows: int, seed: int) -> pd.DataFrame:
    """The contract feature columns and the target of ``train``; when it has more than
    ``max_rows`` rows, a sample of ``max_rows`` stratified by the target (each class keeps
    its share, drawn with ``seed``)."""
    from creditrisk.contract import FEATURE_NAMES, TARGET

    frame = train.loc[:, [*FEATURE_NAMES, TARGET]]
    if len(frame) <= max_rows:
        return frame.reset_index(drop=True)
    from sklearn.model_selection import train_test_split

    sample, _ = train_test_split(frame, train_size=max_rows, stratify=frame[TARGET],
                                 random_state=seed)
    return sample.sort_index().reset_index(drop=True)


@dataclass(frozen=True)
class RunDir:
    """A training run directory (see the module docstring for its layout)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # --- the paths ----------------------------------------------------------------------
    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation.json"

    @property
    def card(self) -> Path:
        return self.root / "model_card.md"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def train_split(self) -> Path:
        return self.root / "train.parquet"

    @property
    def test_split(self) -> Path:
        return self.root / "test.parquet"

    @property
    def reference(self) -> Path:
        return self.root / REFERENCE_ARTIFACT

    @property
    def reference_bins(self) -> Path:
        return self.root / REFERENCE_BINS_ARTIFACT

    @property
    def model(self) -> Path:
        return self.root / MODEL_ARTIFACT

    @property
    def validation_html(self) -> Path:
        return self.root / VALIDATION_HTML_ARTIFACT

    @property
    def validation_json(self) -> Path:
        return self.root / VALIDATION_JSON_ARTIFACT

    # --- reading and writing ------------------------------------------------------------
    def create(self) -> RunDir:
        self.root.mkdir(parents=True, exist_ok=True)
        return self

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        self.metrics.write_text(json.dumps(metrics, indent=2, default=str) + "\n")

    def read_metrics(self) -> dict[str, Any]:
        return dict(json.loads(self.metrics.read_text()))

    def write_config(self, resolved: dict[str, Any]) -> None:
        import yaml

        self.config.write_text(yaml.safe_dump(resolved, sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        import yaml

        return dict(yaml.safe_load(self.config.read_text()) or {})

    def write_reference(self, train: pd.DataFrame, *, max_rows: int, seed: int) -> Path:
        self.reference.parent.mkdir(parents=True, exist_ok=True)
        reference_sample(train, max_rows=max_rows, seed=seed).to_parquet(self.reference,
                                                                          index=False)
        return self.reference

    def write_reference_bins(self, bins: dict[str, Any]) -> Path:
        """The frozen bins (:func:`creditrisk.stability.freeze_bins`) beside the
        reference sample; logged with the reference folder."""
        self.reference_bins.parent.mkdir(parents=True, exist_ok=True)
        self.reference_bins.write_text(json.dumps(bins, indent=1) + "\n")
        return self.reference_bins

    def artifacts(self) -> list[tuple[Path, str | None]]:
        """What an MLflow run of this directory holds: (local file or folder, artifact
        folder); folders are logged with their content. Absent parts are left out."""
        items: list[tuple[Path, str | None]] = [
            (self.metrics, None), (self.evaluation, None), (self.card, None),
            (self.config, None), (self.plots, "plots"),
            (self.test_split, TEST_SPLIT_ARTIFACT.rsplit("/", 1)[0]),
            (self.reference, REFERENCE_ARTIFACT.rsplit("/", 1)[0]),
            (self.reference_bins, REFERENCE_BINS_ARTIFACT.rsplit("/", 1)[0]),
            (self.validation_html, VALIDATION_HTML_ARTIFACT.rsplit("/", 1)[0]),
            (self.validation_json, VALIDATION_JSON_ARTIFACT.rsplit("/", 1)[0]),
            (self.model, MODEL_ARTIFACT),
        ]
        return [(path, dest) for path, dest in items if path.exists()]
