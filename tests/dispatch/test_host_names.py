"""Custom host names: a DNS name the creator owns, never a name the gateway answers to."""

from __future__ import annotations

import pytest

from claw402.dispatch.naming import (
    InvalidHost,
    InvalidName,
    check_public_url,
    is_loopback_host,
    normalize_host,
    platform_hosts,
)

PUBLIC_URL = "https://gw.402claw.example:8443/api"
RESERVED = platform_hosts(PUBLIC_URL, ["402claw.io", " Status.Example. "])


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "10.1.2.3", "::1", "[::1]", "[::1]:8402", "fe80::1%eth0", "127.0.0.1:8402",
     "2130706433", "0x7f000001", "0x7f.1", "127.1", "0177.0.0.1", "1.2.3.0x4", "127。0。0。1",
     "8.8.8.8."],
)  # fmt: skip
def test_ip_literals_are_refused_in_every_spelling(host):
    with pytest.raises(InvalidHost, match="is an IP address"):
        normalize_host(host)


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "a.localhost", "x.y.Localhost"])
def test_loopback_names_are_refused(host):
    with pytest.raises(InvalidHost, match="loopback"):
        normalize_host(host)


@pytest.mark.parametrize(
    "host",
    ["gw.402claw.example", "x.gw.402claw.example", "402claw.io", "api.402claw.io",
     "status.example", "GW.402CLAW.EXAMPLE."],
)  # fmt: skip
def test_the_platforms_names_and_their_subdomains_are_refused(host):
    with pytest.raises(InvalidHost, match="reserved by the platform"):
        normalize_host(host, RESERVED)


@pytest.mark.parametrize(
    "host",
    ["api.example.com:80", "api.example.com/x", "http://api.example.com", "a.com x", "a.com\n",
     " a.com", "user@a.com", "a.com?x", "a.com#x", "x", "a..b", "-a.com", "a-.com", "a_b.com",
     "xn--zz.example", ("a" * 64) + ".com", ".".join(["abcdefgh"] * 32) + ".com", ""],
)  # fmt: skip
def test_anything_but_a_dns_name_is_refused(host):
    with pytest.raises(InvalidHost):
        normalize_host(host)


@pytest.mark.parametrize(
    ("given", "stored"),
    [("Api.Example.COM.", "api.example.com"), ("bücher.example", "xn--bcher-kva.example"),
     ("xn--bcher-kva.example", "xn--bcher-kva.example"), ("ａｐｉ.example.com", "api.example.com"),
     ("data.402claw.iox", "data.402claw.iox"), ("1a.example.com", "1a.example.com")],
)  # fmt: skip
def test_names_are_stored_as_idna_lower_case(given, stored):
    assert normalize_host(given, RESERVED) == stored


def test_platform_hosts_and_public_urls():
    assert {"gw.402claw.example", "402claw.io", "status.example"} == RESERVED
    assert check_public_url("HTTPS://GW.example.com:8443/api/") == "https://gw.example.com:8443/api"
    assert check_public_url("http://[::1]:8402") == "http://[::1]:8402"
    bad_urls = (
        "gw.example.com",
        "ftp://gw.example.com",
        "https://gw.example.com/?a=1",
        "https://u:p@gw.example.com",
        "https://gw.example.com:99999",
        "https://",
    )
    for bad in bad_urls:
        with pytest.raises(InvalidName):
            check_public_url(bad)
    loopback = ("localhost", "a.localhost", "127.9.9.9", "[::1]")
    assert all(is_loopback_host(h) for h in loopback)
    assert not any(is_loopback_host(h) for h in ("10.0.0.1", "evil.example", "localhost.evil"))
