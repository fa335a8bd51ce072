"""The original pipeline's metadata folder is found in every form a distribution's metadata takes on a path."""

from __future__ import annotations

import sys

import pytest

from hdmea._other_install import original_distribution


@pytest.mark.parametrize("folder", ["hdmea-0.3.1.dist-info", "HDMEA-0.3.1.dist-info", "hdmea-0.3.1-py3.11.egg-info",
                                    "hdmea.egg-info"])
def test_each_metadata_folder_form_is_found_with_its_version(tmp_path, monkeypatch, folder):
    meta = tmp_path / folder
    meta.mkdir()
    (meta / ("METADATA" if folder.endswith("dist-info") else "PKG-INFO")).write_text(
        "Metadata-Version: 2.1\nName: hdmea\nVersion: 0.3.1\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    dist = original_distribution()
    assert dist is not None and dist.version == "0.3.1"


@pytest.mark.parametrize("folder", ["hdmea_tools-1.0.dist-info", "hdmeax-1.0.dist-info", "hdmea-1.0.txt"])
def test_other_names_are_not_the_original(tmp_path, monkeypatch, folder):
    (tmp_path / folder).mkdir()
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    assert original_distribution() is None
