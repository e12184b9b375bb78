"""Deploy fixtures: the sample app's repository, and the provisioner's parts built as
its own tests build them. The machinery is in tests/support."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.provisioner.conftest import make_parts
from tests.support.deploy import AppRepo


@pytest.fixture
def app_repo(tmp_path: Path) -> AppRepo:
    return AppRepo(tmp_path)


__all__ = ["make_parts"]
