"""The `disparo` command: run the local stack, a single service, or publish events."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Iterator
from typing import Any, TextIO

from disparo.errors import DisparoError
from disparo.settings import KernelSettings, load


def _prepare(settings: KernelSettings, logs: bool = True) -> None:
    """Before a service starts: its logging, and a refused SASL login stops it now, named."""
    from disparo.kafka import check_login
    from disparo.logs import setup

    if logs:  # faust sets up the dispatcher's own
        setup(settings.log_level, settings.log_format)
    check_login(settings)


def cmd_up(args: argparse.Namespace) -> int:
    from analytics.settings import AnalyticsSettings
    from deploy.local import stack

    settings = load(AnalyticsSettings)
    try:
        stack.up(settings, settings.api_port, demo_data=not args.no_demo)
    except DisparoError as exc:
        raise DisparoError(
            f"{exc}\nWhat did start is still running; `make down` stops it."
        ) from exc
    return 0


def cmd_down(_: argparse.Namespace) -> int:
    from deploy.local import stack

    stack.down(load(KernelSettings))
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    from analytics.settings import AnalyticsSettings
    from consumers.settings import WorkerSettings
    from consumers.worker import job_topics
    from deploy.local import stack
    from disparo.topics import Topics
    from dispatcher.settings import DispatcherSettings

    settings = load(AnalyticsSettings)
    worker = load(WorkerSettings)
    topics = Topics(settings.topic_prefix)
    groups = {
        load(DispatcherSettings).dispatcher_group: [topics.order_events, topics.rules],
        worker.worker_group: job_topics(worker),
        settings.sink_group: [topics.outcomes],
        settings.event_sink_group: [topics.order_events],
    }
    return stack.status(settings, settings.api_port, groups, _duties_owner(settings))


def _duties_owner(settings: Any) -> str:
    """Which analytics process runs the background duties, as the duties group says."""
    from kafka.errors import KafkaError

    from analytics.control.duties import owner_of
    from disparo.kafka import make_admin
    from disparo.topics import Topics

    try:
        admin = make_admin(settings, timeout_s=5)
    except DisparoError as exc:
        return f"unknown (Kafka not reachable: {exc})"
    try:
        owner = owner_of(admin, settings.duties_group, Topics(settings.topic_prefix).control)
    except KafkaError as exc:
        return f"unknown ({exc})"
    finally:
        admin.close()
    return f"owned by {owner}" if owner else "no owner (no analytics process in the group)"


def cmd_topics(_: argparse.Namespace) -> int:
    from disparo.kafka import ensure_topics

    created = ensure_topics(load(KernelSettings))
    print(f"created {len(created)} topics: {', '.join(created) or '-'}")
    return 0


def cmd_acls(args: argparse.Namespace) -> int:
    from analytics.settings import AnalyticsSettings
    from consumers.settings import WorkerSettings
    from deploy.kafka_acls import apply, commands
    from disparo.kafka import make_admin
    from dispatcher.settings import DispatcherSettings

    settings = load(KernelSettings)
    analytics, worker = load(AnalyticsSettings), load(WorkerSettings)
    groups = {
        "analytics": (analytics.sink_group, analytics.event_sink_group, analytics.duties_group),
        "dispatcher": (load(DispatcherSettings).dispatcher_group,),
        "worker": (worker.worker_group,),
    }
    principals = {"analytics": args.analytics, "dispatcher": args.dispatcher, "worker": args.worker}
    if not args.apply:
        print(
            f"# each with --bootstrap-server {settings.kafka_bootstrap} --command-config "
            "<a super user's client properties>; or run `disparo acls --apply`"
        )
        print("\n".join(commands(principals, settings.topic_prefix, groups)))
        return 0
    admin = make_admin(settings)
    try:
        made = apply(admin, principals, settings.topic_prefix, groups)
    finally:
        admin.close()
    print(f"created {made} ACLs for {', '.join(f'User:{p}' for p in principals.values())}")
    return 0


def cmd_certs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deploy.tls import make_certificates

    ca, broker = make_certificates(
        Path(args.ca_dir), tuple(args.host), args.days, Path(args.broker_dir or args.ca_dir)
    )
    print(f"CA for clients (DISPARO_KAFKA_CA_FILE): {ca}")
    print(f"broker key and chain (ssl.keystore.type=PEM, keep it private): {broker}")
    return 0


def cmd_dispatcher(_: argparse.Namespace) -> int:
    from dispatcher.app import run
    from dispatcher.settings import DispatcherSettings

    settings = load(DispatcherSettings)
    _prepare(settings, logs=False)
    run(settings)
    return 0


def cmd_worker(_: argparse.Namespace) -> int:
    from consumers.settings import WorkerSettings
    from consumers.worker import serve
    from disparo.loops import run

    settings = load(WorkerSettings)
    _prepare(settings)
    run(serve(settings))
    return 0


def cmd_analytics(_: argparse.Namespace) -> int:
    from analytics.service import run
    from analytics.settings import AnalyticsSettings

    settings = load(AnalyticsSettings)
    _prepare(settings)
    run(settings)
    return 0


def cmd_demo_receiver(args: argparse.Namespace) -> int:
    from deploy.local.demo import serve_receiver
    from disparo.logs import setup

    settings = load(KernelSettings)
    setup(settings.log_level, settings.log_format)  # no Kafka here: no login to check
    serve_receiver(args.port)
    return 0


def _events_from(stream: TextIO) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(stream, 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise DisparoError(f"line {number} is not JSON: {exc}") from None


def cmd_produce(args: argparse.Namespace) -> int:
    from disparo.schemas import now_utc
    from producers.publish import Publisher

    publisher = Publisher(load(KernelSettings))
    if args.file:
        stream = sys.stdin if args.file == "-" else open(args.file)  # noqa: SIM115
        events: list[dict[str, Any]] = list(_events_from(stream))
    else:
        if not (args.order_id and args.event_type):
            raise DisparoError("give --order-id and --event-type, or --file with JSON lines")
        events = [
            {
                "event_id": str(uuid.uuid4()),
                "event_type": args.event_type,
                "order_id": args.order_id,
                "order_status": args.status,
                "occurred_at": now_utc().isoformat(),
                "payload": json.loads(args.payload),
            }
        ]
    for start in range(0, len(events), 1000):
        publisher.publish_many(events[start : start + 1000])
        print(f"published {min(start + 1000, len(events))}/{len(events)}", file=sys.stderr)
    publisher.close()
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from analytics.control.keys import KeyBook

    book = KeyBook(load(KernelSettings))
    try:
        if args.action == "create":
            secret, key = book.create(args.name, args.role, args.account)
            print(f"created {key.id} ({key.name}, {key.role}); the key, shown only now:")
            print(secret)
        elif args.action == "revoke":
            key = book.revoke(args.id)
            print(f"revoked {key.id} ({key.name}) at {key.revoked_at}")
        else:
            print(f"{'id':22} {'name':24} {'role':10} {'created':26} revoked")
            for key in book.view.all():
                created = key.created_at.isoformat(timespec="seconds")
                gone = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "-"
                print(f"{key.id:22} {key.name:24} {key.role:10} {created:26} {gone}")
    finally:
        book.close()
    return 0


def cmd_secrets(args: argparse.Namespace) -> int:
    if args.action == "new-key":
        from disparo.secret_box import new_key_text

        print(new_key_text())
        return 0
    from analytics.control.rule_book import RuleBook
    from disparo.kafka import make_producer
    from disparo.rule_codec import unusable
    from disparo.rules_view import RulesView
    from disparo.topics import Topics

    settings = load(KernelSettings)
    box = settings.secret_box()
    view = RulesView(settings, box)
    view.start(timeout_s=60)  # every rule opened, with the key or the previous one
    rules = [r for r in view.all() if not unusable(r)]
    broken = [r.id for r in view.all() if unusable(r)]
    producer = make_producer(settings, client_id="disparo-secrets")
    book = RuleBook(producer, Topics(settings.topic_prefix), view, box)
    try:
        book.reseal(rules, lambda n: print(f"resealed {n}/{len(rules)} rules", file=sys.stderr))
        book.seal_strictly()
    finally:
        producer.close(10)
    view.stop()
    print(
        f"every rule is sealed with key {box.fingerprint}, bound to its id and URL; "
        "plain-text values are refused from now on; DISPARO_SECRET_KEY_PREVIOUS can go"
    )
    if broken:
        print(
            f"rules whose record was written outside the API, left as they are (save each "
            f"through the API with its secret): {', '.join(map(str, broken))}"
        )
    return 0


def _secrets_parser(sub: Any) -> None:
    secrets = sub.add_parser("secrets", help="the key that seals rule secrets in the rules topic")
    actions = secrets.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("new-key", help="print a new random key for DISPARO_SECRET_KEY")
    actions.add_parser(
        "rewrap",
        help="reseal every rule with DISPARO_SECRET_KEY, opening old ones with "
        "DISPARO_SECRET_KEY_PREVIOUS (run after changing the key; see docs/operations.md)",
    )
    secrets.set_defaults(run=cmd_secrets)


def _keys_parser(sub: Any) -> None:
    from disparo.access import ROLES

    keys = sub.add_parser("keys", help="create, list or revoke API keys")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True, help="who uses it; shown as the audit actor")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--account", help="limit the key to one account's rules, history and keys")
    actions.add_parser("list", help="every key: id, name, role, created, revoked")
    revoke = actions.add_parser("revoke", help="revoke a key (refused by the API within seconds)")
    revoke.add_argument("id", help="the key id, e.g. key_0123456789abcdef")
    keys.set_defaults(run=cmd_keys)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="disparo",
        description="Webhook dispatch for order events. Settings: DISPARO_* "
        "environment variables (see README).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="start Kafka, the services and the demo in the background")
    up.add_argument("--no-demo", action="store_true", help="skip the demo receiver and events")
    up.set_defaults(run=cmd_up)
    sub.add_parser("down", help="stop everything `up` started").set_defaults(run=cmd_down)
    sub.add_parser(
        "status", help="local processes, consumer lag, last minute's deliveries and failure %%"
    ).set_defaults(run=cmd_status)
    sub.add_parser("topics", help="create the topics if missing").set_defaults(run=cmd_topics)
    acls = sub.add_parser(
        "acls",
        help="print (or --apply) the Kafka ACLs of one principal per service "
        "(only analytics writes rules, accounts and api-keys; docs/operations.md)",
    )
    for service in ("analytics", "dispatcher", "worker"):
        acls.add_argument(f"--{service}", default=service, help=f"the {service}'s SASL user")
    acls.add_argument(
        "--apply",
        action="store_true",
        help="create them, connecting as DISPARO_KAFKA_* (a super user)",
    )
    acls.set_defaults(run=cmd_acls)
    certs = sub.add_parser(
        "certs", help="make a CA and a broker certificate for Kafka's SASL_SSL listener"
    )
    certs.add_argument("ca_dir", help="where ca.pem goes (what clients trust)")
    certs.add_argument("--broker-dir", help="where broker.pem goes (default: ca_dir)")
    certs.add_argument("--host", action="append", required=True, help="a broker host name or IP")
    certs.add_argument("--days", type=int, default=825, help="validity (default 825)")
    certs.set_defaults(run=cmd_certs)
    sub.add_parser("dispatcher", help="run the rule-matching processor (faust)").set_defaults(
        run=cmd_dispatcher
    )
    sub.add_parser("worker", help="run a delivery worker").set_defaults(run=cmd_worker)
    sub.add_parser("analytics", help="run the outcomes sink and management API").set_defaults(
        run=cmd_analytics
    )
    demo = sub.add_parser("demo-receiver", help="run the demo webhook receiver")
    demo.add_argument("--port", type=int, default=8090)
    demo.set_defaults(run=cmd_demo_receiver)
    produce = sub.add_parser("produce", help="publish order events to Kafka")
    produce.add_argument("--order-id")
    produce.add_argument("--event-type", help="e.g. order.dispatched")
    produce.add_argument("--status", help="order status at the time of the event")
    produce.add_argument("--payload", default="{}", help="JSON object")
    produce.add_argument("--file", help="JSON lines of OrderEvents ('-' for stdin)")
    produce.set_defaults(run=cmd_produce)
    _keys_parser(sub)
    _secrets_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except DisparoError as exc:
        print(f"disparo: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
