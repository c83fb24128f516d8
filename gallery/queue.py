"""The run queue, owned by the database: which queued run goes next, and claiming it.

A queued run is a ``Run`` row with ``status = queued``; it is due once its infrastructure back-off
(``not_before``) has passed. django-q2 does not decide what runs: its ``execute_run`` tasks are
tokens that wake a worker (``enqueue_run``), and the worker then asks ``claim_next_run`` for work
until none is left. A token that finds nothing due exits at once, so a spare token is harmless and
a lost one is replaced by recovery's wake-up (gallery.recovery).

The order is the fair queue's rule (gallery.fair_queue, written once and also played forward by
gallery.estimates): owners at USER_MAX_RUNNING_RUNS wait, then the owner with the fewest runs in
progress, then the one whose oldest due run has waited longest (``queued_since``: its launch, or
when it last paused). Runs take turns: one that has computed RUN_TURN_SECONDS pauses after its next
iteration while another user's run waits (``another_user_waits``; gallery.jobs saves that iteration
and re-queues it with a new ``queued_since``, behind the runs waiting then).

``claim_next_run`` picks and claims in one transaction, so two workers never take the same run and
an owner's cap holds however many workers claim at once:

- PostgreSQL: the run row is locked with ``SELECT … FOR UPDATE SKIP LOCKED`` (a run another worker
  is claiming is skipped, not waited for), and the cap check is serialised per owner with
  ``pg_try_advisory_xact_lock`` on the owner's id. The advisory lock, not a lock on the owner's
  ``auth_user`` row: it guards exactly "claiming for this owner", so a login or profile save never
  waits behind a claim nor a claim behind them, and it goes at commit by itself. The *try* form never
  waits either: an owner whose lock another worker holds is being served by that worker, so this one
  moves on to the next owner. Nothing in a claim waits for a lock, so claims cannot deadlock. Under
  the owner's lock the owner's running runs are counted again (READ COMMITTED: each statement sees
  every claim committed before), so a claim made since this one read the counts is seen.
- SQLite: there is one writer. The settings open every transaction with BEGIN IMMEDIATE, so the
  claim's transaction holds the database's write lock from its first read to its commit: claims
  run one after another, and each sees the one before it. The final UPDATE also re-checks the
  status and the owner's limit in its WHERE, so the limit holds even in a deferred transaction.
- Other databases with SKIP LOCKED: the owner's user row, locked with SKIP LOCKED, stands in for
  the advisory lock.
"""
import logging
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import close_old_connections, connection, transaction
from django.db.models import Count, Exists, F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.tasks import async_task

from gallery.fair_queue import fairest_owner, turn_goes_to_another
from gallery.models import Run

log = logging.getLogger(__name__)

# The token's task: a stored dotted path (queued tasks of existing databases name it), so it stays.
EXECUTE_RUN = "gallery.tasks.execute_run"
# pg_try_advisory_xact_lock key space of the per-owner claim lock: this number × 2**32 + owner id.
CLAIM_LOCK_NAMESPACE = 0x5347  # "SG"


def refresh_connections():
    """Drop broken or expired DB connections before more work (not inside a transaction)."""
    if not connection.in_atomic_block:
        close_old_connections()


def enqueue_run(run_id):
    """Queue a token that wakes a worker for the run queue (in sync mode it computes before
    returning). ``run_id`` is the run it was queued for; the worker takes the fairest due run."""
    return async_task(EXECUTE_RUN, run_id, group="runs", cluster=settings.RUN_CLUSTER)


def enqueue_run_quietly(run_id):
    """enqueue_run that logs a failure instead of raising: recovery's wake-up gives a token later."""
    try:
        enqueue_run(run_id)
        return True
    except Exception:
        log.exception("Could not queue a task for run %s; recovery's wake-up gives it one later.", run_id)
        return False


def is_due(now):
    """Queued runs not waiting out an infrastructure back-off."""
    return Q(status=Run.Status.QUEUED) & (Q(not_before__isnull=True) | Q(not_before__lte=now))


# Queued runs oldest first: their place in the queue.
QUEUE_ORDER = ("queued_since", "id")


