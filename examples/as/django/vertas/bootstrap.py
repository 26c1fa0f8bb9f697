"""Creates the database and the PGO's registration (a public client with PKCE, as a MedMij PGO
is identified by its hostname). Run once before gunicorn: python -m vertas.bootstrap"""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vertas.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from oauth2_provider.models import get_application_model  # noqa: E402

call_command("migrate", verbosity=0, interactive=False)
Application = get_application_model()
Application.objects.update_or_create(
    client_id="pgo.example.nl",
    defaults={
        "name": "Voorbeeld PGO",
        "client_type": Application.CLIENT_PUBLIC,
        "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
        "redirect_uris": "https://pgo.example.nl/callback",
        "skip_authorization": False,
        "algorithm": "",
    },
)
