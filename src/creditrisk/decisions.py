"""The record of every model decision: write-once objects nobody rewrites.

Each gate verdict that rejects a candidate, each promotion, rollback and deployment is
one JSON object of its own under ``<decisions_location>/<model name>/``
(:attr:`creditrisk.settings.Settings.decisions_location`): with a tracking server, the
``decisions/`` folder of its artifact root, written through its artifact proxy
(``mlflow-artifacts:/decisions``: clients need no S3 credentials, as for models; on the
cluster that is ``s3://mlflow/artifacts/decisions/``); an explicit ``s3://`` prefix
(``CREDITRISK_DECISIONS_URI``), written directly; or a folder under the settings' home
for the embedded store. MLflow keeps no history of
alias moves and its tags are rewritten in place; these objects are never overwritten:

* the key is ``<ns since the epoch, 20 digits>-<action>-<random>.json``, so keys sort
  in time order and two writers never pick the same one;
* S3: ``put_object(..., IfNoneMatch="*")`` (a conditional write: an existing key is
  refused with 412, never replaced); a local folder: ``open(path, "x")``; the proxy has
  no conditional write: the new key is checked absent first.

Each record also names the record before it (``previous``: its key and the sha256 of its
bytes as stored), so the records form a hash chain: :func:`verify` (``model history
--verify``) finds a record edited, replaced or deleted after a later one was written —
the tamper evidence an append-only log needs where the store itself (the tracking
server's proxy, a folder) cannot refuse a rewrite by someone with its credentials. Two
writers racing may both name the same predecessor (a fork, not a break). For records
that nobody can rewrite at all, point ``CREDITRISK_DECISIONS_URI`` at an S3 bucket with
Object Lock and set ``decisions_retention_days``: each record is then written with a
COMPLIANCE-mode retention (no user, root included, can delete or overwrite it before).

A record holds the time, who acted (:func:`actor`: the OS user, or the pipeline run
inside :func:`acting_as`), the action, the model versions, the metrics and evidence the
decision rested on, the verdict and its reasons, and the sha256 of the config it applied
(:func:`config_digest`). :func:`champion_stack` replays the promotions and rollbacks:
``model rollback`` reads its top, and the alias is reconciled with the last of them.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from creditrisk.errors import RegistryError
from creditrisk.settings import get_settings

#: 2: records name their predecessor (``previous``); 1 had no link.
SCHEMA_VERSION = 2
PROMOTION, REJECTION, ROLLBACK, DEPLOYMENT = "promotion", "rejection", "rollback", "deployment"
ACTIONS = (PROMOTION, REJECTION, ROLLBACK, DEPLOYMENT)
#: The actions that move ``@champion`` (their ``versions["after"]`` is where it went).
MOVES = (PROMOTION, ROLLBACK)

_ACTOR: ContextVar[dict[str, str] | None] = ContextVar("creditrisk_actor", default=None)


@dataclass
class Decision:
    """One record. ``versions``: ``before``/``after`` (the champion around a move),
    ``candidate``, ``deployed`` ...; ``key`` is set when written or read."""

    action: str
    versions: dict[str, str | None]
    metrics: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    verdict: str | None = None
    reasons: list[str] = field(default_factory=list)
    config_sha256: str | None = None
    model: str = ""
    actor: dict[str, str] = field(default_factory=dict)
    time: str = ""
    time_ns: int = 0
    key: str = ""
    #: The newest record when this one was written: ``{"key", "sha256"}`` (sha256 of its
    #: bytes as stored); None for the first record.
    previous: dict[str, str] | None = None
    schema: int = SCHEMA_VERSION

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Decision:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def config_digest(config: Any) -> str:
    """sha256 of ``config`` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------------------
# Who acted
# --------------------------------------------------------------------------------------


@contextmanager
def acting_as(**who: str) -> Iterator[None]:
    """Records written inside name ``who`` as the actor (e.g. ``kind="pipeline",
    run_name=...``) instead of the OS user."""
    token = _ACTOR.set({k: str(v) for k, v in who.items() if v})
    try:
        yield
    finally:
        _ACTOR.reset(token)


def actor() -> dict[str, str]:
    """Who is acting: what :func:`acting_as` set, else the OS user on this host."""
    who = _ACTOR.get()
    if who:
        return dict(who)
    try:
        user = getpass.getuser()
    except Exception:  # no name for this uid (a container's random user)
        user = f"uid {os.getuid()}"
    return {"kind": "user", "user": user, "host": socket.gethostname()}


# --------------------------------------------------------------------------------------
# Writing and reading
# --------------------------------------------------------------------------------------


#: The tracking server's artifact proxy (``mlflow server --serve-artifacts``).
PROXY = "mlflow-artifacts:"


def _location() -> str:
    """This model's folder of records: ``<decisions_location>/<model name>``."""
    settings = get_settings()
    return f"{settings.decisions_location.rstrip('/')}/{settings.model_name}"


