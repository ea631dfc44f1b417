"""``manage.py backfill_document_text``: documents written before their JSON text was stored get it."""

from __future__ import annotations

from io import StringIO

import orjson
import pytest
from django.core.management import CommandError, call_command

from tenant_apps.syncstore.models import Document
from tenants.context import tenant_context
from tests.sync.helpers import mutation, pull, push_ok

pytestmark = pytest.mark.django_db


def _rows(organisation) -> dict[str, tuple]:
    with tenant_context(organisation):
        return {
            row[0]: row[1:]
            for row in Document.objects.values_list("doc_id", "data", "data_text", "version", "seq", "updated_at")
        }


def _forget_text(organisation) -> None:
    with tenant_context(organisation):
        Document.objects.update(data_text=None, data_text_version=None)


def test_backfill_stores_the_text_and_moves_nothing_a_client_sees(org, other_org) -> None:
    client = org.client()
    push_ok(client, [mutation(f"d{i}", data={"i": i, "tags": ["x", i]}) for i in range(5)])
    push_ok(client, [mutation("d0", "delete", base_version=1)])
    push_ok(other_org.client(), [mutation("o", data={"n": 1})])
    _forget_text(org.organisation)
    _forget_text(other_org.organisation)
    before = _rows(org.organisation)
    pulled = pull(client).json()

    out, err = StringIO(), StringIO()
    call_command("backfill_document_text", "--batch", "2", stdout=out, stderr=err)

    after = _rows(org.organisation)
    assert after.keys() == before.keys()
    for doc_id, (data, text, version, seq, updated_at) in after.items():
        assert text is not None
        assert orjson.loads(text) == data
        assert (data, version, seq, updated_at) == (before[doc_id][0], *before[doc_id][2:]), doc_id
    assert _rows(other_org.organisation)["o"][1] is not None
    assert pull(client).json() == pulled
    assert "6 documents given their JSON text" in out.getvalue()
    assert f"{org.organisation.slug}: 5 documents" in err.getvalue()
    assert "backfilling [############################] 6/6 100%" in err.getvalue()  # the progress bar

    out = StringIO()
    call_command("backfill_document_text", stdout=out, stderr=StringIO())
    assert "0 documents given their JSON text" in out.getvalue()


def test_backfill_can_be_limited_to_named_organisations(org, other_org) -> None:
    push_ok(org.client(), [mutation("a", data={"n": 1})])
    push_ok(other_org.client(), [mutation("b", data={"n": 2})])
    _forget_text(org.organisation)
    _forget_text(other_org.organisation)
    call_command("backfill_document_text", "--org", org.organisation.slug, stdout=StringIO(), stderr=StringIO())
    assert _rows(org.organisation)["a"][1] is not None
    assert _rows(other_org.organisation)["b"][1] is None
    with pytest.raises(CommandError, match="organisation_not_found"):
        call_command("backfill_document_text", "--org", "no-such-org", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="invalid_batch"):
        call_command("backfill_document_text", "--batch", "0", stdout=StringIO(), stderr=StringIO())
