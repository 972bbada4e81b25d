"""Inventory parsing (every problem names the file and the key) and transport security choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.errors import InventoryError, UsageError
from controller.inventory import Host, load_inventory, parse_hosts, split_address
from controller.security import choose_security
from tests.controller.conftest import Cli


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    return path


def test_hosts_flag_names_each_host_by_its_address() -> None:
    inv = parse_hosts("127.0.0.1:50051, [::1]:50052")
    assert inv.hosts == (
        Host("127.0.0.1:50051", "127.0.0.1:50051"),
        Host("[::1]:50052", "[::1]:50052"),
    )
    assert split_address("[::1]:50052") == ("::1", 50052)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no host given"),
        ("localhost", "'localhost' is not HOST:PORT"),
        ("a:99999", "port '99999' is not in 1..65535"),
        ("a:1,a:1", "host named twice"),
    ],
)
def test_hosts_flag_errors_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(InventoryError, match=problem) as exc:
        parse_hosts(text)
    assert str(exc.value).startswith("--hosts")


def test_inventory_file_with_names_defaults_and_relative_paths(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[defaults]\ntimeout = 2\ninsecure = false\nca = "pki/ca.pem"\nbroker = "b:1883"\n'
        '[[agent]]\nname = "a"\naddress = "127.0.0.1:1"\nserver_name = "a.fleet"\n'
        '[[agent]]\naddress = "127.0.0.1:2"\n',
    )
    inv = load_inventory(path)
    assert inv.hosts == (Host("a", "127.0.0.1:1", "a.fleet"), Host("127.0.0.1:2", "127.0.0.1:2"))
    assert inv.defaults.timeout == 2.0
    assert inv.defaults.ca == str(tmp_path / "pki/ca.pem")
    assert inv.defaults.broker == "b:1883"
    assert inv.source == str(path)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[[agent]]\nname = "a"\n', "agent[0].address: missing"),
        (
            '[[agent]]\naddress = "h:1"\n[[agent]]\naddress = 5\n',
            "agent[1].address: expected a string",
        ),
        ('[[agent]]\naddress = "h:1"\nport = 1\n', "agent[0].port: unknown key"),
        ('[[agent]]\naddress = "h"\n', "agent[0].address: 'h' is not HOST:PORT"),
        (
            '[defaults]\ntimeout = "5"\n[[agent]]\naddress = "h:1"\n',
            "defaults.timeout: wrong type str",
        ),
        ('[defaults]\ninsecure = 1\n[[agent]]\naddress = "h:1"\n', "defaults.insecure: wrong type"),
        (
            '[defaults]\ntimeout = 0\n[[agent]]\naddress = "h:1"\n',
            "defaults.timeout: must be positive",
        ),
        ('[defaults]\ncolour = 1\n[[agent]]\naddress = "h:1"\n', "defaults.colour: unknown key"),
        ('[[agents]]\naddress = "h:1"\n', "agents: unknown key"),
        ("x = 1\n", "x: unknown key"),
        ('agent = "h:1"\n', "agent: expected one or more"),
        (
            '[[agent]]\nname = "a"\naddress = "h:1"\n[[agent]]\nname = "a"\naddress = "h:2"\n',
            "a: host named twice",
        ),
        ("[[agent]\n", "not valid TOML"),
    ],
)
def test_inventory_errors_name_the_file_and_the_key(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as exc:
        load_inventory(path)
    assert str(exc.value).startswith(f"{path}: ")
    assert where in str(exc.value)


def test_missing_inventory_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"nope\.toml: cannot read: No such file"):
        load_inventory(tmp_path / "nope.toml")


def test_exactly_one_source_of_hosts(cli: Cli, tmp_path: Path) -> None:
    both = cli("status", "--hosts", "h:1", "-i", str(write(tmp_path, "")), "--insecure")
    assert both.code == 1
    assert "give --hosts alone, not with --inventory or --discover" in both.err
    neither = cli("status", "--insecure")
    assert neither.code == 1
    assert (
        "no agents given: use --hosts HOST:PORT,..., --inventory FILE or --discover" in neither.err
    )


def test_security_needs_an_explicit_choice() -> None:
    with pytest.raises(UsageError, match="no transport security chosen"):
        choose_security(insecure=False, ca=None, cert=None, key=None)
    assert choose_security(insecure=True, ca=None, cert=None, key=None).credentials() is None


def test_security_mutual_tls_needs_all_three_readable_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="missing --cert, --key"):
        choose_security(insecure=False, ca="ca.pem", cert=None, key=None)
    with pytest.raises(UsageError, match="not both"):
        choose_security(insecure=True, ca="ca.pem", cert=None, key=None)
    with pytest.raises(UsageError, match=r"--ca .*nope\.pem: cannot read"):
        choose_security(insecure=False, ca=str(tmp_path / "nope.pem"), cert="c", key="k")
    for name in ("ca", "cert", "key"):
        (tmp_path / name).write_bytes(name.encode())
    ca, cert, key = (str(tmp_path / n) for n in ("ca", "cert", "key"))
    sec = choose_security(insecure=False, ca=ca, cert=cert, key=key)
    assert (sec.insecure, sec.ca, sec.cert, sec.key) == (False, b"ca", b"cert", b"key")


def test_inventory_defaults_fill_in_for_flags(tmp_path: Path) -> None:
    path = write(tmp_path, '[defaults]\ninsecure = true\n[[agent]]\naddress = "h:1"\n')
    defaults = load_inventory(path).defaults
    assert choose_security(insecure=False, ca=None, cert=None, key=None, defaults=defaults).insecure
