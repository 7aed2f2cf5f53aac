"""Card checksums: every layout publishers use is read; nothing a card says is dropped quietly."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from weightsafe.cards import import_digests

MD5 = "8d544b1bcb3449934184d4141137329c"
MD5B = "9d5dbb30911e48a42fb6d0fcabb322a4"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA256 = "fb1cd3c944b6dd2ece21c09d7378a77ccc279867dfe4b8b8b7cbfa58e4ffe4a3"
SHA512 = "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce" \
         "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
FILES = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "config.json",
         "tokenizer.model", "sub/weights.bin"]
CODEFUSE_CARD = Path(__file__).parent / "cards" / "codefuse-codellama-34b.md"  # the real card


def digests(text, files=FILES):
    got = import_digests(text, files)
    return {(p, d.alg): d.hex for p, ds in got.digests.items() for d in ds}, got.findings


@pytest.mark.parametrize("card, expected", [
    pytest.param(f"| File | MD5 |\n|---|---|\n| config.json | {MD5} |\n", {("config.json", "md5"): MD5},
                 id="table-name-first"),
    pytest.param(f"| md5sum | filename |\n|:-:|:-|\n| `{MD5.upper()}` | `config.json` |\n",
                 {("config.json", "md5"): MD5}, id="table-digest-first-backticks-uppercase"),
    pytest.param(f"| file | SHA-256 | MD5 |\n|--|--|--|\n| tokenizer.model | {SHA256} | {MD5} |\n",
                 {("tokenizer.model", "sha256"): SHA256, ("tokenizer.model", "md5"): MD5}, id="table-two-columns"),
    pytest.param(f"| file | digest |\n|--|--|\n| [config.json](config.json) | sha256:{SHA256} |\n",
                 {("config.json", "sha256"): SHA256}, id="table-tagged-digest-and-link"),
    pytest.param(f"| file | SHA1 |\n|--|--|\n| config.json | {SHA1} |\n", {("config.json", "sha1"): SHA1},
                 id="table-sha1-column"),
    pytest.param(f"```\n{SHA256}  model-00001-of-00002.safetensors\n{SHA256[::-1]} *model-00002-of-00002.safetensors\n```",
                 {("model-00001-of-00002.safetensors", "sha256"): SHA256,
                  ("model-00002-of-00002.safetensors", "sha256"): SHA256[::-1]}, id="sha256sum-text-and-binary"),
    pytest.param(f"```sha1sum\n{SHA1}  config.json\n```", {("config.json", "sha1"): SHA1}, id="sha1sum-fence"),
    pytest.param(f"## SHA1 checksums\n{SHA1}  config.json\n", {("config.json", "sha1"): SHA1}, id="sha1-heading"),
    pytest.param(f"MD5 (config.json) = {MD5}\nSHA512 (tokenizer.model) = {SHA512}\n",
                 {("config.json", "md5"): MD5, ("tokenizer.model", "sha512"): SHA512}, id="bsd-tagged"),
    pytest.param(f"### MD5\n- config.json: {MD5}\n- `tokenizer.model`: `{MD5B}`\n",
                 {("config.json", "md5"): MD5, ("tokenizer.model", "md5"): MD5B}, id="name-colon-list"),
    pytest.param(f"* **config.json** (sha256): {SHA256}\n", {("config.json", "sha256"): SHA256},
                 id="label-names-alg"),
    pytest.param(f"{MD5}  ./sub/weights.bin\n", {("sub/weights.bin", "md5"): MD5}, id="dot-slash-path"),
    pytest.param(f"{MD5}  weights.bin\n", {("sub/weights.bin", "md5"): MD5}, id="unique-basename"),
    pytest.param(f"## Checksums\n\n    $ sha1sum -b config.json\n    {SHA1.upper()} *config.json\n",
                 {("config.json", "sha1"): SHA1}, id="sha1sum-command-in-an-indented-code-block"),
    pytest.param(f"To verify:\n\n    {SHA1} *config.json\n", {("config.json", "sha1"): SHA1},
                 id="sha1sum-binary-mode-line-in-an-indented-code-block"),
    pytest.param(f"```\n$ shasum -a 256 config.json\n{SHA256}  config.json\n```\n",
                 {("config.json", "sha256"): SHA256}, id="shasum-command-in-a-fence"),
    pytest.param("The weights came in commit 7b92b5b0565e86eba9135a6c094d20107d82ee5f.\n"
                 "revision: 7b92b5b0565e86eba9135a6c094d20107d82ee5f\n"
                 "    7b92b5b0565e86eba9135a6c094d20107d82ee5f  config.json\n", {}, id="a-commit-id-is-not-a-sha1"),
])
def test_layouts(card, expected):
    got, findings = digests(card)
    assert got == expected
    assert not findings


def test_the_real_codefuse_card_gives_its_seven_md5s_once_though_it_prints_the_table_twice():
    text = CODEFUSE_CARD.read_text(encoding="utf-8", errors="replace")
    files = [f"pytorch_model-0000{i}-of-00007.bin" for i in range(1, 8)] + ["config.json", "README.md"]
    got, findings = digests(text, files)
    assert len(got) == 7 and not findings
    assert got[("pytorch_model-00001-of-00007.bin", "md5")] == MD5
    assert got[("pytorch_model-00007-of-00007.bin", "md5")] == "a967e2c6195477b7407089c0bffa2d53"


def test_a_digest_for_a_file_not_in_the_repo_is_reported():
    got, findings = digests(f"{MD5}  model.gguf\n{MD5B}  config.json\n")
    assert got == {("config.json", "md5"): MD5B}
    assert [(f.kind, f.name) for f in findings] == [("unknown-file", "model.gguf")]
    assert "not in the repository" in findings[0].message


def test_two_different_digests_for_one_file_are_a_conflict_and_neither_is_imported():
    got, findings = digests(f"## MD5\n| f | md5 |\n|-|-|\n| config.json | {MD5} |\n\n{MD5B}  config.json\n")
    assert got == {}
    assert [(f.kind, f.name) for f in findings] == [("conflict", "config.json")]
    assert MD5 in findings[0].message and MD5B in findings[0].message


def test_a_digest_whose_length_contradicts_its_column_is_reported():
    got, findings = digests(f"| file | SHA256 |\n|-|-|\n| config.json | {MD5} |\n")
    assert got == {}
    assert findings[0].kind == "bad-length" and "cannot be sha256" in findings[0].message


def test_a_basename_shared_by_two_files_is_ambiguous():
    got, findings = digests(f"{MD5}  weights.bin\n", ["a/weights.bin", "b/weights.bin"])
    assert got == {} and findings[0].kind == "ambiguous-file"


names = st.sampled_from(FILES)
hexes = st.sampled_from([("md5", MD5), ("sha256", SHA256), ("sha512", SHA512), ("md5", MD5B)])


@settings(max_examples=60, deadline=None)
@given(rows=st.dictionaries(names, hexes, min_size=1, max_size=5), name_first=st.booleans(),
       ticks=st.booleans(), upper=st.booleans(), header_case=st.sampled_from(["lower", "upper", "title"]))
def test_any_table_layout_reads_the_same(rows, name_first, ticks, upper, header_case):
    """Column order, backticks, hex case and header case never change what a table says."""
    def cell(x):
        return f"`{x}`" if ticks else x

    header = ["file", "checksum"] if name_first else ["checksum", "file"]
    header = [getattr(h, header_case)() for h in header]
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    for path, (_, hexd) in rows.items():
        h = hexd.upper() if upper else hexd
        lines.append(f"| {cell(path)} | {cell(h)} |" if name_first else f"| {cell(h)} | {cell(path)} |")
    got, findings = digests("\n".join(lines) + "\n")
    assert got == {(p, alg): h for p, (alg, h) in rows.items()}
    assert not findings


# ------------------------------------------------------------------ hostile card text (issue 19)

ADVERSARIAL = {  # lines that made the old patterns backtrack cubically (3 s at 1,000 characters)
    "spaces between words": lambda n: "a" + " " * n + "b",
    "spaces around an (alg)": lambda n: "x" + " " * (n // 2) + "(md5)" + " " * (n // 2) + "y",
    "a sum line with a spaced name": lambda n: f"{MD5} " + " " * (n // 2) + "x" + " " * (n // 2) + "`y",
    "bullets and tabs": lambda n: "- " + " \t" * (n // 2) + "x",
}


@pytest.mark.parametrize("case", list(ADVERSARIAL))
def test_card_parsing_is_linear_in_the_line_length(case):
    import time

    from weightsafe.cards import MAX_LINE, scan

    for n in (MAX_LINE - 100, 100_000):  # just under the line cap (parsed), and far over it
        line = ADVERSARIAL[case](n)
        start = time.perf_counter()
        scan(line)
        assert time.perf_counter() - start < 2, (case, n)


def test_a_long_name_line_still_parses_correctly():
    got, findings = digests(f"config.json{' ' * 1000}: {MD5}\n"
                            f"* **config.json** {' ' * 500}(sha256){' ' * 500}: {SHA256}\n")
    assert got == {("config.json", "md5"): MD5, ("config.json", "sha256"): SHA256} and not findings


def test_an_over_long_line_holding_a_digest_is_a_finding_not_a_silence():
    from weightsafe.cards import MAX_LINE

    got, findings = digests(f"{MD5B}  tokenizer.model\n{'x' * MAX_LINE} {MD5}  config.json\n")
    assert got == {("tokenizer.model", "md5"): MD5B}
    assert [f.kind for f in findings] == ["long-line"] and "line 2" in findings[0].message
    assert digests("<img src='data:image/png;base64," + "QUJD" * 5000 + "'>\n") == ({}, ())  # no hex: nothing lost


@pytest.mark.parametrize("name", ["con\x1b]0;pwned\x07fig.json", "csi\x9b31m.json", "bidi\u202e.json",
                                  "nul\x00.json"])
def test_names_in_card_findings_carry_no_raw_control_characters(name):
    card = (f"MD5 ({name}) = {MD5}\nMD5 ({name}) = {MD5B}\n"  # a conflict
            f"| file | SHA256 |\n|-|-|\n| {name} | {MD5} |\n")  # a length that contradicts its column
    got = import_digests(card, None, where=f"note{name}")
    assert {f.kind for f in got.findings} == {"conflict", "bad-length"}, got.findings
    for f in got.findings:
        assert f.message.isprintable(), f.message
