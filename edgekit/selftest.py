"""A bundle's self-test vectors: a few held-out inputs with their reference outputs.

Used wherever an artifact must prove itself after it left the compile: `edgekit verify`,
`bench` (as its input), and the on-device suite. numpy + the artifact's runtime only.
"""
from __future__ import annotations

from pathlib import Path

from .manifest import Artifact, Manifest
from .samples import load_samples


def selftest_feeds(bundle_dir, manifest: Manifest, artifact: Artifact | None = None) -> tuple[list[dict], list[dict]]:
    """(inputs, reference outputs) for this artifact (its own if it is another model's, else the
    bundle's); empty lists if there are none."""
    entry = (artifact.selftest if artifact is not None and artifact.selftest else None) or manifest.selftest
    if not entry:
        return [], []
    inputs, refs, _ = load_samples(Path(bundle_dir) / entry["path"])
    from .errors import BundleError
    from .manifest import tensor_name_ok

    bad = [n for sample in (inputs[:1] + refs[:1]) for n in sample if not tensor_name_ok(n)]
    if bad:  # the names become file names in app packages: held to the manifest's own rule
        raise BundleError(f"{entry['path']}: self-test tensor name(s) {[b[:60] for b in bad][:3]} are not valid "
                          "tensor names; refused")
    return inputs, refs


def check_artifact(bundle_dir, manifest: Manifest, artifact: Artifact, keep: list | None = None) -> tuple[dict, list[str]]:
    """Run the artifact on this machine's runtime over the self-test vectors; return (metrics, failures)
    judged with the tolerance the artifact was verified against. `keep`: a list that receives the
    artifact's outputs, one {name: array} per vector (to compare two machines' kernels)."""
    from .runtimes import open_runner

    # callers opened the bundle, so its hashes are checked, and pass the artifacts they may use
    with open_runner(artifact.runtime, Path(bundle_dir) / artifact.path, None, artifact.inputs, artifact.outputs,
                     artifact.input_layout) as runner:
        return check_runner(runner, bundle_dir, manifest, artifact, keep)


def check_runner(runner, bundle_dir, manifest: Manifest, artifact: Artifact, keep: list | None = None) -> tuple[dict, list[str]]:
    """The self-test of an already loaded runner: (metrics per output, failures against its tolerance)."""
    from .profiles import Tolerance
    from .verify import judge, per_output

    inputs, refs = selftest_feeds(bundle_dir, manifest, artifact)
    if not inputs:
        return {}, ["the bundle has no self-test vectors"]
    try:
        got = [runner.run(x) for x in inputs]
    except Exception as e:  # the artifact throws on its own self-test: a failed check, not a crash
        return {}, [f"raised on the self-test vectors: {type(e).__name__}: "
                    f"{(str(e).strip().splitlines() or [''])[0][:200]}"]
    if keep is not None:
        keep.extend(got)
    classifier = manifest.model.get("task") == "classification"
    metrics = per_output(refs, got, [o.name for o in artifact.outputs], classifier)
    return metrics, judge(metrics, Tolerance(**artifact.verification.tolerance))
