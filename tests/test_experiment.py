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
    run.claim("b", statement="y > 1", source="Tab. 2", thesis_value="2", measured="0.9", holds=False,
              cause="genuine", diagnosis="y is 0.9")
    run.claim("c", statement="z", source="Fig. 3", thesis_value="?", measured="–", holds=None,
              cause="not-at-this-profile", diagnosis="needs the real data")
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
    assert "a &lt; b &amp; c" in table and "dk-holds'>holds<" in table


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


def test_a_claim_that_misses_needs_a_known_cause_and_a_diagnosis(tmp_path):
    run = experiment.start("t", profile="smoke", seed=0, device="cpu")
    with pytest.raises(ValueError, match="does not hold but gives no cause"):
        run.claim("a", statement="s", source="Tab. 1", thesis_value="1", measured="0", holds=False)
    with pytest.raises(ValueError, match="not run but gives an unknown cause 'bad luck'"):
        run.claim("b", statement="s", source="Tab. 1", thesis_value="1", measured="–", holds=None,
                  cause="bad luck", diagnosis="x")
    with pytest.raises(ValueError, match="no diagnosis"):
        run.claim("c", statement="s", source="Tab. 1", thesis_value="1", measured="0", holds=False, cause="budget")
    held = run.claim("d", statement="s", source="Tab. 1", thesis_value="1", measured="1", holds=True,
                     cause="budget", diagnosis="dropped when it holds")
    assert (held.verdict, held.cause, held.diagnosis) == ("holds", "", "")
    missed = run.claim("e", statement="s", source="Tab. 1", thesis_value="1", measured="0", holds=False,
                       cause="stand-in", diagnosis="the probe reads shape at chance (0.17)")
    assert (missed.verdict, missed.cause) == ("does-not-hold", "stand-in")


def test_checks_are_kept_apart_and_gate_the_claims_that_require_them():
    run = experiment.start("t", profile="smoke", seed=0, device="cpu")
    run.check("control", kind="positive-control", statement="shape is decodable", expected="> 0.5",
              measured="0.2", passes=False)
    run.check("identity", kind="known-answer", statement="S = I is CE", expected="0", measured="1e-17",
              passes=True)
    with pytest.raises(ValueError, match="unknown kind"):
        run.check("x", kind="vibe", statement="", expected="", measured="", passes=True)
    with pytest.raises(ValueError, match="requires check.*'missing'"):
        run.claim("a", statement="s", source="", thesis_value="", measured="", holds=True, requires=["missing"])
    gated = run.claim("b", statement="s", source="Tab. 1", thesis_value="1", measured="1", holds=True,
                      requires=["control", "identity"])
    assert gated.verdict == "not-run" and gated.cause == "control-failed"
    assert "shape is decodable" in gated.diagnosis and "0.2" in gated.diagnosis
    assert run.passed("identity") and not run.passed("control")
    summary = run.summary()
    assert [c["id"] for c in summary["checks"]] == ["control", "identity"]
    assert [c["id"] for c in summary["claims"]] == ["b"]


def test_page_tables_use_text_badges_not_emoji():
    run = experiment.start("t", profile="smoke", seed=0, device="cpu")
    run.check("k", kind="axiom", statement="complete", expected="0", measured="0", passes=True)
    run.claim("c", statement="s", source="Tab. 1", thesis_value="1", measured="0", holds=False, cause="genuine",
              diagnosis="see Fig. 1")
    page = experiment.checks_table_html(run.checks) + experiment.claims_table_html(run.claims)
    assert "dk-badge dk-does-not-hold" in page and "dk-badge dk-cause" in page and "see Fig. 1" in page
    assert not any(ord(ch) > 0x2400 for ch in page)


def test_a_dry_run_caps_loop_counts_and_nothing_else():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Inner:
        epochs: int
        image_size: int

    @dataclass(frozen=True)
    class Outer:
        trials: int
        seeds: tuple
        training: Inner
        shuffle: bool = True

    configs = {"paper": Outer(trials=50, seeds=(0, 1, 2), training=Inner(epochs=100, image_size=224))}
    capped = experiment.select(configs, "paper", dry_run=True)
    assert capped == Outer(trials=experiment.DRY_RUN_CAPS["trials"], seeds=(0,),
                           training=Inner(epochs=1, image_size=224))
    assert experiment.select(configs, "paper") is configs["paper"]


def test_the_pipeline_refuses_a_dry_run_outside_paper():
    from domainknowledge import book

    with pytest.raises(book.PipelineError, match="--profile paper"):
        book.chapter_parameters("cpu", 0, "cpu", None, dry_run=True)
    assert book.chapter_parameters("paper", 0, "cpu", None, dry_run=True)["dry_run"] is True
