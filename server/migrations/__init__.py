"""Alembic migrations of the autolr server's database (run by `autolr.server.db.upgrade`)."""
