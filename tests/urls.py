"""URLconf for tests that need extra views (an exploding one, for the 500 shape)."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import urlpatterns as base_urlpatterns


class ExplodingApi(APIView):
    required_scope = None

    def get(self, request):
        raise RuntimeError("boom: secret internals")


class ScopedApi(APIView):
    required_scopes = {"GET": "sync:read", "POST": "sync:write"}

    def get(self, request):
        return Response({"ok": True})

    def post(self, request):
        return Response({"received": request.data})


urlpatterns = [
    path("api/v1/test/explode", ExplodingApi.as_view()),
    path("api/v1/test/scoped", ScopedApi.as_view()),
    *base_urlpatterns,
]

handler404 = "shared_apps.core.views.handler404"
handler500 = "shared_apps.core.views.handler500"
