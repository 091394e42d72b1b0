#!/usr/bin/env bash
# Apply the repository's protection as code: branch protection of main (pull requests, code
# owners' review, the CI checks of .github/workflows/ci.yml) and the two deployment
# environments (production needs a platform reviewer's approval). Needs the GitHub CLI,
# logged in as a repository admin:
#   deploy/github/apply.sh OWNER/REPO
# Then put each environment's secret KUBECONFIG and variable KUBE_CONTEXT (docs/deploying.md).
set -euo pipefail
cd "$(dirname "$0")"
REPO=${1:?usage: deploy/github/apply.sh OWNER/REPO}
ORG=${REPO%%/*}

gh api --method PUT "repos/${REPO}/branches/main/protection" --input branch-protection.json >/dev/null
echo "branch protection of main applied"

for env in $(python3 -c 'import json; print(" ".join(json.load(open("environments.json"))))'); do
    python3 - "$env" "$ORG" "$REPO" >"/tmp/noria-env-$env.json" <<'PY'
import json, subprocess, sys
env, org, repo = sys.argv[1:]
spec = json.load(open("environments.json"))[env]
reviewers = []
for r in spec.pop("reviewers"):
    # The API wants numeric ids: look the team up by its slug.
    team = json.loads(subprocess.check_output(["gh", "api", f"orgs/{org}/teams/{r['slug']}"]))
    reviewers.append({"type": r["type"], "id": team["id"]})
spec["reviewers"] = reviewers
json.dump(spec, sys.stdout)
PY
    gh api --method PUT "repos/${REPO}/environments/${env}" --input "/tmp/noria-env-$env.json" >/dev/null
    rm -f "/tmp/noria-env-$env.json"
    echo "environment ${env} applied"
done
