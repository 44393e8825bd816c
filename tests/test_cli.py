import subprocess
import sys

from hf_dlp import __version__
from hf_dlp.cli import main


def test_help_and_version(capsys):
    assert main([]) == 2
    assert "make-base" in capsys.readouterr().out
    result = subprocess.run(
        [sys.executable, "-m", "hf_dlp.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"hf-dlp {__version__}"


def test_make_base_command_prints_cached_folder(tmp_path, capsys):
    code = main(
        ["make-base", "--size", "nano", "--num_train_examples", "32", "--max_steps", "2", "--batch_size", "4",
         "--cache_dir", str(tmp_path)]
    )
    assert code == 0
    folder = capsys.readouterr().out.strip().splitlines()[-1]
    assert folder.startswith(str(tmp_path)) and (tmp_path / "toy_base").is_dir()


def test_every_public_name_resolves():
    import hf_dlp

    for name in hf_dlp.__all__:
        assert getattr(hf_dlp, name) is not None, name
