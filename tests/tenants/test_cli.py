"""The platform CLI: ``org`` and ``apikey`` commands, human and ``--json`` output."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from shared_apps.accounts.models import Membership
from shared_apps.apikeys.models import ApiKey
from shared_apps.audit.models import AuditEvent
from tenants.models import Organisation

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def run_json(*args: str) -> dict:
    output = run(*args, "--json")
    assert output.count("\n") <= 1, "--json prints exactly one object"
    return json.loads(output)


def whoami(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client.get("/api/v1/whoami")


def test_org_create_json_prints_the_organisation_and_a_working_key() -> None:
    result = run_json("org", "create", "--name", "Initech", "--owner", "Boss@Example.com")
    assert result["organisation"]["slug"] == "initech"
    assert result["organisation"]["status"] == "active"
    assert result["key"].startswith("opk_")
    assert result["api_key"]["prefix"] == result["key"][:16]
    response = whoami(result["key"])
    assert response.status_code == 200
    assert response.json()["organisation"]["slug"] == "initech"
    membership = Membership.objects.get(organisation__slug="initech")
    assert (membership.user.email, membership.role) == ("boss@example.com", "owner")
    # The secret is never stored.
    stored = ApiKey.objects.get(prefix=result["key"].split("_")[1])
    assert result["key"].split("_")[2] not in stored.secret_hash


def test_org_create_text_output_shows_the_key_once() -> None:
    output = run("org", "create", "--name", "Hooli", "--slug", "hooli-xyz")
    assert "hooli-xyz" in output
    assert "opk_" in output


def test_org_list_json_and_text() -> None:
    run_json("org", "create", "--name", "Alpha")
    run_json("org", "create", "--name", "Beta")
    listed = run_json("org", "list")
    assert [o["slug"] for o in listed["organisations"]] == ["alpha", "beta"]
    assert "alpha" in run("org", "list")


def test_org_suspend_resume_delete_via_cli() -> None:
    created = run_json("org", "create", "--name", "Umbrella")
    assert run_json("org", "suspend", "umbrella", "--reason", "chargeback")["organisation"]["status"] == "suspended"
    assert whoami(created["key"]).json()["error"]["code"] == "tenant_suspended"
    assert run_json("org", "resume", "umbrella")["organisation"]["status"] == "active"
    with pytest.raises(CommandError, match="--yes"):
        run("org", "delete", "umbrella")
    assert Organisation.all_objects.get(slug="umbrella").status == "active"
    assert run_json("org", "delete", "umbrella", "--yes")["organisation"]["status"] == "deleted"
    assert "umbrella" not in run("org", "list")
    assert "umbrella" in run("org", "list", "--all")


def test_cli_errors_are_clear() -> None:
    with pytest.raises(CommandError, match="No organisation"):
        run("org", "suspend", "nope", "--reason", "x")
    run_json("org", "create", "--name", "Dup", "--slug", "dup-org")
    with pytest.raises(CommandError, match="slug_taken"):
        run("org", "create", "--name", "Dup", "--slug", "dup-org")


def test_cli_error_with_json_is_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    run_json("org", "create", "--name", "Dup", "--slug", "dup-org")
    out = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("org", "create", "--name", "Dup", "--slug", "dup-org", "--json", stdout=out)
    assert json.loads(out.getvalue())["error"]["code"] == "slug_taken"


def test_apikey_create_list_revoke() -> None:
    run_json("org", "create", "--name", "Keys Inc", "--slug", "keys-inc")
    created = run_json(
        "apikey", "create", "--org", "keys-inc", "--name", "ci", "--scopes", "sync:read", "--expires-in", "30d"
    )
    assert created["api_key"]["scopes"] == ["sync:read"]
    assert created["api_key"]["expires_at"] is not None
    assert whoami(created["key"]).json()["key"]["scopes"] == ["sync:read"]
    listed = run_json("apikey", "list", "--org", "keys-inc")
    assert {k["name"] for k in listed["api_keys"]} == {"default", "ci"}
    assert all("key" not in k and "secret_hash" not in k for k in listed["api_keys"])
    revoked = run_json("apikey", "revoke", created["api_key"]["prefix"])
    assert revoked["api_key"]["active"] is False
    assert whoami(created["key"]).status_code == 401
    actions = set(AuditEvent.objects.filter(organisation__slug="keys-inc").values_list("action", flat=True))
    assert {"api_key.created", "api_key.revoked"} <= actions


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scopes", "sync:read,root"], "invalid_scopes"),
        (["--expires-in", "soon"], "Invalid duration"),
        (["--expires-in", "0d"], "Invalid duration"),
    ],
)
def test_apikey_create_rejects_bad_input(args: list[str], message: str) -> None:
    run_json("org", "create", "--name", "Keys Inc", "--slug", "keys-inc")
    with pytest.raises(CommandError, match=message):
        run("apikey", "create", "--org", "keys-inc", "--name", "bad", *args)


def test_apikey_revoke_unknown_prefix() -> None:
    with pytest.raises(CommandError, match="No key"):
        run("apikey", "revoke", "opk_doesnotexist")
