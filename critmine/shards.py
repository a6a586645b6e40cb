"""The one resume rule for sharded outputs (`critmine judge`'s parts directory, `critmine score`'s output).

A sharded output is a directory holding a manifest (the inputs and settings that decide its content: it makes the
directory this command's own), shard files that each appear whole (written to a temporary name, then renamed), and
a completion marker once every shard is there. A rerun with the same manifest continues from the shards present; a
different manifest is refused (choose another --out, or `critmine run` removes its own output when its settings
changed); a directory with other files and no manifest is never written into or cleared.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from critmine.io import InputError, check_output_dir, write_json_atomic


class ShardDir:
    def __init__(self, root: str | os.PathLike, what: str, *, manifest: str = "_manifest.json",
                 done: str = "_SUCCESS", shard_glob: str = "part-*", also: tuple[str, ...] = (),
                 keep: tuple[str, ...] = ()):
        """`what` names the output in messages; `also` are other files this command writes there; `keep` are
        files of ours that survive remove_own (response caches)."""
        self.root, self.what = Path(root), what
        self.manifest, self.done = self.root / manifest, self.root / done
        self.shard_glob, self.also, self.keep = shard_glob, also, keep

    def check(self, manifest: dict[str, Any]) -> None:
        """Refuse (InputError) a directory that is not this output's, or holds one with other inputs or settings;
        writes nothing."""
        check_output_dir(self.root, self.what, own=(self.manifest.name, *self.also, *self.keep))
        if self.manifest.exists():
            old = json.loads(self.manifest.read_text(encoding="utf-8"))
            changed = [k for k in manifest if old.get(k) != manifest[k]]
            if changed:
                raise InputError(f"{self.root}: holds {self.what} with other inputs or settings "
                                 f"({', '.join(changed)} changed); choose another --out")

    def open(self, manifest: dict[str, Any]) -> None:
        """Check, then create the directory and its manifest if new; removes half-written shards of a kill."""
        self.check(manifest)
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.manifest.exists():
            write_json_atomic(self.manifest, manifest)
        for stale in self.root.glob(f".{self.shard_glob}.tmp"):
            stale.unlink()

    def sealed(self) -> list[Path]:
        """The finished shards, in order."""
        return sorted(self.root.glob(self.shard_glob))

    def is_complete(self) -> bool:
        return self.done.exists()

    def remove_own(self) -> None:
        """Remove what this command wrote (manifest, shards, marker, temporary shards; not `keep`), then the
        directory if nothing else is in it: never a file critmine did not write."""
        if not self.root.is_dir():
            return
        for f in [self.manifest, self.done, *(self.root / name for name in self.also), *self.sealed(),
                  *self.root.glob(f".{self.shard_glob}.tmp")]:
            f.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.root.rmdir()
