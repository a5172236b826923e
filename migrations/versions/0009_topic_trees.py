"""topic trees: nested topics grown from a root description or uploaded, editable

Revision ID: 0009_topic_trees
Revises: 0008_persona_sets
Create Date: 2026-12-06 08:10:00.000000
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0009_topic_trees'
down_revision = "0008_persona_sets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('topic_trees',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('tree', sa.JSON(), nullable=False),
    sa.Column('made_by', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('grown_by_job_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('topic_trees', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_topic_trees_owner'), ['owner'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('topic_trees', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_topic_trees_owner'))
    op.drop_table('topic_trees')
