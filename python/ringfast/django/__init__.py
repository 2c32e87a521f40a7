"""Django integration: add ``"ringfast.django"`` to ``INSTALLED_APPS`` for
``./manage.py runfcgi [options]`` (``./manage.py runfcgi help`` lists them)."""
