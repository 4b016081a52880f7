"""Measured-profile readers: the CSV format and every error message a user can trigger."""
import numpy as np
import pytest
import xarray as xr

from compare.errors import InputFileError
from compare.io.datasets import write_dataset
from compare.io.profiles import read_csv_profiles, read_dataset_profiles, read_profiles
from tests.conftest import INPUTS

SPECIES = ("Li", "K")
GOOD = """# synthetic
depth_nm,Li,K
0.5,0.15,0.80
2.0,0.16,0.79

# a comment between rows
10.0,0.90,0.05
"""


def _write(tmp_path, text, name="p.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_values_and_skips_comments(tmp_path):
    prof = read_csv_profiles(_write(tmp_path, GOOD), SPECIES)
    assert prof.species == ("Li", "K")
    np.testing.assert_array_equal(prof.depth_nm, [0.5, 2.0, 10.0])
    np.testing.assert_array_equal(prof.values[1], [0.80, 0.79, 0.05])
    assert prof.errors is None
    ds = prof.to_dataset()
    assert ds["measured"].dims == ("species", "depth")


def test_reads_error_columns_in_any_order(tmp_path):
    text = "depth_nm,K_err,K,Li,Li_err\n1,0.01,0.5,0.4,0.02\n2,0.03,0.4,0.5,0.04\n"
    prof = read_csv_profiles(_write(tmp_path, text), SPECIES)
    assert prof.species == ("K", "Li")
    np.testing.assert_array_equal(prof.errors, [[0.01, 0.03], [0.02, 0.04]])


def test_only_some_species_is_fine(tmp_path):
    prof = read_csv_profiles(_write(tmp_path, "depth_nm,K\n1,0.5\n"), SPECIES)
    assert prof.species == ("K",) and prof.values.shape == (1, 1)


@pytest.mark.parametrize("text, match", [
    ("", r"p.csv: file is empty \(expected a header line"),
    ("# only a comment\n\n", r"file is empty"),
    ("0.5,0.1,0.8\n1.0,0.2,0.7\n", r"p.csv, line 1: missing header: .* got numbers"),
    ("depth,Li,K\n1,0.1,0.8\n", r"line 1, column 1: the first column must be `depth_nm`, got "
                                r"'depth' \(did you mean `depth_nm`\?\)"),
    ("depth_nm,Li,Kk\n1,0.1,0.8\n", r"line 1, column 3: unknown species column 'Kk' \(did you "
                                    r"mean `K`\?\); species in the input: Li, K"),
    ("depth_nm,Li,Rb\n1,0.1,0.8\n", r"column 3: unknown species column 'Rb'; species in the "
                                    r"input: Li, K"),
    ("depth_nm,Li,K,K_er\n1,0.1,0.8,0.1\n", r"column 4: unknown species column 'K_er'"),
    ("depth_nm,Li,Li\n1,0.1,0.8\n", r"line 1, column 3: duplicate column 'Li'"),
    ("depth_nm\n1\n", r"line 1: no species columns after `depth_nm`"),
    ("depth_nm,Li,K_err\n1,0.1,0.8\n", r"column 3: error column 'K_err' has no column 'K'"),
    ("depth_nm,Li,K,K_err\n1,0.1,0.8,0.1\n", r"give standard errors for every species or for "
                                              r"none; missing: Li_err"),
    ("depth_nm,Li,K\n", r"p.csv: no data rows after the header \(line 1\)"),
    ("depth_nm,Li,K\n1,0.1,0.8\n2,0.1\n", r"p.csv, line 3: expected 3 cells \(as in the "
                                          r"header\), got 2"),
    ("depth_nm,Li,K\n1,0.1,0.8\n2,abc,0.7\n", r"p.csv, line 3, column 2 \(`Li`\): not a "
                                              r"number: 'abc'"),
    ("depth_nm,Li,K\n1,0.1,\n", r"line 2, column 3 \(`K`\): empty cell"),
    ("depth_nm,Li,K\n1,nan,0.8\n", r"line 2, column 2 \(`Li`\): 'nan' is not allowed"),
    ("depth_nm,Li,K\n1,0.1,inf\n", r"line 2, column 3 \(`K`\): 'inf' is not allowed"),
    ("depth_nm,Li,K\n1,0.1,0.8\n# c\n3,0.1,0.8\n2,0.1,0.8\n",
     r"line 5, column 1 \(`depth_nm`\): depths must increase strictly, got 2 after 3"),
    ("depth_nm,Li,K\n1,0.1,0.8\n1,0.1,0.8\n", r"line 3, column 1 .* got 1 after 1"),
    ("depth_nm,Li,K\n-1,0.1,0.8\n", r"line 2, column 1 \(`depth_nm`\): depth must be >= 0"),
    ("depth_nm,Li,Li_err\n1,0.1,0\n", r"line 2, column 3 \(`Li_err`\): standard errors must "
                                      r"be > 0, got 0"),
])
def test_bad_csv_messages(tmp_path, text, match):
    with pytest.raises(InputFileError, match=match):
        read_csv_profiles(_write(tmp_path, text), SPECIES)


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(InputFileError, match=r"profile file not found: '.*nope.csv'"):
        read_profiles(tmp_path / "nope.csv", SPECIES)
    with pytest.raises(InputFileError, match=r"unknown type '.xlsx'; expected a .csv file or "
                                             r"a .nc dataset"):
        read_profiles(_write(tmp_path, GOOD, "p.xlsx"), SPECIES)


def test_bundled_example_profile_is_valid():
    paths = sorted((INPUTS / "profiles").glob("*.csv"))
    assert paths, "inputs/profiles/ holds at least one example"
    for path in paths:
        prof = read_csv_profiles(path, SPECIES)
        assert prof.values.shape[1] == prof.depth_nm.size > 10


def _dataset(replica=False, sem=False):
    depth = np.array([0.5, 1.5, 3.0])
    times = np.array([0.0, 10.0, 20.0])
    base = np.zeros((2, 3, 3))
    base[0] = 0.9
    base[1, 1:] = [[0.5, 0.2, 0.0], [0.6, 0.3, 0.0]]
    coords = {"species": ["Li", "K"], "time": times, "depth": depth}
    if replica:
        reps = np.stack([base + 0.01 * r for r in range(4)], axis=-1)
        ds = xr.Dataset({"concentration": (("species", "time", "depth", "replica"), reps)},
                        coords=coords)
    else:
        ds = xr.Dataset({"concentration": (("species", "time", "depth"), base)}, coords=coords)
    if sem:
        ds["concentration_sem"] = (("species", "time", "depth"), np.full_like(base, 0.02))
    return ds


def test_dataset_last_time_and_replica_sem(tmp_path):
    path = write_dataset(_dataset(replica=True), tmp_path / "kmc.nc")
    prof = read_dataset_profiles(path, species_names=SPECIES, error_floor=1e-3)
    assert prof.time_s == 20.0
    np.testing.assert_allclose(prof.values[1], [0.615, 0.315, 0.015])
    # replicas base + 0.01 r, r = 0..3: std (ddof 1) = 0.01 * sqrt(5/3), SEM = std / 2
    np.testing.assert_allclose(prof.errors, 0.01 * np.sqrt(5 / 3) / 2)


def test_dataset_sem_variable_floor_and_time(tmp_path):
    path = write_dataset(_dataset(sem=True), tmp_path / "npp.nc")
    prof = read_profiles(path, SPECIES, time_s=10.0, error_floor=0.05)
    assert prof.time_s == 10.0
    np.testing.assert_array_equal(prof.values[1], [0.5, 0.2, 0.0])
    np.testing.assert_array_equal(prof.errors, 0.05)
    prof = read_dataset_profiles(write_dataset(_dataset(), tmp_path / "plain.nc"))
    assert prof.errors is None and prof.species == ("Li", "K")


def test_dataset_errors(tmp_path):
    path = write_dataset(_dataset(), tmp_path / "npp.nc")
    with pytest.raises(InputFileError, match=r"no profile at time_s = 15; stored times \[s\]: "
                                             r"0, 10, 20"):
        read_dataset_profiles(path, time_s=15.0)
    with pytest.raises(InputFileError, match=r"none of the dataset's species \(Li, K\) is "
                                             r"defined in the input \(Na\)"):
        read_dataset_profiles(path, species_names=("Na",))
    bad = write_dataset(xr.Dataset({"x": ("depth", [1.0])}), tmp_path / "bad.nc")
    with pytest.raises(InputFileError, match=r"no variable `concentration`"):
        read_dataset_profiles(bad)
