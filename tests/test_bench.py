"""The benchmark runs end to end and prints its ratio (its numbers are read by people, not asserted)."""
import re
import subprocess
import sys


def test_bench_prints_the_library_to_plain_ratio():
    result = subprocess.run([sys.executable, "-m", "condgan_lib.bench", "--steps", "3", "--skip-accuracy",
                             "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert re.search(r"plain eager loop\s+\d+ images/s", result.stdout)
    assert re.search(r"library gan_step\s+\d+ images/s\s+ratio \d+\.\d\d", result.stdout)
    assert re.search(r"peak memory\s+\d+ MB", result.stdout)
