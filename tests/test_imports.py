import subprocess
import sys


def test_importing_ctqa_loads_nothing_heavy():
    code = (
        "import sys, ctqa; from ctqa import Bot, answer, BadQuestion; "
        "heavy = [m for m in ('torch', 'faiss', 'gradio', 'sentence_transformers') "
        "if m in sys.modules]; print(heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_cli_help_loads_nothing_heavy():
    code = (
        "import sys; from ctqa.cli import build_parser; build_parser(); "
        "print([m for m in ('torch', 'faiss', 'gradio') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr
