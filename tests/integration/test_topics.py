"""Topic creation on a real broker: the contract's topics, once, whoever creates them first."""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from disparo import kafka
from disparo.settings import KernelSettings
from disparo.topics import Topics

pytestmark = pytest.mark.integration


def settings_for(bootstrap: str) -> KernelSettings:
    prefix = f"c{uuid.uuid4().hex[:8]}."
    return KernelSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix, retry_schedule="1s,2s")


def partitions(admin: KafkaAdminClient, names: list[str]) -> dict[str, int]:
    return {t["topic"]: len(t["partitions"]) for t in admin.describe_topics(names)}


def test_every_contract_topic_is_created_once_with_its_partitions(kafka_bootstrap: str) -> None:
    settings = settings_for(kafka_bootstrap)
    specs = Topics(settings.topic_prefix).specs(["1s", "2s"])
    created = kafka.ensure_topics(settings)
    assert sorted(created) == sorted(s.name for s in specs)
    assert kafka.ensure_topics(settings) == []  # a second start creates nothing
    admin = kafka.make_admin(settings)
    try:
        assert partitions(admin, created) == {s.name: s.partitions for s in specs}
    finally:
        admin.close()


def test_topics_another_client_created_meanwhile_are_left_and_the_rest_created(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(kafka_bootstrap)
    specs = Topics(settings.topic_prefix).specs(["1s", "2s"])
    first = kafka.make_admin(settings)
    other = specs[0].name  # created by another client with 1 partition, not the contract's
    first.create_topics([NewTopic(other, 1, 1)])
    first.close()
    # Another replica created one topic between our listing and our request: the broker
    # creates the rest of the batch and answers TopicAlreadyExists for that one; asked again
    # one by one, every topic then exists.
    blind = kafka.make_admin(settings)
    monkeypatch.setattr(blind, "list_topics", lambda: [])
    monkeypatch.setattr(kafka, "make_admin", lambda _settings: blind)
    assert sorted(kafka.ensure_topics(settings)) == sorted(s.name for s in specs)
    monkeypatch.undo()
    admin = kafka.make_admin(settings)
    try:
        expected = {s.name: s.partitions for s in specs} | {other: 1}
        assert partitions(admin, [s.name for s in specs]) == expected
    finally:
        admin.close()
