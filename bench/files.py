"""Writing the app's small files: the figure behind ``MediaFileSystemStorage.save_bytes``.
`.venv/bin/python bench/files.py [--rounds N] [--files N]`.

Each round writes ``--files`` 3 KB files (a 64 x 64 image's PNG) into a fresh folder of a fresh
MEDIA_ROOT, two ways, in turns (after ``os.sync()``):

- tempfile: ``tempfile.mkstemp`` in the target folder, write, ``os.chmod`` by name, ``os.replace``,
  with ``pathlib`` for the folder check (what save_bytes did until this bench was written);
- save_bytes: the storage backend as it is now.

Prints the median milliseconds per file of each. Both are whole-file writes a reader never sees half
done; what differs is the Python around the three system calls (create, write, rename).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

OUT = Path(__file__).resolve().parent / "out"


def with_tempfile(root: Path, name: str, data: bytes, mode: int) -> None:
    folder = Path(root / name).parent
    if not folder.is_dir():
        folder.mkdir(parents=True)
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(temporary, mode)
    os.replace(temporary, root / name)


def main(argv: list[str]) -> dict:
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 5
    files = int(argv[argv.index("--files") + 1]) if "--files" in argv else 3000
    root = OUT / "scratch-files"
    shutil.rmtree(root, ignore_errors=True)
    os.environ.update(MEDIA_ROOT=str(root), DJANGO_SETTINGS_MODULE="dicomviewer.settings")
    os.environ.setdefault("SECRET_KEY", "bench")
    import django

    django.setup()
    from studies import storage
    from studies.storage_backends import file_mode

    backend, data, mode = storage.default(), os.urandom(3000), file_mode()
    ways = {
        "tempfile": lambda r, name: with_tempfile(root, name, data, mode),
        "save_bytes": lambda r, name: backend.save_bytes(name, data),
    }
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    try:
        for r in range(rounds):
            order = list(ways) if r % 2 == 0 else list(reversed(ways))
            for way in order:
                os.sync()
                started = time.perf_counter()
                for i in range(files):
                    ways[way](r, f"derived/{way}{r}/v1/stack/{i}.png")
                seconds[way].append(time.perf_counter() - started)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result = {way: round(statistics.median(s) / files * 1000, 4) for way, s in seconds.items()}
    print(f"ms per 3 KB file, median of {rounds} rounds of {files}: {result}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
