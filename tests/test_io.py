"""deepwas.io.files_fingerprint: the key that ties training checkpoints to their input data."""
from deepwas.io import files_fingerprint


def test_fingerprint_follows_file_bytes_and_extra(tmp_path):
    a, d = tmp_path / "a.npz", tmp_path / "store"
    a.write_bytes(b"stats v1")
    d.mkdir()
    (d / "x.npy").write_bytes(b"xx")
    base = files_fingerprint([a, d], extra={"w": 64})
    assert base == files_fingerprint([a, d], extra={"w": 64}) and len(base) == 12
    assert files_fingerprint([a, d], extra={"w": 32}) != base
    a.write_bytes(b"stats v2")
    assert files_fingerprint([a, d], extra={"w": 64}) != base
    a.write_bytes(b"stats v1")
    (d / "y.npy").write_bytes(b"")                 # a new file in a directory changes it too
    assert files_fingerprint([a, d], extra={"w": 64}) != base
