"""conversation turns: a row's later turns after its first exchange, on instances and dataset examples

Revision ID: 0007_conversation_turns
Revises: 0006_example_scores
Create Date: 2026-12-06 07:30:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0007_conversation_turns'
down_revision = "0006_example_scores"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # server default '[]': the rows already stored are single-turn, as they were
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('turns', sa.JSON(), nullable=False, server_default='[]'))
    with op.batch_alter_table('dataset_examples', schema=None) as batch_op:
        batch_op.add_column(sa.Column('turns', sa.JSON(), nullable=False, server_default='[]'))


def downgrade() -> None:
    with op.batch_alter_table('dataset_examples', schema=None) as batch_op:
        batch_op.drop_column('turns')
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('turns')
