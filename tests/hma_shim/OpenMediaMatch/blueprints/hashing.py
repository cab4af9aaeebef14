"""HMA's URL checks over amber's: ``is_valid_url`` is ``amber.fetch.check_url`` with the
current app's allowed hosts (HMA's ``ALLOWED_HOSTNAMES``), and a URL's content is at most
``DEFAULT_MAX_REMOTE_FILE_SIZE`` bytes when the app sets no limit (amber's media limit)."""

from __future__ import annotations

from amber.fetch import DEFAULT_MAX_BYTES, check_url
from OpenMediaMatch.app import current_app

DEFAULT_MAX_REMOTE_FILE_SIZE = DEFAULT_MAX_BYTES


def is_valid_url(url: str | None) -> bool:
    """Would amber fetch ``url`` (its text; the address is checked when fetching)?"""
    return check_url(url, allowed_hosts=current_app().hma.allowed_hosts) is None
