"""The Simplified Chinese catalogue is complete: regenerating it from the code finds no string
without a translation (and none marked fuzzy)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


# Not part of the product's catalogue (as `--ignore` below), or not source at all.
_NOT_SOURCE = {".git", ".venv", ".hypothesis", ".mypy_cache", ".ruff_cache", "tests", "bench", "var", "docs"}


def test_every_translatable_string_has_a_chinese_translation(tmp_path: Path) -> None:
    # makemessages writes to the `locale` folder of the tree it runs in (whatever LOCALE_PATHS says), so it runs
    # in a copy of the source: the check reads what it wrote, and the checkout's catalogue is left alone.
    tree = tmp_path / "tree"
    shutil.copytree(
        ROOT,
        tree,
        ignore=lambda folder, names: [
            n for n in names if n.endswith((".mo", ".egg-info")) or (folder == str(ROOT) and n in _NOT_SOURCE)
        ],
    )
    locale = tree / "locale"
    env = os.environ | {"METERLINE_LOCALE_DIR": str(locale)}
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "makemessages",
            "-l",
            "zh_Hans",
            "--no-obsolete",
            "-v0",
            "--ignore=.venv",
            "--ignore=tests",
            "--ignore=bench",
            "--ignore=var",
        ],
        cwd=tree,
        env=env,
        check=True,
        timeout=120,
    )
    po = locale / "zh_Hans" / "LC_MESSAGES" / "django.po"
    result = subprocess.run(
        ["msgfmt", "--statistics", "-o", os.devnull, str(po)], capture_output=True, text=True, check=True
    )
    stats = result.stderr.strip()
    assert "untranslated" not in stats and "fuzzy" not in stats, (
        f"{stats}: run `manage.py makemessages -l zh_Hans` and translate the new strings"
    )
