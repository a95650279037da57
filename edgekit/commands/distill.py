"""`edgekit distill`: train a smaller student from a teacher (Hinton KD for classifiers, embedding distillation
for encoders); report teacher vs student on held-out data."""
from __future__ import annotations

from ..table import render, size


def add_parser(sub) -> None:
    ds = sub.add_parser("distill", help="train a smaller student from a teacher (Hinton KD for classifiers, "
                        "embedding distillation for encoders); report teacher vs student on held-out data")
    ds.add_argument("--teacher", required=True, help="model spec, e.g. builtin:digits")
    ds.add_argument("--student", required=True, help="model spec of the student, e.g. builtin:digits-small")
    ds.add_argument("--data", help="transfer inputs (.npy/.npz, image folder or .txt); default for built-in "
                                   "teachers: their own training data")
    ds.add_argument("--out", help="folder for student.pt and report.json (default build/distill/STUDENT)")
    ds.add_argument("--seeds", type=int, default=3, help="independent runs; the report gives mean and spread")
    ds.add_argument("--epochs", type=int, default=60, help="classifier epochs over the transfer data")
    ds.add_argument("--steps", type=int, default=400, help="encoder optimizer steps (batch 32)")
    ds.add_argument("--temperature", type=float, default=4.0, help="KD softmax temperature (classifiers)")
    ds.add_argument("--alpha", type=float, default=0.7, help="weight of the soft-target loss vs the labels")
    ds.add_argument("--lr", type=float, help="learning rate (default 2e-3 classifiers with Adam, 5e-4 encoders "
                                             "with AdamW, warm-up and linear decay)")


def run(args) -> int:
    from ..distill import distill

    out = args.out or f"build/distill/{args.student.split(':')[-1]}"
    rep = distill(args.teacher, args.student, args.data, out, args.seeds, args.epochs, args.steps,
                  args.temperature, args.alpha, args.lr)
    t, s, summ = rep["teacher"], rep["student"], rep["summary"]
    metric = "accuracy" if "accuracy" in summ["distilled"] else next(iter(summ["distilled"]))
    rows = [["teacher", t["spec"], t["params"], size(t["state_dict_bytes"]), f"{t['latency_ms']:.3f}",
             f"{t['held_out'].get(metric, 1.0):.4f}", ""]]
    for side in ("distilled", "baseline"):
        if side in summ:
            m = summ[side][metric]
            rows.append([f"student, {side}", s["spec"], s["params"], size(s["state_dict_bytes"]),
                         f"{s['latency_ms']:.3f}" if side == "distilled" else "", f"{m['mean']:.4f}",
                         f"{m['min']:.4f}..{m['max']:.4f}"])
    print(render(["model", "spec", "params", "size", "eager ms", f"{metric} (mean)", "spread over seeds"], rows,
                 f"distill: {len(rep['runs'])} seed(s), held-out {rep['held_out']['data']}; weights: {out}/student.pt"))
    print(f"compile it: python -m edgekit compile --model {args.student} --weights {out}/student.pt --target cpu")
    return 0
