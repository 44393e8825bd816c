import subprocess
import sys

import pytest

from hf_dlp import __version__
from hf_dlp.cli import main


def test_help_and_version(capsys):
    assert main([]) == 2
    assert "make-base" in capsys.readouterr().out
    result = subprocess.run(
        [sys.executable, "-m", "hf_dlp.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"hf-dlp {__version__}"


def test_building_the_parser_imports_no_torch():
    """`hf-dlp --help` and `--version` build every command's parser: none may import torch (or transformers,
    datasets, TRL), which made them take 4-5 s. Command modules keep heavy imports inside `run`."""
    code = (
        "import sys\n"
        "from hf_dlp.cli import make_parser\n"
        "parser, runners = make_parser()\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'datasets', 'trl', 'accelerate') if m in sys.modules)\n"
        "print(' '.join(sorted(runners)))\n"
        "print('heavy:', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    commands, heavy = result.stdout.strip().splitlines()
    assert {"analyze", "make-base", "train"} <= set(commands.split())
    assert heavy == "heavy: []", heavy


def test_make_base_command_prints_cached_folder(tmp_path, capsys):
    code = main(
        ["make-base", "--size", "nano", "--num-train-examples", "32", "--max_steps", "2", "--batch_size", "4",
         "--cache_dir", str(tmp_path)]
    )  # fmt: skip
    assert code == 0
    folder = capsys.readouterr().out.strip().splitlines()[-1]
    assert folder.startswith(str(tmp_path)) and (tmp_path / "toy_base").is_dir()


def test_make_base_refuses_unknown_choices(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["make-base", "--size", "huge"])
    assert exit_.value.code == 2
    assert "argument --size: invalid choice: 'huge'" in capsys.readouterr().err


def test_every_public_name_resolves():
    import hf_dlp

    for name in hf_dlp.__all__:
        assert getattr(hf_dlp, name) is not None, name
    assert "run_demo" not in hf_dlp.__all__ and "DemoConfig" not in hf_dlp.__all__  # the demo is not library API
    from hf_dlp.generation import sample_completions

    assert hf_dlp.sample_completions is sample_completions
