"""import runs and rejections; history rows keep their source record

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 15:42:21.285954
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('import_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('origin', sa.Text(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('records_done', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('merged', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('customers_merged', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_runs'))
    )
    with op.batch_alter_table('import_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_import_runs_fingerprint'), ['fingerprint'], unique=False)

    op.create_table('import_rejections',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=True),
    sa.Column('external_id', sa.String(length=128), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['import_runs.id'], name=op.f('fk_import_rejections_run_id_import_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_rejections'))
    )
    with op.batch_alter_table('import_rejections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_import_rejections_run_id'), ['run_id'], unique=False)

    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_record_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_incidents_source_record_id'), ['source_record_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_incidents_source_record_id_source_records'), 'source_records', ['source_record_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_record_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_interactions_source_record_id'), ['source_record_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_interactions_source_record_id_source_records'), 'source_records', ['source_record_id'], ['id'], ondelete='SET NULL')




def downgrade() -> None:

    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_interactions_source_record_id_source_records'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_interactions_source_record_id'))
        batch_op.drop_column('source_record_id')

    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_incidents_source_record_id_source_records'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_incidents_source_record_id'))
        batch_op.drop_column('source_record_id')

    with op.batch_alter_table('import_rejections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_import_rejections_run_id'))

    op.drop_table('import_rejections')
    with op.batch_alter_table('import_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_import_runs_fingerprint'))

    op.drop_table('import_runs')

