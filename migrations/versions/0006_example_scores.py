"""example scores: an LLM judge's quality and complexity score per example

Revision ID: 0006_example_scores
Revises: 0005_benchmark_sets
Create Date: 2026-11-28 11:30:00.000000
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0006_example_scores'
down_revision = "0005_benchmark_sets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('example_scores',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('scoring_job_id', sa.Integer(), nullable=True),
    sa.Column('aspect', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('judge', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('parsed', sa.Integer(), nullable=True),
    sa.Column('raw', sa.Text(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('from_logprobs', sa.Boolean(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['scoring_job_id'], ['jobs.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('instance_id', 'aspect', 'judge')
    )
    with op.batch_alter_table('example_scores', schema=None) as batch_op:
        batch_op.create_index('ix_example_scores_job_aspect', ['job_id', 'aspect'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('example_scores', schema=None) as batch_op:
        batch_op.drop_index('ix_example_scores_job_aspect')

    op.drop_table('example_scores')
