"""Kafka ACLs: one principal per service, each allowed what its stage does, no more.

Only analytics writes the control topics (rules, accounts, api-keys, rule ids): a worker's
or a dispatcher's credentials cannot rewrite a rule. Every service reads and describes the
deployment's topics (views, lag) and may create them (faust declares its topics at start);
each writes only the topics its stage produces, and reads as its own consumer groups.
`disparo acls` prints them as `kafka-acls.sh` commands; `apply` creates them.
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePattern,
    ResourceType,
)

from disparo.topics import Topics

SERVICES = ("analytics", "dispatcher", "worker")
READ_TOPICS = ("READ", "DESCRIBE", "CREATE")
GROUP_OPS = ("READ", "DESCRIBE")


@dataclass(frozen=True)
class Grant:
    """Operations allowed on a topic or group, by its literal name or a name prefix."""

    resource: str  # TOPIC or GROUP
    name: str
    prefixed: bool
    operations: tuple[str, ...]


def grants(service: str, prefix: str, groups: tuple[str, ...]) -> list[Grant]:
    """What `service` may do in the deployment on topic prefix `prefix`, as `groups`."""
    t = Topics(prefix)
    common = [
        Grant("TOPIC", prefix, True, READ_TOPICS),
        *(Grant("GROUP", g, False, GROUP_OPS) for g in groups),
    ]
    if service == "analytics":  # the control plane: rules, accounts, keys, jobs, events
        return [
            *common,
            Grant("TOPIC", prefix, True, ("WRITE",)),
            Grant("GROUP", "*", False, ("DESCRIBE",)),
        ]
    if service == "dispatcher":  # faust: its own internal topics under its app id too
        writes: tuple[str, ...] = (t.dispatch_jobs, t.dead_letter)
        internal = [Grant("TOPIC", f"{g}-", True, ("ALL",)) for g in groups]
        return [*common, *_writes(writes), Grant("TOPIC", t.retry(""), True, ("WRITE",)), *internal]
    if service == "worker":
        writes = (t.outcomes, t.dead_letter, t.parked_endpoints, t.order_lanes)
        return [*common, *_writes(writes), Grant("TOPIC", t.retry(""), True, ("WRITE",))]
    raise ValueError(f"no ACLs for service {service!r}; one of {', '.join(SERVICES)}")


def _writes(topics: tuple[str, ...]) -> list[Grant]:
    return [Grant("TOPIC", name, False, ("WRITE",)) for name in topics]


def commands(
    principals: dict[str, str], prefix: str, groups: dict[str, tuple[str, ...]]
) -> list[str]:
    """The grants as `kafka-acls.sh` command lines (for docs and operators)."""
    lines = []
    for service, principal in principals.items():
        for g in grants(service, prefix, groups.get(service, ())):
            flag = "--topic" if g.resource == "TOPIC" else "--group"
            pattern = " --resource-pattern-type prefixed" if g.prefixed else ""
            ops = " ".join(f"--operation {op.title()}" for op in g.operations)
            lines.append(
                f"kafka-acls.sh --add --allow-principal User:{principal} {flag} '{g.name}'"
                f"{pattern} {ops}"
            )
    return lines


def apply(
    admin: KafkaAdminClient,
    principals: dict[str, str],
    prefix: str,
    groups: dict[str, tuple[str, ...]],
) -> int:
    """Create every service's ACLs; how many were created."""
    acls = [
        ACL(
            principal=f"User:{principal}",
            host="*",
            operation=ACLOperation[op],
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(
                ResourceType[g.resource],
                g.name,
                ACLResourcePatternType.PREFIXED if g.prefixed else ACLResourcePatternType.LITERAL,
            ),
        )
        for service, principal in principals.items()
        for g in grants(service, prefix, groups.get(service, ()))
        for op in g.operations
    ]
    result = admin.create_acls(acls)
    failed = result.get("failed", [])
    if failed:
        raise RuntimeError(f"ACLs not created: {failed}")
    return len(acls)
