"""API endpoints about the calling key."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from shared_apps.apikeys.authentication import ApiKeyPrincipal


class WhoAmIApi(APIView):
    """The simplest authenticated call: which organisation and key am I?"""

    required_scope = None

    @extend_schema(
        operation_id="whoami",
        responses=inline_serializer(
            "WhoAmI",
            {
                "organisation": inline_serializer(
                    "WhoAmIOrganisation",
                    {"slug": serializers.CharField(), "name": serializers.CharField(), "plan": serializers.CharField()},
                ),
                "key": inline_serializer(
                    "WhoAmIKey",
                    {
                        "prefix": serializers.CharField(),
                        "name": serializers.CharField(),
                        "scopes": serializers.ListField(child=serializers.CharField()),
                    },
                ),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        principal: ApiKeyPrincipal = request.auth
        organisation = principal.organisation
        return Response(
            {
                "organisation": {"slug": organisation.slug, "name": organisation.name, "plan": organisation.plan_slug},
                "key": {
                    "prefix": principal.key_prefix,
                    "name": principal.key.name,
                    "scopes": sorted(principal.scopes),
                },
            }
        )
