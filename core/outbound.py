"""The one door for outbound HTTP: doc-link checks and notice channels go through it.

A URL given by a person must not turn Rollcall into a proxy into its own network (SSRF): the
host is resolved and every address it resolves to must be public (not loopback, link-local,
private, shared, reserved, multicast or unspecified; IPv4-mapped and 6to4 IPv6 addresses are
judged by the IPv4 address inside). `ROLLCALL_OUTBOUND_ALLOW` lists hosts and networks a team
really wants to reach (an internal wiki, a chat server on the LAN).

DNS rebinding: the connection goes to the address that was checked (it is pinned in the
connection), while the Host header, TLS SNI and certificate check keep the host name. Redirects
are followed by hand, each hop checked like the first. Environment proxies are not used: a
proxy would make the checked address meaningless.

Errors carry a short reason a person can act on and never the URL (Slack and Teams webhook
URLs are credentials); `redact_url` gives the scheme and host for logs.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util import connection

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

REDIRECT_STATUSES = {301, 302, 303, 307, 308}
ALLOW_SETTING = "ROLLCALL_OUTBOUND_ALLOW"


class OutboundRefused(Exception):
    """The destination is not allowed; `message` is safe to show (no URL, no secrets)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OutboundError(Exception):
    """The request failed on the way (DNS, connect, TLS, timeout, redirect loop).

    `message` is short and safe to show: it names neither the URL nor the remote reply.
    """

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


def redact_url(url: str) -> str:
    """`https://hooks.slack.com`: scheme and host only, for logs and messages."""
    try:
        parts = urlsplit(url or "")
        host = parts.hostname or ""
    except ValueError:
        return "(invalid address)"
    if not parts.scheme or not host:
        return "(invalid address)"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}"


# --------------------------------------------------------------------------------------------
# What may be reached


@dataclass(frozen=True)
class Allowlist:
    hosts: frozenset[str]
    suffixes: tuple[str, ...]  # ".corp.example" allows every name under corp.example
    networks: tuple[IPNetwork, ...]

    def allows_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self.hosts or any(host.endswith(s) for s in self.suffixes)

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


def parse_allowlist(entries: Iterable[str]) -> Allowlist:
    """Entries: host names (`wiki.corp.example`), `.corp.example` for a whole domain, IP
    addresses and CIDR networks (`10.20.0.0/16`, `fd00::/8`)."""
    hosts: set[str] = set()
    suffixes: list[str] = []
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        if entry.startswith("."):
            suffixes.append(entry.rstrip("."))
        else:
            hosts.add(entry.rstrip("."))
    return Allowlist(frozenset(hosts), tuple(suffixes), tuple(networks))


def current_allowlist() -> Allowlist:
    return parse_allowlist(getattr(settings, ALLOW_SETTING, None) or ())


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    return None


