"""The in-process service the demo uses: real uvicorn on 127.0.0.1, a fresh key, readable output."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.unit.serving.serving_support import FLIGHT, INLINE

from noria.config import Project
from noria.errors import ExternalToolError
from noria.serving.config import ServingConfig
from noria.serving.local import describe, running_service


def test_running_service_answers_over_http_and_describes_predictions(served_project: Project, tmp_path: Path) -> None:
    config = ServingConfig.model_validate({"prediction_log": {"dir": str(tmp_path / "log")}, "poll_seconds": 0})
    with running_service(served_project, config) as service:
        assert service.url.startswith("http://127.0.0.1:")
        answer = service.predict({**FLIGHT, "features": INLINE})
        assert service.get("/version")["version"] == 1
        assert httpx.post(f"{service.url}/predict", json=FLIGHT).status_code == 401  # the key is required
        url = service.url
    text = describe(FLIGHT, answer)
    lines = text.splitlines()
    assert lines[0].startswith("carrier=UA, flight=1545, origin=EWR") and "(late: " in lines[0]
    assert "model flight-delay v1" in lines[0]
    # The model's features are not the project's (a test model): sentences use the feature names.
    assert any(line.startswith("    - visibility 0.5 mi raised the risk by")
               for line in lines[1:]), lines
    reasons = [{"detail": "carrier 'ZZ' was not seen in training"}]
    odd = describe(FLIGHT, {**answer, "out_of_distribution": {"flag": True, "reasons": reasons}})
    assert odd.splitlines()[-1] == "    ! unusual input: carrier 'ZZ' was not seen in training"
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/health", timeout=2)  # stopped with the block


def test_running_service_says_why_it_is_not_ready(project: Project, tmp_path: Path) -> None:
    config = ServingConfig.model_validate({"prediction_log": {"enabled": False}, "poll_seconds": 0})
    with pytest.raises(ExternalToolError, match="champion"), running_service(project, config, ready_timeout=5):
        pass
