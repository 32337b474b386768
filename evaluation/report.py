"""Markdown and PNG output of ``synth bench`` (:mod:`evaluation.bench`): tables with intervals, one line per metric
saying what it measures and which direction is better, and legible plots (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from synth.data.leads import LEADS_12

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_FLOOR_COLOUR = "#555555"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 10})
    return plt


def _f(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(x)
    return f"{x:.{digits}g}"


def _ci(d: dict, digits: int = 3) -> str:
    return f"{_f(d['estimate'], digits)} [{_f(d['low'], digits)}, {_f(d['high'], digits)}]"


# -- fidelity ----------------------------------------------------------------------------------------------------


def fidelity_markdown(r: dict) -> str:
    gens = r["generators"]
    fd_unit = "mV²" if r["feature_kind"] == "raw-signal PCA" else "feature units²"
    lines = [
        "# synth bench fidelity",
        "",
        f"Data `{r['data_root']}`, split **{r['split']}**, n = **{r['n']}** records per set, seed {r['seed']}, "
        f"{r['n_boot']} bootstrap replicates, {r['fs_hz']} Hz, wall time {r['wall_s']:.0f} s.",
        "",
        f"Conditions (superclass labels, age, sex, heart rate measured on the record, and an English report composed "
        f"from its SCP statements for text-conditioned models) come from {r['n']} real "
        f"{r['split']} records; every generator makes one record per condition. The floor is FD(real train, real "
        f"{r['split']}) with the same features, the same n and the same {r['split']} records.",
        "",
        f"**Features:** {r['features']}.",
        "",
        "## Fréchet distance with its floor",
        "",
        f"FD ({fd_unit}, lower is better) between the Gaussians fitted to generated and real {r['split']} features; "
        "the floor is the same FD for fresh real training records; ratio = FD / floor (1 = indistinguishable from "
        "real data at this n). Brackets: bias-corrected bootstrap 95% intervals. An FD whose interval overlaps the "
        "floor's is not distinguishable from real at this n.",
        "",
        "| generator | FD [95% CI] | floor [95% CI] | ratio |",
        "|---|---|---|---|",
    ]
    for name, g in gens.items():
        lines.append(f"| {name} | {_ci(g['fd']['fd'])} | {_ci(g['fd']['fd_floor'])} | {_f(g['fd']['ratio'])} |")
    lines += ["", "### Per-lead raw-signal FD (mV², lower is better; the floor in the last column)", "",
              "Each lead's 10 s trace projected on its first principal components (fitted on training records). "
              "Beats are not time-aligned, so this sees amplitude and spectral content per lead.", "",
              "| lead | " + " | ".join(gens) + " | floor |", "|---" * (len(gens) + 2) + "|"]
    first = next(iter(gens.values())) if gens else None
    for lead in LEADS_12:
        if first is None:
            break
        row = [_ci(g["fd_per_lead"][lead]["fd"]) for g in gens.values()]
        lines.append(f"| {lead} | " + " | ".join(row) + f" | {_ci(first['fd_per_lead'][lead]['fd_floor'])} |")
    pr_real = r["real_reference"]["precision_recall_train_vs_test"]
    lines += [
        "", "## k-NN precision and recall", "",
        f"Precision (higher is better): fraction of generated records inside the real {r['split']} manifold "
        f"(k = {r['k']} nearest-neighbour balls, same features as the FD): are samples realistic? Recall (higher is "
        "better): fraction of real records inside the generated manifold: is the real variety covered? Read against "
        "the real-train row (same n).", "",
        "| generator | precision | recall |", "|---|---|---|",
        f"| real train vs real {r['split']} (reference) | {_f(pr_real['precision'])} | {_f(pr_real['recall'])} |",
    ]
    for name, g in gens.items():
        lines.append(f"| {name} | {_f(g['precision_recall']['precision'])} | {_f(g['precision_recall']['recall'])} |")
    lines += [
        "", "## Memorisation against the training folds", "",
        "Distance from each record to its nearest training record (RMS per sample, in training standard deviations "
        f"per lead); generated records much nearer than real {r['split']} records are copies. `below` = fraction of "
        f"generated records nearer than the {r['memorisation_quantile']:.3g} quantile of the real {r['split']} "
        f"distances (about {r['memorisation_quantile']:.3g} for a generator that does not copy; higher is worse). "
        "baseline:real-train and baseline:nearest *are* training records, so they are flagged by design. The same "
        "with the cosine distance (1 − cosine similarity, which ignores amplitude, so a rescaled copy is caught "
        "too); `copies` needs both: the RMS distance alone also brings quiet, low-voltage records near every quiet "
        "training record.", "",
        "| generator | median RMS (gen) | median RMS (real) | below (RMS) | median cosine (gen) | median cosine (real) | "
        "below (cosine) | expected | copies |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, g in gens.items():
        m = g["memorisation"]
        c = m.get("cosine", {})
        lines.append(f"| {name} | {_f(m['median_generated'])} | {_f(m['median_test'])} | {_f(m['fraction_below'])} | "
                     f"{_f(c.get('median_generated'))} | {_f(c.get('median_test'))} | {_f(c.get('fraction_below'))} | "
                     f"{_f(m['expected_fraction'])} | {_f(m['copies'])} |")
    phys_real = r["real_reference"]["physiology"]
    lines += [
        "", "## Physiology", "",
        "HR MAE: |heart rate measured on the generated record − the rate requested (the real record's)|, bpm, "
        "lower is better (baseline:real-train and baseline:nearest are not told the rate); brackets: bootstrap 95% "
        "interval over records, as for the median beat-to-beat QRS r. QRS: median QRS duration "
        "(ms; real PTB-XL ≈ 80-110). Lead law: mean RMS residual of III − (II − I) and the Goldberger laws (mV, 0 for "
        "a recorded ECG; lower is better). Outliers: fraction of records with |x| > 10 mV or non-finite samples "
        "(lower is better). Beats found: fraction of records with ≥ 2 detected beats.", "",
        "| generator | HR MAE (bpm) | median HR (bpm) | QRS (ms) | lead law III (mV) | lead law mean (mV) | "
        "outliers | beats found | beat-to-beat QRS r, median [IQR] |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def phys_row(name: str, p: dict) -> str:
        laws = p.get("lead_law_rms_mv_mean") or {}
        mean_law = float(np.mean(list(laws.values()))) if laws else None
        beat = p.get("qrs_beat_correlation")
        beat_txt = f"{beat['median']:.3f} [{beat['q25']:.3f}, {beat['q75']:.3f}]" if beat else "n/a"
        if beat and "qrs_beat_correlation_median_ci" in p:
            ci = p["qrs_beat_correlation_median_ci"]
            beat_txt += f" (median 95 % CI {ci['low']:.3f}-{ci['high']:.3f})"
        hr_txt = _f(p.get("heart_rate_mae_bpm"))
        if "heart_rate_mae_bpm_ci" in p:
            hr_txt += f" [{_f(p['heart_rate_mae_bpm_ci']['low'])}, {_f(p['heart_rate_mae_bpm_ci']['high'])}]"
        return (f"| {name} | {hr_txt} | {_f(p['heart_rate_bpm_median'])} | "
                f"{_f(p['qrs_ms_median'])} | {_f(laws.get('III'))} | {_f(mean_law)} | "
                f"{_f(p['amplitude_outlier_rate'])} | {_f(p['beats_found_fraction'])} | {beat_txt} |")

    lines.append(phys_row(f"real {r['split']} (reference)", phys_real))
    for name, g in gens.items():
        lines.append(phys_row(name, g["physiology"]))
    cc_real = r["real_reference"].get("condition_consistency")
    if cc_real:
        lines += [
            "", "## Condition consistency", "",
            "The shipped classifier's macro AUROC (higher is better, 0.5 = chance) for the superclass labels "
            "*requested* of each record, scored on the records generated for them. On the real records the same "
            "number is the classifier's own accuracy on them (the ceiling); generators that ignore the labels "
            "(baseline:real-train, baseline:ecgsyn) sit near 0.5. Brackets: bootstrap 95% intervals.", "",
            "| generator | macro AUROC | " + " | ".join(cc_real["per_class_auroc"]) + " |",
            "|---|---|" + "---|" * len(cc_real["per_class_auroc"]),
        ]

        def cc_row(name: str, c: dict) -> str:
            return (f"| {name} | {_ci(c['macro_auroc'])} | "
                    + " | ".join(_f(v) for v in c["per_class_auroc"].values()) + " |")

        lines.append(cc_row(f"real {r['split']} (ceiling)", cc_real))
        for name, g in gens.items():
            if g.get("condition_consistency"):
                lines.append(cc_row(name, g["condition_consistency"]))
        counts = ", ".join(f"{k} {v}" for k, v in cc_real["positives"].items())
        lines += ["", f"Records requesting each class: {counts}."]
    st_real = r["real_reference"].get("statement_consistency")
    if st_real:
        labels = st_real["labels"]
        lines += [
            "", "## Condition consistency per statement", "",
            f"The statements classifier's AUROC for each label requested (superclasses, diagnostic subclasses, "
            f"rhythms with at least {min(st_real['positives'].values())} positives among the records), scored on "
            "what was generated; macro average with its bootstrap 95% interval. Real records: the ceiling.", "",
            "| generator | macro AUROC | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels),
        ]

        def st_row(name: str, c: dict) -> str:
            return (f"| {name} | {_ci(c['macro_auroc'])} | "
                    + " | ".join(_f(c["per_label_auroc"].get(k)) for k in labels) + " |")

        lines.append(st_row(f"real {r['split']} (ceiling)", st_real))
        for name, g in gens.items():
            if g.get("statement_consistency"):
                lines.append(st_row(name, g["statement_consistency"]))
        lines += ["", "Records requesting each label: " + ", ".join(f"{k} {v}" for k, v in
                                                                     st_real["positives"].items()) + "."]
    lines += ["", "## Generators", ""]
    for name, g in gens.items():
        lines.append(f"- **{name}**: {g['how']} ({g['generation_s']:.1f} s to generate).")
    lines += [
        "", "## Not in this report", "",
        "- Downstream utility (TSTR / TRTR / augmentation gain, `evaluation.utility`) is not run by `synth bench "
        "fidelity` yet: it trains classifiers and needs its own time budget.",
    ]
    if r["feature_kind"] == "raw-signal PCA":
        lines.append("- No classifier feature extractor was available, so the headline FD uses raw-signal PCA "
                     "features (all 12 leads concatenated). Classifier-feature FD needs `--features PATH`.")
    lines += ["", "## Plots", ""]
    for key, file in r.get("plots", {}).items():
        lines.append(f"- {key}: `{file}`")
    return "\n".join(lines) + "\n"


def plot_fd(r: dict, out: Path) -> Path:
    """Headline FD and per-lead FD, each generator beside the floor, with 95% interval error bars (log scale)."""
    plt = _plt()
    gens = r["generators"]
    names = list(gens)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(17, 5.5), gridspec_kw={"width_ratios": [1.3, 3.2]})

    def bar(ax, x, d, colour, label=None, width=0.8):
        est = max(d["estimate"], 1e-12)
        lo, hi = max(est - d["low"], 0), max(d["high"] - est, 0)
        ax.bar(x, est, width, color=colour, label=label, edgecolor="black", linewidth=0.5)
        ax.errorbar(x, est, yerr=[[lo], [hi]], fmt="none", ecolor="black", capsize=3, linewidth=1)

    # Headline panel: floor first, then each generator.
    floor = gens[names[0]]["fd"]["fd_floor"] if names else None
    if floor is not None:
        bar(ax0, 0, floor, _FLOOR_COLOUR)
    for i, name in enumerate(names):
        bar(ax0, i + 1, gens[name]["fd"]["fd"], _COLOURS[i % len(_COLOURS)])
    ax0.set_xticks(range(len(names) + 1), ["floor\n(real train)"] + [n.replace("baseline:", "") for n in names],
                   rotation=30 if len(names) > 2 else 0)
    ax0.set_yscale("log")
    unit = "mV²" if r["feature_kind"] == "raw-signal PCA" else "feature units²"
    ax0.set_ylabel(f"FD vs real {r['split']} ({unit}, log)")
    ax0.set_title(f"FD, {r['feature_kind']} features\n(n = {r['n']}, 95% CI)")
    ax0.grid(axis="y", which="both", alpha=0.3)

    k = len(names) + 1
    width = 0.8 / k
    for j, lead in enumerate(LEADS_12):
        if not names:
            break
        x0 = j - 0.4 + width / 2
        bar(ax1, x0, gens[names[0]]["fd_per_lead"][lead]["fd_floor"], _FLOOR_COLOUR,
            "floor (real train)" if j == 0 else None, width)
        for i, name in enumerate(names):
            bar(ax1, x0 + (i + 1) * width, gens[name]["fd_per_lead"][lead]["fd"], _COLOURS[i % len(_COLOURS)],
                name if j == 0 else None, width)
    ax1.set_xticks(range(len(LEADS_12)), LEADS_12)
    ax1.set_yscale("log")
    ax1.set_ylabel("per-lead raw-signal FD (mV², log)")
    ax1.set_title(f"Per-lead FD ({r['pca_dim']} PCA components per lead) with 95% CI; lower is better")
    ax1.grid(axis="y", which="both", alpha=0.3)
    ax1.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_hr_errors(errors: dict[str, np.ndarray | None], out: Path) -> Path:
    """Histogram of |measured − requested| heart rate per generator (records without beats are counted aside)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 5))
    finite = [np.asarray(e)[np.isfinite(e)] for e in errors.values() if e is not None]
    top = max([float(np.percentile(e, 99)) for e in finite if len(e)] + [5.0])
    bins = np.linspace(0, top, 40)
    for i, (name, e) in enumerate(errors.items()):
        if e is None:
            continue
        e = np.asarray(e)
        ok = e[np.isfinite(e)]
        label = f"{name}: MAE {ok.mean():.1f} bpm" if len(ok) else f"{name}: no beats found"
        if (~np.isfinite(e)).any():
            label += f" ({int((~np.isfinite(e)).sum())} records without beats)"
        ax.hist(np.clip(ok, 0, top), bins=bins, histtype="step", linewidth=2, color=_COLOURS[i % len(_COLOURS)],
                label=label)
    ax.set_xlabel("|measured − requested heart rate| (bpm); values above the 99th percentile piled in the last bin")
    ax.set_ylabel("records")
    ax.set_title("Heart-rate error (requested = the heart rate of the real record whose condition was used)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_overlay(real: np.ndarray, generated: np.ndarray, name: str, ecg_id: int, out: Path) -> Path:
    """The real record whose condition was used (black) with the generated record (blue) on ECG paper."""
    from synth.data.plot import plot_ecg
    from synth.data.record import Record

    rec = Record(np.asarray(real, np.float32), 100.0, LEADS_12)
    gen = Record(np.asarray(generated, np.float32), 100.0, LEADS_12)
    return plot_ecg(rec, out, overlay=gen, labels=(f"real ecg_id {ecg_id} (condition)", name),
                    title=f"{name} vs the real record whose condition it was given (ecg_id {ecg_id})", dpi=110)


# -- reconstruction ----------------------------------------------------------------------------------------------


def reconstruct_markdown(r: dict) -> str:
    lines = [
        "# synth bench reconstruct", "",
        f"Data `{r['data_root']}`, split **{r['split']}**, n = **{r['n']}** records, seed {r['seed']}, "
        f"{r['n_boot']} bootstrap replicates over records, {r['fs_hz']} Hz, wall time {r['wall_s']:.0f} s.", "",
        f"Given leads: **{', '.join(r['given'])}**; scored on the {len(r['missing'])} leads not given: "
        f"{', '.join(r['missing'])}.", "",
        "- **MAE** / **RMSE** (mV, lower is better): error over records and samples (RMSE pooled over records).",
        "- **r** (higher is better, 1 = same shape): Pearson correlation per record, averaged over records.",
        "- **amp ratio** (1 is best): median over records of std(reconstruction) / std(truth); well below 1 = "
        "regression to the mean. **var ratio** = median of its square.",
        "- **lag** (ms, 0 is best): median shift maximising the cross-correlation; positive = reconstruction late.",
        "- Brackets: bootstrap 95% intervals over records.", "",
    ]
    for name, g in r["generators"].items():
        lines += [f"## {name}", "", f"{g['how']} ({g['generation_s']:.1f} s).", "",
                  "| lead | MAE (mV) | RMSE (mV) | r | amp ratio | var ratio | lag (ms) |",
                  "|---|---|---|---|---|---|---|"]
        for lead, s in g["per_lead"].items():
            lines.append(f"| {lead} | {_ci(s['mae_ci'])} | {_ci(s['rmse_ci'])} | {_ci(s['pearson_r_ci'])} | "
                         f"{_f(s['amplitude_ratio'])} | {_f(s['variance_ratio'])} | {_f(s['lag_ms'])} |")
        m = g["mean"]
        rmse = _ci(g["mean_rmse_ci"]) if "mean_rmse_ci" in g else _f(m["rmse_mv"])
        r_mean = _ci(g["mean_pearson_r_ci"]) if "mean_pearson_r_ci" in g else _f(m["pearson_r"])
        lines += [f"| **mean** | {_f(m['mae_mv'])} | {rmse} | {r_mean} | "
                  f"{_f(m['amplitude_ratio'])} | | {_f(m['lag_ms'])} |", ""]
    if r.get("paired_differences"):
        lines += ["## Paired differences", "",
                  "Mean RMSE over the scored leads, first minus second, bootstrapped over the same records "
                  "(an interval below 0 = the first is better).", "", "| difference | mean RMSE (mV) |", "|---|---|"]
        lines += [f"| {k} | {_ci(v)} |" for k, v in r["paired_differences"].items()] + [""]
    lines += ["## Plots", ""] + [f"- {k}: `{v}`" for k, v in r.get("plots", {}).items()]
    return "\n".join(lines) + "\n"


def plot_paired(r: dict, out: Path) -> Path:
    """Per-lead RMSE and Pearson r with 95% interval error bars, one colour per generator."""
    plt = _plt()
    names = list(r["generators"])
    missing = r["missing"]
    fig, axes = plt.subplots(1, 2, figsize=(15, 5))
    width = 0.8 / max(1, len(names))
    for ax, key, label in ((axes[0], "rmse_ci", "RMSE (mV), lower is better"),
                           (axes[1], "pearson_r_ci", "Pearson r, higher is better")):
        for i, name in enumerate(names):
            per = r["generators"][name]["per_lead"]
            est = np.array([per[lead][key]["estimate"] for lead in missing], dtype=float)
            lo = np.array([per[lead][key]["low"] for lead in missing], dtype=float)
            hi = np.array([per[lead][key]["high"] for lead in missing], dtype=float)
            x = np.arange(len(missing)) - 0.4 + width / 2 + i * width
            ax.bar(x, est, width, color=_COLOURS[i % len(_COLOURS)], label=name, edgecolor="black", linewidth=0.5)
            ax.errorbar(x, est, yerr=[np.clip(est - lo, 0, None), np.clip(hi - est, 0, None)], fmt="none",
                        ecolor="black", capsize=3)
        ax.set_xticks(range(len(missing)), missing)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        ax.set_title(f"{label.split(',')[0]} per reconstructed lead (n = {r['n']}, 95% CI)")
    axes[1].set_ylim(min(0.0, axes[1].get_ylim()[0]), 1.0)
    axes[1].legend(loc="lower right")
    fig.suptitle(f"Reconstruction from {', '.join(r['given'])} on {r['split']}")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_reconstruction(truth: np.ndarray, prediction: np.ndarray, given: Sequence[str], name: str, ecg_id: int,
                        out: Path) -> Path:
    """Truth (black) with the reconstruction (blue) on ECG paper; the given leads are marked."""
    from synth.data.plot import plot_ecg
    from synth.data.record import Record

    rec = Record(np.asarray(truth, np.float32), 100.0, LEADS_12)
    pred = Record(np.asarray(prediction, np.float32), 100.0, LEADS_12)
    return plot_ecg(rec, out, overlay=pred, labels=(f"truth (ecg_id {ecg_id})", f"{name} reconstruction"),
                    given_leads=given, title=f"{name}: leads reconstructed from {', '.join(given)} (ecg_id {ecg_id})",
                    dpi=110)
