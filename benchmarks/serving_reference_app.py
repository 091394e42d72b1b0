"""The practical ceiling of a Python model server here: a bare FastAPI app holding a LightGBM Booster.

It does the least a real server must: parse the JSON body, put the inline features into a row
in the model's order, predict, answer with JSON. No validation, no explanation, no logging, no
metrics. ``bench_serving.py`` runs it beside ``mlflow models serve`` and Noria, on the same
model file and the same request.

    python benchmarks/serving_reference_app.py --model model.lgb --port 8001 [--workers 2]

``--workers N`` runs uvicorn's N worker processes on one socket, as ``noria serve --workers N``
does: ``bench_serving_workers.py`` measures how far two processes scale on this machine at all.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import lightgbm as lgb
import numpy as np
import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response


def make_app(model_file: str) -> FastAPI:
    booster = lgb.Booster(model_file=model_file)
    features = booster.feature_name()
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        body = orjson.loads(await request.body())
        given = body["features"]
        row = np.array([[given.get(name, np.nan) for name in features]], dtype=np.float64)
        probability = float(booster.predict(row, num_threads=1)[0])
        return Response(orjson.dumps({"probability": probability}), media_type="application/json")

    return app


def app_from_env() -> FastAPI:
    """The app of the model file in ``NORIA_REFERENCE_MODEL``: what each worker process imports."""
    return make_app(os.environ["NORIA_REFERENCE_MODEL"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="LightGBM text model file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1, help="worker processes on one socket (uvicorn's)")
    args = parser.parse_args()
    if args.workers > 1:  # worker processes import the app: by name, the model file passed in the environment
        os.environ["NORIA_REFERENCE_MODEL"] = args.model
        app: FastAPI | str = "serving_reference_app:app_from_env"
    else:
        app = make_app(args.model)
    uvicorn.run(
        app,
        factory=args.workers > 1,
        workers=args.workers,
        app_dir=str(Path(__file__).resolve().parent),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
