"""Where an access log lives: a file path (SQLite, DuckDB) or a PostgreSQL URL.

A URL may carry a password, so anything that shows a location (a log line,
an error, the demo's header) shows :func:`shown_location`, never the URL
itself. Standard library only: the CLI and the demo import it without the
PostgreSQL driver.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

POSTGRES_URL_SCHEMES = ("postgresql://", "postgres://")
MASK = "***"


def is_postgres_url(location: str | Path) -> bool:
    """Whether ``location`` names a PostgreSQL database (a URL) rather than a file."""
    return isinstance(location, str) and location.startswith(POSTGRES_URL_SCHEMES)


def mask_url(url: str) -> str:
    """``url`` with its password (in the authority or a ``password=`` parameter) as ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if k == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_password(url: str) -> str | None:
    """The password a URL carries, if any (to scrub it from driver messages)."""
    parts = urlsplit(url)
    if parts.password:
        return parts.password
    for key, value in parse_qsl(parts.query):
        if key == "password" and value:
            return value
    return None


def scrub(text: str, url: str) -> str:
    """``text`` with the URL's password, should a driver message echo it, masked."""
    secret = url_password(url)
    return text.replace(secret, MASK) if secret else text


def shown_location(location: str | Path) -> str:
    """``location`` as it may be shown: a URL with its password masked, a path as is."""
    return mask_url(str(location)) if is_postgres_url(location) else str(location)
