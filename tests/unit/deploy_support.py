"""Offline helpers for tests/unit/test_deploy.py: no network, no Docker, no cluster.

- ``render_kustomization``: a small kustomize, enough for deploy/k8s (resources,
  namespace, images, replicas, strategic-merge patches). It refuses any field
  it does not implement, so it never renders something kustomize would not;
  the tests compare it with ``kubectl kustomize`` where that exists.
- ``interpolate``: docker compose's ``${VAR}`` interpolation.
- ``dockerfile_instructions``: a Dockerfile split into (instruction, arguments).
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------- kustomize ---

SUPPORTED_KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "namespace", "resources", "images", "replicas", "patches"}

# Kinds that have no namespace (the namespace transformer leaves them alone).
CLUSTER_SCOPED_KINDS = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
}

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}

# patchMergeKey of the list fields a strategic-merge patch may touch here
# (from the Kubernetes API's x-kubernetes-patch-merge-key).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "tolerations": None,  # replaced as a whole
}


class KustomizeError(Exception):
    pass


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def resource_id(doc: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = doc.get("metadata", {})
    return (doc.get("apiVersion", ""), doc.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))


def strategic_merge(target: Any, patch: Any, field: str | None = None) -> Any:
    """Apply a strategic-merge patch (the subset used by deploy/k8s)."""
    if isinstance(patch, dict) and isinstance(target, dict):
        if "$patch" in patch or any(key.startswith("$") for key in patch):
            raise KustomizeError(f"strategic-merge directives are not supported: {sorted(patch)}")
        result = dict(target)
        for key, value in patch.items():
            if value is None:
                result.pop(key, None)
            elif key in result:
                result[key] = strategic_merge(result[key], value, key)
            else:
                result[key] = copy.deepcopy(value)
        return result
    if isinstance(patch, list) and isinstance(target, list):
        merge_key = MERGE_KEYS.get(field or "")
        if merge_key is None or not all(isinstance(item, dict) and merge_key in item for item in patch + target):
            return copy.deepcopy(patch)
        # As kustomize (kyaml) orders them: the patch's items first, in the
        # patch's order (merged into the target's item of the same key), then
        # the target's items the patch does not name.
        by_key = {item[merge_key]: item for item in target}
        patched_keys = {item[merge_key] for item in patch}
        result = [
            strategic_merge(by_key[item[merge_key]], item, field) if item[merge_key] in by_key else copy.deepcopy(item)
            for item in patch
        ]
        result.extend(copy.deepcopy(item) for item in target if item[merge_key] not in patched_keys)
        return result
    return copy.deepcopy(patch)


def _split_image(image: str) -> tuple[str, str | None, str | None]:
    name, digest = (image.split("@", 1) + [None])[:2] if "@" in image else (image, None)
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    return name, tag, digest


def _pod_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    if doc.get("kind") in WORKLOAD_KINDS:
        return [spec.get("template", {}).get("spec", {})]
    if doc.get("kind") == "CronJob":
        return [spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})]
    if doc.get("kind") == "Pod":
        return [spec]
    return []


def containers_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for pod in _pod_specs(doc) for key in ("initContainers", "containers") for c in pod.get(key, [])]


def _apply_images(docs: list[dict[str, Any]], images: list[dict[str, Any]]) -> None:
    for rule in images:
        unknown = set(rule) - {"name", "newName", "newTag", "digest"}
        if unknown:
            raise KustomizeError(f"images: unsupported fields {sorted(unknown)}")
        for doc in docs:
            for container in containers_of(doc):
                name, tag, digest = _split_image(container["image"])
                if name != rule["name"]:
                    continue
                name = rule.get("newName", name)
                if "digest" in rule:
                    container["image"] = f"{name}@{rule['digest']}"
                    continue
                tag = str(rule["newTag"]) if "newTag" in rule else tag
                image = name + (f":{tag}" if tag else "")
                container["image"] = image + (f"@{digest}" if digest and "newTag" not in rule else "")


def _apply_replicas(docs: list[dict[str, Any]], replicas: list[dict[str, Any]]) -> None:
    for rule in replicas:
        matched = [d for d in docs if d["metadata"]["name"] == rule["name"] and d["kind"] in WORKLOAD_KINDS]
        if not matched:
            raise KustomizeError(f"replicas: no workload named {rule['name']}")
        for doc in matched:
            doc["spec"]["replicas"] = int(rule["count"])


def _apply_patches(docs: list[dict[str, Any]], patches: list[dict[str, Any]], base_dir: Path) -> list[dict[str, Any]]:
    for entry in patches:
        unknown = set(entry) - {"path", "patch", "target"}
        if unknown:
            raise KustomizeError(f"patches: unsupported fields {sorted(unknown)}")
        if "path" in entry:
            patch_docs = load_yaml_documents(base_dir / entry["path"])
        else:
            patch_docs = [doc for doc in yaml.safe_load_all(entry["patch"]) if doc is not None]
        if len(patch_docs) != 1 or not isinstance(patch_docs[0], dict):
            raise KustomizeError(f"patches: one strategic-merge patch per entry expected in {entry}")
        patch = patch_docs[0]
        target = entry.get("target") or {"kind": patch.get("kind"), "name": patch.get("metadata", {}).get("name")}
        if set(target) - {"kind", "name"}:
            raise KustomizeError(f"patches: only kind/name targets are supported: {target}")
        hits = 0
        for index, doc in enumerate(docs):
            if doc.get("kind") == target.get("kind") and doc["metadata"].get("name") == target.get("name"):
                body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind")}
                body["metadata"] = {k: v for k, v in body.get("metadata", {}).items() if k != "name"}
                if not body["metadata"]:
                    del body["metadata"]
                docs[index] = strategic_merge(doc, body)
                hits += 1
        if hits == 0:
            raise KustomizeError(f"patches: nothing matches {target}")
    return docs


def render_kustomization(directory: Path) -> list[dict[str, Any]]:
    """The resources a kustomization directory renders to."""
    directory = Path(directory)
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    unknown = set(kustomization) - SUPPORTED_KUSTOMIZATION_FIELDS
    if unknown:
        raise KustomizeError(f"{directory}: fields this renderer does not implement: {sorted(unknown)}")
    docs: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        docs.extend(render_kustomization(path) if path.is_dir() else load_yaml_documents(path))
    seen: set[tuple[str, str, str, str]] = set()
    for doc in docs:
        key = resource_id(doc)
        if key in seen:
            raise KustomizeError(f"{directory}: resource defined twice: {key}")
        seen.add(key)
    docs = _apply_patches(docs, kustomization.get("patches", []), directory)
    if "namespace" in kustomization:
        for doc in docs:
            if doc.get("kind") not in CLUSTER_SCOPED_KINDS:
                doc.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    _apply_images(docs, kustomization.get("images", []))
    _apply_replicas(docs, kustomization.get("replicas", []))
    return docs


def kubectl_kustomize(directory: Path) -> list[dict[str, Any]] | None:
    """``kubectl kustomize DIR`` (the real kustomize), or None without kubectl."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    out = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc is not None]


