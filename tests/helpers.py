"""Reading the record back in tests."""

from __future__ import annotations

from sqlalchemy import select

from core.app import Jobyard
from jobs.models import Attempt, Run


def run_of(app: Jobyard, run_id: str) -> Run:
    with app.sessions() as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run


def attempts_of(app: Jobyard, run_id: str) -> list[Attempt]:
    with app.sessions() as session:
        return list(
            session.scalars(select(Attempt).where(Attempt.run_id == run_id).order_by(Attempt.series, Attempt.number))
        )
