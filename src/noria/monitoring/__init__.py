"""Monitoring: reference profiles stored with a model version, and drift of a window against them.

Build a :class:`ReferenceProfile` at training time, save it next to the model, and later call
:func:`compute_drift` on any window of inputs (the prediction log for a month, a Parquet file):
it returns a :class:`DriftReport` with PSI, Kolmogorov-Smirnov / chi-square, Wasserstein and
Jensen-Shannon values per feature, a verdict, and alerts for drift on important features.

Names are imported lazily, so that ``noria.config`` can use :class:`DriftConfig` (pydantic only)
without loading pandas and scipy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# public name -> module that defines it
from noria._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "DriftConfig": "noria.monitoring.config",
    "DriftReport": "noria.monitoring.drift",
    "FeatureDrift": "noria.monitoring.drift",
    "check_drift": "noria.monitoring.drift",
    "compute_drift": "noria.monitoring.drift",
    "CategoricalProfile": "noria.monitoring.profile",
    "NumericProfile": "noria.monitoring.profile",
    "ReferenceProfile": "noria.monitoring.profile",
}

__all__ = [
    "CategoricalProfile",
    "DriftConfig",
    "DriftReport",
    "FeatureDrift",
    "NumericProfile",
    "ReferenceProfile",
    "check_drift",
    "compute_drift",
]

if TYPE_CHECKING:
    from noria.monitoring.config import DriftConfig
    from noria.monitoring.drift import DriftReport, FeatureDrift, check_drift, compute_drift
    from noria.monitoring.profile import CategoricalProfile, NumericProfile, ReferenceProfile


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
