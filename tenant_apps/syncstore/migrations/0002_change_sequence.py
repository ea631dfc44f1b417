"""The schema's change sequence and its singleton sync state row.

Each organisation's schema has its own sequence, so one organisation's writes
never contend with another's for sequence numbers.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("syncstore", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql=[
                "CREATE SEQUENCE syncstore_change_seq AS bigint START 1",
                "ALTER TABLE syncstore_document ALTER COLUMN seq SET DEFAULT nextval('syncstore_change_seq')",
                "INSERT INTO syncstore_syncstate (id, strict_collections, horizon_seq) VALUES (1, false, 0)",
            ],
            reverse_sql=[
                "DELETE FROM syncstore_syncstate",
                "ALTER TABLE syncstore_document ALTER COLUMN seq DROP DEFAULT",
                "DROP SEQUENCE syncstore_change_seq",
            ],
        ),
    ]
