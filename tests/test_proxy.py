"""Proxy selection follows curl: --proxy, the *_PROXY variables and NO_PROXY."""

from __future__ import annotations

import pytest

from batch_enroll.proxy import ProxyConfigError, ProxySettings, proxy_for, redact_url
from batch_enroll.redact import forget_secrets, scrub

API = "https://api.365.systems/odata/v2/Courses(65c61b1a-04c1-46e6-9d6e-41576a0ce14f)"


def chosen(url: str, proxy: str | None = None, **env: str) -> str | None:
    return proxy_for(url, proxy=proxy, env=env).url


def test_no_setting_means_no_proxy() -> None:
    choice = proxy_for(API, env={})
    assert choice.url is None
    assert choice.describe() == "none: no proxy is configured"


@pytest.mark.parametrize("name", ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"])
def test_https_urls_follow_https_proxy_or_all_proxy(name: str) -> None:
    choice = proxy_for(API, env={name: "http://proxy.corp:3128"})
    assert choice.url == "http://proxy.corp:3128"
    assert choice.source == name


@pytest.mark.parametrize("name", ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"])
def test_http_urls_follow_http_proxy_or_all_proxy(name: str) -> None:
    assert chosen("http://127.0.0.1:8365/x", **{name: "http://p:1"}) == "http://p:1"


def test_each_scheme_takes_its_own_variable() -> None:
    env = {"http_proxy": "http://plain:1", "https_proxy": "http://secure:2"}
    assert chosen("http://localhost/", **env) == "http://plain:1"
    assert chosen(API, **env) == "http://secure:2"
    assert chosen(API, http_proxy="http://plain:1") is None  # not the other scheme's


def test_lower_case_wins_and_the_scheme_variable_beats_all_proxy() -> None:
    env = {"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:2", "ALL_PROXY": "http://a:3"}
    assert chosen(API, **env) == "http://low:1"
    assert chosen(API, HTTPS_PROXY="http://up:2", all_proxy="http://a:3") == "http://up:2"


def test_an_empty_variable_counts_as_unset() -> None:
    assert chosen(API, https_proxy="", HTTPS_PROXY="http://up:2") == "http://up:2"


def test_the_option_beats_the_environment_and_empty_turns_proxies_off() -> None:
    env = {"HTTPS_PROXY": "http://env:1"}
    assert chosen(API, "http://flag:2", **env) == "http://flag:2"
    choice = proxy_for(API, proxy="", env=env)
    assert choice.url is None
    assert "turns proxies off" in choice.describe()


def test_scheme_and_port_default_as_in_curl() -> None:
    assert chosen(API, HTTPS_PROXY="proxy.corp") == "http://proxy.corp:1080"
    assert chosen(API, HTTPS_PROXY="proxy.corp:8080") == "http://proxy.corp:8080"
    assert chosen(API, HTTPS_PROXY="http://u:p@[::1]") == "http://u:p@[::1]:1080"


@pytest.mark.parametrize(
    "bad",
    [
        "socks5://proxy:1080",
        "https://proxy:443",
        "http://:3128",
        "http://[::1",
        "http://proxy:99999",
        "http://proxy:port",
    ],
)
def test_unusable_proxies_are_refused_up_front(bad: str) -> None:
    with pytest.raises(ProxyConfigError) as caught:
        ProxySettings(proxy=None, env={"HTTPS_PROXY": bad})
    assert "HTTPS_PROXY" in str(caught.value)


@pytest.mark.parametrize(
    ("no_proxy", "url", "direct"),
    [
        ("*", API, True),
        ("api.365.systems", API, True),
        ("365.systems", API, True),  # a domain covers its subdomains
        (".365.systems", API, True),
        ("*.365.systems", API, True),
        (".api.365.systems", API, True),  # a leading dot also covers the name itself
        ("5.systems", API, False),  # only at a dot
        ("API.365.SYSTEMS.", API, True),  # case and a trailing dot do not matter
        ("other.com, 365.systems", API, True),
        ("other.com 365.systems", API, True),
        ("api.365.systems:443", API, True),
        ("api.365.systems:8443", API, False),  # an entry with a port exempts only that port
        ("localhost", "http://127.0.0.1:8365/", False),  # names are not resolved
        ("127.0.0.1", "http://127.0.0.1:8365/", True),
        ("127.0.0.0/8", "http://127.0.0.2:8365/", True),
        ("10.0.0.0/8", "http://127.0.0.2:8365/", False),
        ("127.0.0.1:8365", "http://127.0.0.1:8365/", True),
        ("127.0.0.1:9", "http://127.0.0.1:8365/", False),
        ("::1", "http://[::1]:8365/", True),
        ("[::1]:8365", "http://[::1]:8365/", True),
        ("::1/128", "http://[::1]:8365/", True),
        ("localhost", "http://localhost:8365/", True),
        ("", API, False),
    ],
)
def test_no_proxy_entries(no_proxy: str, url: str, direct: bool) -> None:
    choice = proxy_for(url, env={"ALL_PROXY": "http://p:1", "NO_PROXY": no_proxy})
    assert (choice.url is None) is direct
    if direct:
        assert "NO_PROXY" in choice.describe()


def test_localhost_is_not_exempt_by_itself() -> None:
    assert chosen("http://localhost:8365/", HTTP_PROXY="http://p:1") == "http://p:1"
    assert chosen("http://127.0.0.1:8365/", HTTP_PROXY="http://p:1") == "http://p:1"


def test_no_proxy_applies_to_the_option_too_as_in_curl() -> None:
    assert chosen(API, "http://flag:2", no_proxy="365.systems") is None


def test_the_password_is_masked_in_descriptions_and_messages() -> None:
    forget_secrets()
    choice = proxy_for(API, proxy="http://svc:Pa%24%24w0rd@proxy.corp:3128", env={})
    assert choice.url == "http://svc:Pa%24%24w0rd@proxy.corp:3128"
    assert choice.redacted == "http://svc:***@proxy.corp:3128"
    assert "Pa" not in choice.describe()
    assert scrub("refused Pa$$w0rd and Pa%24%24w0rd") == "refused *** and ***"
    forget_secrets()


def test_a_bad_proxy_message_never_shows_the_password() -> None:
    with pytest.raises(ProxyConfigError) as caught:
        ProxySettings(proxy="socks5://svc:hunter22@proxy:1080", env={})
    assert "hunter22" not in str(caught.value)
    assert "svc:***@proxy" in str(caught.value)


def test_redact_url_keeps_urls_without_a_password() -> None:
    assert redact_url("http://proxy:3128") == "http://proxy:3128"
    assert redact_url("http://user@proxy:3128") == "http://user@proxy:3128"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://u:p4ss@proxy:3128/x", "http://u:***@proxy:3128/x"),
        ("u:p4ss@proxy:3128", "u:***@proxy:3128"),
        ("http://u:p@ss@[::1", "http://u:***@[::1"),  # malformed, still masked
        ("http://u:@proxy", "http://u:***@proxy"),
    ],
)
def test_redact_url_masks_any_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_settings_know_whether_any_proxy_is_configured() -> None:
    assert not ProxySettings(env={}).configured
    assert not ProxySettings(proxy="", env={"HTTPS_PROXY": "http://p:1"}).configured
    assert ProxySettings(env={"ALL_PROXY": "http://p:1"}).configured
    assert not ProxySettings(env={"NO_PROXY": "*"}).configured
