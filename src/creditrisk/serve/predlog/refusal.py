"""No decision without its record, when the owner asks for it.

The setting ``prediction_log_on_write_failure`` (``CREDITRISK_PREDICTION_LOG_ON_WRITE_FAILURE``)
says what the transformer does with a request whose records the prediction log could
not take (disk full, spool past its bound, log closed):

* ``answer`` (default): answer 200 as usual; the records are counted
  (``creditrisk_prediction_log_records_total{outcome="failed"|"dropped"}``) and alerted on.
* ``refuse``: answer 503 for that request, with a JSON body naming the setting and the
  cause (:class:`LogWriteRefused`); everything else is as under ``answer`` (the same
  counters, the same metrics, the next request tries again).

The append is already synchronous — one ``os.write`` to the open segment before the
answer leaves — so ``refuse`` costs nothing on the request path. What it can know is
what the kernel accepted: a local log's records are in the page cache (no ``fsync``; a
crash of the machine may still lose them) and an ``s3://`` log's records are in its
local spool (an upload that fails later is retried from there, not refused).
"""

from __future__ import annotations

from typing import Any, Literal

from creditrisk.serve.protocol import RequestRejected

#: The setting's name (as in :class:`creditrisk.settings.Settings`) and its values.
SETTING = "prediction_log_on_write_failure"
OnWriteFailure = Literal["answer", "refuse"]
#: The stable code of a refused request's body.
CODE = "prediction_log_write_failed"


class LogWriteRefused(RequestRejected):
    """503: this request's records could not be logged and the setting is ``refuse``.
    Not a client mistake: the body carries no field errors (no validation metric
    counts it), but the setting, its value and the cause."""

    def __init__(self, records: int, cause: str) -> None:
        super().__init__(503, f"not answered: the prediction log could not record this "
                              f"request's {records} record(s) and {SETTING} is 'refuse'")
        self.cause = cause

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        return {**super().body(request_id), "code": CODE, "setting": SETTING,
                "value": "refuse", "cause": self.cause}
