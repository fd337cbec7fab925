#!/usr/bin/env python3
"""Offline validation of deploy/ (issue 5): yamllint, then the fields that
matter in the Kubernetes manifests, the flagfiles (flag names checked against
kvcaked's own flag list), the systemd unit, the Dockerfile, the Grafana
dashboard (every metric it queries exists in the metric catalog) and the
Prometheus rules/config (promtool). Exit 0 when everything holds; every failed
check is printed.

usage: check_deploy.py [REPO_ROOT] [BIN_DIR]
"""
import json
import os
import re
import shutil
import subprocess
import sys

try:
    import yaml
except ImportError:  # python3-yaml is in scripts/install-deps.sh
    print("FAIL: python3-yaml is not installed (apt-get install python3-yaml)")
    sys.exit(1)

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("KVCAKE_SOURCE_DIR", "."))
BIN = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("KVCAKE_BIN_DIR", "")
DEPLOY = os.path.join(ROOT, "deploy")
failures = []
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)
        print("FAIL:", what)
    return cond


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


# ---- yamllint -----------------------------------------------------------------
yaml_files = []
for d, _, files in os.walk(DEPLOY):
    yaml_files += [os.path.join(d, f) for f in files if f.endswith((".yaml", ".yml"))]
check(len(yaml_files) >= 6, "deploy/ has the Kubernetes and Prometheus YAML files")
if shutil.which("yamllint"):
    r = subprocess.run(["yamllint", "-s", "-c", os.path.join(ROOT, "tests/deploy/yamllint.yaml")]
                       + sorted(yaml_files), capture_output=True, text=True)
    check(r.returncode == 0, "yamllint is clean:\n" + r.stdout + r.stderr)
else:
    print("note: yamllint not installed; skipping lint")

# ---- Kubernetes manifests ---------------------------------------------------------
docs = []
for path in sorted(p for p in yaml_files if "/k8s/" in p):
    with open(path, encoding="utf-8") as f:
        docs += [(path, d) for d in yaml.safe_load_all(f) if d]
by_kind = {}
for path, d in docs:
    check("apiVersion" in d and "kind" in d and ("metadata" in d or d.get("kind") == "Kustomization"),
          f"{path}: apiVersion/kind/metadata")
    by_kind.setdefault(d.get("kind"), []).append(d)

ds = (by_kind.get("DaemonSet") or [None])[0]
flagfile_text = None
if check(ds is not None, "a DaemonSet for kvcaked"):
    spec = ds["spec"]["template"]["spec"]
    check(spec.get("hostIPC") is True, "DaemonSet: hostIPC: true (shared host-tier segment)")
    check(ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items(),
          "DaemonSet: selector matches the pod labels")
    c = [c for c in spec["containers"] if c["name"] == "kvcaked"]
    if check(len(c) == 1, "DaemonSet: a container named kvcaked"):
        c = c[0]
        res = c.get("resources", {})
        check(res.get("limits", {}).get("nvidia.com/gpu", 0) >= 1, "DaemonSet: nvidia.com/gpu limit")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
        host_paths = [n for n, v in volumes.items() if "hostPath" in v]
        check(len(host_paths) >= 1, "DaemonSet: a hostPath volume for the SSD tier")
        for n in host_paths:
            check(n in mounts, f"DaemonSet: hostPath volume {n} is mounted")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        check(ports.get("ucx") == 18515 and ports.get("admin") == 18516, "DaemonSet: ports 18515/18516")
        for probe in ("livenessProbe", "readinessProbe"):
            p = c.get(probe, {}).get("httpGet", {})
            check(p.get("path") == "/healthz", f"DaemonSet: {probe} on /healthz")
        flagfile_args = [a for a in c.get("args", []) if a.startswith("--flagfile=")]
        if check(len(flagfile_args) == 1, "DaemonSet: kvcaked runs with --flagfile"):
            path = flagfile_args[0].split("=", 1)[1]
            mount = [m for m in c["volumeMounts"] if m["mountPath"] == path]
            if check(len(mount) == 1, f"DaemonSet: {path} is a mounted file"):
                vol = volumes[mount[0]["name"]]
                cm_name = vol.get("configMap", {}).get("name")
                cms = [d for d in by_kind.get("ConfigMap", []) if d["metadata"]["name"] == cm_name]
                if check(len(cms) == 1, f"ConfigMap {cm_name} exists"):
                    key = mount[0].get("subPath")
                    check(key in cms[0]["data"], f"ConfigMap {cm_name} has key {key}")
                    flagfile_text = cms[0]["data"].get(key)
        secret_mounts = [m for m in c["volumeMounts"] if "secret" in volumes.get(m["name"], {})]
        check(len(secret_mounts) == 1, "DaemonSet: the token secret is mounted")

