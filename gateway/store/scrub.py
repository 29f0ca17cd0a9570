"""Store errors without secrets: what a store failure may say, to a log or to anyone.

A store URL can carry credentials (`redis://user:password@host:6379/0`, `?password=`),
and the client libraries' exception text can echo parts of it. Every store error is
translated once, at the store boundary, into `StoreUnavailable(kind, problem)`: the kind
of store and the problem, with the URL, its user information and any password removed
(`scrubbed`). `safe_url` is the form a log line may show: scheme, host, port and
database, never user information or query parameters.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlsplit

# `scheme://anything-up-to-@` anywhere in a text: user information of any URL.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@]*@")
# `password=...` / `pass: ...` / `requirepass ...` echoed by a library or server.
_PASSWORD_FIELD = re.compile(r"(?i)\b(password|passwd|pass|pwd|auth)(\s*[=:]\s*|\s+)[^\s,;&'\"]+")
REDACTED = "***"
MAX_PROBLEM = 300  # a problem is a phrase, not a dump


def store_kind(url: str) -> str:
    """`redis` or `sqlite` (or the URL's scheme): what a message may name."""
    scheme = url.split(":", 1)[0].lower()
    return "redis" if scheme in ("redis", "rediss") else scheme or "unknown"


def secrets_of(url: str) -> list[str]:
    """The substrings of `url` no message may contain: the URL itself, its user
    information, user name and password (raw and %-decoded), and `password=` values."""
    found = [url]
    try:
        parts = urlsplit(url)
        password, username = parts.password, parts.username
    except ValueError:  # a malformed URL: hide all of it
        return found
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        found += [userinfo, unquote(userinfo)]
    for value in (password, username if password else None):
        if value:
            found += [value, unquote(value)]
    for name, value in parse_qsl(parts.query):
        if name.lower() in ("password", "pass", "auth") and value:
            found.append(value)
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


def scrubbed(text: str, url: str) -> str:
    """`text` with the URL, its credentials and anything credential-shaped removed."""
    for secret in secrets_of(url):
        text = text.replace(secret, REDACTED)
    text = _USERINFO.sub(rf"\1{REDACTED}@", text)
    text = _PASSWORD_FIELD.sub(rf"\1\2{REDACTED}", text)
    return text[:MAX_PROBLEM]


def safe_url(url: str) -> str:
    """`scheme://host:port/path` without user information or query: for operators' logs."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return f"{store_kind(url)}://{REDACTED}"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def describe(exc: BaseException, url: str) -> str:
    """One scrubbed phrase for a foreign exception: its type and (scrubbed) text."""
    text = str(exc).strip()
    problem = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return scrubbed(problem, url)
