"""environment secrets, cron triggers

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing environments get no secret variables.
    with op.batch_alter_table('environments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('secrets', sa.JSON(), nullable=False,
                                      server_default=sa.text("'[]'")))

    op.create_table('cron_triggers',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('pattern', sa.String(length=255), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('workflow_name', sa.String(length=255), nullable=False),
    sa.Column('workflow_input', sa.JSON(), nullable=False),
    sa.Column('workflow_params', sa.JSON(), nullable=False),
    sa.Column('first_execution_time', sa.Float(), nullable=True),
    sa.Column('remaining_executions', sa.Integer(), nullable=True),
    sa.Column('next_execution_time', sa.Float(), nullable=True),
    sa.Column('missed', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project', 'name')
    )
    with op.batch_alter_table('cron_triggers', schema=None) as batch_op:
        batch_op.create_index('ix_cron_triggers_next', ['next_execution_time'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cron_triggers', schema=None) as batch_op:
        batch_op.drop_index('ix_cron_triggers_next')

    op.drop_table('cron_triggers')
    with op.batch_alter_table('environments', schema=None) as batch_op:
        batch_op.drop_column('secrets')
