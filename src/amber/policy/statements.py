"""A policy's ``[statements]`` table: what a statement of reasons (DSA Art. 17) needs that
amber cannot know about the platform, and how amber's reasons map to the Transparency
Database's categories (``amber.statements`` makes the statements; docs/statements.md).

Every key is optional; ``StatementSettings()`` holds the defaults, which the built-in
policy writes out in full. Values are the database's own names (``STATEMENT_CATEGORY_*``,
``KEYWORD_*``, ``ACCOUNT_TYPE_*``, ``DECISION_GROUND_*``), checked against its schema
(``amber.dsa``) when the policy is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from amber.dsa import EEA, EU, allowed
from amber.errors import PolicyError

ILLEGAL = "DECISION_GROUND_ILLEGAL_CONTENT"
INCOMPATIBLE = "DECISION_GROUND_INCOMPATIBLE_CONTENT"
#: ``terms_ground`` unless the policy names the platform's own section.
DEFAULT_TERMS_GROUND = (
    "Terms of service: content that threatens, incites or glorifies violence against a "
    "person, and terrorist content, is not allowed"
)
KEYS = frozenset(
    {
        "territorial_scope",
        "ground",
        "terms_ground",
        "legal_ground",
        "reference_url",
        "account_type",
        "category",
        "keywords",
        "signals",
        "labels",
    }
)
#: The longest text the database takes in a ground field.
GROUND_LENGTH = 500


@dataclass(frozen=True, slots=True)
class Classification:
    """A statement's ``category`` and the ``category_specification`` keywords it adds."""

    category: str
    keywords: tuple[str, ...] = ()


def _violence() -> Classification:
    return Classification("STATEMENT_CATEGORY_VIOLENCE", ("KEYWORD_INCITEMENT_VIOLENCE_HATRED",))


def _terrorism() -> Classification:
    return Classification(
        "STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY", ("KEYWORD_TERRORIST_CONTENT",)
    )


@dataclass(frozen=True, slots=True)
class StatementSettings:
    """The platform's side of its statements of reasons."""

    #: The country codes where amber's restrictions apply (``territorial_scope``).
    territorial_scope: tuple[str, ...] = EEA
    #: ``decision_ground`` of amber's own decisions and its reviewers' (a removal order's is
    #: always illegal content under Regulation (EU) 2021/784).
    ground: str = INCOMPATIBLE
    #: The section of the platform's terms relied on (``incompatible_content_ground``).
    terms_ground: str = DEFAULT_TERMS_GROUND
    #: The law relied on when ``ground`` is illegal content (``illegal_content_legal_ground``).
    legal_ground: str | None = None
    #: A link to that section or law (``decision_ground_reference_url``).
    reference_url: str | None = None
    #: ``account_type`` of every statement, when the platform's accounts are all of one kind.
    account_type: str | None = None
    #: The classification of a reason no entry below names.
    default: Classification = field(
        default_factory=lambda: Classification("STATEMENT_CATEGORY_VIOLENCE")
    )
    #: By signal type (a reason without a bank: ``harm_poll``, a plug-in's).
    signals: Mapping[str, Classification] = field(
        default_factory=lambda: {"harm_poll": _violence()}
    )
    #: By the label of the bank entry matched (``amber bank create --label``).
    labels: Mapping[str, Classification] = field(
        default_factory=lambda: {
            "terrorism": _terrorism(),
            "terrorist-content": _terrorism(),
            "gifct": _terrorism(),
        }
    )

    def classify(self, reason: Mapping[str, Any]) -> Classification:
        """The classification of one reason (a decision's reason as stored): by the label
        of the bank entry it matched, else by its signal type, else the default."""
        if reason.get("bank") is not None:
            found = self.labels.get(str(reason.get("label")))
        else:
            found = self.signals.get(str(reason.get("signal")))
        return found or self.default


