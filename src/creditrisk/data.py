"""Getting the data: download the official archive or import a local copy, check it
against the contract and write one canonical columnar (Parquet) file with its provenance.

The data set is never part of the repository: it lives in the cache directory of the
settings (``.creditrisk/data`` by default).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from creditrisk.contract import (
    COLUMN_ALIASES,
    FEATURE_NAMES,
    FEATURES,
    ID_COLUMN,
    TARGET,
)
from creditrisk.errors import DataError
from creditrisk.settings import get_settings
from creditrisk.validation import ensure_valid

RAW_SUFFIXES = (".csv", ".xls", ".xlsx", ".parquet")


@dataclass(frozen=True)
class Provenance:
    source: str
    source_sha256: str
    canonical_path: str
    canonical_sha256: str
    rows: int
    positives: int
    created_at: str

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------
# Reading raw files
# --------------------------------------------------------------------------------------


def _normalise_columns(df: pd.DataFrame) -> pd.DataFrame:
    df = df.rename(columns=lambda c: str(c).strip())
    return df.rename(columns=COLUMN_ALIASES)


def read_raw(path: Path) -> pd.DataFrame:
    """Read a CSV, the UCI .xls/.xlsx or a Parquet file, with canonical column names.

    Values are left as read; :func:`to_canonical` checks and types them.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            df = pd.read_csv(path)
        elif suffix in (".xls", ".xlsx"):
            df = pd.read_excel(path, header=0)
            # UCI's sheet has a first header row X1..X23, Y above the real names.
            if "X1" in df.columns or ("Y" in df.columns and ID_COLUMN not in df.columns):
                df = pd.read_excel(path, header=1)
        elif suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            raise DataError(
                f"{path}: unsupported file type {suffix!r}; expected one of {RAW_SUFFIXES}"
            )
    except DataError:
        raise
    except Exception as exc:  # a parser's own error: say which file and why
        raise DataError(f"{path}: cannot be read as {suffix[1:]}: {exc}") from exc
    if df.empty:
        raise DataError(f"{path}: the file holds no rows")
    return _normalise_columns(df)


def to_canonical(df: pd.DataFrame, *, source: str, require_target: bool = True) -> pd.DataFrame:
    """Validate ``df`` against the contract and return it typed and in contract order.

    Raises :class:`DataError` naming every failing column, rule and row count.
    """
    ensure_valid(df, require_target=require_target, source=source)
    cols = [c for c in (ID_COLUMN, *FEATURE_NAMES, TARGET) if c in df.columns]
    out = df[cols].apply(pd.to_numeric)
    for f in FEATURES:
        out[f.name] = out[f.name].astype(np.int64 if f.integral else np.float64)
    if ID_COLUMN in out:
        out[ID_COLUMN] = out[ID_COLUMN].astype(np.int64)
    if TARGET in out:
        out[TARGET] = out[TARGET].astype(np.int64)
    return out.reset_index(drop=True)


def load_dataset(path: Path | str | None = None, *, require_target: bool = True) -> pd.DataFrame:
    """Load a data file (canonical Parquet or any raw format) as a validated frame."""
    p = Path(path) if path is not None else get_settings().canonical_data_path
    if not p.exists():
        hint = (
            " Run `creditrisk data fetch` (or `creditrisk data fetch --from-file PATH`) first."
            if path is None else ""
        )
        raise DataError(f"{p}: no such file.{hint}")
    return to_canonical(read_raw(p), source=str(p), require_target=require_target)


# --------------------------------------------------------------------------------------
# Import and download
# --------------------------------------------------------------------------------------


def import_file(source: Path, *, out: Path | None = None) -> Provenance:
    """Import a local copy (CSV, UCI .xls, Parquet, or the UCI .zip) as the canonical file."""
    source = Path(source)
    if not source.is_file():
        raise DataError(f"{source}: no such file")
    if source.suffix.lower() == ".zip":
        with tempfile.TemporaryDirectory() as tmp:
            member = _extract_data_member(source, Path(tmp))
            return _write_canonical(member, origin=str(source),
                                    origin_sha=sha256_of(source), out=out)
    return _write_canonical(source, origin=str(source.resolve()), origin_sha=sha256_of(source),
                            out=out)


def fetch(*, url: str | None = None, out: Path | None = None, force: bool = False) -> Provenance:
    """Download the official UCI archive into the cache and write the canonical file."""
    settings = get_settings()
    url = url or settings.data_url
    raw_dir = settings.data_dir / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    archive = raw_dir / (Path(url.split("?")[0]).name.replace("+", "_") or "archive.zip")
    if force or not archive.exists():
        _download(url, archive, timeout=settings.download_timeout_s)
    digest = sha256_of(archive)
    if settings.data_sha256 and digest != settings.data_sha256.lower():
        archive.unlink()
        raise DataError(
            f"{url}: sha256 {digest} does not match the expected {settings.data_sha256} "
            "(CREDITRISK_DATA_SHA256); the download was discarded."
        )
    with tempfile.TemporaryDirectory() as tmp:
        member = (
            _extract_data_member(archive, Path(tmp))
            if archive.suffix.lower() == ".zip" else archive
        )
        return _write_canonical(member, origin=url, origin_sha=digest, out=out)


def _download(url: str, dest: Path, *, timeout: float) -> None:
    part = dest.with_suffix(dest.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, part.open("wb") as fh:
            shutil.copyfileobj(resp, fh)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"cannot download {url}: {reason}. With no network, import a local copy: "
            "`creditrisk data fetch --from-file PATH`."
        ) from exc
    part.replace(dest)


def _extract_data_member(archive: Path, into: Path) -> Path:
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if Path(n).suffix.lower() in RAW_SUFFIXES
                     and not Path(n).name.startswith(".")]
            if not names:
                raise DataError(f"{archive}: the archive holds no data file ({RAW_SUFFIXES})")
            zf.extract(names[0], into)
            return into / names[0]
    except zipfile.BadZipFile as exc:
        raise DataError(f"{archive}: not a zip archive ({exc})") from exc


def _write_canonical(raw: Path, *, origin: str, origin_sha: str, out: Path | None) -> Provenance:
    df = to_canonical(read_raw(raw), source=origin)
    dest = Path(out) if out is not None else get_settings().canonical_data_path
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp.parquet")
    df.to_parquet(tmp, index=False)
    tmp.replace(dest)
    prov = Provenance(
        source=origin,
        source_sha256=origin_sha,
        canonical_path=str(dest),
        canonical_sha256=sha256_of(dest),
        rows=len(df),
        positives=int(df[TARGET].sum()),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    prov.write(dest.with_suffix(".provenance.json"))
    return prov


# --------------------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------------------


def split(
    df: pd.DataFrame, *, test_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified train/test split with a fixed seed."""
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise DataError(f"test_size must be in (0, 1), got {test_size}")
    train, test = train_test_split(df, test_size=test_size, random_state=seed,
                                   stratify=df[TARGET])
    return train.reset_index(drop=True), test.reset_index(drop=True)
