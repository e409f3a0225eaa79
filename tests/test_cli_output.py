"""`keygate --output json|table`: JSON by default, for scripts; text tables for people, which show nothing the JSON
does not, and no value can break or reach the terminal through. The admin function is stubbed (``_call``)."""

import io
import json
import re
import unicodedata
from pathlib import Path

import pytest

from keygate_cli.cli import EXIT_REFUSED, EXIT_UNVERIFIED, EXIT_USAGE, main, parser

LOCAL = ["--endpoint-url", "http://127.0.0.1:9", "--actor", "tester"]
KEY_ID = "Ab3dEf7hIj9kLm2n"
KEY = {
    "key_id": KEY_ID, "name": "billing", "owner": "team-billing", "description": "invoices, nightly",
    "scopes": ["invoices:read", "orders:read"], "apis": None, "status": "active",
    "created_at": "2026-11-01T09:00:00Z", "expires_at": "2027-01-31T00:00:00Z", "revoked_at": None,
    "last_used_at": "2026-12-06T17:42:10Z", "rotated_at": None, "previous_key_expires_at": None,
    "pepper_version": "v1", "usage_plan_id": None, "usage_key_id": None, "version": 3,
}  # fmt: skip
OTHER = KEY | {"key_id": "Zz9yXx8wVv7uTt6s", "name": "reports", "owner": "team-data", "scopes": [], "version": 1}
NOTICE = "api_key is shown this once and cannot be recovered: store it now."
API_KEY = f"kg_{KEY_ID}_{'Q' * 43}x7Yz"  # made up here, never issued: the secrecy sweep knows no such key
HISTORY = {
    "key_id": KEY_ID,
    "events": [
        {"version": 1, "action": "issue", "actor": "arn:aws:iam::123456789012:user/alice", "at": "2026-11-01T09:00:00Z",
         "changes": {"name": {"old": None, "new": "billing"}, "status": {"old": None, "new": "active"}}},
        {"version": 2, "action": "update", "actor": "local:bob", "at": "2026-11-02T10:00:00Z",
         "changes": {"scopes": {"old": ["invoices:read"], "new": ["invoices:read", "orders:read"]}}},
    ],
    "next_token": None,
}  # fmt: skip
EXPLAINED = {
    "key_id": KEY_ID, "route": "GET /orders/7", "api": None, "decision": "refuse", "reason": "MissingScope",
    "why": "refused: the key lacks a scope this route needs", "assumes": "the request presents this key's secret",
    "state": "active", "expires_at": None, "grace": None, "pepper_versions_missing": [],
    "apis": {"key_apis": "every API", "allows_this_api": None},
    "route_scopes": {"key_scopes": ["invoices:read"], "entries": [{"entry": "GET /orders/*",
                     "needs_one_of": ["orders:read"], "satisfied_by": []}], "verdict": "not satisfied: GET /orders/*"},
    "usage_plan": None, "revocation_bound": "the next request: AuthorizerCacheTtl is 0, API Gateway caches nothing",
}  # fmt: skip
# Every verb, as an operator types it, and what its function answers.
VERBS = {
    "issue": (["issue", "--name", "billing", "--owner", "team-billing"], KEY | {"api_key": API_KEY, "notice": NOTICE}),
    "update": (["update", KEY_ID, "--name", "billing"], KEY | {"authorizer_cache": {"flushed": [], "revocation_bound":
                                                                                    "the next request"}}),
    "disable": (["disable", KEY_ID], KEY | {"status": "disabled"}),
    "enable": (["enable", KEY_ID], KEY),
    "rotate": (["rotate", KEY_ID], KEY | {"api_key": API_KEY, "previous_key_stops_working_at": "2026-12-08T09:00:00Z",
                                          "notice": NOTICE}),
    "revoke": (["revoke", KEY_ID], KEY | {"status": "revoked", "revoked_at": "2026-12-07T09:00:00Z"}),
    "get": (["get", KEY_ID], KEY),
    "list": (["list"], {"keys": [KEY, OTHER], "next_token": "eyJvd25lciI6InRlYW0tYmlsbGluZyJ9"}),
    "history": (["history", KEY_ID], HISTORY),
    "pepper-status": (["pepper-status"], {"versions": {"v1": {"active": 2}}, "grace_secrets": {}, "next_token": None}),
    "flush-cache": (["flush-cache"], {"flushed": ["a1b2c3d4e5/prod"], "revocation_bound": "the next request"}),
    "report-leak": (["report-leak"], {"label": "true_positive", "token_hash": "9f86d081884c7d659a2feaa0c55ad015",
                                      "key_id": KEY_ID, "revoked": "now", "notification": "sent"}),
    "explain": (["explain", KEY_ID, "--route", "GET /orders/7"], EXPLAINED),
}  # fmt: skip
REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference.md"
HEADER = ["key_id", "name", "owner", "status", "scopes", "expires_at", "last_used_at"]


