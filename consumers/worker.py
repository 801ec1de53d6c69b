"""The delivery worker loop: jobs in, POSTs out, outcomes and retries recorded, then commit.

Polling never waits for deliveries: each record becomes a task, and offsets are committed
up to the first record whose results are not yet durable. A hanging endpoint holds only its
own records (and those after them in its partition's commit point), never the poll loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import signal
import time
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from consumers import classify, metrics
from consumers.attempt import Attempt
from consumers.delivery import Deliverer
from consumers.due_gate import DueGate
from consumers.endpoint_watch import EndpointWatch
from consumers.endpoints import EndpointGuard
from consumers.errors import OutcomeNotRecorded, WorkerFailed
from consumers.hooks import Decision, Defer, JobHook, Place, Wait
from consumers.lane_store import LaneStore
from consumers.offsets import OffsetTracker
from consumers.order_gate import Handover, OrderGate
from consumers.outcome_batches import OutcomeBatches, Replays
from consumers.reach import Reach
from consumers.reports import Reports
from consumers.retry_policy import RetryPolicy
from consumers.rule_lookup import RuleLookup
from consumers.rule_pace import RulePace
from consumers.settings import WorkerSettings
from consumers.settle import settle
from consumers.transport import make_transport
from consumers.waiting import Ticket, WaitingJobs
from disparo import failpoints, heap
from disparo.accounts_view import AccountsView
from disparo.consumer import ConsumerThread, commit_bounded, group_consumer, subscribe_when_ready
from disparo.dead_letter import DeadLetters
from disparo.errors import InvalidMessage
from disparo.kafka import make_producer
from disparo.keys_view import KeysView
from disparo.lag import GroupLag
from disparo.ops_http import start_ops_server
from disparo.outcome_batch import row_line
from disparo.parking import DeferReason, endpoint_key, host_of, park_job
from disparo.rules_view import RulesView
from disparo.schemas import (
    DispatchJob,
    now_utc,
    parse_job,
)
from disparo.topics import Topics

log = logging.getLogger(__name__)
POLL_S = 0.2
COMMIT_EVERY_S = 0.5
# Once every job in hand is done, its rows are written (and its offsets committed) this soon
# after the last commit rather than at the full cycle: under load the cycle batches, and a
# worker that runs dry does not keep its last rows from the history for half a second.
IDLE_COMMIT_S = 0.1
# A job whose handling raises this many times in a row is dead-lettered with the error.
POISON_CRASHES = 3
# One polled record, parsed on the consumer's thread: its job, or why it is dead-lettered,
# and whether an earlier owner of its partition may have attempted it already.
Taken = tuple[TopicPartition, Any, DispatchJob | None, str, bool]


@dataclass
class Polled:
    """One poll's records, and the partitions it gained (with their lanes) or lost."""

    taken: list[Taken]
    handover: Handover
    owned: int  # dispatch-jobs partitions this worker owns, of `total`
    total: int


