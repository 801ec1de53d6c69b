"""Topic names and their shapes, derived from one prefix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ORDER_EVENT_PARTITIONS = 6
# Oversized events must reach the dispatcher to be dead-lettered with a reason, not bounce
# off the broker; the dispatcher enforces MAX_EVENT_BYTES itself. Every topic that carries
# an event (in a job, a retry, a resend, an outcome) takes the same size, so a job or an
# outcome built from an accepted event can always be written.
MAX_RECORD_BYTES = 10 * 1024 * 1024
LARGE_MESSAGES = {"max.message.bytes": str(MAX_RECORD_BYTES)}
MAX_EVENT_BYTES = 1024 * 1024


@dataclass(frozen=True)
class TopicSpec:
    """A topic's name, partition count and broker-side configuration."""

    name: str
    partitions: int
    config: dict[str, str]


@dataclass(frozen=True)
class Topics:
    """Every topic name of the contract, for one prefix."""

    prefix: str = "disparo."

    @property
    def order_events(self) -> str:
        return f"{self.prefix}order-events"

    @property
    def rules(self) -> str:
        return f"{self.prefix}rules"

    @property
    def api_keys(self) -> str:
        return f"{self.prefix}api-keys"

    @property
    def accounts(self) -> str:
        return f"{self.prefix}accounts"

    @property
    def rule_ids(self) -> str:
        return f"{self.prefix}rule-ids"

    @property
    def dispatch_jobs(self) -> str:
        return f"{self.prefix}dispatch-jobs"

    @property
    def order_lanes(self) -> str:
        return f"{self.prefix}order-lanes"

    @property
    def parked_endpoints(self) -> str:
        return f"{self.prefix}parked-endpoints"

    @property
    def resend(self) -> str:
        return f"{self.prefix}resend"

    @property
    def outcomes(self) -> str:
        return f"{self.prefix}outcomes"

    @property
    def control(self) -> str:
        return f"{self.prefix}control"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}dead-letter"

    def retry(self, tier: str) -> str:
        """The delay-tier topic for one retry tier such as `5s` or `1h`."""
        return f"{self.prefix}retry.{tier}"

    def specs(self, retry_tiers: Sequence[str] = ()) -> list[TopicSpec]:
        """The topics the pipeline needs, with partitions and configs."""
        p = ORDER_EVENT_PARTITIONS
        retries = [TopicSpec(self.retry(tier), p, dict(LARGE_MESSAGES)) for tier in retry_tiers]
        # One rules partition keeps rule changes totally ordered for the dispatcher.
        return [
            TopicSpec(self.order_events, p, dict(LARGE_MESSAGES)),
            TopicSpec(self.rules, 1, {"cleanup.policy": "compact"}),
            TopicSpec(self.api_keys, 1, {"cleanup.policy": "compact"}),
            TopicSpec(self.accounts, 1, {"cleanup.policy": "compact"}),
            # A sequencer: the offset of each (empty) record is a new rule id, unique across
            # API replicas. Offsets keep growing after old records expire.
            TopicSpec(self.rule_ids, 1, {"retention.ms": str(24 * 3600 * 1000)}),
            TopicSpec(self.dispatch_jobs, p, dict(LARGE_MESSAGES)),
            TopicSpec(self.resend, p, dict(LARGE_MESSAGES)),
            # Per (rule, order) delivery state of order-aware rules; partition = the order's
            # partition in the job topics, so a worker reads back the lanes of what it owns.
            TopicSpec(self.order_lanes, p, {"cleanup.policy": "compact"}),
            # Endpoints workers defer jobs for, so the dispatcher parks their jobs at once.
            TopicSpec(self.parked_endpoints, 1, {"cleanup.policy": "compact"}),
            TopicSpec(self.outcomes, p, dict(LARGE_MESSAGES)),
            # Nothing is written here: the analytics process holding its one partition (in
            # the duties group) owns the background duties.
            TopicSpec(self.control, 1, {"retention.ms": str(24 * 3600 * 1000)}),
            TopicSpec(
                self.dead_letter, 1, {"retention.ms": str(30 * 24 * 3600 * 1000), **LARGE_MESSAGES}
            ),
            *retries,
        ]