@pytest.fixture
def answer(monkeypatch):
    """Stubs the admin function with this answer; what it was sent is kept. KEYGATE_OUTPUT is unset."""
    monkeypatch.delenv("KEYGATE_OUTPUT", raising=False)
    sent = []

    def answering(given: object) -> list:
        monkeypatch.setattr("keygate_cli.cli._call", lambda client, name, event: sent.append(event) or given)
        monkeypatch.setattr("sys.stdin", io.StringIO(f"{API_KEY}\n"))  # what report-leak reads
        return sent

    return answering


def table(capsys, *argv: str, expected: int = 0) -> list[str]:
    assert main([*LOCAL, "--output", "table", *argv]) == expected
    out = capsys.readouterr().out
    nested = ("route_scopes.entries",)  # compact JSON stays on its line, however long
    assert all(width(line) <= 120 for line in out.splitlines() if not line.startswith(nested))
    return out.splitlines()


def width(text: str) -> int:
    """Terminal columns, counted here apart from keygate_cli.tables: two for a wide character, none for a mark."""
    return sum(0 if unicodedata.category(char) == "Mn" else 2 if unicodedata.east_asian_width(char) in "WF" else 1
               for char in text)  # fmt: skip


def field(lines: list[str], name: str) -> str:
    (value,) = [line[len(name) :].strip() for line in lines if line.split("  ")[0] == name]
    return value


def test_json_is_the_default_and_parses_to_the_answer(answer, capsys):
    answer({"keys": [KEY], "next_token": None})
    assert main([*LOCAL, "list"]) == 0
    assert json.loads(capsys.readouterr().out) == {"keys": [KEY], "next_token": None}


def test_a_table_lists_one_row_per_key_under_the_chosen_columns_then_how_to_continue(answer, capsys):
    answer({"keys": [KEY, OTHER], "next_token": "eyJuZXh0IjoxfQ"})
    lines = table(capsys, "list")
    assert lines[0].split() == HEADER and set(lines[1]) == {"-", " "}
    assert lines[2].split() == [KEY_ID, "billing", "team-billing", "active", "invoices:read", "orders:read",
                                "2027-01-31T00:00:00Z", "2026-12-06T17:42:10Z"]  # fmt: skip
    assert lines[3].split()[:5] == ["Zz9yXx8wVv7uTt6s", "reports", "team-data", "active", "[]"]
    assert [line for line in lines if line.startswith(KEY_ID)] == [lines[2]]
    assert "more keys: run the same command with --next-token eyJuZXh0IjoxfQ" in lines


def test_the_last_page_says_nothing_of_a_next_one_and_an_empty_page_says_so(answer, capsys):
    answer({"keys": [KEY], "next_token": None})
    assert not [line for line in table(capsys, "list") if "next" in line]
    answer({"keys": [], "next_token": "eyJuZXh0IjoxfQ"})  # with a status, a page may hold none: follow the token
    lines = table(capsys, "list", "--status", "revoked")
    assert lines[0] == "no keys on this page" and "--next-token eyJuZXh0IjoxfQ" in lines[-1]


def test_long_values_are_cut_to_fit_120_columns_and_the_table_says_so(answer, capsys):
    answer({"keys": [KEY | {"name": "n" * 90, "scopes": [f"scope:{n}" for n in range(20)]}], "next_token": None})
    lines = table(capsys, "list")  # every line within 120 columns
    assert "n" * 10 in lines[2] and "n" * 90 not in lines[2] and "…" in lines[2]
    assert lines[2].split()[-2:] == ["2027-01-31T00:00:00Z", "2026-12-06T17:42:10Z"]  # fixed columns whole
    assert "cut to fit" in lines[-1]


def test_get_is_a_field_value_table_of_the_whole_answer(answer, capsys):
    answer(KEY)
    lines = table(capsys, "get", KEY_ID)
    assert [line.split()[0] for line in lines] == list(KEY)
    assert field(lines, "name") == "billing" and field(lines, "description") == "invoices, nightly"
    assert field(lines, "scopes") == "invoices:read orders:read" and field(lines, "apis") == "-"
    assert field(lines, "version") == "3"


