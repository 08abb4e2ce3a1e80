"""The KServe transformer: validates client records against the feature contract, asks
the predictor for probabilities (REST v2 by default, gRPC v2 as an option), and answers
per record with probability, decision, risk band, model name and version and request id;
``:explain`` adds the reason codes. Every scored record goes to the prediction log.

Only ``preprocess``, ``postprocess`` and ``explain`` are KServe's hooks overridden here;
the call to the predictor is KServe's own ``Model.predict``.
"""

from __future__ import annotations

import argparse
import json
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import kserve
import numpy as np
from kserve.protocol.infer_type import (
    InferInput,
    InferOutput,
    InferRequest,
    InferResponse,
    to_http_parameters,
)

from creditrisk.contract import FEATURE_NAMES
from creditrisk.model import ModelMetadata
from creditrisk.scoring import DECLINE, decisions
from creditrisk.serve import metrics
from creditrisk.serve.explain import explanations, logged_reasons
from creditrisk.serve.predlog import Batch, PredictionLog
from creditrisk.serve.predlog.schema import REASONS
from creditrisk.serve.protocol import (
    CONTRIBUTIONS_OUTPUT,
    EXPLAIN_PARAMETER,
    MATRIX_INPUT,
    MODEL_PARAMETER,
    N_FEATURES,
    PROBABILITY_OUTPUT,
    REASONS_HEADER,
    REASONS_PARAMETER,
    RequestRejected,
    ServedModel,
    bounded_id,
    new_request_id,
    parse_v1,
    parse_v2,
    reject,
)
from creditrisk.serve.shadow import ShadowScorer, shadow_scorer
from creditrisk.settings import get_settings
from creditrisk.validation import Rule


@dataclass
class _Request:
    protocol: str
    request_id: str
    X: np.ndarray
    explain: bool = False
    #: Reasons for approved records too (v2 parameter ``reasons: "all"``, v1 header
    #: ``x-reasons: all``); by default only declined records get reasons.
    all_reasons: bool = False


#: The request being handled (preprocess -> predict/explain -> postprocess run in one task).
_current: ContextVar[_Request | None] = ContextVar("creditrisk_request", default=None)