# ----------------------------------------------------------------- compose ---

_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>(?:[^{}]|\{[^{}]*\}|\$\{[^{}]*\})*))?\}")


class InterpolationError(Exception):
    pass


def interpolate(value: str, env: dict[str, str]) -> str:
    """docker compose interpolation of one string: ${V}, ${V:-d}, ${V-d}, ${V:?e}, ${V?e}, ${V:+a}, $$."""

    def sub(text: str) -> str:
        out, pos = [], 0
        while pos < len(text):
            if text.startswith("$$", pos):
                out.append("$")
                pos += 2
                continue
            match = _VAR.match(text, pos) if text.startswith("${", pos) else None
            if match is None:
                if text.startswith("${", pos):
                    raise InterpolationError(f"bad interpolation in {text!r}")
                out.append(text[pos])
                pos += 1
                continue
            name, op, arg = match["name"], match["op"], match["arg"] or ""
            present = name in env
            empty = present and env[name] == ""
            if op is None:
                out.append(env.get(name, ""))
            elif op in (":-", "-"):
                use_default = not present or (op == ":-" and empty)
                out.append(sub(arg) if use_default else env[name])
            elif op in (":?", "?"):
                if not present or (op == ":?" and empty):
                    raise InterpolationError(f"{name}: {sub(arg)}")
                out.append(env[name])
            elif op in (":+", "+"):
                set_ = present and (op == "+" or not empty)
                out.append(sub(arg) if set_ else "")
            pos = match.end()
        return "".join(out)

    return sub(value)


def interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    return node


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}: not KEY=VALUE: {line!r}")
        env[key.strip()] = value.strip().strip("'\"")
    return env


# -------------------------------------------------------------- dockerfile ---


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    if pending:
        raise ValueError(f"{path}: dangling line continuation")
    return instructions


def stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in instructions:
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result
