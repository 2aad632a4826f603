#!/usr/bin/env python3
"""Tests of scripts/package, with a stand-in executable (no release build): the exact file
list of the zip, and the executable bit of `handler` in its zip entry. Standard library only.

Run: python3 scripts/test_package.py
"""

import os
import pathlib
import shutil
import stat
import subprocess
import tempfile
import unittest
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "scripts" / "package"
BASE_LAYOUT = [
    "PurgeHttp/function.json",
    "PurgeQueue/function.json",
    "PurgeTimer/function.json",
    "handler",
    "host.json",
]


def zippers():
    """The zip back ends to test: Python always, `zip` when installed."""
    found = ["python"]
    if shutil.which("zip"):
        found.append("zip")
    return found


class PackageTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="package-test-"))
        self.addCleanup(shutil.rmtree, self.tmp)
        self.stand_in = self.tmp / "stand-in"
        self.stand_in.write_text("#!/bin/sh\necho stand-in handler\n")
        self.stand_in.chmod(0o644)  # not executable: the package must make it so

    def copy_of_repo(self):
        """A copy of the files scripts/package reads, so optional files can be added."""
        copy = self.tmp / "repo"
        (copy / "scripts").mkdir(parents=True)
        shutil.copy2(PACKAGE, copy / "scripts" / "package")
        shutil.copy2(ROOT / "host.json", copy / "host.json")
        for function in ("PurgeTimer", "PurgeHttp", "PurgeQueue"):
            (copy / function).mkdir()
            shutil.copy2(ROOT / function / "function.json", copy / function / "function.json")
        return copy

    def package(self, script, zipper, *args, cwd=None):
        out = self.tmp / f"{zipper}.zip"
        env = dict(os.environ, PACKAGE_ZIPPER=zipper)
        result = subprocess.run(
            [str(script), "--binary", str(self.stand_in), "--out", str(out), *args],
            cwd=cwd or self.tmp,
            env=env,
            capture_output=True,
            text=True,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        return zipfile.ZipFile(out)

    def assert_layout(self, archive, expected):
        self.assertEqual(sorted(archive.namelist()), sorted(expected))
        handler = archive.getinfo("handler")
        mode = handler.external_attr >> 16
        self.assertEqual(handler.create_system, 3, "entry must carry Unix attributes")
        self.assertTrue(mode & stat.S_IXUSR, f"handler is not executable: {oct(mode)}")
        self.assertEqual(stat.S_IMODE(mode), 0o755)
        self.assertEqual(archive.read("handler"), self.stand_in.read_bytes())
        self.assertEqual(archive.read("host.json"), (ROOT / "host.json").read_bytes())

    def test_layout_of_the_repository(self):
        for zipper in zippers():
            with self.subTest(zipper=zipper):
                archive = self.package(PACKAGE, zipper)
                expected = list(BASE_LAYOUT)
                expected += [f for f in ("policy.schema.json", "policy.json") if (ROOT / f).is_file()]
                self.assert_layout(archive, expected)

    def test_policy_files_are_included_when_present(self):
        repo = self.copy_of_repo()
        (repo / "policy.schema.json").write_text("{}\n")
        (repo / "policy.json").write_text('{"rules": []}\n')
        (repo / "README.md").write_text("not packaged\n")
        for zipper in zippers():
            with self.subTest(zipper=zipper):
                archive = self.package(repo / "scripts" / "package", zipper)
                self.assert_layout(archive, BASE_LAYOUT + ["policy.json", "policy.schema.json"])

    def test_relative_paths_are_relative_to_the_caller(self):
        archive_dir = self.tmp / "elsewhere"
        archive_dir.mkdir()
        result = subprocess.run(
            [str(PACKAGE), "--binary", "../stand-in", "--out", "pkg.zip"],
            cwd=archive_dir,
            env=dict(os.environ, PACKAGE_ZIPPER="python"),
            capture_output=True,
            text=True,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("handler", zipfile.ZipFile(archive_dir / "pkg.zip").namelist())

    def test_missing_binary_fails(self):
        result = subprocess.run(
            [str(PACKAGE), "--binary", str(self.tmp / "nope"), "--out", str(self.tmp / "x.zip")],
            capture_output=True,
            text=True,
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("no binary", result.stderr)
        self.assertFalse((self.tmp / "x.zip").exists())


if __name__ == "__main__":
    unittest.main(verbosity=2)
