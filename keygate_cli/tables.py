"""The admin functions' answers as text tables, for ``keygate --output table``: people read these, scripts read
the JSON. Drawn from the answer alone, so a table shows nothing the JSON would not (and, for list and history,
less: a column per field that matters, the rest in ``get`` or the JSON).

A value cannot break a table or reach the terminal as a command: control, format and separator characters
(an escape sequence, a newline, a bidirectional override) are shown as escapes (``\\x1b``, ``\\u202e``), wide
characters count as two columns, and ``-`` stands for null.
"""

import json
import textwrap
import unicodedata
from collections.abc import Iterable, Sequence

WIDTH = 120  # a row of list or history fits in this many columns; a field's value wraps at it
GAP = "  "
UNSAFE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}  # controls, format, surrogates, private, unassigned, separators
# A key's version (for update --expected-version) is left to get: with it, name, owner and scopes would share 37
# columns of the 120, too few for a typical key's.
LIST_COLUMNS = ("key_id", "name", "owner", "status", "scopes", "expires_at", "last_used_at")
# History is a timeline, read down like `git log --oneline`: one row per event says who changed what, and when.
# Old and new values would make rows too wide for a list of changed fields; `--output json` holds them.
HISTORY_COLUMNS = ("version", "action", "at", "actor", "changed")
FINDING_COLUMNS = ("version", "problem", "fields", "count")
FLEXIBLE = {"name", "owner", "scopes", "actor", "changed", "details", "fields"}  # narrowed, with "…", to fit


def render(command: str, answer: object) -> str:
    """The answer to ``command`` as a table: rows for list and history, a field/value table for any other."""
    if not isinstance(answer, dict):
        return cell(answer)
    if command == "list" and isinstance(answer.get("keys"), list):
        return "\n".join(_listing(answer))
    if command == "history" and isinstance(answer.get("events"), list):
        return "\n".join(_history(answer))
    return "\n".join(fields(_flat(answer) if command == "explain" else answer))  # explain: sections of fields


def refusal(answer: dict) -> str:
    """A refusal (``{"error": {...}}``): ``error TYPE: message``, then each field named and its problem."""
    error = answer.get("error")
    if not isinstance(error, dict):
        return "\n".join(fields(answer))
    lines = [f"error {cell(error.get('type'))}: {cell(error.get('message'))}"]
    if isinstance(named := error.get("fields"), dict):
        lines += [GAP + line for line in fields(named)]
    return "\n".join(lines)


def _listing(answer: dict) -> list[str]:
    keys = [key for key in answer["keys"] if isinstance(key, dict)]
    lines = rows(LIST_COLUMNS, keys) if keys else ["no keys on this page"]
    return lines + _more(answer, "keys")


def _history(answer: dict) -> list[str]:
    events = [event for event in answer["events"] if isinstance(event, dict)]
    columns = HISTORY_COLUMNS + (("details",) if any(event.get("details") for event in events) else ())
    shown = [event | {"changed": list(event.get("changes") or {})} for event in events]  # the field names
    lines = [f"key_id  {cell(answer.get('key_id'))}", ""]
    lines += rows(columns, shown) if shown else ["no events on this page"]
    lines += _more(answer, "events")
    verification = answer.get("verification")
    if isinstance(verification, dict):
        lines += ["", *_verification(verification)]
    return lines


def _verification(verification: dict) -> list[str]:
    verified = verification.get("verified")
    summary = "verified" if verified is True else "NOT verified" if verified is False else cell(verified)
    lines = [f"verification: {summary}, {cell(verification.get('records'))} records"]
    if before := verification.get("written_before_the_copy_began"):
        lines.append(f"written before the copy began (not checked): {cell(before)}")
    findings = [finding for finding in verification.get("findings") or () if isinstance(finding, dict)]
    if findings:
        lines += rows(FINDING_COLUMNS, [{"count": 1} | finding for finding in findings])  # no count: once
        lines.append("what each problem means: --output json (its why), or docs/reference.md")
    return lines