def running_per_owner():
    """{owner id: runs in progress}."""
    return dict(
        Run.objects.filter(status=Run.Status.RUNNING)
        .values_list("project__owner_id")
        .annotate(count=Count("id"))
        .values_list("project__owner_id", "count")
    )


def _due_per_owner(now):
    """{owner id: [(place in the queue, run id), …] oldest first}: every due queued run."""
    due = defaultdict(list)
    rows = Run.objects.filter(is_due(now)).order_by(*QUEUE_ORDER).values_list("id", "project__owner_id")
    for place, (run_id, owner_id) in enumerate(rows):
        due[owner_id].append((place, run_id))
    return due


def next_queued_run(now=None):
    """The id of the queued run a free worker would take next by the fair rule, or None (a read:
    claim_next_run is what takes it)."""
    now = now or timezone.now()
    due = _due_per_owner(now)
    owner = fairest_owner({owner: runs[0][0] for owner, runs in due.items()}, running_per_owner())
    return None if owner is None else due[owner][0][1]


def another_user_waits(owner_id, now=None):
    """Whether a run of ``owner_id`` that has had its turn should pause for another user's due run."""
    now = now or timezone.now()
    waiting = Run.objects.filter(is_due(now)).exclude(project__owner_id=owner_id).order_by()
    owners = set(waiting.values_list("project__owner_id", flat=True).distinct())
    return turn_goes_to_another(owner_id, owners, running_per_owner())


def claim_next_run(now=None):
    """Claim the fairest due run for this worker and return it (with its project), or None.

    One transaction picks by the fair rule and claims: status ``running``, a fresh heartbeat and
    stall deadline, ``attempts`` + 1 (the token every later write of this worker is filtered on).
    See the module's docstring for how concurrent claims are kept apart on each database.
    """
    now = now or timezone.now()
    with transaction.atomic():
        running = running_per_owner()
        due = _due_per_owner(now)
        while due:
            owner = fairest_owner({owner: runs[0][0] for owner, runs in due.items()}, running)
            if owner is None:
                return None
            if not _lock_owner(owner):
                del due[owner]  # another worker is claiming for this owner right now
                continue
            running[owner] = _running_of(owner)
            if running[owner] >= settings.USER_MAX_RUNNING_RUNS:
                del due[owner]
                continue
            _place, run_id = due[owner].pop(0)
            if not due[owner]:
                del due[owner]
            if _claim(run_id, owner, now):
                return Run.objects.select_related("project").get(id=run_id)
    return None


def _lock_owner(owner_id):
    """Take this transaction's claim lock on the owner without waiting; False if another holds it."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [CLAIM_LOCK_NAMESPACE * 2**32 + owner_id])
            return cursor.fetchone()[0]
    if connection.features.has_select_for_update_skip_locked:
        users = get_user_model().objects.select_for_update(skip_locked=True).filter(id=owner_id)
        return users.values_list("id", flat=True).first() is not None
    return True  # SQLite: the transaction already holds the only write lock (BEGIN IMMEDIATE)


def _running_of(owner_id):
    return Run.objects.filter(status=Run.Status.RUNNING, project__owner_id=owner_id).count()


def _claim(run_id, owner_id, now):
    """Lock the run unless another worker holds it, and mark it running if it is still due and its
    owner is still below the limit (re-checked in the UPDATE itself: on SQLite that statement runs
    under the write lock whatever the transaction mode, so the limit holds even without BEGIN
    IMMEDIATE; elsewhere the owner's lock has already made it so)."""
    still_due = Run.objects.select_for_update(skip_locked=True).filter(is_due(now), id=run_id)
    if still_due.values_list("id", flat=True).first() is None:
        return False
    limit = settings.USER_MAX_RUNNING_RUNS
    at_limit = Run.objects.filter(status=Run.Status.RUNNING, project__owner_id=owner_id).order_by().values("id")
    return Run.objects.filter(is_due(now), id=run_id).exclude(Exists(at_limit[limit - 1:limit])).update(
        status=Run.Status.RUNNING,
        started=Coalesce(F("started"), now),
        claimed=now,
        heartbeat=now,
        stall_deadline=now + timedelta(seconds=settings.RUN_STALL_SECONDS),
        attempts=F("attempts") + 1,
        error="",
        notice="",
        not_before=None,
    ) == 1
