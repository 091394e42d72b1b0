"""Tracking and registry: MLflow runs with lineage, LightGBM model versions, the promotion gate.

Names are imported lazily (like the top-level ``noria`` package): ``import noria.registry``
and its config model stay cheap, and MLflow loads only when a function needs it. Every module
that talks to MLflow imports ``mlflow_client`` first, which switches MLflow telemetry off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# public name -> module that defines it
from noria._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "CHALLENGER": "noria.registry._names",
    "CHAMPION": "noria.registry._names",
    "ModelNameError": "noria.registry._names",
    "ModelRef": "noria.registry._names",
    "parse_model_ref": "noria.registry._names",
    "validate_model_name": "noria.registry._names",
    "GateConfig": "noria.registry.config",
    "RegistryConfig": "noria.registry.config",
    "registry_config": "noria.registry.config",
    "Check": "noria.registry.gate",
    "Evaluation": "noria.registry.gate",
    "InvarianceResult": "noria.registry.gate",
    "PredictionSummary": "noria.registry.gate",
    "Verdict": "noria.registry.gate",
    "judge": "noria.registry.gate",
    "Lineage": "noria.registry.lineage",
    "LineageReport": "noria.registry.lineage",
    "collect_lineage": "noria.registry.lineage",
    "format_lineage": "noria.registry.lineage",
    "lineage_of": "noria.registry.lineage",
    "LoadedModel": "noria.registry.models",
    "ModelVersionInfo": "noria.registry.models",
    "RegisteredModelSummary": "noria.registry.models",
    "get_version": "noria.registry.models",
    "list_models": "noria.registry.models",
    "load_model": "noria.registry.models",
    "GateDecision": "noria.registry.promotion",
    "NoPreviousChampionError": "noria.registry.promotion",
    "RollbackResult": "noria.registry.promotion",
    "promote": "noria.registry.promotion",
    "promote_if_better": "noria.registry.promotion",
    "rollback": "noria.registry.promotion",
    "ChampionHistory": "noria.registry.records",
    "PromotionBusyError": "noria.registry.records",
    "champion_history": "noria.registry.records",
    "champion_state": "noria.registry.records",
    "record_evaluation": "noria.registry.records",
    "registry_lock": "noria.registry.records",
    "RunHandle": "noria.registry.tracking",
    "start_run": "noria.registry.tracking",
    "mlflow_ui_command": "noria.registry.ui",
    "run_mlflow_ui": "noria.registry.ui",
}

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "ChampionHistory",
    "Check",
    "Evaluation",
    "GateConfig",
    "GateDecision",
    "InvarianceResult",
    "Lineage",
    "LineageReport",
    "LoadedModel",
    "ModelNameError",
    "ModelRef",
    "ModelVersionInfo",
    "NoPreviousChampionError",
    "PredictionSummary",
    "PromotionBusyError",
    "RegisteredModelSummary",
    "RegistryConfig",
    "RollbackResult",
    "RunHandle",
    "Verdict",
    "champion_history",
    "champion_state",
    "collect_lineage",
    "format_lineage",
    "get_version",
    "judge",
    "lineage_of",
    "list_models",
    "load_model",
    "mlflow_ui_command",
    "parse_model_ref",
    "promote",
    "promote_if_better",
    "record_evaluation",
    "registry_config",
    "registry_lock",
    "rollback",
    "run_mlflow_ui",
    "start_run",
    "validate_model_name",
]

if TYPE_CHECKING:
    from noria.registry._names import (
        CHALLENGER,
        CHAMPION,
        ModelNameError,
        ModelRef,
        parse_model_ref,
        validate_model_name,
    )
    from noria.registry.config import GateConfig, RegistryConfig, registry_config
    from noria.registry.gate import Check, Evaluation, InvarianceResult, PredictionSummary, Verdict, judge
    from noria.registry.lineage import Lineage, LineageReport, collect_lineage, format_lineage, lineage_of
    from noria.registry.models import (
        LoadedModel,
        ModelVersionInfo,
        RegisteredModelSummary,
        get_version,
        list_models,
        load_model,
    )
    from noria.registry.promotion import (
        GateDecision,
        NoPreviousChampionError,
        RollbackResult,
        promote,
        promote_if_better,
        rollback,
    )
    from noria.registry.records import (
        ChampionHistory,
        PromotionBusyError,
        champion_history,
        champion_state,
        record_evaluation,
        registry_lock,
    )
    from noria.registry.tracking import RunHandle, start_run
    from noria.registry.ui import mlflow_ui_command, run_mlflow_ui


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
