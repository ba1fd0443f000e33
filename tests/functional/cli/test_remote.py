"""``nlxc remote add`` over HTTPS with a trust token from the same
daemon: the server's certificate is pinned, every request presents the
client certificate, and a certificate that does not match is refused."""

from __future__ import annotations

import base64
import json

import yaml


def _token(nlxc, name="laptop") -> str:
    return nlxc.out("trust", "add", name).strip().splitlines()[-1]


def _decoded(token: str) -> dict:
    return json.loads(base64.b64decode(token))


def _forged(token: str, fingerprint: str) -> str:
    data = {**_decoded(token), "fingerprint": fingerprint}
    return base64.b64encode(json.dumps(data).encode()).decode()


def test_remote_add_with_token_pins_and_works(nlxc, daemon, tmp_path,
                                              busybox_image):
    token = _token(nlxc)
    server_fp = _decoded(token)["fingerprint"]
    out = nlxc.out("remote", "add", "srv", daemon.url, "--token", token)
    assert f"Certificate fingerprint: {server_fp}" in out
    conf = yaml.safe_load((tmp_path / "nlxc" / "config.yml").read_text())
    assert conf["remotes"]["srv"] == {"addr": daemon.url,
                                      "fingerprint": server_fp}
    key = tmp_path / "nlxc" / "client.key"
    assert key.stat().st_mode & 0o777 == 0o600

    version = json.loads(nlxc.out("version", "srv:", "-f", "json"))
    assert version["remote"] == "srv"
    assert json.loads(nlxc.out("list", "srv:", "--format", "json")) == []
    trusted = json.loads(nlxc.out("trust", "list", "-f", "json"))
    assert "laptop" in [c["name"] for c in trusted]

    # Everything travels over HTTPS too, websockets included.
    nlxc("launch", f"srv:{busybox_image}", "srv:h1")
    try:
        result = nlxc("exec", "srv:h1", "--", "sh", "-c",
                      "cat; echo e >&2; exit 4", input=b"in\n",
                      check=False)
        assert (result.returncode, result.stdout, result.stderr) == (
            4, b"in\n", b"e\n")
        src = tmp_path / "f"
        src.write_bytes(b"over https")
        nlxc("file", "push", str(src), "srv:h1/tmp/f")
        assert nlxc("file", "pull", "srv:h1/tmp/f", "-").stdout == (
            b"over https")
    finally:
        nlxc("delete", "--force", "srv:h1")

    # Revoked: the next request over HTTPS is refused, cleanly.
    fp = next(c["fingerprint"] for c in trusted if c["name"] == "laptop")
    nlxc("trust", "remove", fp)
    assert nlxc.fails("list", "srv:")


def test_trust_token_is_single_use_and_checked(nlxc, daemon, tmp_path):
    token = _token(nlxc, "once")
    nlxc.env["NLXC_CONF_DIR"] = str(tmp_path / "first")
    nlxc("remote", "add", "srv", daemon.url, "--token", token)
    second = type(nlxc)(daemon, tmp_path / "second")
    assert "token" in second.fails("remote", "add", "srv", daemon.url,
                                   "--token", token).lower()
    bogus = base64.b64encode(json.dumps({
        **_decoded(token), "secret": "0" * 64}).encode()).decode()
    assert "token" in second.fails("remote", "add", "srv", daemon.url,
                                   "--token", bogus).lower()


def test_wrong_fingerprint_is_refused(nlxc, daemon, tmp_path):
    token = _token(nlxc, "mallory")
    message = nlxc.fails("remote", "add", "evil", daemon.url,
                         "--token", _forged(token, "ab" * 32))
    assert "does not match the trust token" in message
    message = nlxc.fails("remote", "add", "evil", daemon.url,
                         "--fingerprint", "cd" * 32,
                         "--accept-certificate")
    assert "does not match --fingerprint" in message
    conf = tmp_path / "nlxc" / "config.yml"
    assert not conf.exists() or "evil" not in conf.read_text()


def test_pinned_certificate_changed_is_refused(nlxc, daemon, tmp_path):
    token = _token(nlxc, "pinned")
    nlxc("remote", "add", "srv", daemon.url, "--token", token)
    conf_path = tmp_path / "nlxc" / "config.yml"
    conf = yaml.safe_load(conf_path.read_text())
    conf["remotes"]["srv"]["fingerprint"] = "00" * 32
    conf_path.write_text(yaml.safe_dump(conf))
    message = nlxc.fails("list", "srv:")
    assert "does not match the one pinned" in message


def test_remote_add_takes_the_address_from_the_token(nlxc, daemon):
    token = _token(nlxc, "addressed")
    assert _decoded(token)["addresses"]
    nlxc("remote", "add", "srv", "--token", token)
    assert json.loads(nlxc.out("list", "srv:", "-f", "json")) is not None
    remotes = json.loads(nlxc.out("remote", "list", "-f", "json"))
    assert {"name": "srv", "addr": daemon.url} in [
        {"name": r["name"], "addr": r["addr"]} for r in remotes]


def test_remote_add_without_token_or_consent(nlxc, daemon):
    assert "pass --token" in nlxc.fails("remote", "add", "srv",
                                        daemon.url,
                                        "--accept-certificate")
    assert "--accept-certificate" in nlxc.fails("remote", "add", "srv",
                                                daemon.url)
