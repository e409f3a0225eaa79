"""The hostile corpus (keys.json, events.json, admin.json): cases as data, turned into header values and
events here, so the same cases replay against the handler in every shape and over HTTP."""

import base64
import copy
import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from keygate import keys
from tests.conftest import event, wrong_secret

HERE = Path(__file__).resolve().parent
SHAPES = ("rest-token", "rest-request", "http-api", "websocket", "appsync")
TOKEN_SHAPES = ("rest-token", "appsync")  # one Authorization value, no x-api-key (API Gateway, AppSync)
KEY_TOKENS = ("$KEY", "$WRONG_SECRET", "$UNKNOWN_ID", "$REVOKED", "$DISABLED", "$OTHER_KEY")
CYRILLIC = str.maketrans("aceopxyABCEHKMOPTX", "асеорхуАВСЕНКМОРТХ")
DIGITS = str.maketrans("01", "０𝟏")


def presented_tokens(admin: Callable[[str, dict], dict]) -> dict[str, str]:
    """The keys KEY_TOKENS name, made through ``admin(function, event)``: two live keys, a revoked and a
    disabled one, and two well-formed strangers (another secret for the key id, an unknown id)."""
    issue = {"name": "hostile", "owner": "hostile"}
    key, other, revoked, disabled = (admin("IssueKeyFunction", issue) for _ in range(4))
    assert "error" not in admin("RevokeKeyFunction", {"key_id": revoked["key_id"]})
    assert "error" not in admin("UpdateKeyFunction", {"key_id": disabled["key_id"], "enabled": False})
    return {
        "$KEY": key["api_key"], "$OTHER_KEY": other["api_key"], "$WRONG_SECRET": wrong_secret(key["api_key"]),
        "$UNKNOWN_ID": keys.generate("kg").api_key, "$REVOKED": revoked["api_key"], "$DISABLED": disabled["api_key"],
    }  # fmt: skip


@dataclass(frozen=True)
class KeyCase:
    id: str
    expect: str  # allow | refuse | forbid
    reason: str
    headers: dict[str, list[str]] = field(default_factory=dict)  # lower-case name -> every value sent
    big: bool = False

    def __repr__(self) -> str:  # the values hold keys
        return f"KeyCase({self.id!r})"


def load(name: str) -> dict:
    return json.loads((HERE / name).read_text())


def key_cases(shape: str, presented: dict[str, str]) -> list[KeyCase]:
    """keys.json's cases as ``shape`` receives them, the key tokens replaced by ``presented``'s keys."""
    cases = []
    for raw in load("keys.json")["cases"]:
        override = raw.get("shapes", {}).get(shape, {})
        if override == "skip":
            continue
        headers = {
            name: [_value(parts, presented) for parts in raw[name]]
            for name in ("authorization", "x-api-key")
            if name in raw
        }
        if shape in TOKEN_SHAPES and (headers.get("x-api-key") or len(headers.get("authorization", [])) > 1):
            raise AssertionError(f"{raw['id']}: a {shape} event cannot carry these headers; skip the shape")
        expect, reason = override.get("expect", raw["expect"]), override.get("reason", raw["reason"])
        cases.append(KeyCase(raw["id"], expect, reason, headers, raw.get("big", False)))
    return cases


def case_ids(over_http: bool = False) -> list[str]:
    """keys.json's case ids; ``over_http``: only those an HTTP client can send (no CR or LF in a value)."""
    return [raw["id"] for raw in load("keys.json")["cases"] if raw.get("http", True) or not over_http]


def _value(parts: list, presented: dict[str, str]) -> str:
    return "".join(_part(part, presented) for part in parts)


def _part(part, presented: dict[str, str]) -> str:
    if isinstance(part, str):
        return presented[part] if part in KEY_TOKENS else part
    if "repeat" in part:
        return part["repeat"] * part["times"]
    if "checksummed" in part:
        body = _value(part["checksummed"], presented)
        return body + keys.checksum(body)
    return _transformed(presented[part["key"]], part)


def _transformed(key: str, part: dict) -> str:
    prefix, key_id, rest = key.split("_")
    transform = part["transform"]
    if transform == "insert":
        return key[: part["at"]] + part["text"] + key[part["at"] :]
    if transform == "drop-last":
        return key[: -part["count"]]
    if transform == "flip":
        at = part["at"]
        return key[:at] + ("A" if key[at] != "A" else "B") + key[at + 1 :]
    if transform == "swap":
        at = part["at"] if key[part["at"]] != key[part["at"] + 1] else part["at"] + 1
        return key[:at] + key[at + 1] + key[at] + key[at + 2 :]
    if transform == "bad-checksum":
        return key[:-1] + ("A" if key[-1] != "A" else "B")
    if transform == "prefix":
        body = f"{part['prefix']}_{key_id}_{rest[: keys.SECRET_LENGTH]}"
        return body + keys.checksum(body)
    return {
        "upper": key.upper,
        "lower": key.lower,
        "fullwidth": lambda: "".join(chr(ord(c) + 0xFEE0) for c in key),
        "cyrillic": lambda: key.translate(CYRILLIC),
        "digits": lambda: key.translate(DIGITS) if key.translate(DIGITS) != key else key + "０",
        "percent": lambda: "".join(f"%{byte:02X}" for byte in key.encode()),
        "percent-underscores": lambda: urllib.parse.quote(key, safe="").replace("_", "%5F"),
        "base64": lambda: base64.b64encode(key.encode()).decode(),
        "base64url": lambda: base64.urlsafe_b64encode(key.encode()).decode().rstrip("="),
        "key-id": lambda: key_id,
        "secret": lambda: rest[: keys.SECRET_LENGTH],
    }[transform]()


