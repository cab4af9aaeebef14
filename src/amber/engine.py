"""The engine: one object that holds the database, signal types, index and policy.

``open_engine`` is the one factory; the command line, the HTTP service, the reviewer
console and the tests all build their engine with it (``docs/library.md``).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from dataclasses import replace as replace_field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from amber import __version__
from amber.banks import AddResult, BankStore
from amber.decisions import THREAT_TO_LIFE, Decision, DecisionStore, NewDecision
from amber.errors import AmberError, InternalError, NotFoundError, PostError, UserError
from amber.evidence.vault import DEFAULT_RETENTION, Vault
from amber.hashing import Hasher, MediaFailure, MediaHashes, media_types, parallel_map
from amber.identity import DEFAULT_CLIENT, content_digest
from amber.matching import Matcher
from amber.policy import Actions, Conditions, Findings, Outcome, Policy, Verdict, load_policy
from amber.posts import Post
from amber.review.queue import ReviewQueue
from amber.signals import Content, Registry, Role, SignalType, SignalValue, load_signal_types
from amber.signals.base import Reads
from amber.store.db import connect, database_url, sqlite_path
from amber.tokens import TokenStore

if TYPE_CHECKING:
    from amber.explain import Explanation

#: How far back the policy may look for posts related to a new one (a harm poll before
#: its announcement); each rule sets its own ``within_hours`` inside this.
CONTEXT_WINDOW = timedelta(days=30)
DEFAULT_DB = "amber.db"
DEFAULT_VAULT = "amber-vault"
SAVE_BATCH = 64


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


def default_db() -> str:
    """``AMBER_DB`` or ``./amber.db``."""
    return os.environ.get("AMBER_DB") or DEFAULT_DB


def default_vault() -> Path:
    """``AMBER_VAULT`` or ``./amber-vault``."""
    return Path(os.environ.get("AMBER_VAULT") or DEFAULT_VAULT)


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
        retention: timedelta = DEFAULT_RETENTION,
        policy: Policy,
        signals: Registry[SignalType],
        index_dir: Path,
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.vault_path = vault
        self.retention = retention
        self._vault: Vault | None = None
        self.policy = policy
        self.signals = signals
        self.clock = clock
        #: Each signal type's minimum quality under this policy (``None``: no minimum).
        self.min_quality = {s.name: s.quality_floor(policy) for s in signals}
        self.matcher = Matcher(db, signals, index_dir, min_quality=self.min_quality)
        self.banks = BankStore(
            db,
            signals,
            on_change=self.matcher.sync,
            on_delete=self.matcher.forget,
            clock=clock,
            min_quality=self.min_quality,
        )
        self.decisions = DecisionStore(
            db, policy=policy.ref, amber_version=__version__, signals=signals
        )
        self.post_signals = [s for s in signals if s.reads is Reads.post]
        self.media_signals = media_types(signals)
        self.tokens = TokenStore(db, clock=clock)
        self.review = ReviewQueue(db, clock=clock, add_to_bank=self.bank_media)
        #: One writer at a time in this process for the index and the vault: ``submit``
        #: holds it; other writes (a reviewer's decision, a bank change) take it too.
        self.write_lock = threading.Lock()

    def close(self) -> None:
        """Release database connections."""
        self.db.dispose()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def submit(self, post: Post, *, client: str = DEFAULT_CLIENT) -> Submission:
        """Decide a post of ``client`` once per content: a repeat of its id with the same
        content (text and media bytes) answers the stored decision; new content under
        the id is the post's next version, scanned and decided (the earlier one is kept).

        Decided under ``write_lock``, so threads submitting the same post at once get one
        decision; when another process stored a decision for the same content first, its
        decision stands and is the answer. Unreadable media are in the decision's reasons.
        """
        digest = content_digest(post)
        with self.write_lock:
            try:
                stored = self.decisions.get(post.id, client=client)
                if stored.content_digest == digest:
                    return Submission(stored, new=False)
            except NotFoundError:
                pass
            result = self.decide_post(post, replace=False, client=client)
        return Submission(self.decisions.get(post.id, client=client), new=result.saved)

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
        next version either way. The posts are ``client``'s.
        """
        self.matcher.sync()
        queue: deque[Post | PostError] = deque()

        def jobs() -> Iterator[tuple[str, ...]]:
            for item in items:
                queue.append(item)
                yield tuple(str(m.file) for m in item.media) if isinstance(item, Post) else ()

        pending: list[tuple[ScanResult, NewDecision]] = []
        hasher = Hasher(self.media_signals, Role.query)
        for hashed in parallel_map(hasher, jobs(), workers=workers):
            item = queue.popleft()
            on_item()
            if isinstance(item, PostError):
                yield from self._flush(pending, replace)
                yield item
                continue
            for position, failure in enumerate(hashed):
                if isinstance(failure, MediaFailure):
                    yield PostError(
                        f"{failure.path}: {failure.reason}",
                        source=item.source or "<post>",
                        line=item.line,
                        field=f"media[{position}].path",
                    )
            if any(_related(item, new) for _, new in pending):
                yield from self._flush(pending, replace)  # its policy may look at them
            pending.append(self._decide(item, hashed, client))
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
    ) -> Findings:
        """What the policy sees for ``post`` given its media's hashes: bank matches,
        unreadable media, the post's own signals and the related earlier decisions (of
        ``client``'s posts)."""
        paths = [m.path for m in post.media]
        matches = self.matcher.match(
            [h.values if isinstance(h, MediaHashes) else () for h in hashed]
        )
        unreadable = [
            (paths[i], h.reason) for i, h in enumerate(hashed) if isinstance(h, MediaFailure)
        ]
        words = Content(
            text=post.text,
            question=post.poll.question if post.poll else None,
            options=post.poll.options if post.poll else (),
        )
        signals = [v for s in self.post_signals for v in s.compute(words)]
        now = self.clock()
        findings = Findings(
            matches=matches,
            media_paths=paths,
            unreadable=unreadable,
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
        return findings

    def _decide(
        self, post: Post, hashed: list[MediaHashes | MediaFailure], client: str
    ) -> tuple[ScanResult, NewDecision]:
        paths = [m.path for m in post.media]
        outcome = self.policy.decide(self.findings(post, hashed, client=client))
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
            deadline=_deadline(post, outcome, self.clock()),
            created_at=post.created_at,
            client=client,
            content_digest=content_digest(post),
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
        self, pending: list[tuple[ScanResult, NewDecision]], replace: bool
    ) -> Iterator[ScanResult | PostError]:
        if not pending:
            return
        written = self.decisions.save(
            [new for _, new in pending], now=self.clock(), replace=replace
        )
        batch = list(pending)
        pending.clear()
        for result, new in batch:
            if result.post.id not in written:
                yield replace_field(result, saved=False)
                continue
            if result.outcome.verdict.rank >= Verdict.review.rank:
                try:
                    self.preserve(result.post, replace_field(new, version=written[new.post_id]))
                except AmberError as exc:  # the decision stands and is printed; say why
                    yield PostError(
                        f"not preserved as evidence: {exc}",
                        source=result.post.source or "<post>",
                        line=result.post.line,
                    )
            yield result

    def bank_media(self, post_id: str, bank: str) -> AddResult:
        """Add a reviewed post's media to ``bank`` from the evidentiary copies, so every
        later re-upload matches. Raises ``UserError`` if its media were not preserved."""
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
        return self.banks.add_files(bank, [Path(p) for p in paths], sources=paths)

    def open_vault(self) -> Vault:
        """The evidence vault, opened (and created) on first use."""
        if self._vault is None:
            self._vault = Vault.open(self.vault_path, clock=self.clock, retention=self.retention)
        return self._vault

    def preserve(self, post: Post, new: NewDecision) -> None:
        """Keep a decided post in the vault: media bytes, post, decision, collection data."""
        media = []
        for position, written, hashes in new.media:
            digest = hashes.original("sha256")
            if digest is not None:
                media.append((position, written, Path(hashes.path), digest.value))
        decision = {
            **new.outcome.to_json(post_id=post.id),
            "client": new.client,
            "version": new.version,
            "rules": new.outcome.rules,
            "policy": self.policy.ref,
            "amber_version": __version__,
        }
        where = post.source if post.line is None else f"{post.source} line {post.line}"
        self.open_vault().preserve(
            post_id=post.id,
            post=post.raw,
            decision=decision,
            media=media,
            source=where,
            policy=self.policy.ref,
            client=new.client,
            version=new.version,
        )


