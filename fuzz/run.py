"""Run the fuzz harnesses: ``python -m fuzz.run [--seconds N] [headers archive multipart qido]``.

Each harness runs in its own process for N seconds (FUZZ_SECONDS, default 60), starting from a
corpus written under var/fuzz/corpus/<name>/ from its ``seeds()`` and the regression inputs kept
in tests/fuzz_regressions/<name>/. A failing input is saved to var/fuzz/crashes/<name>/; the exit
status is non-zero when any harness failed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESSES = {
    # name: libFuzzer options beyond the common ones
    "headers": ["-max_len=20000"],
    "archive": ["-max_len=20000"],
    "multipart": ["-max_len=4096"],
    "qido": ["-max_len=1024"],
}
REGRESSIONS = ROOT / "tests" / "fuzz_regressions"


def write_corpus(name: str, folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    module = importlib.import_module(f"fuzz.fuzz_{name}")
    inputs = list(module.seeds())
    if (REGRESSIONS / name).is_dir():
        inputs += [path.read_bytes() for path in sorted((REGRESSIONS / name).iterdir()) if path.is_file()]
    for data in inputs:
        (folder / f"seed-{hashlib.sha1(data).hexdigest()[:16]}").write_bytes(data)
    return len(inputs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", "60")))
    parser.add_argument("--out", type=Path, default=ROOT / os.environ.get("VAR_DIR", "var") / "fuzz")
    parser.add_argument("names", nargs="*", help=f"harnesses to run (default: all of {', '.join(HARNESSES)})")
    args = parser.parse_args()
    if unknown := set(args.names) - set(HARNESSES):
        parser.error(f"no harness named {', '.join(sorted(unknown))}")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "dicomviewer.settings"}
    failed = []
    for name in args.names or list(HARNESSES):
        corpus, crashes = args.out / "corpus" / name, args.out / "crashes" / name
        crashes.mkdir(parents=True, exist_ok=True)
        print(f"== fuzz {name}: {write_corpus(name, corpus)} seeds, {args.seconds} s", flush=True)
        command = [
            sys.executable, "-m", f"fuzz.fuzz_{name}", str(corpus),
            f"-max_total_time={args.seconds}", "-timeout=20", "-rss_limit_mb=4096",
            f"-artifact_prefix={crashes}/", "-print_final_stats=1", *HARNESSES[name],
        ]  # fmt: skip
        if (ROOT / "fuzz" / f"{name}.dict").is_file():  # tokens of the input's syntax
            command.append(f"-dict={ROOT / 'fuzz' / f'{name}.dict'}")
        if subprocess.run(command, cwd=ROOT, env=env).returncode != 0:
            failed.append(name)
    if failed:
        print(f"fuzz: failures in {', '.join(failed)}; inputs under {args.out / 'crashes'}", file=sys.stderr)
        return 1
    print("fuzz: no failures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
