"""Serving: the FastAPI service over the registry's @champion, and batch scoring of files.

    from noria.serving import create_app, serve, score_file

The service loads the model by alias, hot-swaps it when the alias moves, routes a share of
traffic to @challenger (sticky per key) or shadows it, looks features up in the online store
through the same code as training, explains every prediction in probability points, flags
inputs outside the training distribution, logs every request to Parquet and exposes
Prometheus metrics. Heavy modules load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from noria._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "ABConfig": "noria.serving.config",
    "ApiKeys": "noria.serving.auth",
    "BatchResult": "noria.serving.batch",
    "DeliveryRecord": "noria.serving.batch",
    "ExplanationConfig": "noria.serving.config",
    "FeatureSource": "noria.serving.sources",
    "LoadedVersion": "noria.serving.sources",
    "LookedUp": "noria.serving.sources",
    "ModelHolder": "noria.serving.loader",
    "ModelSource": "noria.serving.sources",
    "OnlineFeatureSource": "noria.serving.sources",
    "PredictionLog": "noria.serving.predlog",
    "PredictionLogConfig": "noria.serving.config",
    "RegistryModelSource": "noria.serving.sources",
    "ServedModel": "noria.serving.model",
    "ServingConfig": "noria.serving.config",
    "VersionRef": "noria.serving.sources",
    "LocalService": "noria.serving.local",
    "create_app": "noria.serving.app",
    "describe": "noria.serving.local",
    "running_service": "noria.serving.local",
    "hash_key": "noria.serving.auth",
    "list_deliveries": "noria.serving.batch",
    "read_prediction_log": "noria.serving.predlog",
    "score_file": "noria.serving.batch",
    "serve": "noria.serving.server",
    "serving_config": "noria.serving.config",
}

__all__ = [
    "ABConfig",
    "ApiKeys",
    "BatchResult",
    "DeliveryRecord",
    "ExplanationConfig",
    "FeatureSource",
    "LoadedVersion",
    "LocalService",
    "LookedUp",
    "ModelHolder",
    "ModelSource",
    "OnlineFeatureSource",
    "PredictionLog",
    "PredictionLogConfig",
    "RegistryModelSource",
    "ServedModel",
    "ServingConfig",
    "VersionRef",
    "create_app",
    "describe",
    "hash_key",
    "list_deliveries",
    "read_prediction_log",
    "running_service",
    "score_file",
    "serve",
    "serving_config",
]

if TYPE_CHECKING:
    from noria.serving.app import create_app
    from noria.serving.auth import ApiKeys, hash_key
    from noria.serving.batch import BatchResult, DeliveryRecord, list_deliveries, score_file
    from noria.serving.config import ABConfig, ExplanationConfig, PredictionLogConfig, ServingConfig, serving_config
    from noria.serving.loader import ModelHolder
    from noria.serving.local import LocalService, describe, running_service
    from noria.serving.model import ServedModel
    from noria.serving.predlog import PredictionLog, read_prediction_log
    from noria.serving.server import serve
    from noria.serving.sources import (
        FeatureSource,
        LoadedVersion,
        LookedUp,
        ModelSource,
        OnlineFeatureSource,
        RegistryModelSource,
        VersionRef,
    )


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
