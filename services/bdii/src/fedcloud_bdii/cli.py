"""``fedcloud-bdii``: publish (resource BDII), aggregate (site BDII), serve, schema.

- ``publish``/``aggregate`` run one cycle against the slapd of ``state_dir``
  and exit 0 (ok), 1 (failed, tree untouched) or 2 (some writes failed).
- ``health`` exits 0 when slapd answers on ``port`` (the container healthcheck).
- ``serve`` starts that slapd on ``port`` and runs a cycle every ``interval``
  seconds until SIGTERM: what the container and ``systemctl start bdii`` run.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import ldap

from fedcloud_bdii.config import BdiiConfig, ConfigError
from fedcloud_bdii.convert import Converter, Entries
from fedcloud_bdii.errors import BdiiError, ProviderRunError
from fedcloud_bdii.publish import LdapSource, ProviderSource, Publisher
from fedcloud_bdii.schema import Schema
from fedcloud_bdii.slapd import Slapd, SlapdLayout, connect_updater
from fedcloud_bdii.updater import Updater
from fedcloud_common.errors import FedcloudError
from fedcloud_common.openstack import Credentials

LOG = logging.getLogger("fedcloud_bdii")


def layout_for(config: BdiiConfig) -> SlapdLayout:
    return SlapdLayout(root=config.state_dir / "slapd", port=config.port, host="0.0.0.0")


def build_publisher(config: BdiiConfig, role: str) -> Publisher:
    """The resource (provider) or site (aggregating) publisher for this config."""
    if role == "resource":
        source = provider_source(config)
    else:
        source = LdapSource(config.resource_urls, config.site)
    updater = Updater(
        connect_updater(layout_for(config)), config.state_dir / "updater", config.delete_delay
    )
    status = config.state_dir / "status.json"
    return Publisher(f"bdii-{'publish' if role == 'resource' else 'site'}", source, updater, status)


def provider_source(config: BdiiConfig) -> Callable[[], Entries]:
    """cloud-info-provider, prepared afresh each cycle.

    Credentials and project ids are looked up per cycle, not at start: a
    Keystone outage then fails that cycle (reported, old data kept) instead
    of stopping the BDII.
    """
    site_yaml = config.state_dir / "cloud-info-provider.yaml"
    site_yaml.parent.mkdir(parents=True, exist_ok=True)

    def collect() -> Entries:
        env, project_ids = None, {}
        if config.provider_environment:
            env = {**os.environ, **config.provider_environment}
        if config.openstack:
            try:
                credentials = Credentials.model_validate(config.openstack)
                env = {**(env or os.environ), **credentials.environment()}
            except FedcloudError as exc:  # e.g. an unreadable password file
                raise ProviderRunError(problem=str(exc)) from exc
            project_ids = resolve_projects(credentials, list(config.vos.values()))
        site_yaml.write_text(config.site_yaml(project_ids))
        run = ProviderSource(
            config.provider_command(site_yaml),
            Converter(config.site, validate=False),
            config.provider_timeout,
            env,
        )
        return run()

    return collect


def resolve_projects(credentials: Credentials, projects: list[str]) -> dict[str, str]:
    """Project names to ids, among the projects the appliance's user can use.

    cloud-info-provider wants ids; operators think in names. Only the user's
    own projects are looked at (no admin right needed), and a name that is
    not among them is an error naming it, not a silently empty share.
    """
    try:
        mine = credentials.connect().identity.get("/auth/projects").json()["projects"]
    except Exception as exc:  # keystoneauth and SDK errors alike
        raise ProviderRunError(problem=f"cannot list the user's projects: {exc}") from exc
    by_name = {p["name"]: p["id"] for p in mine}
    ids = {p["id"] for p in mine}
    resolved = {}
    for project in projects:
        if project in ids:
            resolved[project] = project
        elif project in by_name:
            resolved[project] = by_name[project]
        else:
            raise ConfigError(
                path="vos",
                problem=f"project {project!r} is not one the appliance's user has a role in",
            )
    return resolved


def next_cycle_in(interval: float, failed_in_a_row: int) -> float:
    """Seconds to the next cycle: soon again after a failure, backing off.

    At start the site BDII often asks before the resource BDII answers, and
    a cloud may be briefly down; waiting a whole interval then leaves the
    BDII empty or stale for minutes.
    """
    if failed_in_a_row == 0:
        return interval
    return min(interval, RETRY_FIRST_S * 2 ** (failed_in_a_row - 1))


RETRY_FIRST_S = 10.0


def serve(config: BdiiConfig, role: str) -> int:
    slapd = Slapd(layout_for(config))
    slapd.start()
    LOG.info("%s BDII for %s answers on port %d", role, config.site, config.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        publisher = build_publisher(config, role)
        failed = 0
        while not stop.is_set():
            if slapd.process is not None and slapd.process.poll() is not None:
                # Exit so the container's restart policy brings both back.
                LOG.error("slapd exited with %s; stopping", slapd.process.returncode)
                return 1
            failed = failed + 1 if publisher.run() != 0 else 0
            stop.wait(next_cycle_in(config.interval, failed))
    finally:
        slapd.stop()
    return 0


def health(config: BdiiConfig) -> int:
    """0 when slapd answers an anonymous read on the configured port."""
    conn = ldap.initialize(f"ldap://127.0.0.1:{config.port}")
    conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 5)
    try:
        conn.search_s("o=glue", ldap.SCOPE_BASE, attrlist=["1.1"])
    except ldap.NO_SUCH_OBJECT:
        # slapd answers; nothing is published yet (a first provider run that
        # failed is reported by the publisher, not by restarting slapd).
        return 0
    except ldap.LDAPError as exc:
        print(f"bdii unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fedcloud-bdii", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("publish", "aggregate", "serve", "health"):
        cmd = sub.add_parser(name)
        cmd.add_argument("-c", "--config", type=Path, required=True)
        if name == "serve":
            cmd.add_argument("--role", choices=("resource", "site"), default="resource")
    sub.add_parser("schema", help="print the GLUE 2.1 LDAP schema")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    if args.command == "schema":
        sys.stdout.write(Schema().render())
        return 0
    try:
        config = BdiiConfig.load(args.config)
        if args.command == "serve":
            return serve(config, args.role)
        if args.command == "health":
            return health(config)
        role = "resource" if args.command == "publish" else "site"
        return build_publisher(config, role).run()
    except BdiiError as exc:
        LOG.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
