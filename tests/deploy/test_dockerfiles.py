"""deploy/Dockerfile, one for the three services (build argument SERVICE): for each of them multi-stage, uv-built from
the lock, only its own package, non-root, no HEALTHCHECK."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tests.deploy.support import REPO, SERVICES


@dataclass(frozen=True)
class Instruction:
    command: str
    arguments: str


DOCKERFILE = REPO / "deploy" / "Dockerfile"
# `RUN if [ "${SERVICE}" = "x" ]; then ...; fi`: a step only one service's image runs.
ONLY_FOR = re.compile(r'^if \[ "\$\{SERVICE\}" = "([a-z-]+)" \]; then (.*); fi$')


def instructions(service: str) -> list[Instruction]:
    """The instructions as docker runs them with `--build-arg SERVICE=<service>`: continuation lines joined,
    comments dropped, `${SERVICE}` filled in, and a RUN guarded for another service left out."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    parsed = []
    for line in joined.splitlines():
        if line.strip():
            command, _, arguments = line.strip().partition(" ")
            arguments = " ".join(arguments.split())
            guarded = ONLY_FOR.match(arguments) if command.upper() == "RUN" else None
            if guarded:
                if guarded.group(1) != service:
                    continue
                arguments = guarded.group(2)
            parsed.append(Instruction(command.upper(), arguments.replace("${SERVICE}", service)))
    return parsed


def stages(service: str) -> list[list[Instruction]]:
    """Instructions grouped by build stage (the ARGs before the first FROM are stage zero's preamble)."""
    grouped: list[list[Instruction]] = []
    for instruction in instructions(service):
        if instruction.command == "FROM" or not grouped:
            grouped.append([])
        grouped[-1].append(instruction)
    return [stage for stage in grouped if stage[0].command == "FROM"]


def makefile_uv_version() -> str:
    [version] = re.findall(r"^UV_VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    return str(version)


@pytest.mark.parametrize("service", SERVICES)
def test_the_image_is_built_in_stages_on_a_slim_python(service: str) -> None:
    built = stages(service)
    assert len(built) >= 3, "uv, build and runtime stages"
    preamble = " ".join(i.arguments for i in instructions(service) if i.command == "ARG")
    assert re.search(r"PYTHON_IMAGE=python:3\.1[1-9]-slim", preamble)
    runtime = built[-1]
    assert runtime[0].arguments.startswith("${PYTHON_IMAGE}")
    # The runtime stage takes the built /app and nothing of uv or the build toolchain.
    copies = [i.arguments for i in runtime if i.command == "COPY"]
    assert copies == ["--from=build /app /app"]


@pytest.mark.parametrize("service", SERVICES)
def test_only_this_service_is_installed_from_the_frozen_lock_with_the_makefile_uv(service: str) -> None:
    [uv_stage, build, _] = stages(service)
    assert uv_stage[0].arguments == f"ghcr.io/astral-sh/uv:{makefile_uv_version()} AS uv"
    runs = " ".join(i.arguments for i in build if i.command == "RUN")
    syncs = re.findall(r"uv sync ([^&]*)", runs)
    assert syncs, "no uv sync"
    for sync in syncs:
        assert {"--frozen", "--no-dev", f"--package slm-{service}"} <= set(re.findall(r"--\S+(?: slm-\S+)?", sync))
    copied = [i.arguments for i in build if i.command == "COPY"]
    assert f"services/{service} services/{service}" in copied  # src/, alembic.ini and migrations/
    assert "shared/src shared/src" in copied
    other_sources = [c for c in copied for other in SERVICES if other != service and c.startswith(f"services/{other} ")]
    assert not other_sources


@pytest.mark.parametrize("service", SERVICES)
def test_the_service_runs_as_a_non_root_user_without_a_healthcheck(service: str) -> None:
    runtime = stages(service)[-1]
    commands = [i.command for i in runtime]
    assert "HEALTHCHECK" not in commands, "Kubernetes probes /healthz and /readyz"
    [user] = [i.arguments for i in runtime if i.command == "USER"]
    assert user.split(":")[0] not in {"0", "root"}
    # The user is the last switch before the entry point, so nothing at run time is root.
    assert commands.index("USER") > max(index for index, c in enumerate(commands) if c == "RUN")
    # The one entry point name is a link to this service's console script, made in the build stage.
    [entrypoint] = [i.arguments for i in runtime if i.command == "ENTRYPOINT"]
    assert entrypoint == '["slm-service"]'
    build_runs = " ".join(i.arguments for i in stages(service)[1] if i.command == "RUN")
    assert f"ln -s slm-{service} /app/.venv/bin/slm-service" in build_runs
    [expose] = [i.arguments for i in runtime if i.command == "EXPOSE"]
    assert int(expose) == SERVICES[service].model_fields["http_port"].default


@pytest.mark.parametrize("service", SERVICES)
def test_the_image_writes_nothing_under_its_root_filesystem(service: str) -> None:
    env = " ".join(i.arguments for i in stages(service)[-1] if i.command == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "HOME=/tmp" in env  # /tmp is the pod's only writable mount
    build_runs = " ".join(i.arguments for i in stages(service)[1] if i.command == "RUN")
    assert "compileall" in build_runs  # bytecode is made at build time, since the runtime cannot write it


def test_reporting_has_pango_and_fonts_for_weasyprint_and_the_others_no_extra_packages() -> None:
    for service in SERVICES:
        runs = " ".join(i.arguments for i in stages(service)[-1] if i.command == "RUN")
        if service == "reporting":
            assert {"libpango-1.0-0", "libpangoft2-1.0-0", "fonts-dejavu-core"} <= set(runs.split())
            assert "--no-install-recommends" in runs
            assert "rm -rf /var/lib/apt/lists/*" in runs
        else:
            assert "apt-get" not in runs


def test_every_service_step_is_written_once_and_the_service_must_be_named() -> None:
    text = DOCKERFILE.read_text()
    assert not any((REPO / "services" / service / "Dockerfile").exists() for service in SERVICES)
    # No default: `docker build` without --build-arg SERVICE stops at the check instead of building nobody's image.
    assert re.search(r"^ARG SERVICE$", text, re.MULTILINE)
    for service in ("intake", "sla-engine"):
        assert f'"{service}"' not in text  # nothing special-cased for them
    [check] = [i.arguments for i in instructions("") if i.command == "RUN" and "exit 1" in i.arguments]
    assert check.startswith('case "" in intake|sla-engine|reporting) ;;')


def test_the_docker_build_context_leaves_out_the_virtualenv_and_the_local_stack() -> None:
    rules = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert rules[0] == "**", "everything is excluded unless listed"
    included = [rule[1:] for rule in rules if rule.startswith("!")]
    assert not any(rule.startswith((".venv", ".stack", "tests")) for rule in included)
    for service in SERVICES:
        for copied in ("pyproject.toml", "alembic.ini", "migrations", "src"):
            assert (REPO / "services" / service / copied).exists()
