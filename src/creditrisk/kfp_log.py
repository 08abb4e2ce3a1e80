"""The text kfp.local prints about a pipeline's steps, read in one place.

kfp.local logs one line when a task starts and one when it ends, with ANSI colours even
when its output is not a terminal::

    18:03:20.628 - INFO - Executing task \\x1b[96m'ok'\\x1b[0m
    18:03:21.315 - INFO - Task \\x1b[96m'ok'\\x1b[0m finished with status \\x1b[92mSUCCESS\\x1b[0m
    18:03:25.570 - ERROR - Task \\x1b[96m'bad'\\x1b[0m finished with status \\x1b[91mFAILURE\\x1b[0m

and a step that fails on a user's mistake prints :data:`ERROR_MARKER` (defined here, printed by
:mod:`creditrisk.stages`)
``[step] message`` on its stderr, which kfp.local streams into the same log.

:func:`parse_step_line` reads one such line (a formatted log line or a log record's
message); :class:`StepClock` pairs starts and ends into wall times. The local runner
(:mod:`creditrisk.orchestration`) and the local stack's progress line both use them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Marker of a user error in a step log; the local orchestrator quotes the line after it.
ERROR_MARKER = "creditrisk step error:"
#: kfp.local's status of a step that worked.
SUCCESS = "SUCCESS"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_START = re.compile(r"Executing task '([^']+)'")
_END = re.compile(r"Task '([^']+)' finished with status (\w+)")
_STEP_PREFIX = re.compile(r"^\[[^\]]*\]\s*")


@dataclass(frozen=True)
class StepEvent:
    """A step started (``status`` None) or finished with ``status``."""

    step: str
    status: str | None = None

    @property
    def started(self) -> bool:
        return self.status is None

    @property
    def failed(self) -> bool:
        return self.status is not None and self.status != SUCCESS


def parse_step_line(line: str) -> StepEvent | None:
    """The step event a line of kfp.local's log reports, or None for any other line."""
    text = _ANSI.sub("", line)
    if m := _START.search(text):
        return StepEvent(m.group(1))
    if m := _END.search(text):
        return StepEvent(m.group(1), m.group(2))
    return None


def user_error(line: str) -> str | None:
    """The message of a step's user-error line (without its ``[step]`` tag), or None."""
    if ERROR_MARKER not in line:
        return None
    return _STEP_PREFIX.sub("", line.split(ERROR_MARKER, 1)[1].strip())


@dataclass
class StepTime:
    step: str
    seconds: float
    status: str


@dataclass
class StepClock:
    """Pairs each step's start with its end and keeps their wall times.

    Iterations of a ``dsl.ParallelFor`` share their task's name: their starts are queued
    per name and paired with ends first in, first out, so iterations are not merged into
    one entry (best effort: kfp.local does not log every iteration's start)."""

    started: dict[str, list[float]] = field(default_factory=dict)
    steps: list[StepTime] = field(default_factory=list)

    def feed(self, line: str, at: float) -> StepEvent | None:
        """Read one log line written at time ``at`` (seconds); returns its event."""
        event = parse_step_line(line)
        if event is None:
            return None
        if event.started:
            self.started.setdefault(event.step, []).append(at)
        elif self.started.get(event.step):
            began = self.started[event.step].pop(0)
            self.steps.append(StepTime(event.step, round(at - began, 2),
                                       event.status or ""))
        return event

    @property
    def failed_step(self) -> str | None:
        failed = [s.step for s in self.steps if s.status != SUCCESS]
        return failed[-1] if failed else None
