"""Response shapes of the HTTP API (they are also the OpenAPI document).

Requests are the project's (:mod:`noria.serving.requests`), validated strictly, straight from
the JSON bytes (pydantic's Rust parser): no string-to-number coercion, no NaN or infinity, no
unknown field, a time zone on every timestamp. An unknown category (a store, an airport) is
*not* an error: it is flagged out of distribution in the response. Responses are built as
plain dicts on the hot path; the models below document them, in the task's terms
(:func:`prediction_models`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

if TYPE_CHECKING:
    from noria.tasks import Task

# --- responses (documentation; the hot path writes the same shape as dicts) -----------------


class Contribution(BaseModel):
    feature: str
    value: float | str | None = Field(description="The value the model saw (null = missing).")
    log_odds: float | None = Field(
        default=None,
        description="Binary: the native contribution (SHAP value) in log-odds; multi-class: the contribution to the "
        "predicted class's log-odds against the other classes.",
    )
    points: float | None = Field(
        default=None, description="Classes: share of the change from the baseline probability, in percentage points."
    )
    amount: float | None = Field(default=None, description="Regression: the change of the prediction, in its unit.")
    text: str = Field(examples=["visibility 0.5 mi raised the risk by 12 points"])


class Explanation(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    class_: str | None = Field(
        default=None, alias="class", description="Multi-class: the class explained (the predicted one)."
    )
    baseline_probability: float | None = Field(
        default=None,
        description="Classes: the model's probability (of the class explained) with no feature information.",
    )
    baseline: float | None = Field(
        default=None, description="Regression: the model's prediction with no feature information."
    )
    contributions: list[Contribution] = Field(description="The largest contributions, largest first.")


class OODReason(BaseModel):
    feature: str
    kind: Literal["out_of_range", "unseen_category", "missing"]
    detail: str = Field(examples=["visib 12.5 is above the training maximum 10"])


class OutOfDistribution(BaseModel):
    flag: bool
    reasons: list[OODReason]


_COMMON: dict[str, Any] = {
    "model_name": (str, ...),
    "model_version": (int, ...),
    "arm": (Literal["champion", "challenger"], Field(description="A/B arm that answered.")),
    "explanation": (Explanation | None, None),
    "out_of_distribution": (OutOfDistribution, ...),
}


def prediction_models(task: Task) -> tuple[type[BaseModel], type[BaseModel], type[BaseModel]]:
    """(one prediction, the answer to one request, the answer to a batch) in the task's terms."""
    fields: dict[str, Any]
    if task.name == "binary":
        fields = {
            "probability": (float, Field(ge=0, le=1, description="Probability of the positive class.")),
            task.label_name: (bool, Field(description="The decision: probability >= threshold.")),
            "threshold": (float, ...),
        }
    elif task.name == "multiclass":
        fields = {
            "class": (str, Field(description=f"The predicted class: one of {', '.join(task.classes)}.")),
            "probabilities": (
                dict[str, float],
                Field(
                    description="Probability of each class (they sum to 1).",
                    examples=[dict.fromkeys(task.classes, 0.0)],
                ),
            ),
        }
    else:
        fields = {
            "prediction": (
                float,
                Field(description=f"The predicted {task.label_name}" + (f" ({task.unit})." if task.unit else ".")),
            ),
            "unit": (str, Field(description="The unit of the prediction.", examples=[task.unit])),
        }
    prediction = create_model("Prediction", **fields, **_COMMON)
    answer = create_model("PredictResponse", __base__=prediction, request_id=(str, ...))
    batch = create_model("BatchPredictResponse", request_id=(str, ...), predictions=(list[prediction], ...))
    return prediction, answer, batch


class FieldError(BaseModel):
    field: str = Field(examples=["requests[0].amount"])
    message: str
    type: str


class ErrorBody(BaseModel):
    type: str = Field(examples=["validation_error"])
    message: str
    fix: str | None = None
    fields: list[FieldError] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    error: ErrorBody
    request_id: str


class HealthResponse(BaseModel):
    status: Literal["alive"]


class ReadyResponse(BaseModel):
    ready: bool
    model: str | None
    online_store: str
    problems: list[str]


class ModelVersionResponse(BaseModel):
    name: str
    version: int
    alias: str
    run_id: str | None
    feature_definition_hash: str | None
    loaded_at: str


class CodeVersion(BaseModel):
    """The code the service runs: from its git checkout, or the image's build arguments."""

    noria: str = Field(description="Noria's version.")
    git_commit: str | None = Field(default=None, description="The git commit (in an image: GIT_COMMIT).")
    git_dirty: bool | None = Field(default=None, description="Whether the tree differed from the commit.")
    uv_lock_sha256: str | None = Field(default=None, description="sha256 of uv.lock (in an image: UV_LOCK_SHA256).")
    packages_sha256: str | None = Field(
        default=None,
        description="sha256 of the installed packages as `name==version` lines (what pip freeze lists), sorted: "
        "the same value as a training run's noria.env.packages_sha256 tag when both ran on the same environment.",
    )
    image_version: str | None = Field(default=None, description="The container image's version (IMAGE_VERSION).")


class VersionResponse(ModelVersionResponse):
    challenger: ModelVersionResponse | None = None
    code: CodeVersion | None = None


class ReloadResponse(BaseModel):
    changed: bool
    previous_version: int | None
    version: int
    challenger_version: int | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong API key (Authorization: Bearer <key>)."},
    413: {"model": ErrorResponse, "description": "The body is larger than serving.max_body_bytes."},
    422: {"model": ErrorResponse, "description": "The body is not valid JSON or breaks the schema; names the field."},
    503: {"model": ErrorResponse, "description": "No model is loaded yet."},
}

__all__ = ["ErrorResponse", "prediction_models"]
