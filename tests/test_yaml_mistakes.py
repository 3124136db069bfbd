"""An admin's first mistake: the menus broken the ways people break them, and the exact
message each one gets, in ``ivr menus check``'s output and in ``GET /admin/menus``'s
report (pre-commit's ``clientlib_test`` style: one line per case, the message in full).

The corpus (``tests/yaml_mistakes/``) is the demo menus (``menus/main.yaml`` and
``menus/support.yaml``) as they were when it was made, kept apart so that editing the demo
does not move the line numbers below. Each case is one edit of one file: the text it
replaces (which must occur once) and the text it puts in. Every YAML mistake is reported at
the line the admin must change; the menu that refers to a broken one says once that it was
not checked against it. The last section gives the same explanations for the other files
read by ``ivr.core.yamlfile``: callbacks.yaml and the CRM's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from callbacks.policy import PolicyError, load_policies
from crm_sync.mapping import MappingError, load_mapping
from ivr import cli
from ivr.cli import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USER,
    UserError,
    _check_menus_servable,
    _menus_check,
)
from ivr.core.settings import Settings
from ivr.core.yamlfile import YamlError, load_yaml
from ivr.menu import loader
from tests.conftest import ADMIN

CORPUS = Path(__file__).resolve().parent / "yaml_mistakes"
AUTH = {"Authorization": f"Bearer {ADMIN}"}

QUEUE = "    type: queue\n    queue: billing\n"  # the billing node's first lines (120-122)
BILLING_EN = 'en-US: "Transferring you to billing."'  # line 126

# (id, file, replaced, by, the file's own problems; "{main}"/"{support}": the two files)
CASES: list[tuple[str, str, str, str, list[str]]] = [
    ("indented-more", "main.yaml", QUEUE, "    type: queue\n      queue: billing\n", [
        "{main}:122:7: error: invalid YAML: line 122 is indented more than the line above it: "
        "`queue` belongs under `billing` (line 120), indented 4 spaces like `type` on line 121"]),
    ("a-key-one-space-less", "main.yaml", QUEUE, "    type: queue\n   queue: billing\n", [
        "{main}:122:4: error: invalid YAML: line 122 is indented 3 spaces, which matches no "
        "line above it: indent `queue` 4 spaces like `type` on line 121"]),
    ("first-key-of-a-node-indented-more", "main.yaml", "    type: identify\n",
     "      type: identify\n", [
         "{main}:44:7: error: invalid YAML: line 44 is indented 6 spaces, so `type` does not "
         "line up with `prompt` on line 45: indent it 4 spaces"]),
    ("a-node-moved-to-column-0", "main.yaml", "  billing:\n", "billing:\n", [
        "{main}:120:1: error: invalid YAML: line 120 is indented less than the lines around "
        "it: `billing` belongs under `nodes` (line 26), indented 2 spaces like `main_menu` on "
        "line 90"]),
    ("a-node-one-space-less", "main.yaml", "  billing:\n", " billing:\n", [
        "{main}:120:2: error: invalid YAML: line 120 is indented 1 space, which matches no "
        "line above it: indent `billing` 2 spaces like `main_menu` on line 90"]),
    ("the-last-node-moved-to-column-0", "main.yaml", "  holiday_message:\n",
     "holiday_message:\n", [
         "{main}:214:1: error: holiday_message: unknown key 'holiday_message'; expected one "
         "of: caller_time, default_language, description, fallback, languages, name, nodes, "
         "schedules, start, timezone, voices; it looks like a node: indent it under nodes: "
         "like the other nodes"]),
    ("a-tab", "main.yaml", QUEUE, "    type: queue\n\tqueue: billing\n", [
        "{main}:122:1: error: invalid YAML: a tab character: indent with spaces"]),
    ("an-unclosed-list", "main.yaml", "    input: [dtmf, speech]\n    timeout: 6\n",
     "    input: [dtmf, speech\n    timeout: 6\n", [
         "{main}:92:12: error: invalid YAML: `[` opened on line 92 is never closed: end the "
         "list with `]`"]),
    ("an-unclosed-mapping", "main.yaml", 'en-US: ["hebrew"]}', 'en-US: ["hebrew"]', [
        "{main}:75:17: error: invalid YAML: `{{` opened on line 75 is never closed: end it "
        "with `}}`"]),
    ("an-unclosed-quote", "main.yaml", 'followed by the pound key."\n    invalid_prompt',
     "followed by the pound key.\n    invalid_prompt", [
         '{main}:48:16: error: invalid YAML: `"` opened on line 48 is not closed on that '
         'line: end the text with `"`']),
    ("an-unclosed-quote-at-the-end", "support.yaml", 'Please try again later."\n',
     "Please try again later.\n", [
         '{support}:73:16: error: invalid YAML: `"` opened on line 73 is never closed: end '
         'the text with `"`']),
    ("a-quote-inside-quotes", "main.yaml", BILLING_EN,
     'en-US: "Transferring you to "billing"."', [
         '{main}:126:16: error: invalid YAML: the quoted text of `en-US` ends at the `"` in '
         'column 37, but the line goes on: put the whole text in quotes, writing a `"` inside '
         'it as `\\"`']),
    ("a-missing-colon", "main.yaml", "    queue: billing\n    prompt:\n",
     "    queue: billing\n    prompt\n", [
         "{main}:123:11: error: invalid YAML: `:` missing after `prompt`"]),
    ("a-missing-colon-before-a-value", "main.yaml", "    queue: billing\n",
     "    queue billing\n", [
         "{main}:122:10: error: invalid YAML: `:` missing after `queue`"]),
    ("a-missing-colon-after-an-option", "support.yaml", '      "1":\n', '      "1"\n', [
        '{support}:22:10: error: invalid YAML: `:` missing after `"1"`']),
    ("an-unquoted-colon-in-a-prompt", "main.yaml", BILLING_EN,
     "en-US: Transferring you to billing: please hold.", [
         '{main}:126:16: error: invalid YAML: `: ` inside the text of `en-US`: put the whole '
         'text in quotes ("...")']),
    ("an-unquoted-hash-in-a-prompt", "main.yaml", BILLING_EN,
     "en-US: Transferring you to billing, press # to skip.", [
         "{main}:126:16: error: nodes.billing.prompt.say.en-US: the text ends before `# to "
         "skip.`: YAML reads ` #` and what follows as a comment; put the whole text in quotes "
         '("...")']),
    ("a-prompt-starting-with-a-brace", "main.yaml", BILLING_EN,
     "en-US: {tier} customers, transferring you to billing.", [
         "{main}:126:16: error: invalid YAML: the text of `en-US` starts with `{{`, which YAML "
         "reads as a mapping: put the text in quotes"]),
    ("an-unquoted-star-key", "support.yaml", '      "*":\n', "      *:\n", [
        '{support}:31:7: error: invalid YAML: a text or key that starts with `*` must be in '
        'quotes ("*..."): YAML reads `*` there as an alias']),
    ("a-duplicated-option-key", "main.yaml", '      "3":\n        next: retention\n',
     '      "2":\n        next: retention\n', [
         "{main}:105:7: error: duplicate key '2': each key may appear only once in a mapping "
         "(first defined on line 102)"]),
    ("a-misspelt-key", "main.yaml", "    queue: billing\n    prompt:\n",
     "    queue: billing\n    promt:\n", [
         "{main}:123:5: error: nodes.billing.promt: unknown key 'promt'; expected one of: "
         "description, on_failure, priority, prompt, queue, type"]),
    ("a-goto-to-a-node-that-does-not-exist", "main.yaml", "        next: billing\n",
     "        next: biling\n", [
         "{main}:100:15: error: nodes.main_menu.options.1.next: unknown node 'biling'; did "
         "you mean 'billing'?"]),
    ("support-broken-main-fine", "support.yaml", "  tv:\n    type: queue\n",
     "  tv:\n    type: queue\n     queue: support-tv\n", [
         "{support}:55:6: error: invalid YAML: line 55 is indented more than the line above "
         "it: `queue` belongs under `tv` (line 53), indented 4 spaces like `type` on line 54"]),
]
# What the other file says when one of them is refused (the demo menus refer to each other).
NOT_CHECKED = {
    "main.yaml": "{support}:65:11: error: nodes.back_to_main.menu: not checked against "
                 "main.yaml, which has errors (see above)",
    "support.yaml": "{main}:178:11: error: nodes.support.menu: not checked against "
                    "support.yaml, which has errors (see below)",
}
IDS = [c[0] for c in CASES]
COLUMN_0 = next(c[4][0] for c in CASES if c[0] == "a-node-moved-to-column-0")


def broken(folder: Path, file: str, replaced: str, by: str) -> Path:
    """The corpus in ``folder``, with one edit."""
    for f in CORPUS.glob("*.yaml"):
        shutil.copy(f, folder / f.name)
    path = folder / file
    text = path.read_text(encoding="utf-8")
    assert text.count(replaced) == 1, replaced
    path.write_text(text.replace(replaced, by), encoding="utf-8")
    return path


def lines(folder: Path, expected: list[str]) -> list[str]:
    return [e.format(main=folder / "main.yaml", support=folder / "support.yaml")
            for e in expected]


def menus_check(folder: Path, target: Path | None = None) -> tuple[int, str]:
    """``ivr menus check`` (the function behind it), its exit status and output: the menus
    alone (no surveys.yaml beside them; the demo's at the repo root names other queues)."""
    settings = Settings(_env_file=None, menus_dir=folder, surveys_file=folder / "surveys.yaml")
    out = StringIO()
    with redirect_stdout(out):
        code = _menus_check(settings, target)
    return code, out.getvalue()


# ----------------------------------------------------------------------- the corpus


def test_the_corpus_itself_has_no_problems(tmp_path: Path) -> None:
    assert menus_check(CORPUS) == (EXIT_OK, "2 file(s) checked: 0 error(s), 0 warning(s)\n")


@pytest.mark.parametrize(("case", "file", "replaced", "by", "expected"), CASES, ids=IDS)
def test_ivr_menus_check(tmp_path: Path, case: str, file: str, replaced: str, by: str,
                         expected: list[str]) -> None:
    """Each problem once, file by file; the other menu's line says what it follows from."""
    broken(tmp_path, file, replaced, by)
    code, out = menus_check(tmp_path)
    want = sorted([*lines(tmp_path, expected), *lines(tmp_path, [NOT_CHECKED[file]])])
    assert out.splitlines() == [*want, "2 file(s) checked: 2 error(s), 0 warning(s)"]
    assert code == EXIT_USER


def test_checking_one_file_that_depends_on_a_broken_one(tmp_path: Path) -> None:
    """support.yaml alone, with main.yaml broken: main.yaml's errors are printed too, since
    support.yaml's line points at them (and says "see above")."""
    broken(tmp_path, "main.yaml", QUEUE, "    type: queue\n\tqueue: billing\n")
    code, out = menus_check(tmp_path, tmp_path / "support.yaml")
    assert out.splitlines() == [
        *lines(tmp_path, ["{main}:122:1: error: invalid YAML: a tab character: indent with "
                          "spaces", NOT_CHECKED["main.yaml"]]),
        "1 file(s) checked: 2 error(s), 0 warning(s)"]
    assert code == EXIT_USER


def test_several_problems_print_once_each_file_by_file(tmp_path: Path) -> None:
    main = broken(tmp_path, "main.yaml", "        next: billing\n", "        next: biling\n")
    main.write_text(main.read_text(encoding="utf-8").replace(
        "        next: retention\n", "        next: retension\n"), encoding="utf-8")
    support = tmp_path / "support.yaml"
    promo = tmp_path / "promo.yaml"  # a third menu, on its own, with a warning
    promo.write_text("languages: [en-US]\ndefault_language: en-US\nstart: bye\nfallback: bye\n"
                     "nodes:\n  bye: {type: hangup}\n  orphan: {type: hangup}\n",
                     encoding="utf-8")
    code, out = menus_check(tmp_path)
    assert out.splitlines() == [
        f"{main}:100:15: error: nodes.main_menu.options.1.next: unknown node 'biling'; did you "
        "mean 'billing'?",
        f"{main}:106:15: error: nodes.main_menu.options.3.next: unknown node 'retension'; did "
        "you mean 'retention'?",
        f"{promo}:7:3: warning: nodes.orphan: no caller can reach this node",
        f"{support}:65:11: error: nodes.back_to_main.menu: not checked against main.yaml, "
        "which has errors (see above)",
        "3 file(s) checked: 3 error(s), 1 warning(s)"]
    assert code == EXIT_USER


def test_the_command_line_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """1: the files have errors (printed on stdout); 0: none; 2: usage; 3: internal."""
    broken(tmp_path, "main.yaml", "  billing:\n", "billing:\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    run = subprocess.run([sys.executable, "-m", "ivr.cli", "menus", "check", str(tmp_path)],
                         capture_output=True, text=True, cwd=tmp_path, check=False,
                         env={**env, "IVR_MENUS_DIR": str(tmp_path)}, timeout=120)
    assert (run.returncode, run.stderr) == (EXIT_USER, "")
    assert run.stdout.splitlines() == [
        *lines(tmp_path, [COLUMN_0, NOT_CHECKED["main.yaml"]]),
        "2 file(s) checked: 2 error(s), 0 warning(s)"]
    usage = subprocess.run([sys.executable, "-m", "ivr.cli", "menus", "chek"],
                           capture_output=True, text=True, cwd=tmp_path, check=False,
                           env=env, timeout=120)
    assert usage.returncode == 2
    def bug(_path: Path) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(loader, "load_menu_file", bug)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["menus", "check", str(tmp_path)]) == EXIT_INTERNAL


