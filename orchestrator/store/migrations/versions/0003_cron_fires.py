"""cron fires: exactly-once firing of cron triggers

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cron_fires",
        sa.Column("trigger_id", sa.String(length=36), nullable=False),
        sa.Column("fire_time", sa.Float(), nullable=False),
        sa.Column("fired_at", sa.Float(), nullable=False),
        sa.Column("execution_id", sa.String(length=36), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.UniqueConstraint("trigger_id", "fire_time", name="uq_cron_fires_trigger_time"),
    )


def downgrade() -> None:
    op.drop_table("cron_fires")
