"""archived communities and level privileges in the access projection

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_levels",
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("privileges", sa.JSON(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("community_id"),
    )
    with op.batch_alter_table("access_communities", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("archived", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("access_roles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("level", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(
            sa.Column("level_order", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("access_roles", schema=None) as batch_op:
        batch_op.drop_column("level_order")
        batch_op.drop_column("level")
    with op.batch_alter_table("access_communities", schema=None) as batch_op:
        batch_op.drop_column("archived")
    op.drop_table("access_levels")
