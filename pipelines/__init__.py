"""creditrisk pipelines (thin shells over the creditrisk core library).

The pipelines' names, as the command line spells them, resolve here to their KFP pipeline
objects: the shells (the ``creditrisk pipeline`` CLI, ``make pipelines``) look a name up
with :func:`pipeline_function` and hand the object to :mod:`creditrisk.orchestration`,
which never imports this package. The modules load lazily: importing this package does
not import KFP.
"""

from typing import Any

#: Pipeline names on the command line.
TRAINING = "training"
BATCH_SCORING = "batch-scoring"
PIPELINES = (TRAINING, BATCH_SCORING)

#: The compiled files (``pipelines/compiled/``): {file stem: (pipeline, cluster variant?)}.
COMPILED_FILES: dict[str, tuple[str, bool]] = {
    "training": (TRAINING, False),
    "training-cluster": (TRAINING, True),
    "batch-scoring": (BATCH_SCORING, False),
    "batch-scoring-cluster": (BATCH_SCORING, True),
}


def pipeline_function(name: str, *, cluster: bool = False) -> Any:
    """The KFP pipeline object named ``name`` (portable or cluster variant)."""
    if name == TRAINING:
        from pipelines import training

        return training.training_pipeline_cluster if cluster else training.training_pipeline
    if name == BATCH_SCORING:
        from pipelines import batch_scoring

        return (batch_scoring.batch_scoring_pipeline_cluster if cluster
                else batch_scoring.batch_scoring_pipeline)
    from creditrisk.orchestration import PipelineError

    raise PipelineError(f"unknown pipeline {name!r}; one of {', '.join(PIPELINES)}")


def compiled_pipelines() -> dict[str, Any]:
    """{file stem: pipeline object} of every compiled file (both variants)."""
    return {stem: pipeline_function(name, cluster=cluster)
            for stem, (name, cluster) in COMPILED_FILES.items()}
