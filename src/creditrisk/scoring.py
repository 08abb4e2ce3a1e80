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


# --------------------------------------------------------------------------------------
# Scale-out: input shards scored in parallel, gathered in input order
# --------------------------------------------------------------------------------------

#: The shard plan beside the shard files: rows, row ranges, the pinned model.
SHARD_PLAN = "plan.json"


def shard_bounds(rows: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous row ranges ``[start, stop)`` covering ``0..rows`` exactly once,
    sizes differing by at most one (a shard is empty when there are fewer rows)."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    base, extra = divmod(rows, shards)
    bounds, start = [], 0
    for i in range(shards):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def shard_file(index: int) -> str:
    return f"part-{index:05d}.parquet"


def write_shards(frame: pd.DataFrame, out_dir: Path | str, shards: int) -> list[dict[str, int]]:
    """Write ``frame`` as ``shards`` Parquet files of contiguous rows into ``out_dir``;
    returns each shard's index and row range."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = []
    for i, (start, stop) in enumerate(shard_bounds(len(frame), shards)):
        frame.iloc[start:stop].to_parquet(out_dir / shard_file(i), index=False)
        plan.append({"index": i, "start": start, "stop": stop, "rows": stop - start})
    return plan


def gather_scored(parts: dict[int, Path | str], plan: list[dict[str, int]],
                  dest: Path | str) -> pd.DataFrame:
    """Concatenate the scored shards in input order into ``dest`` (Parquet).

    Every shard of the plan must be there exactly once with exactly its rows: a missing,
    repeated or truncated shard is an error, never a silently short result.
    """
    expected = {s["index"]: s["rows"] for s in plan}
    if sorted(parts) != sorted(expected):
        missing = sorted(set(expected) - set(parts))
        unknown = sorted(set(parts) - set(expected))
        raise ValueError(f"scored shards do not match the plan: missing {missing}, "
                         f"unknown {unknown}")
    frames = []
    for index in sorted(expected):
        part = pd.read_parquet(parts[index])
        if len(part) != expected[index]:
            raise ValueError(f"shard {index}: {len(part)} scored rows, the plan has "
                             f"{expected[index]}")
        frames.append(part)
    scored = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    scored.to_parquet(dest, index=False)
    return scored