def shaped_event(shape: str, headers: dict[str, list[str]]) -> dict:
    """An authorizer event of ``shape`` for a request that sent ``headers`` (name -> every value), as API
    Gateway or AppSync would hand it over."""
    if shape in TOKEN_SHAPES:
        request = event("authorizer-rest-token.json" if shape == "rest-token" else "authorizer-appsync.json")
        (token,) = headers.get("authorization") or [""]
        request["authorizationToken"] = token
        return request
    if shape == "http-api":  # names lower-cased; a repeated header's values joined with commas
        request = event("authorizer-http-api.json")
        joined = {name: ",".join(values) for name, values in headers.items()}
        request["headers"] = {"host": "qwerty5678.execute-api.us-east-1.amazonaws.com"} | joined
        request["identitySource"] = list(joined.values())
        return request
    request = event("authorizer-rest-request.json" if shape == "rest-request" else "authorizer-websocket-connect.json")
    names = {"authorization": "Authorization", "x-api-key": "x-api-key"}
    base = {name: value for name, value in request["headers"].items() if name.lower() not in names}
    request["headers"] = base | {names[name]: values[-1] for name, values in headers.items()}
    request["multiValueHeaders"] = {name: [value] for name, value in base.items()} | {
        names[name]: list(values) for name, values in headers.items()
    }
    return request


LONG_PATH = "segment/" * 12800  # 100 KB


def event_case_ids() -> list[str]:
    return [raw["id"] for raw in load("events.json")["cases"]]


def hostile_event(case_id: str, api_key: str) -> tuple[dict, str]:
    """(event, expect) for events.json's case: its shape's event file, presenting ``api_key``, with fields
    set, removed or retyped."""
    (raw,) = [raw for raw in load("events.json")["cases"] if raw["id"] == case_id]
    request = event(raw["file"], api_key=api_key) if "file" in raw else copy.deepcopy(raw["event"])
    for path, value in raw.get("set", {}).items():
        _at(request, path, value)
    for path in raw.get("delete", []):
        _at(request, path, None, delete=True)
    text = json.dumps(request).replace("PASTE_API_KEY_HERE", api_key).replace("LONG_PATH", LONG_PATH)
    return json.loads(text), raw["expect"]


def _at(document: dict, path: str, value, delete: bool = False) -> None:
    *parents, last = path.split(".")
    for name in parents:
        document = document[name]
    if delete:
        document.pop(last, None)
    else:
        document[last] = value


HUGE = "x" * (1024 * 1024)


def admin_case_ids() -> list[str]:
    return [raw["id"] for raw in load("admin.json")["cases"]]


def admin_case(case_id: str, key_id: str) -> dict:
    """admin.json's case, its event with ``$KEY_ID`` (a live key's id) and ``$HUGE`` (1 MB) put in."""
    (raw,) = [raw for raw in load("admin.json")["cases"] if raw["id"] == case_id]
    if raw["event"] == "$MANY_FIELDS":
        return raw | {"event": {"name": "n", "owner": "o"} | {f"f{n}": n for n in range(1000)}}
    text = json.dumps(raw["event"]).replace("$KEY_ID", key_id).replace("$HUGE", HUGE)
    return raw | {"event": json.loads(text)}


def leak_case_ids() -> list[str]:
    return [raw["id"] for raw in load("leak_report.json")["cases"]]


def leak_case(case_id: str) -> dict:
    (raw,) = [raw for raw in load("leak_report.json")["cases"] if raw["id"] == case_id]
    return raw


def hostile_leak_event(raw: dict, base: dict, signature: str) -> object:
    """The signed alert's event ``base`` changed as leak_report.json's case says."""
    if "event" in raw:
        return raw["event"]
    request = copy.deepcopy(base)
    if raw.get("upper_headers"):
        request["headers"] = {name.upper(): value for name, value in request["headers"].items()}
    request["body"] += raw.get("append_body", "")
    for path in raw.get("delete", []):
        _at(request, path, None, delete=True)
    text = json.dumps(raw.get("set", {})).replace("$HUGE", HUGE).replace("$SIGNATURE", signature)
    for path, value in json.loads(text).items():
        *parents, last = path.split(".", 1) if path.startswith("headers.") else [path]
        (request[parents[0]] if parents else request)[last] = value
    return request
