from django.apps import AppConfig


class SyncStoreConfig(AppConfig):
    name = "tenant_apps.syncstore"
    label = "syncstore"
    verbose_name = "Sync data store"
