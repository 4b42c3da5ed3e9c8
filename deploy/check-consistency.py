#!/usr/bin/env python3
"""Cross-checks the Kubernetes example that a schema cannot see (run by deploy/validate.sh).

- The secretgate config in base/configmap.yaml uses only keys that config/secretgate.yaml
  (the complete, documented example) has: secretgate rejects unknown keys at start.
- Every file the config names (TLS, internal-header keys, client secrets) lies in a
  directory the secretgate container mounts, and, for Secret mounts, is a key of that
  Secret in base/secrets.example.yaml; the --config argument points into the ConfigMap.
- The ports agree: listen = Service targetPort = NetworkPolicy port; admin.listen is not
  loopback (kubelet probes the pod IP) and is the port the probes use.
- terminationGracePeriodSeconds > shutdown_grace.
- No PEM private key anywhere under deploy/.

Needs PyYAML (in the venv validate.sh creates). Exit status 1 on any problem.
"""

import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
BASE = ROOT / "deploy" / "kubernetes" / "base"
problems = []


def problem(msg):
    problems.append(msg)
    print(f"ERROR {msg}")


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def one(path, kind):
    docs = [d for d in load_all(path) if d.get("kind") == kind]
    if len(docs) != 1:
        raise SystemExit(f"ERROR {path}: expected one {kind}, found {len(docs)}")
    return docs[0]


def unknown_keys(value, reference, path=""):
    """Keys in `value` that `reference` (the documented example) does not have."""
    if isinstance(value, dict) and isinstance(reference, dict):
        for key, sub in value.items():
            where = f"{path}.{key}" if path else key
            if key not in reference:
                yield where
            else:
                yield from unknown_keys(sub, reference[key], where)
    elif isinstance(value, list) and isinstance(reference, list):
        # Lists of objects (clients, keys, secrets): compare with the union of the
        # example's items, since each item shows only some of the optional keys.
        merged = {}
        for item in reference:
            if isinstance(item, dict):
                for k, v in item.items():
                    merged.setdefault(k, v)
        for i, item in enumerate(value):
            if isinstance(item, dict):
                yield from unknown_keys(item, merged, f"{path}[{i}]")


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def seconds(duration):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", str(duration).strip())
    if not m:
        return None
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


example = yaml.safe_load((ROOT / "config" / "secretgate.yaml").read_text())
configmap = one(BASE / "configmap.yaml", "ConfigMap")
deployment = one(BASE / "deployment.yaml", "Deployment")
service = one(BASE / "service.yaml", "Service")
netpol = one(BASE / "networkpolicy.yaml", "NetworkPolicy")
secrets = {
    d["metadata"]["name"]: set(d.get("stringData", {})) | set(d.get("data", {}))
    for d in load_all(BASE / "secrets.example.yaml")
    if d.get("kind") == "Secret"
}

# --- the config itself ---------------------------------------------------------------------
pod = deployment["spec"]["template"]["spec"]
sidecars = [c for c in pod.get("initContainers", []) if c["name"] == "secretgate"]
if len(sidecars) != 1 or sidecars[0].get("restartPolicy") != "Always":
    problem("deployment.yaml: expected initContainer `secretgate` with restartPolicy: Always")
    sys.exit(1)
gate = sidecars[0]
args = gate.get("args", [])
config_path = args[args.index("--config") + 1] if "--config" in args else None
if config_path is None:
    problem("deployment.yaml: secretgate args have no --config")
    sys.exit(1)
config_name = pathlib.PurePosixPath(config_path).name
if config_name not in configmap.get("data", {}):
    problem(f"configmap.yaml: no data key {config_name!r} (from --config {config_path})")
    sys.exit(1)
config = yaml.safe_load(configmap["data"][config_name])

for key in unknown_keys(config, example):
    problem(f"configmap.yaml: config key {key!r} is not in config/secretgate.yaml")
for key in ("listen", "tls", "upstream", "public_url", "issuer", "internal_header", "clients"):
    if key not in config:
        problem(f"configmap.yaml: required config key {key!r} missing")

