"""Source and sink URLs: ``scheme:target?option=value&...``.

The target of a ``serial:`` URL is itself a pyserial URL, which may carry its
own query (``spy:///dev/ttyUSB0?file=log.txt``). Only the option names the
caller knows are taken out of the query; everything else stays on the target,
so pyserial still sees its own options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

from edgert.errors import DeviceError, InputDataError

__all__ = ["ParsedUrl", "parse_url", "int_option", "float_option", "choice_option", "bool_option", "open_serial"]


@dataclass(frozen=True)
class ParsedUrl:
    """A split source/sink URL.

    Attributes:
        url: The URL as given.
        scheme: Lower-case scheme (``"camera"``, ``"serial"``, ...).
        target: What follows ``scheme:`` minus our options (a path, a device, a pyserial URL).
        options: Our options from the query, as strings.
    """

    url: str
    scheme: str
    target: str
    options: dict[str, str] = field(default_factory=dict)


def parse_url(url: str, known: frozenset[str] | set[str], *, passthrough: bool = False) -> ParsedUrl:
    """Split ``url`` into scheme, target and the options named in ``known``.

    Args:
        url: ``scheme`` or ``scheme:target[?k=v&...]``.
        known: Option names this source/sink understands.
        passthrough: Leave unknown ``k=v`` pairs on the target (serial ports
            hand them to pyserial) instead of rejecting them.

    Raises:
        InputDataError: Empty URL, or an option this scheme does not know.
    """
    text = url.strip()
    if not text:
        raise InputDataError("empty source/sink URL", "give one like camera:0, video:clip.mp4, jsonl:out.jsonl")
    scheme, _, rest = text.partition(":")
    scheme = scheme.lower()
    if "?" not in rest:
        return ParsedUrl(text, scheme, rest, {})
    base, _, query = rest.rpartition("?")
    # A pyserial URL keeps its own '?': split only the last query, where ours live.
    ours: dict[str, str] = {}
    theirs: list[str] = []
    for pair in filter(None, query.split("&")):
        key, sep, value = pair.partition("=")
        if key in known:
            ours[key] = unquote(value) if sep else "1"
        elif passthrough:
            theirs.append(pair)
        else:
            allowed = ", ".join(sorted(known)) or "none"
            raise InputDataError(f"{scheme}: unknown option {key!r} in {url!r}", f"options for {scheme}: {allowed}")
    target = base + ("?" + "&".join(theirs) if theirs else "")
    return ParsedUrl(text, scheme, target, ours)


def int_option(parsed: ParsedUrl, name: str, default: int | None, minimum: int | None = None) -> int | None:
    """An integer option, or ``default`` when absent (InputDataError when malformed)."""
    return _number_option(parsed, name, default, minimum, int, "an integer")


def float_option(parsed: ParsedUrl, name: str, default: float | None, minimum: float | None = None) -> float | None:
    """A float option, or ``default`` when absent (InputDataError when malformed)."""
    return _number_option(parsed, name, default, minimum, float, "a number")


def _number_option(parsed: ParsedUrl, name: str, default, minimum, convert, kind: str):
    """Parse option ``name`` with ``convert`` and check it against ``minimum``."""
    if name not in parsed.options:
        return default
    raw = parsed.options[name]
    try:
        value = convert(raw)
    except ValueError:
        raise InputDataError(f"{parsed.scheme}: option {name}={raw!r} is not {kind}") from None
    if minimum is not None and value < minimum:
        raise InputDataError(f"{parsed.scheme}: option {name}={value} must be at least {minimum}")
    return value


def choice_option(parsed: ParsedUrl, name: str, default: str, choices: tuple[str, ...]) -> str:
    """A string option restricted to ``choices``."""
    value = parsed.options.get(name, default).lower()
    if value not in choices:
        raise InputDataError(f"{parsed.scheme}: option {name}={value!r} is not one of {', '.join(choices)}")
    return value


def bool_option(parsed: ParsedUrl, name: str, default: bool) -> bool:
    """A yes/no option (``1/0``, ``true/false``, ``yes/no``)."""
    if name not in parsed.options:
        return default
    raw = parsed.options[name].lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise InputDataError(f"{parsed.scheme}: option {name}={raw!r} is not yes/no")


def open_serial(port: str, **settings):
    """Open a serial port path or pyserial URL (``serial_for_url``), failures as our errors.

    Args:
        port: ``/dev/ttyUSB0``, ``socket://host:port``, ``spy://...`` — what follows ``serial:``.
        **settings: pyserial settings (``baudrate``, ``timeout``, ``write_timeout``).

    Raises:
        DeviceError: The port cannot be opened (absent, busy, no permission).
        InputDataError: pyserial rejects the URL or an option in it.
    """
    import serial  # lazily: only serial sources and sinks need pyserial

    try:
        return serial.serial_for_url(port, **settings)
    except (serial.SerialException, OSError) as e:
        raise DeviceError(
            f"serial port {port} could not be opened: {e}", "check the cable, the port name and permissions (dialout group)"
        ) from None
    except ValueError as e:
        raise InputDataError(f"serial: bad port URL or option {port!r}: {e}") from None
