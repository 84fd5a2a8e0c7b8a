"""Source and sink URLs: ``scheme:target?option=value&...``.

A plain target (a path, a device) is percent-decoded: a ``?`` in a file name
is written ``%3F`` and a ``%`` is written ``%25`` (``images:what%3F/``).

The target of a ``serial:`` URL may itself be a pyserial URL, which may carry
its own query (``spy:///dev/ttyUSB0?file=log.txt``). Only the option names the
caller knows are taken out of the query; everything else stays on that URL, so
pyserial still sees its own options. A URL target (``...://...``) is left as
given: it is the URL's own business.
"""

from __future__ import annotations

import math
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
        target: What follows ``scheme:`` minus our options (a path or device, percent-decoded;
            or a pyserial URL, as given).
        options: Our options from the query, as strings.
    """

    url: str
    scheme: str
    target: str
    options: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """Readable name for logs: ``serial /dev/ttyUSB0 (baud=9600, hop=128)``, ``stdin (format=csv)``."""
        text = f"{self.scheme} {self.target}" if self.target else self.scheme
        if self.options:
            text += " (" + ", ".join(f"{key}={value}" for key, value in self.options.items()) + ")"
        return text


def parse_url(url: str, known: frozenset[str] | set[str], *, passthrough: bool = False) -> ParsedUrl:
    """Split ``url`` into scheme, target and the options named in ``known``.

    Args:
        url: ``scheme`` or ``scheme:target[?k=v&...]``.
        known: Option names this source/sink understands.
        passthrough: When the target is a URL (``rfc2217://host:port``, ``spy://...``),
            leave unknown ``k=v`` pairs on it (serial ports hand them to pyserial)
            instead of rejecting them. A plain device path still rejects them.

    Raises:
        InputDataError: Empty URL, or an option this scheme does not know.
    """
    text = url.strip()
    if not text:
        raise InputDataError("empty source/sink URL", "give one like camera:0, video:clip.mp4, jsonl:out.jsonl")
    scheme, _, rest = text.partition(":")
    scheme = scheme.lower()
    # A pyserial URL keeps its own '?': split only the last query, where ours live.
    base, _, query = rest.rpartition("?") if "?" in rest else (rest, "", "")
    is_url = "://" in base
    ours: dict[str, str] = {}
    theirs: list[str] = []
    for pair in filter(None, query.split("&")):
        key, sep, value = pair.partition("=")
        if key in known:
            ours[key] = unquote(value) if sep else "1"
        elif passthrough and is_url:
            theirs.append(pair)
        else:
            allowed = ", ".join(sorted(known)) or "none"
            raise InputDataError(f"{scheme}: unknown option {key!r} in {url!r}",
                                 f"options for {scheme}: {allowed}; write a '?' in a path as %3F")
    if is_url:
        target = base + ("?" + "&".join(theirs) if theirs else "")
    else:
        target = unquote(base)
    return ParsedUrl(text, scheme, target, ours)


def int_option(parsed: ParsedUrl, name: str, default: int | None, minimum: int | None = None) -> int | None:
    """An integer option, or ``default`` when absent (InputDataError when malformed)."""
    return _number_option(parsed, name, default, minimum, int, "an integer")


def float_option(parsed: ParsedUrl, name: str, default: float | None, minimum: float | None = None) -> float | None:
    """A float option, or ``default`` when absent (InputDataError when malformed)."""
    return _number_option(parsed, name, default, minimum, float, "a number")


def _number_option(parsed: ParsedUrl, name: str, default, minimum, convert, kind: str):
    """Parse option ``name`` with ``convert`` and check it against ``minimum`` (nan and infinity are no numbers here)."""
    if name not in parsed.options:
        return default
    raw = parsed.options[name]
    try:
        value = convert(raw)
    except ValueError:
        raise InputDataError(f"{parsed.scheme}: option {name}={raw} is not {kind}") from None
    if not math.isfinite(value):
        raise InputDataError(f"{parsed.scheme}: option {name}={raw} is not a finite number")
    if minimum is not None and value < minimum:
        raise InputDataError(f"{parsed.scheme}: option {name}={raw} must be at least {minimum}")
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