sts = [d for d in by_kind.get("StatefulSet", []) if "etcd" in d["metadata"]["name"]]
if check(len(sts) == 1, "an etcd StatefulSet"):
    s = sts[0]
    check(s["spec"]["replicas"] % 2 == 1, "etcd: odd number of members")
    svc = [d for d in by_kind.get("Service", []) if d["metadata"]["name"] == s["spec"]["serviceName"]]
    check(len(svc) == 1 and svc[0]["spec"].get("clusterIP") == "None", "etcd: headless governing Service")
    args = " ".join(s["spec"]["template"]["spec"]["containers"][0].get("args", []))
    members = re.findall(r"(kvcake-etcd-\d+)=", args)
    check(len(members) == s["spec"]["replicas"], "etcd: --initial-cluster lists every replica")

kust = (by_kind.get("Kustomization") or [None])[0]
if kust:
    for r in kust.get("resources", []):
        check(os.path.exists(os.path.join(DEPLOY, "k8s", r)), f"kustomization resource {r} exists")

# ---- flagfiles vs kvcaked's flags -------------------------------------------------------
known = set()
kvcaked = os.path.join(BIN, "kvcaked") if BIN else ""
if kvcaked and os.access(kvcaked, os.X_OK):
    r = subprocess.run([kvcaked, "--helpfull"], capture_output=True, text=True, timeout=30)
    known = set(re.findall(r"^\s+-(\w+) \(", r.stdout + r.stderr, re.M))
    print(f"flags from {kvcaked} --helpfull: {len(known)}")
if not known:
    for d in ("daemon",):
        for f in os.listdir(os.path.join(ROOT, d)):
            if f.endswith(".cc"):
                known |= set(re.findall(r"DEFINE_\w+\(\s*(\w+)", read(os.path.join(d, f))))
    known |= {"flagfile", "fromenv", "tryfromenv", "undefok"}
    print(f"flags from daemon/*.cc DEFINE_*: {len(known)} (kvcaked not built)")
check("admin_listen" in known and "admin_token_file" in known, "kvcaked defines --admin_listen and --admin_token_file")


def check_flagfile(name, text):
    flags = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"--(\w+)(?:=(.*))?", line)
        if not check(m is not None, f"{name}:{n}: '{line}' is --name=value"):
            continue
        check(m.group(1) in known, f"{name}:{n}: kvcaked has no flag --{m.group(1)}")
        flags[m.group(1)] = m.group(2) or ""
    admin = flags.get("admin_listen", "")
    host = admin.rsplit(":", 1)[0].strip("[]")
    if admin and not (host.startswith("127.") or host in ("::1", "localhost")):
        check(flags.get("admin_token_file"), f"{name}: non-loopback --admin_listen needs --admin_token_file")
    return flags


flagfiles = sorted(f for f in os.listdir(os.path.join(DEPLOY, "flags")) if f.endswith(".flags"))
for want in ("laptop.flags", "gpu-node.flags", "prefill.flags", "decode.flags"):
    check(want in flagfiles, f"deploy/flags/{want} exists")
for f in flagfiles:
    check_flagfile("deploy/flags/" + f, read("deploy/flags/" + f))
