"""A local stand-in for ThreatExchange's Graph API, for tests and benchmarks: the
``/{privacy_group}/threat_updates`` endpoint that python-threatexchange's
``FBThreatExchangeSignalExchangeAPI.fetch_iter`` reads, served on 127.0.0.1 from a thread
(a real socket; nothing leaves the machine).

It keeps the latest state of each indicator and the (logical) time it last changed, and
answers those changed at or after ``start_time``, oldest change first, in pages:
``{"data": [update, ...], "paging": {"next": URL}}`` (no ``next`` on the last page). An
update is ``{id, indicator, type, last_updated, should_delete, descriptors: {data: [{id,
owner: {id}, status, tags, reactions}]}}``: a deletion has ``should_delete`` true and no
descriptors. Each descriptor is one app's opinion: ``status`` MALICIOUS (positive),
NON_MALICIOUS (negative) or UNKNOWN (a seed).

``fail_page = N`` answers page N of the next fetch with a 500 (once); a wrong access token
gets Graph's 400 error.
"""

from __future__ import annotations

import bisect
import itertools
import json
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

#: Our app (the platform running amber) and another member of the privacy group.
OUR_APP = 1234567890
OTHER_APP = 5550001111
TOKEN = f"{OUR_APP}|{'s3cr3t' * 4}"
PRIVACY_GROUP = 424242
VERSION = "v26.0"


class ThreatExchangeServer:
    """The fake server; ``with ThreatExchangeServer() as server: server.endpoint``."""

    def __init__(self, *, page_size: int = 100, token: str = TOKEN) -> None:
        self.page_size = page_size
        self.token = token
        self.fail_page: int | None = None
        #: The ``start_time`` of each fetch's first request, in order.
        self.start_times: list[int | None] = []
        self._records: dict[int, dict[str, Any]] = {}
        self._ids: dict[tuple[str, str], int] = {}
        self._log: list[tuple[int, int]] = []  # (time, record id), in time order
        self._clock = itertools.count(1_700_000_000)
        self._next_id = itertools.count(10_000_000_000)
        self._descriptor_ids = itertools.count(90_000_000)
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """The base URL to give the exchange (``--endpoint``)."""
        return f"http://127.0.0.1:{self._http.server_address[1]}/{VERSION}"

    def __enter__(self) -> ThreatExchangeServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()

    # -- changing the data -------------------------------------------------------------------

    def put(
        self,
        indicator: str,
        type: str = "HASH_PDQ",
        *,
        opinions: Iterable[tuple[int, str]] = ((OTHER_APP, "MALICIOUS"),),
        tags: Iterable[str] = (),
    ) -> None:
        """Add or change an indicator: its opinions, ``(app id, status)`` each."""
        self.put_many([(indicator, type)], opinions=opinions, tags=tags)

    def put_many(
        self,
        indicators: Iterable[tuple[str, str]],
        *,
        opinions: Iterable[tuple[int, str]] = ((OTHER_APP, "MALICIOUS"),),
        tags: Iterable[str] = (),
    ) -> None:
        """``put`` each ``(indicator, type)`` with the same opinions."""
        opinions, tags = list(opinions), sorted(tags)
        with self._lock:
            for indicator, type in indicators:
                descriptors = [
                    {
                        "id": str(next(self._descriptor_ids)),
                        "owner": {"id": str(app)},
                        "status": status,
                        "tags": tags,
                        "reactions": [],
                    }
                    for app, status in opinions
                ]
                self._change(indicator, type, should_delete=False, descriptors=descriptors)

    def set_opinion(
        self, indicator: str, app: int, status: str | None, type: str = "HASH_PDQ"
    ) -> None:
        """Set (``None``: withdraw) app ``app``'s opinion of a known indicator."""
        with self._lock:
            record = self._records[self._ids[type, indicator]]
            kept = [d for d in record["descriptors"]["data"] if d["owner"]["id"] != str(app)]
            if status is not None:
                kept.append(
                    {
                        "id": str(next(self._descriptor_ids)),
                        "owner": {"id": str(app)},
                        "status": status,
                        "tags": [],
                        "reactions": [],
                    }
                )
            self._change(indicator, type, should_delete=not kept, descriptors=kept)

    def delete(self, indicator: str, type: str = "HASH_PDQ") -> None:
        """Delete an indicator (a tombstone update)."""
        self.delete_many([(indicator, type)])

    def delete_many(self, indicators: Iterable[tuple[str, str]]) -> None:
        with self._lock:
            for indicator, type in indicators:
                self._change(indicator, type, should_delete=True, descriptors=[])

    def _change(
        self, indicator: str, type: str, *, should_delete: bool, descriptors: list[dict[str, Any]]
    ) -> None:
        record_id = self._ids.setdefault((type, indicator), next(self._next_id))
        now = next(self._clock)
        record: dict[str, Any] = {
            "id": str(record_id),
            "indicator": indicator,
            "type": type,
            "last_updated": now,
            "should_delete": should_delete,
        }
        if descriptors:
            record["descriptors"] = {"data": descriptors}
        self._records[record_id] = record
        self._log.append((now, record_id))

    def time_of(self, indicator: str, type: str = "HASH_PDQ") -> int:
        """When the indicator last changed (the server's clock)."""
        return int(self._records[self._ids[type, indicator]]["last_updated"])

    # -- answering -----------------------------------------------------------------------------

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The status and JSON body for a GET of ``path`` with ``query``."""
        if query.get("access_token") != self.token:
            return 400, {
                "error": {
                    "message": "Invalid OAuth access token - Cannot parse access token",
                    "type": "OAuthException",
                    "code": 190,
                }
            }
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != VERSION or parts[2] != "threat_updates":
            return 404, {"error": {"message": f"unknown path {path}", "code": 803}}
        page = int(query.get("page", "1"))
        if page == 1:
            start = query.get("start_time")
            self.start_times.append(None if not start else int(start))
        if self.fail_page == page:
            self.fail_page = None
            return 500, {"error": {"message": "An unexpected error has occurred.", "code": 2}}
        limit = min(int(query.get("limit") or self.page_size), self.page_size)
        with self._lock:
            start_time = int(query.get("start_time") or 0)
            at = (
                int(query["after"])
                if "after" in query
                else bisect.bisect_left(self._log, (start_time, -1))
            )
            data = []
            while at < len(self._log) and len(data) < limit:
                when, record_id = self._log[at]
                at += 1
                record = self._records[record_id]
                if record["last_updated"] == when:  # not superseded by a later change
                    data.append(record)
            while (
                at < len(self._log)
                and self._records[self._log[at][1]]["last_updated"] != (self._log[at][0])
            ):
                at += 1
            body: dict[str, Any] = {"data": data}
            if at < len(self._log):
                following = {**query, "after": str(at), "page": str(page + 1)}
                body["paging"] = {
                    "next": f"{self.endpoint}/{parts[1]}/threat_updates/?" + urlencode(following)
                }
        return 200, body


def _handler(server: ThreatExchangeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            status, body = server.answer(url.path, query)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:  # quiet
            pass

    return Handler
