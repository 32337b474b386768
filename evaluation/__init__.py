"""Metrics and baselines that measure ``synth`` generators; the protocol is ``shared/design/EVALUATION.md``.

One module per idea, each a set of pure functions over numpy arrays (signals ``(N, C, T)`` float32 in mV at a
declared ``fs_hz``, leads in the canonical order of :data:`synth.data.leads.LEADS_12`):

- :mod:`evaluation.frechet`: Fréchet distance with its real-vs-real floor and bootstrap intervals; per-lead
  raw-signal features (PCA fitted on real training records).
- :mod:`evaluation.manifold`: k-NN precision and recall (Kynkäänniemi et al. 2019).
- :mod:`evaluation.memorisation`: nearest-training-record distances of generated vs real test records.
- :mod:`evaluation.paired`: per-lead MAE / RMSE / Pearson r / amplitude ratio and lag for paired tasks.
- :mod:`evaluation.physiology`: R peaks, heart rate, QRS duration, Einthoven/Goldberger residuals, amplitude range.
- :mod:`evaluation.utility`: macro AUROC with bootstrap intervals; TSTR / TRTR / TRTS / augmentation gain.
- :mod:`evaluation.baselines`: real-train, ECGSYN, nearest-neighbour and linear lead-reconstruction baselines.
- :mod:`evaluation.bootstrap` and :mod:`evaluation.neighbours`: the two helpers more than one metric uses.

Every metric's definition, units and direction are in ``docs/metrics.md``. Nothing is imported here so that
``import evaluation.physiology`` does not pull in torch.
"""
