"""catalogue_versions: published versions of the problem catalogue (validate, publish, roll back)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 00:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "catalogue_versions" in set(sa.inspect(op.get_bind()).get_table_names()):
        return  # made on first use by a process that ran before the migration
    op.create_table(
        "catalogue_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("leaves", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=80), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("restored_from", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalogue_versions")),
        sa.UniqueConstraint("version", name=op.f("uq_catalogue_versions_version")),
    )


def downgrade() -> None:
    op.drop_table("catalogue_versions")
