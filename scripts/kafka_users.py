"""The Strimzi KafkaUsers of deploy/k8s/base/kafka/users.yaml, applied to the local broker.

`python -m scripts.kafka_users <bootstrap>` (run by `deploy/local/stack.sh up` over the PLAINTEXT listener, whose
principal `User:ANONYMOUS` is a super user of the local broker) gives every KafkaUser a SCRAM-SHA-512 credential
and exactly the ACLs its resource lists: missing bindings are created and bindings of those principals that the
file no longer lists are deleted. The SASL listener then refuses a principal what production refuses it.

aiokafka's admin client has no ACL or SCRAM calls, so the requests are built here from its protocol structs:
CreateAcls/DescribeAcls/DeleteAcls v1 (KIP-290 pattern types) and AlterUserScramCredentials v0 (KIP-554).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

REPO = Path(__file__).resolve().parents[1]
USERS_FILE = REPO / "deploy" / "k8s" / "base" / "kafka" / "users.yaml"
# Local development passwords (the SASL listener binds 127.0.0.1 only); Strimzi generates real ones.
LOCAL_PASSWORD_SUFFIX = "-local-secret"  # noqa: S105 - loopback-only development broker
SCRAM_ITERATIONS = 4096  # Kafka's minimum for SCRAM-SHA-512 (KIP-554)

# Kafka's wire codes (org.apache.kafka.common.acl / resource).
RESOURCE_TYPES = {"topic": 2, "group": 3, "cluster": 4, "transactionalId": 5}
PATTERN_TYPES = {"literal": 3, "prefix": 4}
OPERATIONS = {
    "All": 2,
    "Read": 3,
    "Write": 4,
    "Create": 5,
    "Delete": 6,
    "Alter": 7,
    "Describe": 8,
    "ClusterAction": 9,
    "DescribeConfigs": 10,
    "AlterConfigs": 11,
    "IdempotentWrite": 12,
}
ANY, ALLOW, MATCH_ANY_PATTERN = 1, 3, 1
SCRAM_SHA_512 = 2


@dataclass(frozen=True, order=True)
class AclBinding:
    """One allow rule, as the broker stores it."""

    principal: str
    resource_type: int
    resource_name: str
    pattern_type: int
    operation: int
    host: str = "*"


def local_password(user: str) -> str:
    return f"{user}{LOCAL_PASSWORD_SUFFIX}"


def kafka_users(path: Path = USERS_FILE) -> list[dict[str, Any]]:
    return [
        document
        for document in yaml.safe_load_all(path.read_text())
        if document and document.get("kind") == "KafkaUser"
    ]


def bindings(users: list[dict[str, Any]]) -> set[AclBinding]:
    """Every ACL binding the KafkaUsers list (Strimzi's `simple` authorization, one binding per operation)."""
    found: set[AclBinding] = set()
    for user in users:
        principal = f"User:{user['metadata']['name']}"
        for rule in user["spec"]["authorization"]["acls"]:
            resource = rule["resource"]
            name = resource.get("name", "kafka-cluster")  # the cluster resource has one fixed name
            for operation in rule["operations"]:
                found.add(
                    AclBinding(
                        principal,
                        RESOURCE_TYPES[resource["type"]],
                        name,
                        PATTERN_TYPES[resource.get("patternType", "literal")],
                        OPERATIONS[operation],
                        rule.get("host", "*"),
                    )
                )
    return found


class AlterUserScramCredentialsResponse_v0(Response):  # type: ignore[misc]  # noqa: N801 - aiokafka's naming
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("user_name", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentialsRequest_v0(RequestStruct):  # type: ignore[misc]  # noqa: N801
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = AlterUserScramCredentialsResponse_v0
    SCHEMA = Schema(
        ("deletions", CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields))),
        (
            "upsertions",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", CompactBytes),
                ("salted_password", CompactBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentialsRequest(Request[AlterUserScramCredentialsRequest_v0]):  # type: ignore[misc]
    API_KEY = 51

    def __init__(self, passwords: dict[str, str]) -> None:
        self._passwords = passwords

    def build(
        self, request_struct_class: type[AlterUserScramCredentialsRequest_v0]
    ) -> AlterUserScramCredentialsRequest_v0:
        upsertions: list[tuple[str, int, int, bytes, bytes, dict[int, bytes]]] = []
        for user, password in sorted(self._passwords.items()):
            salt = secrets.token_bytes(32)
            # SCRAM's Hi() is PBKDF2 with HMAC (RFC 5802); the client sends the salted password, never the password.
            salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, SCRAM_ITERATIONS)
            upsertions.append((user, SCRAM_SHA_512, SCRAM_ITERATIONS, salt, salted, {}))
        return request_struct_class([], upsertions, {})


def _create(binding: AclBinding) -> CreateAclsRequest:
    return CreateAclsRequest(
        binding.resource_type,
        binding.resource_name,
        binding.pattern_type,
        binding.principal,
        binding.host,
        binding.operation,
        ALLOW,
    )


async def existing_bindings(admin: AIOKafkaAdminClient, principals: set[str]) -> set[AclBinding]:
    found: set[AclBinding] = set()
    for principal in sorted(principals):
        response = await admin._send_request(
            DescribeAclsRequest(ANY, None, MATCH_ANY_PATTERN, principal, None, ANY, ANY)
        )
        if response.error_code:
            raise RuntimeError(f"DescribeAcls for {principal}: {response.error_code} {response.error_message}")
        for resource_type, name, pattern, acls in response.resources:
            for acl_principal, host, operation, permission in acls:
                if permission == ALLOW:
                    found.add(AclBinding(acl_principal, resource_type, name, pattern, operation, host))
    return found


async def apply(bootstrap: str, path: Path = USERS_FILE) -> tuple[int, int]:
    """Credentials and ACLs of the file onto the broker; returns (bindings created, bindings deleted)."""
    users = kafka_users(path)
    wanted = bindings(users)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="slm-kafka-users")
    await admin.start()
    try:
        names = [user["metadata"]["name"] for user in users]
        response = await admin._send_request(
            AlterUserScramCredentialsRequest({name: local_password(name) for name in names})
        )
        failed = [(name, code, message) for name, code, message, _ in response.results if code]
        if failed:
            raise RuntimeError(f"AlterUserScramCredentials failed: {failed}")
        present = await existing_bindings(admin, {f"User:{name}" for name in names})
        for binding in sorted(wanted - present):
            created = await admin._send_request(_create(binding))
            for code, message in created.creation_responses:
                if code:
                    raise RuntimeError(f"CreateAcls {binding}: {code} {message}")
        for binding in sorted(present - wanted):
            await admin._send_request(
                DeleteAclsRequest(
                    binding.resource_type,
                    binding.resource_name,
                    binding.pattern_type,
                    binding.principal,
                    binding.host,
                    binding.operation,
                    ALLOW,
                )
            )
        return len(wanted - present), len(present - wanted)
    finally:
        await admin.close()


def main() -> None:
    created, deleted = asyncio.run(apply(sys.argv[1]))
    print(
        f"[stack] Kafka users of {USERS_FILE.relative_to(REPO)}: {created} ACL bindings created, {deleted} deleted",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
