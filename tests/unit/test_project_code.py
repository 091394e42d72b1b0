"""Project modules imported from the project folder (``module:function`` in the config)."""

from __future__ import annotations

import sys
from pathlib import Path

MODULE = """
from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel

Code = Literal["UA", "AA"]


class Booking(BaseModel):
    carrier: Code
    amount: Decimal
"""


def test_a_request_model_with_postponed_annotations_gets_the_inline_field(tmp_path: Path) -> None:
    """A project's model whose annotations are text (``from __future__ import annotations``) and
    name its own module's types: Noria's subclasses of it (the served model with inline
    ``features``, the log writer's keying model) resolve them. They did not while project modules
    were not registered in ``sys.modules``: the served model was left not fully defined."""
    from pydantic import TypeAdapter

    from noria.project_code import resolve_function
    from noria.serving.predlog_keys import keying_model
    from noria.serving.requests import RequestSchema, _with_inline_features

    (tmp_path / "booking_api.py").write_text(MODULE)
    booking = resolve_function(tmp_path, "booking_api:Booking", "serving.request.model")
    assert sys.modules[booking.__module__].Booking is booking  # type: ignore[attr-defined]
    served = _with_inline_features(booking)
    parsed = TypeAdapter(served).validate_json('{"carrier": "UA", "amount": "1.5", "features": {"x": 1.0}}')
    assert str(parsed.amount) == "1.5" and parsed.features == {"x": 1.0}
    keyed = keying_model(RequestSchema(served, request_columns=[], ids=[], column_types={}))
    assert TypeAdapter(keyed).validate_json('{"carrier": "AA", "amount": "2", "features": {"x": 1.0}}').carrier == "AA"
