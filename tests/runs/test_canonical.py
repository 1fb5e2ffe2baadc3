from __future__ import annotations

import ipaddress

import pytest

from matchplatform.exceptions import InvalidInput
from runs.canonical import ip_is_public, url_canonicalize, url_parse


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("https://acme.io/pricing?a=1&b=2", "https://acme.io/pricing?a=1&b=2"),
        ("HTTPS://WWW.Acme.IO:443/pricing/?utm_source=x&b=2&a=1#top", "https://acme.io/pricing?a=1&b=2"),
        ("https://acme.io/pricing?b=2&a=1&gclid=9", "https://acme.io/pricing?a=1&b=2"),
        ("https://www.acme.io./pricing?a=1&fbclid=abc&b=2", "https://acme.io/pricing?a=1&b=2"),
        (
            "  https://acme.io/pricing/?UTM_Campaign=spring&a=1&b=2&ref=ph  ",
            "https://acme.io/pricing?a=1&b=2",
        ),
        ("https://ACME.io:443/pricing?a=1&b=2#section", "https://acme.io/pricing?a=1&b=2"),
        ("https://acme.io/pricing?&a=1&&b=2&Ref=x", "https://acme.io/pricing?a=1&b=2"),
        ("https://acme.io/pricing//?b=2&utm_medium=email&utm_term=&a=1", "https://acme.io/pricing?a=1&b=2"),
        ("HTTPS://WWW.Acme.IO:443/?utm_source=x&b=2&a=1#top", "https://acme.io?a=1&b=2"),
        ("https://acme.io?a=1&b=2&gclid=9", "https://acme.io?a=1&b=2"),
        ("https://acme.io/?b=2&a=1", "https://acme.io?a=1&b=2"),
        ("https://www.acme.io?a=1&b=2#", "https://acme.io?a=1&b=2"),
    ],
)
def test_many_spellings_of_one_url_share_one_canonical_form(spelling: str, canonical: str) -> None:
    assert url_canonicalize(url=spelling) == canonical


def test_the_canonical_form_is_stable_when_canonicalized_again() -> None:
    canonical = url_canonicalize(url="HTTPS://WWW.Acme.IO:443/Pricing/?b=2&a=1&utm_x=1")
    assert url_canonicalize(url=canonical) == canonical


def test_tracking_parameters_are_dropped() -> None:
    url = "https://acme.io/?utm_source=a&UTM_MEDIUM=b&utm_anything=c&gclid=d&FBCLID=e&ref=f&keep=1"
    assert url_canonicalize(url=url) == "https://acme.io?keep=1"


def test_remaining_query_is_sorted_by_key_then_value_with_blank_values_kept() -> None:
    assert url_canonicalize(url="https://acme.io/?b=2&a=&a=1&c") == "https://acme.io?a=&a=1&b=2&c"


def test_only_default_ports_are_dropped() -> None:
    assert url_canonicalize(url="http://acme.io:80/") == "http://acme.io"
    assert url_canonicalize(url="https://acme.io:8443/") == "https://acme.io:8443"
    assert url_canonicalize(url="http://acme.io:443/") == "http://acme.io:443"


def test_http_and_https_stay_distinct() -> None:
    assert url_canonicalize(url="http://acme.io") != url_canonicalize(url="https://acme.io")


def test_an_idn_host_becomes_punycode() -> None:
    assert url_canonicalize(url="https://www.Bücher.de/") == "https://xn--bcher-kva.de"


def test_path_case_and_percent_encoding_are_left_as_is() -> None:
    assert url_canonicalize(url="https://acme.io/A%2Fb/%7Euser/") == "https://acme.io/A%2Fb/%7Euser"


def test_characters_a_request_line_cannot_carry_are_percent_encoded() -> None:
    assert url_canonicalize(url="https://acme.io/über") == "https://acme.io/%C3%BCber"


def test_www_is_kept_when_it_is_the_registrable_name() -> None:
    assert url_canonicalize(url="https://www.com/") == "https://www.com"


def test_a_public_ip_literal_is_allowed_in_standard_form() -> None:
    assert url_canonicalize(url="http://0x8.8.8.8:8080/") == "http://8.8.8.8:8080"
    assert url_canonicalize(url="http://[2001:4860:0::8888]/") == "http://[2001:4860::8888]"
    assert url_canonicalize(url="http://[::ffff:8.8.8.8]/") == "http://8.8.8.8"


def test_parsing_for_the_fetcher_keeps_www_trailing_slash_and_every_parameter() -> None:
    parts = url_parse(url="HTTPS://WWW.Acme.IO:443/pricing/?utm_source=x#top")
    assert str(parts) == "https://www.acme.io/pricing/?utm_source=x"
    assert parts.target == "/pricing/?utm_source=x"
    assert parts.port_effective == 443


