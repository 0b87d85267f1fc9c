"""supportbot's persistence: SQLAlchemy models (`storage.models`), engines, sessions and
Alembic upgrades (`storage.db`), and one repository module per aggregate
(`storage.repositories.*`: plain functions taking a Session; they flush, callers commit).
"""
