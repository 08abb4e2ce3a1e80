"""Business post-processing and batch scoring, shared by the serving transformer and the
batch-scoring pipeline: the decision at the model's threshold and the risk band."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from creditrisk.contract import FEATURE_NAMES, ID_COLUMN
from creditrisk.model import LoadedModel, ModelMetadata

DECLINE = "decline"
APPROVE = "approve"


def decisions(p: np.ndarray, metadata: ModelMetadata) -> tuple[list[str], list[str]]:
    """Decision (decline when p >= threshold) and risk band for each probability."""
    p = np.asarray(p, dtype=np.float64)
    uppers = np.array([b["upper"] for b in metadata.risk_bands])
    names = [b["name"] for b in metadata.risk_bands]
    band_idx = np.minimum(np.searchsorted(uppers, p, side="left"), len(names) - 1)
    decision = np.where(p >= metadata.threshold, DECLINE, APPROVE)
    return decision.tolist(), [names[i] for i in band_idx]


def score_frame(model: LoadedModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Probability, decision, risk band and model version per row (ids kept)."""
    p = model.predict_proba(frame.loc[:, list(FEATURE_NAMES)])
    out = pd.DataFrame({"probability": p})
    if ID_COLUMN in frame:
        out.insert(0, ID_COLUMN, frame[ID_COLUMN].to_numpy())
    out["decision"], out["risk_band"] = decisions(p, model.metadata)
    out["model_version"] = model.version or ""
    return out


def summarise(scored: pd.DataFrame) -> dict[str, object]:
    return {
        "rows": len(scored),
        "mean_probability": float(scored["probability"].mean()) if len(scored) else None,
        "decline_rate": float((scored["decision"] == DECLINE).mean()) if len(scored) else None,
        "risk_bands": scored["risk_band"].value_counts().to_dict(),
    }


def score_file(model: LoadedModel, source: Path | str, dest: Path | str) -> dict[str, object]:
    """Score a file of clients (CSV/Parquet/XLS, local or s3://) and write the scored file."""
    from creditrisk.data import load_dataset

    frame = load_dataset(source, require_target=False)
    scored = score_frame(model, frame)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.suffix == ".csv":
        scored.to_csv(dest, index=False)
    else:
        scored.to_parquet(dest, index=False)
    return summarise(scored)
