"""The job store: SQLAlchemy 2 tables and the repository functions the server and the loop use.

SQLite inside the workspace by default; a PostgreSQL URL for shared deployments. Schema changes
are Alembic migrations shipped in the package and run when the store opens.
"""

from tunewise.jobs.store.db import Database, StoreError, default_url

__all__ = ["Database", "StoreError", "default_url"]
