"""What a trader may do to a job, decided by the core's state machine, as messages for the App.

Each function returns the `Change` to post, or the sentence that says why not
(shown as a toast). Whether a job can be cancelled or retried is the job state
table's answer (`JobStatus.can_become`), the same one the daemon enforces, so
the dashboard never offers what the daemon would refuse.
"""

from __future__ import annotations

from gexdaemon.core.vocab import JobStatus, PriorityLevel
from gexdaemon.protocol import shapes as s
from gexdaemon.readout import short_id, words
from gextui.desk import LEVELS, job_words
from gextui.messages import Change, Confirmation


def cancel(job: s.JobRow) -> Change | str:
    sid = short_id(job.job_id)
    if not job.status.can_become(JobStatus.CANCELLED):
        return f"Job {sid} is {words(job.status)}: only QUEUED or PROCESSING jobs can be cancelled."
    running = job.status is JobStatus.PROCESSING
    body = (
        f"{job_words(job)} is {words(job.status)}"
        + (" (running now: the fetch is abandoned)" if running else "")
        + f".\nSource: {job.source_url}\n\nCancelling is final; the request would have to be "
        "submitted again."
    )
    return Change(
        "cancel",
        lambda calls: calls.cancel(job.job_id),
        done=f"Cancelled job {sid}.",
        confirm=Confirmation("Cancel this job?", body, confirm="Cancel job"),
    )


def retry(job: s.JobRow) -> Change | str:
    sid = short_id(job.job_id)
    # FAILED is the one state that may go back to QUEUED.
    if not job.status.can_become(JobStatus.QUEUED):
        return f"Job {sid} is {words(job.status)}: only FAILED jobs can be retried."
    return Change(
        "retry", lambda calls: calls.retry(job.job_id), done=f"Job {sid} is queued again."
    )


def change_level(job: s.JobRow, steps: int) -> Change | str:
    """`steps` -1 raises the job one level (more urgent), +1 lowers it."""
    sid = short_id(job.job_id)
    if job.status is not JobStatus.QUEUED:
        return f"Job {sid} is {words(job.status)}: only a QUEUED job can change level."
    target = job.priority_level.rank + steps
    if not 0 <= target < len(LEVELS):
        edge = "the most urgent" if steps < 0 else "the least urgent"
        return f"{words(job.priority_level)} is already {edge} level."
    level: PriorityLevel = LEVELS[target]
    return Change(
        "change level",
        lambda calls: calls.set_level(job.job_id, level.value),
        done=f"Job {sid}: {words(job.priority_level)} → {words(level)} (its deadline follows the level).",
    )
