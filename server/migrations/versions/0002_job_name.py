"""Job names.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add ``jobs.name`` (nullable: jobs created before it have none)."""
    op.add_column("jobs", sa.Column("name", sa.String(200), nullable=True))


def downgrade() -> None:
    """Drop ``jobs.name``."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("name")
