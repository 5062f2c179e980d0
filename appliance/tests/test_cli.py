import os

from fedcloud_appliance import cli


def config_file(tmp_path, extra=""):
    (tmp_path / "secrets").mkdir()
    password = tmp_path / "secrets" / "password"
    password.write_text("pw")
    os.chmod(password, 0o600)
    path = tmp_path / "appliance.yaml"
    path.write_text(
        "site: {name: CLI-SITE, hostname: cloud.test}\n"
        "openstack: {auth_url: 'https://k.test/v3', username: u, "
        f"password_file: {password}, project_name: p}}\n" + extra
    )
    return path


def test_config_check_accepts_a_valid_file(tmp_path, capsys):
    assert cli.main(["--config", str(config_file(tmp_path)), "config", "check"]) == 0
    out = capsys.readouterr().out
    assert "OK (site CLI-SITE; enabled: images, bdii)" in out


def test_config_check_rejects_a_bad_file_naming_each_key(tmp_path, capsys):
    path = config_file(tmp_path, "images: {schedule: often, colour: blue}\n")
    assert cli.main(["--config", str(path), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert "invalid configuration" in err
    assert "images.schedule:" in err
    assert "images.colour: not a known key" in err


def test_running_an_unknown_job_lists_the_real_ones(tmp_path, capsys):
    path = config_file(tmp_path, f"supervisor: {{state_dir: {tmp_path / 'state'}}}\n")
    assert cli.main(["--config", str(path), "run", "coffee"]) == 2
    assert "jobs: image-sync, bdii-publish" in capsys.readouterr().err


def test_config_env_gives_compose_the_ports_from_the_file(tmp_path, capsys):
    path = config_file(
        tmp_path,
        "bdii: {port: 12170}\nsupervisor: {status_port: 18080}\nimages: {store: /srv/images}\n",
    )
    assert cli.main(["--config", str(path), "config", "env"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "FEDCLOUD_BDII_PORT=12170" in lines and "FEDCLOUD_STATUS_PORT=18080" in lines
    assert "FEDCLOUD_IMAGE_DATA=/srv/images" in lines


def test_config_env_defaults_are_the_published_defaults(tmp_path, capsys):
    assert cli.main(["--config", str(config_file(tmp_path)), "config", "env"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "FEDCLOUD_BDII_PORT=2170" in lines and "FEDCLOUD_STATUS_PORT=8080" in lines
    assert "FEDCLOUD_IMAGE_DATA=/image_data" in lines


def test_a_bad_config_keeps_the_status_page_up_showing_why_until_it_is_fixed(tmp_path, monkeypatch):
    import argparse
    import json
    import threading
    import time
    import urllib.request

    from tests.support.ports import free_port

    path = config_file(tmp_path, "images: {schedul: '0 * * * *'}\n")
    monkeypatch.setattr(cli, "CONFIG_RETRY_S", 0.2)
    monkeypatch.setattr(cli, "_docker", lambda: None)
    port, stop, found = free_port(range(46000, 47000)), threading.Event(), []
    waiting = threading.Thread(
        target=lambda: found.append(
            cli._valid_config(argparse.Namespace(config=str(path)), stop, port)
        )
    )
    waiting.start()
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json") as reply:
                    shown = json.load(reply)
                break
            except OSError:
                time.sleep(0.05)
        assert "images.schedul: not a known key; did you mean 'schedule'?" in shown["config_error"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as reply:
            assert "Configuration error: no job runs until it is fixed" in reply.read().decode()
        path.write_text(path.read_text().replace("schedul:", "schedule:"))
        waiting.join(10)
        assert found and found[0].images.schedule == "0 * * * *"
    finally:
        stop.set()
        waiting.join(10)


def test_status_with_a_bad_config_says_why_instead_of_failing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_docker", lambda: None)
    path = config_file(tmp_path, "site: {name: X}\n")
    assert cli.main(["--config", str(path), "status"]) == 2
    out = capsys.readouterr().out
    assert out.startswith("CONFIGURATION ERROR") and "services: no Docker engine" in out
