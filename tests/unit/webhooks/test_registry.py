"""Endpoint records: secrets sealed at rest (with key rotation), ids in creation order, tombstones delete."""

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook

from services.common.errors import Misconfigured
from services.common.messages import Topics, WebhookEndpoint
from services.common.settings import CommonSettings
from services.common.webhooks import EndpointTable, WebhookSettings, new_endpoint_id, new_secret, record_key

KEY_A, KEY_B = "a" * 40, "b" * 40


def test_secrets_are_standard_webhooks_secrets_sealed_with_the_configured_keys(tmp_path: Path) -> None:
    common = CommonSettings(home=tmp_path)
    secret = new_secret()
    assert secret.startswith("whsec_") and len(Webhook(secret)._whsecret) == 32
    sealed = WebhookSettings(secret_key=SecretStr(KEY_A)).cipher(common).seal(secret)
    assert secret not in sealed and secret.removeprefix("whsec_") not in sealed
    rotated = WebhookSettings(secret_key=SecretStr(f"{KEY_B},{KEY_A}")).cipher(common)
    assert rotated.open(sealed) == secret  # the old key still opens what it sealed
    with pytest.raises(Misconfigured):
        WebhookSettings(secret_key=SecretStr(KEY_B)).cipher(common).open(sealed)
    with pytest.raises(Misconfigured):
        WebhookSettings(secret_key=SecretStr("short")).cipher(common)


def test_the_local_stack_generates_one_key_in_its_state_folder(tmp_path: Path) -> None:
    common = CommonSettings(home=tmp_path)
    sealed = WebhookSettings().cipher(common).seal("whsec_x")
    assert WebhookSettings().cipher(common).open(sealed) == "whsec_x"
    assert (tmp_path / "webhooks-secret-key").stat().st_mode & 0o077 == 0


def test_ids_sort_in_creation_order() -> None:
    ids = []
    for _ in range(20):
        ids.append(new_endpoint_id())
        time.sleep(0.002)
    assert ids == sorted(ids) and len(set(ids)) == 20
    assert all(_endpoint("t", i).endpoint_id == i for i in ids)  # the record's pattern admits them


def _endpoint(tenant: str, endpoint_id: str) -> WebhookEndpoint:
    return WebhookEndpoint(
        endpoint_id=endpoint_id,
        tenant=tenant,
        url="https://hooks.example.com/x",
        event_types=["video.indexed"],
        secret="sealed",
        created_at=datetime.now(UTC),
    )


def test_the_table_applies_records_and_tombstones_per_tenant(tmp_path: Path) -> None:
    table = EndpointTable(CommonSettings(home=tmp_path), "test")  # never started: records handed in directly
    a1, a2, b1 = _endpoint("a", "ep_" + "1" * 24), _endpoint("a", "ep_" + "2" * 24), _endpoint("b", "ep_" + "3" * 24)
    for e in (a2, a1, b1):
        table._apply(Topics.WEBHOOK_ENDPOINTS, record_key(e.tenant, e.endpoint_id), e.model_dump_json().encode())
    assert [e.endpoint_id for e in table.of_tenant("a")] == [a1.endpoint_id, a2.endpoint_id]
    assert table.get("b", a1.endpoint_id) is None and table.get("a", a1.endpoint_id) == a1
    table._apply(Topics.WEBHOOK_ENDPOINTS, record_key("a", a1.endpoint_id), None)
    assert table.of_tenant("a") == [a2] and table.ids() == {a2.endpoint_id, b1.endpoint_id}
    with pytest.raises(ValueError, match="names endpoint"):  # a record filed under another tenant's key
        table._apply(Topics.WEBHOOK_ENDPOINTS, record_key("b", a2.endpoint_id), a2.model_dump_json().encode())
