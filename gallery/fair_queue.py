"""The fair queue's rule, written once: workers claim runs by it (``gallery.queue.claim_next_run``)
and the expected starts play the queue forward by it (``gallery.estimates.queue_forecast``)."""
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
