"""Real KServe server processes for the serving tests: a predictor and a transformer on
free 127.0.0.1 ports, started once per session and stopped at the end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from serving_helpers import Server, start_predictor, start_transformer


@pytest.fixture(scope="session")
def serving_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serving")


@pytest.fixture(scope="session")
def served_model(trained_model_dir: Path):
    """The same model, loaded in-process: the reference the servers must agree with."""
    from creditrisk.registry import load_model

    return load_model(trained_model_dir)


@pytest.fixture(scope="session")
def predictor(trained_model_dir: Path, serving_dir: Path) -> Iterator[Server]:
    server = start_predictor(trained_model_dir, serving_dir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def transformer(predictor: Server, serving_dir: Path) -> Iterator[Server]:
    server = start_transformer(predictor, serving_dir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def client_records(real_data_path: Path) -> list[dict]:
    """Real client records (contract fields only), as a client would send them."""
    from creditrisk.contract import FEATURE_NAMES
    from creditrisk.data import load_dataset

    frame = load_dataset(real_data_path).loc[:, list(FEATURE_NAMES)]
    sample = frame.sample(1200, random_state=7)
    return [
        {k: (int(v) if float(v).is_integer() else float(v)) for k, v in row.items()}
        for row in sample.to_dict("records")
    ]
