"""Alembic migrations of the job store; `tunewise.jobs.store.db.migrate` runs them at startup."""
