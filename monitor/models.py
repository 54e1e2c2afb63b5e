"""SQLAlchemy declarations only: no queries here (they live in :mod:`monitor.store`).

Every change to these classes needs an Alembic revision; ``make test`` runs
``alembic check`` to prove the two agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so migrations are reproducible on every backend.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TEXT_SOURCES = ("page", "feed_content", "feed_summary", "title", "none")
ITEM_STATUSES = ("new", "duplicate")
DEDUP_METHODS = ("guid", "url", "exact", "near")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware values")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# BIGINT on PostgreSQL; SQLite only auto-increments a column declared INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class Feed(Base):
    """A feed from the config, and the state of fetching it."""

    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    url: Mapped[str] = mapped_column(Text, unique=True)  # as configured: the feed's identity
    name: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    interval_seconds: Mapped[int] = mapped_column(Integer)
    # Where a permanent redirect moved the feed; fetched instead of `url` while the
    # configured URL still leads there (asked again daily, and after a failure).
    fetch_url: Mapped[str | None] = mapped_column(Text)
    fetch_url_checked_at: Mapped[datetime | None]
    title: Mapped[str | None] = mapped_column(Text)  # as the feed names itself
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    body_hash: Mapped[str | None] = mapped_column(String(64))
    last_attempt_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    parse_warning: Mapped[str | None] = mapped_column(Text)  # a malformed-but-usable feed
    next_poll_at: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime]
    # Adaptive polling: the interval now in use, between interval_seconds (the floor) and
    # max_interval_seconds (the ceiling); null until the first poll.
    poll_interval_seconds: Mapped[int | None] = mapped_column(Integer)
    max_interval_seconds: Mapped[int | None] = mapped_column(Integer)
    last_changed_at: Mapped[datetime | None]  # the last poll that found new entries
    # The worker polling it now, and until when its claim holds unless renewed.
    lease_owner: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None]
    # When the soonest of its entries waiting for a page retry is due (null: none waits).
    entries_retry_at: Mapped[datetime | None]
    # `monitor feeds forget`: gone from every listing; the row stays only because stored
    # items name it (a feed with no items is deleted instead). Null: a feed as usual.
    forgotten_at: Mapped[datetime | None]


class Entry(Base):
    """A feed entry found but not yet stored: recorded, with what the feed said of it,
    when its feed is parsed (``attempts`` 0), and kept until it is stored as an item,
    across a shutdown or a crash and while its page, failed for a reason that may pass,
    waits to be tried again (``next_attempt_at``). Claimed like a feed: a worker works
    on it under a lease (``lease_owner``, ``lease_until``), and any worker may claim it
    once it is due and no live lease holds it."""

    __tablename__ = "entries"

    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"),
                                         primary_key=True, autoincrement=False)
    guid: Mapped[str] = mapped_column(Text, primary_key=True)
    link: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None]
    content: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(16))  # the feed's
    attempts: Mapped[int] = mapped_column(Integer)  # page fetches tried so far
    next_attempt_at: Mapped[datetime] = mapped_column(index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None]
    # Found by its feed's first parse: the feed's backlog (see FeedSettings.alert_backlog).
    backlog: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)


class Seed(Base):
    """An article of the seed corpus: known before any feed is polled."""

    __tablename__ = "seeds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)  # file name
    title: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    file_sha256: Mapped[str] = mapped_column(String(64))
    text_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    source_url: Mapped[str | None] = mapped_column(Text, index=True)  # canonical form
    published_at: Mapped[datetime | None]
    loaded_at: Mapped[datetime]
    story_id: Mapped[int | None] = mapped_column(ForeignKey("stories.id"), index=True)


class Story(Base):
    """The write-ups of one event, across outlets (monitor.stories): what its articles
    say, summed (``centroid``, JSON), and when it was reported."""

    __tablename__ = "stories"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    title: Mapped[str | None] = mapped_column(Text)  # its first article's
    language: Mapped[str | None] = mapped_column(String(16))
    first_at: Mapped[datetime]  # its earliest article's time (published, else first seen)
    last_at: Mapped[datetime] = mapped_column(index=True)  # its latest article's
    items: Mapped[int] = mapped_column(Integer)  # articles, copies included
    created_at: Mapped[datetime]
    centroid: Mapped[str] = mapped_column(Text)


class StoryTerm(Base):
    """A story's heaviest terms: the index by which an article finds its candidates.
    The primary key is the lookup index (``term`` first; WITHOUT ROWID on SQLite)."""

    __tablename__ = "story_terms"
    __table_args__ = (Index(None, "story_id"), {"sqlite_with_rowid": False})

    term: Mapped[str] = mapped_column(Text, primary_key=True)
    story_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("stories.id", ondelete="CASCADE"), primary_key=True,
        autoincrement=False)


class TermFrequency(Base):
    """In how many stored articles each term occurs, per space (0: all words, 1: names);
    the row (0, "") counts the articles. Kept up to date in batches by each worker."""

    __tablename__ = "term_frequencies"
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012

    space: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    term: Mapped[str] = mapped_column(Text, primary_key=True)
    docs: Mapped[int] = mapped_column(BigInteger)


class Item(Base):
    """One feed entry, with its article text and dedup verdict."""

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("feed_id", "guid"),
        CheckConstraint(_in("status", ITEM_STATUSES), name="status"),
        CheckConstraint(_in("text_source", TEXT_SOURCES), name="text_source"),
        CheckConstraint(f"dedup_method IS NULL OR {_in('dedup_method', DEDUP_METHODS)}",
                        name="dedup_method"),
        CheckConstraint(
            "(status = 'new' AND duplicate_of_item_id IS NULL AND duplicate_of_seed_id IS NULL)"
            " OR (status = 'duplicate' AND dedup_method IS NOT NULL AND"
            " (duplicate_of_item_id IS NULL) <> (duplicate_of_seed_id IS NULL))",
            name="duplicate_of",
        ),
        Index("ix_items_status_created_at", "status", "created_at"),
        # One original per canonical URL and per text: what the story's locks ensure
        # (monitor.store.items.lock_story_keys), kept by the database too.
        Index("uq_items_original_canonical_url", "canonical_url", unique=True,
              sqlite_where=text("status = 'new'"), postgresql_where=text("status = 'new'")),
        Index("uq_items_original_text_hash", "text_hash", unique=True,
              sqlite_where=text("status = 'new'"), postgresql_where=text("status = 'new'")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id"), index=True)
    guid: Mapped[str] = mapped_column(Text, index=True)  # also looked up across feeds
    url: Mapped[str | None] = mapped_column(Text)  # the entry's link as the feed gave it
    final_url: Mapped[str | None] = mapped_column(Text)  # after redirects, when fetched
    canonical_url: Mapped[str | None] = mapped_column(Text, index=True)
    title: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None]
    fetched_at: Mapped[datetime | None]  # when the page was fetched; null if it was not
    created_at: Mapped[datetime]
    language: Mapped[str | None] = mapped_column(String(16))
    site_name: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text, default="")
    text_source: Mapped[str] = mapped_column(String(16))
    text_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    page_status: Mapped[int | None] = mapped_column(Integer)
    page_error: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    duplicate_of_item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id"), index=True)
    duplicate_of_seed_id: Mapped[int | None] = mapped_column(ForeignKey("seeds.id"), index=True)
    dedup_method: Mapped[str | None] = mapped_column(String(16))
    similarity: Mapped[float | None] = mapped_column(Float)
    # Found by its feed's first parse (see Entry.backlog): for `rules test` to say why
    # such an item did not alert when its feed has alert_backlog = false.
    backlog: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    # When [retention] removed its text (now ""); its hash, band keys and shingle sketch
    # (ItemSketch) stay, so that a late copy is still recognised.
    text_pruned_at: Mapped[datetime | None]
    # The story it reports (a copy: its original's). Null only until the start-up after
    # an upgrade has given every stored item one (monitor.stories.joining).
    story_id: Mapped[int | None] = mapped_column(ForeignKey("stories.id"), index=True)


class ItemBand(Base):
    """One LSH band key of an item's MinHash signatures: the near-duplicate index.

    The primary key is the lookup index (``key`` first); on SQLite the table is
    WITHOUT ROWID, so that index is the whole table. Only originals and near
    duplicates are indexed: an exact, URL or GUID copy adds nothing to find.
    """

    __tablename__ = "item_bands"
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012 (SQLAlchemy's API)

    key: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    item_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)


class ItemSketch(Base):
    """What near-dedup keeps of an indexed item whose text was pruned: its shingle
    hashes (32-bit, sorted, delta-coded, compressed: see
    :func:`monitor.dedup.fingerprint.sketch`) and word count, enough to verify a
    candidate exactly as its text would."""

    __tablename__ = "item_sketches"

    item_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    words: Mapped[int] = mapped_column(Integer)
    shingles: Mapped[bytes] = mapped_column(LargeBinary)


class SeedBand(Base):
    """An LSH band key of a seed (see :class:`ItemBand`)."""

    __tablename__ = "seed_bands"
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012

    key: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    seed_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("seeds.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)


class Meta(Base):
    """Small facts about the stored data, such as which fingerprint version the
    band keys were computed with (a different version means: re-index)."""

    __tablename__ = "meta"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Rule(Base):
    """An alert rule as last loaded from the config."""

    __tablename__ = "rules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    query: Mapped[str] = mapped_column(Text)
    recipients: Mapped[list[str]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)  # false once gone from config
    updated_at: Mapped[datetime]
    # The config's backfill last applied to this rule ("<window> <query>"): applied once,
    # again only when the window or the query changes (monitor.service.backfill).
    backfill_key: Mapped[str | None] = mapped_column(Text)


class Alert(Base):
    """A rule matching a new item: stored once per rule and item, sent in a digest."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("rule_id", "item_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    query: Mapped[str] = mapped_column(Text)  # the rule's query when it matched: rules change
    terms: Mapped[list[str]] = mapped_column(JSON)  # the query's terms that matched
    snippet: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]  # when a digest carrying it was first accepted by SMTP
    # Raised by a backfill (`rules backfill`, a rule's `backfill` key) on an item stored
    # before the rule could see it; the digest says so.
    backfilled: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)