def test_explain_shows_its_sections_as_dotted_fields(answer, capsys):
    answer(EXPLAINED)
    lines = table(capsys, "explain", KEY_ID, "--route", "GET /orders/7")
    assert field(lines, "decision") == "refuse" and field(lines, "why") == EXPLAINED["why"]
    assert field(lines, "route_scopes.verdict") == "not satisfied: GET /orders/*"
    assert field(lines, "apis.key_apis") == "every API" and field(lines, "grace") == "-"
    entries = json.loads(field(lines, "route_scopes.entries"))  # nested deeper: compact JSON, on one line
    assert entries == EXPLAINED["route_scopes"]["entries"]


def test_history_shows_one_row_per_event_with_the_changed_field_names(answer, capsys):
    answer(HISTORY | {"next_token": "eyJ2IjoyfQ"})
    lines = table(capsys, "history", KEY_ID)
    assert lines[0].split() == ["key_id", KEY_ID]
    (header,) = [at for at, line in enumerate(lines) if line.split() == ["version", "action", "at", "actor", "changed"]]
    assert lines[header + 2].split() == ["1", "issue", "2026-11-01T09:00:00Z", "arn:aws:iam::123456789012:user/alice",
                                         "name", "status"]  # fmt: skip
    assert lines[header + 3].split() == ["2", "update", "2026-11-02T10:00:00Z", "local:bob", "scopes"]
    assert "more events: run the same command with --next-token eyJ2IjoyfQ" in lines


def test_history_verify_names_each_finding_and_still_exits_4(answer, capsys):
    finding = {"problem": "changed", "why": "written again with other values", "version": 2, "fields": ["actor"]}
    verification = {"verified": False, "records": 2, "findings": [finding]}
    answer(HISTORY | {"verification": verification})
    lines = table(capsys, "history", KEY_ID, "--verify", expected=EXIT_UNVERIFIED)
    assert "verification: NOT verified, 2 records" in lines
    assert lines[lines.index("version  problem  fields  count") + 2].split() == ["2", "changed", "actor", "1"]


@pytest.mark.parametrize("verb", ["issue", "rotate"])
def test_issue_and_rotate_show_the_api_key_once_with_the_notice(verb, answer, capsys):
    argv, answered = VERBS[verb]
    answer(answered)
    out = "\n".join(table(capsys, *argv))
    assert out.count(API_KEY) == 1 and out.count(API_KEY.rsplit("_", 1)[1]) == 1
    assert NOTICE in out


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_prints_a_table_holding_nothing_the_json_does_not(verb, answer, capsys):
    argv, answered = VERBS[verb]
    sent = answer(answered)
    assert main([*LOCAL, *argv]) == 0
    shown_as_json = capsys.readouterr().out
    answer(answered)
    lines = table(capsys, *argv)
    assert lines and not lines[0].startswith(("{", "[")) and len(lines) > 1
    runs = {run for line in lines for run in re.findall(r"[0-9A-Za-z]{8,}", line)}
    assert {run for run in runs if run not in shown_as_json} <= {"verification"}, runs  # words of the table's own
    if verb == "report-leak":  # the key it read, sent to the function, is in neither
        assert sent[-1]["key"] == API_KEY and API_KEY not in shown_as_json and API_KEY not in "\n".join(lines)


def test_keygate_output_sets_the_default_and_the_option_wins(answer, monkeypatch, capsys):
    answer(KEY)
    monkeypatch.setenv("KEYGATE_OUTPUT", "table")
    assert main([*LOCAL, "get", KEY_ID]) == 0
    assert capsys.readouterr().out.startswith(f"key_id                   {KEY_ID}\n")
    assert main(["--output", "json", *LOCAL, "get", KEY_ID]) == 0
    assert json.loads(capsys.readouterr().out) == KEY


@pytest.mark.parametrize(
    ("environment", "argv", "named"),
    [(None, ["--output", "yaml"], "argument --output: invalid choice: 'yaml'"),
     ("TABLE", [], "KEYGATE_OUTPUT: invalid choice: 'TABLE'"),
     ("table", ["--output", "text"], "argument --output: invalid choice: 'text'")],
)  # fmt: skip
def test_an_output_that_is_neither_json_nor_table_is_a_usage_error(
    environment, argv, named, answer, monkeypatch, capsys
):
    sent = answer(KEY)
    if environment is not None:
        monkeypatch.setenv("KEYGATE_OUTPUT", environment)
    with pytest.raises(SystemExit) as exited:
        main([*argv, *LOCAL, "get", KEY_ID])
    assert exited.value.code == EXIT_USAGE and named in capsys.readouterr().err and sent == []


