"""`python -m edgekit distill --teacher SPEC --student SPEC [--data SPEC]`: knowledge distillation.

Classifiers (teacher task "classification"): Hinton et al.'s KD, the student trained on
  alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * cross-entropy(labels);
  without labels, the soft targets alone (alpha = 1). The same student is also trained on the
  labels alone with the same seed, data, optimizer and steps: the comparison the report shows.
Encoders (any other task): the student's outputs are pulled to the teacher's (1 - cosine + MSE),
  from whatever initialization the student spec gives (builtin:minilm-l3 starts from every other
  teacher layer, as DistilBERT did); the report compares with that initialization.

Everything is judged on the teacher's held-out verification data, which the transfer data must
not overlap (edgekit.calibration.check_disjoint). The chosen student's weights go to
OUT/student.pt (weights only, written atomically) with OUT/report.json; compile it with
`compile --model STUDENT_SPEC --weights OUT/student.pt`, or distill and compile in one run with
`compile --model STUDENT_SPEC --distill-from TEACHER_SPEC` (the stage below: check_stage, record).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from .errors import UsageError


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _stack(samples: list[dict], names: list[str]):
    import torch

    return [torch.from_numpy(np.concatenate([s[n] for s in samples])) for n in names]


def _outputs(module, tensors, batch: int = 64):
    import torch

    from .runtimes.base import output_list

    outs = []
    with torch.no_grad():
        for i in range(0, len(tensors[0]), batch):
            outs.append(output_list(module(*[t[i:i + batch] for t in tensors]))[0])
    return torch.cat(outs)


def _fit(student, x, optimizer, batches, loss_of, schedule=None, trim=None):
    """One optimizer step per batch of sample indices; loss_of(outputs, indices) -> scalar loss.
    schedule: an LR scheduler stepped after each step; trim: cuts a batch's padding (see _trimmer)."""
    student.train()
    for idx in batches:
        batch = [t[idx] for t in x]
        loss = loss_of(student(*(trim(batch) if trim else batch)), idx)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if schedule:
            schedule.step()
    return student.eval()


def _trimmer(module, x, names: list[str]):
    """Token inputs padded to a fixed length waste most of a batch's compute on padding (docstring
    sentences average well under MiniLM's 64 tokens). With an `attention_mask` input, a batch can be
    cut to its longest sentence, but only if the model gives the same outputs on the cut inputs: a
    model built for one fixed length would not, and then nothing is cut. -> trim(batch) or None."""
    import torch

    if "attention_mask" not in names:
        return None
    mask_at = names.index("attention_mask")
    length = x[mask_at].shape[1]

    def trim(batch):
        keep = int(batch[mask_at].sum(1).max())
        return [t[:, :keep] if t.dim() == 2 and t.shape[1] == length else t for t in batch]

    sample = [t[:8] for t in x]
    module.eval()
    try:
        with torch.no_grad():
            full, cut = _outputs(module, sample), _outputs(module, trim(sample))
    except Exception:  # noqa: BLE001 — the model refuses other lengths: train on the padded inputs
        return None
    return trim if full.shape == cut.shape and torch.allclose(full, cut, atol=1e-4) else None


