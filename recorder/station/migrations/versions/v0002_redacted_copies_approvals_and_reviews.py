"""Redacted copies of public requests with their approval (four eyes), and the face tracks
found for a redaction's review (kept across restarts).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision: str | None = '0001'
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table('redacted_copies',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('reference', sa.String(length=128), nullable=False),
    sa.Column('recording_id', sa.String(length=128), nullable=False),
    sa.Column('file', sa.String(length=255), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('report_sha256', sa.String(length=64), nullable=False),
    sa.Column('rendered_by', sa.String(length=128), nullable=False),
    sa.Column('rendered_us', sa.BigInteger(), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=True),
    sa.Column('decided_by', sa.String(length=128), nullable=True),
    sa.Column('decided_us', sa.BigInteger(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('approval_sha256', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('reference', 'file')
    )
    with op.batch_alter_table('redacted_copies', schema=None) as batch_op:
        batch_op.create_index('redacted_copies_request', ['reference', 'recording_id'], unique=False)

    op.create_table('redaction_reviews',
    sa.Column('recording_id', sa.String(length=128), nullable=False),
    sa.Column('frames', sa.Integer(), nullable=False),
    sa.Column('duration_s', sa.Float(), nullable=False),
    sa.Column('first_num', sa.BigInteger(), nullable=False),
    sa.Column('first_den', sa.BigInteger(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('detector', sa.Text(), nullable=False),
    sa.Column('found_by', sa.String(length=128), nullable=False),
    sa.Column('found_us', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('recording_id')
    )
    op.create_table('redaction_tracks',
    sa.Column('recording_id', sa.String(length=128), nullable=False),
    sa.Column('track_id', sa.Integer(), nullable=False),
    sa.Column('detections', sa.Text(), nullable=False),
    sa.Column('still', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['recording_id'], ['redaction_reviews.recording_id'], ),
    sa.PrimaryKeyConstraint('recording_id', 'track_id')
    )


def downgrade() -> None:
    raise NotImplementedError("a catalogue is never migrated down: restore the backup taken "
                              "before `bwv station migrate`")