# Characters that could end a row, move the cursor, recolour or clear the screen, reorder what follows, or not
# encode at all; as a name, an owner, a scope or a field of a refusal.
HOSTILE = [
    ("\x1b[2J\x1b[31mred", r"\x1b[2J\x1b[31mred"), ("two\nlines", r"two\nlines"), ("back\rover", r"back\rover"),
    ("tab\there", r"tab\there"), ("csi\x9b31m", r"csi\x9b31m"), ("nul\x00", r"nul\x00"), ("del\x7f", r"del\x7f"),
    ("abc\u202edcba", r"abc\u202edcba"), ("line\u2028sep", r"line\u2028sep"), ("lone\ud800", r"lone\ud800"),
    ("bell\x07", r"bell\x07"), ("osc\x1b]0;title\x07", r"osc\x1b]0;title\x07"),
]  # fmt: skip


def harmless(text: str) -> bool:
    """Nothing but printable characters and the table's own line breaks; encodable as UTF-8."""
    text.encode("utf-8")  # a lone surrogate would raise here, as print() would on a real terminal
    return all(char == "\n" or unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Zl", "Zp") for char in text)


@pytest.mark.parametrize(("value", "shown"), HOSTILE)
def test_a_control_character_in_a_value_is_shown_escaped_and_breaks_no_row(value, shown, answer, capsys):
    answer({"keys": [KEY | {"name": value}, OTHER | {"owner": value, "scopes": ["a", value]}], "next_token": None})
    assert main([*LOCAL, "--output", "table", "list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()  # header, rule, two rows, and a note if a value was cut to fit
    assert harmless(out) and lines[2].startswith(KEY_ID) and lines[3].startswith(OTHER["key_id"])
    assert len(lines) == 4 or lines[4:] == ["(… cut to fit: --output json shows every value whole)"]
    answer(KEY | {"description": value})
    lines = table(capsys, "get", KEY_ID)
    assert harmless("\n".join(lines)) and field(lines, "description") == shown and len(lines) == len(KEY)


@pytest.mark.parametrize(("value", "shown"), HOSTILE)
def test_a_control_character_in_a_refusal_is_shown_escaped(value, shown, answer, capsys):
    answer({"error": {"type": "InvalidRequest", "message": f"invalid: {value}", "fields": {value: "unknown field"}}})
    assert main([*LOCAL, "--output", "table", "get", KEY_ID]) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert harmless(err) and err.splitlines() == [
        f"error InvalidRequest: invalid: {shown}",
        f"  {shown}  unknown field",
    ]


def test_wide_characters_keep_the_columns_aligned(answer, capsys):
    answer({"keys": [KEY | {"name": "請求書サービス"}, OTHER | {"name": "e\u0301te\u0301"}], "next_token": None})
    lines = table(capsys, "list")

    def column_of(line: str, text: str) -> int:  # where text starts, in terminal columns
        return width(line[: line.index(text)])

    assert column_of(lines[2], "team-billing") == column_of(lines[0], "owner") == column_of(lines[3], "team-data")


@pytest.mark.parametrize("output", ["json", "table"])
def test_a_refusal_goes_to_stderr_with_exit_1(output, answer, capsys):
    refused = {"error": {"type": "InvalidRequest", "message": "invalid request: expires_at: not a date",
                         "fields": {"expires_at": "not a date"}}}  # fmt: skip
    answer(refused)
    assert main([*LOCAL, "--output", output, "update", KEY_ID, "--expires-at", "soon"]) == EXIT_REFUSED
    captured = capsys.readouterr()
    assert captured.out == ""
    if output == "json":
        assert json.loads(captured.err) == refused
    else:
        lines = captured.err.splitlines()
        assert lines == ["error InvalidRequest: invalid request: expires_at: not a date", "  expires_at  not a date"]


def test_the_reference_names_every_option_before_the_verb_and_its_variable():
    cli = parser()
    options = {option for action in cli._actions for option in action.option_strings} - {"-h", "--help"}
    variables = set(re.findall(r"env\s+(KEYGATE_\w+)", cli.format_help()))
    assert "--output" in options and "KEYGATE_OUTPUT" in variables
    section = REFERENCE.read_text().split("\n## The CLI\n")[1].split("\n## ")[0]
    assert {name for name in options | variables if f"`{name}`" not in section} == set()