def _more(answer: dict, what: str) -> list[str]:
    token = answer.get("next_token")
    if token is None:
        return []
    token = cell(token)
    return ["", f"next_token  {token}", f"more {what}: run the same command with --next-token {token}"]


def rows(columns: Sequence[str], items: Iterable[dict]) -> list[str]:
    """One row per item under a header; the flexible columns narrowed until a row fits WIDTH."""
    cells = [[cell(item.get(column)) for column in columns] for item in items]
    natural = [max(width(text) for text in [column, *(row[at] for row in cells)]) for at, column in enumerate(columns)]
    widths = _fitted(columns, natural)
    lines = [list(columns), ["-" * size for size in widths], *cells]
    table = [GAP.join(_pad(_cut(text, size), size) for text, size in zip(line, widths, strict=True)).rstrip()
             for line in lines]  # fmt: skip
    return table + (["(… cut to fit: --output json shows every value whole)"] if widths != natural else [])


def _fitted(columns: Sequence[str], widths: list[int]) -> list[int]:
    """The widths, the flexible columns sharing what the others leave, the narrowest served first."""
    flexible = sorted((size, at) for at, (column, size) in enumerate(zip(columns, widths, strict=True))
                      if column in FLEXIBLE)  # fmt: skip
    spare = WIDTH - len(GAP) * (len(columns) - 1) - sum(widths) + sum(size for size, _ in flexible)
    fitted = list(widths)
    for served, (size, at) in enumerate(flexible):
        fitted[at] = max(min(size, spare // (len(flexible) - served)), len(columns[at]))
        spare -= fitted[at]
    return fitted


def fields(answer: dict) -> list[str]:
    """A field/value table: a field per line, its value wrapped at WIDTH under itself (never cut)."""
    names = {name: cell(name) for name in answer}
    first = max((width(name) for name in names.values()), default=0)
    lines = []
    for name, value in answer.items():
        text, room = cell(value), max(WIDTH - first - len(GAP), 20)
        # Text and words wrap at spaces; nested JSON stays on its line, where a wrap would split a string.
        prose = isinstance(value, str) or _words(value)
        wrapped = textwrap.wrap(text, room, break_long_words=False, break_on_hyphens=False) if prose else [text]
        lines += [GAP.join((_pad(names[name] if not at else "", first), part)).rstrip()
                  for at, part in enumerate(wrapped or [""])]  # fmt: skip
    return lines


def _flat(answer: dict, prefix: str = "") -> dict:
    """Nested sections as dotted fields (``route_scopes.verdict``): explain's answer is mostly sections."""
    flat = {}
    for name, value in answer.items():
        if isinstance(value, dict) and value:
            flat |= _flat(value, f"{prefix}{name}.")
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def cell(value: object) -> str:
    """A value on one line: null as ``-``, a list of words joined by spaces, anything else nested as compact
    JSON, and every character that could break the line or reach the terminal as a command escaped."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return visible(value)
    if _words(value):
        return visible(" ".join(map(str, value)))
    return visible(json.dumps(value, ensure_ascii=False, separators=(",", ":")))  # true/false/null as in JSON


def _words(value: object) -> bool:
    """A list of strings or numbers with no space in any: joined by spaces, it reads back the same."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(type(item) in (str, int) and str(item).split() == [str(item)] for item in value)
    )


def visible(text: str) -> str:
    """Control, format and separator characters as escapes: ``\\x1b``, ``\\n``, ``\\u202e``."""
    return "".join(
        char.encode("unicode_escape").decode("ascii") if unicodedata.category(char) in UNSAFE else char for char in text
    )


def width(text: str) -> int:
    """The columns a terminal gives the text: two for a wide character, none for a combining mark."""
    return sum(_columns(char) for char in text)


def _columns(char: str) -> int:
    if unicodedata.category(char) in ("Mn", "Me"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _cut(text: str, size: int) -> str:
    if width(text) <= size:
        return text
    kept, used = [], 0
    for char in text:
        if used + _columns(char) > size - 1:
            break
        kept.append(char)
        used += _columns(char)
    return "".join(kept) + "…"


def _pad(text: str, size: int) -> str:
    return text + " " * (size - width(text))
