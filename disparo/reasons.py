"""Why an attempt ended as it did: the one list of reasons every stage and the page share.

The worker records them, the attempts table stores them, the API filters by them and the
page puts them in words (`analytics/api/web/i18n.js`; a unit test keeps both lists equal).
"""

from typing import Final

SUCCESS = "ok"
HTTP_4XX = "http_4xx"
HTTP_5XX = "http_5xx"
HTTP_OTHER = "http_other"
TIMEOUT = "timeout"
CONNECTION = "connection"
DNS = "dns"
TLS = "tls"
TARGET_REFUSED = "target_refused"
INVALID_URL = "invalid_url"
INVALID_REQUEST = "invalid_request"
INVALID_RESPONSE = "invalid_response"
RESPONSE_TOO_LARGE = "response_too_large"
RULE_DELETED = "rule_deleted"  # the job's rule was deleted before it was sent: no attempt
# The rule's record was written outside the API (its sealed values do not open for its URL
# and id): nothing is sent until an admin saves it through the API.
TARGET_CHANGED = "target_changed"
SUPERSEDED = "superseded"  # a newer event of the order was delivered first: not sent
HELD = "held"  # the rule is paused: kept to be sent when it is unpaused
DISCARDED = "discarded"  # a held dispatch dropped by a person, or older than the history
OTHER = "other"

ATTEMPT_REASONS = (
    SUCCESS,
    HTTP_4XX,
    HTTP_5XX,
    HTTP_OTHER,
    TIMEOUT,
    CONNECTION,
    DNS,
    TLS,
    TARGET_REFUSED,
    INVALID_URL,
    INVALID_REQUEST,
    INVALID_RESPONSE,
    RESPONSE_TOO_LARGE,
    RULE_DELETED,
    TARGET_CHANGED,
    SUPERSEDED,
    HELD,
    DISCARDED,
    OTHER,
)
# Not attempts' reasons: why a job was deferred without an attempt (metrics only).
CIRCUIT_OPEN: Final = "circuit_open"
ENDPOINT_BUSY: Final = "endpoint_busy"  # too many of its jobs already wait for the endpoint
RATE_LIMITED: Final = "rate_limited"  # its rule's max_per_second gives it a turn later