def train_classifier(student, x, teacher_logits, labels, *, seed: int, epochs: int, temperature: float,
                     alpha: float, lr: float = 2e-3, batch: int = 64):
    """KD when teacher_logits is given (alpha weighs the soft targets against the labels; without
    labels the soft targets alone), the labels alone if not."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    n, t = len(x[0]), temperature
    w_soft = 0.0 if teacher_logits is None else (alpha if labels is not None else 1.0)

    def loss_of(out, idx):
        loss = F.cross_entropy(out, labels[idx]) * (1 - w_soft) if labels is not None else 0.0
        if w_soft:
            loss = loss + w_soft * t * t * F.kl_div(F.log_softmax(out / t, -1), F.softmax(teacher_logits[idx] / t, -1),
                                                    reduction="batchmean")
        return loss

    batches = (perm[i:i + batch] for _ in range(epochs) for perm in [torch.randperm(n, generator=g)]
               for i in range(0, n, batch))
    return _fit(student, x, torch.optim.Adam(student.parameters(), lr=lr), batches, loss_of)


ENCODER_LR = 5e-4  # builtin:minilm-l3 at step 400 of 800: held-out cosine 0.919 at 5e-4, 0.908 at 1e-3
WARMUP_STEPS = 50


def _warmup(steps: int) -> int:
    return max(1, min(WARMUP_STEPS, steps // 8))


def train_encoder(student, x, teacher_out, *, seed: int, steps: int, lr: float = ENCODER_LR, batch: int = 32,
                  trim=None):
    """Pull the student's (normalized) outputs to the teacher's: 1 - cosine, plus MSE for scale.
    AdamW with a linear warm-up over WARMUP_STEPS (an eighth of a short run) and a linear decay to
    zero at `steps`. trim: from _trimmer, or None to train on the inputs as given."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)

    def loss_of(out, idx):
        out = out[0] if isinstance(out, (tuple, list)) else out
        return (1 - F.cosine_similarity(out, teacher_out[idx], dim=-1)).mean() + F.mse_loss(out, teacher_out[idx])

    batches = (torch.randint(0, len(x[0]), (batch,), generator=g) for _ in range(steps))
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr)
    warm = _warmup(steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                 lambda s: min(1.0, (s + 1) / warm) * max(0.0, 1 - s / steps))
    return _fit(student, x, optimizer, batches, loss_of, schedule, trim)


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _state_bytes(module) -> int:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    return buf.tell()


def _latency_ms(module, example: dict, runs: int = 30) -> float:
    """PyTorch eager, one thread, median of `runs` after 5 warm-ups (the report's runtime)."""
    import torch

    from .converters import torch_args

    args = torch_args(example)
    torch.set_num_threads(1)
    with torch.no_grad():
        for _ in range(5):
            module(*args)
        ts = []
        for _ in range(runs):
            t = time.perf_counter()
            module(*args)
            ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1e3)


def _score(module, verify_x, ref, labels, classifier: bool) -> dict:
    out = _outputs(module, verify_x).numpy()
    if classifier:
        pred = out.argmax(-1)
        res = {"agreement_with_teacher": float((pred == ref.argmax(-1)).mean())}
        if labels is not None:
            res["accuracy"] = float((pred == labels).mean())
        return res
    a, b = out.reshape(len(out), -1), ref.reshape(len(ref), -1)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    # nearest-neighbour agreement: does each sentence's closest other sentence stay the same?
    def nn(e):
        e = e / (np.linalg.norm(e, axis=1, keepdims=True) + 1e-12)
        s = e @ e.T
        np.fill_diagonal(s, -np.inf)
        return s.argmax(1)
    return {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
            "nn_agreement": float((nn(a) == nn(b)).mean())}