def new_key(action: str, time_ns: int | None = None) -> str:
    """A record's key: sorts by time, unique across processes and machines."""
    if action not in ACTIONS:
        raise ValueError(f"unknown decision action {action!r}; one of {ACTIONS}")
    return f"{time_ns or time.time_ns():020d}-{action}-{uuid.uuid4().hex[:12]}.json"


def record(decision: Decision) -> Decision:
    """Write ``decision`` once, as a new object; fills in time, actor, model and key.
    A record that cannot be written is a :class:`RegistryError`."""
    now = time.time_ns()
    decision.time_ns = now
    decision.time = dt.datetime.fromtimestamp(now / 1e9, dt.UTC).isoformat()
    decision.actor = decision.actor or actor()
    decision.model = decision.model or get_settings().model_name
    decision.key = new_key(decision.action, now)
    where = _location()
    try:
        decision.previous = _newest_link()
        data = json.dumps(decision.as_dict(), sort_keys=True, default=str).encode()
        if where.startswith("s3://"):
            _put_s3(where, decision.key, data)
        elif where.startswith(PROXY):
            _put_proxied(where, decision.key, data)
        else:
            _put_local(Path(where.removeprefix("file://")), decision.key, data)
    except Exception as exc:
        raise RegistryError(f"cannot record the {decision.action} at {where}: {exc}") from exc
    return decision


def _put_s3(where: str, key: str, data: bytes) -> None:
    from creditrisk.storage import s3_client, s3_error_reason, split_s3_uri

    bucket, prefix = split_s3_uri(where + "/" + key)
    days = get_settings().decisions_retention_days
    lock: dict[str, Any] = {} if days is None else {
        "ObjectLockMode": "COMPLIANCE",
        "ObjectLockRetainUntilDate": dt.datetime.now(dt.UTC) + dt.timedelta(days=days),
        "ChecksumAlgorithm": "SHA256"}  # S3 requires a checksum with a retention
    try:
        s3_client().put_object(Bucket=bucket, Key=prefix, Body=data, IfNoneMatch="*",
                               ContentType="application/json", **lock)
    except Exception as exc:
        raise RegistryError(s3_error_reason(exc)) from exc


def _repository(where: str) -> Any:
    """MLflow's artifact repository for ``mlflow-artifacts:/...`` (the tracking server's
    artifact proxy: clients write through the server, with no S3 credentials of their
    own, as they log models)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from creditrisk.settings import configure_mlflow

    configure_mlflow()
    return get_artifact_repository(where)


def _put_proxied(where: str, key: str, data: bytes) -> None:
    """Through the server's proxy there is no conditional write: the key is new (time
    and randomness) and is checked absent first; nothing of ours ever rewrites one."""
    import tempfile

    repo = _repository(where)
    if key in _proxied_keys(where):
        raise RegistryError(f"{where}/{key} exists already: a record is never replaced")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / key
        path.write_bytes(data)
        repo.log_artifact(str(path))


def _proxied_keys(where: str) -> list[str]:
    return [Path(f.path).name for f in _repository(where).list_artifacts()
            if not f.is_dir and f.path.endswith(".json")]


def _put_local(folder: Path, key: str, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / key, "xb") as f:  # "x": an existing file is never replaced
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def keys() -> list[str]:
    """Every record's key, oldest first."""
    where = _location()
    try:
        if where.startswith("s3://"):
            return sorted(_s3_keys(where))
        if where.startswith(PROXY):
            return sorted(_proxied_keys(where))
        folder = Path(where.removeprefix("file://"))
        return sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []
    except RegistryError:
        raise
    except Exception as exc:
        raise RegistryError(f"cannot list the decision records at {where}: {exc}") from exc


def _s3_keys(where: str) -> list[str]:
    from creditrisk.storage import s3_client, s3_error_reason

    bucket, _, prefix = where[len("s3://"):].partition("/")
    prefix = f"{prefix}/" if prefix else ""
    out: list[str] = []
    try:
        pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                      Prefix=prefix)
        for page in pages:
            out += [o["Key"][len(prefix):] for o in page.get("Contents", [])]
    except Exception as exc:
        raise RegistryError(f"cannot list {where}: {s3_error_reason(exc)}") from exc
    return [k for k in out if "/" not in k and k.endswith(".json")]


def _newest_link() -> dict[str, str] | None:
    """``previous`` of a record written now: the newest record's key and digest."""
    existing = keys()
    if not existing:
        return None
    return {"key": existing[-1], "sha256": hashlib.sha256(_bytes(existing[-1])).hexdigest()}


def read(key: str) -> Decision:
    """One record by its key."""
    out = Decision.from_dict(json.loads(_bytes(key)))
    out.key = key
    return out


