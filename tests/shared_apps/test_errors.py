"""Every API error has one shape: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def test_unknown_api_path_is_json_404(api) -> None:
    assert_error(api.get("/api/v1/does-not-exist"), 404, "not_found")


def test_unknown_api_path_without_key_is_json_404() -> None:
    assert_error(APIClient().get("/api/nothing/here"), 404, "not_found")


def test_wrong_method_is_json_405(api) -> None:
    assert_error(api.delete("/api/v1/whoami"), 405, "method_not_allowed")


@pytest.mark.urls("tests.urls")
def test_malformed_json_is_400(api) -> None:
    response = api.post("/api/v1/test/scoped", data="{not json", content_type="application/json")
    assert_error(response, 400, "malformed_json")


@pytest.mark.urls("tests.urls")
def test_unsupported_media_type_is_415(api) -> None:
    response = api.post("/api/v1/test/scoped", data="a=1", content_type="application/x-www-form-urlencoded")
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.urls("tests.urls")
def test_oversized_body_is_413(api, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.post("/api/v1/test/scoped", data='{"a": "' + "x" * 2000 + '"}', content_type="application/json")
    assert_error(response, 413, "payload_too_large")


@pytest.mark.urls("tests.urls")
def test_unexpected_exception_is_json_500_without_internals(api) -> None:
    client = api
    client.raise_request_exception = False
    error = assert_error(client.get("/api/v1/test/explode"), 500, "internal_error")
    assert "boom" not in str(error)


def test_401_and_403_have_the_shape(org) -> None:
    assert_error(APIClient().get("/api/v1/whoami"), 401, "authentication_required")
    from shared_apps.audit.services import CLI
    from tenants.services import organisation_suspend

    organisation_suspend(actor=CLI, organisation=org.organisation, reason="test")
    assert_error(org.client().get("/api/v1/whoami"), 403, "tenant_suspended")


def test_openapi_schema_and_docs_are_served() -> None:
    client = APIClient()
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/v1/whoami" in schema.json()["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()
