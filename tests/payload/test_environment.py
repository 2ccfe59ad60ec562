"""payload_environment: the site's environment, less the pilot's private variables, plus what a PanDA payload expects.

The facts are pilot3's (PanDAWMS/pilot3, tag 3.7.0.36 unless said otherwise); each test cites the file and line.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from pilotlib.job import Job, parse_job
from pilotlib.payload import PayloadIdentity, parse_queue_environ, payload_environment

SITE = {
    "PATH": "/usr/bin:/bin",
    "SITE_NAME": "EXAMPLE-SITE",
    "VO_ATLAS_SW_DIR": "/cvmfs/atlas.cern.ch/repo/sw",
    "ATLAS_SW_BASE": "/cvmfs",
    "FRONTIER_SERVER": "(serverurl=http://frontier.example:8000/atlr)(proxyurl=http://squid.example:3128)",
    "HARVESTER_ID": "harvester-1",
    "HARVESTER_WORKER_ID": "77",
    "LD_LIBRARY_PATH": "/opt/site/lib",
}


def _job(**fields: str) -> Job:
    return parse_job({"PandaID": "4242", "transformation": "/bin/true", **fields})


def test_site_environment_is_inherited() -> None:
    """Every site variable reaches the payload unchanged: pilot3 starts the payload with ``subprocess.Popen`` and no
    ``env`` (``pilot/util/container.py:90``), so release areas (``VO_ATLAS_SW_DIR``,
    ``pilot/user/atlas/setup.py:131``; ``ATLAS_SW_BASE``, ``setup.py:52``), Frontier/squid settings and
    ``HARVESTER_*`` (``pilot/control/job.py:1422-1425``) are the payload's too."""
    env = payload_environment(_job(), SITE, PayloadIdentity())
    assert {k: env[k] for k in SITE} == SITE


def test_private_and_secret_variables_are_removed() -> None:
    """The pilot's own PanDA credentials are unset for the payload as pilot3 unsets them (``OIDC_AUTH_TOKEN``,
    ``OIDC_AUTH_ORIGIN``, ``PANDA_AUTH_TOKEN``, ``PANDA_AUTH_ORIGIN``: ``pilot/user/atlas/common.py:872-879``;
    ``OIDC_REFRESHED_AUTH_TOKEN``: pilot3 HEAD a090538 ``pilot/user/atlas/common.py:909-919``;
    ``PANDA_AUTH_TOKEN_KEY``: HEAD ``pilot/util/https.py:1123``); a token given by content (``BEARER_TOKEN``, first in
    WLCG token discovery) and pilotlib's own ``PILOTLIB_*`` settings are removed too."""
    private = {"OIDC_AUTH_TOKEN": "pilot.token", "OIDC_AUTH_ORIGIN": "atlas.pilot", "PANDA_AUTH_TOKEN": "t",
               "PANDA_AUTH_ORIGIN": "o", "OIDC_REFRESHED_AUTH_TOKEN": "/x/refreshed", "PANDA_AUTH_TOKEN_KEY": "k",
               "BEARER_TOKEN": "eyJSECRET.CONTENT", "PILOTLIB_DEBUG_SETTING": "1"}
    env = payload_environment(_job(), {**SITE, **private}, PayloadIdentity())
    assert not set(private) & set(env)
    assert "SITE_NAME" in env


