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
CLI_SHELLS = {"cli_pipeline.py": {"pipelines"}, "cli_monitor.py": {"pipelines"}}

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
    allowed = CLI_SHELLS
    offenders = {path: shells - allowed.get(path, set())
                 for path, shells in _shell_imports().items()
                 if shells - allowed.get(path, set())}
    assert not offenders, (
        f"the core must not import a shell; hand the shell's object in instead: {offenders}")


def test_shells_resolve_names() -> None:
    import pipelines
    from creditrisk import orchestration
    from pipelines import batch_scoring, training

    assert pipelines.pipeline_function("training") is training.training_pipeline
    assert (pipelines.pipeline_function("batch-scoring", cluster=True)
            is batch_scoring.batch_scoring_pipeline_cluster)
    assert set(pipelines.compiled_pipelines()) == set(pipelines.COMPILED_FILES)
    with pytest.raises(orchestration.PipelineError, match="unknown pipeline 'nope'"):
        pipelines.pipeline_function("nope")
    assert not hasattr(orchestration, "_named_pipeline")


#: A function over this many lines needs its reason written beside it (architecture.md).
MAX_FUNCTION_LINES = 60
LONG_MARKER = "# long-function:"


def _long_functions_without_a_reason() -> list[str]:
    found = []
    for path in sorted(CORE.rglob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            beside = lines[max(first - 2, 0):node.lineno]  # the line above and the def
            if length > MAX_FUNCTION_LINES and not any(
                    LONG_MARKER in ln and ln.split(LONG_MARKER, 1)[1].strip()
                    for ln in beside):
                found.append(f"{path.relative_to(CORE)}:{node.lineno} {node.name} "
                             f"({length} lines)")
    return found


def test_no_long_function_without_a_reason() -> None:
    """Every function of the core over 60 lines says why beside its ``def``
    (``# long-function: <reason>``), or is split."""
    assert not _long_functions_without_a_reason(), "\n".join(
        _long_functions_without_a_reason())