# --- files named by the config vs mounts vs Secret keys ------------------------------------
volumes = {v["name"]: v for v in pod.get("volumes", [])}
mounts = {m["mountPath"].rstrip("/"): volumes.get(m["name"], {}) for m in gate.get("volumeMounts", [])}


def check_file(where, path):
    if path is None:
        return  # env: sources are not checked
    parent = str(pathlib.PurePosixPath(path).parent)
    name = pathlib.PurePosixPath(path).name
    volume = mounts.get(parent)
    if volume is None:
        problem(f"config {where} = {path}: {parent} is not a secretgate volumeMount")
    elif "secret" in volume:
        secret = volume["secret"]["secretName"]
        if secret not in secrets:
            problem(f"config {where}: Secret {secret} is not in secrets.example.yaml")
        elif name not in secrets[secret]:
            problem(f"config {where} = {path}: Secret {secret} has no key {name!r} in secrets.example.yaml")


check_file("(--config)", config_path)
tls = config.get("tls", {})
check_file("tls.cert_file", tls.get("cert_file"))
check_file("tls.key_file", tls.get("key_file"))
for i, k in enumerate(config.get("internal_header", {}).get("keys", [])):
    check_file(f"internal_header.keys[{i}].file", k.get("file"))
for i, c in enumerate(config.get("clients", [])):
    for j, s in enumerate(c.get("secrets", [])):
        check_file(f"clients[{i}].secrets[{j}].file", s.get("file"))

# --- ports ------------------------------------------------------------------------------
listen = port_of(config["listen"])
targets = {p.get("targetPort") for p in service["spec"]["ports"]}
if targets != {listen}:
    problem(f"service.yaml: targetPort(s) {sorted(map(str, targets))} != listen port {listen}")
policy_ports = {p.get("port") for r in netpol["spec"].get("ingress", []) for p in r.get("ports", [])}
if listen not in policy_ports:
    problem(f"networkpolicy.yaml: listen port {listen} not admitted")
upstream_port = port_of(config["upstream"]["url"].split("//", 1)[1].split("/", 1)[0])
if upstream_port in policy_ports or upstream_port in targets:
    problem(f"upstream port {upstream_port} must not be exposed by the Service or NetworkPolicy")

admin = config.get("admin", {}).get("listen")
probes = [gate.get(p) for p in ("startupProbe", "livenessProbe", "readinessProbe")]
if admin is None or any(p is None for p in probes):
    problem("secretgate needs admin.listen and startup, liveness and readiness probes")
else:
    host = admin.rsplit(":", 1)[0].strip("[]")
    if host.startswith("127.") or host in ("localhost", "::1"):
        problem(f"admin.listen {admin}: loopback is unreachable for kubelet probes")
    for p in probes:
        if p.get("httpGet", {}).get("port") != port_of(admin):
            problem(f"a probe does not use admin port {port_of(admin)}")
    if port_of(admin) not in policy_ports:
        problem(f"networkpolicy.yaml: admin port {port_of(admin)} not admitted (probes are, but monitoring is not)")

# --- shutdown ---------------------------------------------------------------------------
grace = seconds(config.get("shutdown_grace", "30s"))
tgps = pod.get("terminationGracePeriodSeconds", 30)
if grace is None or tgps <= grace:
    problem(f"terminationGracePeriodSeconds {tgps} must exceed shutdown_grace {config.get('shutdown_grace', '30s')}")

# --- no private keys under deploy/ -----------------------------------------------------
pem = re.compile("-----BEGIN [A-Z0-9 ]*" + "PRIVATE" + " KEY-----")
for f in sorted((ROOT / "deploy").rglob("*")):
    if f.is_file():
        try:
            if pem.search(f.read_text(errors="ignore")):
                problem(f"{f.relative_to(ROOT)}: contains a PEM private key")
        except OSError:
            pass

if problems:
    print(f"{len(problems)} consistency problem(s)")
    sys.exit(1)
print("INFO consistency: config keys, paths, mounts, Secret keys, ports and grace period agree")
