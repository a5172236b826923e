"""instructions: an index on (job_id, max_rouge_l, seq) for the results' score sorts

Revision ID: 0011_instruction_score_index
Revises: 0010_example_reviews
Create Date: 2026-12-06 16:00:00.000000
"""
from alembic import op

revision = '0011_instruction_score_index'
down_revision = "0010_example_reviews"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('instructions', schema=None) as batch_op:
        batch_op.create_index('ix_instructions_job_score', ['job_id', 'max_rouge_l', 'seq'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('instructions', schema=None) as batch_op:
        batch_op.drop_index('ix_instructions_job_score')
