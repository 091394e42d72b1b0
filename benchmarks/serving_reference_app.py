"""The practical ceiling of a Python model server here: a bare FastAPI app holding a LightGBM Booster.

It does the least a real server must: parse the JSON body, put the inline features into a row
in the model's order, predict, answer with JSON. No validation, no explanation, no logging, no
metrics. ``bench_serving.py`` runs it beside ``mlflow models serve`` and Noria, on the same
model file and the same request.

    python benchmarks/serving_reference_app.py --model model.lgb --port 8001
"""

from __future__ import annotations

import argparse

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="LightGBM text model file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(
        make_app(args.model),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
