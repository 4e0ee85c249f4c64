"""The settings base every service extends: one typed class per service, env prefix, nested groups."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from aiokafka.helpers import create_ssl_context
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from slm_shared.tracing import TracingSettings

if TYPE_CHECKING:
    from ssl import SSLContext


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    group_id: str | None = Field(default=None, description="consumer group; defaults to the service name")
    group_instance_id: str | None = Field(
        default=None,
        description="static group membership (KIP-345): a name stable across restarts and unique "
        "per replica, e.g. the pod name; a restarted replica then takes its partitions back at once",
    )
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)
    max_batch_records: int = Field(default=200, ge=1)

    def _ssl_context(self) -> SSLContext | None:
        if self.security_protocol not in ("SSL", "SASL_SSL"):
            return None
        context: SSLContext = create_ssl_context(cafile=self.ssl_cafile)
        return context

    def _password(self) -> str:
        return self.sasl_password.get_secret_value() if self.sasl_password else ""

    def client_options(self) -> dict[str, Any]:
        """Connection options for aiokafka's producer, consumer and admin clients."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self._password()
        if (context := self._ssl_context()) is not None:
            options["ssl_context"] = context
        return options

    def broker_security(self) -> BaseSecurity | None:
        """The same settings in the form FastStream's broker takes."""
        context = self._ssl_context()
        username = self.sasl_username or ""
        if self.sasl_mechanism == "SCRAM-SHA-256":
            return SASLScram256(username, self._password(), ssl_context=context)
        if self.sasl_mechanism == "SCRAM-SHA-512":
            return SASLScram512(username, self._password(), ssl_context=context)
        if self.sasl_mechanism == "PLAIN":
            return SASLPlaintext(username, self._password(), ssl_context=context)
        return BaseSecurity(ssl_context=context) if context else None


class ServiceSettings(BaseSettings):
    """Fields common to the three services; each subclass sets its own `env_prefix`."""

    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="ignore")

    database_url: SecretStr
    kafka: KafkaSettings = KafkaSettings()
    http_host: str = "0.0.0.0"  # noqa: S104 - a service in a pod listens on all interfaces
    http_port: int = 8000
    forwarded_allow_ips: str = Field(
        default="",
        description="comma-separated addresses or networks of the TLS-terminating proxies whose "
        "X-Forwarded-Proto/-For uvicorn believes (the scheme decides Secure cookies and HSTS); empty: none",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    role: Literal["all", "api"] = Field(
        default="all",
        description="all: the consumers, background loops, outbox relay and HTTP API in one process; "
        "api: the HTTP API only (no Kafka client, loop or relay), for a deployment that answers requests beside "
        "the one that consumes, so a draining backlog never queues a request behind its work",
    )
    drain_timeout_seconds: float = Field(default=20.0, gt=0)
    outbox_batch_size: int = Field(default=500, ge=1)
    outbox_poll_seconds: float = Field(default=0.5, gt=0)
    create_topics: bool = True
    consumer_lag_interval_seconds: float = Field(default=15.0, gt=0, description="period of the slm_consumer_lag count")
    tracing: TracingSettings = TracingSettings()
    auth_failure_burst: int = Field(default=20, ge=1, description="failed authentications a client may make at once")
    auth_failure_per_minute: float = Field(default=10.0, gt=0, description="failures forgiven per minute and client")
    key_announcement_public_keys: str = Field(
        default="",
        description="base64 Ed25519 public keys (comma-separated) that verify intake's key "
        "announcements; without one, every announcement is ignored (docs/security.md, key announcements)",
    )
    max_request_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="body limit of the HTTP routes without a limit of their own (docs/operations.md, limits)",
    )
