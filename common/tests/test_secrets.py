import os
import shutil
import tempfile
from pathlib import Path

import pytest

from fedcloud_common.errors import SecretFileError
from fedcloud_common.secrets import read_secret


def write(path, text, mode):
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_reads_a_private_secret_without_its_newline(tmp_path):
    secret = read_secret(write(tmp_path / "pw", "s3cret\n", 0o600))
    assert secret.reveal() == "s3cret"


def test_never_shows_the_value_in_repr_or_str(tmp_path):
    secret = read_secret(write(tmp_path / "pw", "s3cret", 0o600))
    assert "s3cret" not in repr(secret)
    assert "s3cret" not in str(secret)
    assert str(tmp_path / "pw") in repr(secret)


def test_refuses_a_group_readable_file_and_says_how_to_fix_it(tmp_path):
    path = write(tmp_path / "pw", "s3cret", 0o640)
    with pytest.raises(SecretFileError) as error:
        read_secret(path)
    assert f"chmod 600 {path}" in str(error.value)
    assert "s3cret" not in str(error.value)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: p, "does not exist"),
        (lambda p: write(p, "", 0o600), "is empty"),
        (lambda p: (p.mkdir(), p)[1], "not a regular file"),
    ],
)
def test_names_the_problem_with_a_bad_secret_file(tmp_path, make, problem):
    path = make(tmp_path / "pw")
    with pytest.raises(SecretFileError, match=problem):
        read_secret(path)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to read as another uid")
def test_a_file_this_uid_cannot_read_names_the_uid_and_the_fix():
    directory = Path(tempfile.mkdtemp())
    os.chmod(directory, 0o755)  # pytest's own tmp dirs are closed to other users
    path = write(directory / "pw", "s3cret", 0o600)
    pid = os.fork()
    if pid == 0:  # as an unprivileged service user would
        os.setuid(65534)
        try:
            read_secret(path)
        except SecretFileError as error:
            ok = "cannot be read by uid 65534" in str(error) and "chown 65534" in str(error)
            os._exit(0 if ok else 1)
        os._exit(2)
    _, status = os.waitpid(pid, 0)
    shutil.rmtree(directory)
    assert os.waitstatus_to_exitcode(status) == 0
