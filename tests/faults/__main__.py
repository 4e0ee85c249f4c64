"""`make faults` (short form) and `make faults LONG=1`: prints the table; exit 1 if an invariant broke."""

from __future__ import annotations

import asyncio
import logging
import sys

from tests.faults.harness import CALIBRATION, LONG, SHORT, run


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    shape = LONG if "--long" in sys.argv else CALIBRATION if "--calibrate" in sys.argv else SHORT
    result = asyncio.run(run(shape))
    sys.stdout.write(result.describe() + "\n")
    return 1 if any(result.findings.violations.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
