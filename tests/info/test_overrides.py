"""Per-job overrides taken from a job's parameters (``--overwriteQueueData``, ``--overwriteStorageData``)."""

from __future__ import annotations

from typing import Any

import pytest

from pilotlib.errors import ErrorCode
from pilotlib.info import Activity, BadQueuedataError, InfoService, extract_overrides

from .test_service import FakeSource


def test_no_overrides_leaves_parameters_alone() -> None:
    """Job parameters without the options come back byte for byte, with empty overrides."""
    pars = "Reco_tf.py --inputAODFile='a b.root'  --maxEvents=10"
    found = extract_overrides(pars)
    assert found.job_pars == pars and not found.queue and not found.storages


def test_overrides_are_extracted_and_removed() -> None:
    """Both spellings (``=value`` and a separate value) are read; the options disappear from the parameters."""
    pars = (
        "Sim_tf.py --maxEvents=5 --overwriteQueueData=\"{'maxrss': 4000, 'acopytools': {'pr': ['xrdcp']}}\" "
        "--overwriteStorageData '{\"X_DATADISK\": {\"state\": \"ACTIVE\"}}' --overwriteQueuedata={old} --seed 3"
    )
    found = extract_overrides(pars)
    assert found.queue["maxrss"] == 4000
    assert found.queue["acopytools"]["pr"] == ("xrdcp",)  # type: ignore[index]
    assert found.storages["X_DATADISK"]["state"] == "ACTIVE"
    assert found.job_pars == "Sim_tf.py --maxEvents=5 --seed 3"


@pytest.mark.parametrize(
    "pars",
    ["--overwriteQueueData=\"{'maxrss': \" x", "--overwriteQueueData=[1,2]", "--overwriteStorageData='{\"S\": 1}'"],
)
def test_bad_overrides_are_queuedatanotok(pars: str) -> None:
    """An unsplittable parameter string or a value that is not an object raises BadQueuedataError (1117)."""
    with pytest.raises(BadQueuedataError) as err:
        extract_overrides(pars)
    assert err.value.code == ErrorCode.QUEUEDATANOTOK


def test_job_overrides_win(ucore: dict[str, Any], ddmendpoints: dict[str, Any]) -> None:
    """A service for a job applies the job's overrides above the pilot's own, for queue and storages."""
    info = InfoService(
        [FakeSource("q", ucore)],
        [FakeSource("ddm", ddmendpoints)],
        pandaqueue="CERN-PROD_UCORE",
        queue_overrides=[{"maxrss": 1, "acopytools": {"read_lan": ["mv"]}}],
    )
    job = info.for_job(extract_overrides(
        "--overwriteQueueData=\"{'maxrss':2}\" --overwriteStorageData='{\"OLD-SITE_DATADISK\":{\"state\":\"ACTIVE\"}}'"
    ))
    assert job.queue().maxrss == 2 and job.copytools(Activity.READ) == ("mv",)
    assert job.storage("OLD-SITE_DATADISK").is_active
    assert info.queue().maxrss == 1 and not info.storage("OLD-SITE_DATADISK").is_active
