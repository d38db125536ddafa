"""Slack buttons (pure): their action ids and values, the blocks that carry them, and what a clicked message
becomes. No I/O: the check adds the buttons (SLACK_INTERACTIVE), the interactivity endpoint reads a click's
value with `ButtonValue.decode` and answers through the click's `response_url` with the payloads built here.

A button's value names a database and an incident or a backup, never a token or a URL: what it points at is
looked up again when it is clicked. Everything a click sends is data from outside: `ButtonValue.decode` refuses
anything but the exact shape we write, and an edited message is rebuilt from the clicked message's blocks
keeping only Block Kit the check writes (so a forged `message` cannot make us post arbitrary markup).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backup_monitor.messages import (
    BUTTON_URL_MAX,
    MESSAGE_BLOCKS_MAX,
    MESSAGE_TEXT_MAX,
    SECTION_TEXT_MAX,
    context,
    fit_markup,
    safe,
    section,
    slack_date,
    slack_len,
)
from backup_monitor.silences import slack_who

ACTION_ACK = "bm_ack"
ACTION_SILENCE = "bm_silence"  # 24 hours
ACTION_UNSILENCE = "bm_unsilence"
ACTION_DOWNLOAD = "bm_download"
ACTIONS = (ACTION_ACK, ACTION_SILENCE, ACTION_UNSILENCE, ACTION_DOWNLOAD)

# Block ids of what the buttons add to a message (the endpoint's edits find and replace them by these).
INCIDENT_BLOCK = "bm_incident"
DOWNLOAD_BLOCK = "bm_download"
ACK_STATUS_BLOCK = "bm_ack_status"
SILENCE_STATUS_BLOCK = "bm_silence_status"
OUR_BLOCKS = (INCIDENT_BLOCK, DOWNLOAD_BLOCK, ACK_STATUS_BLOCK, SILENCE_STATUS_BLOCK)

VALUE_MAX = 2000  # Slack's limit on a button's value
FIELD_MAX = 500  # one field of a value (a state key, an incident key, a backup id, a silence id)
SILENCE_HOURS = 24
LABELS = {
    ACTION_ACK: "Acknowledge",
    ACTION_SILENCE: f"Silence {SILENCE_HOURS} h",
    ACTION_UNSILENCE: "Unsilence",
    ACTION_DOWNLOAD: "Get download link",
}
_FIELDS = {"k": "key", "i": "incident", "b": "backup", "s": "silence"}
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f-\x9f\s]+$")  # no spaces, no control characters
_URL_OR_TOKEN = re.compile(r"(://|token=|xox[a-z]-)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ButtonValue:
    """What a button names: the database's state key, and the incident (its key in Record.incidents), the
    backup (its id) or the silence (its id) the click is about."""

    key: str
    incident: str | None = None
    backup: str | None = None
    silence: str | None = None

    def __post_init__(self) -> None:
        for name in ("key", "incident", "backup", "silence"):
            value = getattr(self, name)
            if value is None and name != "key":
                continue
            if not isinstance(value, str) or not value or len(value) > FIELD_MAX or not _PRINTABLE.match(value):
                raise ValueError(f"a button's {name} must be a short printable string")
            if _URL_OR_TOKEN.search(value):
                raise ValueError(f"a button's {name} must not be a URL or carry a token")

    def encode(self) -> str:
        """Compact JSON, e.g. `{"k":"osc-fr1/ad-x","i":"failed"}` (ValueError past VALUE_MAX characters)."""
        data = {short: getattr(self, name) for short, name in _FIELDS.items() if getattr(self, name) is not None}
        raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        if len(raw) > VALUE_MAX:
            raise ValueError(f"a button's value is at most {VALUE_MAX} characters")
        return raw

    @classmethod
    def decode(cls, raw: object) -> ButtonValue:
        """The value of a clicked button; ValueError on anything that is not exactly what `encode` writes."""
        if not isinstance(raw, str) or not raw or len(raw) > VALUE_MAX:
            raise ValueError("a button's value is a string of at most 2,000 characters")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise ValueError("a button's value is JSON") from None
        if not isinstance(data, dict):
            raise ValueError("a button's value is a JSON object")
        unknown = set(data) - set(_FIELDS)
        if unknown or "k" not in data:
            raise ValueError("a button's value has the keys k, i, b and s only, and k")
        if any(not isinstance(v, str) for v in data.values()):
            raise ValueError("a button's value holds strings only")
        return cls(**{_FIELDS[short]: value for short, value in data.items()})


def _button(action: str, value: ButtonValue, *, style: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": LABELS[action]},
        "action_id": action,
        "value": value.encode(),
    }
    if style:
        element["style"] = style
    return element


def ack_button(key: str, incident: str) -> dict[str, Any]:
    return _button(ACTION_ACK, ButtonValue(key, incident=incident), style="primary")


def silence_button(key: str, incident: str) -> dict[str, Any]:
    return _button(ACTION_SILENCE, ButtonValue(key, incident=incident))


def unsilence_button(key: str, incident: str | None, silence_id: str) -> dict[str, Any]:
    return _button(ACTION_UNSILENCE, ButtonValue(key, incident=incident, silence=silence_id))


def download_button(key: str, backup_id: str) -> dict[str, Any]:
    return _button(ACTION_DOWNLOAD, ButtonValue(key, backup=backup_id))


def incident_actions(key: str, incident: str, *, silence: bool = True) -> dict[str, Any]:
    """The `actions` block of an incident's message: Acknowledge and Silence 24 h (ValueError when the key or
    incident cannot be a button's value). `silence=False`: Acknowledge only (a record whose key is not a
    database's: an API outage, the unreadable records)."""
    elements = [ack_button(key, incident)]
    if silence:
        elements.append(silence_button(key, incident))
    return {"type": "actions", "block_id": INCIDENT_BLOCK, "elements": elements}