def distill(teacher_spec: str, student_spec: str, data: str | None, out: str, seeds: int = 3,
            epochs: int = 60, steps: int = 400, temperature: float = 4.0, alpha: float = 0.7,
            lr: float | None = None) -> dict:
    import copy

    import torch

    from .calibration import check_disjoint, read_calibration
    from .sources import load_model, preflight

    preflight(teacher_spec)
    preflight(student_spec)
    for name, n in (("seeds", seeds), ("epochs", epochs), ("steps", steps)):
        if n < 1:
            raise UsageError(f"--{name} must be at least 1")
    teacher = load_model(teacher_spec)
    student_src = load_model(student_spec)
    if teacher.kind != "torch" or student_src.kind != "torch":
        raise UsageError("distillation trains PyTorch modules: teacher and student must be PyTorch models")
    names = list(teacher.example)
    if list(student_src.example) != names:
        raise UsageError(f"the student takes inputs {list(student_src.example)}, the teacher {names}: they must match")
    classifier = teacher.task == "classification"
    if data:
        transfer = read_calibration(data, teacher.example, teacher.preprocessing, limit=100_000)
        labels = None
        source = data
    else:
        transfer, labels, source = _builtin_transfer(teacher)
    check_disjoint(transfer, teacher.verify_inputs)
    x, vx = _stack(transfer, names), _stack(teacher.verify_inputs, names)
    teacher_module = teacher.module.eval()
    say(f"[edgekit] distill {teacher_spec} -> {student_spec}: {len(transfer)} transfer samples ({source}), "
        f"{len(teacher.verify_inputs)} held-out, {seeds} seed(s)")
    t_out, ref = _outputs(teacher_module, x), _outputs(teacher_module, vx).numpy()
    y = torch.from_numpy(np.asarray(labels)) if labels is not None else None
    vlabels = np.asarray(teacher.verify_labels) if teacher.verify_labels is not None else None
    runs, best, best_key, best_seed = [], None, None, None
    trim = None if classifier else _trimmer(student_src.module, x, names)
    for seed in range(seeds):
        t0 = time.perf_counter()
        fresh = copy.deepcopy(student_src.module)  # the spec's own initialization, every seed
        if classifier:
            torch.manual_seed(seed)
            for m in fresh.modules():  # a different random init per seed
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
            init = copy.deepcopy(fresh)
            opts = {"seed": seed, "epochs": epochs, "temperature": temperature, **({"lr": lr} if lr else {})}
            kd = train_classifier(fresh, x, t_out, y, alpha=alpha, **opts)
            base = train_classifier(init, x, None, y, alpha=0.0, **opts) if y is not None else None
        else:
            base = copy.deepcopy(student_src.module).eval()  # the undistilled initialization
            kd = train_encoder(fresh, x, t_out, seed=seed, steps=steps, trim=trim, **({"lr": lr} if lr else {}))
        row = {"seed": seed, "distilled": _score(kd, vx, ref, vlabels, classifier),
               "baseline": _score(base, vx, ref, vlabels, classifier) if base is not None else None,
               "seconds": round(time.perf_counter() - t0, 1)}
        runs.append(row)
        key = row["distilled"].get("accuracy", row["distilled"].get("cosine_mean", 0.0))
        say(f"  seed {seed}: distilled {row['distilled']}; baseline {row['baseline']} ({row['seconds']} s)")
        if best_key is None or key > best_key:
            best, best_key, best_seed = kd, key, seed
    report = {
        "teacher": {"spec": teacher_spec, "params": _params(teacher_module), "state_dict_bytes": _state_bytes(teacher_module),
                    "latency_ms": _latency_ms(teacher_module, teacher.example),
                    "held_out": _score(teacher_module, vx, ref, vlabels, classifier)},
        "student": {"spec": student_spec, "params": _params(best), "state_dict_bytes": _state_bytes(best),
                    "latency_ms": _latency_ms(best, teacher.example), "seed": best_seed},  # the one in student.pt
        "method": ({"kind": "Hinton KD", "temperature": temperature, "alpha": alpha, "epochs": epochs, "lr": lr or 2e-3}
                   if classifier else {"kind": "embedding distillation (1 - cosine + MSE)", "steps": steps,
                                       "lr": lr or ENCODER_LR, "schedule": f"linear warm-up {_warmup(steps)} "
                                                                           "steps, linear decay to 0",
                                       "padding": "cut to each batch's longest sample" if trim else "as given"}),
        "transfer_data": {"source": source, "samples": len(transfer)},
        "held_out": {"samples": len(teacher.verify_inputs), "data": teacher.verify_data},
        "runs": runs, "summary": _summary(runs), "latency": "PyTorch eager, 1 thread, median of 30 runs",
    }
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f"student.pt.tmp{os.getpid()}"
    torch.save(best.state_dict(), tmp)
    os.replace(tmp, out_dir / "student.pt")
    tmp = out_dir / f"report.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(report, indent=2))
    os.replace(tmp, out_dir / "report.json")
    return report


def _summary(runs: list[dict]) -> dict:
    """Mean and spread (min..max) over seeds of each metric, distilled vs baseline."""
    out = {}
    for side in ("distilled", "baseline"):
        rows = [r[side] for r in runs if r[side]]
        if rows:
            out[side] = {k: {"mean": float(np.mean([r[k] for r in rows])), "min": float(min(r[k] for r in rows)),
                             "max": float(max(r[k] for r in rows))} for k in rows[0]}
    return out


def _builtin_transfer(teacher) -> tuple[list[dict], np.ndarray | None, str]:
    """Transfer data for the built-in teachers: what they were trained on (digits), or sentences
    outside the held-out split (MiniLM); any other teacher needs --data."""
    if teacher.spec == "builtin:digits":
        from .builtin.digits import splits

        (xt, yt), _, _ = splits()
        return [{"image": np.ascontiguousarray(xt[i:i + 1])} for i in range(len(xt))], yt, "digits train split (1,200)"
    if teacher.spec == "builtin:minilm":
        from .builtin import minilm
        from .builtin.data import split_by_hash, transfer_sentences

        calib, _verify = split_by_hash(transfer_sentences())
        tok = minilm.tokenizer()
        return [minilm.tokenize(tok, s) for s in calib], None, \
            f"{len(calib)} standard-library docstring sentences (all modules) outside the held-out split"
    raise UsageError(f"{teacher.spec}: give --data (an .npz/.npy, image folder or text file of transfer inputs)")


