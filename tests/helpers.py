"""Helpers shared by every test tier (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED_DATA = REPO.parent / "shared" / "data" / "default_of_credit_card_clients.csv"


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