def download_actions(key: str, backup_id: str) -> dict[str, Any]:
    """The `actions` block of a success: "Get download link" (the link is made when clicked, shown to the
    clicker only)."""
    return {"type": "actions", "block_id": DOWNLOAD_BLOCK, "elements": [download_button(key, backup_id)]}


# -- what a clicked message becomes --------------------------------------------------------------------------------


def _buttons(blocks: Sequence[Any]) -> list[tuple[str, ButtonValue]]:
    """Our buttons in the clicked message (action id, decoded value); anything else is ignored."""
    found: list[tuple[str, ButtonValue]] = []
    for block in blocks:
        if not isinstance(block, dict) or block.get("type") != "actions":
            continue
        elements = block.get("elements")
        for element in elements if isinstance(elements, list) else []:
            if not isinstance(element, dict) or element.get("action_id") not in ACTIONS:
                continue
            try:
                found.append((str(element["action_id"]), ButtonValue.decode(element.get("value"))))
            except ValueError:
                continue
    return found


def _kept(block: Any) -> dict[str, Any] | None:
    """A block of the clicked message as we wrote it (section or context of mrkdwn text, a URL button), without
    what Slack added (block ids, emoji flags); None for what we do not keep (our buttons and statuses, any
    other block)."""
    if not isinstance(block, dict) or block.get("block_id") in OUR_BLOCKS:
        return None
    kind = block.get("type")
    if kind == "section":
        text = _text(block.get("text"))
        if text is None:
            return None
        accessory = _url_button(block.get("accessory"))
        return section(text, accessory) if accessory is not None else section(text)
    if kind == "context":
        elements = block.get("elements")
        texts = [t for t in (_text(e) for e in (elements if isinstance(elements, list) else [])) if t is not None]
        return context(" ".join(texts)) if texts else None
    if kind == "actions":
        elements = block.get("elements")
        buttons = [b for b in (_url_button(e) for e in (elements if isinstance(elements, list) else [])) if b]
        return {"type": "actions", "elements": buttons[:25]} if buttons else None
    return None


def _text(node: Any) -> str | None:
    if not isinstance(node, dict) or node.get("type") not in ("mrkdwn", "plain_text"):
        return None
    text = node.get("text")
    if not isinstance(text, str) or not text.strip():
        return None
    return fit_markup(text, SECTION_TEXT_MAX)


def _url_button(node: Any) -> dict[str, Any] | None:
    """A link button of the message (the dashboard's, a download of a message made without buttons)."""
    if not isinstance(node, dict) or node.get("type") != "button" or node.get("action_id") in ACTIONS:
        return None
    label, url = _text(node.get("text")), node.get("url")
    if label is None or not isinstance(url, str) or not url.startswith("https://") or len(url) > BUTTON_URL_MAX:
        return None
    return {"type": "button", "text": {"type": "plain_text", "text": label[:75]}, "url": url}


def _status(blocks: Sequence[Any], block_id: str) -> dict[str, Any] | None:
    """A status line we added by an earlier click (acknowledged, silenced), kept as it was."""
    for block in blocks:
        if isinstance(block, dict) and block.get("block_id") == block_id and block.get("type") == "context":
            elements = block.get("elements")
            texts = [t for t in (_text(e) for e in (elements if isinstance(elements, list) else [])) if t]
            if texts:
                return _status_block(block_id, " ".join(texts))
    return None


def _status_block(block_id: str, text: str) -> dict[str, Any]:
    return {**context(text), "block_id": block_id}


def _edited(
    blocks: Any,
    text: Any,
    *,
    ack: dict[str, Any] | None,
    silence: dict[str, Any] | None,
    buttons: list[dict[str, Any]],
) -> dict[str, Any]:
    """The response_url payload replacing the clicked message: its facts, then the status lines, then the buttons
    still of use."""
    source = blocks if isinstance(blocks, list) else []
    kept = [b for b in (_kept(b) for b in source[:MESSAGE_BLOCKS_MAX]) if b is not None]
    statuses = [s for s in (ack, silence) if s is not None]
    tail = [*statuses, *([{"type": "actions", "block_id": INCIDENT_BLOCK, "elements": buttons}] if buttons else [])]
    kept = kept[: MESSAGE_BLOCKS_MAX - len(tail)]
    message_text = text if isinstance(text, str) and text.strip() else "Backup monitor"
    if slack_len(message_text) > MESSAGE_TEXT_MAX:
        message_text = fit_markup(message_text, MESSAGE_TEXT_MAX)
    return {"replace_original": True, "text": message_text, "blocks": [*kept, *tail]}


