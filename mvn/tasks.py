"""The jobs train.py runs, by `config.task` (mvn.engine.Task): CA-PF (mvn.engine.CAPF_TASK) or
stage 1, the 2D heatmap detector (mvn.detector.TASK). The one place that names both."""
from mvn import detector, engine

TASKS = {"capf": engine.CAPF_TASK, "detector": detector.TASK}


def task_of(config):
    """The Task that config.task names (the config validates the name)."""
    return TASKS[config.task]
