"""The engine: one object that holds the database, signal types, index and policy.

``open_engine`` is the one factory; the command line, the HTTP service, the reviewer
console and the tests all build their engine with it (``docs/library.md``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from dataclasses import replace as replace_field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from amber import __version__
from amber.accounts import AccountStore
from amber.banks import LOCAL_ACTOR, AddResult, BankStore
from amber.decisions import THREAT_TO_LIFE, Decision, DecisionStore, NewDecision
from amber.errors import AmberError, InternalError, NotFoundError, PostError, UserError
from amber.evidence.acts import Acts
from amber.evidence.checkpoint import read_signing_key
from amber.evidence.staging import ORPHAN_AFTER
from amber.evidence.vault import ACTOR, DEFAULT_RETENTION, EvidenceWriteError, Prepared, Vault
from amber.hashing import Hasher, MediaFailure, MediaHashes, media_types, parallel_map
from amber.identity import DEFAULT_CLIENT, content_digest, item_key
from amber.incidents import Incidents
from amber.matching import Matcher
from amber.policy import (
    Actions,
    Conditions,
    Findings,
    Outcome,
    Policy,
    Reason,
    ReportSettings,
    UserReport,
    Verdict,
    load_policy,
)
from amber.policy.reports import SIGNAL as REPORT_SIGNAL
from amber.post_values import PostValues, compute, stamp
from amber.posts import Post
from amber.review.appeals import Appeals, default_due_days
from amber.review.escalations import Escalations
from amber.review.history import ReviewHistory
from amber.review.queue import ReviewQueue, default_max_locks, plausible_deadline
from amber.signals import Registry, Role, SignalType, SignalValue, load_signal_types
from amber.signals.base import Reads
from amber.statements import Statements
from amber.store.db import connect, database_url, sqlite_path
from amber.store.tables import decision_versions
from amber.store.tables import decisions as decisions_table
from amber.tokens import TokenStore
from amber.webhooks import WebhookStore

if TYPE_CHECKING:
    from amber.evidence.dblog import LogSigner
    from amber.exchanges import ExchangeStore
    from amber.explain import Explanation
    from amber.reports import Filed
    from amber.retrohunt import HuntReport
    from amber.stored_posts import StoredPost
    from amber.webhook_delivery import Deliverer

log = logging.getLogger("amber.engine")

#: How far back the policy may look for posts related to a new one (a harm poll before
#: its announcement); each rule sets its own ``within_hours`` inside this.
CONTEXT_WINDOW = timedelta(days=30)
DEFAULT_DB = "amber.db"
DEFAULT_VAULT = "amber-vault"
SAVE_BATCH = 64
#: A post (or the error in its place) ready to decide (``Engine.decide_hashed``): its
#: media's values or why a file could not be hashed, in media order, and its own signal
#: values when computed ahead (else ``None``).
Ahead = tuple[Post | PostError, Sequence[MediaHashes | MediaFailure], PostValues | None]
#: Threads that decode the media of submitted posts at once (``Engine.hash_media``); the
#: memory they may use together is bounded by ``amber.media.DECODE_MEMORY``.
DECODE_THREADS = 8


@dataclass(frozen=True, slots=True)
class ScanResult:
    """One post scanned: its decision and the hashes of its media."""

    post: Post
    outcome: Outcome
    media: list[MediaHashes]
    #: False when the post already had a decision that was kept (``replace=False``).
    saved: bool = True

    def to_json(self) -> dict[str, Any]:
        """The JSONL contract: post_id, verdict, reasons, actions."""
        return self.outcome.to_json(post_id=self.post.id)


@dataclass(frozen=True, slots=True)
class Submission:
    """What ``Engine.submit`` answered: the post's stored decision, and whether this call
    made it (``False`` for a repeat of a post id, however the first one arrived)."""

    decision: Decision
    new: bool

    def to_json(self) -> dict[str, Any]:
        """The decision's JSONL contract fields, its client and version."""
        return self.decision.to_answer()


@dataclass(frozen=True, slots=True)
class Again:
    """What ``Engine.decide_again`` did with a stored post: its new outcome, whether it
    was stored, and otherwise why (``kept``); ``error`` when something went wrong (the
    evidence could not be kept: then nothing was stored, or it is pending)."""

    outcome: Outcome
    saved: bool
    kept: str | None = None
    error: str | None = None


class EvidencePendingError(EvidenceWriteError):
    """A decision is stored but its evidence could not be written yet (HTTP 503): it is
    staged, and a retry of the post or the sweep (``amber evidence sweep``) finishes it."""