def test_job_identity_as_pilot3_exports_it() -> None:
    """``PANDA_RESOURCE``, ``FRONTIER_ID="[<task>_<job>]"``, ``CMSSW_VERSION``, ``PandaID``, ``PanDA_TaskID``,
    ``PanDA_AttemptNr``, ``INDS`` and ``RUCIO_APPID`` as ``pilot/user/atlas/setup.py:396-422`` exports them;
    ``PANDAID`` as ``pilot/control/job.py:2221`` sets it; ``INDS`` skips ``DBRelease`` and ``.lib.`` datasets
    (``pilot/user/atlas/setup.py:199-217``). ``PanDA_JobsetID`` is pilotlib's (pilot3 exports no job set)."""
    job = _job(taskID="17", jobsetID="99", attemptNr="3", processingType="reprocessing",
               inFiles="db.tgz,lib.tgz,EVNT.pool.root", realDatasetsIn="ddo.DBRelease.v1,user.x.lib.1,mc23.EVNT",
               scopeIn="a,b,c", GUID="g1,g2,g3", fsize="1,1,1", checksum="ad:00000001,ad:00000001,ad:00000001")
    env = payload_environment(job, {"PATH": "/bin"}, PayloadIdentity(panda_resource="EXAMPLE_QUEUE"))
    assert {k: env[k] for k in ("PandaID", "PANDAID", "PanDA_TaskID", "PanDA_JobsetID", "PanDA_AttemptNr",
                                "FRONTIER_ID", "CMSSW_VERSION", "INDS", "RUCIO_APPID", "PANDA_RESOURCE")} == {
        "PandaID": "4242", "PANDAID": "4242", "PanDA_TaskID": "17", "PanDA_JobsetID": "99", "PanDA_AttemptNr": "3",
        "FRONTIER_ID": "[17_4242]", "CMSSW_VERSION": "[17_4242]", "INDS": "mc23.EVNT", "RUCIO_APPID": "reprocessing",
        "PANDA_RESOURCE": "EXAMPLE_QUEUE"}


def test_rucio_account_is_the_sites_else_pilot() -> None:
    """``RUCIO_ACCOUNT`` is the site's when set, else ``pilot`` (``pilot/user/atlas/setup.py:423``)."""
    assert payload_environment(_job(), {}, PayloadIdentity())["RUCIO_ACCOUNT"] == "pilot"
    assert payload_environment(_job(), {"RUCIO_ACCOUNT": "site"}, PayloadIdentity())["RUCIO_ACCOUNT"] == "site"


def test_single_core_job_gets_no_athena_proc_number() -> None:
    """A single-core job: ``ATHENA_PROC_NUMBER_JOB`` and ``ATHENA_CORE_NUMBER`` are the job's core count
    (``pilot/user/atlas/common.py:2724-2726``) but ``ATHENA_PROC_NUMBER`` is exported only for more than one core
    (``pilot/user/atlas/common.py:763-766``): a set ``ATHENA_PROC_NUMBER`` makes Athena run multi-process."""
    env = payload_environment(_job(coreCount="1"), {}, PayloadIdentity())
    assert "ATHENA_PROC_NUMBER" not in env
    assert (env["ATHENA_PROC_NUMBER_JOB"], env["ATHENA_CORE_NUMBER"]) == ("1", "1")


def test_multi_core_job_gets_its_core_count() -> None:
    """A multi-core job without a site value: all three are the job's ``coreCount``
    (``pilot/user/atlas/common.py:763-766``, ``2724-2726``)."""
    env = payload_environment(_job(coreCount="8"), {}, PayloadIdentity())
    assert (env["ATHENA_PROC_NUMBER"], env["ATHENA_PROC_NUMBER_JOB"], env["ATHENA_CORE_NUMBER"]) == ("8", "8", "8")


def test_site_athena_proc_number_is_kept() -> None:
    """A site's (a wrapper's) ``ATHENA_PROC_NUMBER`` is never overwritten; ``ATHENA_CORE_NUMBER`` takes its value
    and a stale ``ATHENA_PROC_NUMBER_JOB`` is dropped (``pilot/user/atlas/common.py:2702-2723``)."""
    base = {"ATHENA_PROC_NUMBER": "4", "ATHENA_PROC_NUMBER_JOB": "2", "ATHENA_CORE_NUMBER": "2"}
    env = payload_environment(_job(coreCount="8"), base, PayloadIdentity())
    assert (env["ATHENA_PROC_NUMBER"], env["ATHENA_CORE_NUMBER"]) == ("4", "4")
    assert "ATHENA_PROC_NUMBER_JOB" not in env


def test_event_service_job_always_gets_athena_proc_number() -> None:
    """An event-service job exports ``ATHENA_PROC_NUMBER`` even for one core
    (``pilot/user/atlas/common.py:675-681``)."""
    env = payload_environment(_job(coreCount="1", eventService="True"), {}, PayloadIdentity())
    assert (env["ATHENA_PROC_NUMBER"], env["ATHENA_CORE_NUMBER"]) == ("1", "1")


def test_merge_transform_unsets_the_sites_core_numbers() -> None:
    """``Merge_tf`` with a site ``ATHENA_PROC_NUMBER``: both core variables are unset
    (``pilot/user/atlas/setup.py:404-407``)."""
    env = payload_environment(_job(transformation="Merge_tf.py", coreCount="8"), {"ATHENA_PROC_NUMBER": "8"},
                              PayloadIdentity())
    assert "ATHENA_PROC_NUMBER" not in env and "ATHENA_CORE_NUMBER" not in env


