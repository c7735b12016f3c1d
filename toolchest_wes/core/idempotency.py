"""The ``Idempotency-Key`` of ``POST /runs``: one key of one user stands for one run.

The store holds each key with its run, written in the same atomic step as the run
(``StateStore.create_run`` with an ``IdempotencyClaim``), so retries that race make one run.
This module decides what a submission with a key gets: the run the key already stands for,
a 422 for a key reused with another request, or a new run.

A run can exist without its files: Redis applied the create but died before it answered, so
the submission was refused (503) and its staged files removed, and the run can never execute
(the executor ends it SYSTEM_ERROR). A retry with the same key hands that run the files it
staged, so the one run the key stands for executes after all. With ``--storage`` the files
are looked for, and handed over, in the storage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from toolchest_wes.core.errors import UnprocessableContentError
from toolchest_wes.core.run_files import RunFiles
from toolchest_wes.core.submission import RunSubmission, fingerprint
from toolchest_wes.core.workspace import PARAMS_NAME, Workspace
from toolchest_wes.models import State
from toolchest_wes.storage.base import StorageError
from toolchest_wes.store.base import IdempotencyClaim, StateStore

__all__ = ["DEFAULT_WINDOW_S", "IdempotencyKeys"]

logger = logging.getLogger(__name__)

#: How long a key stands for its run when the operator sets nothing (24 h).
DEFAULT_WINDOW_S = 24 * 3600.0


@dataclass
class IdempotencyKeys:
    """The key rules of one service, over its store and workspace (and storage, if any)."""

    store: StateStore
    workspace: Workspace
    window_s: float = DEFAULT_WINDOW_S
    files: RunFiles | None = None

    def claim(self, sub: RunSubmission) -> IdempotencyClaim | None:
        """The claim of a submission with a key (before anything changes ``sub``)."""
        if sub.idempotency_key is None:
            return None
        return IdempotencyClaim(sub.idempotency_key, fingerprint(sub), self.window_s)

    def earlier_run(self, owner: str | None, claim: IdempotencyClaim) -> str | None:
        """The run the key already stands for, when it can be the answer as it is.

        ``None`` for a free key, and for a run without its files, which this submission
        stages and :meth:`join` hands over.

        Raises:
            UnprocessableContentError: The key stands for another request.
        """
        found = self.store.find_claim(owner, claim.key)
        if found is None:
            return None
        held_fingerprint, run_id = found
        if held_fingerprint != claim.fingerprint:
            raise self.reused(claim, run_id)
        if self._lacks_files(run_id):
            return None
        logger.info("idempotent submission answered with run_id=%s", run_id)
        return run_id

    def join(self, held: str, staged_id: str) -> bool:
        """Settle the files staged for ``staged_id`` once the store said the key stands for
        run ``held``: ``held`` gets them if it has none (``True``: queue it, as no one did),
        else they are removed."""
        if self.files is not None:
            given = self._lacks_files(held) and self._upload(staged_id, held)
            self.workspace.remove(staged_id)
            self._forget_stored(staged_id)
        else:
            given = self._lacks_files(held) and self.workspace.adopt(staged_id, held)
            if not given:
                self.workspace.remove(staged_id)
        if given:
            logger.info("idempotent submission gave run_id=%s its files", held)
        else:
            logger.info("idempotent submission answered with run_id=%s", held)
        return given

    @staticmethod
    def reused(claim: IdempotencyClaim, run_id: str) -> UnprocessableContentError:
        """The 422 of a key sent again with another request."""
        return UnprocessableContentError(
            f"Idempotency-Key {claim.key!r} was already used for another request (run "
            f"{run_id}); send a new key with a new request, or resend that request unchanged"
        )

    def _lacks_files(self, run_id: str) -> bool:
        # QUEUED only: a run that has started found its files, or ended for want of them.
        if self.store.get_state(run_id) is not State.QUEUED:
            return False
        if self.files is None:
            return not self.workspace.run_dir(run_id).params_file.exists()
        try:
            return self.files.stat(f"{run_id}/attachments/{PARAMS_NAME}") is None
        except StorageError:
            # Unknown: answer with the run as it is rather than risk a second copy of it.
            return False

    def _upload(self, staged_id: str, run_id: str) -> bool:
        """Store the files staged for ``staged_id`` as ``run_id``'s. (Not by renaming the
        staged folder first: a recorded run's folder that no process holds is swept.)"""
        assert self.files is not None
        try:
            self.files.upload_inputs(staged_id, as_run=run_id)
        except StorageError as exc:
            logger.warning("could not store the files of run_id=%s: %s", run_id, exc)
            return False
        return True

    def _forget_stored(self, staged_id: str) -> None:
        """Remove what the submission that lost the key uploaded under its own id."""
        assert self.files is not None
        try:
            self.files.remove(staged_id)
        except StorageError as exc:
            logger.warning("could not remove the files of run_id=%s: %s", staged_id, exc)