def _deadline(post: Post, outcome: Outcome, now: datetime) -> datetime | None:
    """When a person must have acted: the poll's closing time; for a threat to life without
    one, an hour from now (it must not wait behind polls that close in days)."""
    if post.poll is not None and post.poll.closes_at is not None:
        return post.poll.closes_at
    if THREAT_TO_LIFE in outcome.actions:
        return now + timedelta(hours=1)
    return None


def _related(post: Post, other: NewDecision) -> bool:
    """Might the policy look at ``other`` when deciding ``post``? (Then ``other`` is saved
    first.) Same author, a reply, or shared media that could be the same photo."""
    if (post.author is not None and post.author == other.author) or (
        post.reply_to == other.post_id
    ):
        return True
    return bool(post.media) and bool(other.media) and THREAT_TO_LIFE in other.outcome.actions


def open_engine(
    *,
    db: str | Path | None = None,
    vault: Path | None = None,
    policy: Path | None = None,
    index_dir: Path | None = None,
    clock: Callable[[], datetime] | None = None,
    retention: timedelta | None = None,
    conditions: Conditions | None = None,
    actions: Actions | None = None,
) -> Engine:
    """Open (creating and migrating if needed) amber's state.

    ``db`` is a SQLite path or a database URL (default ``AMBER_DB`` or ``./amber.db``);
    ``vault`` the evidence folder (default ``AMBER_VAULT`` or ``./amber-vault``); ``policy``
    a policy TOML file (default: the built-in policy); ``conditions`` and ``actions`` the
    kinds it may name (default: the built-in ones and installed plug-ins', loaded now).
    The signal types are the built-in ones and those of installed plug-ins (entry-point
    group ``amber.signal_types``).
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
    engine = connect(db)
    return Engine(
        db=engine,
        vault=default_vault() if vault is None else vault,
        policy=loaded_policy,
        signals=signals,
        index_dir=default_index_dir(db) if index_dir is None else index_dir,
        clock=clock or (lambda: datetime.now(UTC)),
        retention=default_retention() if retention is None else retention,
    )
