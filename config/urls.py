"""Root URLconf. Everything is served from the public schema; API requests
switch to their organisation's schema in API key authentication."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from shared_apps.apikeys.apis import WhoAmIApi
from shared_apps.core import views as core_views
from shared_apps.core.metrics import metrics_view

api_v1 = [
    path("whoami", WhoAmIApi.as_view(), name="whoami"),
    path("", include("sync.urls")),
    path("compat/", include("sync.compat.urls")),
]

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("", include("billing.urls")),  # api/v1/billing/checkout, api/v1/billing/portal, stripe/webhook
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("admin/", admin.site.urls),
    path("", include("shared_apps.portal.urls")),
]

handler400 = "shared_apps.core.views.handler400"
handler404 = "shared_apps.core.views.handler404"
handler500 = "shared_apps.core.views.handler500"