def test_an_allow_listed_network_lets_its_ip_literals_through() -> None:
    loopback = ipaddress.ip_network("127.0.0.0/8")
    assert url_canonicalize(url="http://127.0.0.1:8000/", allowed_networks=[loopback]) == ("http://127.0.0.1:8000")
    with pytest.raises(InvalidInput):
        url_canonicalize(url="http://10.0.0.1/", allowed_networks=[loopback])
    with pytest.raises(InvalidInput):
        url_canonicalize(url="http://localhost/", allowed_networks=[loopback])


@pytest.mark.parametrize(
    ("url", "code"),
    [
        (None, "invalid_type"),
        (123, "invalid_type"),
        (b"https://acme.io", "invalid_type"),
        (["https://acme.io"], "invalid_type"),
        ("", "required"),
        ("   \t ", "required"),
        ("https://acme.io/" + "a" * 2040, "too_long"),
        ("acme.io", "invalid_scheme"),
        ("//acme.io/", "invalid_scheme"),
        ("ftp://acme.io/", "invalid_scheme"),
        ("javascript:alert(1)", "invalid_scheme"),
        ("file:///etc/passwd", "invalid_scheme"),
        ("localhost:8000", "invalid_scheme"),
        ("http://", "missing_host"),
        ("http:///path", "missing_host"),
        ("http:acme.io", "missing_host"),
        ("https://:443/", "missing_host"),
        ("https://user:secret@acme.io/", "credentials_not_allowed"),
        ("https://user@acme.io/", "credentials_not_allowed"),
        ("https://@acme.io/", "credentials_not_allowed"),
        ("https://acme.io\\@evil.example/", "credentials_not_allowed"),
        ("http://127.0.0.1/", "forbidden_host"),
        ("http://127.0.0.1:8000/admin", "forbidden_host"),
        ("http://10.0.0.1/", "forbidden_host"),
        ("http://172.16.5.4/", "forbidden_host"),
        ("http://192.168.1.1/", "forbidden_host"),
        ("http://169.254.169.254/latest/meta-data/", "forbidden_host"),
        ("http://0.0.0.0/", "forbidden_host"),
        ("http://100.64.0.1/", "forbidden_host"),
        ("http://224.0.0.1/", "forbidden_host"),
        ("http://240.0.0.1/", "forbidden_host"),
        ("http://255.255.255.255/", "forbidden_host"),
        ("http://[::1]/", "forbidden_host"),
        ("http://[::]/", "forbidden_host"),
        ("http://[fe80::1]/", "forbidden_host"),
        ("http://[fc00::1]/", "forbidden_host"),
        ("http://[fec0::1]/", "forbidden_host"),
        ("http://[ff02::1]/", "forbidden_host"),
        ("http://[::ffff:127.0.0.1]/", "forbidden_host"),
        ("http://[::ffff:a9fe:a9fe]/", "forbidden_host"),
        ("http://[64:ff9b::10.0.0.1]/", "forbidden_host"),
        ("http://[2002:c0a8:0101::1]/", "forbidden_host"),
        ("http://2130706433/", "forbidden_host"),
        ("http://0x7f.1/", "forbidden_host"),
        ("http://0x7f000001/", "forbidden_host"),
        ("http://0177.0.0.1/", "forbidden_host"),
        ("http://127.1/", "forbidden_host"),
        ("http://localhost/", "forbidden_host"),
        ("http://LOCALHOST./", "forbidden_host"),
        ("http://api.localhost:3000/", "forbidden_host"),
        ("https://acme.io:99999/", "invalid_url"),
        ("https://acme.io:abc/", "invalid_url"),
        ("https://acme.io:0/", "invalid_url"),
        ("https://acme .io/", "invalid_url"),
        ("https://acme.io/a b", "invalid_url"),
        ("https://acme.io/\tpath", "invalid_url"),
        ("https://acme.io/a\nb", "invalid_url"),
        ("https://acme.io/\x00", "invalid_url"),
        ("https://acme.io/\x7f", "invalid_url"),
        ("https://acme.io/a\u00a0b", "invalid_url"),
        ("http://[::1/", "invalid_url"),
        ("http://[fe80::1%25eth0]/", "invalid_url"),
        ("http://acme..io/", "invalid_url"),
        ("http://ac<me.io/", "invalid_url"),
        ("http://" + "a" * 64 + ".io/", "invalid_url"),
        ("http://1.2.3.4.5/", "invalid_url"),
        ("http://99999999999/", "invalid_url"),
    ],
)
def test_each_bad_url_is_rejected_with_its_code(url: object, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        url_canonicalize(url=url)
    error = caught.value
    assert error.code == code
    assert error.http_status == 400
    assert error.message.endswith(".")
    assert error.fields == {"url": [error.message]}


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.31.255.255", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("100.127.255.254", False),
        ("0.0.0.0", False),
        ("224.0.0.251", False),
        ("239.255.255.250", False),
        ("240.0.0.1", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("fec0::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::7f00:1", False),
        ("2002:7f00:1::", False),
    ],
)
def test_ip_is_public_only_for_internet_addresses(address: str, public: bool) -> None:
    assert ip_is_public(address=ipaddress.ip_address(address)) is public
