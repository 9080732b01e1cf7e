"""Mails accepted by moto's SES backend, as plain dicts."""

from __future__ import annotations

import email
import email.policy
from email.utils import getaddresses
from typing import Any


def mail_as_dict(message: Any) -> dict[str, Any]:
    """{"source", "destinations", "subject", "body"} for moto's RawMessage or Message."""
    raw = getattr(message, "raw_data", None)
    if raw is not None:
        return _raw_mail(message.source, list(message.destinations), raw)
    destinations = getattr(message, "destinations", [])
    if isinstance(destinations, dict):  # SendEmail: {"ToAddresses": [...], "CcAddresses": [...], ...}
        destinations = [address for addresses in destinations.values() for address in addresses]
    return {
        "source": message.source,
        "destinations": list(destinations),
        "subject": getattr(message, "subject", None),
        "body": getattr(message, "body", None) or getattr(message, "template_data", None),
    }


def _raw_mail(source: str | None, destinations: list[str], raw: str | bytes) -> dict[str, Any]:
    parse = email.message_from_bytes if isinstance(raw, bytes) else email.message_from_string
    parsed = parse(raw, policy=email.policy.default)
    # moto adds the To/Cc/Bcc header addresses to the Destinations it was given; SES would not,
    # so list every recipient once, as a bare address.
    destinations = list(dict.fromkeys(address for _, address in getaddresses(destinations) if address))
    body_part = parsed.get_body(preferencelist=("plain", "html"))
    return {
        "source": source or str(parsed.get("From", "")),
        "destinations": destinations,
        "subject": str(parsed.get("Subject", "")),
        "body": body_part.get_content() if body_part is not None else "",
    }
