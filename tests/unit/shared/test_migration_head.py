"""The start-up schema check reads each service's Alembic head without importing Alembic: it must agree."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from slm_shared.db import alembic_head

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("service", ["intake", "sla-engine", "reporting"])
def test_the_head_read_from_the_migration_files_is_alembics(service: str) -> None:
    ini = REPO / "services" / service / "alembic.ini"
    config = Config(str(ini))
    config.set_main_option("script_location", str(ini.parent / "migrations"))
    assert alembic_head(ini) == ScriptDirectory.from_config(config).get_current_head()
