"""Compatibility routes (mounted under /api/v1/compat/)."""

from django.urls import path

from sync.compat import rxdb, watermelondb

urlpatterns = [
    path("rxdb/<str:collection>/pull", rxdb.RxdbPullApi.as_view(), name="compat-rxdb-pull"),
    path("rxdb/<str:collection>/push", rxdb.RxdbPushApi.as_view(), name="compat-rxdb-push"),
    path("watermelondb/sync", watermelondb.WatermelonSyncApi.as_view(), name="compat-watermelondb-sync"),
]
