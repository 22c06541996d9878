"""Profiles, seeding, devices and the recorder of claims."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest
import torch

from domainknowledge import experiment


def test_profiles_are_the_three_of_the_design():
    assert list(experiment.PROFILES) == ["smoke", "cpu", "paper"]
    assert experiment.check_profile("cpu").allow_download is False
    assert experiment.check_profile("paper").allow_download is True
    with pytest.raises(ValueError, match="unknown profile 'large'.*smoke, cpu, paper"):
        experiment.check_profile("large")


def test_select_names_the_missing_profile():
    assert experiment.select({"smoke": 1, "cpu": 2, "paper": 3}, "cpu") == 2
    with pytest.raises(ValueError, match="no configuration for profile 'paper'"):
        experiment.select({"smoke": 1, "cpu": 2}, "paper")


def test_same_seed_gives_the_same_numbers():
    experiment.seed_everything(7)
    first = torch.randn(5), torch.nn.Linear(3, 2).weight.detach().clone()
    experiment.seed_everything(7)
    second = torch.randn(5), torch.nn.Linear(3, 2).weight.detach().clone()
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    experiment.seed_everything(8)
    assert not torch.equal(first[0], torch.randn(5))
    with pytest.raises(ValueError, match="non-negative int"):
        experiment.seed_everything(-1)


def test_device_resolution():
    assert experiment.resolve_device("cpu").type == "cpu"
    assert experiment.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        experiment.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            experiment.resolve_device("cuda")


def test_run_records_claims_with_verdicts_and_provenance(tmp_path):
    run = experiment.start("demo", profile="smoke", seed=3, device="cpu", data_root=str(tmp_path))
    run.claim("a", statement="x < 1", source="Eq. 1", thesis_value="0.5", measured="0.4", holds=True)
    run.claim("b", statement="y > 1", source="Tab. 2", thesis_value="2", measured="0.9", holds=False)
    run.claim("c", statement="z", source="Fig. 3", thesis_value="?", measured="–", holds=None)
    with pytest.raises(ValueError, match="recorded twice"):
        run.claim("a", statement="again", source="", thesis_value="", measured="", holds=True)
    run.record("table", {"r": [0.0, 0.1], "mae": [torch.tensor(1.0).item(), 2.0]})
    run.record("gaps", {"nmi_easy": [float("nan"), np.float32(0.5), np.inf]})
    summary = run.summary()
    json.dumps(summary, allow_nan=False)  # everything the pipeline reads back is standard JSON
    assert summary["metrics"]["gaps"]["nmi_easy"] == [None, 0.5, None]
    assert [c["verdict"] for c in summary["claims"]] == ["holds", "does-not-hold", "not-run"]
    assert summary["run"]["profile"] == "smoke" and summary["run"]["seed"] == 3
    assert summary["run"]["device"] == "cpu"
    assert summary["run"]["versions"]["torch"] == metadata.version("torch")
    assert summary["run"]["peak_memory_mib"] > 0


def test_start_rejects_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="unknown profile"):
        experiment.start("demo", profile="huge", seed=0)
    with pytest.raises(FileNotFoundError, match="is not a directory.*--data-root"):
        experiment.start("demo", profile="cpu", seed=0, data_root=str(tmp_path / "missing"))


def test_claims_table_escapes_html():
    claim = experiment.Claim("c", "i", "a < b & c", "Eq. 1", "1", "2", "cpu", "cpu", "holds")
    table = experiment.claims_table_html([claim])
    assert "a &lt; b &amp; c" in table and "✅ holds" in table


def test_importing_the_package_has_no_side_effects():
    code = ("import sys, random; state = random.getstate(); import domainknowledge as dk; "
            "assert random.getstate() == state; "
            "heavy = [m for m in ('torch', 'matplotlib', 'myst_nb') if m in sys.modules]; "
            "assert not heavy, heavy; print(dk.__version__)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr


def test_profile_table_flattens_nested_configs_and_highlights_the_active_profile():
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Inner:
        epochs: int

    @dataclasses.dataclass(frozen=True)
    class Outer:
        grid: tuple
        training: Inner

    configs = {"smoke": Outer((1, 2), Inner(1)), "cpu": Outer(tuple(range(10)), Inner(5))}
    table = experiment.describe_profiles(configs)
    assert list(table.index) == ["grid", "training.epochs"]
    assert table.loc["grid", "cpu"] == "0, 1, ..., 9 (10 values)" and table.loc["grid", "smoke"] == "(1, 2)"
    assert "font-weight: bold" in experiment.profile_table(configs, "cpu").to_html()
    with pytest.raises(ValueError, match="unknown profile"):
        experiment.profile_table(configs, "gpu")
