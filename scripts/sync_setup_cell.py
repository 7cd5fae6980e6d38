"""Write the Colab setup cell of every notebook from _config.yml (the one place naming the repository and release).

    python scripts/sync_setup_cell.py          # after changing repository.url or repository.branch

The cell installs condgan_lib at the release the pages were executed with (``repository.branch``, a tag such as
v0.1.0, which the Colab buttons open too). The package's dependencies have lower bounds only, so pip keeps what
Colab ships; the cell says to restart the runtime only if pip did replace an installed package.
"""
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = '''# Colab only: install the book's library, condgan_lib, at the release these pages
# were made with.
import sys

if "google.colab" in sys.modules:
    import importlib.metadata as meta
    import subprocess

    REPO, REF = "{url}", "{ref}"
    KEPT = ("torch", "torchvision", "numpy", "matplotlib", "ipywidgets")
    before = {{name: meta.version(name) for name in KEPT}}
    url = f"condgan_lib @ git+{{REPO}}@{{REF}}"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", url], check=True)
    changed = [name for name in KEPT if meta.version(name) != before[name]]
    if changed:
        print(f"pip replaced {{changed}}: restart the runtime")
        print("(Runtime > Restart session), then run all again")'''


def setup_cell_source() -> str:
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    return TEMPLATE.format(url=repo["url"], ref=repo["branch"])


def main() -> int:
    source = setup_cell_source()
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        first = nb["cells"][0]
        if first["cell_type"] != "code" or "google.colab" not in "".join(first["source"]):
            print(f"{path.name}: the first cell is not the setup cell", file=sys.stderr)
            return 1
        first["source"] = source.splitlines(keepends=True)
        first["metadata"]["tags"] = ["remove-cell"]
        first["outputs"] = []
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
