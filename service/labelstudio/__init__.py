"""The correction loop with Label Studio: ``client`` (server, project, storage, webhook), ``tasks`` (push:
send frames with the model's boxes) and ``corrections`` (pull: write people's corrections as YOLO labels).

Network calls are never made inside an open database transaction.
"""

from service.labelstudio.client import LabelStudioError, cli_errors, connect, find_project, holdout_split
from service.labelstudio.corrections import annotation_lines, apply_annotation, final_annotation, pull
from service.labelstudio.tasks import push

__all__ = [
    "LabelStudioError",
    "annotation_lines",
    "apply_annotation",
    "cli_errors",
    "connect",
    "final_annotation",
    "find_project",
    "holdout_split",
    "pull",
    "push",
]
