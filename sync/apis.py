"""Sync API views. Thin: parse, call one service or selector, render.

Push and pull bypass DRF's parsers and renderers (orjson on the raw body, and
stored JSON passed through), with validation as strict as a serializer's.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import orjson
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.usage import usage_incr
from shared_apps.apikeys.authentication import ApiKeyPrincipal
from shared_apps.audit.services import Actor
from shared_apps.core.errors import InvalidInput
from shared_apps.core.http import ResponseThenWork
from shared_apps.core.metrics import record_pull, record_push_counts
from sync import checkpoints, selectors, services
from sync.limits import MAX_PULL_LIMIT, sync_limits_for
from sync.validation import parse_json_body, parse_push_body, validate_collection_name, validate_device_id
from tenant_apps.syncstore.models import Collection, Conflict, ConflictPolicy, Device, SyncState


def json_response(payload: Any, status: int = 200, *, then: Callable[[], None] | None = None) -> HttpResponse:
    """A JSON response (``payload`` already encoded, or encoded here by orjson); ``then`` runs after it has
    been sent (see :class:`shared_apps.core.http.ResponseThenWork`)."""
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    if then is not None:
        return ResponseThenWork(body, status=status, content_type="application/json", then=then)
    return HttpResponse(body, status=status, content_type="application/json")


def actor_of(request: Request) -> Actor:
    principal: ApiKeyPrincipal = request.auth
    return Actor(label=f"api_key:{principal.key_prefix}")


def require_json_content_type(request: Request) -> None:
    if not (request.content_type or "").startswith("application/json"):
        raise InvalidInput("Send the body as application/json.", code="unsupported_media_type")


def require_json(request: Request) -> Any:
    require_json_content_type(request)
    return parse_json_body(request._request.body)


_error = inline_serializer(
    "Error",
    {
        "error": inline_serializer(
            "ErrorBody",
            {"code": serializers.CharField(), "message": serializers.CharField(), "details": serializers.JSONField()},
        )
    },
)
_errors = {400: _error, 401: _error, 403: _error, 404: _error, 410: _error, 413: _error, 429: _error}

_mutation = inline_serializer(
    "Mutation",
    {
        "mutation_id": serializers.CharField(max_length=128, help_text="Client-chosen, unique per device."),
        "collection": serializers.RegexField(r"^[A-Za-z][A-Za-z0-9_]{0,63}$"),
        "id": serializers.CharField(max_length=128),
        "op": serializers.ChoiceField(["put", "patch", "delete"]),
        "base_version": serializers.IntegerField(allow_null=True, required=False),
        "data": serializers.JSONField(required=False, help_text="put: the whole document; patch: changed fields."),
        "client_ts": serializers.IntegerField(required=False, help_text="Client clock, ms (last_write_wins)."),
    },
)
_result = inline_serializer(
    "MutationResult",
    {
        "mutation_id": serializers.CharField(),
        "status": serializers.ChoiceField(["applied", "merged", "conflict", "duplicate", "rejected"]),
        "collection": serializers.CharField(),
        "id": serializers.CharField(),
        "version": serializers.IntegerField(),
        "data": serializers.JSONField(required=False),
        "deleted": serializers.BooleanField(required=False),
        "conflict_id": serializers.IntegerField(required=False),
        "resolution": serializers.CharField(required=False),
        "original_status": serializers.CharField(required=False),
    },
)


class SyncPushApi(APIView):
    """Apply a batch of mutations from one device, atomically and idempotently."""

    required_scope = "sync:write"
    usage_counters = {"POST": "pushes"}  # counted at admission (shared_apps.apikeys.admission)

    @extend_schema(
        operation_id="sync_push",
        request=inline_serializer(
            "PushRequest",
            {
                "device_id": serializers.CharField(max_length=128),
                "mutations": serializers.ListField(child=_mutation),
                "client": serializers.JSONField(required=False),
            },
        ),
        responses={
            200: inline_serializer("PushResponse", {"results": serializers.ListField(child=_result)}),
            **_errors,
        },
    )
    def post(self, request: Request) -> HttpResponse:
        require_json_content_type(request)
        limits = sync_limits_for(plan_slug=request.auth.organisation.plan_slug)
        device_id, meta, mutations = parse_push_body(request._request.body, limits)
        result = services.sync_push_apply(device_id=device_id, mutations=mutations, meta=meta, limits=limits)
        organisation = request.auth.organisation
        record_push_counts(plan_slug=organisation.plan_slug, statuses=result.statuses, conflicts=result.conflicts)
        return json_response(
            b'{"results":%b}' % result.results_json,
            then=partial(usage_incr, organisation_id=organisation.id, mutations=len(mutations)),
        )


class SyncPullApi(APIView):
    """Changes after a checkpoint, in commit order."""

    required_scope = "sync:read"
    usage_counters = {"GET": "pulls"}  # counted at admission (shared_apps.apikeys.admission)

    @extend_schema(
        operation_id="sync_pull",
        parameters=[
            OpenApiParameter("checkpoint", str, description="Opaque; omit on the first pull."),
            OpenApiParameter("limit", int, description=f"1-{MAX_PULL_LIMIT}, default 500."),
            OpenApiParameter("collections", str, description="Comma-separated collection names."),
            OpenApiParameter("device_id", str, description="Records the pull against this device."),
        ],
        responses={
            200: inline_serializer(
                "PullResponse",
                {
                    "changes": serializers.ListField(
                        child=inline_serializer(
                            "Change",
                            {
                                "collection": serializers.CharField(),
                                "id": serializers.CharField(),
                                "version": serializers.IntegerField(),
                                "deleted": serializers.BooleanField(),
                                "data": serializers.JSONField(),
                            },
                        )
                    ),
                    "checkpoint": serializers.CharField(),
                    "has_more": serializers.BooleanField(),
                },
            ),
            **_errors,
        },
    )
    def get(self, request: Request) -> HttpResponse:
        params = request.query_params
        checkpoint = checkpoints.decode(params.get("checkpoint"))
        limit = selectors.pull_limit(params.get("limit"))
        device_id = params.get("device_id")
        if device_id is not None:
            device_id = validate_device_id(device_id)
            services.device_check(device_id=device_id)
        ids = None
        if params.get("collections"):
            names = [name.strip() for name in params["collections"].split(",") if name.strip()]
            try:
                for name in names:
                    validate_collection_name(name)
            except Exception as exc:  # MutationError: a bad name in the filter
                raise InvalidInput(
                    "collections is a comma-separated list of collection names.", code="invalid_collection"
                ) from exc
            ids = list(selectors.collection_ids(names).values())
        page = selectors.pull_page(checkpoint=checkpoint, limit=limit, collection_ids=ids)
        record_pull(plan_slug=request.auth.organisation.plan_slug)
        if device_id is not None:
            services.device_touch_for_pull(
                device_id=device_id,
                seq=page.last_seq,
                limits=sync_limits_for(plan_slug=request.auth.organisation.plan_slug),
            )
        return json_response(selectors.render_pull(page))


def collection_dict(collection: Collection) -> dict[str, Any]:
    return {
        "name": collection.name,
        "conflict_policy": collection.conflict_policy,
        "json_schema": collection.json_schema,
        "document_count": collection.document_count,
        "created_at": collection.created_at.isoformat(),
        "updated_at": collection.updated_at.isoformat(),
    }


class CollectionListApi(APIView):
    required_scope = "sync:read"

    @extend_schema(operation_id="collections_list", responses={200: OpenApiTypes.OBJECT, **_errors})
    def get(self, request: Request) -> HttpResponse:
        return json_response({"collections": [collection_dict(c) for c in selectors.collection_list()]})


_collection_body = inline_serializer(
    "CollectionSettings",
    {
        "conflict_policy": serializers.ChoiceField(ConflictPolicy.values, required=False),
        "json_schema": serializers.JSONField(required=False, allow_null=True),
    },
)


class CollectionDetailApi(APIView):
    required_scopes = {"GET": "sync:read", "PATCH": "admin", "PUT": "admin"}

    @extend_schema(operation_id="collections_get", responses={200: OpenApiTypes.OBJECT, **_errors})
    def get(self, request: Request, name: str) -> HttpResponse:
        return json_response(collection_dict(selectors.collection_get(name=name)))

    @extend_schema(
        operation_id="collections_update",
        request=_collection_body,
        responses={200: OpenApiTypes.OBJECT, **_errors},
    )
    def patch(self, request: Request, name: str) -> HttpResponse:
        return self._update(request, name, create=False)

    @extend_schema(
        operation_id="collections_create_or_update",
        request=_collection_body,
        responses={200: OpenApiTypes.OBJECT, **_errors},
    )
    def put(self, request: Request, name: str) -> HttpResponse:
        """Create or change a collection (e.g. to declare it under strict collections)."""
        return self._update(request, name, create=True)

    def _update(self, request: Request, name: str, *, create: bool) -> HttpResponse:
        body = require_json(request)
        if not isinstance(body, dict) or set(body) - {"conflict_policy", "json_schema"}:
            raise InvalidInput("Send conflict_policy and/or json_schema.", code="invalid_body")
        collection = services.collection_update(
            actor=actor_of(request),
            organisation=request.auth.organisation.as_tenant(),
            name=name,
            conflict_policy=body.get("conflict_policy"),
            # PATCH leaves an absent schema alone; PUT describes the whole collection.
            json_schema=body.get("json_schema") if create else body.get("json_schema", ...),
            create=create,
        )
        return json_response(collection_dict(collection))


class DocumentListApi(APIView):
    required_scope = "sync:read"

    @extend_schema(
        operation_id="documents_list",
        parameters=[
            OpenApiParameter("after", str, description="Cursor: the last id of the previous page."),
            OpenApiParameter("limit", int),
            OpenApiParameter("include_deleted", bool),
        ],
        responses={200: OpenApiTypes.OBJECT, **_errors},
    )
    def get(self, request: Request, name: str) -> HttpResponse:
        documents, next_cursor = selectors.document_list(
            collection=name,
            after=request.query_params.get("after"),
            limit=selectors.parse_limit(request.query_params.get("limit"), default=100, maximum=1000),
            include_deleted=request.query_params.get("include_deleted") in ("1", "true"),
        )
        return json_response({"documents": documents, "next": next_cursor})


class DocumentDetailApi(APIView):
    required_scope = "sync:read"

    @extend_schema(operation_id="documents_get", responses={200: OpenApiTypes.OBJECT, **_errors})
    def get(self, request: Request, name: str, doc_id: str) -> HttpResponse:
        return json_response(selectors.document_get(collection=name, doc_id=doc_id))


def conflict_dict(conflict: Conflict) -> dict[str, Any]:
    return {
        "id": conflict.pk,
        "collection": conflict.collection.name,
        "document_id": conflict.doc_id,
        "device_id": conflict.device_id,
        "mutation_id": conflict.mutation_id,
        "base_version": conflict.base_version,
        "server_version": conflict.server_version,
        "client_write": conflict.client_write,
        "server_state": conflict.server_state,
        "policy": conflict.policy,
        "status": conflict.status,
        "resolution": conflict.resolution,
        "losing": conflict.losing,
        "resolved_by": conflict.resolved_by,
        "created_at": conflict.created_at.isoformat(),
        "resolved_at": conflict.resolved_at.isoformat() if conflict.resolved_at else None,
    }


class ConflictListApi(APIView):
    required_scope = "sync:read"

    @extend_schema(
        operation_id="conflicts_list",
        parameters=[
            OpenApiParameter("status", str, enum=["open", "resolved", "all"]),
            OpenApiParameter("collection", str),
            OpenApiParameter("limit", int),
            OpenApiParameter("before", int, description="Cursor: the last id of the previous page."),
        ],
        responses={200: OpenApiTypes.OBJECT, **_errors},
    )
    def get(self, request: Request) -> HttpResponse:
        status = request.query_params.get("status", "open")
        if status not in ("open", "resolved", "all"):
            raise InvalidInput("status is open, resolved or all.", code="invalid_status")
        queryset = selectors.conflict_list(
            status=None if status == "all" else status, collection=request.query_params.get("collection")
        )
        before = request.query_params.get("before")
        if before:
            if not before.isdigit():
                raise InvalidInput("before must be a conflict id.", code="invalid_cursor")
            queryset = queryset.filter(pk__lt=int(before))
        limit = selectors.parse_limit(request.query_params.get("limit"), default=50, maximum=500)
        conflicts = list(queryset.order_by("-id")[: limit + 1])
        page = conflicts[:limit]
        return json_response(
            {
                "conflicts": [conflict_dict(c) for c in page],
                "next": page[-1].pk if len(conflicts) > limit else None,
            }
        )


class ConflictDetailApi(APIView):
    required_scope = "sync:read"

    @extend_schema(operation_id="conflicts_get", responses={200: OpenApiTypes.OBJECT, **_errors})
    def get(self, request: Request, conflict_id: int) -> HttpResponse:
        from sync.errors import ConflictNotFound

        conflict = selectors.conflict_list(status=None).filter(pk=conflict_id).first()
        if conflict is None:
            raise ConflictNotFound()
        return json_response(conflict_dict(conflict))


class ConflictResolveApi(APIView):
    required_scope = "sync:write"

    @extend_schema(
        operation_id="conflicts_resolve",
        request=inline_serializer(
            "ConflictResolve",
            {
                "choose": serializers.ChoiceField(["server", "client", "merged"]),
                "data": serializers.JSONField(required=False, help_text="The merged document (choose=merged)."),
            },
        ),
        responses={200: OpenApiTypes.OBJECT, **_errors},
    )
    def post(self, request: Request, conflict_id: int) -> HttpResponse:
        body = require_json(request)
        if not isinstance(body, dict) or set(body) - {"choose", "data"}:
            raise InvalidInput("Send choose and, for merged, data.", code="invalid_body")
        conflict, state = services.conflict_resolve(
            actor=actor_of(request),
            organisation=request.auth.organisation.as_tenant(),
            conflict_id=conflict_id,
            choose=body.get("choose"),
            data=body.get("data"),
            limits=sync_limits_for(plan_slug=request.auth.organisation.plan_slug),
        )
        return json_response({"conflict": conflict_dict(conflict), "document": state})


def device_dict(device: Device) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return value.isoformat() if value else None

    return {
        "device_id": device.device_id,
        "first_seen_at": iso(device.first_seen_at),
        "last_seen_at": iso(device.last_seen_at),
        "last_pull_at": iso(device.last_pull_at),
        "last_pull_checkpoint": checkpoints.encode(device.last_pull_seq) if device.last_pull_seq is not None else None,
        "last_push_at": iso(device.last_push_at),
        "user_agent": device.user_agent,
        "app_version": device.app_version,
        "pushes": device.pushes,
        "pulls": device.pulls,
        "mutations": device.mutations,
        "conflicts": device.conflicts,
        "revoked_at": iso(device.revoked_at),
    }


class DeviceListApi(APIView):
    required_scope = "sync:read"

    @extend_schema(operation_id="devices_list", responses={200: OpenApiTypes.OBJECT, **_errors})
    def get(self, request: Request) -> HttpResponse:
        return json_response({"devices": [device_dict(d) for d in selectors.device_list()[:1000]]})


class DeviceRevokeApi(APIView):
    required_scope = "admin"

    @extend_schema(operation_id="devices_revoke", request=None, responses={200: OpenApiTypes.OBJECT, **_errors})
    def post(self, request: Request, device_id: str) -> HttpResponse:
        device = services.device_revoke(
            actor=actor_of(request), organisation=request.auth.organisation.as_tenant(), device_id=device_id
        )
        return json_response(device_dict(device))


class SyncSettingsApi(APIView):
    required_scopes = {"GET": "sync:read", "PATCH": "admin"}

    @extend_schema(operation_id="sync_settings_get", responses={200: OpenApiTypes.OBJECT, **_errors})
    def get(self, request: Request) -> Response:
        state = SyncState.objects.get(pk=1)
        return Response(
            {"strict_collections": state.strict_collections, "horizon": checkpoints.encode(state.horizon_seq)}
        )

    @extend_schema(
        operation_id="sync_settings_update",
        request=inline_serializer("SyncSettings", {"strict_collections": serializers.BooleanField()}),
        responses={200: OpenApiTypes.OBJECT, **_errors},
    )
    def patch(self, request: Request) -> Response:
        body = require_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("strict_collections"), bool):
            raise InvalidInput('Send {"strict_collections": true|false}.', code="invalid_body")
        state = services.sync_settings_update(
            actor=actor_of(request),
            organisation=request.auth.organisation.as_tenant(),
            strict_collections=body["strict_collections"],
        )
        return Response(
            {"strict_collections": state.strict_collections, "horizon": checkpoints.encode(state.horizon_seq)}
        )