@dataclass(frozen=True, slots=True)
class MissingEvidence:
    """A decision (of any version of a post) that needs evidence (review or stronger, or a
    reviewer's confirmation) and has none in the vault: ``pending`` (staged; the sweep can
    finish it) or ``missing`` (nothing staged: rescan the post with its media to preserve
    it)."""

    post_id: str
    verdict: str
    review_state: str
    state: str
    scanned_at: datetime
    client: str = DEFAULT_CLIENT
    version: int = 1

    @property
    def key(self) -> str:
        """The vault item key its evidence would have (``item_key``)."""
        return item_key(self.post_id, self.client, self.version)

    def to_json(self) -> dict[str, Any]:
        """As ``amber evidence verify`` and ``amber doctor`` report it."""
        return {
            "post_id": self.post_id,
            "client": self.client,
            "version": self.version,
            "key": self.key,
            "verdict": self.verdict,
            "review_state": self.review_state,
            "evidence": self.state,
            "scanned_at": self.scanned_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What ``Engine.sweep_evidence`` did: the items (``item_key``: the post id of a local
    post's first version) preserved, left staged (with why) and staged preservations
    dropped because their decision was never stored."""

    preserved: list[str]
    failed: list[tuple[str, str]]
    discarded: list[str]


#: The verdicts whose posts are preserved as evidence.
PRESERVED_VERDICTS = tuple(v.value for v in Verdict if v.rank >= Verdict.review.rank)


def default_db() -> str:
    """``AMBER_DB`` or ``./amber.db``."""
    return os.environ.get("AMBER_DB") or DEFAULT_DB


def default_vault() -> Path:
    """``AMBER_VAULT`` or ``./amber-vault``."""
    return Path(os.environ.get("AMBER_VAULT") or DEFAULT_VAULT)


def default_signing_key() -> Path | None:
    """``AMBER_SIGNING_KEY``: a signing key kept outside the vault, or ``None`` (the vault's
    own ``keys/checkpoint.key``)."""
    text = os.environ.get("AMBER_SIGNING_KEY")
    return Path(text) if text else None


def default_vault_log() -> str:
    """``AMBER_VAULT_LOG``: where a vault created now keeps its custody log, ``file``
    (the default) or ``database`` (appends in the decision's transaction, no shared folder
    needed; ``docs/evidence.md``). An existing vault says where its log is."""
    chosen = os.environ.get("AMBER_VAULT_LOG", "").strip() or "file"
    if chosen not in ("file", "database"):
        raise UserError(f"AMBER_VAULT_LOG={chosen!r}: give 'file' or 'database'")
    return chosen


def default_vault_objects() -> str | None:
    """``AMBER_VAULT_OBJECTS``: where a vault created now keeps its objects (a folder or
    ``s3://BUCKET/PREFIX``); unset: the vault's own ``objects/``."""
    return os.environ.get("AMBER_VAULT_OBJECTS", "").strip() or None


def default_retention() -> timedelta:
    """``AMBER_RETENTION_DAYS`` days, or six months (EU 2021/784 Art. 6).

    Raises ``UserError`` for a value that is not a whole number of days of at least 1.
    """
    text = os.environ.get("AMBER_RETENTION_DAYS")
    if not text:
        return DEFAULT_RETENTION
    if not text.strip().isdigit() or int(text) < 1:
        raise UserError(f"AMBER_RETENTION_DAYS={text!r} is not a whole number of days >= 1")
    return timedelta(days=int(text))


def default_index_dir(db: str | Path) -> Path:
    """Where the PDQ index of ``db`` lives: beside a SQLite file, else in the user cache."""
    url = database_url(db)
    file = sqlite_path(url)
    if file is not None:
        return file.with_name(file.name + ".index")
    import hashlib

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "amber" / ("index-" + hashlib.sha256(url.encode()).hexdigest()[:16])


class Engine:
    """amber's library entry point. Build it with ``open_engine``."""

    def __init__(
        self,
        *,
        db: sa.Engine,
        vault: Path,
        signing_key: Path | None = None,
        retention: timedelta = DEFAULT_RETENTION,
        policy: Policy,
        signals: Registry[SignalType],
        index_dir: Path,
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.vault_path = vault
        #: The vault's signing key when it is kept outside the vault (``None``: inside).
        self.signing_key = signing_key
        self.retention = retention
        self._vault: Vault | None = None
        #: Where a vault created by this engine keeps its log and objects (``Vault.open``).
        self.vault_log = default_vault_log()
        self.vault_objects = default_vault_objects()
        self.policy = policy
        self.signals = signals
        self.clock = clock
        #: Each signal type's minimum quality under this policy (``None``: no minimum).
        self.min_quality = {s.name: s.quality_floor(policy) for s in signals}
        self.matcher = Matcher(db, signals, index_dir, min_quality=self.min_quality)
        for owner, index in self.matcher.indexes.items():
            signals.get(owner).tune(index, policy)
        self.matcher.always = frozenset(
            s.name for s in signals if s.fallback and s.searched_always(policy)
        )
        self.banks = BankStore(
            db,
            signals,
            on_change=self._banks_changed,
            on_delete=self.matcher.forget,
            clock=clock,
            min_quality=self.min_quality,
            on_import=self._banks_imported,
        )
        self.decisions = DecisionStore(
            db, policy=policy.ref, amber_version=__version__, signals=signals
        )
        self.post_signals = [s for s in signals if s.reads is Reads.post]
        #: What values computed ahead must have been computed by to be taken (``post_values``).
        self._post_stamp = stamp(self.post_signals)
        self._stale_warned = False
        self.media_signals = media_types(signals)
        self.tokens = TokenStore(db, clock=clock)
        #: Custody events for people's acts: removal orders, reviewers' confirmations.
        self.acts = Acts(
            decisions=self.decisions, vault=self.open_vault, vault_path=vault, clock=clock
        )
        self.review = ReviewQueue(
            db,
            clock=clock,
            max_locks=default_max_locks(),
            add_to_bank=self.bank_media,
            custody=self.acts,
            banks=self.banks,
        )
        #: Each post's review history: reopen an outcome, revert the entries it banked.
        self.history = ReviewHistory(self.review, self.banks)
        #: Escalated items until someone owns them, and who does.
        self.escalations = Escalations(self.review)
        #: Incidents: the posts of one harm, linked as they are decided.
        self.incidents = Incidents(db, vault=self.open_vault, clock=clock)
        #: Users' appeals against restrictions (DSA Art. 20) and their outcomes.
        self.appeals = Appeals(
            db,
            statements=Statements(db, policy.statements),
            custody=self.acts,
            clock=clock,
            due_days=default_due_days(),
        )
        #: Webhooks and their outbox; ``deliverer`` sends it.
        self.webhooks = WebhookStore(db, clock=clock)
        #: Authors' records, weighed by the policy's ``[accounts]``.
        self.accounts = AccountStore(db, policy=policy.accounts, clock=clock)
        #: Whether a bank write that adds entries retro-hunts them (``amber.retrohunt``)
        #: at once; ``hunts`` keeps what the last ones did, newest last.
        self.auto_retrohunt = True
        self.hunts: deque[HuntReport] = deque(maxlen=20)
        #: Entries above this row id are new to this engine: the next automatic hunt takes
        #: them (``None``: read when first needed).
        self._hunted_above: int | None = None
        self._hunt_mark = threading.Lock()
        #: One writer at a time in this process for the index and the vault: ``submit``
        #: holds it; other writes (a reviewer's decision, a bank change) take it too. It
        #: may be taken again by the thread holding it (a bank write's retro-hunt).
        self.write_lock = threading.RLock()
        self.mark_entries()
        #: ``submit`` decodes media in these threads (started on first use).
        self._decode_pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def close(self) -> None:
        """Sign what this engine appended to a database custody log (unless another
        process's signer does), release database connections and the decode threads."""
        if self._vault is not None and self._vault.database:
            try:
                self._vault.sign()
            except (AmberError, sa.exc.SQLAlchemyError) as exc:
                log.warning("the custody log could not be signed at close: %s", exc)
        if self._decode_pool is not None:
            self._decode_pool.shutdown(wait=False, cancel_futures=True)
        self.db.dispose()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @cached_property
    def exchanges(self) -> ExchangeStore:
        """The exchanges that keep banks in step with hash-sharing sources (built on first
        use, when python-threatexchange is imported); their bank writes take
        ``write_lock``."""
        from amber.exchanges import ExchangeStore

        # Its bank writes come in batches within a fetch: the fetch's entries are
        # retro-hunted once it ends (``after_fetch``), not batch by batch.
        batches = BankStore(
            self.db,
            self.signals,
            on_change=self.matcher.sync,
            on_delete=self.matcher.forget,
            clock=self.clock,
            min_quality=self.min_quality,
            on_import=self.matcher.take,
        )
        return ExchangeStore(
            self.db,
            batches,
            self.signals,
            clock=self.clock,
            write_lock=self.write_lock,
            after_fetch=self._after_bank_write,
        )

    def deliverer(self, **options: Any) -> Deliverer:
        """A sender of the webhook outbox on this engine's database and clock; ``options``
        are ``Deliverer``'s (``backoff``, ``max_attempts``, ``send``, ...)."""
        from amber.webhook_delivery import Deliverer

        return Deliverer(self.db, **{"clock": self.clock, **options})

    def submit(self, post: Post, *, client: str = DEFAULT_CLIENT) -> Submission:
        """Decide a post of ``client`` once per content: a repeat of its id with the same
        content (text and media bytes) answers the stored decision; new content under
        the id is the post's next version, scanned and decided (the earlier one is kept).

        The media are read, decoded and hashed first, in the engine's decode pool and
        outside any lock, so a slow or large file holds up no other post; the decision is
        then made under ``write_lock``, so threads submitting the same post at once get
        one decision; when another process stored a decision for the same content first,
        its decision stands and is the answer. Unreadable media are in the decision's
        reasons. A decision of review or stronger is stored only once its evidence is
        staged in the vault, and answered once it is preserved; a repeat finishes a
        pending one.

        Raises ``EvidenceWriteError`` (HTTP 503, nothing stored) when the evidence cannot
        be staged, ``EvidencePendingError`` (HTTP 503) when the decision is stored but its
        evidence could not be preserved yet.
        """
        digest = content_digest(post)
        known = self._stored(post.id, client)
        same = known is not None and known.content_digest == digest
        hashed = None if same else self.hash_media(post)
        with self.write_lock:
            known = self._stored(post.id, client)
            if known is not None and known.content_digest == digest:
                self._finish_pending(known)
                return Submission(self.with_evidence(known), new=False)
            if hashed is None:  # its content was stored a moment ago, gone since (expired)
                hashed = self.hash_media(post)
            result = self._decide_hashed(
                post, hashed, replace=False, strict=True, client=client, digest=digest
            )
            stored = self.decisions.get(post.id, client=client)
            if not result.saved:
                self._finish_pending(stored)
        return Submission(self.with_evidence(stored), new=result.saved)

    def _stored(self, post_id: str, client: str) -> Decision | None:
        try:
            return self.decisions.get(post_id, client=client)
        except NotFoundError:
            return None

    def _finish_pending(self, decision: Decision) -> None:
        """Preserve what is staged for ``decision`` (its client's post, its version), if
        anything. Raises ``EvidencePendingError`` if the vault still refuses."""
        if not (self.vault_path / "staging").is_dir():
            return
        try:
            self.open_vault().finish(decision.key)
        except AmberError as exc:
            raise _pending(decision.post_id, decision.verdict.value, exc) from exc

    def hash_media(self, post: Post) -> list[MediaHashes | MediaFailure]:
        """Read, decode and hash each media file of ``post`` in the decode pool (threads:
        Pillow and libjpeg let go of the GIL while they decode), in media order. Decoding
        is bounded per file (``amber.media.MediaLimits``) and its memory shared across the
        process (``amber.media.decode_budget``)."""
        if not post.media:
            return []
        hasher = Hasher(self.media_signals, Role.query)
        with self._pool_lock:
            if self._decode_pool is None:
                self._decode_pool = ThreadPoolExecutor(
                    max_workers=DECODE_THREADS, thread_name_prefix="amber-decode"
                )
            pool = self._decode_pool
        futures = [pool.submit(hasher.one, str(m.file)) for m in post.media]
        return [f.result() for f in futures]

    def scan(
        self,
        items: Iterable[Post | PostError],
        *,
        workers: int | None = None,
        on_item: Callable[[], None] = lambda: None,
        replace: bool = True,
        client: str = DEFAULT_CLIENT,
    ) -> Iterator[ScanResult | PostError]:
        """Decide about each post and store the decision; errors pass through in order.

        Media are hashed in parallel across processes; matching, policy and storage run
        here, in input order. A media file that cannot be read gives a ``PostError`` naming
        the media field, and the post is still decided on what could be read (the policy
        sees the unreadable files too). ``on_item`` is called once per item. Without
        ``replace`` a post whose content already has a decision keeps it (``saved`` is
        False) and nothing is preserved again; new content under a known post id is its
        next version either way. The posts are ``client``'s. A post of review or stronger
        whose evidence cannot be staged in the vault is not stored (a ``PostError`` says
        why); one stored whose evidence could not be preserved yet gives a ``PostError``
        too and stays pending.
        """
        return self._scan(items, workers=workers, on_item=on_item, replace=replace, client=client)

    def _scan(
        self,
        items: Iterable[Post | PostError],
        *,
        workers: int | None = None,
        on_item: Callable[[], None] = lambda: None,
        replace: bool = True,
        client: str = DEFAULT_CLIENT,
    ) -> Iterator[ScanResult | PostError]:
        """``scan``: the media hashed in a process pool, then ``decide_hashed``."""
        queue: deque[Post | PostError] = deque()

        def jobs() -> Iterator[tuple[str, ...]]:
            for item in items:
                queue.append(item)
                yield tuple(str(m.file) for m in item.media) if isinstance(item, Post) else ()

        def hashed() -> Iterator[Ahead]:
            hasher = Hasher(self.media_signals, Role.query)
            for media in parallel_map(hasher, jobs(), workers=workers):
                yield queue.popleft(), media, None

        return self.decide_hashed(hashed(), on_item=on_item, replace=replace, client=client)

    def decide_hashed(
        self,
        items: Iterable[Ahead],
        *,
        on_item: Callable[[], None] = lambda: None,
        replace: bool = True,
        client: str = DEFAULT_CLIENT,
    ) -> Iterator[ScanResult | PostError]:
        """``scan`` of posts whose media are already hashed: ``(post, hashed, values)``
        triples (or a ``PostError`` in place of the post), ``hashed`` each media file's
        values (``Hasher`` in the query role) or why it could not be hashed, in media
        order, and ``values`` the post's own signal values computed ahead
        (``amber.post_values.compute_ahead``; ``None``: computed here, as they are when
        computed by other types or versions than this engine's: see ``post_values``).

        Decides in input order and stores the decisions in batches, as ``scan`` does; the
        same errors for unreadable media and evidence that cannot be kept.
        """
        self.matcher.sync()
        pending: list[tuple[ScanResult, NewDecision]] = []
        for item, hashed, values in items:
            on_item()
            if isinstance(item, PostError):
                yield from self._flush(pending, replace)
                yield item
                continue
            for position, failure in enumerate(hashed):
                if (why := _unreadable(failure)) is not None:
                    yield PostError(
                        f"{failure.path}: {why}",
                        source=item.source or "<post>",
                        line=item.line,
                        field=f"media[{position}].path",
                    )
            if any(_related(item, new) for _, new in pending):
                yield from self._flush(pending, replace)  # its policy may look at them
            pending.append(self._decide(item, hashed, client, computed=values))
            if len(pending) >= SAVE_BATCH:
                yield from self._flush(pending, replace)
        yield from self._flush(pending, replace)

    def decide_post(
        self, post: Post, *, replace: bool = True, client: str = DEFAULT_CLIENT
    ) -> ScanResult:
        """Scan one post of ``client``. Unreadable media are in the decision's reasons, not
        raised.

        Without ``replace``, when another process decided the same content first, its
        decision stands and the result says ``saved=False``.
        """
        for result in self.scan([post], workers=1, replace=replace, client=client):
            if isinstance(result, ScanResult):
                return result
        raise InternalError(f"scanning post {post.id!r} gave no result")

    def decide_again(
        self,
        stored: StoredPost,
        *,
        reports: Sequence[UserReport] = (),
        found_by: str | None = None,
        marked: Callable[[Reason], bool] = lambda reason: False,
        accept: Callable[[Outcome], str | None] = lambda outcome: None,
    ) -> Again:
        """Decide a stored post again (``amber.stored_posts.rebuild``: its stored JSON and
        signal values, no media read) through the normal path, as a rescan of the same
        content: today's banks, policy and related posts, with ``reports`` being filed now
        (``amber.reports``); with ``found_by``, the reasons ``marked`` picks say so. The
        outcome is stored only when ``accept`` finds nothing against it (it returns why
        not); then the evidence is kept, the webhooks are told and a review item is
        queued as for any decision (and, as a rescan of it, keeps what its reasons say of
        how they were first found). Takes ``write_lock``."""
        decision = stored.decision

        def how(reason: Reason) -> str | None:
            return found_by if found_by is not None and marked(reason) else None

        with self.write_lock:
            self.matcher.sync()
            result, new = self._decide(
                stored.post,
                stored.hashed,
                decision.client,
                decision.content_digest,
                reports=reports,
                found_by=how,
                as_of=decision.first_scanned_at,
            )
            why = accept(result.outcome)
            if why is not None:
                return Again(result.outcome, saved=False, kept=why)
            from amber.stored_posts import REDECIDED_METHOD

            errors, saved = [], False
            for item in self._flush([(result, new)], True, method=REDECIDED_METHOD):
                if isinstance(item, PostError):
                    errors.append(item.message)
                else:
                    saved = item.saved
        return Again(result.outcome, saved=saved, error="; ".join(errors) or None)

    def retrohunt(
        self,
        *,
        bank: str | None = None,
        since: datetime | None = None,
        above: int | None = None,
        limit: int | None = None,
    ) -> HuntReport:
        """Decide again the posts of the retention window that match bank entries (of
        ``bank``, added since ``since``, above row id ``above``; every entry by default),
        at most ``limit`` of them (``amber.retrohunt.hunt``). Takes ``write_lock``."""
        from amber.retrohunt import hunt

        with self.write_lock:
            return hunt(self, bank=bank, since=since, above=above, limit=limit)

    def report(
        self,
        post_id: str,
        *,
        category: str,
        text: str,
        reporter: str | None = None,
        client: str = DEFAULT_CLIENT,
    ) -> Filed:
        """File a user's report of ``client``'s post (``amber.reports.file_report``): the
        post is decided again with it, so it goes to a person. Raises ``NotFoundError``
        for a post amber never decided, ``UserError`` for a bad category or text."""
        from amber.reports import file_report

        return file_report(
            self, post_id, category=category, text=text, reporter=reporter, client=client
        )

    def _banks_changed(self) -> None:
        """A bank write committed (``BankStore.on_change``): sync the index, then hunt the
        new entries."""
        self.matcher.sync()
        self._after_bank_write()

    def _banks_imported(self, written: Any) -> None:
        """A bulk import committed (``BankStore.on_import``)."""
        self.matcher.take(written)
        self._after_bank_write()

    def _entry_mark(self) -> int:
        """The largest bank entry row id now (0 for none)."""
        from amber.store.tables import bank_entries

        with self.db.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(bank_entries.c.id))).scalar() or 0)

    def _after_bank_write(self) -> None:
        """Retro-hunt the entries added since this engine last hunted (at most
        ``AUTO_LIMIT`` posts decided again; the rest is logged with the command that
        finishes it). Never raises: a failure is logged, the bank write stands."""
        if not self.auto_retrohunt:
            return
        from amber.retrohunt import AUTO_LIMIT, summary

        with self._hunt_mark:
            if self._hunted_above is None:
                return  # no hunt before the first mark: nothing is new to this engine
            above = self._hunted_above
            self._hunted_above = self._entry_mark()
        if self._hunted_above <= above:
            return
        try:
            done = self.retrohunt(above=above, limit=AUTO_LIMIT)
        except Exception as exc:  # the bank write is committed: it must not fail for this
            log.warning(
                "retro-hunt of bank entries above row %d failed (%s: %s); run 'amber "
                "retrohunt' to do it",
                above,
                type(exc).__name__,
                exc,
            )
            return
        self.hunts.append(done)
        if done.decided or done.failed or done.left:
            log.info("%s", summary(done))
        if done.left:
            log.warning(
                "retro-hunt stopped at %d posts; run 'amber retrohunt' for the other %d",
                AUTO_LIMIT,
                done.left,
            )

    def mark_entries(self) -> None:
        """Take the bank's current entries as known: later bank writes retro-hunt only the
        entries they add (the engine does this when it opens)."""
        with self._hunt_mark:
            self._hunted_above = self._entry_mark()

    def _decide_hashed(
        self,
        post: Post,
        hashed: list[MediaHashes | MediaFailure],
        *,
        replace: bool,
        strict: bool = False,
        client: str = DEFAULT_CLIENT,
        digest: str | None = None,
    ) -> ScanResult:
        """``decide_post`` for a post whose media are already hashed (``hash_media``) and,
        given ``digest``, its content digest too; with ``strict`` evidence failures raise
        instead of being yielded."""
        self.matcher.sync()
        decided = self._decide(post, hashed, client, digest)
        for result in self._flush([decided], replace, strict):
            if isinstance(result, ScanResult):
                return result
        raise InternalError(f"deciding post {post.id!r} gave no result")

    def explain(self, post: Post | str, *, k: int = 3, client: str | None = None) -> Explanation:
        """Why ``post`` gets its verdict: its signals, the ``k`` nearest bank entries of
        each media value (matched or not, and why) and the rules that fired. A ``Post``
        is decided as it would be now, storing and preserving nothing; a post id is a
        stored post (of ``client``, or of the only client holding it), re-derived from
        its stored JSON and media when they can still be read. Raises ``NotFoundError``
        for an unknown post id."""
        from amber.explain import explain_post, explain_stored

        with self.write_lock:  # the index is brought up to date, as a scan would
            self.matcher.sync()
            if isinstance(post, str):
                return explain_stored(self, post, k=k, client=client)
            return explain_post(self, post, k=k)

    def explain_file(self, path: Path, *, k: int = 3) -> Iterator[Explanation | PostError]:
        """``explain`` each post of a ``.jsonl`` file, or one media file as a one-media
        post (id: its name); a ``PostError`` in place of each bad line."""
        from amber.explain import explain_file

        return explain_file(self, path, k=k)

    def findings(
        self,
        post: Post,
        hashed: Sequence[MediaHashes | MediaFailure],
        *,
        client: str = DEFAULT_CLIENT,
        reports: Sequence[UserReport] = (),
        now: datetime | None = None,
        computed: PostValues | None = None,
    ) -> Findings:
        """What the policy sees for ``post`` given its media's hashes: bank matches,
        unreadable media, the post's own signals, the related earlier decisions (of
        ``client``'s posts), its author's record and the user reports of the post (those
        stored with its decision, and ``reports``, being filed now). ``now`` is when the
        post is decided as of (default: the clock; a stored post decided again: when it
        was first decided, so that its related posts and its author's record are those of
        its time). ``computed``: the post's own signal values computed ahead
        (``post_values``)."""
        paths = [m.path for m in post.media]
        matches = self.matcher.match(
            [h.values if isinstance(h, MediaHashes) else () for h in hashed]
        )
        unreadable = [
            (paths[i], why) for i, h in enumerate(hashed) if (why := _unreadable(h)) is not None
        ]
        truncated = [
            paths[i] for i, h in enumerate(hashed) if isinstance(h, MediaHashes) and h.truncated
        ]
        signals = self.post_values(post, computed)
        now = self.clock() if now is None else now
        findings = Findings(
            matches=matches,
            media_paths=paths,
            unreadable=unreadable,
            truncated=truncated,
            signals=signals,
            has_poll=post.poll is not None,
            created_at=post.created_at,
            now=now,
        )
        links = self.policy.links(findings)  # look up only the earlier posts a rule can use
        if links:
            earlier = self.decisions.earlier(
                post_id=post.id,
                client=client,
                author=post.author if "author" in links else None,
                reply_to=post.reply_to if "reply" in links else None,
                before=post.created_at,
                media=self._same_media_values(hashed) if "media" in links else (),
                window=CONTEXT_WINDOW,
                now=now,
            )
            findings = replace_field(findings, earlier=earlier)
        if "account" in links and post.author is not None:
            standing = self.accounts.standing(post.author, client=client, now=now, exclude=post.id)
            findings = replace_field(findings, account=standing)
        if "reports" in links or reports:
            stored = self._stored_reports(post.id, client)
            known = {r.id for r in stored}
            findings = replace_field(
                findings, reports=[*stored, *(r for r in reports if r.id not in known)]
            )
        return findings

    def post_values(self, post: Post, computed: PostValues | None = None) -> list[SignalValue]:
        """The values of ``post``'s own signal types (those that read its words: the
        harm-poll detector): ``computed`` when this engine's types at the same versions, in
        the same order, computed them (on a Dask worker), else computed now."""
        if computed is not None:
            if computed.types == self._post_stamp:
                return list(computed.values)
            if not self._stale_warned:
                self._stale_warned = True
                log.warning(
                    "post signal values computed by %s, not this engine's %s: computed "
                    "again here (install the same amber and plug-ins where they are computed)",
                    computed.types,
                    self._post_stamp,
                )
        return compute(post, self.post_signals)

    def _stored_reports(self, post_id: str, client: str) -> list[UserReport]:
        """The user reports stored with the decision of ``client``'s post, oldest first."""
        stored = self._stored(post_id, client)
        if stored is None:
            return []
        found = [UserReport.from_reason(r) for r in stored.reasons]
        return sorted((r for r in found if r is not None), key=lambda r: r.received_at)

    def _decide(
        self,
        post: Post,
        hashed: Sequence[MediaHashes | MediaFailure],
        client: str,
        digest: str | None = None,
        *,
        reports: Sequence[UserReport] = (),
        found_by: Callable[[Reason], str | None] | None = None,
        as_of: datetime | None = None,
        computed: PostValues | None = None,
    ) -> tuple[ScanResult, NewDecision]:
        """Decide ``post``; ``found_by`` says how each reason was found, when not by this
        decision (``Reason.found_by``); ``as_of``: see ``findings``' ``now``; ``computed``:
        its own signal values computed ahead (``post_values``)."""
        paths = [m.path for m in post.media]
        outcome = self.policy.decide(
            self.findings(
                post, hashed, client=client, reports=reports, now=as_of, computed=computed
            )
        )
        if found_by is not None:
            outcome = replace_field(
                outcome,
                reasons=[replace_field(r, found_by=found_by(r)) for r in outcome.reasons],
            )
        media = [(i, paths[i], h) for i, h in enumerate(hashed) if isinstance(h, MediaHashes)]
        result = ScanResult(post, outcome, [h for _, _, h in media])
        new = NewDecision(
            post.id,
            outcome,
            post.raw,
            post.source,
            media,
            author=post.author,
            reply_to=post.reply_to,
            deadline=_deadline(post, outcome, self.clock(), self.policy.reports),
            created_at=post.created_at,
            client=client,
            content_digest=digest or content_digest(post, _sha256s(hashed)),
        )
        return result, new

    def _same_media_values(self, hashed: Sequence[MediaHashes | MediaFailure]) -> list[SignalValue]:
        """The media values that can show an earlier post had the same photo: each
        near-match type's own values (variant ``"original"``) of sufficient quality."""
        out = []
        for h in hashed:
            if not isinstance(h, MediaHashes):
                continue
            for v in h.values:
                if v.variant != "original" or self.signals.get(v.signal_type).exact:
                    continue
                if self.matcher.strong_enough(v):
                    out.append(v)
        return out

    def _flush(
        self,
        pending: list[tuple[ScanResult, NewDecision]],
        replace: bool,
        strict: bool = False,
        method: str | None = None,
    ) -> Iterator[ScanResult | PostError]:
        """Stage the evidence of each post of review or stronger (as the version it will be
        stored as; ``method``: how it was collected, when not by a scan), store the
        decisions of those staged (and of the others), then preserve what was staged."""
        if not pending:
            return
        batch = list(pending)
        pending.clear()
        if self._database_log():
            yield from self._flush_in_transaction(batch, replace, strict, method)
            return
        staged: list[tuple[ScanResult, NewDecision]] = []
        for result, new in batch:
            if result.outcome.verdict.rank < Verdict.review.rank:
                staged.append((result, new))
                continue
            try:
                new = replace_field(new, version=self.decisions.next_version(new, replace=replace))
                self._stage(result.post, new, method)
            except AmberError as exc:
                yield _not_kept(result.post, exc, strict=strict)
                continue
            staged.append((result, new))
        written = self.decisions.save([new for _, new in staged], now=self.clock(), replace=replace)
        for result, new in staged:
            needs_evidence = result.outcome.verdict.rank >= Verdict.review.rank
            key = item_key(new.post_id, new.client, new.version)
            if result.post.id not in written:
                if needs_evidence and not strict:  # submit finishes the stored one's
                    with suppress(EvidenceWriteError):
                        self.open_vault().unstage(key)
                yield replace_field(result, saved=False)
                continue
            if needs_evidence:
                try:
                    if written[new.post_id] != new.version:  # another process stored one
                        key = self.open_vault().restage(key, version=written[new.post_id])
                    self.open_vault().finish(key)
                except AmberError as exc:
                    if strict:
                        raise _pending(result.post.id, result.outcome.verdict.value, exc) from exc
                    yield PostError(
                        f"decision stored, evidence pending ({exc}); run 'amber evidence sweep'",
                        source=result.post.source or "<post>",
                        line=result.post.line,
                    )
                self._log_escalations()
            yield result

    def _database_log(self) -> bool:
        """Whether the vault keeps its custody log in the database (opening it if it
        exists, or if a new one would)."""
        if self._vault is not None:
            return self._vault.database
        if (self.vault_path / "vault.json").exists() or self.vault_log == "database":
            return self.open_vault().database
        return False

    def _flush_in_transaction(
        self,
        batch: list[tuple[ScanResult, NewDecision]],
        replace: bool,
        strict: bool,
        method: str | None,
    ) -> Iterator[ScanResult | PostError]:
        """``_flush`` for a vault whose custody log is in the database: the evidence's
        objects are put first, then each decision of review or stronger is stored with
        its ``preserved`` record in one transaction (``DecisionStore.save(custody=)``):
        both or neither. Signed later, in batches (``Vault.sign``)."""
        vault = self.open_vault()
        kept: list[tuple[ScanResult, NewDecision]] = []
        prepared: dict[str, Prepared] = {}
        for result, new in batch:
            if result.outcome.verdict.rank >= Verdict.review.rank:
                try:
                    media, decision, where = self._evidence_of(result.post, new)
                    prepared[new.post_id] = vault.prepare(
                        post_id=new.post_id,
                        post=result.post.raw,
                        decision=decision,
                        media=media,
                        source=where,
                        policy=self.policy.ref,
                        client=new.client,
                        method=method,
                    )
                except AmberError as exc:
                    yield _not_kept(result.post, exc, strict=strict)
                    continue
            kept.append((result, new))

        def custody(conn: sa.Connection, written: dict[str, int]) -> None:
            records = [
                record
                for post_id, version in written.items()
                if post_id in prepared
                and (record := vault.preserved_record(prepared[post_id], version=version))
            ]
            vault.log.append_in(conn, records)  # type: ignore[union-attr]

        written = self.decisions.save(
            [new for _, new in kept], now=self.clock(), replace=replace, custody=custody
        )
        for result, new in kept:
            if result.post.id not in written:
                yield replace_field(result, saved=False)
                continue
            if new.post_id in prepared:
                self._log_escalations()
            yield result

    def _log_escalations(self) -> None:
        """Log the custody events of the incidents' escalations made by the decisions
        just stored, once their evidence is kept (``Incidents.log_escalations``). Never
        raises: the decisions are stored; an event not logged now is logged next time."""
        try:
            self.incidents.log_escalations(actor=ACTOR)
        except AmberError as exc:
            log.warning("an incident's escalation could not be logged in the vault yet: %s", exc)

    def _stage(self, post: Post, new: NewDecision, method: str | None = None) -> None:
        """Keep in the vault's staging area what preserving ``post`` needs."""
        media, decision, where = self._evidence_of(post, new)
        self.open_vault().stage(
            post_id=post.id,
            post=post.raw,
            decision=decision,
            media=media,
            source=where,
            policy=self.policy.ref,
            client=new.client,
            version=new.version,
            method=method,
        )

    def _evidence_of(
        self, post: Post, new: NewDecision
    ) -> tuple[list[tuple[int, str, Path | bytes, str]], dict[str, Any], str]:
        """What preserving ``post`` keeps: its media (position, path as written, file,
        SHA-256), the decision record and where it came from. A media file with no path
        to read it from (a stored post decided again whose bytes are at hand nowhere:
        ``amber.stored_posts``) is named in the decision under ``media_unavailable``."""
        media: list[tuple[int, str, Path | bytes, str]] = []
        unavailable = []
        for position, written, hashes in new.media:
            digest = hashes.original("sha256")
            if digest is None:
                continue
            if not hashes.path:
                unavailable.append({"position": position, "path": written, "sha256": digest.value})
                continue
            media.append((position, written, Path(hashes.path), digest.value))
        decision = self._decision_record(new)
        if unavailable:
            decision["media_unavailable"] = unavailable
        where = post.source if post.line is None else f"{post.source} line {post.line}"
        return media, decision, where

    def _decision_record(self, new: NewDecision) -> dict[str, Any]:
        """The decision as the vault keeps it."""
        return {
            **new.outcome.to_json(post_id=new.post_id),
            "client": new.client,
            "version": new.version,
            "rules": new.outcome.rules,
            "policy": self.policy.ref,
            "amber_version": __version__,
        }

    # -- evidence completeness ---------------------------------------------------------

    def _evidence_view(self) -> tuple[dict[str, Any], set[str]]:
        """The vault's items and the items staged, by key (``item_key``), without creating
        a vault."""
        if not (self.vault_path / "vault.json").exists():
            return {}, set()
        vault = self.open_vault()
        # Staging first, then the log: a preservation finished in between is in the log.
        staged = {p.key for p in vault.pending()}
        return vault.items(), staged

    @staticmethod
    def _evidence_state(
        key: str,
        verdict: str,
        review_state: str,
        view: tuple[dict[str, Any], set[str]],
        ordered: bool = False,
    ) -> str:
        items, staged = view
        item = items.get(key)
        # Held in the vault is preserved, even while a copy is staged: another process
        # that decided the same post at once stages one it will not need.
        if item is not None:
            return "expired" if item.deleted or item.expiring else "preserved"
        if key in staged:
            return "pending"
        if verdict in PRESERVED_VERDICTS or review_state == "confirmed" or ordered:
            return "missing"
        return "not_needed"

    def with_evidence(self, *found: Decision) -> Decision:
        """The first of ``found`` (see ``with_evidence_all``) with its ``evidence`` state."""
        return self.with_evidence_all(found)[0]

    def with_evidence_all(self, found: Sequence[Decision]) -> list[Decision]:
        """Each decision with its ``evidence`` state: ``preserved`` (held in the vault),
        ``pending`` (staged, to be finished by a retry or the sweep), ``missing`` (review
        or stronger, confirmed by a reviewer or under a removal order, and nothing
        kept), ``expired`` (deleted after its retention) or ``not_needed``."""
        view = self._evidence_view()
        return [
            replace_field(
                d,
                evidence=self._evidence_state(
                    d.key,
                    d.verdict.value,
                    d.review_state,
                    view,
                    d.removal_ordered_at is not None,
                ),
            )
            for d in found
        ]

    def missing_evidence(self) -> list[MissingEvidence]:
        """Decisions of review or stronger (or confirmed by a reviewer, or under a removal
        order) with no evidence
        in the vault, oldest first: ``pending`` ones the sweep can finish and ``missing``
        ones it cannot; every client's posts, and every version of each (an earlier
        version keeps its own evidence). ``evidence verify`` and ``amber doctor`` report
        these."""
        view = self._evidence_view()
        found = []
        with self.db.connect() as conn:
            for t in (decision_versions, decisions_table):
                query = (
                    sa.select(
                        t.c.client,
                        t.c.post_id,
                        t.c.version,
                        t.c.verdict,
                        t.c.review_state,
                        t.c.scanned_at,
                        t.c.removal_ordered_at,
                    )
                    .where(
                        sa.or_(
                            t.c.verdict.in_(PRESERVED_VERDICTS),
                            t.c.review_state == "confirmed",
                            t.c.removal_ordered_at.is_not(None),
                        )
                    )
                    .order_by(t.c.scanned_at, t.c.id)
                )
                for row in conn.execute(query.execution_options(yield_per=1000)):
                    key = item_key(row.post_id, row.client, row.version)
                    state = self._evidence_state(
                        key,
                        row.verdict,
                        row.review_state,
                        view,
                        row.removal_ordered_at is not None,
                    )
                    if state in ("pending", "missing"):
                        found.append(
                            MissingEvidence(
                                row.post_id,
                                row.verdict,
                                row.review_state,
                                state,
                                row.scanned_at,
                                row.client,
                                row.version,
                            )
                        )
        return sorted(found, key=lambda m: m.scanned_at)

    def sweep_evidence(self, *, orphan_after: timedelta = ORPHAN_AFTER) -> SweepReport:
        """Finish every staged preservation whose decision is stored (what a crash or a
        full disk left pending); drop staged ones whose decision was never stored, once
        older than ``orphan_after``. Never raises for one post: failures are reported."""
        report = SweepReport([], [], [])
        if not (self.vault_path / "staging").is_dir():
            return report
        vault = self.open_vault()
        now = self.clock()
        for staged in vault.pending():
            stored = self._stored_version(staged.post_id, staged.client, staged.version)
            current = stored is not None and (
                not staged.replace
                or {k: staged.decision.get(k) for k in ("verdict", "reasons", "actions")}
                == {k: stored.to_json()[k] for k in ("verdict", "reasons", "actions")}
            )
            if not current:
                if now - staged.staged_at >= orphan_after:
                    with suppress(EvidenceWriteError):
                        vault.unstage(staged.key)
                        report.discarded.append(staged.key)
                continue
            try:
                vault.finish(staged.key)
            except AmberError as exc:
                report.failed.append((staged.key, str(exc)))
                continue
            report.preserved.append(staged.key)
        return report

    def _stored_version(self, post_id: str, client: str, version: int) -> Decision | None:
        """Version ``version`` of ``client``'s post ``post_id`` as stored, or ``None``."""
        try:
            found = self.decisions.versions(post_id, client=client)
        except NotFoundError:
            return None
        return next((d for d in found if d.version == version), None)

    def bank_media(self, post_id: str, bank: str, actor: str = LOCAL_ACTOR) -> AddResult:
        """Add a reviewed post's media to ``bank`` from the evidentiary copies, so every
        later re-upload matches; the bank's audit names ``actor`` (``reviewer:<name>``).
        Raises ``UserError`` if its media were not preserved."""
        self.banks.get(bank)
        item = self.open_vault().item(post_id)
        media = item.objects.get("media", [])
        if not media:
            raise UserError(f"post {post_id!r} has no media to add to bank {bank!r}")
        paths = {
            str(
                self.open_vault().object_path(m["sha256"])
            ): f"review:{post_id} media[{m['position']}]"
            for m in media
        }
        return self.banks.add_files(bank, [Path(p) for p in paths], sources=paths, actor=actor)

    def open_vault(self) -> Vault:
        """The evidence vault, opened (and created) on first use."""
        if self._vault is None:
            self._vault = Vault.open(
                self.vault_path,
                clock=self.clock,
                retention=self.retention,
                signing_key=self.signing_key,
                db=self.db,
                log=self.vault_log,
                objects=self.vault_objects,
            )
        return self._vault

    def evidence_signer(self, *, every: float = 1.0) -> LogSigner | None:
        """The elected signer of a vault whose custody log is in the database (run it in
        a thread: ``amber serve`` does), or ``None`` for any other vault."""
        if not self._database_log():
            return None
        from amber.evidence.dblog import DatabaseLog, LogSigner

        vault = self.open_vault()
        if not isinstance(vault.log, DatabaseLog):
            return None
        return LogSigner(vault.log, vault.signer, every=every)

    def sign_evidence(self) -> int | None:
        """Sign every custody record appended so far; the size signed, or ``None`` when
        another process holds the database log's signer lock (it signs them)."""
        if not (self.vault_path / "vault.json").exists():
            return 0
        checkpoint = self.open_vault().sign()
        return None if checkpoint is None else checkpoint.size


def _not_kept(post: Post, exc: AmberError, *, strict: bool) -> PostError:
    """The error for a post not decided because its evidence could not be kept: raised
    (``EvidenceWriteError``) when ``strict``, else returned to be yielded in its place."""
    if strict:
        raise EvidenceWriteError(
            f"post {post.id!r} was not decided, and nothing was stored: "
            f"its evidence could not be kept ({exc}); send it again"
        ) from exc
    return PostError(
        f"not decided: its evidence could not be kept ({exc})",
        source=post.source or "<post>",
        line=post.line,
    )


def _pending(post_id: str, verdict: str, exc: Exception) -> EvidencePendingError:
    return EvidencePendingError(
        f"the decision for post {post_id!r} is stored ({verdict}) but its evidence is "
        f"pending: {exc}. Send the post again, or run 'amber evidence sweep', once the "
        "vault can be written"
    )


def _sha256s(hashed: Sequence[MediaHashes | MediaFailure]) -> list[str | None]:
    """Each media file's SHA-256 as hashing found it (``None`` where it has none)."""
    out: list[str | None] = []
    for h in hashed:
        value = h.original("sha256") if isinstance(h, MediaHashes) else None
        out.append(None if value is None else value.value)
    return out


def _unreadable(hashed: MediaHashes | MediaFailure) -> str | None:
    """Why a media file's pixels were not seen (its bytes may still be hashed), or None."""
    return hashed.reason if isinstance(hashed, MediaFailure) else hashed.undecoded


def _deadline(
    post: Post, outcome: Outcome, now: datetime, reports: ReportSettings
) -> datetime | None:
    """When a person must have acted: the poll's closing time; for a threat to life without
    one, an hour from now (it must not wait behind polls that close in days); for a
    user report of an urgent category, its hours after the report arrived (the soonest
    of these)."""
    found = []
    if post.poll is not None and post.poll.closes_at is not None:
        trusted = plausible_deadline(post.poll.closes_at, now)
        if trusted is not None:
            found.append(trusted)
    if THREAT_TO_LIFE in outcome.actions and not found:
        found.append(now + timedelta(hours=1))
    for reason in outcome.reasons:
        report = (
            UserReport.from_reason(reason.to_json()) if reason.signal == REPORT_SIGNAL else None
        )
        due = None if report is None else reports.due(report.category, report.received_at)
        if due is not None:
            found.append(due)
    return min(found, default=None)


def _related(post: Post, other: NewDecision) -> bool:
    """Might the policy look at ``other`` when deciding ``post``, or must ``other`` be
    stored first? (Then ``other`` is saved first.) Same author, a reply, shared media that
    could be the same photo, or the same post id (``post`` is its next version)."""
    if (post.author is not None and post.author == other.author) or (
        post.reply_to == other.post_id or post.id == other.post_id
    ):
        return True
    return bool(post.media) and bool(other.media) and THREAT_TO_LIFE in other.outcome.actions


def open_engine(
    *,
    db: str | Path | None = None,
    vault: Path | None = None,
    signing_key: Path | None = None,
    policy: Path | None = None,
    index_dir: Path | None = None,
    clock: Callable[[], datetime] | None = None,
    retention: timedelta | None = None,
    conditions: Conditions | None = None,
    actions: Actions | None = None,
    create: bool = True,
) -> Engine:
    """Open (creating and migrating if needed) amber's state.

    ``db`` is a SQLite path or a database URL (default ``AMBER_DB`` or ``./amber.db``);
    ``vault`` the evidence folder (default ``AMBER_VAULT`` or ``./amber-vault``);
    ``signing_key`` the vault's signing key kept outside it (default ``AMBER_SIGNING_KEY``,
    else the vault's own ``keys/checkpoint.key``); ``policy``
    a policy TOML file (default: the built-in policy); ``conditions`` and ``actions`` the
    kinds it may name (default: the built-in ones and installed plug-ins', loaded now).
    The signal types are the built-in ones and those of installed plug-ins (entry-point
    group ``amber.signal_types``). Without ``create`` a SQLite file that does not exist
    is an error (a mistyped path) rather than a new, empty database.
    Raises ``UserError`` for unusable paths, policies or plug-ins, ``ConflictError`` for a
    plug-in whose kind or signal type name is taken, ``ExternalError`` for an unreachable
    database server.
    """
    from amber.policy import installed_actions, installed_conditions

    db = default_db() if db is None else db
    loaded_policy = load_policy(
        policy,
        conditions=installed_conditions() if conditions is None else conditions,
        actions=installed_actions() if actions is None else actions,
    )
    signals = load_signal_types()
    loaded_policy.check(signals.names())
    signing_key = default_signing_key() if signing_key is None else signing_key
    if signing_key is not None:
        read_signing_key(signing_key)  # refuse an unusable key now, not at the first preserve
    engine = connect(db, create=create)
    return Engine(
        db=engine,
        vault=default_vault() if vault is None else vault,
        signing_key=signing_key,
        policy=loaded_policy,
        signals=signals,
        index_dir=default_index_dir(db) if index_dir is None else index_dir,
        clock=clock or (lambda: datetime.now(UTC)),
        retention=default_retention() if retention is None else retention,
    )
