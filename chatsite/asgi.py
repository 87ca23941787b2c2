"""The ASGI application daphne serves: Django for HTTP, Channels for websockets."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application
from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

# Django is set up first, so the imports below can use models and settings.
try:
    django_asgi_app = get_asgi_application()
except ImproperlyConfigured as exc:
    raise SystemExit(f"Configuration error: {exc}") from None

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from conversations.lifecycle import on_daphne_shutdown  # noqa: E402
from conversations.routing import websocket_urlpatterns  # noqa: E402

on_daphne_shutdown()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # The origin check is the websocket's CSRF protection; the session identifies the user.
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)

from chatsite.collector import collector_settle  # noqa: E402

# Last: everything above is the worker's for good.
collector_settle()
