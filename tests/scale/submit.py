"""Launch runs the way the launch form does, in a Django process pointed at the deployment's
PostgreSQL and Redis (by DATABASE_URL and REDIS_URL), and print their ids as JSON.

    python -m tests.scale.submit '{"count": 6, "iterations": 3, "rows": 48, "save_every": 1}'

"iterations" may also be a list, one value per run (then "count" is its length).
"""
import json
import os
import sys


def picture(width, height, seed):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([255 * x / width, 255 * y / height, np.where((x - width / 2) ** 2 + (y - height / 2) ** 2 < 200, 220, 40)], -1)
    return Image.fromarray(np.clip(rgb + rng.normal(0, 8, rgb.shape), 0, 255).astype(np.uint8), "RGB")


def main(spec):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gallery.settings")
    import django

    django.setup()
    from django.contrib.auth.models import User

    from gallery import files, launching
    from gallery.models import Project, Run

    user, _ = User.objects.get_or_create(username=spec.get("user", "scale"))
    project = Project(owner=user, title=spec.get("title", "Scale-out"))
    files.save_project_image(project, "content", picture(64, 48, 1))
    files.save_project_image(project, "style", picture(48, 64, 2))
    project.save()
    ids = []
    iterations = spec["iterations"]
    if not isinstance(iterations, list):
        iterations = [iterations] * spec["count"]
    for index, count in enumerate(iterations):
        run = Run(
            project=project,
            rows=spec.get("rows", 48),
            iterations=count,
            save_every=spec.get("save_every", 1),
            tv_weight=0.001 * (index + 1),
            seed=index,
        )
        launching.launch_run(run)
        ids.append(run.id)
    print(json.dumps({"project": project.id, "runs": ids}))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
