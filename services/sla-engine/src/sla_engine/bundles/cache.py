"""Parsed bundles by configuration version: each stored version's text is parsed once per process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import prometheus_client

from sla_engine.domain.bundle import Bundle, parse_bundle

if TYPE_CHECKING:
    from sla_engine.ports import BundleSource, VersionKey

BUNDLE_PARSES = prometheus_client.Counter("slm_bundle_parses_total", "Configuration versions parsed from stored text")


class BundleCache:
    """Parsed bundles by (tenant, version): versions are immutable, so entries never go stale. Each version is
    parsed once per process (a thousand policies take seconds); `slm_bundle_parses_total` counts the parses."""

    def __init__(self, limit: int = 1024) -> None:
        self._bundles: dict[VersionKey, Bundle] = {}
        self._limit = limit

    def __contains__(self, version: object) -> bool:
        return version in self._bundles

    def cached(self, version: VersionKey) -> Bundle | None:
        return self._bundles.get(version)

    def get(self, config: BundleSource) -> Bundle:
        """The version's bundle, parsed from its text if this process has not parsed it yet."""
        key = (config.tenant_id, config.version)
        bundle = self._bundles.get(key)
        if bundle is None:
            bundle = parse_source(config)
            BUNDLE_PARSES.inc()
            self.keep(key, bundle)
        return bundle

    def forget(self, version: VersionKey) -> None:
        self._bundles.pop(version, None)

    def keep(self, version: VersionKey, bundle: Bundle) -> None:
        """Remember a version's bundle (one parsed when it was applied: the same text gives the same bundle)."""
        if len(self._bundles) >= self._limit:
            self._bundles.clear()
        self._bundles[version] = bundle


def parse_source(config: BundleSource) -> Bundle:
    """A stored version's bundle, from its text (accepted when it was applied)."""
    return parse_bundle(config.source_text, content_type=_content_type_of(config.source_text), stored=True)


def _content_type_of(text: str) -> Literal["yaml", "json"]:
    return "json" if text.lstrip().startswith("{") else "yaml"
