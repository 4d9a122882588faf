"""Write README.md from nbs/index.ipynb (nbdev's own nbdev-readme needs Quarto, which is not available offline)."""
from pathlib import Path

import nbformat

root = Path(__file__).resolve().parents[1]
nb = nbformat.read(root / "nbs" / "index.ipynb", as_version=4)
parts = []
for c in nb.cells:
    if c.cell_type == "markdown": parts.append(c.source.strip())
    elif c.cell_type == "code" and c.source.strip(): parts.append("```python\n" + c.source.strip() + "\n```")
text = "<!-- generated from nbs/index.ipynb by tools/readme.py; edit the notebook -->\n\n" + "\n\n".join(parts) + "\n"
out = root / "README.md"
if not out.exists() or out.read_text() != text: out.write_text(text)
