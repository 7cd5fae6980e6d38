"""The benchmark runs end to end and prints its ratio (its numbers are read by people, not asserted)."""
import re
import subprocess
import sys


def test_bench_prints_the_library_to_plain_ratio_and_writes_the_table(tmp_path):
    out = tmp_path / "bench.txt"
    result = subprocess.run([sys.executable, "-m", "condgan_lib.bench", "--steps", "3", "--skip-accuracy",
                             "--device", "cpu", "--threads", "1", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert re.search(r"plain eager loop\s+\d+ images/s", result.stdout)
    assert re.search(r"library gan_step\s+\d+ images/s\s+ratio \d+\.\d\d", result.stdout)
    assert re.search(r"peak memory\s+\d+ MB", result.stdout)
    table = out.read_text()
    assert table == result.stdout  # the stored artifact is exactly what was printed
    assert table.startswith("command:  python -m condgan_lib.bench --steps 3")
    assert re.search(r"^hardware: .*CPU, 1 threads", table, re.M)
