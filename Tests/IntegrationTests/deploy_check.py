"""Checks deploy/: every file parses, the Kubernetes objects fit together, the compose file
names what exists, the Dockerfile builds with `make release` and its runtime stage installs a
Debian package for every shared library the gateway binary links.

Usage: deploy_check.py ROOT SLUICE_BINARY. Prints one `ok`/`FAIL` line per check; exit 1 on
any failure."""
import os
import re
import subprocess
import sys

import yaml

root, binary = sys.argv[1], sys.argv[2]
deploy = os.path.join(root, "deploy")
failures = 0


def check(name, condition):
    global failures
    print(("  ok   " if condition else "  FAIL ") + name)
    if not condition:
        failures += 1


def load_all(path):
    with open(path) as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


# --- Kubernetes ---------------------------------------------------------------------------
k8s = os.path.join(deploy, "kubernetes")
objects = {}
for name in sorted(os.listdir(k8s)):
    if not name.endswith(".yaml"):
        continue
    try:
        docs = load_all(os.path.join(k8s, name))
        parsed = True
    except yaml.YAMLError:
        docs, parsed = [], False
    check(f"kubernetes/{name} parses", parsed)
    for doc in docs:
        if doc.get("kind") == "Kustomization":
            continue
        check(f"kubernetes/{name}: {doc.get('kind')} has apiVersion, kind, metadata.name",
              bool(doc.get("apiVersion")) and bool(doc.get("kind")) and bool(doc.get("metadata", {}).get("name")))
        objects[(doc.get("kind"), doc.get("metadata", {}).get("name"))] = (name, doc)

kustomization = load_all(os.path.join(k8s, "kustomization.yaml"))[0]
check("kustomization lists files that exist",
      all(os.path.exists(os.path.join(k8s, f)) for f in kustomization["resources"]))
deployment = objects[("Deployment", "sluice")][1]
service = objects[("Service", "sluice")][1]
pdb = objects[("PodDisruptionBudget", "sluice")][1]
configmap = objects[("ConfigMap", "sluice-config")][1]
labels = deployment["spec"]["template"]["metadata"]["labels"]
check("Deployment has 2 replicas", deployment["spec"]["replicas"] == 2)
check("Deployment selector matches its pod labels",
      all(labels.get(k) == v for k, v in deployment["spec"]["selector"]["matchLabels"].items()))
check("Service selects the pods", all(labels.get(k) == v for k, v in service["spec"]["selector"].items()))
check("PodDisruptionBudget selects the pods and keeps one",
      all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items()) and pdb["spec"]["minAvailable"] == 1)
container = deployment["spec"]["template"]["spec"]["containers"][0]
port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
check("Service target ports are container ports", all(p["targetPort"] in port_names for p in service["spec"]["ports"]))
probe = container["readinessProbe"]["httpGet"]
check("readiness is /healthz on the admin port", probe["path"] == "/healthz" and probe["port"] == "admin")
volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
check("every volume mount names a volume", all(m["name"] in volumes for m in container["volumeMounts"]))
check("the ConfigMap volume is sluice-config", volumes["config"]["configMap"]["name"] == "sluice-config")
secret_refs = [e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e]
check("credentials come from Secret references, none inline",
      all(r == "sluice-secrets" for r in secret_refs) and all("value" not in e for e in container["env"]))
example = objects[("Secret", "sluice-secrets")][1]
env_keys = {e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "valueFrom" in e}
mount_keys = {m["subPath"] for m in container["volumeMounts"] if m["name"] == "secrets"}
check("the example Secret has every key the Deployment reads", (env_keys | mount_keys) <= set(example["stringData"]))
check("the example Secret holds placeholders only", all(v == "REPLACE_ME" for v in example["stringData"].values()))
config = yaml.safe_load(configmap["data"]["sluice.yaml"])
listen_ports = {int(address.rsplit(":", 1)[1]) for address in config["listen"].values()}
check("the gateway listens on the ports the Deployment exposes", listen_ports == set(port_names.values()))
check("the ConfigMap's store is PostgreSQL with TLS verified and a password from the environment",
      config["store"]["url"].startswith("postgres://") and "sslmode=verify-full" in config["store"]["url"]
      and config["store"]["password_env"] in {e["name"] for e in container["env"]})
