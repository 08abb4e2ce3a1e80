"""The "stock" KServe chain the benchmark compares with: a plain KServe transformer
(records -> pandas DataFrame -> v1 call through KServe's default httpx client) in front
of a plain KServe predictor (DataFrame -> the sklearn pipeline's ``predict_proba``), both
with KServe's default settings. No validation, no prediction log, no metrics of ours.

    python benchmarks/stock_chain.py predictor --model_dir DIR_OR_MODELS_URI --http_port P
    python benchmarks/stock_chain.py transformer --predictor_host 127.0.0.1:P --http_port T
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import kserve
import pandas as pd

from creditrisk.contract import FEATURE_NAMES
from creditrisk.settings import get_settings


class StockPredictor(kserve.Model):
    def __init__(self, name: str, source: str) -> None:
        super().__init__(name)
        self.source = source
        self.pipeline: Any = None

    def load(self) -> bool:
        from creditrisk.registry import load_model

        self.pipeline = load_model(self.source).pipeline
        self.ready = True
        return True

    def predict(self, payload: Any, headers: Any = None) -> dict[str, Any]:
        frame = pd.DataFrame(payload["instances"], columns=list(FEATURE_NAMES))
        return {"predictions": self.pipeline.predict_proba(frame)[:, 1].tolist()}


class StockTransformer(kserve.Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ready = True

    def preprocess(self, payload: Any, headers: Any = None) -> dict[str, Any]:
        frame = pd.DataFrame(payload["instances"], columns=list(FEATURE_NAMES))
        return {"instances": frame.to_numpy().tolist()}

    def postprocess(self, result: Any, headers: Any = None,
                    response_headers: Any = None) -> Any:
        return result


if __name__ == "__main__":
    role = sys.argv.pop(1)
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_dir", default=None, help="model directory or registry URI")
    args, _ = parser.parse_known_args()
    name = get_settings().model_name
    if role == "predictor":
        model: kserve.Model = StockPredictor(name, args.model_dir)
        model.load()
    else:
        model = StockTransformer(name)
    kserve.ModelServer(http_port=args.http_port, grpc_port=args.grpc_port,
                       enable_grpc=False).start([model])
