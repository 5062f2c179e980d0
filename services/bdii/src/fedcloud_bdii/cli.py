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
import time
from collections.abc import Callable
from pathlib import Path

import ldap

from fedcloud_bdii import config as bdii_config
from fedcloud_bdii import health as cloud_health
from fedcloud_bdii.convert import Converter, Entries
from fedcloud_bdii.domain import site_entries
from fedcloud_bdii.errors import ProviderRunError
from fedcloud_bdii.objectstore import ObjectStore, S3Store, SwiftStore
from fedcloud_bdii.publish import LdapSource, ProviderSource, Publisher, Wanted
from fedcloud_bdii.schema import Schema
from fedcloud_bdii.slapd import Slapd, SlapdLayout, connect_updater
from fedcloud_bdii.updater import Updater
from fedcloud_common.errors import ConfigError, FedcloudError
from fedcloud_common.openstack import Credentials
from fedcloud_common.settings.bdii import BdiiSettings

LOG = logging.getLogger("fedcloud_bdii")


def layout_for(config: BdiiSettings) -> SlapdLayout:
    return SlapdLayout(root=config.state_dir / "slapd", port=config.port, host="0.0.0.0")


def build_publisher(config: BdiiSettings, role: str) -> Publisher:
    """The resource (provider) or site (aggregating) publisher for this config."""
    source: Callable[[], Wanted | Entries]
    if role == "resource":
        source = provider_source(config)
    else:
        source = LdapSource(
            config.resource_urls,
            config.site,
            own=site_entries(config),
            cache_dir=config.state_dir / "sources",
        )
    updater = Updater(
        connect_updater(layout_for(config)), config.state_dir / "updater", config.delete_delay
    )
    status = config.state_dir / "status.json"
    job = f"bdii-{'publish' if role == 'resource' else 'site'}"
    publisher = Publisher(job, source, updater, status, store=object_store(config, role))
    if config.public_address:  # the name operators know it by, in o=infosys
        publisher.hostname = config.public_address.host
    return publisher


def object_store(config: BdiiSettings, role: str) -> ObjectStore | None:
    """The resource BDII's object store (Swift with its own or the BDII's credentials, or S3)."""
    store = config.object_store
    if role != "resource" or store is None:
        return None
    if store.kind == "s3":
        return S3Store(store, config.site, config.state_dir)
    credentials = store.openstack or config.openstack
    if credentials is None:
        raise ConfigError(
            where="object_store.openstack",
            problem="a Swift store needs Keystone credentials: give object_store.openstack "
            "or the BDII's openstack",
        )
    return SwiftStore(store, credentials, config.site, config.state_dir)


def provider_source(config: BdiiSettings) -> Callable[[], Wanted]:
    """cloud-info-provider, prepared afresh each cycle.

    Credentials and project ids are looked up per cycle, not at start: a
    Keystone outage then fails that cycle (reported, old data kept) instead
    of stopping the BDII.
    """
    site_yaml = config.state_dir / "cloud-info-provider.yaml"
    site_yaml.parent.mkdir(parents=True, exist_ok=True)

    def collect() -> Wanted:
        env: dict[str, str] | None = None
        project_ids: dict[str, str] = {}
        if config.provider_environment:
            env = {**os.environ, **config.provider_environment}
        if config.openstack:
            try:
                env = {**(env or os.environ), **config.openstack.environment()}
            except FedcloudError as exc:  # e.g. an unreadable password file
                raise ProviderRunError(problem=str(exc)) from exc
            project_ids = resolve_projects(config.openstack, list(config.vos.values()))
        site_yaml.write_text(bdii_config.site_yaml(config, project_ids))
        credentials = config.openstack
        run = ProviderSource(
            bdii_config.provider_command(config, site_yaml),
            Converter(config.site, validate=False),
            config.provider_timeout,
            env,
            # Without the appliance's credentials there is nothing to probe
            # with: cloud-info-provider's own HealthState stands.
            probe=(lambda: cloud_health.probe(credentials)) if credentials else None,
            last_good=config.state_dir / "provider-last-good.json",
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
                where="vos",
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
    return min(interval, RETRY_FIRST_S * 2.0 ** (failed_in_a_row - 1))


RETRY_FIRST_S = 10.0


def serve(config: BdiiSettings, role: str) -> int:
    slapd = Slapd(layout_for(config))
    slapd.start()
    LOG.info("%s BDII for %s answers on port %d", role, config.site, config.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        publisher = build_publisher(config, role)
        if role == "site":
            # Started together, the resource BDII needs a moment: wait for
            # it rather than report a failed first cycle at every start.
            wait_for_sources(config.resource_urls, stop)
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


SOURCE_WAIT_S = 120.0


def wait_for_sources(
    urls: list[str], stop: threading.Event, timeout_s: float = SOURCE_WAIT_S
) -> bool:
    """Until every resource BDII answers (or ``timeout_s``): whether they all do."""
    deadline = time.monotonic() + timeout_s
    waiting = list(urls)
    said = False
    while waiting and not stop.is_set():
        waiting = [url for url in waiting if not _answers(url)]
        if not waiting or time.monotonic() >= deadline:
            break
        if not said:
            LOG.info("waiting for %s to answer (at most %.0f s)", ", ".join(waiting), timeout_s)
            said = True
        stop.wait(2.0)
    return not waiting


def _answers(url: str) -> bool:
    conn = ldap.initialize(url)
    conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 2)
    try:
        conn.search_s("o=glue", ldap.SCOPE_BASE, attrlist=["1.1"])
    except ldap.NO_SUCH_OBJECT:
        return True  # it answers; nothing published there yet
    except ldap.LDAPError:
        return False
    return True


def health(config: BdiiSettings) -> int:
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
        config = bdii_config.load(args.config)
        if args.command == "serve":
            return serve(config, args.role)
        if args.command == "health":
            return health(config)
        role = "resource" if args.command == "publish" else "site"
        return build_publisher(config, role).run()
    except FedcloudError as exc:  # e.g. the settings file's ConfigError, naming each key
        LOG.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