def test_a_broken_entry_menu_stops_the_server_with_its_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Not "menus available: none": the entry menu's file has errors, and they are shown."""
    broken(tmp_path, "main.yaml", "  billing:\n", "billing:\n")
    settings = Settings(_env_file=None, menus_dir=tmp_path,
                        callbacks_file=tmp_path / "none.yaml")
    with pytest.raises(UserError) as err:
        _check_menus_servable(settings)
    assert str(err.value) == ("the server cannot start: entry menu 'main' is not loaded: "
                              "main.yaml has errors")
    assert capsys.readouterr().err.splitlines() == lines(
        tmp_path, [COLUMN_0, NOT_CHECKED["main.yaml"]])


# ----------------------------------------------------------------- GET /admin/menus


def test_the_admin_report(client: TestClient, menus_dir: Path) -> None:
    """The running server, every case: the broken file is refused with the same lines as
    ``ivr menus check`` prints for it, and its last good version stays live (so the other
    menu is checked against that one: no "not checked" line)."""
    for f in CORPUS.glob("*.yaml"):
        shutil.copy(f, menus_dir / f.name)
    good = client.post("/admin/menus/reload", headers=AUTH).json()
    assert good["report"]["refused"] == {}
    for case, file, replaced, by, expected in CASES:
        path = broken(menus_dir, file, replaced, by)
        client.post("/admin/menus/reload", headers=AUTH)
        body = client.get("/admin/menus", headers=AUTH).json()
        assert body["report"]["refused"] == {str(path): lines(menus_dir, expected)}, case
        assert body["report"]["kept_previous"] == [path.stem], case
        assert body["version"] == good["version"], case
    for f in CORPUS.glob("*.yaml"):
        shutil.copy(f, menus_dir / f.name)
    assert client.post("/admin/menus/reload", headers=AUTH).json()["report"]["refused"] == {}


