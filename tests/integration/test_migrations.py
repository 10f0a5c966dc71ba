"""The migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from core.app import Jobyard
from core.db import Base
from core.migrate import current_revision, head_revision

# Indexes that only PostgreSQL gets (migration 0010's trigram indexes for free-text search).
POSTGRESQL_ONLY_INDEX_SUFFIX = "_trgm"


pytestmark = pytest.mark.both_databases


def _is_postgresql_only(difference: tuple[object, ...]) -> bool:
    kind, index = difference[0], difference[1]
    return kind == "remove_index" and str(getattr(index, "name", "")).endswith(POSTGRESQL_ONLY_INDEX_SUFFIX)


def test_the_migrated_schema_matches_the_models(app: Jobyard) -> None:
    assert current_revision(app.engine) == head_revision()
    with app.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in differences if not (isinstance(d, tuple) and _is_postgresql_only(d))] == []
