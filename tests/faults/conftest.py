"""The fault run stops and starts the shared broker and PostgreSQL: only when asked (SLM_FAULTS=1, `make faults`)."""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("SLM_FAULTS") == "1" else ["test_*.py"]