def _bytes(key: str) -> bytes:
    """One record's bytes, as stored."""
    where = _location()
    try:
        if where.startswith("s3://"):
            from creditrisk.storage import s3_client, split_s3_uri

            bucket, name = split_s3_uri(f"{where}/{key}")
            data = s3_client().get_object(Bucket=bucket, Key=name)["Body"].read()
        elif where.startswith(PROXY):
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                data = Path(_repository(where).download_artifacts(key, tmp)).read_bytes()
        else:
            data = (Path(where.removeprefix("file://")) / key).read_bytes()
    except Exception as exc:
        raise RegistryError(f"cannot read the decision record {where}/{key}: {exc}") from exc
    return bytes(data)


def verify() -> dict[str, Any]:
    """Check the chain: every record's ``previous`` exists, holds the bytes it was
    linked with and is older. ``problems``: one line per broken link (a record edited or
    replaced after its successor was written, or deleted); ``unlinked``: records of
    schema 1, written before records were chained. A store with no problem may still
    have lost its newest records (nothing links to them yet)."""
    names = keys()
    stored = {k: _bytes(k) for k in names}  # one read each (a download through the proxy)
    digests = {k: hashlib.sha256(b).hexdigest() for k, b in stored.items()}
    problems: list[str] = []
    unlinked: list[str] = []
    for i, k in enumerate(names):
        d = Decision.from_dict(json.loads(stored[k]))
        link = d.previous
        if d.schema < 2:
            unlinked.append(k)
        elif link is None and i > 0:  # (or it raced the very first record)
            problems.append(f"{k}: names no predecessor, but {names[i - 1]} is older")
        elif link is not None and link.get("key") not in digests:
            problems.append(f"{k}: its predecessor {link.get('key')} is missing (deleted)")
        elif link is not None and digests[link["key"]] != link.get("sha256"):
            problems.append(f"{k}: its predecessor {link['key']} was changed after it was "
                            f"written (sha256 {digests[link['key']][:12]}…, linked "
                            f"{str(link.get('sha256'))[:12]}…)")
        elif link is not None and link["key"] >= k:
            problems.append(f"{k}: names a newer record {link['key']} as its predecessor")
    return {"records": len(names), "intact": not problems, "problems": problems,
            "unlinked": unlinked, "location": _location()}


def _action_of(key: str) -> str:
    parts = key.split("-")
    return parts[1] if len(parts) >= 3 else ""


def history(actions: tuple[str, ...] = ACTIONS) -> list[Decision]:
    """The records (of ``actions``), oldest first."""
    return [read(k) for k in keys() if _action_of(k) in actions]


def champion_stack(legacy: list[str] | None = None) -> tuple[list[str], str | None]:
    """Replay the promotions and rollbacks on top of ``legacy`` (the champion history an
    earlier registry kept in tags, oldest first): (the versions a rollback goes back
    to, oldest first; the champion the last move left, None without a move). A
    promotion pushes the version it replaced; a rollback from the champion of the
    replay pops one (a second rollback racing the first, from the same version, does
    not pop again)."""
    stack, current = list(legacy or []), None
    for d in history(MOVES):
        before, after = d.versions.get("before"), d.versions.get("after")
        if d.action == PROMOTION:
            if before is not None:
                stack.append(str(before))
            current = after
        elif current is None or before == current:
            if stack:
                stack.pop()
            current = after
    return stack, current


def last_move() -> Decision | None:
    """The newest promotion or rollback record, None when there is none."""
    moves = [k for k in keys() if _action_of(k) in MOVES]
    return read(moves[-1]) if moves else None


def gate_decision(action: str, verdict: dict[str, Any],
                  versions: dict[str, str | None]) -> Decision:
    """A record of the gate's ``verdict`` (a ``registry.GateDecision`` as a mapping):
    both models' metrics on the one test set, the checks, the gate applied (and its
    digest), the reasons; the live evidence judged (``evidence.live``: its figures,
    checks, source file and the ``gate_evidence`` applied), when there was some."""
    return Decision(
        action=action, versions=versions,
        metrics={"candidate": verdict.get("candidate_metrics"),
                 "champion": verdict.get("champion_metrics")},
        evidence={"test_rows": verdict.get("test_rows"), "checks": verdict.get("checks"),
                  "judged_against": verdict.get("champion_version"),
                  "gate": verdict.get("gate"),
                  **({"live": verdict["evidence"]} if verdict.get("evidence") else {})},
        verdict="passed" if verdict.get("passed") else "failed",
        reasons=[str(r) for r in verdict.get("reasons", [])],
        config_sha256=config_digest(verdict.get("gate")))


def summary(d: Decision) -> str:
    """One line of ``creditrisk model history``: time, action, versions, verdict, actor."""
    versions = " ".join(f"{k}={v}" for k, v in d.versions.items() if v is not None)
    who = d.actor.get("run_name") or d.actor.get("user") or d.actor.get("kind", "?")
    verdict = f" {d.verdict}" if d.verdict else ""
    return f"{d.time}  {d.action:<10} {versions}{verdict}  by {who}  ({d.key})"
