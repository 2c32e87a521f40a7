"""``./manage.py runfcgi [options]``: Django's old command, served by ringfast."""

import argparse
import sys

from django.core.management.base import BaseCommand, CommandError

from ringfast import runfcgi


class Command(BaseCommand):
    help = (
        "Runs this project as a FastCGI, SCGI or AJP13 application with ringfast. "
        "`runfcgi help` lists the key=value options."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "options",
            nargs=argparse.REMAINDER,
            help="key=value options (`runfcgi help`), then any ringfast --option",
        )

    def handle(self, *args, **options):
        try:
            opts, passthrough, wants_help = runfcgi.parse(options["options"], with_wsgi=False)
            if wants_help:
                self.stdout.write(runfcgi.help_text(with_wsgi=False), ending="")
                return
            plan = runfcgi.translate(opts, passthrough)
        except runfcgi.OptionError as e:
            raise CommandError(f"runfcgi: {e}") from None
        status = runfcgi.run(plan, "django")
        if status:
            sys.exit(status)
