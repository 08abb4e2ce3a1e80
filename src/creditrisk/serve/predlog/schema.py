"""The prediction-log record: the one place that names its fields.

The writer (:mod:`creditrisk.serve.predlog.encode`) builds its byte templates from
:data:`FIELDS`; the reader (:mod:`creditrisk.monitoring.logreader`) checks every line and
types every column from it. Nothing else spells a field name of the log. This module
imports nothing but the feature contract (it is in the serving image and in the
monitoring jobs alike).

One JSON object per line, its fields in this order:

==================  ===========  ========  =================================================
field               type         required  meaning
==================  ===========  ========  =================================================
``request_id``      text         yes       the request's id (client's ``x-request-id``,
                                           the v2 body's ``id``, or a generated one)
``timestamp``       time         yes       when the answer was made: ISO 8601, UTC,
                                           microseconds (``2026-03-01T12:00:00.250000+00:00``)
``model_name``      text         no        the served model's registered name
``model_version``   text         no        the served model's version
``record``          integer      yes       the record's position in its request (>= 0)
*23 features*       number       yes       the validated inputs under their contract names
                                           (:data:`creditrisk.contract.FEATURE_NAMES`)
``probability``     probability  yes       the model's probability of default, in [0, 1]
``decision``        text         no        ``approve`` / ``decline``
``risk_band``       text         no        the risk band of the probability
``challenger``      object       no        *omitted when absent* (shadow scoring):
                                           ``{"version", "probability", "decision"}``
``reasons``         list         no        *omitted when absent*: adverse-action reasons
==================  ===========  ========  =================================================

**The record key is** (``request_id``, ``record``): delayed labels join on it.

*Required* fields must be in every line (a line without one is malformed); the reader
gives ``None`` for an optional field a line lacks, and ignores fields it does not know
(a later version of the log may add some). The writer writes every field except the
*omitted when absent* ones, which it writes only for a batch that carries them.

Versions: :data:`SCHEMA_VERSION` counts incompatible changes (a field renamed, removed,
retyped or made required). Adding an optional field is compatible and keeps the version:
add one :class:`Field` line below (``omit_when_absent=True`` if the writer may leave it
out), pass its values in :attr:`creditrisk.serve.predlog.encode.Batch.extra`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from creditrisk.contract import FEATURE_NAMES

#: Incompatible changes of the record so far (see the module docstring).
SCHEMA_VERSION = 1


class Kind(StrEnum):
    TEXT = "text"
    TIME = "time"  # ISO 8601 text
    INTEGER = "integer"  # >= 0
    NUMBER = "number"  # a finite number
    PROBABILITY = "probability"  # a finite number in [0, 1]
    OBJECT = "object"  # a JSON object
    LIST = "list"  # a JSON array


class Scope(StrEnum):
    BATCH = "batch"  # one value for every record of a request
    RECORD = "record"  # one value per record


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    scope: Scope
    required: bool
    description: str
    #: The writer leaves the field out of a line when the batch has no value for it.
    omit_when_absent: bool = False

    @property
    def numeric(self) -> bool:
        return self.kind in (Kind.NUMBER, Kind.PROBABILITY)


_B, _R = Scope.BATCH, Scope.RECORD

REQUEST_ID = "request_id"
TIMESTAMP = "timestamp"
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
RECORD = "record"
PROBABILITY = "probability"
DECISION = "decision"
RISK_BAND = "risk_band"
CHALLENGER = "challenger"
REASONS = "reasons"

#: The record's fields in the order the writer writes them.
FIELDS: tuple[Field, ...] = (
    Field(REQUEST_ID, Kind.TEXT, _B, True, "the request's id"),
    Field(TIMESTAMP, Kind.TIME, _B, True, "when the answer was made (ISO 8601, UTC)"),
    Field(MODEL_NAME, Kind.TEXT, _B, False, "the served model's name"),
    Field(MODEL_VERSION, Kind.TEXT, _B, False, "the served model's version"),
    Field(RECORD, Kind.INTEGER, _R, True, "the record's position in its request"),
    *(Field(name, Kind.NUMBER, _R, True, "an input of the feature contract")
      for name in FEATURE_NAMES),
    Field(PROBABILITY, Kind.PROBABILITY, _R, True, "the probability of default"),
    Field(DECISION, Kind.TEXT, _R, False, "approve / decline"),
    Field(RISK_BAND, Kind.TEXT, _R, False, "the risk band of the probability"),
    Field(CHALLENGER, Kind.OBJECT, _R, False, "shadow score: version, probability, "
          "decision", omit_when_absent=True),
    Field(REASONS, Kind.LIST, _R, False, "adverse-action reasons", omit_when_absent=True),
)

BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
REQUIRED: tuple[str, ...] = tuple(f.name for f in FIELDS if f.required)
OPTIONAL: tuple[str, ...] = tuple(f.name for f in FIELDS if not f.required)
#: The fields the writer may leave out of a line.
OMITTABLE: tuple[str, ...] = tuple(f.name for f in FIELDS if f.omit_when_absent)


def names_of(*kinds: Kind) -> tuple[str, ...]:
    return tuple(f.name for f in FIELDS if f.kind in kinds)


#: The record key: delayed labels join on it.
KEY: tuple[str, str] = (REQUEST_ID, RECORD)
#: The numbers of a record: the contract's features, then the probability.
NUMERIC: tuple[str, ...] = names_of(Kind.NUMBER, Kind.PROBABILITY)
TEXT: tuple[str, ...] = names_of(Kind.TEXT)

# Layout checks: what the rest of the code relies on, stated once.
if (*FEATURE_NAMES, PROBABILITY) != NUMERIC or len(set(NAMES)) != len(NAMES):
    raise AssertionError("the prediction-log schema: features then probability, names unique")