def parse_statement_settings(table: object, source: str) -> StatementSettings:
    """A policy's ``[statements]`` table as settings (``None``: the defaults). Raises
    ``PolicyError`` naming the key of the first problem."""
    if table is None:
        return StatementSettings()
    if not isinstance(table, dict):
        raise PolicyError("expected a table", path=source, key="statements")
    unknown = set(table) - KEYS
    if unknown:
        raise PolicyError(
            f"unknown key; known: {', '.join(sorted(KEYS))}",
            path=source,
            key=f"statements.{sorted(unknown)[0]}",
        )
    defaults = StatementSettings()
    ground = _choice(table, "ground", allowed("decision_ground"), source) or defaults.ground
    terms = _text(table, "terms_ground", source)
    legal = _text(table, "legal_ground", source)
    if ground == ILLEGAL and legal is None:
        raise PolicyError(
            f"ground {ILLEGAL!r} needs legal_ground, the law relied on",
            path=source,
            key="statements.legal_ground",
        )
    url = _text(table, "reference_url", source)
    if url is not None and not url.startswith(("https://", "http://")):
        raise PolicyError(
            f"expected an http(s) URL, got {url!r}", path=source, key="statements.reference_url"
        )
    default = (
        _classification(table, "statements", source)
        if "category" in table or "keywords" in table
        else defaults.default
    )
    return StatementSettings(
        territorial_scope=_scope(table.get("territorial_scope", "EEA"), source),
        ground=ground,
        terms_ground=terms or defaults.terms_ground,
        legal_ground=legal,
        reference_url=url,
        account_type=_choice(table, "account_type", allowed("account_type"), source),
        default=default,
        signals=_classifications(table, "signals", source, defaults.signals),
        labels=_classifications(table, "labels", source, defaults.labels),
    )


def _text(table: Mapping[str, Any], key: str, source: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > GROUND_LENGTH:
        raise PolicyError(
            f"expected text of 1 to {GROUND_LENGTH} characters",
            path=source,
            key=f"statements.{key}",
        )
    return value.strip()


def _choice(
    table: Mapping[str, Any], key: str, values: tuple[str, ...], source: str, where: str = ""
) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if value not in values:
        raise PolicyError(
            f"{value!r} is not one of the Transparency Database's values: {', '.join(values)}",
            path=source,
            key=f"{where or 'statements'}.{key}",
        )
    return str(value)


def _scope(value: object, source: str) -> tuple[str, ...]:
    """``"EEA"``, ``"EU"`` or a list of the database's country codes."""
    if value == "EEA":
        return EEA
    if value == "EU":
        return EU
    codes = allowed("territorial_scope")
    if (
        not isinstance(value, list)
        or not value
        or any(code not in codes for code in value)
        or len(set(value)) != len(value)
    ):
        raise PolicyError(
            f'expected "EEA", "EU" or a list of different country codes from '
            f"{', '.join(codes)}; got {value!r}",
            path=source,
            key="statements.territorial_scope",
        )
    return tuple(sorted(value))


def _classification(table: Mapping[str, Any], where: str, source: str) -> Classification:
    if not isinstance(table, dict):
        raise PolicyError("expected a table with category and keywords", path=source, key=where)
    unknown = set(table) - {"category", "keywords"} if where != "statements" else set()
    if unknown:
        raise PolicyError(
            "unknown key; known: category, keywords",
            path=source,
            key=f"{where}.{sorted(unknown)[0]}",
        )
    category = _choice(table, "category", allowed("category"), source, where)
    if category is None:
        raise PolicyError("expected a category", path=source, key=f"{where}.category")
    keywords = table.get("keywords", [])
    known = allowed("category_specification")
    if not isinstance(keywords, list) or any(k not in known for k in keywords):
        raise PolicyError(
            f"expected a list of the Transparency Database's keywords (KEYWORD_...); got "
            f"{keywords!r}",
            path=source,
            key=f"{where}.keywords",
        )
    return Classification(category, tuple(dict.fromkeys(keywords)))


def _classifications(
    table: Mapping[str, Any], key: str, source: str, defaults: Mapping[str, Classification]
) -> Mapping[str, Classification]:
    """``[statements.signals]`` or ``[statements.labels]``: given, it replaces the
    defaults as a whole."""
    given = table.get(key)
    if given is None:
        return defaults
    if not isinstance(given, dict):
        raise PolicyError("expected a table", path=source, key=f"statements.{key}")
    return {
        name: _classification(entry, f"statements.{key}.{name}", source)
        for name, entry in given.items()
    }
