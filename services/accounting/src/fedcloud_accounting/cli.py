"""``fedcloud-accounting extract|send|republish --config FILE``: the job commands.

``republish --from DATE --to DATE`` re-extracts those days (both included)
when the repository asks a site to send a period again; the records go to
the spool like any others and the hourly watermark is left where it is.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from fedcloud_common.errors import FedcloudError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fedcloud-accounting", description=__doc__)
    parser.add_argument("command", choices=("extract", "send", "republish"))
    parser.add_argument("--config", type=Path, required=True, help="accounting.json, as rendered")
    parser.add_argument("--from", dest="first", type=datetime.date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument("--to", dest="last", type=datetime.date.fromisoformat, help="YYYY-MM-DD")
    args = parser.parse_args(argv)
    if (args.command == "republish") != (args.first is not None and args.last is not None):
        parser.error("--from and --to go with republish, and republish needs both")
    try:
        if args.command == "republish":
            from fedcloud_accounting import extract as republishing

            return republishing.republish(args.config, args.first, args.last)
        if args.command == "extract":
            from fedcloud_accounting import extract

            return extract.main(args.config)
        from fedcloud_accounting import send

        return send.main(args.config)
    except FedcloudError as error:  # settings, secret files, certificates: the fix is named
        print(f"fedcloud-accounting {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