def refusal_reason(address: IPAddress) -> str | None:
    """Why this address may not be reached, or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            return refusal_reason(inner)
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "non-public"
    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the host resolves to (IP literals resolve to themselves)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, IPAddress] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        text = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
        seen.setdefault(text, ipaddress.ip_address(text))
    return list(seen.values())


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int
    address: IPAddress  # what the connection goes to


def _split(url: str) -> tuple[str, str, int]:
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused("The address is not a valid web address.") from exc
    if scheme not in {"http", "https"}:
        raise OutboundRefused("Only http:// and https:// addresses can be reached.")
    if not host:
        raise OutboundRefused("The address has no host name.")
    return scheme, host, port or (443 if scheme == "https" else 80)


def _refuse(reason: str, *, literal: bool) -> OutboundRefused:
    what = "is" if literal else "resolves to"
    return OutboundRefused(
        f"Refused: the host {what} a {reason} address, which Rollcall does not contact. "
        f"An admin can allow internal hosts with {ALLOW_SETTING}."
    )


def check_destination(url: str, *, resolve_names: bool = True) -> Destination | None:
    """Resolve and judge the URL's host; raise OutboundRefused when it may not be reached.

    With `resolve_names=False` (saving a form) only IP literals and `localhost` are judged and
    None is returned for other names; an unresolvable name raises OutboundError.
    """
    scheme, host, port = _split(url)
    allow = current_allowlist()
    host_allowed = allow.allows_host(host)
    literal = True
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        literal = False
        if not resolve_names:
            if (host == "localhost" or host.endswith(".localhost")) and not host_allowed:
                raise _refuse("loopback", literal=False) from None
            return None
        try:
            addresses = resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise OutboundError("The host name could not be resolved (DNS).") from exc
    if not addresses:
        raise OutboundError("The host name could not be resolved (DNS).")
    if not host_allowed:
        for address in addresses:
            reason = refusal_reason(address)
            if reason and not allow.allows_address(address):
                raise _refuse(reason, literal=literal)
    return Destination(scheme=scheme, host=host, port=port, address=addresses[0])


# --------------------------------------------------------------------------------------------
# Connections pinned to the checked address

_pins = threading.local()


def _pinned(host: str, port: int) -> str:
    pins: dict[tuple[str, int], str] = getattr(_pins, "map", {})
    address = pins.get((host.lower().rstrip("."), port))
    if address is None:
        # Only reachable when something bypassed `request`: never connect unchecked.
        raise OutboundRefused("Refused: the address was not checked before connecting.")
    return address


class _PinnedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        address = _pinned(self.host, self.port)
        try:
            # urllib3's own connect, so its socket options apply (TCP_NODELAY: without it
            # every request whose body goes out after its headers waits ~40 ms for an ACK).
            return connection.create_connection(
                (address, self.port),
                self.timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
        except TimeoutError as exc:
            from urllib3.exceptions import ConnectTimeoutError

            raise ConnectTimeoutError(self, "connect timed out") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc


class _PinnedHTTPSConnection(HTTPSConnection):
    # TLS SNI and the certificate check use self.host (the name); only the socket is pinned.
    _new_conn = _PinnedHTTPConnection._new_conn


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


class PinnedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _PinnedHTTPPool,
            "https": _PinnedHTTPSPool,
        }
        self.poolmanager.key_fn_by_scheme = dict(self.poolmanager.key_fn_by_scheme)


def new_session(user_agent: str = "") -> requests.Session:
    """A session whose every connection goes to a checked, pinned address."""
    session = requests.Session()
    session.trust_env = False  # no environment proxies or .netrc
    adapter = PinnedAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if user_agent:
        session.headers["User-Agent"] = user_agent
    return session


def _describe(exc: Exception, timeout: Any) -> OutboundError:
    if isinstance(exc, requests.Timeout):
        seconds = timeout if isinstance(timeout, int | float) else max(timeout)
        return OutboundError(f"No answer within {seconds:g} seconds.")
    if isinstance(exc, requests.exceptions.SSLError):
        return OutboundError("The TLS handshake or certificate check failed.")
    if isinstance(exc, requests.ConnectionError):
        return OutboundError("Could not connect (refused, reset or unreachable).")
    if isinstance(exc, requests.RequestException):
        return OutboundError(f"The request failed ({type(exc).__name__}).")
    return OutboundError(f"The request failed ({type(exc).__name__}).")


def request(
    method: str,
    url: str,
    *,
    session: requests.Session | None = None,
    max_redirects: int = 0,
    timeout: float | tuple[float, float] = 10.0,
    **kwargs: Any,
) -> requests.Response:
    """One guarded request: check, pin, send; follow up to `max_redirects` redirects, each
    hop checked again. Raises OutboundRefused or OutboundError (safe messages)."""
    own = session is None
    session = session or new_session()
    try:
        for _hop in range(max_redirects + 1):
            target = check_destination(url)
            assert target is not None
            _pins.map = {(target.host, target.port): str(target.address)}
            try:
                response = session.request(
                    method, url, timeout=timeout, allow_redirects=False, **kwargs
                )
            except OutboundRefused:
                raise
            except (requests.RequestException, OSError, ValueError) as exc:
                # Only failures of the request itself: a worker's time limit
                # (SoftTimeLimitExceeded) and other interruptions go up unchanged.
                cause = exc.__context__ if isinstance(exc, requests.ConnectionError) else None
                if isinstance(cause, OutboundRefused):
                    raise cause from None
                raise _describe(exc, timeout) from exc
            finally:
                _pins.map = {}
            location = response.headers.get("Location")
            if response.status_code not in REDIRECT_STATUSES or not location or not max_redirects:
                return response
            response.close()
            url = urljoin(url, location)
            if response.status_code == 303 or (
                response.status_code in {301, 302} and method == "POST"
            ):
                method = "GET"
                kwargs.pop("data", None)
                kwargs.pop("json", None)
        raise OutboundError(
            f"More than {max_redirects} redirects (a redirect loop?).", transient=False
        )
    finally:
        if own:
            session.close()
