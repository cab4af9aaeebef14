"""python-threatexchange's exchange API types as amber uses them.

An API type is a ``SignalExchangeAPI`` subclass, known by its ``get_name()``: pytx's own
(``local_file``, ``sample``, ``fb_threatexchange``, ``ncmec``, ``stop_ncii``, ``tat``) and
those of installed plug-ins (entry-point group ``amber.exchange_apis``, the entry point
named as the type). This module says what each type takes (the fields of its settings and
credentials, as HMA's forms list them), builds a type's client for an exchange, and turns
one fetched record into amber signal values and one opinion. ``amber.exchanges`` does the
storing.

Nothing here talks to the network; a client does when its ``fetch_iter`` runs.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import requests
from threatexchange.exchanges import auth
from threatexchange.exchanges.clients.fb_threatexchange.api import ThreatExchangeAPI
from threatexchange.exchanges.fetch_state import (
    AggregateSignalOpinionCategory,
    FetchCheckpointBase,
    FetchedSignalMetadata,
    SignalOpinion,
    SignalOpinionCategory,
)
from threatexchange.exchanges.impl.fb_threatexchange_api import (
    FBThreatExchangeSignalExchangeAPI,
)
from threatexchange.exchanges.impl.file_api import LocalFileSignalExchangeAPI
from threatexchange.exchanges.impl.ncmec_api import NCMECSignalExchangeAPI
from threatexchange.exchanges.impl.static_sample import StaticSampleSignalExchangeAPI
from threatexchange.exchanges.impl.stop_ncii_api import StopNCIISignalExchangeAPI
from threatexchange.exchanges.impl.techagainstterrorism_api import TATSignalExchangeAPI
from threatexchange.exchanges.signal_exchange_api import SignalExchangeAPI
from threatexchange.signal_type import md5, sha256
from threatexchange.signal_type.pdq.signal import PdqSignal
from threatexchange.signal_type.signal_base import SignalType as PytxSignalType
from threatexchange.utils import dataclass_json

from amber.banks import SIGNAL_ALIASES
from amber.errors import UserError
from amber.registry import Registry
from amber.signals import SignalType, SignalValue
from amber.signals.base import Reads

GROUP = "amber.exchange_apis"
#: The settings every collaboration config has, which amber fills in itself (HMA's form
#: leaves them out too).
OWN_FIELDS = frozenset({"name", "api", "enabled"})
#: The pytx signal types whose values amber hashes, offered to every API: a record of
#: another type (URLs, text) converts to nothing and is counted under the type its key
#: names. (Fewer types also make pytx's per-record conversion cheaper: it names each.)
PYTX_SIGNAL_TYPES: tuple[type[PytxSignalType], ...] = (
    PdqSignal,
    md5.VideoMD5Signal,
    sha256.VideoSHA256Signal,
)
_NAMES = {t: t.get_name() for t in PYTX_SIGNAL_TYPES}
#: pytx signal type names and the amber types their values are (others are amber's own
#: names, or unknown).
PYTX_NAMES = {**SIGNAL_ALIASES, "video_sha256": "sha256", "photo_sha256": "sha256"}
#: Seconds to wait for a ThreatExchange server to connect, then to answer each page.
TE_TIMEOUT = (10, 60)

AnyApi = SignalExchangeAPI[Any, Any, Any, Any, Any]


class Opinion(StrEnum):
    """What the upstream record's opinions add up to, for amber: whether it is banked.

    Our own opinions (``is_mine``: made with this platform's credentials) come first: our
    false-positive mark keeps it out whatever others say, our positive one banks it.
    Otherwise all opinions count together: positive, or an investigation seed (what APIs
    that carry no opinions give), bank it; negative (a false positive or benign) or
    disputed (some positive, some negative) keep it out.
    """

    positive = "positive"
    seed = "seed"
    negative = "negative"
    disputed = "disputed"
    false_positive = "false_positive"

    @property
    def banks(self) -> bool:
        """Does a record with this opinion have a bank entry?"""
        return self in (Opinion.positive, Opinion.seed)


def judge(opinions: Sequence[SignalOpinion]) -> Opinion:
    """The ``Opinion`` that ``opinions`` (a record's, from pytx) add up to."""
    mine = [o.category for o in opinions if o.is_mine]
    if SignalOpinionCategory.NEGATIVE_CLASS in mine:
        return Opinion.false_positive
    if SignalOpinionCategory.POSITIVE_CLASS in mine:
        return Opinion.positive
    if not opinions:
        return Opinion.seed
    total = AggregateSignalOpinionCategory.from_opinion_categories(o.category for o in opinions)
    return {
        AggregateSignalOpinionCategory.POSITIVE_CLASS: Opinion.positive,
        AggregateSignalOpinionCategory.INVESTIGATION_SEED: Opinion.seed,
        AggregateSignalOpinionCategory.NEGATIVE_CLASS: Opinion.negative,
        AggregateSignalOpinionCategory.DISPUTED: Opinion.disputed,
    }[total]


@dataclass(frozen=True, slots=True)
class Field:
    """One field of an API type's settings or credentials, as a form shows it (HMA's
    ``exchange_schema`` shape): ``type`` is ``string``, ``number``, ``boolean``, ``enum``
    (with ``choices``), ``set_of_...`` or ``list_of_...``."""

    name: str
    type: str
    required: bool
    default: Any
    help: str
    choices: list[Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The field as the API and ``amber exchange apis`` write it."""
        return {
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "default": self.default,
            "help": self.help,
            "choices": self.choices,
        }


@dataclass(frozen=True, slots=True)
class ApiType:
    """An installed exchange API type: a ``SignalExchangeAPI`` subclass by its name."""

    name: str
    cls: type[AnyApi]

    @property
    def supports_credentials(self) -> bool:
        """Does the type take credentials (pytx's ``SignalExchangeWithAuth``)?"""
        return issubclass(self.cls, auth.SignalExchangeWithAuth)

    @property
    def takes_endpoint(self) -> bool:
        """May an exchange of this type name its server (``endpoint``)? ThreatExchange's
        client takes one (``ThreatExchangeAPI(endpoint_override=...)``)."""
        return issubclass(self.cls, FBThreatExchangeSignalExchangeAPI)

    @property
    def snapshot(self) -> bool:
        """Does every fetch send everything the source has? True when the type's
        checkpoint holds nothing to resume from (a file, the samples): records a fetch no
        longer sends were deleted upstream."""
        return not dataclasses.fields(self.cls.get_checkpoint_cls())

    def config_fields(self) -> list[Field]:
        """The fields of an exchange's settings (``config``), name/api/enabled aside."""
        return _fields(self.cls.get_config_cls(), ignore=OWN_FIELDS)

    def credential_fields(self) -> list[Field] | None:
        """The fields of the type's credentials; ``None`` when it takes none."""
        if not self.supports_credentials:
            return None
        return _fields(self._credential_cls(), ignore=frozenset())

    def schema(self) -> dict[str, Any]:
        """HMA's ``/c/exchanges/api/<name>/schema`` body: ``config_schema`` and
        ``credentials_schema`` (``None`` without credentials), each ``{"fields": [...]}``."""
        credentials = self.credential_fields()
        return {
            "config_schema": {"fields": [f.to_json() for f in self.config_fields()]},
            "credentials_schema": (
                None if credentials is None else {"fields": [f.to_json() for f in credentials]}
            ),
        }

    def collab(self, name: str, config: Mapping[str, Any], *, enabled: bool = True) -> Any:
        """The type's collaboration config for exchange ``name`` with settings ``config``.

        Raises ``UserError`` naming a field that is unknown, missing or of the wrong type.
        """
        cls = self.cls.get_config_cls()
        known = {f.name for f in dataclasses.fields(cls) if f.init} - OWN_FIELDS
        unknown = sorted(set(config) - known)
        if unknown:
            raise UserError(
                f"{self.name} has no setting {', '.join(map(repr, unknown))}; its settings: "
                + (", ".join(sorted(known)) or "none")
            )
        data = {**config, "name": name, "api": self.name, "enabled": enabled}
        try:
            return dataclass_json.dataclass_load_dict(data, cls)
        except Exception as exc:  # dacite's errors: missing or wrongly typed fields
            raise UserError(f"{self.name} settings {dict(config)!r} are not valid: {exc}") from None

    def credentials(self, data: Mapping[str, Any]) -> auth.CredentialHelper:
        """The type's credentials from ``data`` (their fields as JSON).

        Raises ``UserError`` when the type takes none or a field is missing or wrong.
        """
        if not self.supports_credentials:
            raise UserError(f"{self.name} takes no credentials")
        cls = self._credential_cls()
        known = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(
                f"{self.name} credentials have no field {', '.join(map(repr, unknown))}; "
                f"their fields: {', '.join(sorted(known))}"
            )
        try:
            found: auth.CredentialHelper = dataclass_json.dataclass_load_dict(dict(data), cls)
        except Exception as exc:  # dacite's errors
            fields = ", ".join(sorted(known))
            raise UserError(
                f"{self.name} credentials are not valid ({exc}); give {fields}"
            ) from None
        return found

    def client(
        self, collab: Any, credentials: Mapping[str, Any] | None, endpoint: str | None
    ) -> AnyApi:
        """A client of this type for ``collab``. With ``credentials`` those are used;
        without, a type that takes credentials looks for its own (pytx's environment
        variable or file, e.g. ``TX_ACCESS_TOKEN``). Talks to nothing until fetched from;
        raises what the type raises for missing or bad credentials."""
        creds = None if credentials is None else self.credentials(credentials)
        if self.takes_endpoint and endpoint is not None:
            if creds is None:
                creds = self._credential_cls().get(self.cls)
            token = str(creds.api_token)  # type: ignore[attr-defined]
            return self.cls(ThreatExchangeClient(token, endpoint_override=endpoint), collab)  # type: ignore[call-arg]
        if self.supports_credentials:
            return self.cls.for_collab(collab, creds)  # type: ignore[call-arg]
        return self.cls.for_collab(collab)

    def checkpoint(self, data: Mapping[str, Any] | None) -> FetchCheckpointBase | None:
        """The type's checkpoint from its stored JSON (``None``: none stored)."""
        if data is None:
            return None
        loaded: FetchCheckpointBase = dataclass_json.dataclass_load_dict(
            dict(data), self.cls.get_checkpoint_cls()
        )
        return loaded

    def _credential_cls(self) -> type[auth.CredentialHelper]:
        found: type[auth.CredentialHelper] = self.cls.get_credential_cls()  # type: ignore[attr-defined]
        return found


def dump(value: Any) -> dict[str, Any]:
    """A pytx dataclass (config, checkpoint, credentials) as plain JSON."""
    loaded: dict[str, Any] = json.loads(dataclass_json.dataclass_dumps(value))
    return loaded


class ThreatExchangeClient(ThreatExchangeAPI):
    """pytx's ThreatExchange Graph API client, pointed at ``endpoint_override``, with two
    things pytx leaves out: a time limit on every request (pytx's ``get_json_from_url``
    waits for ever), and pages with no updates skipped (pytx's ``fetch_iter`` asserts
    each page has some, and the API answers an empty page when nothing changed since
    the checkpoint)."""

    def get_json_from_url(self, url: str, params: Any = None, *, json_obj_hook: Any = None) -> Any:
        """GET ``url``; its JSON. Raises ``requests`` errors (status, connection, time)."""
        response = requests.get(url, params=params or {}, timeout=TE_TIMEOUT)
        response.raise_for_status()
        return response.json(object_hook=json_obj_hook)

    def get_threat_updates(self, privacy_group: int, **kwargs: Any) -> Any:
        """pytx's cursor over ``/threat_updates``, without its empty pages."""
        return _pages_with_data(super().get_threat_updates(privacy_group, **kwargs))


def _pages_with_data(cursor: Any) -> Iterator[list[Any]]:
    for page in cursor:
        if page:
            yield page


@dataclass(frozen=True, slots=True)
class Converted:
    """One fetched record as amber banks it: its values (empty: nothing amber can bank),
    its opinion, the pytx types amber skipped, the values that were not valid, and
    ``digest``, SHA-256 of the values (type and value of each, sorted): a change replaces
    the record's entry."""

    values: tuple[SignalValue, ...]
    opinion: Opinion
    skipped: tuple[str, ...] = ()
    invalid: int = 0
    digest: str = ""


def values_digest(values: Sequence[SignalValue]) -> str:
    """``Converted.digest`` of ``values``."""
    text = "\n".join(sorted(f"{v.signal_type}\t{v.value}" for v in values))
    return hashlib.sha256(text.encode()).hexdigest()


def convert(
    api: ApiType, collab: Any, signals: Registry[SignalType], key: Any, record: Any
) -> Converted:
    """The amber values and opinion of one record the API fetched (key and value of its
    ``FetchDelta.updates``), through the type's ``naive_convert_to_signal_type``. A value of
    a pytx type amber does not hash is skipped and named in ``skipped``; one its amber
    type finds invalid is counted in ``invalid``."""
    try:
        by_type = api.cls.naive_convert_to_signal_type(PYTX_SIGNAL_TYPES, collab, {key: record})
    except Exception:  # third-party code on upstream data: one bad record, not the fetch
        return Converted((), Opinion.seed, invalid=1)
    values: list[SignalValue] = []
    skipped: list[str] = []
    opinions: list[SignalOpinion] = []
    invalid = 0
    for pytx_type, signals_of_type in by_type.items():
        name = _NAMES.get(pytx_type) or pytx_type.get_name()
        amber_name = PYTX_NAMES.get(name, name)
        if amber_name not in signals or signals.get(amber_name).reads is not Reads.media:
            skipped.extend(name for _ in signals_of_type)
            continue
        for text, metadata in signals_of_type.items():
            try:
                values.extend(signals.get(amber_name).parse(text))
            except UserError:
                invalid += 1
                continue
            if isinstance(metadata, FetchedSignalMetadata):
                opinions.extend(metadata.get_as_opinions())
    if not by_type:  # a type the API does not offer amber, or a value it found invalid
        name = _type_of(key)
        if PYTX_NAMES.get(name, name) in signals:
            invalid += 1
        else:
            skipped.append(name)
    return Converted(tuple(values), judge(opinions), tuple(skipped), invalid, values_digest(values))


def _type_of(key: Any) -> str:
    """The type a record's key names (``(type, value)`` keys), for the skipped count."""
    if isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str):
        return key[0]
    return "unknown"


def key_text(key: Any) -> str:
    """A record's key (an int, a string or a ``(type, value)`` pair) as JSON text."""
    return json.dumps(list(key) if isinstance(key, tuple) else key, ensure_ascii=False)


def installed_apis() -> Registry[ApiType]:
    """pytx's API types, then installed plug-ins' (entry-point group ``amber.exchange_apis``).

    Raises ``UserError`` naming a plug-in that fails to load, ``ConflictError`` for one
    whose name is taken.
    """
    registry: Registry[ApiType] = Registry("exchange API")
    for cls in (
        LocalFileSignalExchangeAPI,
        StaticSampleSignalExchangeAPI,
        FBThreatExchangeSignalExchangeAPI,
        NCMECSignalExchangeAPI,
        StopNCIISignalExchangeAPI,
        TATSignalExchangeAPI,
    ):
        registry.register(ApiType(cls.get_name(), cls))
    registry.register_entry_points(GROUP, _api_type)
    return registry


def _api_type(loaded: object) -> ApiType:
    """The API type a loaded entry point gives: a ``SignalExchangeAPI`` subclass."""
    if not isinstance(loaded, type) or not issubclass(loaded, SignalExchangeAPI):
        raise UserError(f"gives {loaded!r}, not a python-threatexchange SignalExchangeAPI subclass")
    return ApiType(loaded.get_name(), loaded)


def _fields(cls: type, *, ignore: frozenset[str]) -> list[Field]:
    """The init fields of dataclass ``cls`` but ``ignore``, as form fields."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name in ignore:
            continue
        kind, choices = _kind(hints.get(f.name, str))
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default: Any = None
        if f.default is not dataclasses.MISSING:
            default = _plain(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = _plain(f.default_factory())
        out.append(Field(f.name, kind, required, default, str(f.metadata.get("help", "")), choices))
    return out


def _kind(hint: Any) -> tuple[str, list[Any] | None]:
    """A type hint as a form field's type, and an enum's choices."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        rest = [a for a in args if a is not type(None)]
        return _kind(rest[0]) if len(rest) == 1 else ("string", None)
    if origin in (set, frozenset, list) and args:
        word = "set" if origin in (set, frozenset) else "list"
        return f"{word}_of_{_kind(args[0])[0]}", None
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "enum", [m.value for m in hint]
    if hint is bool:
        return "boolean", None
    if hint in (int, float):
        return "number", None
    return "string", None


def _plain(value: Any) -> Any:
    """A field's default as JSON."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset | list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
