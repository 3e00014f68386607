"""Maintainers: regenerate the patch series from a scratch MMRec clone with one commit per patch.

    git clone https://github.com/enoche/MMRec /tmp/mmrec-series && cd /tmp/mmrec-series
    # for each patch, in order: edit, then `git commit -am NNNN-short-name.patch` (the subject is the file name;
    # the commit body is the header for a new patch; an existing patch keeps its header)
    python PATH/TO/mde-mmrec/patches/refresh.py /tmp/mmrec-series

Writes patches/NNNN-*.patch (header, then `git diff -U2` of that commit) and patches/manifest.json (the
series order, the base commit, the SHA-256 of every file the series touches at that commit, which the
installer compares a checkout against). To edit an existing patch, rebuild the scratch clone by applying the
current series commit by commit (`git apply P && git commit -am P`), amend, then refresh.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE = "e775373b3ab1354a92165b0885ce4ab3dc4d7497"  # enoche/MMRec master, "Add MMGCF (UMAP 26)"
# The oldest MMRec commit the series applies to (sections for model files added later are skipped): its parent
# has the `quick_start(..., mg=args.mg)` main.py that patch 0009 does not fit. Checked by the tier-2 test
# tests/integration/test_older_mmrec.py; re-check it after changing a patch.
OLDEST = "14bf8bd (2024-12-25)"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def main(scratch: str) -> int:
    repo = Path(scratch).resolve()
    commits = git(repo, "rev-list", "--reverse", f"{BASE}..HEAD").split()
    names, touched = [], []
    for commit in commits:
        name = git(repo, "log", "-1", "--format=%s", commit).strip()
        if not re.fullmatch(r"\d{4}-[a-z0-9-]+\.patch", name):
            sys.exit(f"commit {commit[:7]}: subject {name!r} is not a patch file name like 0001-short-name.patch")
        old = HERE / name
        header = (
            old.read_text().split("diff --git ", 1)[0].rstrip()
            if old.is_file()
            else git(repo, "log", "-1", "--format=%b", commit).strip()
        )
        if not header:
            sys.exit(f"{name}: no header; write one in the commit body (what it fixes and why)")
        diff = git(repo, "diff", "-U2", "--no-color", f"{commit}~1", commit)
        diff = "\n".join(line for line in diff.split("\n") if not line.startswith("index "))
        (HERE / name).write_text(header + "\n\n" + diff)
        names.append(name)
        touched += [f for f in git(repo, "diff", "--name-only", f"{commit}~1", commit).split() if f not in touched]
    pristine = {
        rel: hashlib.sha256(
            subprocess.run(["git", "show", f"{BASE}:{rel}"], cwd=repo, capture_output=True, check=True).stdout
        ).hexdigest()
        for rel in sorted(touched)
    }
    manifest = {
        "mmrec_repository": "https://github.com/enoche/MMRec",
        "mmrec_commit": BASE,
        "oldest_mmrec": OLDEST,
        "patches": names,
        "pristine_sha256": pristine,
    }
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{len(names)} patches, {len(pristine)} files -> {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]) if len(sys.argv) == 2 else __doc__)