class CreditTransformer(kserve.Model):
    def __init__(self, name: str, *, max_batch_size: int | None = None,
                 prediction_log: PredictionLog | None = None,
                 shadow: ShadowScorer | None = None) -> None:
        super().__init__(name)
        self.max_batch_size = max_batch_size or get_settings().max_batch_size
        self.prediction_log = prediction_log
        #: The challenger, scoring every answered batch in shadow (serve/shadow.py).
        self.shadow = shadow
        self._served: dict[str, tuple[ServedModel, ModelMetadata]] = {}
        self.ready = True

    def use_rest_client(self, client: Any) -> None:
        """The client KServe's ``Model.predict`` calls the predictor with (REST v2)."""
        from creditrisk.serve._kserve_compat import set_predictor_client

        set_predictor_client(self, client)

    @property
    def served_version(self) -> str | None:
        """The version of the model the predictor last answered with (None before)."""
        if not self._served:
            return None
        return next(reversed(self._served.values()))[0].model_version

    # --- metadata --------------------------------------------------------------------
    def get_input_types(self) -> list[dict[str, Any]]:
        return [{"name": n, "datatype": "FP64", "shape": [-1]} for n in FEATURE_NAMES]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [
            {"name": PROBABILITY_OUTPUT, "datatype": "FP64", "shape": [-1]},
            {"name": "decision", "datatype": "BYTES", "shape": [-1]},
            {"name": "risk_band", "datatype": "BYTES", "shape": [-1]},
        ]

    # --- hooks -----------------------------------------------------------------------
    def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        rid = bounded_id((headers or {}).get("x-request-id"), "x-request-id")
        explain, all_reasons = False, (headers or {}).get(REASONS_HEADER) == "all"
        if isinstance(payload, InferRequest):
            X = parse_v2(payload, self.max_batch_size)
            protocol, rid = "v2", bounded_id(payload.id, "id") or rid
            params = payload.parameters or {}
            if not isinstance(params, dict):
                params = to_http_parameters(params)
            explain = params.get(EXPLAIN_PARAMETER) is True
            all_reasons = params.get(REASONS_PARAMETER) == "all"
        elif isinstance(payload, dict):
            X = parse_v1(payload, self.max_batch_size)
            protocol = "v1"
        else:
            raise reject(400, "the body must be a JSON object", "<body>", payload,
                         'must be an object {"instances": [...]}', Rule.NOT_AN_OBJECT)
        rid = rid or new_request_id()
        _current.set(_Request(protocol, rid, X, explain, all_reasons))
        raw = np.ascontiguousarray(X, dtype="<f8").tobytes()  # OIP binary tensor extension
        inp = InferInput(MATRIX_INPUT, [X.shape[0], N_FEATURES], "FP64",
                         parameters={"binary_data_size": len(raw)})
        return InferRequest(model_name=self.name, infer_inputs=[inp], request_id=rid,
                            raw_inputs=[raw], parameters={"binary_data_output": True,
                                                          **({EXPLAIN_PARAMETER: True}
                                                             if explain else {})})

    async def explain(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        """Scores with contributions: the predictor computes them, postprocess ranks them."""
        req = _current.get()
        if req is not None:
            req.explain = True
        payload.parameters = {**(payload.parameters or {}), EXPLAIN_PARAMETER: True}
        return await self.predict(payload, headers)

    def postprocess(self, result: Any, headers: dict[str, str] | None = None,
                    response_headers: dict[str, str] | None = None) -> Any:
        req = _current.get()
        if req is None or not isinstance(result, InferResponse):
            raise RuntimeError("postprocess without a preprocessed request")
        out = result.get_output_by_name(PROBABILITY_OUTPUT)
        if out is None:
            raise RuntimeError("the predictor's answer has no probability output")
        p = np.asarray(out.as_numpy(), dtype=np.float64).reshape(-1)
        served, meta = self._served_model(result)
        decision, band = decisions(p, meta)
        n = len(p)
        metrics.score_collector().observe(p, decision)
        if req.explain:
            return self._explained(req, result, served, p, decision, band)
        if self.prediction_log is not None or self.shadow is not None:
            self._record(Batch(req.request_id, time.time(), served.model_name,
                               served.model_version, req.X, p, decision, band))
        if req.protocol == "v1":
            name, version, rid = served.model_name, served.model_version, req.request_id
            probs = p.tolist()
            return {"predictions": [
                {"probability": probs[i], "decision": decision[i], "risk_band": band[i],
                 "model_name": name, "model_version": version, "request_id": rid}
                for i in range(n)]}
        return InferResponse(
            response_id=req.request_id,
            model_name=served.model_name,
            model_version=served.model_version,
            infer_outputs=[
                InferOutput(PROBABILITY_OUTPUT, [n], "FP64", data=p.tolist()),
                InferOutput("decision", [n], "BYTES", data=decision),
                InferOutput("risk_band", [n], "BYTES", data=band),
            ],
            parameters={"request_id": req.request_id, "model_name": served.model_name,
                        "model_version": served.model_version},
        )

    def _explained(self, req: _Request, result: InferResponse, served: ServedModel,
                   p: np.ndarray, decision: list[str], band: list[str]) -> Any:
        """``:explain`` (v1) or a v2 request with ``explain: true``: the answer with each
        record's contributions per input field and adverse-action reasons (declined
        records; all with ``reasons: all``); declined records' reasons are logged."""
        n = len(p)
        contrib_out = result.get_output_by_name(CONTRIBUTIONS_OUTPUT)
        if contrib_out is None:
            raise RuntimeError("the predictor's answer has no contributions")
        contrib = np.asarray(contrib_out.as_numpy(), dtype=np.float64).reshape(n, -1)
        declined = [d == DECLINE for d in decision]
        reasons, per_field = explanations(contrib, declined, all_records=req.all_reasons)
        if self.prediction_log is not None or self.shadow is not None:
            self._record(Batch(
                req.request_id, time.time(), served.model_name, served.model_version, req.X,
                p, decision, band, extra={REASONS: logged_reasons(reasons, declined)}))
        if req.protocol == "v2":
            return InferResponse(
                response_id=req.request_id, model_name=served.model_name,
                model_version=served.model_version,
                infer_outputs=[
                    InferOutput(PROBABILITY_OUTPUT, [n], "FP64", data=p.tolist()),
                    InferOutput("decision", [n], "BYTES", data=decision),
                    InferOutput("risk_band", [n], "BYTES", data=band),
                    InferOutput(REASONS, [n], "BYTES",
                                data=[json.dumps(r or []) for r in reasons]),
                    InferOutput(CONTRIBUTIONS_OUTPUT, [n, N_FEATURES], "FP64",
                                data=contrib.reshape(-1).tolist()),
                ],
                parameters={"request_id": req.request_id, "model_name": served.model_name,
                            "model_version": served.model_version})
        return {"explanations": [
            {"probability": p[i], "decision": decision[i], "risk_band": band[i],
             "reasons": reasons[i] or [], "contributions": per_field[i],
             "model_name": served.model_name, "model_version": served.model_version,
             "request_id": req.request_id}
            for i in range(n)]}

    def _record(self, batch: Batch) -> None:
        """The answered batch to the prediction log, then to the challenger in shadow
        (queued, never awaited: see :mod:`creditrisk.serve.shadow`)."""
        if self.prediction_log is not None:
            self.prediction_log.submit(batch)
        if self.shadow is not None:
            self.shadow.submit(batch)

    def _served_model(self, result: InferResponse) -> tuple[ServedModel, ModelMetadata]:
        params = result.parameters
        if params is not None and not isinstance(params, dict):
            params = to_http_parameters(params)
        text = (params or {}).get(MODEL_PARAMETER)
        if not isinstance(text, str):
            raise RuntimeError("the predictor's answer does not name its model")
        hit = self._served.get(text)
        if hit is None:
            served = ServedModel.decode(text)
            hit = self._served[text] = (served, served.metadata())
            if len(self._served) > 16:
                self._served.pop(next(iter(self._served)))
            metrics.set_model_info(served.model_name, served.model_version)
        return hit

    def stop(self) -> None:
        if self.prediction_log is not None:
            self.prediction_log.close()
        super().stop()


def main(args: argparse.Namespace) -> None:
    from kserve.predictor_config import PredictorConfig

    from creditrisk.serve import _kserve_compat, server

    settings = get_settings()
    timeout = args.predictor_timeout_s or settings.predictor_timeout_s
    host = args.predictor_host or f"127.0.0.1:{settings.predictor_http_port}"
    config = PredictorConfig(
        predictor_host=host,
        predictor_protocol=args.predictor_protocol,
        predictor_use_ssl=args.predictor_use_ssl,
        predictor_request_timeout_seconds=timeout,
        predictor_request_retries=args.predictor_request_retries,
        predictor_health_check=args.enable_predictor_health_check,
    )
    plog = None
    if args.prediction_log != "off":
        plog = PredictionLog(args.prediction_log or settings.prediction_log_location)
    model = CreditTransformer(args.model_name, max_batch_size=args.max_batch_size,
                              prediction_log=plog,
                              shadow=shadow_scorer(args.challenger_host, args.model_name, plog))
    if args.predictor_protocol == "v2" and _kserve_compat.fast_path_supported():
        from creditrisk.serve.client import ClientConfigError, PooledRESTClient

        try:
            client = PooledRESTClient(timeout, retries=args.predictor_request_retries,
                                      use_ssl=bool(args.predictor_use_ssl))
        except ClientConfigError as exc:
            raise SystemExit(f"transformer: {exc}") from None
        model.use_rest_client(client)
    server.run(model, args, server="transformer", fast=server.use_fast_path(args),
               predictor_config=config, predictor_timeout_s=timeout)


__all__ = ["CreditTransformer", "RequestRejected", "main"]
