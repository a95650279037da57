"""Per-operator profiles, roofline numbers and the HTML report, rendered in a real headless Chromium."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import MOBILE, edgekit, needs

GALLERY = Path(__file__).parent / "gallery" / "awkward.py"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="not installed: chromium (Debian package; "
                                    "scripts/setup-env.sh dev installs it from scripts/apt-dev.txt)")


def bench(bundle, artifact, tmp_path, *extra) -> dict:
    out = tmp_path / f"{artifact}.json"
    edgekit("bench", bundle, "--artifact", artifact, "--profile", "--json", out, "--min-runs", "20",
            "--min-time", "0.5", *extra, check=True)
    return json.loads(out.read_text())


def check_profile(r: dict, expect_ops: set[str]) -> None:
    p = r["profile"]
    # the operators' own times account for most of the (separately measured, unprofiled) median
    # (two separate runs, one profiled: a wide window; measured here 1.06 ORT and 0.95 ExecuTorch on MiniLM)
    assert 0.5 <= p["coverage_of_p50"] <= 2.0, (p["coverage_of_p50"], r["latency_ms"]["p50"], p["ops_ms_per_run"])
    top = {o["op"] for o in p["ops"][:3]}
    assert top & expect_ops, top
    assert abs(sum(o["share"] for o in p["ops"]) - 1.0) < 1e-6 and all(o["count"] >= 1 for o in p["ops"][:5])


def check_roofline(r: dict, flops: int) -> None:
    rf = r["roofline"]
    assert rf["flops"] == flops  # counted on the graph at compile time
    assert rf["gflops_per_s"] == pytest.approx(flops / (r["latency_ms"]["p50"] / 1e3) / 1e9)
    assert 0 < rf["pct_of_peak"] <= 100 and rf["peak_gflops_1thread"] > 1  # measured here, cached
    assert rf["pct_of_peak"] == pytest.approx(100 * rf["gflops_per_s"] / rf["peak_gflops_1thread"])


# Matmul FLOPs of one MiniLM layer at its opt length (32 tokens, hidden 384, FFN 1536), 2 per
# multiply-add: Q, K, V, O (4 x 2*32*384*384) + FFN (2 x 2*32*384*1536) + attention (2 x 2*32*32*384).
MINILM_LAYER_FLOPS = 4 * 2 * 32 * 384 * 384 + 2 * 2 * 32 * 384 * 1536 + 2 * 2 * 32 * 32 * 384
MINILM_FLOPS = 6 * MINILM_LAYER_FLOPS  # 688_914_432: the same count LiteRT's and ExecuTorch's coverage counters make
MINILM_L3_FLOPS = 3 * MINILM_LAYER_FLOPS


@pytest.mark.timing
@pytest.mark.onnxruntime
def test_onnxruntime_profile_and_roofline(minilm_bundle, tmp_path):
    r = bench(minilm_bundle, "onnxruntime-fp32", tmp_path)
    check_profile(r, {"MatMul", "Attention"})
    check_roofline(r, MINILM_FLOPS)


@needs(*MOBILE)
@pytest.mark.timing
@pytest.mark.executorch
def test_executorch_profile_shows_xnnpack_and_portable_kernels(minilm_l3_android, tmp_path):
    r = bench(minilm_l3_android, "executorch-fp32", tmp_path)
    check_profile(r, {"Fully Connected (NC, F32) GEMM (XNNPACK)"})
    ops = {o["op"] for o in r["profile"]["ops"]}
    assert any(o.endswith("(portable)") for o in ops)  # what XNNPACK left behind, timed too
    check_roofline(r, MINILM_L3_FLOPS)
    assert r["delegation"]["flops_share"] == 1.0


def test_a_runtime_without_profiler_says_so(digits_bundle, tmp_path):
    p = edgekit("bench", digits_bundle, "--artifact", "torchscript-lite-fp32", "--profile", "--min-runs", "5",
                "--min-time", "0.1")
    assert p.returncode == 0 and "exposes no per-operator profiler" in p.stderr


def test_pareto_front():
    from edgekit.report import pareto

    # (latency, size, quality): c is dominated by a; b trades size for speed; d is worse on every axis
    pts = [(1.0, 10.0, 0.99), (2.0, 5.0, 0.99), (1.5, 12.0, 0.98), (3.0, 20.0, 0.90)]
    assert pareto(pts) == [True, True, False, False]


@needs_chromium
@needs(*MOBILE)
@pytest.mark.chromium
@pytest.mark.onnxruntime
@pytest.mark.litert
@pytest.mark.executorch
def test_report_renders_in_chromium_with_numbers_from_the_bench_json(digits_bundle, digits_android, tmp_path):
    """Two targets (cpu, android), two precisions (fp32, int8), and a bundle whose LiteRT candidates
    were refused by the pre-flight check (they must show as not built, with why)."""
    refused = tmp_path / "bucketize-rpi"
    edgekit("compile", "--model", f"{GALLERY}:bucketize", "--target", "rpi", "--out", refused)  # exit 12
    page, md = tmp_path / "report.html", tmp_path / "summary.md"
    edgekit("report", digits_bundle, digits_android, refused, "--html", page, "--markdown", md,
            "--min-runs", "20", "--min-time", "0.2", check=True)
    results = json.loads(page.with_suffix(".bench.json").read_text())["results"]
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained: nothing to fetch
    # every table row's p50 is the bench JSON's, exactly
    rows = re.findall(r'<tr data-artifact="([^"]+)" data-bundle="([^"]+)" data-p50="([^"]+)">', text)
    by_key = {(r["artifact"], r["bundle"]): r for r in results}
    assert len(rows) == len(results) == 3 + 5 + 1
    for art, bundle, p50 in rows:
        r = by_key[(art, bundle)]
        assert float(p50) == r["latency_ms"]["p50"]
        assert f"<td>{r['latency_ms']['p50']:.3f}</td>" in text
    assert {r["precision"] for r in results} == {"fp32", "int8"}
    assert "not built" in text and "aten.bucketize.Tensor" in text  # verification not run, and why
    assert "% peak" in text and all(r["roofline"]["pct_of_peak"] > 0 for r in results)
    # A real browser decodes every plot and shows the table
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                          "--disable-background-networking", "--virtual-time-budget=5000", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    expected = int(re.search(r'data-plots-expected="(\d+)"', body).group(1))
    assert expected == 4 and f'data-plots-rendered="{expected}"' in body, body
    assert f'data-table-rows="{len(results)}"' in body
    shot = tmp_path / "report.png"  # for a human: the test's tmp folder keeps it
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--hide-scrollbars", "--window-size=1200,2600", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 50_000
    summary = md.read_text()
    assert summary.startswith("| model | target | artifact") and summary.count("| digits |") == 8