check("no listener binds loopback only (a Service must reach it)",
      all(not a.startswith("127.") for a in config["listen"].values()))

# --- compose -------------------------------------------------------------------------------
compose = load_all(os.path.join(deploy, "compose.yaml"))[0]
services = compose["services"]
check("compose has the store, two gateways and both targets",
      {"store", "gateway-a", "gateway-b", "target-db", "target-ssh"} <= set(services))
check("both gateways build deploy/Dockerfile from the repository root",
      all(services[g]["build"]["dockerfile"] == "deploy/Dockerfile"
          and os.path.normpath(os.path.join(deploy, services[g]["build"]["context"])) == os.path.normpath(root)
          for g in ("gateway-a", "gateway-b")))
published = [p.split(":")[0] for g in ("gateway-a", "gateway-b") for p in services[g]["ports"]]
check("the two gateways publish different host ports", len(published) == len(set(published)))
check("both gateways mount the same signing key",
      all(any(v.endswith(":/var/lib/sluice/signing.key:ro") for v in services[g]["volumes"]) for g in ("gateway-a", "gateway-b")))
check("every secret the services use is declared", all(s in compose["secrets"] for svc in services.values() for s in svc.get("secrets", [])))
check("the sshd target builds from a folder that exists",
      os.path.isfile(os.path.join(deploy, services["target-ssh"]["build"]["context"], "Dockerfile")))
template = yaml.safe_load(open(os.path.join(deploy, "compose", "sluice.yaml")))
check("the compose configuration's store is the store service",
      "@store:5432/" in template["store"]["url"] and template["store"]["password_env"] == "SLUICE_STORE_PASSWORD")

# --- Dockerfile ----------------------------------------------------------------------------
dockerfile = open(os.path.join(deploy, "Dockerfile")).read()
stages = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
check("two stages: a Swift build on Debian 12, a Debian 12 slim runtime",
      len(stages) == 2 and "bookworm" in stages[0] and stages[1] == "debian:12-slim")
check("the build runs `make release` (the project's own build command)", re.search(r"^RUN make release\b", dockerfile, re.M) is not None)
make = open(os.path.join(root, "Makefile")).read()
check("`make release` builds with `swift build -c release`", re.search(r"^release:.*\n\t\$\(SWIFT\) build -c release", make, re.M) is not None)
runtime = dockerfile.split("FROM debian:12-slim", 1)[1]
installed = set(re.findall(r"\b(lib[a-z0-9.+-]+|zlib1g|ca-certificates)\b", runtime.split("apt-get install", 1)[1].split("&&", 1)[0]))
check("no -dev package in the runtime stage", not any(p.endswith("-dev") for p in installed))
# Every shared library the binary links, outside the Swift runtime the image copies, comes from
# a package the runtime stage installs (or from the base image's essential packages).
essential = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}
ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
missing = []
for line in ldd.splitlines():
    match = re.search(r"=>\s+(\S+)", line)
    if not match or "/swift/" in match.group(1):
        continue
    owner = subprocess.run(["dpkg", "-S", os.path.realpath(match.group(1))], capture_output=True, text=True)
    if owner.returncode != 0:
        owner = subprocess.run(["dpkg", "-S", match.group(1)], capture_output=True, text=True)
    package = owner.stdout.split(":", 1)[0] if owner.returncode == 0 else "?"
    direct = package in installed or package in essential
    # Libraries pulled in by an installed package (libssh-4 brings libcrypto3, krb5…) are fine.
    if not direct:
        rdeps = subprocess.run(["apt-cache", "rdepends", "--installed", "--recurse", package], capture_output=True, text=True).stdout
        direct = any(re.search(rf"^\s+{re.escape(p)}$", rdeps, re.M) for p in installed)
    if not direct:
        missing.append(f"{match.group(1)} ({package})")
check("the runtime stage provides every library the binary links" + (f" — missing {missing}" if missing else ""), not missing)

sys.exit(1 if failures else 0)
