"""``appliance migrate``: read the old install, print appliance.yaml, lay out its secrets.

The YAML goes to stdout (redirect it to appliance.yaml); the summary and
nothing else to stderr. Paths default to where the old tools keep their
files, under ``--root`` so a copy of another host's /etc can be read.
"""

from __future__ import annotations

import argparse
import datetime
import socket
import sys
import time
from pathlib import Path

from fedcloud_appliance.migrate import Draft, atrope, caso, cip, cloudkeeper
from fedcloud_common.summary import format_summary


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = commands.add_parser(
        "migrate",
        help="print an appliance.yaml from a cloudkeeper/atrope/cASO/cloud-info-provider "
        "install; secrets go to files",
    )
    migrate.add_argument(
        "--root",
        type=Path,
        default=Path("/"),
        help="read the old files under this directory (default /)",
    )
    migrate.add_argument("--cloudkeeper-dir", type=Path, help="default ROOT/etc/cloudkeeper")
    migrate.add_argument("--atrope-dir", type=Path, help="default ROOT/etc/atrope")
    migrate.add_argument("--caso-conf", type=Path, help="default ROOT/etc/caso/caso.conf")
    migrate.add_argument(
        "--voms-json",
        type=Path,
        help="default: caso.conf's mapping_file, else ROOT/etc/caso/voms.json",
    )
    migrate.add_argument(
        "--cip-yaml", type=Path, help="default ROOT/etc/cloud-info-provider/openstack.yaml"
    )
    migrate.add_argument(
        "--config-dir",
        type=Path,
        default=Path("/etc/fedcloud-appliance"),
        help="where appliance.yaml will be; secrets go to its secrets/",
    )
    migrate.add_argument("--hostname", default=None, help="site.hostname (default: this host's)")
    migrate.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    root: Path = args.root
    draft = Draft(args.config_dir.absolute())
    cloudkeeper.read(args.cloudkeeper_dir or root / "etc/cloudkeeper", draft)
    atrope.read(args.atrope_dir or root / "etc/atrope", root, draft)
    caso_conf = args.caso_conf or root / "etc/caso/caso.conf"
    voms = args.voms_json or _under(root, caso.mapping_file(caso_conf))
    voms = voms or _first_file(root / "etc/caso/voms.json", root / "etc/voms.json")
    caso.read(caso_conf, voms, draft, datetime.datetime.now(datetime.UTC).date())
    cip.read(args.cip_yaml or root / "etc/cloud-info-provider/openstack.yaml", draft)
    _complete(draft, args.hostname)
    text = draft.lay_out()
    sys.stdout.write(text)
    counts = {
        "files": len(draft.read),
        "secrets": len(draft.secret_names),
        "not_carried_over": len(draft.notes),
    }
    print(
        format_summary("appliance-migrate", "ok", counts, time.monotonic() - started),
        file=sys.stderr,
    )
    return 0


def _first_file(*paths: Path) -> Path:
    """The first that exists; the 2017 appliance kept voms.json in /etc."""
    return next((path for path in paths if path.is_file()), paths[0])


def _under(root: Path, path: Path | None) -> Path | None:
    if path is None:
        return None
    return root / path.relative_to("/") if path.is_absolute() else path


def _complete(draft: Draft, hostname: str | None) -> None:
    """What every appliance.yaml needs, when no old file said it."""
    site = draft.section("site")
    site.setdefault("name", "MY-SITE")
    if site["name"] == "MY-SITE":
        draft.notes.append("site.name: in neither caso.conf nor the cloud-info-provider YAML")
    site["hostname"] = hostname or socket.getfqdn()
    auth = draft.config.get("openstack")
    if not auth:
        draft.notes.append("openstack: no credentials in any old file; add them")
    elif not (auth.get("project_name") or auth.get("project_id") or auth.get("cloud")):
        draft.notes.append(
            "openstack.project_name: no project in the old files; add the project the "
            "appliance manages its images in"
        )
    images = draft.section("images")
    if not images.get("lists"):
        images["enabled"] = False
        draft.notes.append("images: no image lists found (image-lists.conf, hepix.yaml): off")
    # appliance.yaml's order: site, openstack, images, bdii, accounting.
    order = ["site", "openstack", "images", "bdii", "accounting"]
    draft.config = {key: draft.config[key] for key in order if key in draft.config} | {
        key: value for key, value in draft.config.items() if key not in order
    }
