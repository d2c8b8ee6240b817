"""cron triggers defined in a workbook's `triggers:` section

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cron_triggers") as batch:
        batch.add_column(sa.Column("workbook_name", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cron_triggers") as batch:
        batch.drop_column("workbook_name")
