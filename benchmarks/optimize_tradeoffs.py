"""What pruning, distillation and QAT buy on real handwritten digits, each figure beside its baseline.

Trains the demo's teacher CNN on scikit-learn's digits (16×16), then measures in
this one run:

* the optimized microcontroller model (``optimize`` for cortex-m4-256k, 1-point
  budget) against the float teacher: size ratio, top-1 drop, fit, TFLite Micro top-1;
* 50% structured filter pruning against the unpruned int8 model: file size ratio,
  host latency speed-up (same interpreter, one thread), top-1 lost after fine-tuning;
* 50% magnitude pruning against the dense int8 model: file and gzip size ratios;
* a distilled width-×0.5 student against the teacher: parameter ratio, top-1 gap;
* quantization-aware fine-tuning against post-training int8.

Prints one JSON object; exits 1 if a figure misses what the issue requires.
Usage: ``.venv/bin/python benchmarks/optimize_tradeoffs.py``
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _latency(data: bytes, x, repeats: int = 7, runs: int = 400) -> float:
    """Best-of-``repeats`` median single-invoke latency in ms (the minimum filters out the shared machine's noise)."""
    from edgert.optimize.search import host_latency_ms

    return min(host_latency_ms(data, x, runs=runs, warmup=20) for _ in range(repeats))


def main() -> int:
    from edgert.convert import convert_keras, evaluate
    from edgert.convert._tf import stdout_to_stderr
    from edgert.optimize._keras import evaluate_keras, parameter_count
    from edgert.optimize.data import digits_dataset, split_dataset
    from edgert.optimize.distill import distill
    from edgert.optimize.micro_eval import micro_top1
    from edgert.optimize.models import digits_teacher
    from edgert.optimize.pruning import fine_tune, gzip_size, magnitude_prune, structured_prune
    from edgert.optimize.qat import quantization_aware_fine_tune
    from edgert.optimize.search import SearchSpace, optimize

    t_start = time.perf_counter()
    data = digits_dataset(16)
    train, test = split_dataset(data, 0.3, 0)
    cal = train.x[:200]

    with stdout_to_stderr():
        teacher = digits_teacher(16, seed=0)
        fine_tune(teacher, train.x, train.y, epochs=40, seed=0)

        def int8(model) -> bytes:
            return convert_keras(model, mode="int8", representative_data=cal)

        def top1(b: bytes) -> float:
            return float(evaluate(b, test.x, test.y)["top1"])

        float_bytes = convert_keras(teacher, mode="float32")
        teacher_int8 = int8(teacher)
        base = {"float_top1": top1(float_bytes), "float_bytes": len(float_bytes), "int8_bytes": len(teacher_int8),
                "int8_top1": top1(teacher_int8), "parameters": parameter_count(teacher)}

        with tempfile.TemporaryDirectory() as tmp:
            opt = optimize(teacher, "cortex-m4-256k", train, test_data=test, max_accuracy_drop=1.0,
                           output_dir=os.path.join(tmp, "mcu"),
                           space=SearchSpace(sparsities=[0.5], filter_fractions=[0.5], students=[0.5]),
                           labels=data.labels)
        best = opt.best
        mcu = {"chosen": best.name if best else None, "technique": best.technique if best else None}
        if best is not None:
            micro = micro_top1(opt.best_tflite, test.x, test.y)
            mcu.update({
                "bytes": best.size_bytes, "baseline_float_bytes": opt.baseline["size_bytes"],
                "size_ratio": round(best.size_bytes / opt.baseline["size_bytes"], 4),
                "top1": best.accuracy, "baseline_float_top1": opt.baseline["accuracy"],
                "top1_drop_points": best.accuracy_drop, "fits": best.fits, "arena_bytes": best.arena_bytes,
                "tflite_micro_top1": round(micro["top1"], 4), "tflite_micro_samples": micro["samples"],
            })

        sp = structured_prune(teacher, train.x, train.y, fraction=0.5, epochs=8)
        sp_int8 = int8(sp.model)
        lat_dense, lat_pruned = _latency(teacher_int8, test.x), _latency(sp_int8, test.x)
        sp_top1 = top1(sp_int8)
        structured = {
            "filters_removed": 0.5, "int8_bytes": len(sp_int8), "baseline_int8_bytes": len(teacher_int8),
            "size_ratio": round(len(sp_int8) / len(teacher_int8), 4),
            "host_latency_ms": round(lat_pruned, 5), "baseline_host_latency_ms": round(lat_dense, 5),
            "speedup": round(lat_dense / lat_pruned, 3),
            "top1": round(sp_top1, 4), "baseline_int8_top1": round(base["int8_top1"], 4),
            "top1_lost_points": round(100 * (base["int8_top1"] - sp_top1), 2),
            "parameters": sp.parameters[1], "baseline_parameters": sp.parameters[0],
        }

        mp = magnitude_prune(teacher, train.x, train.y, sparsity=0.5, epochs=4)
        mp_int8 = int8(mp.model)
        magnitude = {
            "sparsity": round(mp.sparsity, 4), "int8_bytes": len(mp_int8), "baseline_int8_bytes": len(teacher_int8),
            "size_ratio": round(len(mp_int8) / len(teacher_int8), 4),
            "gzip_bytes": gzip_size(mp_int8), "baseline_gzip_bytes": gzip_size(teacher_int8),
            "gzip_ratio": round(gzip_size(mp_int8) / gzip_size(teacher_int8), 4),
            "top1": round(top1(mp_int8), 4), "baseline_int8_top1": round(base["int8_top1"], 4),
            "note": "unstructured zeros are stored weights: the .tflite does not shrink, its compressed form does",
        }

        kd = distill(teacher, 0.5, train.x, train.y, epochs=40, eval_data=(test.x, test.y))
        distilled = {
            "width_multiplier": 0.5, "parameters": kd.student_parameters, "baseline_parameters": kd.teacher_parameters,
            "parameter_ratio": round(kd.parameter_ratio, 4),
            "top1": round(kd.student_accuracy, 4), "baseline_top1": round(kd.teacher_accuracy, 4),
            "gap_points": round(100 * (kd.teacher_accuracy - kd.student_accuracy), 2),
            "float_bytes": len(convert_keras(kd.student, mode="float32")), "baseline_float_bytes": len(float_bytes),
        }
        scratch = digits_teacher(16, width=0.5, seed=0)
        fine_tune(scratch, train.x, train.y, epochs=40, seed=0)
        distilled["same_student_trained_without_teacher_top1"] = round(evaluate_keras(scratch, test.x, test.y), 4)

        qat_model = quantization_aware_fine_tune(teacher, train.x, train.y, epochs=3)
        qat = {"int8_top1": round(top1(int8(qat_model)), 4), "baseline_ptq_int8_top1": round(base["int8_top1"], 4)}

    requirements = {
        "mcu_fits": bool(best is not None and best.fits),
        "mcu_runs_in_tflite_micro": bool(best is not None and mcu["tflite_micro_samples"] == len(test)),
        "mcu_drop_le_1_point": bool(best is not None and best.accuracy_drop <= 1.0),
        "mcu_size_le_0.25x_float": bool(best is not None and mcu["size_ratio"] <= 0.25),
        "structured50_size_le_0.6x": structured["size_ratio"] <= 0.6,
        "structured50_host_speedup": structured["speedup"] > 1.0,
        "structured50_lost_le_1.5_points": structured["top1_lost_points"] <= 1.5,
        "student_params_le_0.3x": distilled["parameter_ratio"] <= 0.3,
        "student_within_2_points": distilled["gap_points"] <= 2.0,
    }
    out = {
        "benchmark": "optimize_tradeoffs", "data": f"sklearn digits 16x16, {len(train)} train / {len(test)} held out",
        "teacher": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in base.items()},
        "mcu_optimized": mcu, "structured_pruning": structured, "magnitude_pruning": magnitude,
        "distillation": distilled, "qat": qat, "requirements": requirements,
        "all_requirements_met": all(requirements.values()), "seconds": round(time.perf_counter() - t_start, 1),
    }
    sys.stdout.write(json.dumps(out, indent=2) + "\n")
    return 0 if out["all_requirements_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
