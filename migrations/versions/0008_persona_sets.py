"""persona sets: the people a persona job writes tasks as

Revision ID: 0008_persona_sets
Revises: 0007_conversation_turns
Create Date: 2026-12-06 08:00:00.000000
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0008_persona_sets'
down_revision = "0007_conversation_turns"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('persona_sets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('source_format', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('persona_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('persona_sets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_persona_sets_owner'), ['owner'], unique=False)

    op.create_table('personas',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('persona_set_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['persona_set_id'], ['persona_sets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('persona_set_id', 'position')
    )
    with op.batch_alter_table('personas', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_personas_persona_set_id'), ['persona_set_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('personas', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_personas_persona_set_id'))
    op.drop_table('personas')
    with op.batch_alter_table('persona_sets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_persona_sets_owner'))
    op.drop_table('persona_sets')