# compile --distill-from: the training above as a stage before compile (edgekit.pipeline runs
# `distill` in a child process, then compiles the student with its weights as --weights does).

STAGE_DIR = "distill"  # inside the bundle: distill/student.pt + distill/report.json
STAGE_SEEDS = 1  # compile needs one trained student; the 3-seed comparison is `edgekit distill`'s report


def check_stage(teacher: str, student: str, weights: str | None, data: str | None = None,
                **counts: int | None) -> None:
    """What compile --distill-from refuses before any work (the child would find it only after
    loading both models). counts: seeds, epochs, steps as given (None: the default)."""
    from .sources import preflight

    if weights:
        raise UsageError("--distill-from trains the student's weights and --weights gives them: use one",
                         hint="drop --weights to distill first, or --distill-from to compile the given weights")
    preflight(teacher)  # an unknown built-in gets its "did you mean" here
    preflight(student)
    for role, spec in (("teacher", teacher), ("student (--model)", student)):
        if Path(spec).suffix.lower() in (".onnx", ".pt2"):
            raise UsageError(f"distillation trains PyTorch modules; the {role} {spec} is an exported graph",
                             hint="give builtin:NAME, file.py:factory or pkg.module:factory")
    if student.startswith("builtin:"):
        from .builtin import takes_weights

        if not takes_weights(student.split(":", 1)[1]):
            raise UsageError(f"{student} brings its own weights and cannot be a student; --distill-from trains "
                             "builtin:digits-small, builtin:minilm-l3 or your own factory (--model)")
    if data and not Path(data).exists():
        raise UsageError(f"--distill-data {data}: no such file or folder")
    for name, n in counts.items():
        if n is not None and n < 1:
            raise UsageError(f"--distill-{name} must be at least 1")


def record(report: dict, out_dir: Path, rel: str = STAGE_DIR) -> dict:
    """The manifest's model.distillation: the specs, data and method, the teacher's numbers beside
    those of the student in student.pt (its seed's held-out scores, and the same student without
    distillation), and the stage's files with their sha256."""
    from .bundle import sha256_file, size_bytes

    s = report["student"]
    run = next(r for r in report["runs"] if r["seed"] == s["seed"])
    files = {key: {"path": f"{rel}/{name}", "sha256": sha256_file(out_dir / name),
                   "size_bytes": size_bytes(out_dir / name)}
             for key, name in (("weights", "student.pt"), ("report", "report.json"))}
    return {"teacher": report["teacher"],
            "student": {**s, "held_out": run["distilled"], "baseline": run["baseline"]},
            "transfer_data": report["transfer_data"], "held_out": report["held_out"], "method": report["method"],
            "seeds": len(report["runs"]), "latency": report["latency"], **files}


_METRIC_WORDS = {"accuracy": "held-out accuracy", "cosine_mean": "held-out mean cosine to the teacher",
                 "agreement_with_teacher": "held-out agreement with the teacher"}


def describe(rec: dict) -> str:
    """One line for the compile table: where the weights came from and what distillation gave."""
    from .table import size

    t, s = rec["teacher"], rec["student"]
    key = next(k for k in _METRIC_WORDS if k in s["held_out"])
    base = f" ({'labels alone' if key == 'accuracy' else 'undistilled'} {s['baseline'][key]:.4f})" \
        if s.get("baseline") else ""
    quality = (f"teacher {t['held_out'][key]:.4f}, student {s['held_out'][key]:.4f}{base}" if key == "accuracy"
               else f"student {s['held_out'][key]:.4f}{base}")
    return (f"distilled from {t['spec']} ({rec['transfer_data']['samples']} transfer samples, {rec['seeds']} "
            f"seed(s)): {_METRIC_WORDS[key]} {quality}; params {t['params']:,} -> {s['params']:,}; state dict "
            f"{size(t['state_dict_bytes'])} -> {size(s['state_dict_bytes'])}; eager {t['latency_ms']:.3f} -> "
            f"{s['latency_ms']:.3f} ms; weights {rec['weights']['path']} (sha256 {rec['weights']['sha256'][:12]})")
