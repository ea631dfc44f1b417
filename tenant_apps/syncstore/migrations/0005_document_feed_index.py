"""The (collection, seq) index is replaced by one that is partial on a condition every row meets.

Only change-feed queries, which bound seq, can use the new index, so it never competes with the unique
(collection, doc_id) index for lookups by document id (see sync/store.py). Created before the old one
is dropped, so per-collection pulls always have an index.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("syncstore", "0004_idempotency_composite_key"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="document",
            index=models.Index(
                condition=models.Q(("seq__isnull", False)), fields=["collection", "seq"], name="document_feed_idx"
            ),
        ),
        migrations.RemoveIndex(
            model_name="document",
            name="document_collection_seq_idx",
        ),
    ]
