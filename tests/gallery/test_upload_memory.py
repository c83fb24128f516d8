"""Peak memory of the upload check: a 75 kB PNG of 6300×6300 16-bit grey pixels once made the web
process peak at ~1.4 GiB (float64 copies of 40 megapixels). Measured in a fresh process, since
Pillow's buffers are invisible to tracemalloc."""
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIDE = 6300
MEASURE = """
import json, os, resource, sys
import django
django.setup()
from django.core.files.uploadedfile import SimpleUploadedFile
from gallery import images
data = open(sys.argv[1], "rb").read()
upload = SimpleUploadedFile("big.png", data, content_type="image/png")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image = images.read_upload(upload)
images.stored_copy(image)
images.thumbnail_of(image)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"size": image.size, "mode": image.mode, "peak": (after - before) * 1024}))
"""


def sixteen_bit_black_png(side):
    """A 16-bit greyscale PNG of side×side zeros, compressed row by row (tens of kilobytes)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    compressor = zlib.compressobj(9)
    rows = (b"\0" * (2 * side + 1)) * 100
    idat = b"".join(compressor.compress(rows) for _ in range(side // 100)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_a_40_megapixel_16_bit_upload_peaks_under_four_times_its_8_bit_rgb_size(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(sixteen_bit_black_png(SIDE))
    assert path.stat().st_size < 200_000
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gallery.settings", "DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout.splitlines()[-1])
    assert measured["size"] == [SIDE, SIDE] and measured["mode"] == "RGB"
    peak = measured["peak"]
    rgb_bytes = SIDE * SIDE * 3
    assert peak < 4 * rgb_bytes, f"peak {peak / 2**20:.0f} MiB, limit {4 * rgb_bytes / 2**20:.0f} MiB"
