"""A minimal Django project (settings, urls, one view, wsgi), as django-admin lays it out."""
