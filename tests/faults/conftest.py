"""The fault run stops and starts the shared broker and PostgreSQL: collected only when asked (SLM_FAULTS=1), by
`make faults` and by `make test` as its own last step, after every other test has run."""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("SLM_FAULTS") == "1" else ["test_*.py"]
