"""The KServe predictor: the registered model, scoring contract-ordered matrices (or
named records) over v1, v2 REST and v2 gRPC, in batches."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import kserve
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
    PROBABILITY_OUTPUT,
    ServedModel,
    new_request_id,
    parse_v1,
    parse_v2,
)
from creditrisk.settings import get_settings

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

    def _predict_v2(self, request: InferRequest) -> InferResponse:
        assert self.model is not None and self.served is not None
        grpc = bool(request.from_grpc)
        try:
            X = parse_v2(request, self.max_batch_size, allow_matrix=True)
            p = self.model.predict_proba(X)
            n = len(p)
            outputs = [InferOutput(PROBABILITY_OUTPUT, [n], "FP64", data=p.tolist())]
            params = request.parameters or {}
            if _flag(params.get(EXPLAIN_PARAMETER)):
                contrib, bias = explain.field_contributions(self.model, X)
                outputs.append(InferOutput(CONTRIBUTIONS_OUTPUT, [n, N_FEATURES], "FP64",
                                           data=contrib.ravel().tolist()))
                outputs.append(InferOutput(BIAS_OUTPUT, [n], "FP64", data=bias.tolist()))
        except Exception:
            if grpc:
                metrics.REQUESTS.labels(server="predictor", protocol="grpc-v2",
                                        verb="infer", status="error").inc()
            raise
        if grpc:
            metrics.REQUESTS.labels(server="predictor", protocol="grpc-v2", verb="infer",
                                    status="200").inc()
        metrics.score_collector().observe(p)
        return InferResponse(
            response_id=request.id or new_request_id(),
            model_name=self.name,
            model_version=self.served.model_version,
            infer_outputs=outputs,
            parameters={MODEL_PARAMETER: self._served_param},
            use_binary_outputs=request.use_binary_outputs,
        )


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
    server.run(model, args, server="predictor")

