"""What of a webhook's request headers the history may show: credentials are masked."""

from __future__ import annotations

import re

# Header names that carry credentials a rule may add (API keys, bearer tokens, cookies).
SECRET_NAME = re.compile(r"authorization|token|secret|password|passwd|cookie|api[-_]?key|-key$")
MASK = "***"


def redacted(headers: dict[str, str]) -> dict[str, str]:
    """The headers as recorded: values of credential-like headers replaced by `***`."""
    return {
        name: MASK if SECRET_NAME.search(name.lower()) else value for name, value in headers.items()
    }
