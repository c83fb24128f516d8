"""The fair queue's rules, written once: workers claim runs and pause them by them
(``gallery.queue.claim_next_run``, ``gallery.jobs``), and the expected starts play the queue forward
by them (``gallery.estimates.queue_forecast``)."""
from django.conf import settings


def fairest_owner(waiting, running):
    """Whose run a free worker takes next, or None.

    ``waiting``: {owner: place in the queue of their oldest due run}; ``running``: {owner: runs in
    progress}. Owners at USER_MAX_RUNNING_RUNS wait; of the others, the one with the fewest runs in
    progress goes first, then the one whose oldest due run has waited longest (round-robin across
    users, not first come first served).
    """
    eligible = [
        (running.get(owner, 0), place, owner)
        for owner, place in waiting.items()
        if running.get(owner, 0) < settings.USER_MAX_RUNNING_RUNS
    ]
    return min(eligible)[2] if eligible else None


def turn_goes_to_another(owner, waiting, running):
    """Whether a run of ``owner`` that has had its turn (RUN_TURN_SECONDS of computing) pauses: another
    owner below USER_MAX_RUNNING_RUNS has a due run waiting for a worker. ``waiting``: the owners
    with a due queued run; ``running``: {owner: runs in progress}. The owner's own queued runs do not
    pause it: turns are taken between users."""
    return any(other != owner and running.get(other, 0) < settings.USER_MAX_RUNNING_RUNS for other in waiting)
