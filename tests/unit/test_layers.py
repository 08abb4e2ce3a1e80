"""The core library imports no shell (docs/architecture.md, "Layers"): no module under
src/creditrisk imports ``pipelines``, ``components`` or ``serving``, in any form (a
top-level or a function-level import statement, ``importlib.import_module`` or
``__import__`` of a literal name)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "src" / "creditrisk"
SHELLS = frozenset({"pipelines", "components", "serving"})

#: The creditrisk CLI is a shell that lives in the core's package (architecture.md, the
#: "shells" row: ``cli*.py``): it resolves pipeline names with the ``pipelines`` package.
CLI_SHELLS = {"cli_pipeline.py": {"pipelines"}}
#: Transitional (issue 18): orchestration still resolves a pipeline named by a string for
#: monitoring/retrain.py. The entry goes when retrain.py hands in the pipeline object.
TRANSITIONAL = {"orchestration.py": {"pipelines"}}

pytestmark = pytest.mark.unit


def _imported_roots(tree: ast.AST) -> set[str]:
    """The top-level package of every absolute import in ``tree``."""
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id == "__import__"))):
            roots.add(node.args[0].value.split(".")[0])
    return roots


def _shell_imports() -> dict[str, set[str]]:
    found = {}
    for path in sorted(CORE.rglob("*.py")):
        shells = _imported_roots(ast.parse(path.read_text(), str(path))) & SHELLS
        if shells:
            found[path.relative_to(CORE).as_posix()] = shells
    return found


def test_the_scan_sees_every_form_of_import() -> None:
    tree = ast.parse("import serving.predictor\n"
                     "def f():\n    from pipelines import training\n"
                     "import importlib\nimportlib.import_module('components.steps')\n"
                     "__import__('os')\nfrom . import pipelines\n")
    assert _imported_roots(tree) & SHELLS == {"serving", "pipelines", "components"}


def test_the_core_imports_no_shell() -> None:
    allowed = {**CLI_SHELLS, **TRANSITIONAL}
    offenders = {path: shells - allowed.get(path, set())
                 for path, shells in _shell_imports().items()
                 if shells - allowed.get(path, set())}
    assert not offenders, (
        f"the core must not import a shell; hand the shell's object in instead: {offenders}")


def test_the_transitional_exception_is_still_needed() -> None:
    """When orchestration stops importing ``pipelines``, delete TRANSITIONAL."""
    found = _shell_imports()
    for path, shells in TRANSITIONAL.items():
        assert shells <= found.get(path, set()), f"{path}: drop it from TRANSITIONAL"


def test_shells_resolve_names_and_the_transitional_path_warns() -> None:
    import pipelines
    from creditrisk import orchestration
    from pipelines import batch_scoring, training

    assert pipelines.pipeline_function("training") is training.training_pipeline
    assert (pipelines.pipeline_function("batch-scoring", cluster=True)
            is batch_scoring.batch_scoring_pipeline_cluster)
    assert set(pipelines.compiled_pipelines()) == set(pipelines.COMPILED_FILES)
    with pytest.raises(orchestration.PipelineError, match="unknown pipeline 'nope'"):
        pipelines.pipeline_function("nope")
    with pytest.warns(DeprecationWarning, match="pass the pipeline object"):
        legacy = orchestration._named_pipeline("training", cluster=True)
    assert legacy is training.training_pipeline_cluster
