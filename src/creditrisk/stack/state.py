"""The stack's state file (``state.json``: the facts ``up`` established, read by
``status`` and ``down``) and the environment ``up`` works in."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

from creditrisk.stack.layout import StackLayout


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def write_state(layout: StackLayout, facts: Mapping[str, Any]) -> None:
    """Replace the state file at once (a reader never sees half of it)."""
    tmp = layout.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(facts, indent=2, default=str))
    tmp.replace(layout.state_file)


def read_state(layout: StackLayout) -> dict[str, Any]:
    try:
        return dict(json.loads(layout.state_file.read_text()))
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def environ(env: Mapping[str, str]) -> Iterator[None]:
    """This process's environment with ``env`` on top (MLflow and boto3 read it), restored
    afterwards."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
