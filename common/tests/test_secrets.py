import os

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
