"""WSGI entry point: ``gunicorn hello_service.wsgi:app``."""

from hello_service import create_app

app = create_app()
