"""The SLO sub-domain: signals in, rollups kept, SLO status and alerts out (docs/slo.md)."""