def test_the_admin_report_on_a_menu_that_refers_to_a_broken_new_one(
        client: TestClient, menus_dir: Path) -> None:
    """Two new files, neither ever live: deals.yaml is broken, promo.yaml refers to it."""
    (menus_dir / "deals.yaml").write_text("languages: [en-US\n", encoding="utf-8")
    (menus_dir / "promo.yaml").write_text(
        "languages: [he-IL, en-US]\ndefault_language: he-IL\nstart: go\nfallback: go\n"
        "nodes:\n  go: {type: submenu, menu: deals}\n", encoding="utf-8")
    body = client.post("/admin/menus/reload", headers=AUTH).json()
    assert body["report"]["refused"] == {
        str(menus_dir / "deals.yaml"): [
            f"{menus_dir / 'deals.yaml'}:1:12: error: invalid YAML: `[` opened on line 1 is "
            "never closed: end the list with `]`"],
        str(menus_dir / "promo.yaml"): [
            f"{menus_dir / 'promo.yaml'}:6:29: error: nodes.go.menu: not checked against "
            "deals.yaml, which has errors (see above)"]}
    assert body["menus"] == ["main", "support"]


# ------------------------------------------------- the kit: every file it reads


@pytest.mark.parametrize(("text", "expected"), [
    ("a:\n  b:\n    type: queue\n      queue: billing\n  c: 1\n",
     "4:7: line 4 is indented more than the line above it: `queue` belongs under `b` (line 2), "
     "indented 4 spaces like `type` on line 3"),
    ("a:\n  b:\n    type: queue\n   queue: billing\n  c: 1\n",
     "4:4: line 4 is indented 3 spaces, which matches no line above it: indent `queue` 4 "
     "spaces like `type` on line 3, or 2 spaces like `b` on line 2"),
    ("nodes:\n  x:\n    type: a\nbilling:\n    type: queue\n    queue: b\n  support:\n"
     "    type: q\n",
     "4:1: line 4 is indented less than the lines around it: `billing` belongs under `nodes` "
     "(line 1), indented 2 spaces like `x` on line 2"),
    ("a:\n  say:\n    he: x\n   en: y\n",
     "4:4: line 4 is indented 3 spaces, which matches no line above it: indent `en` 4 spaces "
     "like `he` on line 3, or 2 spaces like `say` on line 2"),
    ("a:\n  say:\n      he: x\n    en: y\n",
     "3:7: line 3 is indented 6 spaces, so `he` does not line up with `en` on line 4: indent "
     "it 4 spaces"),
    ("a:\n  branches:\n    - when: 1\n      next: x\n    default: y\n",
     "5:5: line 5 is indented 4 spaces, which matches no line above it: indent `default` 6 "
     "spaces like `next` on line 4, or 2 spaces like `branches` on line 2"),
    ("a:\n  b: 1\n  - c\n", "3:3: a list item (`-`) where the lines above hold `key: value`: "
     "put the list under a key that ends with `:`"),
    ("  a: 1\nb: 2\n", "1:3: line 1 is indented 2 spaces, but `b` on line 2 is not: the file's "
     "first key sets its indentation; remove the spaces before `a`"),
    ("a:\n  input: [dtmf, speech\n  timeout: 6\n",
     "2:10: `[` opened on line 2 is never closed: end the list with `]`"),
    ("a: [\n", "1:4: `[` opened on line 1 is never closed: end the list with `]`"),
    ("a:\n  speech: {he: [x], en: [y]\n  timeout: 6\n",
     "2:11: `{` opened on line 2 is never closed: end it with `}`"),
    ("a:\n  say: {en: Press # to end}\n  b: 1\n", "2:19: `#` after a space starts a comment, "
     'which hides the `}` after it: put the text that holds `#` in quotes ("...")'),
    ('a:\n  he: "abc\n  en: "def"\n', '2:7: `"` opened on line 2 is not closed on that line: '
     'end the text with `"`'),
    ("a: 'open\n", "1:4: `'` opened on line 1 is never closed: end the text with `'`"),
    ('a:\n  en: "He said "hi" there"\n', '2:7: the quoted text of `en` ends at the `"` in '
     'column 16, but the line goes on: put the whole text in quotes, writing a `"` inside it '
     'as `\\"`'),
    ('a:\n  en: "C:\\path"\n', "2:10: `\\p` is no escape YAML knows: write `\\\\` for a "
     "backslash inside double quotes, or put the text in single quotes"),
    ("a:\n  b: 1\n\tc: 2\n", "3:1: a tab character: indent with spaces"),
    ("a:\n  b: 1\n  \tc: 2\n", "3:3: a tab character: indent with spaces"),
    ("a:\n  prompt\n    say:\n      en: x\n", "2:9: `:` missing after `prompt`"),
    ("a:\n  type queue\n  queue: b\n", "2:7: `:` missing after `type`"),
    ("a:\n  queue: b\n  type queue\n", "3:7: `:` missing after `type`"),
    ("a:\n  type:queue\n  b: 1\n", "2:8: a space is missing after `type:`"),
    ("a:\n  speech {en: [x], he: [y]}\n", "2:9: `:` missing after `speech`"),
    ("a:\n  en: Sorry: we are closed\n",
     '2:7: `: ` inside the text of `en`: put the whole text in quotes ("...")'),
    ("a:\n  say: {en: Sorry: we are closed}\n",
     '2:13: `: ` inside the text of `en`: put the whole text in quotes ("...")'),
    ("a:\n  en: {tier} is your tier\n", "2:7: the text of `en` starts with `{`, which YAML "
     "reads as a mapping: put the text in quotes"),
    ("a:\n  en: * to go back\n", '2:7: a text or key that starts with `*` must be in quotes '
     '("*..."): YAML reads `*` there as an alias'),
    ("options:\n  *: {next: x}\n", '2:3: a text or key that starts with `*` must be in quotes '
     '("*..."): YAML reads `*` there as an alias'),
    ("a:\n  en: @home\n", '2:7: a text or key that starts with `@` must be in quotes '
     '("@..."): YAML keeps `@` there for itself'),
    ("options:\n  #:\n    next: x\n  1:\n    next: y\n", '2:3: the key `#` must be in quotes '
     '("#": ...): YAML reads `#` and the rest of the line as a comment'),
    ("a: 1\n---\nb: 2\n", "2:1: `---` starts a second document, but the file holds one: "
     "remove this line (or what follows it)"),
    ("a: 1\nb: x\x08\n", "2:5: an invisible control character (U+0008) that YAML does not "
     "allow: delete it (retype the text around it)"),
    ("o:\n  '1': a\n  '2': b\n  '2': c\n", "4:3: duplicate key '2': each key may appear only "
     "once in a mapping (first defined on line 3)"),
], ids=["indented-more", "one-space-less", "moved-to-column-0", "first-key-fine-next-not",
        "first-key-indented-more", "key-beside-a-list", "list-item-among-keys",
        "first-line-indented", "unclosed-list", "unclosed-list-at-the-end",
        "unclosed-mapping", "hash-hides-the-brace", "unclosed-quote", "unclosed-quote-at-end",
        "quote-inside-quotes", "unknown-escape", "tab", "tab-after-spaces",
        "missing-colon", "missing-colon-before-value", "missing-colon-last-line",
        "no-space-after-colon", "missing-colon-before-a-mapping", "colon-in-a-text",
        "colon-in-a-text-in-braces", "text-starting-with-a-brace", "text-starting-with-star",
        "key-star", "text-starting-with-at", "key-hash", "second-document",
        "control-character", "duplicate-key"])
