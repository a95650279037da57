"""`edgekit compile`: model -> verified bundle for a target."""
from __future__ import annotations

import sys

from ..errors import UsageError
from ..bench import bench_all, options_from
from ..converters.qat import STEPS as QAT_STEPS
from .common import add_bench_opts, add_input_opt, positive_int, summary, whole_number, write_json


def add_parser(sub) -> None:
    c = sub.add_parser("compile", help="model -> verified bundle for a target")
    c.add_argument("--model", help="builtin:NAME | file.py:factory | pkg.module:factory | model.onnx | model.pt2 "
                                   "(default builtin:digits)")
    c.add_argument("--target", required=True, help="target profile (see `edgekit targets`)")
    c.add_argument("--out", help="bundle folder (default build/MODEL-TARGET)")
    c.add_argument("--weights", help="state dict (.pt/.pth) for a factory's module; loaded weights-only")
    add_input_opt(c)
    c.add_argument("--verify-data", metavar="PATH", help="real held-out inputs to verify every artifact on, in any "
                   "--calibration form (.npz named like the inputs, .npy, image folder, .txt); replaces the source's own "
                   "or made-up ones; required for .onnx models with integer inputs (never invented)")
    c.add_argument("--example", metavar="PATH", help="one real input (the first sample of PATH, any --calibration "
                   "form) to build and optimize artifacts at, instead of the source's own or a made-up one; an .onnx "
                   "source's made-up verification inputs then copy its value ranges")
    c.add_argument("--fallback-model", help="a different (e.g. smaller) model with the same inputs/outputs, compiled "
                                            "and verified as the last fallback")
    c.add_argument("--calibration", help="representative inputs for INT8: a .npy (one input), an .npz (arrays named "
                   "like the inputs) or a folder of them, a folder of images (the model's recorded preprocessing), "
                   "or a .txt file (one sample per line, the model's tokenizer); default: the model's own "
                   "calibration set, else its example")
    c.add_argument("--layout", choices=["nchw", "nhwc"], default="nchw",
                   help="input layout of LiteRT artifacts: nhwc makes 4-D inputs channel-last (default nchw, as the model)")
    c.add_argument("--precision", help="build only this precision's candidates (fp32, int8, fp16), including those the "
                   "target builds on request only (e.g. cpu's ExecuTorch, LiteRT and ONNX Runtime INT8); auto: every "
                   "candidate. Where this host is the target (cpu) they are timed here and the fastest verified one "
                   "becomes primary. Default: the target's default set, in its preference order")
    c.add_argument("--calibration-method", choices=["minmax", "percentile", "entropy", "mse"],
                   help="how INT8 activation ranges are chosen, mapped onto each quantizer's own calibrators (ONNX "
                   "Runtime: minmax, percentile, entropy; PT2E: mse); a candidate whose quantizer lacks it is skipped "
                   "before any work, saying what it supports, and none able to use it is a usage error "
                   "(default: each quantizer's own default)")
    c.add_argument("--percentile", type=float, help="with --calibration-method percentile (default 99.999)")
    c.add_argument("--qat", nargs="?", const=QAT_STEPS, type=steps_or_none, metavar="STEPS",
                   help=f"quantization-aware fine-tuning of the LiteRT and ExecuTorch INT8 candidates: the "
                   f"fake-quantized graph learns to reproduce the FP32 model's outputs on the calibration samples "
                   f"(no labels), STEPS steps (default {QAT_STEPS}; minutes on a 2-core CPU for an ImageNet CNN); "
                   "without --precision it builds INT8. --qat 0: never fine-tune, not even where --precision auto "
                   "would (after post-training INT8 misses on calibration or fails held-out verification)")
    c.add_argument("--no-preflight", action="store_true", help="convert candidates even when the pre-flight op "
                   "check says they cannot (the check still runs and is recorded)")
    c.add_argument("--selftest-samples", type=positive_int, metavar="N", help="held-out samples the bundle keeps as "
                   "self-test vectors with their reference outputs (default 4); more make `verify --device` on a device "
                   "(or the emulated arm64 one) as strong a check as the compile's, at their size")
    c.add_argument("--bench", action="store_true", help="benchmark every verified artifact after compiling")
    add_bench_opts(c)
    dg = c.add_argument_group("distillation stage", "train --model (the student) from a teacher first, as "
                              "`edgekit distill` does, then compile it with those weights; the weights and "
                              "report go into the bundle (distill/), the manifest records teacher vs student "
                              "(model.distillation)")
    dg.add_argument("--distill-from", metavar="TEACHER_SPEC", help="the teacher's model spec, e.g. builtin:digits "
                    "(not with --weights: the stage makes them)")
    dg.add_argument("--distill-data", metavar="SPEC", help="transfer inputs, as distill --data (default for "
                    "built-in teachers: their own training data)")
    dg.add_argument("--distill-seeds", type=int, metavar="N", help="independent runs, the best one compiled "
                    "(default 1: the 3-seed comparison with mean and spread is `edgekit distill`'s report)")
    one = dg.add_mutually_exclusive_group()
    one.add_argument("--distill-epochs", type=int, metavar="N", help="classifier teachers: epochs (default 60)")
    one.add_argument("--distill-steps", type=int, metavar="N", help="encoder teachers: optimizer steps (default 400)")


