"""DRF's authtoken app is gone: its table held API keys in plain text, which no longer authenticate.
Drop it (and its content type and permissions) so that no copy of those keys is left behind, in
the database or in backups made from it."""

from django.db import migrations


def forget_content_types(apps, schema_editor):
    content_type = apps.get_model("contenttypes", "ContentType")
    content_type.objects.using(schema_editor.connection.alias).filter(app_label="authtoken").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tokens", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunSQL("DROP TABLE IF EXISTS authtoken_token", reverse_sql=migrations.RunSQL.noop),
        migrations.RunPython(forget_content_types, migrations.RunPython.noop),
    ]
