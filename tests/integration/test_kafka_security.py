"""Every Kafka client over SASL_SSL (SCRAM-SHA-512) to a real broker with a test-made CA."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import TopicAuthorizationFailedError
from standardwebhooks.webhooks import Webhook

from deploy.kafka_acls import SERVICES, apply
from deploy.local.broker import REPO_ROOT, KafkaNode, SecureListener, free_port, provision_jars
from deploy.local.processes import ProcessTable
from deploy.tls import make_certificates
from disparo.kafka import client_options
from disparo.secret_box import new_key_text
from disparo.settings import KernelSettings
from tests.integration.conftest import DISPARO, order_event, running_stack, stacks_stopped
from tests.integration.receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
PASSWORD = "scram-password-for-tests"


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A broker whose clients' listener is SASL_SSL only; yields its address and CA file."""
    home = tmp_path_factory.mktemp("sasl-ssl")
    ca_file, broker_pem = make_certificates(home / "tls")
    # `disparo` is the test's own super user; each service has a principal of its own, held
    # to the ACLs of deploy/kafka_acls.py (the ACL test grants them for its prefix).
    users = tuple((name, PASSWORD) for name in ("disparo", *SERVICES))
    secure = SecureListener(free_port(), broker_pem, users, super_users=("disparo",))
    node = KafkaNode(
        libs=provision_jars(REPO_ROOT / ".local" / "kafka"),
        data_dir=home / "kafka",
        port=free_port(),
        controller_port=free_port(),
        heap="512m",
        secure=secure,
    )
    table = ProcessTable(home / "run")
    node.start(table)
    try:
        node.wait_ready(90)
        yield f"127.0.0.1:{secure.port}", ca_file
    finally:
        stacks_stopped()  # the stacks' services leave their groups before the broker goes
        table.stop("kafka", grace_s=20)


def sasl_env(ca_file: Path, password: str = PASSWORD) -> dict[str, str]:
    return {
        "DISPARO_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "DISPARO_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "DISPARO_KAFKA_SASL_USERNAME": "disparo",
        "DISPARO_KAFKA_SASL_PASSWORD": password,
        "DISPARO_KAFKA_CA_FILE": str(ca_file),
    }


def test_the_whole_pipeline_delivers_a_signed_webhook_over_sasl_ssl(
    secure_broker: tuple[str, Path], tmp_path: Path, receiver: Receiver
) -> None:
    bootstrap, ca_file = secure_broker
    with running_stack(bootstrap, tmp_path, **sasl_env(ca_file)) as stack:
        rule = stack.active_rule(name="tls", event_types=["*"], url=f"{receiver.url}/ok/tls")
        stack.publisher.publish_many([order_event("TLS-1")])
        [row] = stack.rows_eventually(1, rule_id=rule["id"])
        assert (row["order_id"], row["status"]) == ("TLS-1", "success")
        [got] = receiver.on("/ok/tls")
        Webhook(rule["secret"]).verify(got.body, got.headers)  # raises if not signed by it
        assert b'"TLS-1"' in got.body


def test_a_wrong_password_stops_a_service_at_start_with_a_clear_error(
    secure_broker: tuple[str, Path], tmp_path: Path
) -> None:
    bootstrap, ca_file = secure_broker
    env = {
        **os.environ,
        **sasl_env(ca_file, password="not-the-password"),
        "DISPARO_KAFKA_BOOTSTRAP": bootstrap,
        "DISPARO_HOME": str(tmp_path),
        "DISPARO_TOPIC_PREFIX": "wrongpw.",
        "DISPARO_WORKER_PORT": "0",
        "DISPARO_SECRET_KEY": new_key_text(),
    }
    done = subprocess.run([DISPARO, "worker"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "refused the credentials of DISPARO_KAFKA_SASL_USERNAME='disparo'" in done.stderr
    assert "DISPARO_KAFKA_SASL_PASSWORD" in done.stderr
    assert "not-the-password" not in done.stderr
    half = {k: v for k, v in env.items() if k != "DISPARO_KAFKA_SASL_PASSWORD"}
    refused = subprocess.run(
        [DISPARO, "worker"], env=half, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0
    assert "needs DISPARO_KAFKA_SASL_USERNAME and DISPARO_KAFKA_SASL_PASSWORD" in refused.stderr


def _client_options(bootstrap: str, ca_file: Path, user: str) -> dict[str, Any]:
    """What a kafka-python client logging in as `user` gets (the services' own options)."""
    env = {**sasl_env(ca_file), "DISPARO_KAFKA_SASL_USERNAME": user}
    fields = {k.removeprefix("DISPARO_").lower(): v for k, v in env.items()}
    return client_options(KernelSettings(kafka_bootstrap=bootstrap, **fields))


def test_each_service_is_its_own_principal_and_only_analytics_writes_rules(
    secure_broker: tuple[str, Path], tmp_path: Path, receiver: Receiver
) -> None:
    bootstrap, ca_file = secure_broker
    prefix = f"acl{uuid.uuid4().hex[:8]}."
    groups = {
        "analytics": (f"{prefix}sink", f"{prefix}events", f"{prefix}duties"),
        "dispatcher": (f"{prefix}dispatcher",),
        "worker": (f"{prefix}delivery",),
    }
    admin = KafkaAdminClient(**_client_options(bootstrap, ca_file, "disparo"))
    try:
        assert apply(admin, {s: s for s in SERVICES}, prefix, groups) > 0
    finally:
        admin.close()
    own = {s: {"DISPARO_KAFKA_SASL_USERNAME": s} for s in SERVICES}
    with running_stack(
        bootstrap, tmp_path, prefix=prefix, service_env=own, **sasl_env(ca_file)
    ) as stack:
        rule = stack.active_rule(name="acl", event_types=["*"], url=f"{receiver.url}/ok/acl")
        stack.publisher.publish_many([order_event("ACL-1")])
        [row] = stack.rows_eventually(1, rule_id=rule["id"])
        assert (row["order_id"], row["status"]) == ("ACL-1", "success")
        for service in ("worker", "dispatcher"):
            producer = KafkaProducer(**_client_options(bootstrap, ca_file, service))
            try:
                sent = producer.send(stack.topics.rules, key=b"1", value=b"{}")
                with pytest.raises(TopicAuthorizationFailedError):
                    sent.get(timeout=30)
            finally:
                producer.close(10)
        assert stack.rule(rule["id"])["url"] == f"{receiver.url}/ok/acl"
