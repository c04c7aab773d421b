from django.db import migrations, models


def scrub_secret_prefixes(apps, schema_editor):
    """Old keys stored their first 16 characters, 9-10 of them secret: keep none of those."""
    SdkKey = apps.get_model("flags", "SdkKey")
    SdkKey.objects.filter(prefix__startswith="rc_").update(prefix="")
    HistoricalSdkKey = apps.get_model("flags", "HistoricalSdkKey")
    HistoricalSdkKey.objects.filter(prefix__startswith="rc_").update(prefix="")


class Migration(migrations.Migration):
    dependencies = [
        ("flags", "0002_flag_keys_unicode_frontend_sdk_keys"),
    ]

    operations = [
        migrations.RunPython(scrub_secret_prefixes, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="sdkkey",
            name="prefix",
            field=models.CharField(
                help_text="Public id, shown to identify the key.", max_length=16
            ),
        ),
        migrations.AlterField(
            model_name="historicalsdkkey",
            name="prefix",
            field=models.CharField(
                help_text="Public id, shown to identify the key.", max_length=16
            ),
        ),
    ]
