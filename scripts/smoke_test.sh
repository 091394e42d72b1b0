#!/usr/bin/env bash
# Smoke test of a running serving API: /health, /ready, /version, then one POST /predict.
#
#   scripts/smoke_test.sh BASE_URL [REQUEST_JSON]
#
# The API key comes from SMOKE_API_KEY (one of the keys in the server's NORIA_API_KEYS), sent
# as `Authorization: Bearer KEY`. (Not NORIA_*: Noria reads those as config overrides.) REQUEST_JSON defaults to deploy/smoke-request.json. Used by
# scripts/docker_test.sh (a local container) and .github/workflows/deploy.yml (a cluster).
# READY_TIMEOUT (seconds, default 180) bounds the wait for /ready.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_URL=${1:?usage: scripts/smoke_test.sh BASE_URL [REQUEST_JSON]}
BASE_URL=${BASE_URL%/}
REQUEST=${2:-deploy/smoke-request.json}
READY_TIMEOUT=${READY_TIMEOUT:-180}
headers=(-H "Content-Type: application/json")
if [[ -n ${SMOKE_API_KEY:-} ]]; then
    headers+=(-H "Authorization: Bearer ${SMOKE_API_KEY}")
fi

# Python's urllib rather than curl: it is in every image and runner this script meets.
http() { # METHOD PATH [BODY_FILE] -> prints "STATUS BODY"
    python3 - "$1" "$BASE_URL$2" "${3:-}" "${headers[@]}" <<'EOF'
import sys, urllib.error, urllib.request
method, url, body_file, *raw = sys.argv[1:]
headers = dict(h.split(": ", 1) for h in raw[1::2])
data = open(body_file, "rb").read() if body_file else None
request = urllib.request.Request(url, data=data, method=method, headers=headers)
try:
    with urllib.request.urlopen(request, timeout=30) as response:
        print(response.status, response.read().decode()[:2000].replace("\n", " "))
except urllib.error.HTTPError as exc:
    print(exc.code, exc.read().decode()[:2000].replace("\n", " "))
except OSError as exc:
    print(0, exc)
EOF
}

expect_200() { # NAME STATUS BODY
    if [[ $2 != 200 ]]; then
        echo "smoke: $1 answered $2: $3" >&2
        exit 1
    fi
    echo "smoke: $1 ok: ${3:0:200}"
}

wait_200() { # PATH: poll until it answers 200 or READY_TIMEOUT runs out (the server may be starting)
    local deadline=$((SECONDS + READY_TIMEOUT))
    until read -r status body < <(http GET "$1") && [[ $status == 200 ]]; do
        if ((SECONDS >= deadline)); then
            echo "smoke: GET $1 did not answer 200 within ${READY_TIMEOUT}s (last: $status $body)" >&2
            exit 1
        fi
        sleep 3
    done
    expect_200 "GET $1" "$status" "$body"
}

wait_200 /health
wait_200 /ready

read -r status body < <(http GET /version)
expect_200 "GET /version" "$status" "$body"

read -r status body < <(http POST /predict "$REQUEST")
expect_200 "POST /predict" "$status" "$body"
