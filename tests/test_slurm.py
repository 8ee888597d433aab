"""The demo workflow through Snakemake's Slurm executor on a real single-node Slurm cluster.

Needs root and Debian's Slurm and MUNGE (`make slurm-deps`); run with `make test-slurm`. The
fixture starts munged, slurmctld and slurmd (configless, with two fake GPUs so `gpu=1` tags
become real `--gpus=1` requests) and stops them afterwards, leaving nothing running.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from helpers import copy_finished, tiny_config, write_config

pytestmark = [pytest.mark.slow, pytest.mark.slurm]
DAEMONS = ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol"]
TIMING = ["tokens_per_s", "elapsed_s"]


def slurm_conf(folder, host) -> str:
    memory_mb = int(open("/proc/meminfo").readline().split()[1]) // 1024 - 2048
    return f"""\
ClusterName=attnscore-test
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
SlurmctldParameters=enable_configless
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
MinJobAge=3600
GresTypes=gpu
NodeName={host} CPUs={os.cpu_count()} RealMemory={memory_mb} Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    pytest.importorskip(
        "snakemake_executor_plugin_slurm", reason="the Slurm executor plugin is not installed: run `make slurm-deps`"
    )
    missing = [d for d in DAEMONS if not shutil.which(d)]
    if missing or os.geteuid() != 0:
        pytest.skip(f"needs root and Slurm/MUNGE ({', '.join(missing) or 'root'} missing): run `make slurm-deps`")
    if os.path.exists("/run/munge/munge.socket.2"):
        pytest.skip("a munged is already running here; this test starts its own cluster")
    folder, host = tmp_path_factory.mktemp("slurm"), socket.gethostname().split(".")[0]
    for sub in ("state", "spool", "munge"):
        (folder / sub).mkdir(mode=0o700)
    (folder / "munge" / "munge.key").write_bytes(os.urandom(1024))
    (folder / "munge" / "munge.key").chmod(0o600)
    conf = folder / "slurm.conf"
    conf.write_text(slurm_conf(folder, host))
    # Two fake GPUs (any device file will do: nothing opens it), so two one-thread jobs run at once.
    (folder / "gres.conf").write_text("".join(f"NodeName={host} Name=gpu File=/dev/{f}\n" for f in ("null", "zero")))
    os.makedirs("/run/munge", mode=0o755, exist_ok=True)
    munge = folder / "munge"
    subprocess.run(["munged", "--force", f"--key-file={munge}/munge.key", f"--pid-file={munge}/munged.pid",
                    f"--log-file={munge}/munged.log", f"--seed-file={munge}/munged.seed"], check=True)  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "SLURM_CONF"}  # clients use slurmd's configless cache
    try:
        subprocess.run(["slurmctld", "-f", str(conf)], check=True)
        subprocess.run(["slurmd", "--conf-server", host], check=True, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env).stdout.strip()
            if state == "idle":
                break
            time.sleep(1)
        else:
            pytest.fail(f"the Slurm node never became idle (state {state!r}); see {folder}/slurmctld.log")
        yield env
    finally:
        subprocess.run(["scontrol", "shutdown"], env=env, capture_output=True)  # slurmctld and slurmd
        for pidfile in (folder / "slurmd.pid", munge / "munged.pid"):
            if pidfile.exists():
                subprocess.run(["kill", pidfile.read_text().strip()], capture_output=True)
        time.sleep(2)
        shutil.rmtree("/run/slurm", ignore_errors=True)
        shutil.rmtree("/run/munge", ignore_errors=True)


def test_demo_workflow_runs_through_slurm_and_matches_a_local_run(cluster, tiny_experiment, tmp_path):
    """The shared tiny experiment (conftest.py) is the local run; its first seed goes through Slurm."""
    work = copy_finished(tiny_experiment[0], tmp_path)  # the demo corpus in resources/ is shared with it
    # auto: gpu=1 tags on the jobs
    config = write_config(work, "slurm.yaml", tiny_config(experiment="slurm", train={"device": "auto"}))
    # The shipped Slurm profile, shrunk to this machine and told that accounting (sacct) is off.
    profile = yaml.safe_load((work / "profiles" / "slurm" / "config.yaml").read_text())
    profile["default-resources"] = {"runtime": 30, "mem_mb": 1000}
    profile["set-resources"] = {rule: {"mem_mb": 2000} for rule in profile["set-resources"]}
    profile["set-threads"] = {"train": 1, "evaluate": 1, "benchmark": 2, "attention": 1, "samples": 1}  # as locally
    profile.update(
        {"slurm-no-account": True, "slurm-status-command": "squeue", "slurm-init-seconds-before-status-checks": 1}
    )
    (work / "profiles" / "slurm-test").mkdir()
    (work / "profiles" / "slurm-test" / "config.yaml").write_text(yaml.safe_dump(profile))
    cmd = [sys.executable, "-m", "snakemake", "--workflow-profile", "profiles/slurm-test", "--configfile", config]
    result = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=900, env=cluster)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]

    submitted = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log))
    # Every job but the local `all`: tokenize, 2 train, 2 evaluate, 2 benchmark rounds, compare,
    # compare_timings, to_target, 2 attention, compare_attention, samples, plot.
    assert len(submitted) == 15 and "16 of 16 steps (100%) done" in log, log[-3000:]
    train_jobs = re.findall(r"rule train:.*?jobid: (\d+)", log, flags=re.S)
    assert train_jobs
    for job in train_jobs:  # gpu=1 became a real GPU request, granted from the node's fake GPUs
        shown = subprocess.run(
            ["scontrol", "show", "job", submitted[job]], capture_output=True, text=True, env=cluster
        ).stdout
        assert "gres/gpu=1" in shown or "gpu:1" in shown, shown

    for run in ("dot/seed1234", "euclid/seed1234"):
        runs = [
            pd.read_csv(work / "results" / e / "train" / run / "metrics.csv").drop(columns=TIMING)
            for e in ("tiny", "slurm")
        ]
        pd.testing.assert_frame_equal(*runs)
    assert (work / "results" / "slurm" / "summary.md").exists()
