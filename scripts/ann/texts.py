"""Real sentences of the King James Bible, as decoded by Debian's `bible`
program (package bible-kjv): every verse, then every clause of a verse (split
at , ; : . ? !) of at least 25 characters, deduplicated, in Bible order.

Usage: python texts.py OUT.txt  (one text per line)
"""
import re
import subprocess
import sys


def verses():
    out = subprocess.run(
        ["bible", "-l10000", "Gen1:1-Rev22:21"], check=True, capture_output=True, text=True
    ).stdout
    cur = None
    for line in out.splitlines():
        m = re.match(r"^\s+(\d+)\s+(.*)$", line)
        if m:
            if cur:
                yield cur
            cur = m.group(2).strip()
        elif line.strip() and cur is not None and not re.match(r"^[1-3]?\s?[A-Z][A-Za-z ]+ \d+$", line.strip()):
            cur += " " + line.strip()
        elif not line.strip() and cur:
            yield cur
            cur = None
    if cur:
        yield cur


def main():
    seen = set()
    texts = []
    vs = list(verses())
    for v in vs:
        if v not in seen:
            seen.add(v)
            texts.append(v)
    for v in vs:
        for part in re.split(r"[,;:.?!]", v):
            part = part.strip()
            if len(part) >= 25 and part not in seen:
                seen.add(part)
                texts.append(part)
    with open(sys.argv[1], "w") as f:
        for t in texts:
            f.write(t.replace("\n", " ") + "\n")
    print(f"{len(vs)} verses, {len(texts)} texts", file=sys.stderr)


if __name__ == "__main__":
    main()
