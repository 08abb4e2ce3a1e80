"""The dependency layers of pyproject.toml: the serving image installs the core library
and the `serve` extra only, so the serving code must not need the training stack.

* the serving entrypoints import none of the training stack's packages;
* the predictor loads a saved model directory and scores with those packages made
  unimportable (what the serving image has: no MLflow client at all);
* the extras are what the Dockerfiles install, and every exact pin of pyproject.toml is
  the pin of constraints.txt (the lock).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.helpers import save_synthetic_model

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]

#: Modules of the `train` extra that the serving image does not carry.
TRAIN_ONLY = ("kfp", "mlflow", "evidently", "optuna", "matplotlib", "pandera", "xlrd",
              "sqlalchemy", "alembic", "flask", "plotly")
#: Distributions that must not be in the serving image's dependency set.
TRAIN_ONLY_DISTS = {"kfp", "kfp-kubernetes", "mlflow", "mlflow-skinny", "evidently", "optuna",
                    "matplotlib", "pandera", "pyarrow", "xlrd", "supervisor"}
SERVING_ENTRYPOINTS = ("serving.predictor", "serving.transformer",
                       "creditrisk.serve.predictor", "creditrisk.serve.transformer",
                       "creditrisk.serve.client")


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    return re.split(r"[\[=<>~! ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_serving_entrypoints_import_nothing_of_the_training_stack() -> None:
    proc = _python(
        "import json, sys\n"
        f"for m in {SERVING_ENTRYPOINTS!r}: __import__(m)\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({TRAIN_ONLY!r}))))"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_predictor_loads_and_scores_without_the_training_stack(tmp_path: Path) -> None:
    """The import of any training-stack module fails in this process, as in the image."""
    model_dir = save_synthetic_model(tmp_path / "model", rows=1500)
    proc = _python(
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {TRAIN_ONLY!r}:\n"
        "            raise ImportError(f'{name} is not in the serving image')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from creditrisk.model import input_example\n"
        "from creditrisk.serve.predictor import CreditPredictor\n"
        f"m = CreditPredictor('credit-default', {str(model_dir)!r})\n"
        "m.load()\n"
        "p = m.model.predict_proba(input_example())\n"
        "assert 0 < p[0] < 1, p\n"
        "print('scored', p[0])\n"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("scored")


def test_serve_layer_excludes_the_training_stack() -> None:
    project = _pyproject()["project"]
    extras = project["optional-dependencies"]
    serve = {_name(r) for r in [*project["dependencies"], *extras["serve"]]}
    assert not serve & TRAIN_ONLY_DISTS
    assert {"kserve", "scikit-learn", "lightgbm", "skops"} <= serve
    assert {"kfp", "mlflow", "evidently", "optuna", "matplotlib"} <= {
        _name(r) for r in extras["train"]}
    # `make install` (.[dev]) still installs everything
    assert "creditrisk[stack]" in extras["dev"]
    assert "creditrisk[serve,train]" in extras["stack"]


def test_dockerfiles_install_their_layer_only() -> None:
    serve = (REPO / "Dockerfile.serve").read_text()
    train = (REPO / "Dockerfile.train").read_text()
    assert re.findall(r"install -c constraints.txt '([^']+)'", serve) == [".[serve]"]
    assert re.findall(r"install -c constraints.txt '([^']+)'", train) == [".[train,serve]"]


def test_every_pin_is_the_lock_pin() -> None:
    project = _pyproject()["project"]
    lock = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            lock[_name(name)] = version.strip()
    requirements = [*project["dependencies"],
                    *(r for extra in project["optional-dependencies"].values() for r in extra)]
    for req in requirements:
        if "==" in req:
            name, version = _name(req), req.split("==", 1)[1].split(";")[0].strip()
            assert lock.get(name) == version, f"{req}: constraints.txt pins {lock.get(name)}"


def test_a_registry_uri_without_mlflow_is_a_clear_error() -> None:
    proc = _python(
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'mlflow':\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from creditrisk.errors import RegistryError\n"
        "from creditrisk.registry import load_model\n"
        "try:\n"
        "    load_model('models:/credit-default@champion')\n"
        "except RegistryError as exc:\n"
        "    print(exc)\n"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == (
        "cannot load models:/credit-default@champion: no MLflow client installed here (it "
        "comes with the 'train' extra); give a model directory instead "
        "(--model_dir /mnt/models)")