if flagfile_text is not None:
    cm_flags = check_flagfile("ConfigMap kvcaked.flags", flagfile_text)
    gpu_flags = check_flagfile("gpu-node.flags", read("deploy/flags/gpu-node.flags"))
    check(cm_flags == gpu_flags, "ConfigMap flagfile equals deploy/flags/gpu-node.flags")

# ---- systemd ------------------------------------------------------------------
unit = read("deploy/systemd/kvcaked.service")
sections = re.findall(r"^\[(\w+)\]", unit, re.M)
check(sections == ["Unit", "Service", "Install"], "systemd unit has [Unit] [Service] [Install]")
exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M)
check(exec_start and "kvcaked" in exec_start.group(1) and "--flagfile=${KVCAKED_FLAGFILE}" in exec_start.group(1),
      "systemd: ExecStart runs kvcaked --flagfile=${KVCAKED_FLAGFILE}")
env = read("deploy/systemd/kvcaked.env")
check(re.search(r"^KVCAKED_FLAGFILE=/\S+", env, re.M), "kvcaked.env sets KVCAKED_FLAGFILE")
check("EnvironmentFile=-/etc/default/kvcaked" in unit, "systemd: EnvironmentFile /etc/default/kvcaked")
check(re.search(r"^KillSignal=SIGTERM", unit, re.M), "systemd: SIGTERM (graceful drain)")

# ---- Dockerfile ---------------------------------------------------------------
docker = read("deploy/docker/Dockerfile")
froms = re.findall(r"^FROM (\S+)", docker, re.M)
check(froms and all(f == "debian:12" for f in froms), "Dockerfile: every stage FROM debian:12")
check(re.search(r"--target kvcaked kvcakectl", docker), "Dockerfile builds kvcaked and kvcakectl")
check(re.search(r"^EXPOSE 18515 18516", docker, re.M), "Dockerfile exposes 18515 18516")
check(re.search(r"^USER kvcake", docker, re.M), "Dockerfile runs as a non-root user")

# ---- Grafana dashboard vs the metric catalog ------------------------------------------
catalog = set(re.findall(r'"(kvcake_\w+)"', read("common/metrics_catalog.cc")))
check(len(catalog) >= 15, "metric catalog found in common/metrics_catalog.cc")
dash = json.loads(read("deploy/grafana/kvcake-dashboard.json"))
check(dash.get("uid") and dash.get("panels"), "dashboard has a uid and panels")
used = set()
for p in dash["panels"]:
    for t in p.get("targets", []):
        for m in re.findall(r"\b(kvcake_\w+)", t["expr"]):
            base = re.sub(r"_(bucket|sum|count)$", "", m)
            used.add(base)
            check(base in catalog, f"dashboard panel '{p['title']}' queries unknown metric {m}")
for m in ("kvcake_tier_used_bytes", "kvcake_hits_total", "kvcake_demotions_total",
          "kvcake_request_duration_seconds", "kvcake_errors_total", "kvcake_cake_layer_budget_blocks"):
    check(m in used, f"dashboard shows {m}")
ids = [p["id"] for p in dash["panels"]]
check(len(ids) == len(set(ids)), "dashboard panel ids are unique")

# ---- Prometheus rules/config ---------------------------------------------------
if shutil.which("promtool"):
    for args in (["check", "rules", "deploy/prometheus/kvcake-rules.yml"],
                 ["check", "config", "deploy/prometheus/prometheus.yml"]):
        r = subprocess.run(["promtool"] + args, capture_output=True, text=True, cwd=ROOT)
        check(r.returncode == 0, "promtool " + " ".join(args) + ":\n" + r.stdout + r.stderr)
    rules = yaml.safe_load(read("deploy/prometheus/kvcake-rules.yml"))
    for g in rules["groups"]:
        for rule in g["rules"]:
            for m in re.findall(r"\b(kvcake_\w+)", rule["expr"]):
                check(m in catalog, f"rule {rule.get('alert') or rule.get('record')} uses unknown metric {m}")
else:
    print("note: promtool not installed; skipping rules/config check")

print(f"{checks} checks, {len(failures)} failed")
sys.exit(1 if failures else 0)
