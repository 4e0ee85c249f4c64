"""Finding the real Kafka and PostgreSQL that `make up` started (tests, the demo and benches use it).

`make up` starts them and writes `.stack/env`; CI and developers export those variables. Without them, a
laptop with Docker gets testcontainers; anywhere else the tests stop with a one-line instruction.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVICES = ("intake", "sla-engine", "reporting")
# The stack's secrets `make up` writes (deploy/local/stack.sh, .stack/secrets.env): signed key announcements
# and the webhook secrets' encryption key.
SECRET_NAMES = (
    "INTAKE_KEY_SIGNING_KEY",
    "SLA_ENGINE_KEY_ANNOUNCEMENT_PUBLIC_KEYS",
    "REPORTING_KEY_ANNOUNCEMENT_PUBLIC_KEYS",
    "INTAKE_WEBHOOK_SECRET_KEYS",
    "REPORTING_NOTIFICATION_SECRET_KEYS",
)


@dataclass(frozen=True)
class Stack:
    kafka_bootstrap: str
    database_urls: dict[str, str]  # service -> postgresql+asyncpg URL (an administrator: migrations, fixtures)
    secrets: dict[str, str] = field(default_factory=dict)  # SECRET_NAMES -> value, those the stack has
    # service -> URL of the role the service itself runs as (rows only, no schema changes), when the stack has one
    app_database_urls: dict[str, str] = field(default_factory=dict)

    def secret(self, service: str, name: str) -> str | None:
        """A service's setting from the stack's secrets, e.g. ("intake", "key_signing_key")."""
        return self.secrets.get(f"{service.replace('-', '_').upper()}_{name.upper()}")

    def service_env(self, service: str, **extra: str) -> dict[str, str]:
        """Environment for one service process: its prefix, its database (as its own role), the broker, its
        secrets."""
        prefix = service.replace("-", "_").upper()
        return {
            f"{prefix}_DATABASE_URL": self.app_database_urls.get(service) or self.database_urls[service],
            f"{prefix}_KAFKA__BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            **{name: value for name, value in self.secrets.items() if name.startswith(f"{prefix}_")},
            **{f"{prefix}_{k.upper()}": v for k, v in extra.items()},
        }


def _env_file() -> dict[str, str]:
    path = REPO / ".stack" / "env"
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def discover() -> Stack | None:
    values = {**_env_file(), **os.environ}
    urls = {s: values.get(f"{s.replace('-', '_').upper()}_DATABASE_URL", "") for s in SERVICES}
    if values.get("KAFKA_BOOTSTRAP_SERVERS") and all(urls.values()):
        app_urls = {s: values.get(f"{s.replace('-', '_').upper()}_APP_DATABASE_URL", "") for s in SERVICES}
        return Stack(
            values["KAFKA_BOOTSTRAP_SERVERS"],
            urls,
            secrets={name: values[name] for name in SECRET_NAMES if values.get(name)},
            app_database_urls={s: url for s, url in app_urls.items() if url},
        )
    return None


def docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception:  # no engine, no socket, no permission: all mean "no Docker"
        return False
    return True


def generated_secrets() -> dict[str, str]:
    """A fresh set of the stack's secrets (for a stack `make up` did not start, e.g. testcontainers)."""
    from cryptography.fernet import Fernet

    from slm_shared.signing import generate_signing_key

    private, public = generate_signing_key()
    return {
        "INTAKE_KEY_SIGNING_KEY": private,
        "SLA_ENGINE_KEY_ANNOUNCEMENT_PUBLIC_KEYS": public,
        "REPORTING_KEY_ANNOUNCEMENT_PUBLIC_KEYS": public,
        "INTAKE_WEBHOOK_SECRET_KEYS": Fernet.generate_key().decode(),
    }
