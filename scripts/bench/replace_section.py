"""Put a benchmark's report section into a Markdown file: the section of DOC titled exactly
like SECTION's first line (e.g. "## How cost grows", up to the next "## " heading) is
replaced by SECTION; without one, SECTION is appended. Every other section stays as it is,
so that each bench script owns its sections alone.

usage: replace_section.py DOC SECTION.md
"""
import os
import re
import sys

if len(sys.argv) != 3:
    sys.exit(__doc__.rsplit("usage: ", 1)[1].strip())
doc, sec = sys.argv[1], open(sys.argv[2]).read().rstrip() + "\n"
title = sec.split("\n", 1)[0].rstrip()
if not title.startswith("## "):
    sys.exit(f"{sys.argv[2]}: the first line must be a '## ' heading, not {title!r}")
text = open(doc).read() if os.path.exists(doc) else "# Benchmarks\n"
# The title exactly: "## load" must not take "## load: where the time goes" with it.
m = re.search(r"^" + re.escape(title) + r"[ \t]*\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
if m:
    rest = text[m.end():]
    text = text[:m.start()] + sec + ("\n" + rest if rest else "")
else:
    text = text.rstrip() + "\n\n" + sec
open(doc, "w").write(text)
