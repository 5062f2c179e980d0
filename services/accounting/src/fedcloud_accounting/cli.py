"""``fedcloud-accounting extract|send --config FILE``: the two job commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fedcloud_common.errors import FedcloudError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fedcloud-accounting", description=__doc__)
    parser.add_argument("command", choices=("extract", "send"))
    parser.add_argument("--config", type=Path, required=True, help="accounting.json, as rendered")
    args = parser.parse_args(argv)
    try:
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
