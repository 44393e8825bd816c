"""Every Python block in `docs/*.md` runs, one file's blocks in order in one namespace, in a temporary folder.

A block preceded by the line `<!-- not run: REASON -->` (a GPU, the Hub) is compiled, not run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"(<!-- not run: [^>]+ -->\n)?```python\n(.*?)```", re.DOTALL)
PAGES = sorted(path for path in DOCS.glob("*.md") if "```python" in path.read_text())


def test_the_docs_have_python_blocks_to_run():
    assert PAGES, "no docs page with a Python block: the test below would check nothing"


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_docs_code_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    blocks = BLOCK.findall(page.read_text())
    assert blocks
    for index, (skip, code) in enumerate(blocks):
        compiled = compile(code, f"{page.name}, block {index + 1}", "exec")
        if not skip:
            exec(compiled, namespace)  # noqa: S102 (the documentation's own examples)


SHELL_BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)
YAML_BLOCK = re.compile(r"```yaml\n(.*?)```", re.DOTALL)
MARKDOWN = sorted([*DOCS.glob("*.md"), DOCS.parent / "README.md"])


def _hf_dlp_commands(text: str) -> list[list[str]]:
    """The `hf-dlp ...` and `... -m hf_dlp.cli ...` command lines of a page's shell blocks, as argument lists."""
    import shlex

    commands = []
    for block in SHELL_BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if "hf-dlp" in words:
                commands.append(words[words.index("hf-dlp") + 1 :])
            elif "hf_dlp.cli" in words:
                commands.append(words[words.index("hf_dlp.cli") + 1 :])
    return commands


@pytest.mark.parametrize("page", MARKDOWN, ids=[page.name for page in MARKDOWN])
def test_docs_shell_commands_parse(page):
    """Every `hf-dlp` command line of the docs and the README is one the CLI accepts (parsed, not run)."""
    from hf_dlp.cli import make_parser

    parser, _ = make_parser()
    for words in _hf_dlp_commands(page.read_text()):
        if words[:1] == ["train"]:  # recipe flags are `ReweightedGRPOConfig` fields, checked by the train command
            args, _ = parser.parse_known_args(words)
        else:
            try:
                args = parser.parse_args(words)
            except SystemExit as error:
                raise AssertionError(f"{page.name}: `hf-dlp {' '.join(words)}` does not parse") from error
        assert args.command == words[0]


def test_docs_shell_commands_are_found():
    commands = [words for page in MARKDOWN for words in _hf_dlp_commands(page.read_text())]
    assert {"analyze", "demo", "extrapolate", "replace", "train"} <= {words[0] for words in commands}


@pytest.mark.parametrize("page", [p for p in MARKDOWN if "```yaml" in p.read_text()])
def test_docs_yaml_recipes_name_config_fields(page):
    """A YAML block of the docs is a training recipe: every key is a `ReweightedGRPOConfig` field."""
    import dataclasses

    import yaml

    from hf_dlp import ReweightedGRPOConfig

    fields = {field.name for field in dataclasses.fields(ReweightedGRPOConfig)}
    for block in YAML_BLOCK.findall(page.read_text()):
        recipe = yaml.safe_load(block)
        assert isinstance(recipe, dict) and recipe
        assert set(recipe) <= fields, f"{page.name}: unknown recipe keys {sorted(set(recipe) - fields)}"


def test_readme_python_blocks_compile_and_their_imports_exist():
    """The README's blocks use Hub models, so they are not run; they compile, and every name they import exists."""
    import ast

    blocks = re.findall(r"```python\n(.*?)```", (DOCS.parent / "README.md").read_text(), re.DOTALL)
    assert len(blocks) >= 3
    for index, code in enumerate(blocks):
        tree = ast.parse(code, f"README.md, block {index + 1}")
        imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        assert imports, f"README.md block {index + 1} imports nothing from hf_dlp"
        exec(compile(ast.Module(body=imports, type_ignores=[]), "README.md", "exec"), {})  # noqa: S102


README_SMOLLM2 = "SmolLM2-135M (training: 4 seeds; sweeps: seed 0, 128 × 4)"


def test_the_readme_claims_table_is_the_shipped_runs_claims():
    """The README's claims table is rendered from the headline numbers shipped for the runs it reports, so a
    verdict or a number there cannot drift from the run that produced it: the toy run, and for SmolLM2 the training
    claims of the 4-seed run with the other claims of the 128 × 4 sweep run."""
    from hf_dlp.demo.claims import claims_side_by_side, combined_claims
    from hf_dlp.demo.expected import load_expected

    smollm2 = combined_claims(load_expected("smollm2-seeds")["claims"], load_expected("smollm2-fig4")["claims"])
    runs = {"toy (seed 0)": load_expected("toy")["claims"], README_SMOLLM2: smollm2}
    assert claims_side_by_side(runs) in (DOCS.parent / "README.md").read_text()
