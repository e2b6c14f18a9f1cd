"""Drop the label indexes no query uses (each one slowed every label write; see Label in models.py).

Only the indexes go: on SQLite, altering the fields would copy the whole label table seven times, so
the database side is plain DROP INDEX and the fields change in Django's state alone.
"""
import django.db.models.deletion
from django.db import migrations, models

# The names Django gave them (the same on SQLite and PostgreSQL); PostgreSQL also made a pattern index
# (_like) for the external_id column.
UNUSED = {
    "annotation_label_analysis_id_78b39473": "analysis_id",
    "annotation_label_annotator_id_fc5a16d9": "annotator_id",
    "annotation_label_category_id_3cce5441": "category_id",
    "annotation_label_external_id_a162904f": "external_id",
    "annotation_label_prediction_id_b30c435f": "prediction_id",
    "annotation_label_prompt_version_id_bafe2916": "prompt_version_id",
    "annotation_label_taxonomy_version_id_c476b104": "taxonomy_version_id",
}


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0011_labelstudio_webhook_health'),
        ('taxonomy', '0002_taxonomy_proposals'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    sql=[f'DROP INDEX IF EXISTS "{name}"' for name in [*UNUSED, "annotation_label_external_id_a162904f_like"]],
                    reverse_sql=[f'CREATE INDEX "{name}" ON "annotation_label" ("{column}")'
                                 for name, column in UNUSED.items()],
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name='label',
                    name='analysis',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, to='annotation.analysis'),
                ),
                migrations.AlterField(
                    model_name='label',
                    name='annotator',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='labels', to='annotation.annotator'),
                ),
                migrations.AlterField(
                    model_name='label',
                    name='category',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='labels', to='taxonomy.category'),
                ),
                migrations.AlterField(
                    model_name='label',
                    name='external_id',
                    field=models.CharField(blank=True, max_length=200),
                ),
                migrations.AlterField(
                    model_name='label',
                    name='prediction',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='labels', to='annotation.prediction'),
                ),
                migrations.AlterField(
                    model_name='label',
                    name='prompt_version',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, to='annotation.promptversion'),
                ),
                migrations.AlterField(
                    model_name='label',
                    name='taxonomy_version',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='labels', to='taxonomy.taxonomyversion'),
                ),
            ],
        ),
    ]
