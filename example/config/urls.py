"""URLs: the admin, GraphQL, uploads and the health probes. /ws/echo lives in config/asgi.py."""

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt
from strawberry.django.views import AsyncGraphQLView

from config import health
from notes import views
from notes.schema import schema

# An API, not a form: no CSRF token. GraphiQL is offered on GET only in DEBUG.
graphql_view = csrf_exempt(AsyncGraphQLView.as_view(schema=schema, graphql_ide="graphiql" if settings.DEBUG else None))

urlpatterns = [
    path("admin/", admin.site.urls),
    re_path(r"^graphql/?$", graphql_view, name="graphql"),
    re_path(r"^upload/?$", views.upload, name="upload"),
    re_path(r"^attachments/?$", views.attachments, name="attachments"),
    re_path(r"^healthz/?$", health.healthz, name="healthz"),
    re_path(r"^readyz/?$", health.readyz, name="readyz"),
]

# Only when DEBUG (both helpers return nothing otherwise); in the stack nginx serves these.
urlpatterns += staticfiles_urlpatterns()
urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