def _listed(blocks: Any) -> list[Any]:
    """The clicked message's blocks, or none when they are not a list (at most twice Slack's count)."""
    return blocks[: 2 * MESSAGE_BLOCKS_MAX] if isinstance(blocks, list) else []


def _incident_of(blocks: list[Any]) -> tuple[ButtonValue | None, dict[str, ButtonValue]]:
    found = _buttons(blocks)
    by_action = dict(reversed(found))  # the first of each action
    value = next((v for _, v in found), None)
    return value, by_action


def acknowledged_message(blocks: list[dict[str, Any]], text: str, by: str, at: datetime) -> dict[str, Any]:
    """The clicked incident message once acknowledged: who and when, the Acknowledge button gone, Silence (or
    Unsilence) kept."""
    blocks = _listed(blocks)
    value, by_action = _incident_of(blocks)
    line = _status_block(ACK_STATUS_BLOCK, f":eyes: Acknowledged by {slack_who(by)} at {slack_date(at)}")
    buttons = []
    if ACTION_UNSILENCE in by_action:
        found = by_action[ACTION_UNSILENCE]
        buttons.append(unsilence_button(found.key, found.incident, found.silence or ""))
    elif value is not None and value.incident is not None and ACTION_SILENCE in by_action:
        buttons.append(silence_button(value.key, value.incident))
    return _edited(blocks, text, ack=line, silence=_status(blocks, SILENCE_STATUS_BLOCK), buttons=buttons)


def silenced_message(
    blocks: list[dict[str, Any]], text: str, by: str, until: datetime, silence_id: str
) -> dict[str, Any]:
    """The clicked incident message once its database is silenced: who, until when, and an Unsilence button
    whose value carries the silence id (Acknowledge kept unless already acknowledged)."""
    blocks = _listed(blocks)
    value, by_action = _incident_of(blocks)
    line = _status_block(
        SILENCE_STATUS_BLOCK,
        f":no_bell: Silenced by {slack_who(by)} until {slack_date(until)} (silence `{safe(silence_id, 40)}`): "
        "nothing more is said about this database until then",
    )
    buttons = []
    if value is not None:
        if ACTION_ACK in by_action and value.incident is not None:
            buttons.append(ack_button(value.key, value.incident))
        buttons.append(unsilence_button(value.key, value.incident, silence_id))
    return _edited(blocks, text, ack=_status(blocks, ACK_STATUS_BLOCK), silence=line, buttons=buttons)


def unsilenced_message(blocks: list[dict[str, Any]], text: str, by: str, at: datetime) -> dict[str, Any]:
    """The clicked incident message once its silence is ended: who and when, and Silence 24 h again."""
    blocks = _listed(blocks)
    value, by_action = _incident_of(blocks)
    line = _status_block(SILENCE_STATUS_BLOCK, f":bell: Silence ended by {slack_who(by)} at {slack_date(at)}")
    buttons = []
    if value is not None and value.incident is not None:
        if ACTION_ACK in by_action:
            buttons.append(ack_button(value.key, value.incident))
        buttons.append(silence_button(value.key, value.incident))
    return _edited(blocks, text, ack=_status(blocks, ACK_STATUS_BLOCK), silence=line, buttons=buttons)


# -- ephemeral replies (the clicker only) --------------------------------------------------------------------------

NAME_MAX = 200
LINK_TOO_LONG = "The download link is longer than Slack accepts: download the backup from the Scalingo dashboard."


def download_reply(link: str, backup_name: str, expires_hint: str | None) -> dict[str, Any]:
    """The fresh download link, shown to the clicker only (never posted to the channel)."""
    name = safe(backup_name, NAME_MAX, code=True)
    lines = [f":inbox_tray: Download link for {name}, made just now for you only: do not share it."]
    if expires_hint:
        lines.append(safe(expires_hint, NAME_MAX))
    blocks: list[dict[str, Any]] = []
    if link.startswith("https://") or link.startswith("http://"):
        usable = slack_len(link) <= BUTTON_URL_MAX
    else:
        usable = False
    if usable:
        blocks = [section("\n".join(lines), {"type": "button", "text": _plain("Download backup"), "url": link})]
        text = f"Download link for {name}"
    else:
        lines.append(LINK_TOO_LONG if link else "No download link could be made.")
        blocks = [section("\n".join(lines))]
        text = lines[-1]
    return {"response_type": "ephemeral", "replace_original": False, "text": text, "blocks": blocks}


def refusal_reply(text: str) -> dict[str, Any]:
    """An ephemeral refusal or error (`text` is our mrkdwn: names in it must already be made safe)."""
    body = fit_markup(text.strip() or "This action could not be done.", SECTION_TEXT_MAX - 12)
    return {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": body,
        "blocks": [section(body if body.startswith(":") else f":no_entry: {body}")],
    }


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}
