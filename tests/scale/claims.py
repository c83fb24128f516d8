"""Concurrent claims on the deployment's real PostgreSQL, in a Django process pointed at it by
DATABASE_URL: ``threads`` workers (threads, each with its own connection) claim at once from
``owners`` users' queues of ``runs`` runs each, with the fair rule slowed down so that every read of
the running counts is old by the time its claim commits. Prints JSON: the ids claimed, the errors,
the running runs per owner, and what a last claim found.

    python -m tests.scale.claims '{"owners": 3, "runs": 6, "threads": 10, "limit": 2}'
"""
import json
import os
import sys
import threading
import time


def main(spec):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gallery.settings")
    os.environ["USER_MAX_RUNNING_RUNS"] = str(spec["limit"])
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import connection

    import gallery.queue
    from gallery.models import Project, Run

    assert connection.vendor == "postgresql", connection.vendor
    owners = []
    for number in range(spec["owners"]):
        owner = User.objects.create_user(f"claimer-{number}")
        project = Project.objects.create(owner=owner, title="Claims", content_image="projects/c.jpg",
                                         content_thumbnail="projects/c.jpg", style_image="projects/s.jpg",
                                         style_thumbnail="projects/s.jpg")
        for _ in range(spec["runs"]):
            Run.objects.create(project=project)
        owners.append(owner)
    fairest_owner = gallery.queue.fairest_owner

    def slow_fairest_owner(waiting, running):
        time.sleep(0.02)
        return fairest_owner(waiting, running)

    gallery.queue.fairest_owner = slow_fairest_owner
    claimed, errors = [], []
    start = threading.Barrier(spec["threads"])

    def worker():
        try:
            start.wait()
            while (run := gallery.queue.claim_next_run()) is not None:
                claimed.append(run.id)
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(spec["threads"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    last = gallery.queue.claim_next_run()
    running = {owner.username: Run.objects.filter(project__owner=owner, status=Run.Status.RUNNING).count()
               for owner in owners}
    attempts = sorted(set(Run.objects.filter(id__in=claimed).values_list("attempts", flat=True)))
    print(json.dumps({"claimed": claimed, "errors": errors, "running": running, "attempts": attempts,
                      "last": None if last is None else last.id}))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
