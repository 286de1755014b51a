"""Refresh the vendored TensorFlow.js runtime in vendor/ from the npm registry.

    python generator/site/explorer/refresh_tfjs.py [VERSION]

Fetches three packages of one version with ``npm pack`` (npm checks each tarball against the
registry's integrity hash): tfjs-core (tensors, gradients), tfjs-backend-cpu and tfjs-layers
(``tf.loadLayersModel``). Copies their minified ES2017 browser bundles into vendor/, and records
the version, the files and their SHA-256 checksums in vendor/tfjs.json, which a test checks.
Nothing else in the site fetches TensorFlow.js: pages load these files from the site itself.

No WebGL backend: measured in Chromium on CNN Explainer's Tiny VGG and its 20 photos, WebGL
gave 7,298 of 258,048 gradient signs (2.8 %) different from TensorFlow's (tiny values where the
exact gradient is zero), the CPU backend none, and its probabilities agree within 4e-6. The
attack direction is the sign of that gradient, so only the CPU backend reproduces the build;
the models are small enough for it (see bench/bench_explorer.py), and it saves 370 kB.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parent / "vendor"
DEFAULT_VERSION = "4.22.0"
# npm package -> its browser bundle, in the order a page loads them (core first).
BUNDLES = {
    "@tensorflow/tfjs-core": "tf-core.es2017.min.js",
    "@tensorflow/tfjs-backend-cpu": "tf-backend-cpu.es2017.min.js",
    "@tensorflow/tfjs-layers": "tf-layers.es2017.min.js",
}
# tfjs-layers is "Apache-2.0 AND MIT": parts of it are ported from Keras, and their source files
# say "Copyright 2018 Google LLC ... governed by an MIT-style license".
LICENCES = ("Apache-2.0", "Apache-2.0 AND MIT")
APACHE_TEXT = Path("/usr/share/common-licenses/Apache-2.0")
MIT_NOTICE = """

------------------------------------------------------------------------------------------------
tf-layers.es2017.min.js (@tensorflow/tfjs-layers, licence "Apache-2.0 AND MIT") contains code
ported from Keras; its source files carry this notice:

Copyright 2018 Google LLC

Use of this source code is governed by an MIT-style license:

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT
OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(package: str, version: str, scratch: Path) -> Path:
    """The unpacked npm tarball of package@version (its package/ folder)."""
    output = subprocess.run(["npm", "pack", f"{package}@{version}", "--silent"], cwd=scratch, check=True,
                            capture_output=True, text=True).stdout.split()[-1]
    target = scratch / package.replace("/", "_")
    with tarfile.open(scratch / output) as archive:
        archive.extractall(target, filter="data")
    return target / "package"


def refresh(version: str) -> dict:
    VENDOR.mkdir(parents=True, exist_ok=True)
    files = {}
    with tempfile.TemporaryDirectory() as scratch:
        for package, bundle in BUNDLES.items():
            unpacked = fetch(package, version, Path(scratch))
            metadata = json.loads((unpacked / "package.json").read_text(encoding="utf-8"))
            if metadata.get("license") not in LICENCES or metadata.get("version") != version:
                sys.exit(f"{package}: licence {metadata.get('license')!r}, version {metadata.get('version')!r}; "
                         f"expected one of {LICENCES} and {version}")
            shutil.copyfile(unpacked / "dist" / bundle, VENDOR / bundle)
            files[bundle] = {"package": package, "licence": metadata["license"], "sha256": sha256(VENDOR / bundle),
                             "bytes": (VENDOR / bundle).stat().st_size}
    # The packages name their licences but ship no copy of the text; Debian's copy of Apache-2.0.
    (VENDOR / "LICENSE").write_text(APACHE_TEXT.read_text(encoding="utf-8") + MIT_NOTICE, encoding="utf-8")
    record = {"name": "TensorFlow.js", "version": version, "licence": "Apache-2.0 AND MIT", "licence_file": "LICENSE",
              "source": "npm registry, npm pack", "load_order": list(BUNDLES.values()), "files": files}
    (VENDOR / "tfjs.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record


if __name__ == "__main__":
    result = refresh(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_VERSION)
    total = sum(entry["bytes"] for entry in result["files"].values())
    print(f"TensorFlow.js {result['version']}: {len(result['files'])} files, {total} bytes in {VENDOR}")
