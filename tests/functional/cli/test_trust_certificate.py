"""``nlxc trust add --certificate``: another host's daemon certificate
trusted at once (how two hosts are introduced for moves)."""

from __future__ import annotations

import json

from nova_lxd.daemon.auth.tls import fingerprint_pem, make_certificate


def test_trust_a_certificate_file_then_revoke(nlxc, tmp_path):
    pem, _key = make_certificate("host-b")
    path = tmp_path / "host-b.crt"
    path.write_bytes(pem)
    assert "trusted" in nlxc.out("trust", "add", "host-b",
                                 "--certificate", str(path))
    listed = json.loads(nlxc.out("trust", "list", "--format", "json"))
    fingerprint = fingerprint_pem(pem)
    assert [c["fingerprint"] for c in listed
            if c["name"] == "host-b"] == [fingerprint]
    nlxc.out("trust", "remove", fingerprint)
    listed = json.loads(nlxc.out("trust", "list", "--format", "json"))
    assert fingerprint not in [c["fingerprint"] for c in listed]


def test_unreadable_certificate_is_one_clear_line(nlxc, tmp_path):
    message = nlxc.fails("trust", "add", "x", "--certificate",
                         str(tmp_path / "missing.crt"))
    assert "cannot read" in message