class DeliveryWorker:
    """Consumes first-attempt, retry and resend jobs; commits only what is durably recorded.

    Every call to the Kafka consumer runs on its `ConsumerThread`; the event loop keeps the
    offsets, the deliveries and the sends.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        consumer: ConsumerThread,
        producer: KafkaProducer,
        deliverer: Deliverer,
        rules: RuleLookup,
        lane_store: LaneStore,
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.topics = Topics(settings.topic_prefix)
        self.consumer = consumer
        self.producer = producer
        self.deliverer = deliverer
        self.dead_letters = DeadLetters(producer, self.topics.dead_letter, "delivery")
        self.policy = RetryPolicy(settings.retry_tiers, settings.retried_4xx_statuses)
        # Finished lanes are kept as long as a replayed retry of theirs could still come.
        keep_s = sum(t.delay_s for t in self.policy.tiers) + 3600
        guard_keep_s = settings.status_guard_days * 86400
        self.order = OrderGate(deliverer, rules, lane_store, keep_s, guard_keep_s)
        self.gate = DueGate(consumer.consumer)  # used on the consumer's thread only
        self.guard = EndpointGuard(
            settings.worker_endpoint_concurrency,
            settings.breaker_failures,
            settings.breaker_open_s,
            resend_rate=settings.resend_rate,
            per_host=settings.worker_host_concurrency,
            per_account=max(1, int(settings.worker_concurrency * settings.worker_account_share)),
        )
        self.guard.export()
        self.pace = RulePace()
        # The per-job concerns, called in this order at each point of a job's life: the
        # breaker is asked once the rule's turn came (a half-open one lets its probe go).
        self.hooks: tuple[JobHook, ...] = (
            self.order,
            self.pace,
            EndpointWatch(self.guard),
            Reports(settings.metered_accounts),
        )
        self.waiting = WaitingJobs(self.guard, settings.worker_endpoint_concurrency * 4)
        self.offsets = OffsetTracker()
        self.limit = asyncio.Semaphore(settings.worker_concurrency)
        self.max_in_flight = settings.worker_concurrency * 4
        self.chains: dict[Any, asyncio.Task[None]] = {}
        self.sends: list[Any] = []
        self.batches = OutcomeBatches()  # attempt rows until the next commit writes them
        self.replays = Replays()  # used on the consumer's thread only
        self.uncommitted: dict[TopicPartition, OffsetAndMetadata] = {}
        self.stopping = asyncio.Event()
        self.running = 0
        self.pacing = 0  # jobs waiting in memory for their rule's turn (not busy)
        self.drained = asyncio.Event()
        self.throttled = False
        self.commits = 0
        self.fatal: BaseException | None = None

    async def run(self) -> None:
        """Poll, dispatch and commit until `stop()`; then finish what is in flight.

        A commit waits for the producer's acks; it runs beside the poll loop (one at a time)
        so fetching goes on meanwhile, which is what a backlog after an outage needs.
        """
        last_commit = time.monotonic()
        committing: asyncio.Task[None] | None = None
        while not self.stopping.is_set():
            self.guard.turn()  # each turn awaits a poll or a drain: answers are read between
            if committing is not None and committing.done():
                committing.result()  # OutcomeNotRecorded stops the worker, non-zero
                committing = None
            if await self._throttle():
                await self._until_drained()
                continue
            self._start_all(await self.consumer.call(self._poll))
            if committing is None and self._commit_due(time.monotonic() - last_commit):
                committing = asyncio.create_task(self.commit())
                last_commit = time.monotonic()
        if committing is not None:
            await committing
        deadline = time.monotonic() + 60
        while (self.order.releases or self.chains) and time.monotonic() < deadline:
            pending = [*self.order.releases, *self.chains.values()]
            await asyncio.wait(pending, timeout=deadline - time.monotonic())
        await self.commit()
        if self.fatal is not None:
            raise WorkerFailed(f"stopped on a fatal error: {self.fatal!r}") from self.fatal

    def _commit_due(self, since_s: float) -> bool:
        """Whether to write the kept rows and commit: each cycle, or sooner once idle."""
        idle = not self.running and self.batches.pending()
        return since_s >= COMMIT_EVERY_S or (idle and since_s >= IDLE_COMMIT_S)

    def stop(self) -> None:
        """Stop polling; deliveries in flight finish and are committed."""
        self.stopping.set()

    def _poll(self) -> Polled:
        """On the consumer's thread: release due partitions, poll, parse, hold what is not due."""
        now = now_utc()
        self.gate.release_due(now)
        # Rows waiting for a commit: come back soon to see whether the worker ran dry.
        wait_s = self.gate.next_release_s(now, IDLE_COMMIT_S if self.batches.pending() else POLL_S)
        polled = self.consumer.consumer.poll(
            timeout_ms=int(wait_s * 1000), max_records=self.settings.worker_batch
        )
        owned = self.consumer.consumer.assignment()
        jobs = self.topics.dispatch_jobs
        total = len(self.consumer.consumer.partitions_for_topic(jobs) or ())
        share = sum(1 for tp in owned if tp.topic == jobs)
        result = Polled([], self.order.follow({tp.partition for tp in owned}), share, total)
        self.replays.keep_only(owned)
        now = now_utc()
        for tp, records in polled.items():
            for record in records:
                try:
                    job = parse_job(record.value)
                except InvalidMessage as exc:
                    again = self._again(tp, record)
                    result.taken.append((tp, record, None, exc.reason, again))
                    continue
                if job.not_before is not None and job.not_before > now:
                    self.gate.hold(tp, record.offset, job.not_before)
                    break
                # A first attempt's place in its order is its offset in dispatch-jobs.
                first = job.seq is None and tp.topic == self.topics.dispatch_jobs
                seq = record.offset if first else None
                again = self._again(tp, record)
                result.taken.append((tp, record, self.rules.resolve(job, seq), "", again))
        return result

    def _again(self, tp: TopicPartition, record: Any) -> bool:
        """On the consumer's thread: may an earlier owner have attempted this record?"""
        end = self.consumer.consumer.highwater(tp)
        return self.replays.may_repeat(tp, record.offset, end)

    def _start_all(self, polled: Polled) -> None:
        self.order.take_over(self, polled.handover)
        self.pace.follow(polled.owned, polled.total)
        for tp, record, job, reason, again in polled.taken:
            self.offsets.take(tp, record.offset)
            if job is None:
                self.sends.append(self.dead_letters.send(record, reason, "invalid_job"))
                self.offsets.finish(tp, record.offset)
            else:
                self.start(tp, record, job, again=again)

    def start(
        self, tp: Any, record: Any, job: DispatchJob, tracked: bool = True, again: bool = False
    ) -> None:
        """Take one job: end it at once (rule gone, target refused), defer it (its slow
        endpoint's backlog is full), or queue its delivery behind its order's previous one."""
        if again or not tracked:  # a lane's record read back may have been attempted too
            self.batches.mark(job.attempt_id)
        if job.target.refused is not None:
            reason = classify.TARGET_CHANGED
            outcome = self.deliverer.without_attempt(job, reason, job.target.refused)
            self.record(job, outcome, tp.partition)
            self._finish(tp, record, tracked)
            return
        if job.target.deleted:
            text = (
                f"rule {job.rule.rule_id} was deleted; nothing was sent"
                if job.rule.rule_id
                else f"account {job.event.account_id!r} has no notification_url; nothing was sent"
            )
            outcome = self.deliverer.without_attempt(job, classify.RULE_DELETED, text)
            self.record(job, outcome, tp.partition)
            self._finish(tp, record, tracked)
            return
        endpoint = endpoint_key(job.event.account_id, job.target.url)
        if self.waiting.full(endpoint) and tracked:
            # Its slots free up no sooner than its requests time out.
            wait_s = max(self.policy.tiers[0].delay_s, job.target.timeout_s)
            self.sends.append(self._defer(job, endpoint, wait_s, classify.ENDPOINT_BUSY))
            self._finish(tp, record, tracked)
            return
        # Jobs of one order for one rule go one after another; all others in parallel.
        key = (record.key, job.target.rule_id)
        previous = self.chains.get(key)
        ticket = self.waiting.join(endpoint)
        task = asyncio.create_task(self._deliver_after(previous, tp, record, job, ticket, tracked))
        self.running += 1
        self.chains[key] = task
        task.add_done_callback(functools.partial(self._chain_done, key))

    def _finish(self, tp: Any, record: Any, tracked: bool) -> None:
        """The record is done with (a record read back for an order lane has no offset here)."""
        if tracked:
            self.offsets.finish(tp, record.offset)

    def _stop_waiting(self, ticket: Ticket) -> None:
        if self.waiting.leave(ticket):
            self._check_drained()

    def _busy(self) -> int:
        """Jobs in hand that count toward the limit: all but those waiting for slow endpoints."""
        return self.running - self.waiting.stuck() - self.pacing

    def _check_drained(self) -> None:
        if self.throttled and self._busy() <= self.max_in_flight // 2:
            self.drained.set()

    def _chain_done(self, key: Any, task: asyncio.Task[None]) -> None:
        self.running -= 1
        self._check_drained()
        if self.chains.get(key) is task:
            del self.chains[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task failed: %r", task.exception())
            self.fatal = self.fatal or task.exception()
            self.stop()

    async def _deliver_after(
        self,
        previous: asyncio.Task[None] | None,
        tp: Any,
        record: Any,
        job: DispatchJob,
        ticket: Ticket,
        tracked: bool,
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        decision = await self._decision(job, Place(tp, record, tracked, ticket.endpoint))
        if isinstance(decision, Defer):
            self.sends.append(self._defer(job, ticket.endpoint, decision.wait_s, decision.why))
        elif decision is None:
            for crash in range(1, POISON_CRASHES + 1):
                try:
                    await self._handle(job, ticket, tp.partition)
                    break
                except Exception as exc:  # an unforeseen bug or input: never the whole worker
                    log.exception(
                        "handling %s crashed (%d of %d)", job.dispatch_id, crash, POISON_CRASHES
                    )
                    if crash == POISON_CRASHES:
                        reason = f"handling crashed {crash} times: {exc!r}"
                        self.sends.append(self.dead_letters.send(record, reason, "poison"))
                        for hook in self.hooks:
                            hook.on_dropped(self, job)
        self._stop_waiting(ticket)
        self._finish(tp, record, tracked)

    async def _decision(self, job: DispatchJob, place: Place) -> Decision:
        """The first hook's answer before an attempt (None: send it now), after every wait
        a hook asked for."""
        for hook in self.hooks:
            decision = hook.before_attempt(self, job, place)
            if isinstance(decision, Wait):
                await self._paced(decision.wait_s)
            elif decision is not None:
                return decision
        return None

    async def _paced(self, wait_s: float) -> None:
        """Wait for a rule's turn, out of the in-flight limit."""
        self.pacing += 1
        self._check_drained()
        try:
            await asyncio.sleep(wait_s)
        finally:
            self.pacing -= 1

    async def _handle(self, job: DispatchJob, ticket: Ticket, partition: int) -> None:
        """One attempt and its records."""
        failpoints.hit("worker.handle", job.event.order_id)
        # Manual resends go at most `resend_rate` a second per endpoint (a bulk resend must
        # not flood a receiver that just recovered); the wait counts as waiting.
        while job.manual and (pause := self.guard.resend_wait(ticket.endpoint)) > 0:
            await asyncio.sleep(pause)
        attempt = await self._attempt(job, ticket)
        for hook in self.hooks:
            hook.after_attempt(self, job, attempt, ticket.endpoint)
        self.record(job, attempt, partition)

    def _defer(self, job: DispatchJob, endpoint: str, wait_s: float, why: DeferReason) -> Any:
        """Park a job for later (circuit open, endpoint busy): not an attempt, uses none."""
        tier, parked_job = park_job(job, self.policy.tiers, wait_s, now_utc())
        for hook in self.hooks:
            hook.on_defer(self, job, endpoint, wait_s, why)
        return self.producer.send(
            self.topics.retry(tier.name),
            key=job.event.order_id.encode(),
            value=parked_job.model_dump_json().encode(),
        )

    async def _attempt(self, job: DispatchJob, ticket: Ticket) -> Attempt:
        # The endpoint's own slot first (waiting for it is what `slow` sees), then the host's
        # cap over every account, this account's share of the worker, the worker's limit;
        # then the rule's pace, once more (jobs can bunch up on the way to their slots): a
        # job too early gives its slots back and waits.
        while True:
            async with self.guard.slot(ticket.endpoint):
                self._stop_waiting(ticket)
                since = self.guard.started(ticket.endpoint)
                try:
                    async with (
                        self.guard.host_slot(host_of(ticket.endpoint)),
                        self.guard.account_slot(job.event.account_id),
                        self.limit,
                    ):
                        early_s = self.pace.sending(job)
                        if not early_s:
                            return await self.deliverer.deliver(job)
                finally:
                    self.guard.finished(ticket.endpoint, since)
            await self._paced(early_s)

    def tell(self, endpoint: str, value: bytes | None) -> None:
        """Write a parked-endpoints note: advice to the dispatchers, never waited for."""
        sent = self.producer.send(self.topics.parked_endpoints, key=endpoint.encode(), value=value)
        sent.add_errback(lambda exc: log.warning("note on %s not written: %s", endpoint, exc))

    def record(self, job: DispatchJob, attempt: Attempt, partition: int) -> None:
        """Settle a job's record and keep it for the next batch (its retry sent now)."""
        self.sends.extend(self._record(job, attempt, partition))

    def _record(self, job: DispatchJob, outcome: Attempt, partition: int) -> list[Any]:
        """Keep the outcome for the next batch; send the next attempt's job if it retries."""
        settled = settle(job, outcome, self.policy, random.random())
        outcome, sends = settled.outcome, []
        if settled.retry is not None and outcome.retry_tier:
            sends.append(
                self.producer.send(
                    self.topics.retry(outcome.retry_tier),
                    key=job.event.order_id.encode(),
                    value=settled.retry.model_dump_json().encode(),
                )
            )
        for hook in self.hooks:
            hook.on_settled(self, job, outcome, partition)
        self.batches.add(partition, outcome.attempt_id, row_line(outcome))
        return sends

    async def commit(self) -> None:
        """Write the outcome batches, make every send durable, then commit each partition's
        finished prefix (its jobs' outcomes are in the batches written just before)."""
        # Taken together: the lanes as these sends left them, and the offsets they finish.
        sends, self.sends = self.sends, []
        batches = self.batches.take()  # the outcomes of every job `ready` finishes
        lane_writes = self.order.snapshot()
        ready = self.offsets.committable()
        if not sends and not batches and not ready and not lane_writes:
            return
        for key, value, headers in batches:
            sends.append(
                self.producer.send(self.topics.outcomes, key=key, value=value, headers=headers)
            )
        await asyncio.to_thread(self.producer.flush)
        for send in sends:
            if send.failed():
                raise OutcomeNotRecorded(f"outcome or retry not written: {send.exception}")
        if batches:
            failpoints.hit("worker.after_outcomes")  # batches written, their jobs not committed
        # A lane names retries and parked records as durable: written only once they are,
        # and the offsets only once the lanes are (a replay finds the lane that skips it).
        if lane_writes:
            written = [
                self.producer.send(self.topics.order_lanes, key=k, value=v, partition=p)
                for p, k, v in lane_writes
            ]
            await asyncio.to_thread(self.producer.flush)
            for send in written:
                if send.failed():
                    raise OutcomeNotRecorded(f"order lane not written: {send.exception}")
        owned = self.consumer.assigned
        for tp, offset in ready.items():
            if tp in owned:
                self.uncommitted[tp] = OffsetAndMetadata(offset, "", -1)
        self.offsets.forget(tp for tp in ready if tp not in owned)
        if self.uncommitted:
            await self.consumer.call(self._commit)

    def _commit(self) -> None:
        """On the consumer's thread: commit, bounded (the broker may be away)."""
        if commit_bounded(self.consumer.consumer, dict(self.uncommitted), "worker"):
            self.uncommitted.clear()
            self.commits += 1

    async def _throttle(self) -> bool:
        """Pause fetching while too many deliveries run; resume at half of it. True if paused."""
        if not self.throttled and self._busy() >= self.max_in_flight:
            self.drained.clear()
            self.throttled = True
            await self.consumer.call(self._pause_all)
        elif self.throttled and self._busy() <= self.max_in_flight // 2:
            self.throttled = False
            await self.consumer.call(self._resume_all)
        return self.throttled

    def _pause_all(self) -> None:
        self.consumer.consumer.pause(*self.consumer.consumer.assignment())

    def _resume_all(self) -> None:
        consumer = self.consumer.consumer
        consumer.resume(*(tp for tp in consumer.assignment() if tp not in self.gate.waiting))

    async def _until_drained(self) -> None:
        """Wait (briefly) for running deliveries to fall to half the limit."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drained.wait(), POLL_S)


def job_topics(settings: WorkerSettings) -> list[str]:
    """Where the worker's jobs come from: first attempts, resends and every retry tier."""
    topics = Topics(settings.topic_prefix)
    retry_topics = [topics.retry(t.name) for t in settings.retry_tiers]
    return [topics.dispatch_jobs, topics.resend, *retry_topics]


def make_consumer(settings: WorkerSettings) -> KafkaConsumer:
    """The worker's consumer of first-attempt, retry-tier and resend jobs."""
    consumer = group_consumer(
        settings,
        settings.worker_group,
        "disparo-worker",
        max_poll_records=settings.worker_batch,
        fetch_min_bytes=64 * 1024,  # fewer, fuller fetches: the broker's CPU is shared
        fetch_max_wait_ms=25,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        # Order lanes need one worker to own the same partition of every job topic.
        partition_assignment_strategy=(RangePartitionAssignor,),
    )
    subscribe_when_ready(consumer, job_topics(settings))
    return consumer


async def serve(settings: WorkerSettings) -> None:
    """Run one worker process until SIGTERM or SIGINT."""
    # The rules first: a job names its rule, and the view must hold every rule to resolve it.
    box = settings.secret_box()
    rules = RulesView(settings, box)
    await asyncio.to_thread(rules.start, 60)
    accounts = AccountsView(settings, box)  # where each account's notifications go
    await asyncio.to_thread(accounts.start, 60)
    keys = KeysView(settings)  # who may read /debug/stacks
    await asyncio.to_thread(keys.start, 60)
    try:
        consumer = ConsumerThread(functools.partial(make_consumer, settings), "worker-consumer")
    except KafkaError as exc:
        raise SystemExit(f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}") from exc
    lag = GroupLag(settings, settings.worker_group, job_topics(settings))
    producer = make_producer(settings, client_id="disparo-worker", linger_ms=20)
    transport = make_transport(settings.worker_concurrency, settings.allowed_targets)
    reach = Reach(
        transport,
        settings.allowed_targets,
        functools.partial(make_transport, settings.worker_concurrency),
        lambda account_id: a.allow_entries() if (a := accounts.get(account_id)) else (),
    )
    deliverer = Deliverer(transport, excerpt_bytes=settings.excerpt_bytes, reach=reach)
    lane_store = LaneStore(settings, Topics(settings.topic_prefix).order_lanes)
    worker = DeliveryWorker(
        settings, consumer, producer, deliverer, RuleLookup(rules, accounts), lane_store
    )
    heap.settle()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    metrics.declare_series(settings.metered_accounts)
    ops = await start_ops_server(
        settings.ops_host,
        settings.worker_port,
        lambda: bool(consumer.assigned),
        admin=keys.is_platform_admin,
    )
    lag.start()
    log.info("delivery worker started group=%s", settings.worker_group)
    try:
        await worker.run()
    finally:
        await reach.aclose()
        await transport.aclose()
        if ops is not None:
            await ops.cleanup()
        await asyncio.to_thread(producer.close, 10)
        await asyncio.to_thread(consumer.close)
        await asyncio.to_thread(lane_store.close)
        await asyncio.to_thread(lag.stop)
        await asyncio.to_thread(rules.stop)
        await asyncio.to_thread(accounts.stop)
        await asyncio.to_thread(keys.stop)
        log.info("delivery worker stopped after %d commits", worker.commits)
