"""pytest configuration shared by the unit tests and nbval.

nbval compares the text outputs of every notebook cell with the stored ones; pictures, HTML (animations)
and widget views are regenerated but not compared byte for byte.
"""


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += (
            "image/png", "image/svg+xml", "text/html", "application/javascript",
            "application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json",
        )
