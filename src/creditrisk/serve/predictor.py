"""The KServe predictor: the registered model, scoring contract-ordered matrices (or
named records) over v1, v2 REST and v2 gRPC, in batches."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import kserve
import numpy as np
import orjson
import yaml
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from creditrisk.model import LoadedModel
from creditrisk.registry import load_model
from creditrisk.serve import explain, metrics
from creditrisk.serve.protocol import (
    BIAS_OUTPUT,
    CONTRIBUTIONS_OUTPUT,
    EXPLAIN_PARAMETER,
    MATRIX_INPUT,
    MODEL_PARAMETER,
    N_FEATURES,
    NOT_PLAIN,
    PROBABILITY_OUTPUT,
    ServedModel,
    check_batch_size,
    checked_matrix,
    new_request_id,
    parse_v1,
    parse_v2,
    reject,
)
from creditrisk.settings import get_settings
from creditrisk.validation import Rule

log = logging.getLogger(__name__)


def model_version(model: LoadedModel, source: str, given: str | None = None) -> str:
    """The version to report: given, else the registry's, else the MLmodel's run id."""
    if given:
        return given
    if model.version:
        return str(model.version)
    mlmodel = Path(source) / "MLmodel"
    if mlmodel.exists():
        spec = yaml.safe_load(mlmodel.read_text()) or {}
        if spec.get("run_id"):
            return f"run-{str(spec['run_id'])[:12]}"
        if spec.get("model_uuid"):
            return f"uuid-{str(spec['model_uuid'])[:12]}"
    return "unknown"


class CreditPredictor(kserve.Model):
    """Default probabilities from the champion model."""

    def __init__(self, name: str, source: str, *, version: str | None = None,
                 max_batch_size: int | None = None) -> None:
        super().__init__(name)
        self.source = source
        self.given_version = version
        self.max_batch_size = max_batch_size or get_settings().max_batch_size
        self.model: LoadedModel | None = None
        self.served: ServedModel | None = None
        self._served_param = ""
        self._latency = metrics.StageLatency(name)

    def load(self) -> bool:
        self.model = load_model(self.source)
        version = model_version(self.model, self.source, self.given_version)
        meta = self.model.metadata
        self.served = ServedModel(
            self.name, version, float(meta.threshold),
            tuple((str(b["name"]), float(b["upper"])) for b in meta.risk_bands))
        self._served_param = self.served.encode()
        metrics.set_model_info(self.name, version)
        log.info("loaded %s version %s from %s (fast path: %s)", self.name, version,
                 self.source, self.model.scorer.fast)
        self.ready = True
        return True

    @property
    def served_version(self) -> str | None:
        return None if self.served is None else self.served.model_version

    def get_input_types(self) -> list[dict[str, Any]]:
        return [{"name": MATRIX_INPUT, "datatype": "FP64", "shape": [-1, N_FEATURES]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [{"name": PROBABILITY_OUTPUT, "datatype": "FP64", "shape": [-1]}]

    def predict(self, payload: Any, headers: dict[str, str] | None = None,
                response_headers: dict[str, str] | None = None) -> Any:
        assert self.model is not None and self.served is not None
        if isinstance(payload, InferRequest):
            return self._predict_v2(payload)
        X = parse_v1(payload, self.max_batch_size, allow_matrix=True)
        p = self.model.predict_proba(X)
        metrics.score_collector().observe(p)
        return {"predictions": p.tolist(), "model_name": self.served.model_name,
                "model_version": self.served.model_version}

    async def explain(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        """Reason codes are the transformer's ``:explain`` (the predictor returns the raw
        contributions when a v2 request sets the ``explain`` parameter): a clear 404."""
        raise reject(404, "the predictor has no :explain", "verb", "explain",
                     "ask the transformer's :explain (or send the v2 parameter "
                     f"'{EXPLAIN_PARAMETER}': true to /infer)", Rule.REQUEST)

    def _score(self, X: np.ndarray, with_contributions: bool) -> list[np.ndarray]:
        """Probabilities (and contributions per input field and bias), observed."""
        assert self.model is not None
        p = self.model.predict_proba(X)
        out = [p]
        if with_contributions:
            out += explain.field_contributions(self.model, X)
        metrics.score_collector().observe(p)
        return out

    def _predict_v2(self, request: InferRequest) -> InferResponse:
        assert self.model is not None and self.served is not None
        grpc = bool(request.from_grpc)
        try:
            X = parse_v2(request, self.max_batch_size, allow_matrix=True)
            params = request.parameters or {}
            scored = self._score(X, _flag(params.get(EXPLAIN_PARAMETER)))
            n = len(scored[0])
            outputs = [InferOutput(name, [n, N_FEATURES] if a.ndim == 2 else [n], "FP64",
                                   data=a.ravel().tolist())
                       for name, a in zip(_OUTPUT_NAMES, scored, strict=False)]
        except Exception:
            if grpc:
                metrics.REQUESTS.labels(server="predictor", protocol="grpc-v2",
                                        verb="infer", status="error").inc()
            raise
        if grpc:
            metrics.REQUESTS.labels(server="predictor", protocol="grpc-v2", verb="infer",
                                    status="200").inc()
        return InferResponse(
            response_id=request.id or new_request_id(),
            model_name=self.name,
            model_version=self.served.model_version,
            infer_outputs=outputs,
            parameters={MODEL_PARAMETER: self._served_param},
            use_binary_outputs=request.use_binary_outputs,
        )


    def infer_binary(self, body: bytes, json_length: int) -> Any:
        """The transformer's request — one FP64 ``[n, 23]`` tensor in the binary tensor
        extension, binary output asked for — scored without building KServe's request and
        response objects: the same checks, model and metrics as :meth:`predict`, the same
        answer as KServe would encode (``(body, json_length)``). Any other request:
        :data:`NOT_PLAIN`, and it goes through ``Model.__call__``."""
        assert self.served is not None
        started = time.perf_counter()
        try:
            head = orjson.loads(body[:json_length])
        except orjson.JSONDecodeError:
            return NOT_PLAIN
        if type(head) is not dict or not head.keys() <= _BINARY_REQUEST_KEYS:
            return NOT_PLAIN
        inputs, params, rid = head.get("inputs"), head.get("parameters"), head.get("id")
        if (type(inputs) is not list or len(inputs) != 1 or type(params) is not dict
                or params.get("binary_data_output") is not True
                or not params.keys() <= _BINARY_PARAMETERS
                or (rid is not None and type(rid) is not str)):
            return NOT_PLAIN
        inp = inputs[0]
        shape = inp.get("shape") if type(inp) is dict else None
        if (type(shape) is not list or len(shape) != 2 or type(shape[0]) is not int
                or shape[1] != N_FEATURES or inp.get("name") != MATRIX_INPUT
                or inp.get("datatype") != "FP64" or shape[0] < 0
                or inp.get("parameters") != {"binary_data_size": shape[0] * N_FEATURES * 8}
                or len(body) != json_length + shape[0] * N_FEATURES * 8):
            return NOT_PLAIN
        n = shape[0]
        check_batch_size(n, self.max_batch_size, "inputs")
        X = checked_matrix(np.frombuffer(body, "<f8", n * N_FEATURES, json_length)
                           .reshape(n, N_FEATURES))
        decoded = time.perf_counter()
        scored = self._score(X, _flag(params.get(EXPLAIN_PARAMETER)))
        predicted = time.perf_counter()
        outputs, raw = [], []
        for name, a in zip(_OUTPUT_NAMES, scored, strict=False):
            data = np.ascontiguousarray(a, dtype="<f8").tobytes()
            outputs.append({"name": name, "shape": list(a.shape), "datatype": "FP64",
                            "parameters": {"binary_data_size": len(data)}})
            raw.append(data)
        head_out = orjson.dumps({
            "id": rid or new_request_id(), "model_name": self.name,
            "model_version": self.served.model_version, "outputs": outputs,
            "parameters": {MODEL_PARAMETER: self._served_param}})
        self._latency.observe(started, decoded, predicted, time.perf_counter())
        return b"".join([head_out, *raw]), len(head_out)


_OUTPUT_NAMES = (PROBABILITY_OUTPUT, CONTRIBUTIONS_OUTPUT, BIAS_OUTPUT)
_BINARY_REQUEST_KEYS = frozenset({"id", "model_name", "inputs", "parameters"})
_BINARY_PARAMETERS = frozenset({"binary_data_output", EXPLAIN_PARAMETER})


def _flag(v: Any) -> bool:
    if hasattr(v, "bool_param"):  # gRPC InferParameter
        return bool(v.bool_param) or v.string_param.lower() == "true"
    return v is True or (isinstance(v, str) and v.lower() == "true")


def main(args: argparse.Namespace) -> None:
    """Load the model named by ``--model_dir`` (or ``--model_uri``) and serve it."""
    from creditrisk.serve import server

    source = args.model_dir or args.model_uri or get_settings().champion_uri
    model = CreditPredictor(args.model_name, str(source), version=args.model_version,
                            max_batch_size=args.max_batch_size)
    model.load()
    server.run(model, args, server="predictor", fast=server.use_fast_path(args))

