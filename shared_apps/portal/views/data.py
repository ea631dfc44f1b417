"""An organisation's sync data: collections (and their policies), documents, devices and conflicts.

Every read and write here runs inside ``tenant_context``; results are
materialised inside it so templates render on the public schema.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from shared_apps.audit.services import Actor
from shared_apps.core.errors import NotFound, OutpostError
from shared_apps.portal import forms
from shared_apps.portal.access import not_found, org_view, page
from sync import selectors as sync_selectors
from sync import services as sync_services
from sync.limits import sync_limits_for
from tenant_apps.syncstore.models import Collection, Conflict
from tenants.context import tenant_context

DOCUMENTS_PER_PAGE = 25
CONFLICTS_PER_PAGE = 25
DEVICES_PER_PAGE = 50


def _not_found_outside(request: HttpRequest) -> HttpResponse:
    """The 404 page, rendered on the public schema even when called inside ``tenant_context``
    (which restores the public schema again as the caller returns)."""
    connection.set_schema_to_public()
    return not_found(request)


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


@org_view("viewer")
def collections(request: HttpRequest) -> HttpResponse:
    with tenant_context(request.organisation):
        rows = list(
            sync_selectors.collection_list().annotate(
                open_conflicts=Count("conflicts", filter=Q(conflicts__status="open"))
            )
        )
    return page(request, "portal/collections.html", {"collections": rows, "nav": "data"})


def _collection_form_initial(collection: Collection) -> dict[str, Any]:
    return {
        "conflict_policy": collection.conflict_policy,
        "json_schema": pretty(collection.json_schema) if collection.json_schema is not None else "",
    }


@org_view("viewer", post="admin")
def collection(request: HttpRequest, name: str) -> HttpResponse:
    organisation = request.organisation
    status = 200
    with tenant_context(organisation):
        row = sync_selectors.collection_list().filter(name=name).first()
        if row is None:
            return _not_found_outside(request)
        form = forms.CollectionForm(request.POST or None, initial=_collection_form_initial(row))
        if request.method == "POST":
            if form.is_valid():
                try:
                    sync_services.collection_update(
                        actor=Actor.for_user(request.user),
                        organisation=organisation,
                        name=row.name,
                        conflict_policy=form.cleaned_data["conflict_policy"],
                        # Ellipsis: unchanged, so the audit log only records a schema change that happened.
                        json_schema=(
                            ...
                            if form.cleaned_data["json_schema"] == row.json_schema
                            else form.cleaned_data["json_schema"]
                        ),
                    )
                except OutpostError as exc:
                    form.add_error("json_schema" if "schema" in exc.code else None, exc.message)
                    status = exc.status_code
                else:
                    messages.success(request, f"Collection {row.name} was updated.")
                    return redirect("portal:collection", slug=organisation.slug, name=row.name)
            else:
                status = 400
        open_conflicts = sync_selectors.conflict_list(status="open", collection=row.name).count()
    return page(
        request,
        "portal/collection.html",
        {"collection": row, "form": form, "open_conflicts": open_conflicts, "nav": "data"},
        status=status,
    )


@org_view("viewer")
def documents(request: HttpRequest, name: str) -> HttpResponse:
    """Read-only: look a document up by id, or page through the collection by id (``after`` cursor)."""
    search = request.GET.get("id", "").strip()
    after = request.GET.get("after", "").strip() or None
    found: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = []
    next_cursor = None
    with tenant_context(request.organisation):
        row = sync_selectors.collection_list().filter(name=name).first()
        if row is None:
            return _not_found_outside(request)
        if search:
            try:
                found = sync_selectors.document_get(collection=row.name, doc_id=search)
            except NotFound:
                found = None
        else:
            rows, next_cursor = sync_selectors.document_list(
                collection=row.name, after=after, limit=DOCUMENTS_PER_PAGE, include_deleted=True
            )
    for document in [found, *rows]:
        if document is not None:
            document["pretty"] = pretty(document["data"])
            document["updated"] = datetime.fromisoformat(document["updated_at"])
    return page(
        request,
        "portal/documents.html",
        {
            "collection": row,
            "search": search,
            "found": found,
            "documents": rows,
            "after": after,
            "next_cursor": next_cursor,
            "nav": "data",
        },
    )


@org_view("viewer")
def devices(request: HttpRequest) -> HttpResponse:
    with tenant_context(request.organisation):
        device_page = Paginator(sync_selectors.device_list(), DEVICES_PER_PAGE).get_page(request.GET.get("page"))
        device_page.object_list = list(device_page.object_list)
    return page(request, "portal/devices.html", {"page": device_page, "nav": "devices"})


@require_POST
@org_view("developer")
def device_revoke(request: HttpRequest) -> HttpResponse:
    device_id = request.POST.get("device_id", "")
    organisation = request.organisation
    with tenant_context(organisation):
        try:
            sync_services.device_revoke(
                actor=Actor.for_user(request.user), organisation=organisation, device_id=device_id
            )
        except NotFound:
            return _not_found_outside(request)
    messages.success(request, f"Device {device_id} is revoked; its next push or pull is refused.")
    return redirect("portal:devices", slug=organisation.slug)


CONFLICT_FILTERS = {"open": "open", "resolved": "resolved", "all": None}


@org_view("viewer")
def conflicts(request: HttpRequest) -> HttpResponse:
    shown = request.GET.get("status", "open")
    if shown not in CONFLICT_FILTERS:
        shown = "open"
    with tenant_context(request.organisation):
        queryset = sync_selectors.conflict_list(status=CONFLICT_FILTERS[shown])
        conflict_page = Paginator(queryset, CONFLICTS_PER_PAGE).get_page(request.GET.get("page"))
        conflict_page.object_list = list(conflict_page.object_list)
    return page(request, "portal/conflicts.html", {"page": conflict_page, "shown": shown, "nav": "conflicts"})


def merge_suggestion(conflict: Conflict) -> dict[str, Any]:
    """A starting point for a manual merge: the server's data with the losing write's fields on top."""
    server = dict((conflict.server_state or {}).get("data") or {})
    write = conflict.client_write or {}
    if write.get("op") == "delete":
        return server
    changes = write.get("data") or {}
    if write.get("op") == "put":
        return {**server, **changes}
    for key, value in changes.items():
        if value is None:
            server.pop(key, None)
        else:
            server[key] = value
    return server


@org_view("viewer", post="developer")
def conflict(request: HttpRequest, conflict_id: int) -> HttpResponse:
    organisation = request.organisation
    status = 200
    with tenant_context(organisation):
        row = sync_selectors.conflict_list(status=None).filter(pk=conflict_id).first()
        if row is None:
            return _not_found_outside(request)
        form = forms.ConflictResolveForm(request.POST or None, initial={"data": pretty(merge_suggestion(row))})
        if request.method == "POST":
            if form.is_valid():
                try:
                    sync_services.conflict_resolve(
                        actor=Actor.for_user(request.user),
                        organisation=organisation,
                        conflict_id=row.pk,
                        choose=form.cleaned_data["choose"],
                        data=form.cleaned_data.get("merged"),
                        limits=sync_limits_for(plan_slug=organisation.plan_id),
                    )
                except OutpostError as exc:
                    status = exc.status_code
                    if row.status == "open" and form.cleaned_data["choose"] == "merged":
                        form.add_error("data", exc.message)
                    else:
                        messages.error(request, exc.message)
                else:
                    messages.success(request, f"Conflict {row.pk} on {row.doc_id} is resolved.")
                    return redirect("portal:conflict", slug=organisation.slug, conflict_id=row.pk)
            else:
                status = 400
        try:
            current = sync_selectors.document_get(collection=row.collection.name, doc_id=row.doc_id)
        except NotFound:
            current = None
    server_state = row.server_state or {}
    return page(
        request,
        "portal/conflict.html",
        {
            "conflict": row,
            "form": form,
            "server_json": pretty(server_state.get("data")),
            "server_version": server_state.get("version"),
            "server_deleted": server_state.get("deleted"),
            "client_json": pretty((row.client_write or {}).get("data")),
            "client_write": row.client_write or {},
            "current": current,
            "current_json": pretty(current["data"]) if current else "",
            "nav": "conflicts",
        },
        status=status,
    )
