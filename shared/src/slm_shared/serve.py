"""Serving a service: the schema check before anything starts, then uvicorn until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

from slm_shared.db import DatabaseNotMigrated

if TYPE_CHECKING:
    from fastapi import FastAPI

    from slm_shared.runtime import ServiceRuntime
    from slm_shared.settings import ServiceSettings


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run the service until SIGTERM/SIGINT; uvicorn then drains HTTP and runs the lifespan shutdown.

    An unmigrated database stops it before anything starts, with one clear line and exit status 2.
    """
    import uvicorn

    runtime: ServiceRuntime = app.state.runtime
    try:
        asyncio.run(runtime.preflight())
    except DatabaseNotMigrated as error:
        print(f"refusing to start: {error}", file=sys.stderr)  # noqa: T201 - before logging is configured
        raise SystemExit(2) from None

    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.drain_timeout_seconds),
        # Behind a TLS-terminating ingress the connection is plain HTTP: the scheme (and the client address)
        # come from X-Forwarded-Proto/-For, believed only from the configured proxies.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
    )