class AlertFeedback(Base):
    """A reviewer's verdict on an alert (the review page, or its API): relevant or not,
    who said so and when. One per alert: a later verdict replaces the earlier one."""

    __tablename__ = "alert_feedback"

    alert_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    relevant: Mapped[bool] = mapped_column(Boolean)
    by: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(index=True)


class Digest(Base):
    """One digest email to one recipient. Composed once and stored whole, so every
    attempt sends the same bytes with the same Message-ID; pending until the SMTP
    server accepts it (``sent_at``), retried at ``next_attempt_at`` after a failure."""

    __tablename__ = "digests"
    __table_args__ = (Index(None, "sent_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    recipient: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(Text, unique=True)
    subject: Mapped[str] = mapped_column(Text)
    message: Mapped[bytes] = mapped_column(LargeBinary)  # the RFC 5322 message, as sent
    alerts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    # The worker sending it now, and until when its claim holds.
    lease_owner: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None]
    # Given up: the server refused it for good (see monitor.digest.delivery); never
    # tried again, its reason in last_error. Null while pending or once sent.
    failed_at: Mapped[datetime | None]


class DigestAlert(Base):
    """Which alerts a digest carries. Unique per alert and recipient: no alert reaches
    a recipient in two digests, even when two workers compose at once."""

    __tablename__ = "digest_alerts"
    __table_args__ = (UniqueConstraint("alert_id", "recipient"),)

    digest_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("digests.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    alert_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    recipient: Mapped[str] = mapped_column(Text)


class FreedAlert(Base):
    """An alert a failed digest gave back to its recipient's next digest: once only, so
    an alert that no digest can carry does not go round for ever."""

    __tablename__ = "freed_alerts"

    alert_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    recipient: Mapped[str] = mapped_column(Text, primary_key=True)


class ChannelAlert(Base):
    """An alert a ``[[channels]]`` channel is to be told of: written in the transaction
    that stores the alert (so none is lost), then put in a message (``message_id``).
    One per channel and alert, whichever worker stored it."""

    __tablename__ = "channel_alerts"
    __table_args__ = (Index(None, "channel", "message_id"),)

    channel: Mapped[str] = mapped_column(Text, primary_key=True)
    alert_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    message_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("channel_messages.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]


class ChannelMessage(Base):
    """One message to a channel: the first news of a story (or of an item, with stories
    off), or a follow-up with the story's later reports. Its alerts are fixed when it is
    made, and its ``key`` (the idempotency key, from the channel and its first alert) goes
    with every attempt. Pending until the channel accepts it; retried at
    ``next_attempt_at``; dead after ``[[channels]] attempts`` failures or a refusal."""

    __tablename__ = "channel_messages"
    __table_args__ = (Index(None, "channel", "state", "next_attempt_at"),
                      Index(None, "channel", "story_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(Text, unique=True)
    story_id: Mapped[int | None] = mapped_column(BigInteger)  # not a key: stories are pruned
    item_id: Mapped[int | None] = mapped_column(BigInteger)  # the first alert's item
    follow_up: Mapped[bool] = mapped_column(Boolean, default=False)
    alerts: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_attempt_at: Mapped[datetime | None]
    last_status: Mapped[int | None] = mapped_column(Integer)  # the channel's HTTP status
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None]


class ChannelState(Base):
    """A channel's sending budget, shared by every worker: how many messages went out in
    the current minute, and until when it is paused (a 429's Retry-After)."""

    __tablename__ = "channel_state"

    channel: Mapped[str] = mapped_column(Text, primary_key=True)
    window_start: Mapped[datetime]
    sent_in_window: Mapped[int] = mapped_column(Integer, default=0)
    paused_until: Mapped[datetime | None]


class Worker(Base):
    """A ``monitor run`` process, for ``monitor status`` and to name lease owners.
    Rows of stopped or dead workers stay, with their last heartbeat."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)  # host:pid:random
    hostname: Mapped[str] = mapped_column(Text)
    pid: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    stopped_at: Mapped[datetime | None]  # a clean exit; null while running or after a crash
    # Settings.shared_fingerprint of the config it runs, and since when that config has
    # been running on some worker: the newest wins (see monitor.service.startup).
    config_hash: Mapped[str | None] = mapped_column(String(64))
    config_since: Mapped[datetime | None]