def test_user_job_gets_root_settings() -> None:
    """A user analysis job gets ``ROOT_TTREECACHE_SIZE=1`` and ``ROOTCORE_NCPUS`` from ``ATHENA_PROC_NUMBER``, else 1
    (``pilot/user/atlas/setup.py:409-417``)."""
    env = payload_environment(_job(prodSourceLabel="user", coreCount="4"), {}, PayloadIdentity())
    assert (env["ROOT_TTREECACHE_SIZE"], env["ROOTCORE_NCPUS"]) == ("1", "4")
    single = payload_environment(_job(prodSourceLabel="user"), {}, PayloadIdentity())
    assert single["ROOTCORE_NCPUS"] == "1"
    assert "ROOT_TTREECACHE_SIZE" not in payload_environment(_job(prodSourceLabel="managed"), {}, PayloadIdentity())


def test_credentials_are_paths_that_win_over_the_sites(tmp_path: Path) -> None:
    """The proxy, token file and CA directory given to the pilot become ``X509_USER_PROXY`` (a path, as
    ``pilot/user/generic/common.py:96-97`` exports it), ``BEARER_TOKEN_FILE`` (WLCG token discovery) and
    ``X509_CERT_DIR`` (pilot3's CA directory after ``--capath``, ``pilot/util/https.py:82-98``), replacing the
    inherited values; without them the site's values stay."""
    proxy, token, ca = tmp_path / "x509up_u1", tmp_path / "bt_u1", tmp_path / "certificates"
    base = {"X509_USER_PROXY": "/site/proxy", "X509_CERT_DIR": "/site/certs", "BEARER_TOKEN_FILE": "/site/token"}
    env = payload_environment(_job(), base, PayloadIdentity(proxy_path=proxy, token_path=token, ca_path=ca))
    assert (env["X509_USER_PROXY"], env["BEARER_TOKEN_FILE"], env["X509_CERT_DIR"]) == (str(proxy), str(token),
                                                                                        str(ca))
    kept = payload_environment(_job(), base, PayloadIdentity())
    assert {k: kept[k] for k in base} == base


def test_base_environment_is_not_changed() -> None:
    """A pure function: the base mapping (even a read-only one) is left as it was; the result is a new dict."""
    base = MappingProxyType({**SITE, "BEARER_TOKEN": "secret", "ATHENA_PROC_NUMBER": "4"})
    before = dict(base)
    env = payload_environment(_job(transformation="Merge_tf.py"), base, PayloadIdentity())
    assert dict(base) == before and env is not base


def test_queue_environ_is_parsed_as_pilot3_reads_it() -> None:
    """The queue's ``environ`` field is ``KEY=VALUE`` pairs; a value runs up to the next ``KEY=`` and may hold
    spaces (pilot3 ``pilot/user/atlas/common.py:601-610``, ``get_key_values``); surrounding quotes and a trailing
    ``;`` (pilot3 adds its own, ``common.py:630-633``) are dropped."""
    text = 'FRONTIER_SERVER=(serverurl=http://f:8000/atlr) ATLAS_LOCAL=/opt/a b SQUID="http://s:3128"; X=1'
    assert parse_queue_environ(text) == {"FRONTIER_SERVER": "(serverurl=http://f:8000/atlr)",
                                         "ATLAS_LOCAL": "/opt/a b", "SQUID": "http://s:3128", "X": "1"}
    assert parse_queue_environ("") == {}


def test_queue_environ_is_between_the_site_and_the_pilot() -> None:
    """The queue's variables are exported before pilot3's own (``pilot/user/atlas/common.py:530-535``): they override
    the site's, and pilot3's (``PandaID``) override them; a private name from the queue is dropped like the site's."""
    env = payload_environment(_job(), {"SQUID": "site", "KEEP": "k"}, PayloadIdentity(),
                              queue_environ={"SQUID": "queue", "PandaID": "1", "BEARER_TOKEN": "secret"})
    assert (env["SQUID"], env["KEEP"], env["PandaID"]) == ("queue", "k", "4242")
    assert "BEARER_TOKEN" not in env
