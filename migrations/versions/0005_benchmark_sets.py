"""benchmark sets: the items decontamination compares generated data with

Follows the hand-off migration (0003_handoff).

Revision ID: 0005_benchmark_sets
Revises: 0004_dataset_handoff
Create Date: 2026-11-28 09:40:00.000000
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0005_benchmark_sets'
down_revision = "0004_dataset_handoff"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('benchmark_sets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('source_format', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('item_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('benchmark_sets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_benchmark_sets_owner'), ['owner'], unique=False)

    op.create_table('benchmark_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('benchmark_set_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('item', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('prompt', sa.Text(), nullable=False),
    sa.Column('output', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['benchmark_set_id'], ['benchmark_sets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('benchmark_set_id', 'position')
    )
    with op.batch_alter_table('benchmark_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_benchmark_items_benchmark_set_id'), ['benchmark_set_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('benchmark_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_benchmark_items_benchmark_set_id'))

    op.drop_table('benchmark_items')
    with op.batch_alter_table('benchmark_sets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_benchmark_sets_owner'))

    op.drop_table('benchmark_sets')
