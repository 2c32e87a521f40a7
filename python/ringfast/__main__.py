"""The ``ringfast`` command: ``ringfast [OPTIONS]`` takes the options of the ``ringfast`` binary
(``ringfast --help``); ``ringfast runfcgi key=value ...`` takes those of Django's old ``runfcgi``
(``ringfast runfcgi help``)."""

import sys


def main(argv=None):
    """Entry point of the ``ringfast`` console script."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["runfcgi"]:
        from ringfast import runfcgi

        sys.exit(runfcgi.main(args[1:]))
    from ringfast import serve

    sys.exit(serve(args))


if __name__ == "__main__":
    main()
