"""example reviews: a reviewer's accept / reject (with reason) / edit / rating per dataset example

Revision ID: 0010_example_reviews
Revises: 0009_topic_trees
Create Date: 2026-12-06 07:20:00.000000
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0010_example_reviews'
down_revision = "0009_topic_trees"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('example_reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('example_id', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('rating', sa.Integer(), nullable=True),
    sa.Column('output', sa.Text(), nullable=True),
    sa.Column('reviewer', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('reviewed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('committed_in', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['example_id'], ['dataset_examples.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('example_reviews', schema=None) as batch_op:
        batch_op.create_index('ix_example_reviews_pending', ['dataset_id', 'committed_in'], unique=False)
        batch_op.create_index(batch_op.f('ix_example_reviews_example_id'), ['example_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('example_reviews', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_example_reviews_example_id'))
        batch_op.drop_index('ix_example_reviews_pending')

    op.drop_table('example_reviews')
