"""Helpers shared by every test tier (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED_DATA = REPO.parent / "shared" / "data" / "default_of_credit_card_clients.csv"


#: Set by .ci/run: a test whose data file, spec or binary is missing fails instead of skipping.
REQUIRE_ENV = "CREDITRISK_REQUIRE_EXTERNALS"


def missing_external(what: str) -> None:
    """Skip (on a developer's machine) or fail (in CI) a test whose external need is absent.

    ``what`` names the missing thing and how to get it, e.g. "promtool (apt-get install
    prometheus)". Under ``CREDITRISK_REQUIRE_EXTERNALS=1`` (set by ``.ci/run``) the test
    fails, so CI cannot go green by skipping.
    """
    import pytest

    if os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false"):
        pytest.fail(f"required for this test and missing: {what}", pytrace=False)
    pytest.skip(f"missing: {what}")


def require_binary(name: str, install_hint: str) -> str:
    """The path of an executable on PATH (or next to the test interpreter), else
    :func:`missing_external`."""
    import sys

    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        missing_external(f"{name} ({install_hint})")
        raise AssertionError("unreachable")
    return found


def shared_path(*parts: str, env: str | None = None) -> Path:
    """A file or folder of ../shared (or the one ``env`` names), else :func:`missing_external`."""
    p = Path(os.environ[env]) if env and os.environ.get(env) else REPO.parent.joinpath(
        "shared", *parts)
    if not p.exists():
        missing_external(f"{p}" + (f" (set {env})" if env else ""))
    return p


def shared_data_path() -> Path | None:
    """The real data file (CREDITRISK_TEST_DATA, else ../shared/data), if present."""
    p = Path(os.environ.get("CREDITRISK_TEST_DATA", DEFAULT_SHARED_DATA))
    return p if p.exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.25)
    raise TimeoutError(f"{url} not up after {timeout_s}s: {last}")


def save_synthetic_model(path: Path, *, rows: int = 2000, seed: int = 0,
                         trees: int = 40) -> Path:
    """A small calibrated LightGBM model fitted on synthetic contract data, saved as the
    storage initializer delivers it (MLflow sklearn flavour, skops): for tests and
    benchmarks that need a real model but not the data file. Seconds on one core."""
    from creditrisk.contract import FEATURE_NAMES, TARGET
    from creditrisk.model import (
        CalibratedClassifier,
        ModelMetadata,
        make_lightgbm,
        make_pipeline,
        save_model,
    )
    from tests.synthetic import synthetic_frame

    frame = synthetic_frame(rows, seed=seed)
    lgbm = make_lightgbm({"n_estimators": trees, "num_leaves": 15}, seed=seed, n_jobs=1)
    model = make_pipeline(CalibratedClassifier(lgbm, "sigmoid")).fit(
        frame.loc[:, list(FEATURE_NAMES)], frame[TARGET].to_numpy())
    meta = ModelMetadata(threshold=0.3, model_name="credit-default", calibration="sigmoid",
                         risk_bands=[{"name": "low", "upper": 0.2},
                                     {"name": "medium", "upper": 0.4},
                                     {"name": "high", "upper": 1.0}])
    return save_model(model, path, meta)


def offline_chromium(html: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on a local HTML page with ``flags`` (``--dump-dom``,
    ``--screenshot=...``), its exit checked. The page must be self-contained: a dead
    proxy stands between Chromium and any network, so a page that needs a CDN renders
    without it. Chromium's flags are the ones this machine's closed network needs."""
    import tempfile

    chromium = require_binary("chromium", "apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        r = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}",
             f"--proxy-server=http://127.0.0.1:{free_port()}",
             "--proxy-bypass-list=<-loopback>", *flags, html.resolve().as_uri()],
            capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def offline_page_pixels(html: Path, shot: Path, *, window: str = "1200,1400") -> Any:
    """A headless-Chromium screenshot of a local HTML page (:func:`offline_chromium`),
    as an (n, 3) RGB array."""
    import numpy as np
    from PIL import Image

    offline_chromium(html, "--hide-scrollbars", f"--window-size={window}",
                     f"--screenshot={shot}")
    assert shot.exists(), shot
    return np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)


def colour_count(pixels: Any, colour: str, tolerance: int = 6) -> int:
    """How many pixels are within ``tolerance`` (summed over R, G, B) of ``#rrggbb``."""
    import numpy as np

    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(pixels.astype(int) - rgb).sum(axis=1) <= tolerance).sum())
