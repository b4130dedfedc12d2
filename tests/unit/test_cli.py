"""Bad command-line arguments and configuration values: exit 2, one line naming them."""

import pytest

from payline.cli import main


@pytest.mark.parametrize("argv, named", [
    (["generate", "--rate", "fast"], "--rate"),
    (["generate", "--count", "-3"], "--count"),
    (["generate", "--duplicate-fraction", "1.5"], "--duplicate-fraction"),
    (["generate", "--spike", "10x"], "--spike"),
    (["generate", "--out-of-order-ms", "9000"], "--out-of-order-ms"),
    (["generate", "--accounts", "0"], "--accounts"),
    (["--set", "kafka.port=x", "status"], "kafka.port"),
    (["--set", "nonsense", "status"], "--set"),
    (["--conf", "/nonexistent.toml", "status"], "/nonexistent.toml"),
    (["frobnicate"], "frobnicate"),
    ([], "COMMAND"),
])
def test_user_error_exits_2_with_one_line_naming_it(argv, named, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert named in err
    assert "Traceback" not in err


def test_a_kafka_cluster_id_starting_with_a_dash_is_one_argument():
    from payline.stack import storage_format_args

    args = storage_format_args("-AbC_d", "server.properties")
    assert "--cluster-id=-AbC_d" in args and "-AbC_d" not in args
