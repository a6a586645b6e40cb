"""Publishing a selection as a Hugging Face Hub dataset (`critmine select --push-to-hub REPO`).

The selected file (or a saved dataset's Arrow files) goes under `data/` of a dataset repository in one commit, with
a dataset card naming what critmine kept and how; a card already in the repository is left as it is. The token is
huggingface_hub's own (HF_TOKEN or `hf auth login`), never a critmine option.
"""

from __future__ import annotations

import logging
from pathlib import Path

from critmine.io import InputError

try:
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.utils import HFValidationError, validate_repo_id
except ImportError:  # an optional dependency (the `datasets` dependency brings it in practice)
    HfApi = None  # type: ignore[assignment,misc]

log = logging.getLogger(__name__)
CARD = "README.md"


def check_repo(repo: str) -> None:
    """Fail before any work when pushing cannot happen: huggingface_hub missing, or a malformed repository id."""
    if HfApi is None:
        raise InputError("--push-to-hub needs huggingface_hub: pip install huggingface_hub")
    try:
        validate_repo_id(repo)
    except HFValidationError as e:
        raise InputError(f"--push-to-hub {repo!r}: not a Hub repository id (owner/name): {e}") from None
    if "/" not in repo:
        raise InputError(f"--push-to-hub {repo!r}: give owner/name")


def data_files(path: Path) -> list[tuple[Path, str]]:
    """(local file, path in the repository): a file as data/NAME, a saved dataset's Arrow files under data/NAME/."""
    if path.is_dir():
        return [(f, f"data/{path.name}/{f.name}") for f in sorted(path.glob("*.arrow"))]
    return [(path, f"data/{path.name}")]


def card(summary: str) -> str:
    return ("---\nconfigs:\n- config_name: default\n  data_files: data/**\ntags:\n- critmine\n---\n\n"
            f"# Documents selected by critmine\n\n{summary}\n")


def push(path: Path, repo: str, *, summary: str, private: bool = False) -> str:
    """Upload the selection at `path` to the dataset repository `repo` (created if missing); returns its URL."""
    check_repo(repo)
    api = HfApi()
    url = str(api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True))
    ops = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(f)) for f, name in data_files(path)]
    if not api.file_exists(repo, CARD, repo_type="dataset"):
        ops.append(CommitOperationAdd(path_in_repo=CARD, path_or_fileobj=card(summary).encode("utf-8")))
    api.create_commit(repo, ops, commit_message=f"critmine select: {path.name}", repo_type="dataset")
    log.info("pushed %s to %s", path, url)
    return url
