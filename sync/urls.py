"""Sync API routes (mounted under /api/v1/)."""

from django.urls import path

from sync import apis

urlpatterns = [
    path("sync/push", apis.SyncPushApi.as_view(), name="sync-push"),
    path("sync/pull", apis.SyncPullApi.as_view(), name="sync-pull"),
    path("sync/settings", apis.SyncSettingsApi.as_view(), name="sync-settings"),
    path("collections", apis.CollectionListApi.as_view(), name="collections"),
    path("collections/<str:name>", apis.CollectionDetailApi.as_view(), name="collection"),
    path("collections/<str:name>/documents", apis.DocumentListApi.as_view(), name="documents"),
    path("collections/<str:name>/documents/<path:doc_id>", apis.DocumentDetailApi.as_view(), name="document"),
    path("conflicts", apis.ConflictListApi.as_view(), name="conflicts"),
    path("conflicts/<int:conflict_id>", apis.ConflictDetailApi.as_view(), name="conflict"),
    path("conflicts/<int:conflict_id>/resolve", apis.ConflictResolveApi.as_view(), name="conflict-resolve"),
    path("devices", apis.DeviceListApi.as_view(), name="devices"),
    path("devices/<path:device_id>/revoke", apis.DeviceRevokeApi.as_view(), name="device-revoke"),
]
