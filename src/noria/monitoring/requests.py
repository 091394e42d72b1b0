"""One prediction traced back to the data: ``noria lineage --request ID`` and the console's
request page.

The prediction log records, with every request id, the model name and version that answered
it; from there the registry's lineage walks on to the training run, the code, the environment,
the feature definitions and the data snapshot. The log is read with a filter on the
``request_id`` column only (each file's other columns are read just for the matching rows), so
finding one request in a long log costs one pass over one column.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from noria.errors import NotFoundError

if TYPE_CHECKING:
    from noria.config import Project

# What a request's rows show: when and by which model it was answered, and how.
SHOWN = (
    "request_id", "row", "timestamp", "event_time", "model_name", "model_version", "arm", "served",
    "score", "probability", "decision", "predicted_class", "threshold", "ood_reasons", "latency_ms",
)  # fmt: skip


def find_request(project: Project, request_id: str) -> list[dict[str, Any]]:
    """The logged rows of one request (one per input row), in row order, as plain values."""
    import pyarrow.compute as pc

    from noria.monitoring.window import _dataset, _log_files, log_folder

    request_id = request_id.strip()
    if not request_id:
        raise NotFoundError("no request id given", fix="pass the request_id a prediction answered with")
    folder = log_folder(project)
    files = _log_files(folder)
    if not files:
        raise NotFoundError(
            f"the prediction log at {folder} holds no files yet",
            fix="serve requests first (the log rolls its files every serving.prediction_log.roll_seconds)",
        )
    data = _dataset(files)
    columns = [c for c in SHOWN if c in data.schema.names]
    table = data.to_table(columns=columns, filter=pc.field("request_id") == request_id)
    if table.num_rows == 0:
        raise NotFoundError(
            f"request {request_id!r} is not in the prediction log at {folder}",
            fix="check the id (the request_id field of the answer); a request answered in the last "
            "serving.prediction_log.roll_seconds may still be in the service's unwritten file",
        )
    rows = sorted(table.to_pylist(), key=lambda r: r.get("row") or 0)
    return [{k: _plain(v) for k, v in r.items()} for r in rows]


def request_lineage(project: Project, request_id: str) -> dict[str, Any]:
    """The request's rows and the lineage of the model version that answered it."""
    from noria.registry import lineage_of

    rows = find_request(project, request_id)
    first = rows[0]
    if first.get("model_name") is None or first.get("model_version") is None:
        raise NotFoundError(
            f"request {request_id!r} was answered by no registered model version (not served)",
            fix="trace a request the service answered with a model",
        )
    report = lineage_of(project, f"{first['model_name']}/{int(first['model_version'])}")
    return {"request": rows, **report.to_dict()}


def _plain(value: Any) -> Any:
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else value


__all__ = ["find_request", "request_lineage"]
