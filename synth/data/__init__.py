"""Data layer: lead names, the Record type, readers, transforms, writers, datasets and plots."""

from synth.data.leads import LEADS_3, LEADS_8, LEADS_12, canonical_lead, canonical_leads, parse_lead_set
from synth.data.plot import plot_ecg, plot_ppg_ecg, plot_record
from synth.data.readers import read_csv, read_npy, read_npz, read_record, read_wfdb
from synth.data.record import Record
from synth.data.writers import write_csv, write_npz, write_record, write_wfdb

__all__ = [
    "LEADS_3", "LEADS_8", "LEADS_12", "Record", "plot_ecg", "plot_ppg_ecg", "plot_record", "canonical_lead", "canonical_leads", "parse_lead_set",
    "read_csv", "read_npy", "read_npz", "read_record", "read_wfdb",
    "write_csv", "write_npz", "write_record", "write_wfdb",
]  # fmt: skip
