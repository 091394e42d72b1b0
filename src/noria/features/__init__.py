"""Features: Feast repository generation from config, point-in-time training sets, online lookups.

Features are declared once in configuration (see :mod:`noria.features.config`) and computed by
the project's own Python functions; the same definitions and code produce training sets
(offline, point-in-time correct, joined by DuckDB over the files Feast reads, or by Spark)
and serving vectors (online, from Feast's online store).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from noria._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "FeaturesConfig": "noria.features.config",
    "FeatureDefinitionError": "noria.features.definitions",
    "Definitions": "noria.features.definitions",
    "load_definitions": "noria.features.definitions",
    "load_features_config": "noria.features.definitions",
    "feature_catalog": "noria.features.definitions",
    "features_markdown": "noria.features.docs",
    "apply": "noria.features.repo",
    "ApplyResult": "noria.features.repo",
    "historical_features": "noria.features.offline",
    "build_training_set": "noria.features.training_set",
    "load_training_set": "noria.features.training_set",
    "TrainingSet": "noria.features.training_set",
    "materialize": "noria.features.online",
    "open_online_store": "noria.features.online",
    "online_features": "noria.features.online",
    "OnlineLookup": "noria.features.lookup",
    "FeatureVectors": "noria.features.online",
    "record_usage": "noria.features.usage",
    "list_usage": "noria.features.usage",
    "UsageRecord": "noria.features.usage",
}

__all__ = [
    "ApplyResult",
    "Definitions",
    "FeatureDefinitionError",
    "FeatureVectors",
    "FeaturesConfig",
    "OnlineLookup",
    "TrainingSet",
    "UsageRecord",
    "apply",
    "build_training_set",
    "feature_catalog",
    "features_markdown",
    "historical_features",
    "list_usage",
    "load_definitions",
    "load_features_config",
    "load_training_set",
    "materialize",
    "online_features",
    "open_online_store",
    "record_usage",
]

if TYPE_CHECKING:
    from noria.features.config import FeaturesConfig
    from noria.features.definitions import (
        Definitions,
        FeatureDefinitionError,
        feature_catalog,
        load_definitions,
        load_features_config,
    )
    from noria.features.docs import features_markdown
    from noria.features.lookup import OnlineLookup
    from noria.features.offline import historical_features
    from noria.features.online import FeatureVectors, materialize, online_features, open_online_store
    from noria.features.repo import ApplyResult, apply
    from noria.features.training_set import TrainingSet, build_training_set, load_training_set
    from noria.features.usage import UsageRecord, list_usage, record_usage


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
