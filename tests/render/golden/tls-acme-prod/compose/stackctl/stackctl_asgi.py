"""The ASGI application of a project without an asgi.py (stackctl, verbatim).

DJANGO_ASGI_APPLICATION=stackctl_asgi:application serves what `django-admin startproject`'s
asgi.py would: Django's own ASGI handler, under DJANGO_SETTINGS_MODULE. Nothing is added to
the project.
"""

from django.core.asgi import get_asgi_application

application = get_asgi_application()
