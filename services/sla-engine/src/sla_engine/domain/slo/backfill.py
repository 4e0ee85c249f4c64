"""Which threshold series a new configuration version adds, and so must backfill from the stored samples."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sla_engine.domain.bundle.slos import slo_definition
from sla_engine.domain.slo.definition import ThresholdSli

if TYPE_CHECKING:
    from sla_engine.domain.bundle import Bundle


def added_threshold_series(before: Bundle | None, after: Bundle) -> list[tuple[str, ThresholdSli]]:
    """The (service, threshold) series of `after` that `before` lacks, in a stable order; several SLOs sharing
    one series count once. Series `before` had were kept current on arrival and need no backfill."""

    def series(bundle: Bundle | None) -> dict[tuple[str, str], tuple[str, ThresholdSli]]:
        # Keyed by the series name: Decimal('300') == Decimal('300.0'), but they are two series.
        found = {}
        for entry in bundle.slos if bundle is not None else ():
            slo = slo_definition(entry)
            if isinstance(slo.sli, ThresholdSli):
                found[(slo.service, slo.sli.rollup_key)] = (slo.service, slo.sli)
        return found

    known = series(before)
    return [item for key, item in sorted(series(after).items()) if key not in known]