def _distill_opts(args) -> dict | None:
    """compile's --distill-* options for pipeline.compile_model; without --distill-from they are a usage error."""
    given = {k: getattr(args, f"distill_{k}") for k in ("data", "seeds", "epochs", "steps")}
    given = {k: v for k, v in given.items() if v is not None}
    if not args.distill_from:
        if given:
            raise UsageError(f"{', '.join('--distill-' + k for k in given)} given without --distill-from "
                             "TEACHER_SPEC, the distillation stage they set up",
                             hint="python -m edgekit compile --help")
        return None
    return {"teacher": args.distill_from, **given}


def steps_or_none(text: str) -> int:
    """--qat's STEPS: a whole number, 0 meaning no fine-tuning at all."""
    return whole_number(text, 0, "must be 0 (never fine-tune) or more")


def run(args) -> int:
    from ..api import compile

    if args.qat and args.precision is None:
        args.precision = "int8"  # fine-tuning is for INT8 (ranked below like any named precision)
    compiled = compile(args.model, target=args.target, precision=args.precision, out=args.out, weights=args.weights,
                       inputs=args.input, verify_data=args.verify_data, example=args.example,
                       calibration=args.calibration, fallback_model=args.fallback_model, layout=args.layout,
                       calibration_method=args.calibration_method, percentile=args.percentile, qat=args.qat,
                       distill=_distill_opts(args), preflight=not args.no_preflight,
                       selftest_samples=args.selftest_samples, rank=False)  # ranked below, with the bench options
    bundle, manifest = compiled.path, compiled.manifest
    bench = {}
    auto = args.precision == "auto"
    # Where this host is the target, a compile that names a precision times what it built and makes
    # the fastest verified artifact primary (cpu's ExecuTorch, LiteRT and ONNX Runtime compete).
    ranked = args.precision is not None and manifest.target.get("host_is_target")
    if args.bench or ranked:
        ids = [a.id for a in manifest.usable()]
        bench = {r["artifact"]: r for r in bench_all(bundle, ids, args.threads, **options_from(args))}
        if args.json:
            write_json(args.json, list(bench.values()))
    if auto or ranked:
        from ..primary import auto_primary

        print(auto_primary(bundle, manifest, bench, args.precision), file=sys.stderr)
    print(summary(bundle, manifest, bench))
    pending = manifest.target["primary_choice"].get("on_device")
    if pending:
        print(f"edgekit: {', '.join(pending)} run on the device ({manifest.target['device']}); copy the bundle "
              f"there and run `python -m edgekit build {bundle}` to build and verify them; until then the primary "
              f"is {manifest.usable()[0].id}", file=sys.stderr)
    if manifest.target["primary_choice"].get("degraded"):
        from ..errors import EXIT_DEGRADED

        pref = manifest.target["primary_choice"]["preferred"]
        why = next((f["error"] for f in manifest.failed_candidates if f["id"] == pref),
                   next((a.verification.reason for a in manifest.artifacts if a.id == pref), "see the manifest"))
        print(f"edgekit: degraded: the preferred artifact {pref} failed ({why}); the bundle's primary is the verified "
              f"fallback {manifest.usable()[0].id}", file=sys.stderr)
        return EXIT_DEGRADED
    return 0
