"""Requests that really overlap: threads released together by a barrier, each with its own database
connection, and a helper that makes a read stale by the time the request acts on it."""
import threading
import time

from django.db import connection


def at_once(count, call):
    """``call(number)`` for numbers 0 … count-1, each in its own thread, all released at once; the
    results in that order. An error in any thread fails the caller."""
    start = threading.Barrier(count)
    results, errors = [None] * count, []

    def thread(number):
        try:
            start.wait()
            results[number] = call(number)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=thread, args=(number,)) for number in range(count)]
    for each in threads:
        each.start()
    for each in threads:
        each.join(timeout=60)
    assert errors == [] and not any(each.is_alive() for each in threads), errors
    return results


def slowed(function, seconds=0.1):
    """``function``, returning only ``seconds`` after it has read what it returns."""
    def slow(*args, **kwargs):
        result = function(*args, **kwargs)
        time.sleep(seconds)
        return result

    return slow
