"""Request and response shapes of the HTTP API (they are also the OpenAPI document).

Requests are validated strictly, straight from the JSON bytes (pydantic's Rust parser): no
string-to-number coercion, no NaN or infinity, no unknown field, a time zone on every
timestamp. An unknown carrier or airport is *not* an error: it is flagged out of
distribution in the response. Responses are built as plain dicts on the hot path; the models
below document them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, field_validator

FEATURE_NAME = r"^[a-z][a-z0-9_]{0,62}$"
MAX_INLINE_FEATURES = 1000
EXAMPLE_FLIGHT: dict[str, Any] = {
    "carrier": "UA",
    "flight": 1545,
    "origin": "EWR",
    "dest": "IAH",
    "tailnum": "N14228",
    "scheduled_departure": "2013-07-01T05:15:00-04:00",
    "distance": 1400,
}
FeatureValue = Annotated[float, Field(allow_inf_nan=False)] | Annotated[str, Field(max_length=200)] | None


class Flight(BaseModel):
    """One scheduled flight: what is known when the flight is booked."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [EXAMPLE_FLIGHT]})

    carrier: str = Field(pattern=r"^[A-Z0-9]{2}$", description="Two-letter IATA carrier code, e.g. UA.")
    flight: int = Field(ge=1, le=9999, description="Flight number.")
    origin: str = Field(pattern=r"^[A-Z0-9]{3,4}$", description="Departure airport (FAA code), e.g. EWR.")
    dest: str = Field(pattern=r"^[A-Z0-9]{3,4}$", description="Destination airport (FAA code), e.g. IAH.")
    tailnum: str | None = Field(
        default=None, pattern=r"^[A-Z0-9]{1,10}$", description="Plane tail number, e.g. N14228 (null if unknown)."
    )
    scheduled_departure: AwareDatetime = Field(
        description="Scheduled departure with its UTC offset (ISO 8601), e.g. 2013-07-01T05:15:00-04:00."
    )
    distance: float = Field(gt=0, le=20_000, allow_inf_nan=False, description="Great-circle distance (miles).")

    @field_validator("scheduled_departure")
    @classmethod
    def _sane_year(cls, value: datetime) -> datetime:
        if not 1900 <= value.year <= 2200:
            raise ValueError("the year must be between 1900 and 2200")
        return value


class FlightRequest(Flight):
    """A flight, optionally with feature values supplied inline (they replace looked-up values)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [EXAMPLE_FLIGHT, {**EXAMPLE_FLIGHT, "features": {"visib": 0.5, "temp": 71.1, "precip": 0.02}}]
        },
    )

    features: dict[Annotated[str, Field(pattern=FEATURE_NAME)], FeatureValue] | None = Field(
        default=None,
        max_length=MAX_INLINE_FEATURES,
        description="Feature values by name; when every model feature is given, no lookup is made.",
    )


def batch_model(max_batch: int) -> type[BaseModel]:
    """The batch request type, with the configured size limit in its schema."""

    class PredictBatch(BaseModel):
        """Up to ``max_batch`` flights scored in one request."""

        model_config = ConfigDict(
            extra="forbid", strict=True, json_schema_extra={"examples": [{"flights": [EXAMPLE_FLIGHT]}]}
        )

        flights: list[FlightRequest] = Field(min_length=1, max_length=max_batch)

    return PredictBatch


def _kind(value: Any) -> str:
    return "batch" if isinstance(value, dict) and "flights" in value else "flight"


def request_adapter(max_batch: int) -> TypeAdapter[Any]:
    """Validates a /predict body: one flight, or ``{"flights": [...]}``."""
    batch = batch_model(max_batch)
    union = Annotated[
        Annotated[FlightRequest, Tag("flight")] | Annotated[batch, Tag("batch")],  # type: ignore[valid-type]
        Discriminator(_kind),
    ]
    return TypeAdapter(union)


# --- responses (documentation; the hot path writes the same shape as dicts) -----------------


class Contribution(BaseModel):
    feature: str
    value: float | str | None = Field(description="The value the model saw (null = missing).")
    log_odds: float = Field(description="LightGBM's native contribution (SHAP value) in log-odds.")
    points: float = Field(description="Share of the change from the baseline probability, in percentage points.")
    text: str = Field(examples=["visibility 0.5 mi raised the risk by 12 points"])


class Explanation(BaseModel):
    baseline_probability: float = Field(description="The model's probability with no feature information.")
    contributions: list[Contribution] = Field(description="The largest contributions, largest first.")


class OODReason(BaseModel):
    feature: str
    kind: Literal["out_of_range", "unseen_category", "missing"]
    detail: str = Field(examples=["visib 12.5 is above the training maximum 10"])


class OutOfDistribution(BaseModel):
    flag: bool
    reasons: list[OODReason]


class Prediction(BaseModel):
    probability: float = Field(ge=0, le=1, description="Probability that departure is more than 15 min late.")
    late: bool = Field(description="The decision: probability >= threshold.")
    threshold: float
    model_name: str
    model_version: int
    arm: Literal["champion", "challenger"] = Field(description="A/B arm that answered.")
    explanation: Explanation | None = None
    out_of_distribution: OutOfDistribution


class PredictResponse(Prediction):
    request_id: str


class BatchPredictResponse(BaseModel):
    request_id: str
    predictions: list[Prediction]


class FieldError(BaseModel):
    field: str = Field(examples=["flights[0].distance"])
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


class VersionResponse(ModelVersionResponse):
    challenger: ModelVersionResponse | None = None


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

__all__ = [
    "EXAMPLE_FLIGHT",
    "BatchPredictResponse",
    "ErrorResponse",
    "Flight",
    "FlightRequest",
    "PredictResponse",
    "Prediction",
    "batch_model",
    "request_adapter",
]
