import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import sessions_app.models.profile


class Migration(migrations.Migration):

    dependencies = [
        ('sessions_app', '0006_alerts'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='StaffProfile',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('time_zone', models.CharField(blank=True, default='', max_length=64, validators=[sessions_app.models.profile.validate_time_zone])),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='staff_profile', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'staff profile',
            },
        ),
    ]
