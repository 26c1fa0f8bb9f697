"""A stock Django OAuth Toolkit AS, as a DVA runs one, plus the three additions of
docs/integrating.md (vertas/vert.py) and a stand-in for the DigiD login (vertas/views.py).
Nothing else of the stock flow is changed: APPEND_SLASH on, the login's ?next= round trip,
DOT's consent form posting back, PKCE required (DOT's default)."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("VERTAS_SECRET_KEY", "reference-integration-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
    "vertas",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",  # APPEND_SLASH
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The three additions (docs/integrating.md), after authentication: they read the session.
    "vertas.vert.VertMiddleware",
]

ROOT_URLCONF = "vertas.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "vertas" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("VERTAS_DB", str(BASE_DIR / "db.sqlite3")),
    }
}
LOGIN_URL = "/accounts/login/"
USE_TZ = True
# The proxy in front says how the browser reached it (X-Forwarded-Proto: https behind TLS).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = True

OAUTH2_PROVIDER = {
    # MedMij scopes are numbers; `onbehalfof` is not one of them: DOT rejects unknown scope
    # tokens, so the proxy runs with representation.strip_scope_token = true.
    "SCOPES": {"48": "Medische gegevens (48)"},
    "DEFAULT_SCOPES": ["48"],
    "PKCE_REQUIRED": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
}