def test_the_kit_names_the_line_to_change(text: str, expected: str) -> None:
    """``line:column: problem``, what a loader shows after "not valid YAML: "."""
    with pytest.raises(YamlError) as err:
        load_yaml(text, "conf.yaml")
    assert f"{err.value.line}:{err.value.column}: {err.value.problem}" == expected
    assert str(err.value).startswith(f"conf.yaml:{err.value.line}:{err.value.column}: ")


POLICY = """\
default:
  business_hours:
    timezone: Asia/Jerusalem
    weekly:
      sun: ["08:00-20:00"]
  deadline:
    premium: 15m
  max_attempts: 3
  retry_backoff: [2m, 10m, 30m]
  warn_at: 0.8
"""


@pytest.mark.parametrize(("replaced", "by", "expected"), [
    ("  max_attempts: 3\n", "   max_attempts: 3\n",
     "8:4: not valid YAML: line 8 is indented 3 spaces, which matches no line above it: "
     "indent `max_attempts` 4 spaces like `premium` on line 7, or 2 spaces like `deadline` "
     "on line 6"),
    ("  max_attempts: 3\n", "\tmax_attempts: 3\n",
     "8:1: not valid YAML: a tab character: indent with spaces"),
    ("  retry_backoff: [2m, 10m, 30m]", "  retry_backoff: [2m, 10m, 30m",
     "9:18: not valid YAML: `[` opened on line 9 is never closed: end the list with `]`"),
    ("  deadline:\n", "  deadline\n", "6:11: not valid YAML: `:` missing after `deadline`"),
], ids=["one-space-less", "tab", "unclosed-list", "missing-colon"])
def test_callbacks_yaml_gets_the_same_explanations(tmp_path: Path, replaced: str, by: str,
                                                   expected: str) -> None:
    path = tmp_path / "callbacks.yaml"
    assert POLICY.count(replaced) == 1
    path.write_text(POLICY.replace(replaced, by), encoding="utf-8")
    with pytest.raises(PolicyError) as err:
        load_policies(path)
    assert str(err.value) == f"{path}:{expected}"


@pytest.mark.parametrize(("text", "expected"), [
    ("source: billing\nid: [id\nfields:\n  name: full_name\n",
     "2:5: not valid YAML: `[` opened on line 2 is never closed: end the list with `]`"),
    ("source: billing\nid: id\nfields:\n  name full_name\n  tier: level\n",
     "4:7: not valid YAML: `:` missing after `name`"),
], ids=["unclosed-list", "missing-colon"])
def test_the_crm_files_get_the_same_explanations(tmp_path: Path, text: str,
                                                 expected: str) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MappingError) as err:
        load_mapping(path)
    assert str(err.value) == f"{path}:{expected}"
