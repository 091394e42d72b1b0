"""The task seam: what changes between a binary, a multi-class and a regression model.

Training, the registry's gate, serving and monitoring all ask the project's :class:`Task`
(``task_of(project)``) instead of testing for a kind of problem:

=====================  =========================  ============================  =========================
                       binary                     multiclass                    regression
=====================  =========================  ============================  =========================
label in training set  0 / 1                      class index 0..K-1            the number
LightGBM objective     binary                     multiclass (num_class K)      regression (L2)
model output per row   P(positive)                K probabilities               the value
primary metric (gate)  roc_auc, higher is better  log_loss, lower is better     rmse, lower is better
early stopping/tuning  auc                        multi_logloss                 rmse
served answer          probability + decision     class + probabilities         prediction + unit
=====================  =========================  ============================  =========================

The metric functions live in :mod:`noria.task_metrics` (they import scikit-learn).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from noria.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from noria.config import ModelConfig, Project

TASKS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class Task:
    """One kind of problem. Subclasses fill in the class attributes and the few methods."""

    name: ClassVar[str] = ""
    objective: ClassVar[str] = ""
    tune_metric: ClassVar[str] = ""
    primary_metric: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    # metric name -> higher is better, for every metric the task reports (holdout and live)
    metric_directions: ClassVar[dict[str, bool]] = {}

    label_name: str = "decision"  # binary: the decision field; regression: what is predicted
    unit: str = ""  # regression: the target's unit
    classes: tuple[str, ...] = field(default_factory=tuple)

    # --- labels ---------------------------------------------------------------------------

    def encode_labels(self, values: pd.Series, *, threshold: float | None = None, where: str = "label") -> pd.Series:
        """Raw label values as the training set holds them (float64, NaN where unknown)."""
        raise NotImplementedError

    def check_training_labels(self, y: np.ndarray, where: str) -> None:
        """Refuse a training or holdout part the model cannot learn or be judged on."""

    # --- model ----------------------------------------------------------------------------

    def lgb_params(self) -> dict[str, Any]:
        return {"objective": self.objective}

    @property
    def outputs(self) -> int:
        """Model outputs per row (K for multi-class, else 1)."""
        return 1

    def output_names(self) -> list[str]:
        return ["prediction"]

    def metric_drop(self, holdout: float, live: float) -> float:
        """How much worse ``live`` is than ``holdout`` on the primary metric (positive = worse)."""
        return holdout - live if self.higher_is_better else live - holdout

    def describe(self) -> str:
        return self.name


@dataclass(frozen=True)
class BinaryTask(Task):
    name: ClassVar[str] = "binary"
    objective: ClassVar[str] = "binary"
    tune_metric: ClassVar[str] = "auc"
    primary_metric: ClassVar[str] = "roc_auc"
    higher_is_better: ClassVar[bool] = True
    metric_directions: ClassVar[dict[str, bool]] = {
        "roc_auc": True,
        "pr_auc": True,
        "log_loss": False,
        "brier": False,
        "ece": False,
        "precision": True,
        "recall": True,
    }

    def encode_labels(self, values: pd.Series, *, threshold: float | None = None, where: str = "label") -> pd.Series:
        import numpy as np
        import pandas as pd

        if threshold is not None:
            numbers = pd.to_numeric(values, errors="coerce")
            _refuse(values.notna() & numbers.isna(), values, where, "is not a number (the threshold needs one)")
            return (numbers > threshold).astype("float64").where(numbers.notna())
        if pd.api.types.is_bool_dtype(values.dtype):
            return values.astype("float64")
        text = values.astype("string").str.strip().str.lower()
        mapped = text.map({"true": 1.0, "1": 1.0, "1.0": 1.0, "false": 0.0, "0": 0.0, "0.0": 0.0})
        mapped = pd.to_numeric(mapped, errors="coerce").astype("float64")
        _refuse(text.notna() & mapped.isna(), values, where, "is not true/false or 1/0")
        return pd.Series(np.asarray(mapped, dtype="float64"), index=values.index)

    def check_training_labels(self, y: np.ndarray, where: str) -> None:
        positives = int((y == 1).sum())
        if positives == 0 or positives == len(y):
            only = "positive" if positives else "negative"
            raise DataError(
                f"the {where} ({len(y)} labelled rows) holds only {only} labels",
                fix="check the label definition (model.target) and the period: a model needs both classes",
            )

    def lgb_params(self) -> dict[str, Any]:
        return {"objective": "binary"}

    def output_names(self) -> list[str]:
        return ["probability"]


@dataclass(frozen=True)
class MulticlassTask(Task):
    name: ClassVar[str] = "multiclass"
    objective: ClassVar[str] = "multiclass"
    tune_metric: ClassVar[str] = "multi_logloss"
    primary_metric: ClassVar[str] = "log_loss"
    higher_is_better: ClassVar[bool] = False
    metric_directions: ClassVar[dict[str, bool]] = {
        "log_loss": False,
        "accuracy": True,
        "macro_f1": True,
        "brier": False,
        "ece": False,
    }

    def encode_labels(self, values: pd.Series, *, threshold: float | None = None, where: str = "label") -> pd.Series:
        import pandas as pd

        text = values.astype("string").str.strip()
        codes = {name: float(i) for i, name in enumerate(self.classes)}
        # A number read from a file (2.0) names the class "2".
        text = text.str.replace(r"^(-?\d+)\.0+$", r"\1", regex=True)
        mapped = pd.to_numeric(text.map(codes), errors="coerce").astype("float64")
        unknown = text.notna() & mapped.isna()
        if unknown.any():
            seen = sorted(set(text[unknown].astype(str)))[:5]
            raise DataError(
                f"{where}: {int(unknown.sum())} label value(s) are not among model.target.classes "
                f"({', '.join(self.classes)}), e.g. {', '.join(map(repr, seen))}",
                fix="add the value(s) to model.target.classes, or fix the label rule",
            )
        return pd.Series(mapped.to_numpy(dtype="float64"), index=values.index)

    def check_training_labels(self, y: np.ndarray, where: str) -> None:
        import numpy as np

        present = set(np.unique(y).astype(int).tolist())
        if len(present) < 2:
            raise DataError(
                f"the {where} ({len(y)} labelled rows) holds a single class",
                fix="check the label definition (model.target) and the period: a model needs several classes",
            )

    def lgb_params(self) -> dict[str, Any]:
        return {"objective": "multiclass", "num_class": len(self.classes)}

    @property
    def outputs(self) -> int:
        return len(self.classes)

    def output_names(self) -> list[str]:
        return [f"probability_{c}" for c in self.classes]


@dataclass(frozen=True)
class RegressionTask(Task):
    name: ClassVar[str] = "regression"
    objective: ClassVar[str] = "regression"
    tune_metric: ClassVar[str] = "rmse"
    primary_metric: ClassVar[str] = "rmse"
    higher_is_better: ClassVar[bool] = False
    metric_directions: ClassVar[dict[str, bool]] = {"rmse": False, "mae": False, "r2": True, "bias": False}

    def encode_labels(self, values: pd.Series, *, threshold: float | None = None, where: str = "label") -> pd.Series:
        import numpy as np
        import pandas as pd

        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        _refuse(values.notna() & numbers.isna(), values, where, "is not a number")
        infinite = np.isinf(numbers.to_numpy())
        _refuse(pd.Series(infinite, index=values.index), values, where, "is infinite")
        return numbers

    def check_training_labels(self, y: np.ndarray, where: str) -> None:
        import numpy as np

        if len(y) < 2 or float(np.nanstd(y)) == 0.0:
            raise DataError(
                f"the {where} ({len(y)} labelled rows) has a constant label",
                fix="check the label definition (model.target) and the period",
            )

    def lgb_params(self) -> dict[str, Any]:
        return {"objective": "regression"}


def _refuse(bad: pd.Series, values: pd.Series, where: str, problem: str) -> None:
    if bad.any():
        seen = sorted(set(values[bad].astype(str)))[:5]
        raise DataError(
            f"{where}: {int(bad.sum())} label value(s) {problem}, e.g. {', '.join(map(repr, seen))}",
            fix="fix the label rule (model.target) or the data",
        )


def make_task(
    task: str, *, classes: list[str] | tuple[str, ...] | None = None, name: str | None = None, unit: str = ""
) -> Task:
    """The task object for a task name (``binary``, ``multiclass``, ``regression``)."""
    if task == "binary":
        return BinaryTask(label_name=name or "decision")
    if task == "multiclass":
        return MulticlassTask(label_name=name or "class", classes=tuple(classes or ()))
    if task == "regression":
        return RegressionTask(label_name=name or "prediction", unit=unit)
    raise ValueError(f"unknown task {task!r} (use {', '.join(TASKS)})")


def task_from_model(model: ModelConfig) -> Task:
    target = model.target
    return make_task(
        model.task,
        classes=target.classes if target else None,
        name=target.name if target else None,
        unit=target.unit if target else "",
    )


def task_of(project: Project) -> Task:
    """The project's task (``model.task`` and its target)."""
    return task_from_model(project.config.model)


__all__ = ["TASKS", "BinaryTask", "MulticlassTask", "RegressionTask", "Task", "make_task", "task_from_model", "task_of"]
