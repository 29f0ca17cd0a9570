"""What adapter handling raises; the server maps each to one HTTP status.

`AdapterError` (400): the adapter cannot be used, the message says why without naming
files. `UnknownAdapter` (404): no adapter by that name is loaded, known or registered.
`AdapterBusy` (409): the adapter serves requests in flight, so it cannot be unloaded now.
"""

from __future__ import annotations


class AdapterError(Exception):
    """The adapter directory cannot be used (400); the message says why."""


class UnknownAdapter(Exception):
    """No adapter by that name is loaded, known or registered (404)."""


class AdapterBusy(Exception):
    """The adapter is serving requests; try again once they finish (409)."""
