"""amber's tables (SQLAlchemy Core). Alembic migrations in ``migrations/`` create them.

Changing a table here means adding a migration in the same commit; a test compares the
migrated schema with these definitions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


#: Row ids and the columns that refer to them: 64-bit on every backend. (SQLite's INTEGER
#: PRIMARY KEY already is, and must stay INTEGER to be the rowid; PostgreSQL's is 32-bit.)
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone of its own)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: amber stores UTC-aware times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


banks = sa.Table(
    "banks",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("threshold", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Share (percent) of a banked video's frames a posted video must cover to match it.
    sa.Column("video_percent", sa.Integer, nullable=False, server_default="80"),
    # Share (0 to 1) of the bank's entries that match (HMA's matching_enabled_ratio);
    # 0 is a disabled bank.
    sa.Column("enabled_ratio", sa.Float, nullable=False, server_default="1.0"),
    # Keypoint pairs on one homography a local-feature match needs (amber.signals.local).
    sa.Column("min_inliers", sa.Integer, nullable=False, server_default="16"),
)

bank_entries = sa.Table(
    "bank_entries",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column(
        "bank_id",
        Id,
        sa.ForeignKey("banks.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    # Where the entry came from: the file name it was hashed from, or "FILE:ROW" of an import.
    sa.Column("source", sa.Text, nullable=False),
    # Overrides the bank's label for this entry (imports may carry one per row).
    sa.Column("label", sa.String(200), nullable=True),
    sa.Column("added_at", UTCDateTime, nullable=False),
    # A curator's note (HMA's limit: 255 characters).
    sa.Column("note", sa.String(255), nullable=True),
    # Where the content lives on the platform or upstream, and free metadata (JSON).
    sa.Column("content_id", sa.String(500), nullable=True),
    sa.Column("content_uri", sa.Text, nullable=True),
    sa.Column("metadata", sa.JSON, nullable=True),
    # The entry does not match before this time (a suspected false positive, say).
    sa.Column("disabled_until", UTCDateTime, nullable=True),
)

#: Every change to a bank or its entries. Keyed by the bank's name, not its id, so that
#: a deleted bank's history stays.
bank_audit = sa.Table(
    "bank_audit",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("bank", sa.String(200), nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("entry_id", Id, nullable=True),
    sa.Column("detail", sa.JSON, nullable=False),
)

entry_signals = sa.Table(
    "entry_signals",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column(
        "entry_id",
        Id,
        sa.ForeignKey("bank_entries.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("signal_type", sa.String(40), nullable=False),
    sa.Column("signal_version", sa.Integer, nullable=False),
    sa.Column("value", sa.String(512), nullable=False),
    sa.Column("quality", sa.Integer, nullable=True),
    # "original" for the entry's own hash; other names for robust-matching views.
    sa.Column("variant", sa.String(60), nullable=False),
    sa.Index("ix_entry_signals_type_value", "signal_type", "value"),
    # A matcher's sync asks for a type's rows above an id (migration 0017).
    sa.Index("ix_entry_signals_type_id", "signal_type", "id"),
    # Row ids key the PDQ index on disk: never reuse one.
    sqlite_autoincrement=True,
)


def _decided() -> list[sa.Column[Any]]:
    """The columns of a decided version of a post, shared by ``decisions`` (the newest)
    and ``decision_versions`` (the earlier ones): verdict to when it was created."""
    return [
        sa.Column("verdict", sa.String(20), nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("actions", sa.JSON, nullable=False),
        sa.Column("post", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("policy", sa.String(200), nullable=False),
        sa.Column("amber_version", sa.String(40), nullable=False),
        sa.Column("first_scanned_at", UTCDateTime, nullable=False),
        sa.Column("scanned_at", UTCDateTime, nullable=False),
        sa.Column("scan_count", sa.Integer, nullable=False),
        sa.Column("author", sa.String(500), nullable=True),
        sa.Column("reply_to", sa.String(500), nullable=True),
        # When the post says it was created (input order is not the order of events).
        sa.Column("created_at", UTCDateTime, nullable=True),
    ]


decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", Id, primary_key=True),
    # A post id is unique per client (the API token's name; ``_local`` for the command
    # line and the library): two clients' "p1" are two posts.
    sa.Column("client", sa.String(200), nullable=False, server_default="_local"),
    sa.Column("post_id", sa.String(500), nullable=False),
    # This row is the post's newest version; earlier ones are in ``decision_versions``.
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    # SHA-256 of the content decided (``amber.identity.content_digest``); ``None`` for
    # decisions stored before migration 0007.
    sa.Column("content_digest", sa.String(64), nullable=True),
    *_decided(),
    # The review queue: when a person must have acted (a poll's closing time), whether a
    # life is at stake, and where the review stands (none, pending, confirmed, rejected,
    # escalated; reversed on the user's appeal).
    sa.Column("deadline", UTCDateTime, nullable=True),
    sa.Column("threat_to_life", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("review_state", sa.String(20), nullable=False, server_default="none"),
    # When the latest removal order for this version of the post arrived (EU 2021/784
    # Art. 3): an ordered version needs its evidence whatever the verdict.
    sa.Column("removal_ordered_at", UTCDateTime, nullable=True),
    sa.Index("ix_decisions_author", "author"),
    sa.Index("ix_decisions_review_state", "review_state"),
    sa.UniqueConstraint("client", "post_id"),
)

#: Earlier versions of a post: when new content arrives under a known (client, post id),
#: the decision it had moves here unchanged and the new content is decided as the next
#: version (``decisions`` holds the newest).
decision_versions = sa.Table(
    "decision_versions",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("client", sa.String(200), nullable=False),
    sa.Column("post_id", sa.String(500), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("content_digest", sa.String(64), nullable=True),
    *_decided(),
    sa.Column("review_state", sa.String(20), nullable=False),
    sa.Column("superseded_at", UTCDateTime, nullable=False),
    # ``decisions.removal_ordered_at`` of the version, as it was when it was superseded.
    sa.Column("removal_ordered_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("client", "post_id", "version"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    # SHA-256 of the token: the token itself is shown once and never stored.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("scopes", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
)

review_locks = sa.Table(
    "review_locks",
    metadata,
    sa.Column("post_id", sa.String(500), primary_key=True),
    sa.Column("reviewer", sa.String(200), nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

review_outcomes = sa.Table(
    "review_outcomes",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("post_id", sa.String(500), nullable=False, index=True),
    # Whose post (``decisions.client``): another client's post of the same id is not it.
    sa.Column("client", sa.String(200), nullable=False, server_default="_local"),
    sa.Column("reviewer", sa.String(200), nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("action", sa.String(40), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("bank", sa.String(200), nullable=True),
    sa.Column("decided_at", UTCDateTime, nullable=False),
    # The bank entries this step added (a confirmation into a bank) or deleted (``unbank``).
    sa.Column("entries", sa.JSON, nullable=True),
    # The earlier step this one is about: the outcome a ``reopen`` reopened, the
    # confirmation whose entries an ``unbank`` deleted.
    sa.Column("refers_to", Id, nullable=True),
)

#: Appeals (EU DSA Art. 20): a user's complaint against a restriction of their post, one
#: open at a time per post, decided by a reviewer who did not decide the post
#: (``amber.review.appeals``). ``statement`` is the PUID of the statement of reasons in force
#: when it was filed and ``decision_at`` when that decision was taken (appeals are taken for
#: six months after it); ``due_at`` the target for an answer. Status: open, upheld or
#: reversed; ``action`` is ``restore`` when the reversal restored the post.
appeals = sa.Table(
    "appeals",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("client", sa.String(200), nullable=False),
    sa.Column("post_id", sa.String(500), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("statement", sa.String(500), nullable=False),
    sa.Column("decision_at", UTCDateTime, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    # Who sent it: ``token:<name>`` (the platform, on the user's behalf) or ``cli:<user>``.
    sa.Column("filed_by", sa.String(200), nullable=False),
    sa.Column("filed_at", UTCDateTime, nullable=False),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("reviewer", sa.String(200), nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("action", sa.String(40), nullable=True),
    sa.Column("decided_at", UTCDateTime, nullable=True),
    sa.Index("ix_appeals_client_post_id", "client", "post_id"),
    sa.Index("ix_appeals_status_due_at", "status", "due_at"),
    # One open appeal per post: a second one while the first waits is refused.
    sa.Index(
        "uq_appeals_open_post",
        "client",
        "post_id",
        unique=True,
        sqlite_where=sa.text("status = 'open'"),
        postgresql_where=sa.text("status = 'open'"),
    ),
)

post_media = sa.Table(
    "post_media",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column(
        "decision_id",
        Id,
        sa.ForeignKey("decisions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("width", sa.Integer, nullable=True),
    sa.Column("height", sa.Integer, nullable=True),
    sa.UniqueConstraint("decision_id", "position"),
)

#: The signal values of each decided post's media (``post_media.position``), one row per
#: value of every media signal type, plug-ins' included. Only each file's own values
#: (variant ``"original"``, and a video's original frames) are kept; the views robust
#: matching adds are not.
media_signals = sa.Table(
    "media_signals",
    metadata,
    sa.Column(
        "decision",
        Id,
        sa.ForeignKey("decisions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("signal_type", sa.String(40), nullable=False),
    sa.Column("value", sa.String(512), nullable=False),
    sa.Column("quality", sa.Integer, nullable=True),
    sa.Column("variant", sa.String(60), nullable=False),
    sa.PrimaryKeyConstraint("decision", "position", "signal_type", "variant", "value"),
    sa.Index("ix_media_signals_signal_type_value", "signal_type", "value"),
)

#: One row, written when the schema is first created: which database this is. Caches
#: derived from it (the PDQ index) record it and are rebuilt when it changes.
database_instance = sa.Table(
    "database_instance",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

#: A hash-sharing source that fills a bank: an exchange of one of python-threatexchange's
#: API types (``SignalExchangeAPI.get_name()``), with that API's settings, where its next
#: fetch resumes and how its fetches went (``amber.exchanges``).
exchanges = sa.Table(
    "exchanges",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("api", sa.String(100), nullable=False),
    # The bank it fills: deleting the bank deletes the exchange.
    sa.Column(
        "bank_id", Id, sa.ForeignKey("banks.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    # The API's collaboration settings (its config dataclass but name, api and enabled).
    sa.Column("config", sa.JSON, nullable=False),
    # Where the API's server is, for API types whose client takes one (ThreatExchange's).
    sa.Column("endpoint", sa.Text, nullable=True),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Where the next fetch resumes (the API's checkpoint dataclass as JSON), and the upstream
    # time it has reached, if the API says.
    sa.Column("checkpoint", sa.JSON, nullable=True),
    sa.Column("checkpoint_at", UTCDateTime, nullable=True),
    # Fetches that start from nothing (the first, a stale checkpoint, an API that always
    # sends everything) count up ``generation``; ``sweep_generation`` is the one whose end
    # deletes the records it did not see.
    sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
    sa.Column("sweep_generation", sa.Integer, nullable=True),
    # Set while a batch's new entries may be in the bank but not yet in ``exchange_items``:
    # the largest entry id before them (a crashed batch's entries are above it).
    sa.Column("recover_after", Id, nullable=True),
    # The fetch under way: when it started, and when it last showed it was alive.
    sa.Column("running_since", UTCDateTime, nullable=True),
    sa.Column("heartbeat_at", UTCDateTime, nullable=True),
    # The last fetch: when, whether it succeeded, its error and counts; up to date is true
    # when it read all the source had.
    sa.Column("last_started_at", UTCDateTime, nullable=True),
    sa.Column("last_ended_at", UTCDateTime, nullable=True),
    sa.Column("last_succeeded", sa.Boolean, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_counts", sa.JSON, nullable=True),
    sa.Column("up_to_date", sa.Boolean, nullable=False, server_default=sa.false()),
    # Over every fetch: how many ran, how many failed, how many updates came.
    sa.Column("fetches", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("fetched_total", sa.BigInteger, nullable=False, server_default="0"),
)

#: Each upstream record an exchange holds, by the API's key: the bank entry it is (none
#: while an opinion keeps it out, or once it was deleted here), the opinion it carries and
#: a digest of its values (a change replaces the entry).
exchange_items = sa.Table(
    "exchange_items",
    metadata,
    sa.Column("exchange_id", Id, sa.ForeignKey("exchanges.id", ondelete="CASCADE"), nullable=False),
    # SHA-256 of ``key``, the API's record key as JSON.
    sa.Column("key_digest", sa.String(64), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    # banked (``entry_id`` is its entry), held (an opinion keeps it out) or removed (its
    # entry was deleted here: a fetch does not bring it back).
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("opinion", sa.String(40), nullable=False),
    sa.Column("entry_id", Id, nullable=True, index=True),
    sa.Column("values_digest", sa.String(64), nullable=False),
    # The ``exchanges.generation`` of the last fetch that sent it.
    sa.Column("seen", sa.Integer, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint("exchange_id", "key_digest"),
)

#: Credentials of an exchange API type, shared by its exchanges (as HMA keeps them): the
#: API's credential dataclass as JSON. Never shown: the CLI and API say only whether set.
exchange_credentials = sa.Table(
    "exchange_credentials",
    metadata,
    sa.Column("api", sa.String(100), primary_key=True),
    sa.Column("credentials", sa.JSON, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

#: A receiver of amber's events (``amber.webhooks``): the URL deliveries are POSTed to, the
#: secret they are signed with (stored as given: HMAC-SHA256 needs the secret itself), the
#: events it takes, and the one client whose posts it hears of (``None``: every client's).
webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("events", sa.JSON, nullable=False),
    sa.Column("client", sa.String(200), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Who added it: ``cli:<user>`` or ``token:<name>``.
    sa.Column("created_by", sa.String(200), nullable=False),
    # Over every delivery: how many were delivered, how many attempts failed (counters for
    # Prometheus, kept here so that every delivering process adds to the same count).
    sa.Column("delivered", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("failures", sa.BigInteger, nullable=False, server_default="0"),
)

#: The outbox: one row per event per webhook, written in the transaction of the change it
#: tells of, and sent from here (``amber.webhook_delivery``). ``delivery`` is the id every
#: attempt carries in ``X-Amber-Delivery``; ``body`` the exact bytes signed and sent (UTF-8
#: JSON). State: pending (to send, or to retry at ``next_attempt_at``), delivered, or
#: failed (given up after the most attempts; a hand retry makes it pending again). A sender
#: claims a row by its lease (``leased_by`` until ``leased_until``).
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("delivery", sa.String(36), nullable=False, unique=True),
    sa.Column("webhook_id", Id, sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("event", sa.String(20), nullable=False),
    # The post it is about (``None`` for an event about no post): one post's deliveries to
    # one webhook are sent in order.
    sa.Column("client", sa.String(200), nullable=True),
    sa.Column("post_id", sa.String(500), nullable=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("leased_by", sa.String(100), nullable=True),
    sa.Column("leased_until", UTCDateTime, nullable=True),
    sa.Column("last_attempt_at", UTCDateTime, nullable=True),
    # The last attempt's HTTP status (``None``: no answer) and what went wrong.
    sa.Column("last_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("delivered_at", UTCDateTime, nullable=True),
    sa.Index("ix_webhook_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_webhook_id_client_post_id", "webhook_id", "client", "post_id"),
)

#: Incidents (issue 15, point 3): the posts of one harm linked as they are decided, a poll,
#: its announcement, the result photos and the re-uploads by others (``amber.incidents``).
#: ``escalation`` is the one escalation to the authorities for a threat to life (DSA Art.
#: 18), made when the first member threatening life joined; ``escalation_logged_at`` when
#: its custody event was logged. An incident merged into another names it in
#: ``merged_into`` and has no members left.
incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("client", sa.String(200), nullable=False),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("escalated_at", UTCDateTime, nullable=True),
    sa.Column("escalation", sa.JSON, nullable=True),
    sa.Column("escalation_logged_at", UTCDateTime, nullable=True),
    sa.Column("merged_into", Id, nullable=True),
    sa.Index("ix_incidents_client_updated_at", "client", "updated_at"),
    sqlite_autoincrement=True,
)

#: A post in an incident (at most one), with why it was linked: ``why`` is a list of
#: ``{"to": post id, "by": reply|replied_by|author|entry|sha256|pdq|threat_to_life, ...}``.
incident_members = sa.Table(
    "incident_members",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("incident_id", Id, nullable=False),
    sa.Column("client", sa.String(200), nullable=False),
    sa.Column("post_id", sa.String(500), nullable=False),
    sa.Column("why", sa.JSON, nullable=False),
    sa.Column("linked_at", UTCDateTime, nullable=False),
    sa.Index("ix_incident_members_incident_id", "incident_id"),
    sa.UniqueConstraint("client", "post_id"),
)

#: What a flagged post (review or stronger) can be linked by later: ``entry:<bank entry
#: id>`` for each bank entry it matched, ``sha256:<hex>`` for each of its media files.
incident_keys = sa.Table(
    "incident_keys",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("client", sa.String(200), nullable=False),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("post_id", sa.String(500), nullable=False),
    sa.Column("seen_at", UTCDateTime, nullable=False),
    sa.Index("ix_incident_keys_client_key", "client", "key"),
    sa.UniqueConstraint("client", "post_id", "key"),
)

#: The custody logs kept in the database (``amber.evidence.dblog``): one row per vault,
#: its ``origin`` (the log's name) and ``size``, the number of records appended. Each
#: append adds one to ``size`` in the appending transaction (``UPDATE ... RETURNING``), so
#: the row's lock orders the appends and a rolled-back one leaves no gap.
custody_logs = sa.Table(
    "custody_logs",
    metadata,
    sa.Column("origin", sa.String(200), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
)

#: One record of a custody log: ``seq`` is its leaf index in the RFC 9162 tree (0 first),
#: ``body`` its canonical JSON (the leaf's bytes), ``leaf_hash`` SHA-256(0x00 ‖ body).
custody_records = sa.Table(
    "custody_records",
    metadata,
    sa.Column("origin", sa.String(200), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("appended_at", UTCDateTime, nullable=False),
)

#: A signed checkpoint of a custody log (C2SP signed note text) for its first ``size``
#: records, signed by the one process holding the log's advisory lock.
custody_checkpoints = sa.Table(
    "custody_checkpoints",
    metadata,
    sa.Column("origin", sa.String(200), primary_key=True),
    sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("root", sa.LargeBinary(32), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("signed_at", UTCDateTime, nullable=False),
)
