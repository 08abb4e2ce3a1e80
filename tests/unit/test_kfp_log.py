"""Reading kfp.local's step log (creditrisk.kfp_log) on lines kfp 2.17's local runner
printed (colours included: it colours even when its output is a file)."""

from __future__ import annotations

import pytest

from creditrisk import stages
from creditrisk.kfp_log import ERROR_MARKER, StepClock, StepEvent, parse_step_line, user_error

pytestmark = pytest.mark.unit

# Verbatim from a run of kfp.local.SubprocessRunner(use_venv=False), output to a file.
RUNNING = "18:03:20.624 - INFO - Running pipeline: \x1b[95m'demo-pipe'\x1b[0m"
START_OK = "18:03:20.628 - INFO - Executing task \x1b[96m'ok'\x1b[0m"
STREAMED = "18:03:20.628 - INFO - Streamed logs:"
END_OK = ("18:03:21.315 - INFO - Task \x1b[96m'ok'\x1b[0m finished with status "
          "\x1b[92mSUCCESS\x1b[0m")
OUTPUTS = "18:03:21.316 - INFO - Task \x1b[96m'ok'\x1b[0m outputs:"
START_SHARD = "18:03:21.320 - INFO - Executing task \x1b[96m'ok-2'\x1b[0m"
END_SHARD = ("18:03:22.611 - INFO - Task \x1b[96m'ok-2'\x1b[0m finished with status "
             "\x1b[92mSUCCESS\x1b[0m")
END_BAD = ("18:03:25.570 - ERROR - Task \x1b[96m'bad'\x1b[0m finished with status "
           "\x1b[91mFAILURE\x1b[0m")
PIPELINE_END = ("18:03:23.917 - INFO - Pipeline \x1b[95m'demo-pipe'\x1b[0m finished with "
                "status \x1b[92mSUCCESS\x1b[0m")
PIPELINE_FAILED = ("Pipeline \x1b[95m'demo-fail'\x1b[0m finished with status \x1b[91mFAILURE"
                   "\x1b[0m. Inner task failed: \x1b[96m'bad'\x1b[0m.")
WAITED = "18:03:22.611 - INFO - ⏱️  Waited 1.29s for subprocess pip installation lock"
# The line stages prints on a user's mistake, as kfp.local streams a step's stderr.
STEP_ERROR = ("    creditrisk step error: [ingest] config: gate.min_roc_auc = 2.0: must be "
              "at most 1")


def test_step_lines() -> None:
    assert parse_step_line(START_OK) == StepEvent("ok")
    assert parse_step_line(START_OK).started  # type: ignore[union-attr]
    assert parse_step_line(END_OK) == StepEvent("ok", "SUCCESS")
    bad = parse_step_line(END_BAD)
    assert bad == StepEvent("bad", "FAILURE") and bad.failed and not bad.started
    assert not parse_step_line(END_OK).failed  # type: ignore[union-attr]
    # A log record's message carries no time prefix; colours or none, the same event.
    assert parse_step_line("Executing task 'split'") == StepEvent("split")


@pytest.mark.parametrize("line", [RUNNING, STREAMED, OUTPUTS, PIPELINE_END, PIPELINE_FAILED,
                                  WAITED, STEP_ERROR, "", "    hello from ok"])
def test_other_lines_are_no_step_event(line: str) -> None:
    assert parse_step_line(line) is None


def test_user_error_lines() -> None:
    assert ERROR_MARKER == stages.ERROR_MARKER
    assert user_error(STEP_ERROR) == "config: gate.min_roc_auc = 2.0: must be at most 1"
    assert user_error(END_BAD) is None


def test_clock_pairs_starts_and_ends_per_step_first_in_first_out() -> None:
    clock = StepClock()
    lines = [(RUNNING, 0.0), (START_OK, 1.0), (STREAMED, 1.0), (END_OK, 3.5),
             (START_SHARD, 4.0), (START_SHARD, 4.5), (END_SHARD, 6.0), (END_SHARD, 7.25),
             (END_BAD, 8.0)]  # an end without a start is not timed
    events = [clock.feed(line, at) for line, at in lines]
    assert [e.step if e else None for e in events] == [
        None, "ok", None, "ok", "ok-2", "ok-2", "ok-2", "ok-2", "bad"]
    assert [(s.step, s.seconds, s.status) for s in clock.steps] == [
        ("ok", 2.5, "SUCCESS"), ("ok-2", 2.0, "SUCCESS"), ("ok-2", 2.75, "SUCCESS")]
    assert clock.failed_step is None
    clock.feed("Executing task 'bad'", 9.0)
    clock.feed(END_BAD, 10.0)
    assert clock.failed_step == "bad"
