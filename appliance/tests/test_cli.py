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
